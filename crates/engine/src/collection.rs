//! The collection part of a pass: one calendar or address book (a vdir), observed with the
//! collection adapter, decided by [`crmsync_core::collection::reconcile`], applied here.
//!
//! The order of writes survives a crash at any point:
//! - a newly tracked item's CRM row and its link are one transaction;
//! - a merge writes the file first (refused if its etag moved since it was read), then the CRM
//!   row and the link in one transaction (refused if the row's version moved): a crash between
//!   the two leaves a file whose new etag sends it through the merge again, which converges;
//! - an item written for a CRM-created row carries the row's id as its UID, so a crash before
//!   its link is recorded is healed by tracking the file, which finds the row by that UID;
//! - a link is dropped in the transaction that deletes its CRM row.
//!
//! Only files whose etag differs from their link's (or that have no link) are read; the
//! untracked ones are remembered between passes by etag, so a pass over an unchanged
//! collection of 10,000 items reads no file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crmsync_config::{CollectionConfig, FromCrm, MailboxConfig};
use crmsync_core::collection::{self, CollectionView, CrmCreated, CrmItem, Effect, ObservedItem};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, SyncLink, VersionMarker};
use crmsync_core::merge::Side;
use crmsync_core::model::{ActivityId, RecordId};
use crmsync_store::{ConflictRow, CrmStore, NewItem, StoreError};
use crmsync_vdir::calendar;
use crmsync_vdir::contacts;
use crmsync_vdir::content::{self, Component, Document};
use crmsync_vdir::vdir::{Vdir, VdirError};

use crate::PassReport;

/// Which collection of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Which {
    Calendar,
    Contacts,
}

impl Which {
    pub const ALL: [Which; 2] = [Which::Calendar, Which::Contacts];

    /// The collection a location names (`calendar`, `contacts`).
    pub fn parse(name: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// The mailbox's config of this collection, if it has one.
    pub fn config(self, mailbox: &MailboxConfig) -> Option<&CollectionConfig> {
        match self {
            Which::Calendar => mailbox.calendar.as_ref(),
            Which::Contacts => mailbox.contacts.as_ref(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Which::Calendar => "calendar",
            Which::Contacts => "contacts",
        }
    }

    fn kinds(self) -> &'static [ItemKind] {
        match self {
            Which::Calendar => &[ItemKind::Event, ItemKind::Task],
            Which::Contacts => &[ItemKind::Contact],
        }
    }

    pub fn vdir(self, config: &CollectionConfig) -> Vdir {
        match self {
            Which::Calendar => Vdir::calendar(&config.path),
            Which::Contacts => Vdir::contacts(&config.path),
        }
    }
}

/// What a pass saw of one collection, for the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionReport {
    pub name: &'static str,
    pub path: String,
    /// `idle` or `error`.
    pub state: &'static str,
    /// Item files listed.
    pub items: u64,
    /// Links into the collection after the pass.
    pub tracked: u64,
    /// Files that could not be read (malformed, no UID, a UID used twice).
    pub failed: u64,
    pub last_error: Option<String>,
}

/// What a worker remembers of its collections between passes: the untracked files by etag,
/// with their kind and UID, so they are not read again until they change.
#[derive(Debug, Default)]
pub struct CollectionMemory {
    untracked: HashMap<(Which, String), (String, ItemKind, ItemIdentity)>,
}

/// One file as read: its master component's kind, identity, fields and signal.
struct Read {
    kind: ItemKind,
    identity: ItemIdentity,
    tracked: bool,
    fields: crmsync_core::link::Snapshot,
}

