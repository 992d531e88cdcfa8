//! What an item of a person's store is: its kind, its identity and its location.
//!
//! Identity is not location. An email is its Message-ID plus a hash of its content; the IMAP
//! folder, UIDVALIDITY and UID are only where it sits today, and change when it moves or the
//! folder is recreated. An event, task or contact is its iCalendar or vCard UID; its file name
//! is where it sits. The two are separate types so that no code can match an item by where it
//! happens to be.

use std::fmt;

use crate::model::InvalidValue;

/// The four kinds of item (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKind {
    Email,
    Event,
    Task,
    Contact,
}

impl ItemKind {
    pub const ALL: &'static [ItemKind] = &[
        ItemKind::Email,
        ItemKind::Event,
        ItemKind::Task,
        ItemKind::Contact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Email => "email",
            ItemKind::Event => "event",
            ItemKind::Task => "task",
            ItemKind::Contact => "contact",
        }
    }

    pub fn parse(word: &str) -> Result<ItemKind, InvalidValue> {
        ItemKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == word)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "invalid item kind {word:?}: expected one of email, event, task, contact"
                ))
            })
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hash of the parts of a message that do not change when it is moved or re-flagged, as
/// lowercase hex. Two messages with one Message-ID but different content (a resent draft, a
/// forged id) are different items.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(String);

