//! Apply: the core's effects for one collection, each on its own, in the order given. Newly
//! tracked items are created in batches ([`TRACK_BATCH`] per transaction); everything else is
//! one write (file, or row and link) at a time, in the crash-safe order of `mod.rs`.

use crmsync_core::collection::{self, CrmCreated, Effect, ItemUpdate, ObservedItem};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::merge::{self, MergeOutcome};
use crmsync_core::model::{ActivityId, RecordId};
use crmsync_store::{CrmStore, NewItem, StoreError};
use crmsync_vdir::calendar;
use crmsync_vdir::collection::{Collection, CollectionError};
use crmsync_vdir::contacts;
use crmsync_vdir::content;

use super::read::{location, target};
use super::{CollectionPass, Which};
use crate::conflict;
use crate::report::{CollectionState, PassReport};

/// How many newly tracked items one transaction creates: a first import of 10,000 items is 40
/// commits, not 10,000, and still all or nothing per transaction.
const TRACK_BATCH: usize = 256;

impl<S: CrmStore> CollectionPass<'_, S> {
    /// Applies the effects; returns the items that were linked to rows that already had their
    /// UID (they want a merge in this pass).
    pub(super) async fn apply(
        &mut self,
        effects: Vec<Effect>,
        report: &mut PassReport,
    ) -> Vec<(ItemKind, ItemIdentity)> {
        let mut batch: Vec<(NewItem, SyncLink)> = Vec::new();
        let mut just_linked = Vec::new();
        for effect in effects {
            let href = self.effect_href(&effect);
            let outcome = match effect {
                Effect::SuspiciousEmpty { links } => {
                    let message = format!(
                        "the collection lists no item while {links} tracked items were in it: nothing was deleted (if it was emptied on purpose, run crmsync sync --accept-empty)"
                    );
                    tracing::warn!(mailbox = %self.mailbox.id, collection = self.which.as_str(), "{message}");
                    self.status.state = CollectionState::Error;
                    self.status.last_error = Some(message);
                    Ok(())
                }
                Effect::MassDeleteHeld { gone, links } => {
                    let message = format!(
                        "{gone} of its {links} tracked items are deleted or untracked in this pass: nothing was deleted (if that was meant, run crmsync sync --accept-deletes)"
                    );
                    report.fail(format!("{}: {message}", self.which.as_str()));
                    self.status.state = CollectionState::Error;
                    self.status.last_error = Some(message);
                    Ok(())
                }
                Effect::Track { observed } => {
                    self.found.pending.insert(observed.href().to_owned());
                    batch.push(self.new_item(observed));
                    Ok(())
                }
                Effect::Update(update) => self.update(update, report).await,
                Effect::Untrack { link, delete_crm } | Effect::ItemDeleted { link, delete_crm } => {
                    self.untrack(&link, delete_crm, report)
                }
                Effect::CrmDeleted {
                    link,
                    location,
                    etag,
                    delete_item,
                } => {
                    self.crm_deleted(&link, &location, &etag, delete_item, report)
                        .await
                }
                Effect::CreateItem { created } => self.create_item(created, report).await,
            };
            if let Err(reason) = outcome {
                self.item_failed(report, href.unwrap_or_default(), reason);
            }
            if batch.len() >= TRACK_BATCH {
                just_linked.extend(self.flush(std::mem::take(&mut batch), report));
            }
        }
        just_linked.extend(self.flush(batch, report));
        just_linked
    }

    /// The row and link of a newly tracked item, created (or linked to the row that already
    /// has its UID) by [`Self::flush`].
    fn new_item(&self, observed: ObservedItem) -> (NewItem, SyncLink) {
        let id = uuid::Uuid::new_v4();
        let link = SyncLink {
            mailbox: self.mailbox.id.clone(),
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
            owner: self.mailbox.owner.clone(),
            mailbox: self.mailbox.id.clone(),
            uid: observed.identity.storage_key(),
            fields: observed.fields,
        };
        (item, link)
    }

    /// Creates the CRM rows and links of newly tracked items in one transaction. A batch that
    /// fails is retried item by item, so one bad item fails alone. Returns the items linked to
    /// rows that already had their UID.
    fn flush(
        &mut self,
        items: Vec<(NewItem, SyncLink)>,
        report: &mut PassReport,
    ) -> Vec<(ItemKind, ItemIdentity)> {
        if items.is_empty() {
            return Vec::new();
        }
        let results: Vec<_> = match self.store.track_items(&items) {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(_) => items
                .iter()
                .map(|item| {
                    self.store
                        .track_items(std::slice::from_ref(item))
                        .map(|mut tracked| tracked.remove(0))
                })
                .collect(),
        };
        let mut just_linked = Vec::new();
        for ((_, link), result) in items.iter().zip(results) {
            let href = collection::href(&link.location);
            match result {
                Ok(tracked) => {
                    self.found.pending.remove(href);
                    if tracked.linked.is_some() {
                        report.linked += 1;
                        just_linked.push((link.kind, link.identity.clone()));
                    } else {
                        report.created += 1;
                    }
                    for warning in tracked.warnings {
                        report.warn(format!("{} {href}: {warning}", self.which.as_str()));
                    }
                }
                Err(error) => {
                    self.item_failed(report, href.to_owned(), format!("CRM store: {error}"))
                }
            }
        }
        just_linked
    }

    /// A merge: the file first (when it takes writes), then the CRM row and the link.
    async fn update(&mut self, update: ItemUpdate, report: &mut PassReport) -> Result<(), String> {
        let ItemUpdate {
            link,
            location,
            etag,
            item,
            outcome,
            crm_version,
        } = update;
        let moved = location != link.location;
        let same_file = link.item_version.as_ref().is_some_and(|v| v.0 == etag);
        if outcome.is_noop() && !moved && same_file && Some(crm_version) == link.crm_version {
            return Ok(());
        }
        let href = collection::href(&location).to_owned();
        let mut new_etag = etag.clone();
        if !outcome.mailbox_writes.is_empty() {
            match self.write_merged(&href, &etag, &outcome).await? {
                Some(written) => new_etag = written,
                // Changed since it was listed: the next pass merges the newer file.
                None => return Ok(()),
            }
            report.items_written += 1;
        }
        // What the item holds now; the store adds what the CRM stored where it differs.
        let new_link = SyncLink {
            location,
            base: merge::apply(&item, &outcome.mailbox_writes),
            item_version: Some(VersionMarker(new_etag)),
            state: LinkState::Synced,
            ..link.clone()
        };
        let owner = &self.mailbox.owner;
        match self
            .store
            .update_item(&new_link, crm_version, &outcome.crm_writes, owner)
        {
            Ok((_, warnings)) => {
                for warning in warnings {
                    report.warn(format!("{} {href}: {warning}", self.which.as_str()));
                }
            }
            Err(StoreError::Conflict(message)) => {
                report.warn(format!("{} {href}: {message}", self.which.as_str()));
                return self.record_written(&link, new_link, &outcome);
            }
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(error) => return Err(format!("CRM store: {error}")),
        }
        report.updated += 1;
        for conflict in outcome.conflicts {
            conflict::log(
                self.store,
                report,
                (
                    link.kind,
                    &link.identity,
                    &format!("{} {href}", self.which.as_str()),
                ),
                Some(link.crm),
                conflict,
            );
        }
        Ok(())
    }

    /// Writes the merged values into the file, if it still has the etag it was read at;
    /// `None` when it changed since.
    async fn write_merged(
        &mut self,
        href: &str,
        etag: &str,
        outcome: &MergeOutcome,
    ) -> Result<Option<String>, String> {
        let (text, found) = match self.source.read(href).await {
            Ok(read) => read,
            Err(CollectionError::Missing(_)) => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        if found != etag {
            return Ok(None);
        }
        let mut document = content::parse(&text).map_err(|e| e.to_string())?;
        let component =
            target(self.which, &mut document).ok_or_else(|| "nothing to write into".to_owned())?;
        match self.which {
            Which::Calendar => {
                calendar::apply(component, &outcome.merged, &outcome.mailbox_writes);
                let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                calendar::mark_changed(component, &outcome.mailbox_writes, &now);
            }
            Which::Contacts => contacts::apply(component, &outcome.mailbox_writes),
        }
        // A 412 (the person saved meanwhile): the next pass reads the newer item and merges.
        match self.source.update(href, &document.render(), etag).await {
            Ok(etag) => Ok(Some(etag)),
            Err(CollectionError::Changed { .. } | CollectionError::Missing(_)) => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }

    /// The CRM row changed meanwhile, so its write was refused: the next pass merges again.
    /// If the file was written, the link records that it now holds those values (from the
    /// CRM), so the newer CRM edit is taken as the change it is, not as a conflict with the
    /// values just written. The file's old etag stays, so that it is read again: the values it
    /// received are base now, and the person's own edits still show.
    fn record_written(
        &mut self,
        link: &SyncLink,
        new_link: SyncLink,
        outcome: &MergeOutcome,
    ) -> Result<(), String> {
        if outcome.mailbox_writes.is_empty() {
            return Ok(());
        }
        let received = |side: Snapshot| merge::apply(&side, &outcome.mailbox_writes);
        let written = SyncLink {
            base: collection::two_sided_base(
                &received(collection::item_side(&link.base)),
                &received(collection::crm_side(&link.base)),
            ),
            item_version: link.item_version.clone(),
            ..new_link
        };
        self.store
            .put_link(&written)
            .map_err(|error| format!("CRM store: {error}"))
    }

    /// Untracked, or deleted in the collection: the row goes with its link when the owner
    /// owns it, else only the link.
    fn untrack(
        &mut self,
        link: &SyncLink,
        delete_crm: bool,
        report: &mut PassReport,
    ) -> Result<(), String> {
        if !delete_crm {
            self.store
                .delete_link(&link.mailbox, link.kind, &link.identity)
                .map_err(|error| format!("CRM store: {error}"))?;
            report.unlinked += 1;
            return Ok(());
        }
        match self.store.delete_item(link) {
            Ok(()) => {
                report.deleted += 1;
                Ok(())
            }
            // The CRM keeps the row (a contact other activities regard): so does the link, so
            // the row is neither written back into the collection as a new item nor forgotten;
            // the pass counts it failed until an administrator settles it (or the person
            // tracks the item again).
            Err(StoreError::Refused(message)) => Err(format!("not deleted in the CRM: {message}")),
            Err(error) => Err(format!("CRM store: {error}")),
        }
    }

    /// Deleted in the CRM: the file goes when the CRM created it, else it loses its tracking
    /// category; then the link goes.
    async fn crm_deleted(
        &mut self,
        link: &SyncLink,
        location: &ItemLocation,
        etag: &str,
        delete_item: bool,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let href = collection::href(location);
        if delete_item {
            match self.source.delete(href, etag).await {
                Ok(()) | Err(CollectionError::Missing(_)) => {
                    self.found.written.push((href.to_owned(), false));
                    report.items_written += 1;
                }
                Err(CollectionError::Changed { .. }) => return Ok(()),
                Err(error) => return Err(error.to_string()),
            }
        } else {
            match self.source.read(href).await {
                Ok((text, found)) if found == etag => {
                    let mut document = content::parse(&text).map_err(|e| e.to_string())?;
                    if let Some(component) = target(self.which, &mut document) {
                        calendar::remove_category(component, &self.mailbox.tracking.category);
                    }
                    match self.source.update(href, &document.render(), etag).await {
                        Ok(_) => report.items_written += 1,
                        // Changed meanwhile: the next pass looks again.
                        Err(CollectionError::Changed { .. }) => return Ok(()),
                        Err(error) => return Err(error.to_string()),
                    }
                }
                Ok(_) => return Ok(()),
                Err(CollectionError::Missing(_)) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
        self.store
            .delete_link(&link.mailbox, link.kind, &link.identity)
            .map_err(|error| format!("CRM store: {error}"))?;
        report.unlinked += 1;
        Ok(())
    }

    /// A row the CRM created for the owner: its file first (named and UID'd after the row),
    /// then the link.
    async fn create_item(
        &mut self,
        created: CrmCreated,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let uid = created.identity.storage_key();
        let category = &self.mailbox.tracking.category;
        let href = created_href(self.which, &created);
        let text = match self.which {
            Which::Calendar => calendar::new_object(
                created.kind == ItemKind::Task,
                &uid,
                &created.fields,
                category,
                &chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            ),
            Which::Contacts => contacts::new_card(&uid, &created.fields, category),
        };
        let etag = match self.source.create(&href, &text).await {
            Ok(etag) => etag,
            Err(CollectionError::Exists(_)) => {
                return Err(
                    "the file exists but does not hold the CRM row it is named after: not overwritten"
                        .to_owned(),
                );
            }
            Err(error) => return Err(error.to_string()),
        };
        self.found.written.push((href.clone(), true));
        report.items_written += 1;
        let link = SyncLink {
            mailbox: self.mailbox.id.clone(),
            kind: created.kind,
            identity: created.identity.clone(),
            location: location(self.which, &href),
            crm: created.crm,
            base: created.fields,
            item_version: Some(VersionMarker(etag)),
            crm_version: Some(created.version),
            created_by: ItemCreator::Crm,
            state: LinkState::Synced,
        };
        self.store
            .link_item(&link, &uid)
            .map(|_| ())
            .map_err(|error| format!("CRM store: {error}"))
    }

    /// The file an effect is about, for the failed-items list.
    fn effect_href(&self, effect: &Effect) -> Option<String> {
        let location = match effect {
            Effect::Track { observed } => &observed.location,
            Effect::Update(update) => &update.location,
            Effect::Untrack { link, .. } | Effect::ItemDeleted { link, .. } => &link.location,
            Effect::CrmDeleted { location, .. } => location,
            Effect::CreateItem { created } => return Some(created_href(self.which, created)),
            Effect::SuspiciousEmpty { .. } | Effect::MassDeleteHeld { .. } => return None,
        };
        Some(collection::href(location).to_owned())
    }
}

/// The file a CRM-created row is written to: named after the row.
fn created_href(which: Which, created: &CrmCreated) -> String {
    let id = created.crm.uuid();
    match which {
        Which::Calendar => format!("{id}.ics"),
        Which::Contacts => format!("{id}.vcf"),
    }
}
