//! Tracking tokens: the Message-ID of an email crmsync sends for a CRM activity names that
//! activity, signed with a key of the installation, so that a reply correlates with it through
//! In-Reply-To alone (a client that drops References, a thread the CRM never saw by its
//! Message-ID), and nobody outside the installation can make a message correlate with an
//! activity of their choosing.
//!
//! The form is `crm.<activity uuid, 32 hex digits>.<tag, 20 hex digits>@<domain>`, where the
//! tag is the first 80 bits of HMAC-SHA256 over `crmsync-tracking-token-v1:` and the uuid's
//! digits. 80 bits cannot be guessed by sending mail; the rest of the Message-ID stays
//! ordinary (RFC 5322 `dot-atom-text`, unique per activity).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::ActivityId;

/// What a tracking token's Message-ID starts with.
pub const PREFIX: &str = "crm.";

/// How many bytes of the MAC the token keeps (20 hex digits).
const TAG_BYTES: usize = 10;

/// What the MAC covers besides the activity, so a tag made for anything else never passes.
const CONTEXT: &str = "crmsync-tracking-token-v1:";

/// The installation's key for tracking tokens (kept in the CRM store, shared by every node).
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    /// A key of at least 16 bytes; `None` for a shorter one.
    pub fn new(bytes: Vec<u8>) -> Option<TokenKey> {
        (bytes.len() >= 16).then_some(TokenKey(bytes))
    }

    fn mac(&self, digits: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(CONTEXT.as_bytes());
        mac.update(digits.as_bytes());
        mac
    }
}

/// Never prints the key.
impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The Message-ID (without angle brackets) of an email sent for `activity` from `domain`.
pub fn message_id(key: &TokenKey, activity: ActivityId, domain: &str) -> String {
    let digits = activity.0.simple().to_string();
    let tag = key.mac(&digits).finalize().into_bytes();
    let tag: String = tag[..TAG_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{PREFIX}{digits}.{tag}@{domain}")
}

/// The activity a Message-ID names, when it is a tracking token this installation signed.
/// Anything else (an ordinary Message-ID, a token of another installation, a forged or
/// damaged one) is `None`; the tag is checked in constant time.
pub fn activity(key: &TokenKey, message_id: &str) -> Option<ActivityId> {
    let local = message_id
        .trim()
        .trim_matches(['<', '>'])
        .split_once('@')?
        .0;
    let rest = local
        .get(..PREFIX.len())?
        .eq_ignore_ascii_case(PREFIX)
        .then(|| &local[PREFIX.len()..])?;
    let (digits, tag) = rest.split_once('.')?;
    let digits = digits.to_ascii_lowercase();
    let uuid = uuid::Uuid::try_parse(&digits).ok()?;
    if digits.len() != 32 || tag.len() != TAG_BYTES * 2 {
        return None;
    }
    let tag: Vec<u8> = (0..TAG_BYTES)
        .map(|i| u8::from_str_radix(tag.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    key.mac(&digits)
        .verify_truncated_left(&tag)
        .ok()
        .map(|()| ActivityId(uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(vec![byte; 32]).unwrap()
    }

    #[test]
    fn a_token_names_its_activity_for_the_key_that_made_it_only() {
        let activity = ActivityId(uuid::Uuid::new_v4());
        let id = message_id(&key(1), activity, "example.com");
        assert!(
            id.starts_with("crm.") && id.ends_with("@example.com"),
            "{id}"
        );
        assert_eq!(id.len(), "crm.".len() + 32 + 1 + 20 + "@example.com".len());
        assert_eq!(super::activity(&key(1), &id), Some(activity));
        assert_eq!(super::activity(&key(1), &format!("<{id}>")), Some(activity));
        assert_eq!(
            super::activity(&key(1), &id.to_ascii_uppercase()),
            Some(activity),
            "Message-IDs may come back in another case"
        );
        assert_eq!(
            super::activity(&key(2), &id),
            None,
            "another installation's key"
        );
    }

    #[test]
    fn forged_damaged_and_ordinary_message_ids_name_nothing() {
        let activity = ActivityId(uuid::Uuid::new_v4());
        let id = message_id(&key(1), activity, "example.com");
        let other = ActivityId(uuid::Uuid::new_v4()).0.simple().to_string();
        let swapped = format!("crm.{other}{}", &id[4 + 32..]);
        let mut flipped = id.clone().into_bytes();
        flipped[4 + 32 + 1] = if flipped[4 + 32 + 1] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            swapped.as_str(),
            flipped.as_str(),
            "crm.@x",
            "crm.1234.abcd@x",
            "CAF=1234@mail.gmail.com",
            "",
            "crm.ééééééééééééééééééééééééééééééé.0000000000@x",
            &id[..id.len() - 13],
        ] {
            assert_eq!(super::activity(&key(1), bad), None, "{bad:?}");
        }
        assert!(TokenKey::new(vec![0; 15]).is_none());
        assert_eq!(format!("{:?}", key(7)), "TokenKey(..)");
    }
}