impl ContentHash {
    pub fn new(hex: &str) -> Result<ContentHash, InvalidValue> {
        if hex.is_empty() || hex.len() > 128 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(InvalidValue(format!(
                "invalid content hash {hex:?}: expected hexadecimal digits"
            )));
        }
        Ok(ContentHash(hex.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who an item is, whatever folder or file it sits in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemIdentity {
    /// An email: its Message-ID (without angle brackets) and its content hash.
    Email {
        message_id: String,
        content_hash: ContentHash,
    },
    /// An event or task: the UID of its VEVENT or VTODO.
    Calendar { uid: String },
    /// A contact: the UID of its vCard.
    Contact { uid: String },
}

impl ItemIdentity {
    /// The identity of a message that carries no Message-ID: derived from its content alone,
    /// so the same message gets the same identity in every folder and every pass.
    pub fn synthetic_email(content_hash: ContentHash) -> ItemIdentity {
        let message_id = format!("synthetic-{}@crmsync.invalid", content_hash.as_str());
        ItemIdentity::Email {
            message_id,
            content_hash,
        }
    }

    /// The single-line text form kept in the store. A Message-ID holds no space, so the
    /// email form `MESSAGE-ID HASH` splits unambiguously at its last space.
    pub fn storage_key(&self) -> String {
        match self {
            ItemIdentity::Email {
                message_id,
                content_hash,
            } => format!("{message_id} {}", content_hash.as_str()),
            ItemIdentity::Calendar { uid } | ItemIdentity::Contact { uid } => uid.clone(),
        }
    }

    pub fn from_storage_key(kind: ItemKind, key: &str) -> Result<ItemIdentity, InvalidValue> {
        match kind {
            ItemKind::Email => {
                let (message_id, hash) = key.rsplit_once(' ').ok_or_else(|| {
                    InvalidValue(format!("invalid email identity {key:?}: no content hash"))
                })?;
                if message_id.is_empty() {
                    return Err(InvalidValue(format!(
                        "invalid email identity {key:?}: empty Message-ID"
                    )));
                }
                Ok(ItemIdentity::Email {
                    message_id: message_id.to_owned(),
                    content_hash: ContentHash::new(hash)?,
                })
            }
            ItemKind::Event | ItemKind::Task if !key.is_empty() => Ok(ItemIdentity::Calendar {
                uid: key.to_owned(),
            }),
            ItemKind::Contact if !key.is_empty() => Ok(ItemIdentity::Contact {
                uid: key.to_owned(),
            }),
            _ => Err(InvalidValue(format!("invalid {kind} identity: empty UID"))),
        }
    }
}

/// Where an item sits now. It changes when an item moves; the identity does not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemLocation {
    /// A message in an IMAP folder.
    Imap {
        folder: String,
        uid_validity: u32,
        uid: u32,
    },
    /// A file in a vdir collection (`calendar` or `contacts` of the mailbox); `href` is the
    /// file name inside the collection directory.
    Collection { collection: String, href: String },
}

impl ItemLocation {
    /// The single-line text form kept in the store: `imap:UIDVALIDITY:UID:FOLDER` or
    /// `vdir:COLLECTION:HREF`. The free-form part comes last so that it may hold `:`.
    pub fn storage_key(&self) -> String {
        match self {
            ItemLocation::Imap {
                folder,
                uid_validity,
                uid,
            } => format!("imap:{uid_validity}:{uid}:{folder}"),
            ItemLocation::Collection { collection, href } => format!("vdir:{collection}:{href}"),
        }
    }

    pub fn from_storage_key(key: &str) -> Result<ItemLocation, InvalidValue> {
        let bad = || InvalidValue(format!("invalid item location {key:?}"));
        let mut parts = key.splitn(4, ':');
        match parts.next() {
            Some("imap") => {
                let uid_validity = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let uid = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let folder = parts.next().ok_or_else(bad)?.to_owned();
                Ok(ItemLocation::Imap {
                    folder,
                    uid_validity,
                    uid,
                })
            }
            Some("vdir") => {
                let collection = parts.next().filter(|c| !c.is_empty()).ok_or_else(bad)?;
                let rest: Vec<&str> = parts.collect();
                let href = rest.join(":");
                if href.is_empty() {
                    return Err(bad());
                }
                Ok(ItemLocation::Collection {
                    collection: collection.to_owned(),
                    href,
                })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(hex: &str) -> ContentHash {
        ContentHash::new(hex).unwrap()
    }

    #[test]
    fn identities_round_trip_through_storage_keys() {
        let cases = [
            (
                ItemKind::Email,
                ItemIdentity::Email {
                    message_id: "abc|1@example.com".into(),
                    content_hash: hash("00ff"),
                },
            ),
            (ItemKind::Email, ItemIdentity::synthetic_email(hash("ABCD"))),
            (
                ItemKind::Event,
                ItemIdentity::Calendar {
                    uid: "uid with space".into(),
                },
            ),
            (
                ItemKind::Contact,
                ItemIdentity::Contact { uid: "c-1".into() },
            ),
        ];
        for (kind, identity) in cases {
            let key = identity.storage_key();
            assert_eq!(
                ItemIdentity::from_storage_key(kind, &key).unwrap(),
                identity
            );
        }
    }

    #[test]
    fn synthetic_identity_is_stable() {
        let first = ItemIdentity::synthetic_email(hash("beef"));
        let second = ItemIdentity::synthetic_email(hash("BEEF"));
        assert_eq!(first, second);
        assert_eq!(first.storage_key(), "synthetic-beef@crmsync.invalid beef");
    }

    #[test]
    fn bad_identities_are_refused() {
        assert!(ItemIdentity::from_storage_key(ItemKind::Email, "no-hash").is_err());
        assert!(ItemIdentity::from_storage_key(ItemKind::Email, " 00ff").is_err());
        assert!(ItemIdentity::from_storage_key(ItemKind::Email, "id@x zz").is_err());
        assert!(ItemIdentity::from_storage_key(ItemKind::Task, "").is_err());
    }

    #[test]
    fn locations_round_trip_through_storage_keys() {
        let cases = [
            ItemLocation::Imap {
                folder: "Clients:Adventure Works".into(),
                uid_validity: 1_700_000_000,
                uid: 42,
            },
            ItemLocation::Collection {
                collection: "calendar".into(),
                href: "a:b.ics".into(),
            },
        ];
        for location in cases {
            let key = location.storage_key();
            assert_eq!(ItemLocation::from_storage_key(&key).unwrap(), location);
        }
        for bad in [
            "",
            "imap:x:1:INBOX",
            "imap:1:2",
            "vdir:calendar",
            "vdir::a.ics",
            "pop:1",
        ] {
            assert!(
                ItemLocation::from_storage_key(bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
