//! The tracking pane of one message (`crmsync item show`): whether it is tracked, what it
//! regards, each address and the record it resolved to, and the state of its sync link.
//!
//! A tracked message is described from the store alone. An untracked one is looked up on the
//! IMAP server (headers and flags only) and its addresses are resolved the way tracking would
//! resolve them, so a person sees what tracking it would do.

use crmsync_config::MailboxConfig;

use crate::collection::Which;
use crmsync_core::email::TrackingRules;
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, SyncLink};
use std::collections::HashMap;

use crmsync_core::model::{EmailAddress, PartyRole, RecordId};
use crmsync_core::resolve::{self, Resolution};
use crmsync_imap::ImapSession;
use crmsync_imap::message;
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
    pub resolution: AddressResolution,
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
    let store_error = |error: StoreError| format!("CRM store: {error}");
    let mut pane = ItemPane {
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
    if let Locator::Href(href) = locator {
        return collection_pane(store, mailbox, href, pane);
    }
    let link = store
        .links(&mailbox.id)
        .map_err(store_error)?
        .into_iter()
        .find(|link| link.kind == ItemKind::Email && matches(link, locator));
    if let Some(link) = link {
        pane.tracked = true;
        pane.location = Some(location_text(&link.location));
        pane.link_state = Some(link.state.as_str().to_owned());
        if let ItemIdentity::Email { message_id, .. } = &link.identity {
            pane.message_id = Some(message_id.clone());
        }
        pane.keywords = link
            .base
            .get("signal")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if let CrmRef::Activity(id) = link.crm {
            match store.activity(id) {
                Ok(activity) => {
                    describe_activity(store, &mut pane, &activity, &mailbox.tracking.keyword)?;
                    pane.activity = Some(activity);
                }
                Err(StoreError::NotFound(_)) => pane
                    .notes
                    .push("the activity was deleted in the CRM; the tracking keyword goes on the next pass".into()),
                Err(error) => return Err(store_error(error)),
            }
        }
        return Ok(pane);
    }

    // Not tracked: look at the message itself, headers and flags only.
    let Some(imap) = &mailbox.imap else {
        pane.notes.push("not tracked".into());
        return Ok(pane);
    };
    let password = imap
        .password
        .read()
        .map_err(|e| format!("IMAP password: {e}"))?;
    let mut session = ImapSession::connect(imap, &password)
        .await
        .map_err(|e| format!("IMAP: {e}"))?;
    let mut found = None;
    match locator {
        Locator::Uid { folder, uid } => {
            let header = session
                .fetch_header(folder, *uid)
                .await
                .map_err(|e| format!("IMAP: {e}"))?;
            found = header.map(|h| (folder.clone(), h));
        }
        Locator::Href(_) => unreachable!("answered from the collection"),
        Locator::MessageId(message_id) => {
            for folder in &imap.folders {
                let uids = session
                    .search_message_id(folder, message_id)
                    .await
                    .map_err(|e| format!("IMAP: {e}"))?;
                if let Some(uid) = uids.first() {
                    let header = session
                        .fetch_header(folder, *uid)
                        .await
                        .map_err(|e| format!("IMAP: {e}"))?;
                    found = header.map(|h| (folder.clone(), h));
                    break;
                }
            }
        }
    }
    session.logout().await;
    let Some((folder, header)) = found else {
        return Err(format!("no such message in mailbox {}", mailbox.id));
    };
    pane.location = Some(format!("{folder}:{}", header.uid));
    pane.keywords = header.keywords.clone();
    let rules = TrackingRules {
        keyword: mailbox.tracking.keyword.clone(),
        folders: mailbox.tracking.folders.clone(),
    };
    let signal = rules.signal(&folder, &header.keywords);
    pane.notes.push(if signal.tracked {
        "not tracked yet: it carries a tracking signal, so the next pass tracks it".into()
    } else {
        format!(
            "not tracked: give it the keyword {:?} to track it",
            rules.keyword
        )
    });
    let summary = message::summarize(&header.header).map_err(|e| e.to_string())?;
    pane.message_id = summary.message_id;
    let parsed = message::parse(&header.header).map_err(|e| e.to_string())?;
    let mut records = None;
    for (role, addresses) in [
        (PartyRole::From, &parsed.from),
        (PartyRole::To, &parsed.to),
        (PartyRole::Cc, &parsed.cc),
    ] {
        for address in addresses {
            let resolution = match EmailAddress::new(&address.address) {
                Ok(valid) => resolve_address(store, &valid, &mut records)?,
                Err(_) => AddressResolution::Unresolved,
            };
            pane.addresses.push(PaneAddress {
                role,
                address: address.address.clone(),
                resolution,
            });
        }
    }
    Ok(pane)
}