fn read_item(which: Which, text: &str, category: &str) -> Result<Read, String> {
    let document = content::parse(text).map_err(|e| e.to_string())?;
    match which {
        Which::Calendar => {
            let calendar = document
                .first("VCALENDAR")
                .ok_or("no VCALENDAR component")?;
            let master = calendar::master(calendar).ok_or("no VEVENT or VTODO component")?;
            let uid = uid(master)?;
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
            Ok(Read {
                kind: ItemKind::Contact,
                identity: ItemIdentity::Contact { uid: uid(card)? },
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

/// The component crmsync writes into: the master VEVENT/VTODO, or the VCARD.
fn target(which: Which, document: &mut Document) -> Option<&mut Component> {
    match which {
        Which::Calendar => calendar::master_mut(document.first_mut("VCALENDAR")?),
        Which::Contacts => document.first_mut("VCARD"),
    }
}

fn location(which: Which, href: &str) -> ItemLocation {
    ItemLocation::Collection {
        collection: which.as_str().to_owned(),
        href: href.to_owned(),
    }
}

pub(crate) fn collection_pass<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    which: Which,
    config: &CollectionConfig,
    accept_empty: bool,
    memory: &mut CollectionMemory,
    report: &mut PassReport,
) -> CollectionReport {
    let mut status = CollectionReport {
        name: which.as_str(),
        path: config.path.display().to_string(),
        state: "idle",
        items: 0,
        tracked: 0,
        failed: 0,
        last_error: None,
    };
    if let Err(message) = run(
        store,
        mailbox,
        which,
        config,
        accept_empty,
        memory,
        report,
        &mut status,
        false,
    ) {
        report.fail(format!("{}: {message}", which.as_str()));
        status.state = "error";
        status.last_error = Some(message);
    }
    status.tracked = which
        .kinds()
        .iter()
        .filter_map(|kind| store.link_count(&mailbox.id, *kind).ok())
        .sum();
    status
}

#[allow(clippy::too_many_arguments)]
fn run<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    which: Which,
    config: &CollectionConfig,
    accept_empty: bool,
    memory: &mut CollectionMemory,
    report: &mut PassReport,
    status: &mut CollectionReport,
    again: bool,
) -> Result<(), String> {
    let store_error = |error: StoreError| format!("CRM store: {error}");
    let vdir = which.vdir(config);
    let category = &mailbox.tracking.category;
    if !config.path.is_dir() {
        return Err(format!(
            "the collection {} is not a directory",
            config.path.display()
        ));
    }
    let entries = vdir.list().map_err(|e| e.to_string())?;
    status.items = entries.len() as u64;

    let links: Vec<SyncLink> = store
        .links_of(&mailbox.id, which.kinds())
        .map_err(store_error)?;
    let unchanged: BTreeSet<(&str, &str)> = links
        .iter()
        .filter_map(|l| {
            let version = l.item_version.as_ref()?;
            Some((collection::href(&l.location), version.0.as_str()))
        })
        .collect();

    // Observe.
    let mut view = CollectionView {
        accept_empty,
        ..CollectionView::default()
    };
    let mut present: BTreeSet<(ItemKind, ItemIdentity)> = BTreeSet::new();
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.href.as_str()).collect();
    let linked_identities: BTreeSet<(ItemKind, &ItemIdentity)> =
        links.iter().map(|l| (l.kind, &l.identity)).collect();
    // A UID belongs to the file its link points at while that file is listed: another file
    // with the same UID (a copy) is a duplicate, not a rename.
    let mut seen_uids: BTreeMap<ItemIdentity, String> = links
        .iter()
        .map(|l| (l.identity.clone(), collection::href(&l.location).to_owned()))
        .filter(|(_, href)| listed.contains(href.as_str()))
        .collect();
    let mut unreadable: Vec<(String, String)> = Vec::new();
    memory
        .untracked
        .retain(|(w, href), _| *w != which || entries.iter().any(|e| &e.href == href));
    for entry in &entries {
        view.hrefs.insert(entry.href.clone());
        if unchanged.contains(&(entry.href.as_str(), entry.etag.as_str())) {
            continue;
        }
        let key = (which, entry.href.clone());
        if let Some((etag, kind, identity)) = memory.untracked.get(&key)
            && *etag == entry.etag
        {
            present.insert((*kind, identity.clone()));
            continue;
        }
        let read = match vdir.read(&entry.href) {
            // Removed since the listing: the next pass sees it gone.
            Err(VdirError::Missing(_)) => continue,
            Err(error) => Err(error.to_string()),
            Ok((text, etag)) => read_item(which, &text, category).map(|item| (item, etag)),
        };
        let (item, etag) = match read {
            Ok(found) => found,
            Err(message) => {
                unreadable.push((entry.href.clone(), message));
                continue;
            }
        };
        if let Some(first) = seen_uids.get(&item.identity)
            && *first != entry.href
        {
            let message = format!(
                "UID {} is also the UID of {first}: only that one is synchronized",
                item.identity.storage_key()
            );
            unreadable.push((entry.href.clone(), message));
            continue;
        }
        seen_uids.insert(item.identity.clone(), entry.href.clone());
        present.insert((item.kind, item.identity.clone()));
        // Remembered only when untracked and unlinked: an untracked file whose link is still
        // to go is read again until its untrack has been carried out.
        if item.tracked || linked_identities.contains(&(item.kind, &item.identity)) {
            memory.untracked.remove(&key);
        } else {
            memory
                .untracked
                .insert(key, (etag.clone(), item.kind, item.identity.clone()));
        }
        view.changed.push(ObservedItem {
            kind: item.kind,
            identity: item.identity,
            location: location(which, &entry.href),
            etag,
            tracked: item.tracked,
            fields: item.fields,
        });
    }
    for (href, message) in unreadable {
        // A second round of the same pass (see below) reports nothing twice.
        if !again {
            report.failed += 1;
            status.failed += 1;
            report.warn(format!(
                "{} {}: skipped: {message}",
                which.as_str(),
                config.path.join(&href).display()
            ));
        }
        view.unreadable.insert(href);
    }
    for link in &links {
        present.insert((link.kind, link.identity.clone()));
    }

    // The CRM side.
    let linked = store.linked_items(&mailbox.id).map_err(store_error)?;
    let observed: BTreeSet<(ItemKind, &ItemIdentity)> =
        view.changed.iter().map(|o| (o.kind, &o.identity)).collect();
    let owner = mailbox.owner.key();
    let mut crm: BTreeMap<CrmRef, CrmItem> = BTreeMap::new();
    let mut skipped: BTreeSet<CrmRef> = BTreeSet::new();
    for link in &links {
        let Some(row) = linked.get(&link.crm) else {
            continue;
        };
        let fields = if Some(row.version) == link.crm_version
            && !observed.contains(&(link.kind, &link.identity))
        {
            collection::crm_side(&link.base)
        } else {
            match store.item_fields(link.crm) {
                Ok(Some(fields)) => fields,
                Ok(None) => continue,
                // A row another program wrote against the schema (a priority that is no
                // number, say): this item is skipped and counted, the rest goes on.
                Err(error) => {
                    if !again {
                        report.failed += 1;
                        status.failed += 1;
                        report.warn(format!(
                            "{} {}: skipped: CRM store: {error}",
                            which.as_str(),
                            collection::href(&link.location)
                        ));
                    }
                    skipped.insert(link.crm);
                    continue;
                }
            }
        };
        crm.insert(
            link.crm,
            CrmItem::Present {
                fields,
                version: row.version,
                owned_by_mailbox_owner: row
                    .owner
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(&owner)),
            },
        );
    }
    let created: Vec<CrmCreated> = match config.from_crm {
        FromCrm::None => Vec::new(),
        FromCrm::Owned => store
            .created_items(
                &mailbox.id,
                &mailbox.owner,
                which == Which::Calendar,
                which == Which::Contacts,
            )
            .map_err(store_error)?
            .into_iter()
            .map(|row| CrmCreated {
                kind: row.kind,
                crm: row.crm,
                identity: match row.kind {
                    ItemKind::Contact => ItemIdentity::Contact { uid: row.uid },
                    _ => ItemIdentity::Calendar { uid: row.uid },
                },
                fields: row.fields,
                version: row.version,
            })
            // Never a second file for a UID the collection already holds.
            .filter(|row| !present.contains(&(row.kind, row.identity.clone())))
            .collect(),
    };

    // Decide and apply.
    // A skipped row must not look deleted, nor its file new: both sit this pass out.
    let (skipped_links, links): (Vec<SyncLink>, Vec<SyncLink>) =
        links.into_iter().partition(|l| skipped.contains(&l.crm));
    for link in &skipped_links {
        view.changed
            .retain(|o| (o.kind, &o.identity) != (link.kind, &link.identity));
        view.unreadable
            .insert(collection::href(&link.location).to_owned());
    }
    let effects = collection::reconcile(&view, &links, &crm, &created, mailbox.conflict_policy);
    let mut pending = Pending::default();
    for effect in effects {
        if let Effect::SuspiciousEmpty { links } = effect {
            status.state = "error";
            status.last_error = Some(format!(
                "the collection lists no item while {links} tracked items were in it: nothing was deleted (if it was emptied on purpose, run crmsync sync --accept-empty)"
            ));
            continue;
        }
        let outcome = apply(store, mailbox, which, &vdir, effect, &mut pending, report);
        // A second round of the pass (see below) meets the same failures: counted once.
        if let Err(message) = outcome
            && !again
        {
            report.failed += 1;
            status.failed += 1;
            report.warn(format!("{}: {message}", which.as_str()));
        }
        if pending.batch.len() >= TRACK_BATCH {
            flush(store, which, &mut pending, report, status);
        }
    }
    flush(store, which, &mut pending, report, status);
    if pending.merge_due && !again {
        // Items just linked to existing rows: merge them now rather than on some later wake.
        return run(
            store,
            mailbox,
            which,
            config,
            accept_empty,
            memory,
            report,
            status,
            true,
        );
    }
    if status.state == "error" {
        return Err(status.last_error.clone().unwrap_or_default());
    }
    Ok(())
}

/// What applying effects leaves for the end of the pass.
#[derive(Default)]
struct Pending {
    /// Newly tracked items whose CRM rows are created together (`flush`).
    batch: Vec<(NewItem, SyncLink)>,
    /// Items were linked to rows that already had their UID and want a merge.
    merge_due: bool,
}

/// How many newly tracked items one transaction creates: a first import of 10,000 items is 40
/// commits, not 10,000, and still all or nothing per transaction.
const TRACK_BATCH: usize = 256;

/// Creates the CRM rows and links of newly tracked items. A batch that fails is retried item
/// by item, so one bad item fails alone.
fn flush<S: CrmStore>(
    store: &mut S,
    which: Which,
    pending: &mut Pending,
    report: &mut PassReport,
    status: &mut CollectionReport,
) {
    if pending.batch.is_empty() {
        return;
    }
    let items = std::mem::take(&mut pending.batch);
    let mut results = Vec::new();
    match store.track_items(&items) {
        Ok(done) => results.extend(items.iter().zip(done).map(|(item, r)| (item, Ok(r)))),
        Err(_) => {
            for item in &items {
                let one = store.track_items(std::slice::from_ref(item));
                results.push((item, one.map(|mut r| r.remove(0))));
            }
        }
    }
    for ((_, link), result) in results {
        let href = collection::href(&link.location);
        match result {
            Ok(tracked) => {
                if tracked.linked.is_some() {
                    report.linked += 1;
                    pending.merge_due = true;
                } else {
                    report.created += 1;
                }
                for warning in tracked.warnings {
                    report.warn(format!("{} {href}: {warning}", which.as_str()));
                }
            }
            Err(error) => {
                report.failed += 1;
                status.failed += 1;
                report.warn(format!("{} {href}: CRM store: {error}", which.as_str()));
            }
        }
    }
}

fn apply<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    which: Which,
    vdir: &Vdir,
    effect: Effect,
    pending: &mut Pending,
    report: &mut PassReport,
) -> Result<(), String> {
    let store_error = |error: StoreError| format!("CRM store: {error}");
    let category = &mailbox.tracking.category;
    match effect {
        // Settled by the caller.
        Effect::SuspiciousEmpty { .. } => {}
        Effect::Track { observed } => {
            // Created, or linked to the row that already has its UID, by `flush`.
            let id = uuid::Uuid::new_v4();
            let link = SyncLink {
                mailbox: mailbox.id.clone(),
                kind: observed.kind,
                identity: observed.identity.clone(),
                location: observed.location.clone(),
                crm: match observed.kind {
                    ItemKind::Contact => CrmRef::Record(RecordId(id)),
                    _ => CrmRef::Activity(ActivityId(id)),
                },
                base: observed.fields.clone(),
                item_version: Some(VersionMarker(observed.etag.clone())),
                crm_version: None,
                created_by: ItemCreator::Mailbox,
                state: LinkState::Synced,
            };
            let item = NewItem {
                kind: observed.kind,
                owner: mailbox.owner.clone(),
                mailbox: mailbox.id.clone(),
                uid: observed.identity.storage_key(),
                fields: observed.fields,
            };
            pending.batch.push((item, link));
        }
        Effect::Update {
            link,
            location,
            etag,
            item,
            outcome,
            crm_version,
        } => {
            let moved = location != link.location;
            let same_file = link.item_version.as_ref().is_some_and(|v| v.0 == etag);
            if outcome.is_noop() && !moved && same_file && Some(crm_version) == link.crm_version {
                return Ok(());
            }
            let href = collection::href(&location).to_owned();
            let mut new_etag = etag.clone();
            if !outcome.mailbox_writes.is_empty() {
                let (text, found) = vdir.read(&href).map_err(|e| e.to_string())?;
                if found != etag {
                    // Changed since it was listed: the next pass merges the newer file.
                    return Ok(());
                }
                let mut document = content::parse(&text).map_err(|e| e.to_string())?;
                let component = target(which, &mut document)
                    .ok_or_else(|| format!("{href}: nothing to write into"))?;
                match which {
                    Which::Calendar => {
                        calendar::apply(component, &outcome.merged, &outcome.mailbox_writes)
                    }
                    Which::Contacts => contacts::apply(component, &outcome.mailbox_writes),
                }
                new_etag = vdir
                    .update(&href, &document.render(), &etag)
                    .map_err(|e| e.to_string())?;
                report.items_written += 1;
            }
            // What the item holds now; the store adds what the CRM stored where it differs.
            let item_after = crmsync_core::merge::apply(&item, &outcome.mailbox_writes);
            let new_link = SyncLink {
                location,
                base: item_after.clone(),
                item_version: Some(VersionMarker(new_etag)),
                state: LinkState::Synced,
                ..link.clone()
            };
            match store.update_item(&new_link, crm_version, &outcome.crm_writes, &mailbox.owner) {
                Ok((_, warnings)) => {
                    for warning in warnings {
                        report.warn(format!("{} {href}: {warning}", which.as_str()));
                    }
                }
                // Changed in the CRM meanwhile: the next pass merges again. If the file was
                // written, the link records that it now holds those values (from the CRM), so
                // the newer CRM edit is taken as the change it is, not as a conflict with the
                // values just written.
                Err(StoreError::Conflict(message)) => {
                    report.warn(format!("{} {href}: {message}", which.as_str()));
                    if !outcome.mailbox_writes.is_empty() {
                        // With the file's old etag, so that it is read again: the values it
                        // received are base now, and the person's own edits still show.
                        // Both sides of the old base, plus what the file received; the
                        // person's own edits are not in it, so they still show as changes.
                        let received = |side: crmsync_core::link::Snapshot| {
                            crmsync_core::merge::apply(&side, &outcome.mailbox_writes)
                        };
                        let written = SyncLink {
                            base: collection::two_sided_base(
                                &received(collection::item_side(&link.base)),
                                &received(collection::crm_side(&link.base)),
                            ),
                            item_version: link.item_version.clone(),
                            ..new_link
                        };
                        store.put_link(&written).map_err(store_error)?;
                    }
                    return Ok(());
                }
                Err(StoreError::NotFound(_)) => return Ok(()),
                Err(error) => return Err(store_error(error)),
            }
            report.updated += 1;
            for conflict in outcome.conflicts {
                let winner = match conflict.winner {
                    Side::Mailbox => "mailbox",
                    Side::Crm => "crm",
                };
                let row = ConflictRow {
                    mailbox: mailbox.id.clone(),
                    item_kind: link.kind.as_str().to_owned(),
                    item: link.identity.storage_key(),
                    crm: Some(link.crm.to_string()),
                    field: conflict.field,
                    base: conflict.base,
                    mailbox_value: conflict.mailbox,
                    crm_value: conflict.crm,
                    winner: winner.to_owned(),
                    at: String::new(),
                };
                report.warn(format!(
                    "{} {href}: field {} changed on both sides; the {winner} value was kept (crmsync conflicts)",
                    which.as_str(),
                    row.field
                ));
                if let Err(error) = store.log_conflict(&row) {
                    report.warn(format!("the conflict could not be logged: {error}"));
                }
            }
        }
        Effect::Untrack { link, delete_crm } | Effect::ItemDeleted { link, delete_crm } => {
            if delete_crm {
                match store.delete_item(&link) {
                    Ok(()) => report.deleted += 1,
                    // The CRM keeps the row (a contact other activities regard): so does the
                    // link, so the row is neither written back into the collection as a new
                    // item nor forgotten; the pass counts it failed until an administrator
                    // settles it (or the person tracks the item again).
                    Err(StoreError::Refused(message)) => {
                        return Err(format!(
                            "{}: not deleted in the CRM: {message}",
                            collection::href(&link.location)
                        ));
                    }
                    Err(error) => return Err(store_error(error)),
                }
            } else {
                store
                    .delete_link(&link.mailbox, link.kind, &link.identity)
                    .map_err(store_error)?;
                report.unlinked += 1;
            }
        }
        Effect::CrmDeleted {
            link,
            location,
            etag,
            delete_item,
        } => {
            let href = collection::href(&location).to_owned();
            if delete_item {
                match vdir.delete(&href, &etag) {
                    Ok(()) | Err(VdirError::Missing(_)) => report.items_written += 1,
                    Err(VdirError::Changed { .. }) => return Ok(()),
                    Err(error) => return Err(error.to_string()),
                }
            } else {
                match vdir.read(&href) {
                    Ok((text, found)) if found == etag => {
                        let mut document = content::parse(&text).map_err(|e| e.to_string())?;
                        if let Some(component) = target(which, &mut document) {
                            calendar::remove_category(component, category);
                        }
                        vdir.update(&href, &document.render(), &etag)
                            .map_err(|e| e.to_string())?;
                        report.items_written += 1;
                    }
                    Ok(_) => return Ok(()),
                    Err(VdirError::Missing(_)) => {}
                    Err(error) => return Err(error.to_string()),
                }
            }
            store
                .delete_link(&link.mailbox, link.kind, &link.identity)
                .map_err(store_error)?;
            report.unlinked += 1;
        }
        Effect::CreateItem { created } => {
            let uid = created.identity.storage_key();
            let id = created.crm.uuid();
            let (href, text) = match which {
                Which::Calendar => (
                    format!("{id}.ics"),
                    calendar::new_object(
                        created.kind == ItemKind::Task,
                        &uid,
                        &created.fields,
                        category,
                        &chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
                    ),
                ),
                Which::Contacts => (
                    format!("{id}.vcf"),
                    contacts::new_card(&uid, &created.fields, category),
                ),
            };
            let etag = match vdir.create(&href, &text) {
                Ok(etag) => etag,
                Err(VdirError::Exists(_)) => {
                    return Err(format!(
                        "{href} exists but does not hold the CRM row it is named after: not overwritten"
                    ));
                }
                Err(error) => return Err(error.to_string()),
            };
            report.items_written += 1;
            let link = SyncLink {
                mailbox: mailbox.id.clone(),
                kind: created.kind,
                identity: created.identity.clone(),
                location: location(which, &href),
                crm: created.crm,
                base: created.fields.clone(),
                item_version: Some(VersionMarker(etag)),
                crm_version: Some(created.version),
                created_by: ItemCreator::Crm,
                state: LinkState::Synced,
            };
            store.link_item(&link, &uid).map_err(store_error)?;
        }
    }
    Ok(())
}
