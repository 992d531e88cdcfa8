//! Reading one collection file: its master component's kind, identity (UID), fields and
//! tracking signal; and the component crmsync writes back into.

use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::Snapshot;
use crmsync_vdir::calendar;
use crmsync_vdir::contacts;
use crmsync_vdir::content::{self, Component, Document};

use super::Which;

/// One file as read.
pub(super) struct Read {
    pub kind: ItemKind,
    pub identity: ItemIdentity,
    pub tracked: bool,
    pub fields: Snapshot,
}

/// Why a file was not read as an item.
pub(super) enum NotRead {
    /// It cannot be read (malformed, no UID): a failed item.
    Unreadable(String),
    /// It is well formed but holds nothing crmsync tracks (a journal entry, free/busy, only
    /// changed occurrences): skipped and counted as such, not failed.
    NotAnItem(String),
    /// An event, task or card without a UID (most exported vCards): a tracked one is given
    /// one, an untracked one is none of crmsync's business.
    NoUid { tracked: bool },
}

impl From<String> for NotRead {
    fn from(message: String) -> NotRead {
        NotRead::Unreadable(message)
    }
}

impl From<&str> for NotRead {
    fn from(message: &str) -> NotRead {
        NotRead::Unreadable(message.to_owned())
    }
}

pub(super) fn read_item(which: Which, text: &str, category: &str) -> Result<Read, NotRead> {
    let document = content::parse(text).map_err(|e| e.to_string())?;
    match which {
        Which::Calendar => {
            let calendar = document
                .first("VCALENDAR")
                .ok_or("no VCALENDAR component")?;
            if let Some(why) = calendar::not_an_item(calendar) {
                return Err(NotRead::NotAnItem(why));
            }
            let master = calendar::master(calendar).ok_or("no VEVENT or VTODO component")?;
            let uid = uid(master).map_err(|_| NotRead::NoUid {
                tracked: calendar::is_tracked(master, category),
            })?;
            let task = master.name.eq_ignore_ascii_case("VTODO");
            Ok(Read {
                kind: if task {
                    ItemKind::Task
                } else {
                    ItemKind::Event
                },
                identity: ItemIdentity::Calendar { uid },
                tracked: calendar::is_tracked(master, category),
                fields: if task {
                    calendar::task_fields(master)
                } else {
                    calendar::event_fields(master)
                },
            })
        }
        Which::Contacts => {
            let card = document.first("VCARD").ok_or("no VCARD component")?;
            let uid = uid(card).map_err(|_| NotRead::NoUid {
                tracked: calendar::is_tracked(card, category),
            })?;
            Ok(Read {
                kind: ItemKind::Contact,
                identity: ItemIdentity::Contact { uid },
                tracked: calendar::is_tracked(card, category),
                fields: contacts::contact_fields(card),
            })
        }
    }
}

fn uid(component: &Component) -> Result<String, String> {
    component
        .property("UID")
        .map(|p| content::unescape_text(p.value.trim()))
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| format!("{} has no UID", component.name))
}

/// The file's text with a new UID on its event, task or card (a tracked item without one),
/// everything else as it was.
pub(super) fn with_new_uid(which: Which, text: &str) -> Result<String, String> {
    let mut document = content::parse(text).map_err(|e| e.to_string())?;
    let component = target(which, &mut document).ok_or("nothing to give a UID")?;
    component.set("UID", &uuid::Uuid::new_v4().to_string());
    Ok(document.render())
}

/// The component crmsync writes into: the master VEVENT/VTODO, or the VCARD.
pub(super) fn target(which: Which, document: &mut Document) -> Option<&mut Component> {
    match which {
        Which::Calendar => calendar::master_mut(document.first_mut("VCALENDAR")?),
        Which::Contacts => document.first_mut("VCARD"),
    }
}

pub(super) fn location(which: Which, href: &str) -> ItemLocation {
    ItemLocation::Collection {
        collection: which.as_str().to_owned(),
        href: href.to_owned(),
    }
}
