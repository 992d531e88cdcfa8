//! The pane of a calendar or address-book item: from its link when tracked, else from the
//! file, read as the collection adapter reads it (no path outside the directory, no link
//! followed, no oversized file).

use std::collections::HashMap;

use crmsync_config::MailboxConfig;
use crmsync_core::item::ItemLocation;
use crmsync_core::link::{CrmRef, SyncLink};
use crmsync_core::model::{PartyRole, RecordId};
use crmsync_store::{CrmStore, RecordRef, StoreError};
use crmsync_vdir::content::Component;
use crmsync_vdir::{calendar, content};

use super::{ItemPane, PaneAddress, add_addresses, describe_activity, location_text, store_error};
use crate::collection::Which;

pub(super) fn pane<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    wanted: &str,
    pane: ItemPane,
) -> Result<ItemPane, String> {
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
    match link {
        Some(link) => tracked(store, mailbox, &link, href, pane),
        None => untracked(store, mailbox, collection, href, pane),
    }
}

/// The master VEVENT/VTODO of a calendar object, or the VCARD.
fn master(document: &content::Document) -> Option<&Component> {
    document
        .first("VCALENDAR")
        .and_then(calendar::master)
        .or_else(|| document.first("VCARD"))
}

fn tracked<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    link: &SyncLink,
    href: &str,
    mut pane: ItemPane,
) -> Result<ItemPane, String> {
    pane.tracked = true;
    pane.location = Some(location_text(&link.location));
    // The categories as the file has them now, when it can be read.
    let which = match &link.location {
        ItemLocation::Collection { collection, .. } => Which::parse(collection),
        ItemLocation::Imap { .. } => None,
    };
    // A directory is read here; a server collection's categories are not fetched for the
    // pane.
    let vdir = which.and_then(|w| w.directory(w.config(mailbox)?));
    if let Some((text, _)) = vdir.and_then(|v| v.read(href).ok())
        && let Ok(document) = content::parse(&text)
        && let Some(component) = master(&document)
    {
        pane.keywords = calendar::categories(component);
    }
    pane.link_state = Some(link.state.as_str().to_owned());
    match link.crm {
        CrmRef::Activity(id) => match store.activity(id) {
            Ok(activity) => {
                describe_activity(store, &mut pane, &activity, &mailbox.tracking.keyword)?;
                pane.activity = Some(activity);
            }
            Err(StoreError::NotFound(_)) => pane
                .notes
                .push("the activity was deleted in the CRM; the next pass settles the item".into()),
            Err(error) => return Err(store_error(error)),
        },
        CrmRef::Record(id) => contact(store, id, &mut pane)?,
    }
    Ok(pane)
}

/// A tracked vCard's contact record: its parent account and its addresses.
fn contact<S: CrmStore>(store: &S, id: RecordId, pane: &mut ItemPane) -> Result<(), String> {
    let all = store.records(None).map_err(store_error)?;
    let Some(record) = all.into_iter().find(|r| r.record.id == id) else {
        pane.notes
            .push("the contact was deleted in the CRM; the next pass settles the item".into());
        return Ok(());
    };
    pane.regarding_parent = record.parent.clone();
    let addresses = record
        .emails
        .iter()
        .map(|address| PaneAddress::plain(PartyRole::To, address.clone()))
        .collect();
    let mut records: Option<HashMap<RecordId, RecordRef>> = None;
    add_addresses(store, pane, addresses, &mut records)?;
    pane.record = Some(record.record);
    Ok(())
}

/// An untracked file: what tracking it would do.
fn untracked<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    collection: Option<&str>,
    href: &str,
    mut pane: ItemPane,
) -> Result<ItemPane, String> {
    let found = Which::ALL
        .into_iter()
        .filter(|which| collection.is_none_or(|c| c == which.as_str()))
        .find_map(|which| {
            let (text, _) = which.directory(which.config(mailbox)?)?.read(href).ok()?;
            Some((which.as_str(), text))
        });
    let Some((name, text)) = found else {
        let wanted = collection.map_or(href.to_owned(), |c| format!("{c}/{href}"));
        return Err(format!(
            "no item {wanted} in the collections of mailbox {}",
            mailbox.id
        ));
    };
    pane.location = Some(format!("{name}/{href}"));
    let document = content::parse(&text).map_err(|e| format!("{href}: {e}"))?;
    if let Some(why) = document.first("VCALENDAR").and_then(calendar::not_an_item) {
        pane.notes.push(format!(
            "not tracked: it holds {why}; skipped, and counted as such"
        ));
        return Ok(pane);
    }
    let component =
        master(&document).ok_or_else(|| format!("{href}: no VEVENT, VTODO or VCARD"))?;
    let category = &mailbox.tracking.category;
    pane.keywords = calendar::categories(component);
    pane.notes
        .push(if calendar::is_tracked(component, category) {
            "not tracked yet: it carries the tracking category, so the next pass tracks it".into()
        } else {
            format!("not tracked: give it the category {category:?} to track it")
        });
    add_addresses(store, &mut pane, addresses(component), &mut None)?;
    Ok(pane)
}

/// The organizer, attendees and e-mail addresses of an event, task or card.
fn addresses(component: &Component) -> Vec<PaneAddress> {
    let mut addresses = Vec::new();
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
            addresses.push(PaneAddress::plain(role, address.to_owned()));
        }
    }
    addresses
}
