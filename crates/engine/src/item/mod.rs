//! The tracking pane of one message (`crmsync item show`): whether it is tracked, what it
//! regards, each address and the record it resolved to, and the state of its sync link.
//!
//! A tracked message is described from the store alone. An untracked one is looked up on the
//! IMAP server (headers and flags only) and its addresses are resolved the way tracking would
//! resolve them, so a person sees what tracking it would do.

mod collection;
mod email;

use std::collections::HashMap;

use crmsync_config::MailboxConfig;
use crmsync_core::item::{ItemIdentity, ItemLocation};
use crmsync_core::link::SyncLink;
use crmsync_core::model::{EmailAddress, PartyRole, RecordId};
use crmsync_core::resolve::{self, Resolution};
use crmsync_store::{ActivityRow, CrmStore, RecordRef, StoreError};

/// How a person names the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    MessageId(String),
    Uid {
        folder: String,
        uid: u32,
    },
    /// A collection item's file name, alone (`e1.ics`) or with its collection
    /// (`calendar/e1.ics`).
    Href(String),
}

/// What an address resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressResolution {
    Resolved(RecordRef),
    Ambiguous(Vec<RecordRef>),
    Unresolved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneAddress {
    pub role: PartyRole,
    pub address: String,
    /// The display name the message gave it.
    pub name: Option<String>,
    /// The group it was addressed through (`Team` of `To: Team: a@x, b@y;`).
    pub group: Option<String>,
    pub resolution: AddressResolution,
}

impl PaneAddress {
    /// An address with no name or group, not resolved yet.
    fn plain(role: PartyRole, address: String) -> PaneAddress {
        PaneAddress {
            role,
            address,
            name: None,
            group: None,
            resolution: AddressResolution::Unresolved,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemPane {
    pub mailbox: String,
    pub tracked: bool,
    /// `FOLDER:UID` where the message sits, when known.
    pub location: Option<String>,
    pub message_id: Option<String>,
    pub keywords: Vec<String>,
    pub activity: Option<ActivityRow>,
    pub regarding: Option<RecordRef>,
    /// The parent of the regarding record (the account of a contact, say).
    pub regarding_parent: Option<RecordRef>,
    pub addresses: Vec<PaneAddress>,
    /// The contact record a tracked vCard is linked to.
    pub record: Option<RecordRef>,
    /// The sync link's state, for a tracked message.
    pub link_state: Option<String>,
    pub notes: Vec<String>,
}

fn location_text(location: &ItemLocation) -> String {
    match location {
        ItemLocation::Imap { folder, uid, .. } => format!("{folder}:{uid}"),
        ItemLocation::Collection { collection, href } => format!("{collection}/{href}"),
    }
}

fn matches(link: &SyncLink, locator: &Locator) -> bool {
    match (locator, &link.identity, &link.location) {
        (Locator::MessageId(wanted), ItemIdentity::Email { message_id, .. }, _) => {
            message_id.eq_ignore_ascii_case(wanted)
        }
        (
            Locator::Uid { folder, uid },
            _,
            ItemLocation::Imap {
                folder: f, uid: u, ..
            },
        ) => f == folder && u == uid,
        _ => false,
    }
}

/// Builds the pane. `Err` is a failure to look (store or server unreachable), not "not found".
pub async fn item_pane<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    locator: &Locator,
) -> Result<ItemPane, String> {
    let pane = ItemPane {
        mailbox: mailbox.id.clone(),
        tracked: false,
        location: None,
        message_id: None,
        keywords: Vec::new(),
        activity: None,
        regarding: None,
        regarding_parent: None,
        addresses: Vec::new(),
        record: None,
        link_state: None,
        notes: Vec::new(),
    };
    match locator {
        Locator::Href(href) => collection::pane(store, mailbox, href, pane),
        _ => email::pane(store, mailbox, locator, pane).await,
    }
}

/// The store's error, in the pane's words.
fn store_error(error: StoreError) -> String {
    format!("CRM store: {error}")
}

/// Resolves each address as tracking would and adds it to the pane.
fn add_addresses<S: CrmStore>(
    store: &S,
    pane: &mut ItemPane,
    addresses: Vec<PaneAddress>,
    records: &mut Option<HashMap<RecordId, RecordRef>>,
) -> Result<(), String> {
    for mut address in addresses {
        address.resolution = match EmailAddress::new(&address.address) {
            Ok(valid) => resolve_address(store, &valid, records)?,
            Err(_) => AddressResolution::Unresolved,
        };
        pane.addresses.push(address);
    }
    Ok(())
}

fn resolve_address<S: CrmStore>(
    store: &S,
    address: &EmailAddress,
    records: &mut Option<HashMap<RecordId, RecordRef>>,
) -> Result<AddressResolution, String> {
    let candidates = store.records_with_email(address).map_err(store_error)?;
    if candidates.is_empty() {
        return Ok(AddressResolution::Unresolved);
    }
    // The records are loaded once per pane, on the first address that has candidates.
    if records.is_none() {
        let all = store.records(None).map_err(store_error)?;
        *records = Some(all.into_iter().map(|r| (r.record.id, r.record)).collect());
    }
    let known = records.as_ref().expect("loaded above");
    let reference = |id: RecordId| -> Result<RecordRef, String> {
        known
            .get(&id)
            .cloned()
            .ok_or_else(|| "a record vanished while the pane was built".to_owned())
    };
    Ok(match resolve::resolve(&candidates) {
        Resolution::Resolved(id) => AddressResolution::Resolved(reference(id)?),
        Resolution::Ambiguous(ids) => {
            AddressResolution::Ambiguous(ids.into_iter().map(reference).collect::<Result<_, _>>()?)
        }
        Resolution::Unresolved => AddressResolution::Unresolved,
    })
}

fn describe_activity<S: CrmStore>(
    store: &S,
    pane: &mut ItemPane,
    activity: &ActivityRow,
    keyword: &str,
) -> Result<(), String> {
    pane.regarding = activity.regarding.clone();
    if let Some(regarding) = &activity.regarding {
        let record = store
            .record(&regarding.number)
            .map_err(|e| format!("CRM store: {e}"))?;
        pane.regarding_parent = record.parent;
    } else {
        let prefix = format!("{}:", keyword.to_ascii_lowercase());
        for word in &pane.keywords {
            if word.to_ascii_lowercase().starts_with(&prefix) {
                pane.notes.push(format!(
                    "the keyword {word} names no record: no regarding record is set"
                ));
            }
        }
    }
    for party in &activity.parties {
        let resolution = match (&party.record, party.candidates.is_empty()) {
            (Some(record), _) => AddressResolution::Resolved(record.clone()),
            (None, false) => AddressResolution::Ambiguous(party.candidates.clone()),
            (None, true) => AddressResolution::Unresolved,
        };
        pane.addresses.push(PaneAddress {
            role: party.role,
            address: party.address.clone(),
            name: party.display_name.clone(),
            group: party.group.clone(),
            resolution,
        });
    }
    Ok(())
}