/// The pane of a calendar or address-book item: from its link when tracked, else from the file.
fn collection_pane<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    wanted: &str,
    mut pane: ItemPane,
) -> Result<ItemPane, String> {
    let store_error = |error: StoreError| format!("CRM store: {error}");
    let (collection, href) = match wanted.split_once('/') {
        Some((collection, href)) => (Some(collection), href),
        None => (None, wanted),
    };
    let link = store
        .links(&mailbox.id)
        .map_err(store_error)?
        .into_iter()
        .find(|link| match &link.location {
            ItemLocation::Collection {
                collection: c,
                href: h,
            } => h == href && collection.is_none_or(|wanted| wanted == c),
            ItemLocation::Imap { .. } => false,
        });
    let mut records = None;
    if let Some(link) = link {
        pane.tracked = true;
        pane.location = Some(location_text(&link.location));
        // The categories as the file has them now, when it can be read.
        let which = match &link.location {
            ItemLocation::Collection { collection, .. } => Which::parse(collection),
            ItemLocation::Imap { .. } => None,
        };
        let vdir = which.and_then(|w| Some(w.vdir(w.config(mailbox)?)));
        if let Some((text, _)) = vdir.and_then(|v| v.read(href).ok())
            && let Ok(document) = crmsync_vdir::content::parse(&text)
            && let Some(component) = document
                .first("VCALENDAR")
                .and_then(crmsync_vdir::calendar::master)
                .or_else(|| document.first("VCARD"))
        {
            pane.keywords = crmsync_vdir::calendar::categories(component);
        }
        pane.link_state = Some(link.state.as_str().to_owned());
        match link.crm {
            CrmRef::Activity(id) => match store.activity(id) {
                Ok(activity) => {
                    describe_activity(store, &mut pane, &activity, &mailbox.tracking.keyword)?;
                    pane.activity = Some(activity);
                }
                Err(StoreError::NotFound(_)) => pane.notes.push(
                    "the activity was deleted in the CRM; the next pass settles the item".into(),
                ),
                Err(error) => return Err(store_error(error)),
            },
            CrmRef::Record(id) => {
                let all = store.records(None).map_err(store_error)?;
                match all.into_iter().find(|r| r.record.id == id) {
                    Some(record) => {
                        pane.regarding_parent = record.parent.clone();
                        for address in &record.emails {
                            if let Ok(valid) = EmailAddress::new(address) {
                                let resolution = resolve_address(store, &valid, &mut records)?;
                                pane.addresses.push(PaneAddress {
                                    role: PartyRole::To,
                                    address: address.clone(),
                                    resolution,
                                });
                            }
                        }
                        pane.record = Some(record.record);
                    }
                    None => pane.notes.push(
                        "the contact was deleted in the CRM; the next pass settles the item".into(),
                    ),
                }
            }
        }
        return Ok(pane);
    }
    // Not tracked: read the file.
    // Read as the collection adapter reads: no path outside the directory, no link followed,
    // no oversized file.
    let found = Which::ALL
        .into_iter()
        .filter(|which| collection.is_none_or(|c| c == which.as_str()))
        .find_map(|which| {
            let (text, _) = which.vdir(which.config(mailbox)?).read(href).ok()?;
            Some((which.as_str(), text))
        });
    let Some((name, text)) = found else {
        return Err(format!(
            "no item {wanted} in the collections of mailbox {}",
            mailbox.id
        ));
    };
    pane.location = Some(format!("{name}/{href}"));
    let document = crmsync_vdir::content::parse(&text).map_err(|e| format!("{href}: {e}"))?;
    let component = document
        .first("VCALENDAR")
        .and_then(crmsync_vdir::calendar::master)
        .or_else(|| document.first("VCARD"))
        .ok_or_else(|| format!("{href}: no VEVENT, VTODO or VCARD"))?;
    let category = &mailbox.tracking.category;
    pane.keywords = crmsync_vdir::calendar::categories(component);
    pane.notes
        .push(if crmsync_vdir::calendar::is_tracked(component, category) {
            "not tracked yet: it carries the tracking category, so the next pass tracks it".into()
        } else {
            format!("not tracked: give it the category {category:?} to track it")
        });
    let mut addresses: Vec<(PartyRole, String)> = Vec::new();
    for (property, role) in [
        ("ORGANIZER", PartyRole::Organizer),
        ("ATTENDEE", PartyRole::Required),
        ("EMAIL", PartyRole::To),
    ] {
        for p in component.properties(property) {
            let value = p.value.trim();
            let address = value
                .get(..7)
                .filter(|prefix| prefix.eq_ignore_ascii_case("mailto:"))
                .map_or(value, |_| &value[7..]);
            addresses.push((role, address.to_owned()));
        }
    }
    for (role, address) in addresses {
        let resolution = match EmailAddress::new(&address) {
            Ok(valid) => resolve_address(store, &valid, &mut records)?,
            Err(_) => AddressResolution::Unresolved,
        };
        pane.addresses.push(PaneAddress {
            role,
            address,
            resolution,
        });
    }
    Ok(pane)
}

fn resolve_address<S: CrmStore>(
    store: &S,
    address: &EmailAddress,
    records: &mut Option<HashMap<RecordId, RecordRef>>,
) -> Result<AddressResolution, String> {
    let store_error = |error: StoreError| format!("CRM store: {error}");
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
            resolution,
        });
    }
    Ok(())
}
