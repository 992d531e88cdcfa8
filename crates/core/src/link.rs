//! The sync link: the persistent pairing of one item with one CRM row.
//!
//! A link remembers what both sides looked like when they were last in step (the *base*), and
//! each side's version marker at that moment. The base is what makes a two-way sync safe: a
//! field that differs from the base changed on that side, and only there (see [`crate::merge`]).
//! Version markers (an IMAP MODSEQ, a file's ETag, the CRM row's version) only tell cheaply
//! whether a side *may* have changed; a marker that moved while every field stayed equal to the
//! base is not a change.

use std::collections::BTreeMap;

use crate::item::{ItemIdentity, ItemKind, ItemLocation};
use crate::model::{ActivityId, InvalidValue, RecordId};

/// The CRM row a link points at: an activity for emails, events and tasks; a contact record for
/// contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrmRef {
    Activity(ActivityId),
    Record(RecordId),
}

impl CrmRef {
    /// `activity` or `record`: the store's `crm_kind`.
    pub fn kind(self) -> &'static str {
        match self {
            CrmRef::Activity(_) => "activity",
            CrmRef::Record(_) => "record",
        }
    }

    /// The row's uuid.
    pub fn uuid(self) -> uuid::Uuid {
        match self {
            CrmRef::Activity(id) => id.0,
            CrmRef::Record(id) => id.0,
        }
    }
}

/// `activity:UUID` or `record:UUID`, as the conflict log names a CRM row.
impl std::fmt::Display for CrmRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind(), self.uuid())
    }
}

/// The fields of one item as crmsync maps them, each as a canonical text value. A field that
/// is absent and a field that is empty are the same. Version markers never appear here, so a
/// marker-only change compares equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    fields: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Sets a field; an empty value removes it.
    pub fn set(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.fields.remove(field);
        } else {
            self.fields.insert(field.to_owned(), value.to_owned());
        }
    }

    pub fn with(mut self, field: &str, value: &str) -> Snapshot {
        self.set(field, value);
        self
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

/// An opaque marker of one side's version: an IMAP `UIDVALIDITY/MODSEQ`, a file ETag, a CRM row
/// version. Equal markers mean "unchanged"; different markers mean "look at the fields".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionMarker(pub String);

/// Which side created the item in the person's store. An item the CRM created there is deleted
/// when its CRM copy is; an item the person created only loses its tracking signal (SPEC 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemCreator {
    Mailbox,
    Crm,
}

impl ItemCreator {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemCreator::Mailbox => "mailbox",
            ItemCreator::Crm => "crm",
        }
    }

    pub fn parse(word: &str) -> Result<ItemCreator, InvalidValue> {
        match word {
            "mailbox" => Ok(ItemCreator::Mailbox),
            "crm" => Ok(ItemCreator::Crm),
            _ => Err(InvalidValue(format!(
                "invalid item creator {word:?}: expected mailbox or crm"
            ))),
        }
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Both sides matched the base at the last pass.
    Synced,
    /// The CRM row was deleted (by crmsync or any other program); the item's tracking signal
    /// is still to be removed, after which the link goes.
    CrmDeleted,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Synced => "synced",
            LinkState::CrmDeleted => "crm-deleted",
        }
    }

    /// The schema also accepts `pending` and `failed`, which no crmsync version writes: a link
    /// another program left in one of them is simply merged again, as a synced one is.
    pub fn parse(word: &str) -> Result<LinkState, InvalidValue> {
        match word {
            "synced" | "pending" | "failed" => Ok(LinkState::Synced),
            "crm-deleted" => Ok(LinkState::CrmDeleted),
            _ => Err(InvalidValue(format!(
                "invalid link state {word:?}: expected synced or crm-deleted"
            ))),
        }
    }
}

/// One item of one mailbox paired with one CRM row.
///
/// A mailbox has at most one link per item identity; one CRM row may have links from several
/// mailboxes (the same email tracked by two people is one activity with two links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLink {
    pub mailbox: String,
    pub kind: ItemKind,
    pub identity: ItemIdentity,
    pub location: ItemLocation,
    pub crm: CrmRef,
    pub base: Snapshot,
    pub item_version: Option<VersionMarker>,
    pub crm_version: Option<i64>,
    pub created_by: ItemCreator,
    pub state: LinkState,
}
