//! Observe: the collection's listing, the files that changed since their link (or that have
//! none), and the CRM side of every link plus the rows the CRM created for the owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crmsync_config::FromCrm;
use crmsync_core::collection::{self, CollectionView, CrmCreated, CrmItem, ObservedItem};
use crmsync_core::item::{ItemIdentity, ItemKind};
use crmsync_core::link::{CrmRef, SyncLink};
use crmsync_store::CrmStore;
use crmsync_vdir::collection::{Collection, CollectionError, Entry};

use super::read::{self, NotRead, Read};
use super::{CollectionPass, Extent, Which};
use crate::error::PassError;
use crate::report::PassReport;

/// A file as read: `None` when it went away since the listing.
type Reading = Result<Option<(Read, String)>, NotRead>;

/// What the core needs to decide about one collection.
pub(super) struct Observed {
    pub view: CollectionView,
    pub links: Vec<SyncLink>,
    pub crm: BTreeMap<CrmRef, CrmItem>,
    pub created: Vec<CrmCreated>,
}

impl<S: CrmStore> CollectionPass<'_, S> {
    pub(super) async fn observe(&mut self, report: &mut PassReport) -> Result<Observed, PassError> {
        // A dry run changes nothing in the directory, leftovers included.
        let listing = if self.as_listed {
            self.source.kept_listing(!self.options.dry_run).await
        } else {
            self.asked_server = true;
            self.source.list(!self.options.dry_run).await
        };
        let mut listing = match listing {
            Ok(listing) => listing,
            Err(error) => return Err(self.collection_error(error)),
        };
        // The kept listing is believed only while every link's item is in it: one that is
        // not (written by another process since, say) must not look deleted. The server is
        // asked then.
        let links = self.store.links_of(&self.mailbox.id, self.which.kinds())?;
        if self.as_listed && self.source.is_server() {
            let hrefs: BTreeSet<&str> = listing.entries.iter().map(|e| e.href.as_str()).collect();
            if links
                .iter()
                .any(|l| !hrefs.contains(collection::href(&l.location)))
            {
                self.asked_server = true;
                listing = match self.source.list(!self.options.dry_run).await {
                    Ok(listing) => listing,
                    Err(error) => return Err(self.collection_error(error)),
                };
            }
        }
        let (entries, removed) = (listing.entries, listing.removed);
        for name in removed {
            tracing::info!(
                mailbox = %self.mailbox.id,
                collection = self.which.as_str(),
                "removed {name}, a temporary file left by an interrupted write"
            );
        }
        self.status.items = entries.len() as u64;
        self.listed = entries.iter().map(|e| e.href.clone()).collect();
        let which = self.which;
        let listed = &self.listed;
        self.memory
            .untracked
            .retain(|(w, href), _| *w != which || listed.contains(href));
        let mut view = CollectionView {
            accept_empty: self.options.accept_empty,
            accept_deletes: self.options.accept_deletes,
            ..CollectionView::default()
        };
        let mut present = self
            .read_changed(&entries, &links, HashMap::new(), &mut view, report)
            .await?;
        present.extend(links.iter().map(|l| (l.kind, l.identity.clone())));
        let (crm, skipped) = self.crm_side(&links, &view, report)?;
        let created = self.created(&present)?;
        let links = sit_out(links, &skipped, &mut view);
        Ok(Observed {
            view,
            links,
            crm,
            created,
        })
    }

    /// A pass over the files a watcher named: each is looked at (gone, or there with its
    /// etag), the links at those files and at the UIDs read from them are loaded with their
    /// CRM rows, and the rest of the collection is as the last pass saw it (the links this
    /// pass was not given are counted, for the guards).
    pub(super) async fn observe_files(
        &mut self,
        names: &BTreeSet<String>,
        report: &mut PassReport,
    ) -> Result<Observed, PassError> {
        let which = self.which;
        self.listed = self
            .memory
            .seen
            .get_mut(&which)
            .map(|seen| std::mem::take(&mut seen.listed))
            .unwrap_or_default();
        let mut entries = Vec::new();
        for name in names {
            let entry = if self.as_listed {
                self.source.kept_entry(name).await
            } else {
                self.source.entry(name).await
            };
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => return Err(self.collection_error(error)),
            };
            match entry {
                Some(entry) => {
                    self.listed.insert(entry.href.clone());
                    entries.push(entry);
                }
                None => {
                    self.listed.remove(name);
                    self.memory.untracked.remove(&(which, name.clone()));
                }
            }
        }
        let locations: Vec<_> = names.iter().map(|n| read::location(which, n)).collect();
        let mut links = self.store.links_at(&self.mailbox.id, &locations)?;
        // Read before the links are complete: a file's UID may be linked at another file (a
        // rename, or a copy), and that link decides which of the two it is.
        let mut pre_read = HashMap::new();
        for entry in &entries {
            let unchanged = links.iter().any(|l| {
                collection::href(&l.location) == entry.href
                    && l.item_version.as_ref().is_some_and(|v| v.0 == entry.etag)
            });
            if unchanged {
                continue;
            }
            let reading = self.read_file(&entry.href).await;
            if let Ok(Some((item, _))) = &reading
                && !links
                    .iter()
                    .any(|l| l.kind == item.kind && l.identity == item.identity)
                && let Some(link) = self
                    .store
                    .link(&self.mailbox.id, item.kind, &item.identity)?
            {
                links.push(link);
            }
            pre_read.insert(entry.href.clone(), reading);
        }
        let mut all_links = 0;
        for kind in which.kinds() {
            all_links += self.store.link_count(&self.mailbox.id, *kind)? as usize;
        }
        self.status.items = self.listed.len() as u64;
        self.found.looked_at = names.clone();
        self.found.looked_at.extend(
            links
                .iter()
                .map(|l| collection::href(&l.location).to_owned()),
        );
        // The files this pass decides about: the named ones and those its links point at.
        let hrefs: BTreeSet<String> = self
            .found
            .looked_at
            .iter()
            .filter(|href| self.listed.contains(*href))
            .cloned()
            .collect();
        let mut view = CollectionView {
            accept_empty: self.options.accept_empty,
            accept_deletes: self.options.accept_deletes,
            other_links: all_links.saturating_sub(links.len()),
            other_files: self.listed.len() - hrefs.len(),
            hrefs,
            ..CollectionView::default()
        };
        self.read_changed(&entries, &links, pre_read, &mut view, report)
            .await?;
        let (crm, skipped) = self.crm_side(&links, &view, report)?;
        let links = sit_out(links, &skipped, &mut view);
        Ok(Observed {
            view,
            links,
            crm,
            created: Vec::new(),
        })
    }

    /// The second round: the items just linked to rows that already had their UID, read
    /// again with their rows, so that their differences are merged in this pass. The view
    /// lists every file, so that no other link looks deleted.
    pub(super) async fn observe_linked(
        &mut self,
        just_linked: &[(ItemKind, ItemIdentity)],
        (hrefs, other_files): (BTreeSet<String>, usize),
        report: &mut PassReport,
    ) -> Result<Observed, PassError> {
        let links: Vec<SyncLink> = self
            .store
            .links_of(&self.mailbox.id, self.which.kinds())?
            .into_iter()
            .filter(|l| just_linked.contains(&(l.kind, l.identity.clone())))
            .collect();
        let mut view = CollectionView {
            accept_empty: self.options.accept_empty,
            accept_deletes: self.options.accept_deletes,
            hrefs,
            other_files,
            ..CollectionView::default()
        };
        for link in &links {
            let href = collection::href(&link.location);
            match self.read_file(href).await {
                Ok(Some((item, etag))) => view.changed.push(observed(self.which, href, item, etag)),
                // Gone or unreadable since the first round: the next pass sees it.
                Ok(None) | Err(_) => {
                    view.unreadable.insert(href.to_owned());
                }
            }
        }
        let (crm, skipped) = self.crm_side(&links, &view, report)?;
        let links = sit_out(links, &skipped, &mut view);
        Ok(Observed {
            view,
            links,
            crm,
            created: Vec::new(),
        })
    }

    /// Reads a file: `None` when it went away since the listing.
    async fn read_file(&mut self, href: &str) -> Reading {
        let read = self.source.read(href).await;
        self.reading(read)
    }

    /// A file as read, into what the pass makes of it.
    fn reading(&self, read: Result<(String, String), CollectionError>) -> Reading {
        match read {
            Err(CollectionError::Missing(_)) => Ok(None),
            Err(error) => Err(NotRead::Unreadable(error.to_string())),
            Ok((text, etag)) => read::read_item(self.which, &text, &self.mailbox.tracking.category)
                .map(|item| Some((item, etag))),
        }
    }

    /// A tracked file without a UID gets one (written only if the file did not change since
    /// it was read), and is read again: its UID is its identity from now on.
    async fn give_uid(&mut self, href: &str) -> Result<Option<(Read, String)>, String> {
        let (text, etag) = match self.source.read(href).await {
            Ok(found) => found,
            Err(CollectionError::Missing(_)) => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        // Read again just now: only a file that is still tracked and still has no UID gets
        // one (the person may have untracked it, a client may have given it a UID).
        let category = &self.mailbox.tracking.category;
        if !matches!(
            read::read_item(self.which, &text, category),
            Err(NotRead::NoUid { tracked: true })
        ) {
            return Ok(None);
        }
        let given = read::with_new_uid(self.which, &text)?;
        let etag = match self.source.update(href, &given, &etag).await {
            Ok(etag) => etag,
            // Changed meanwhile: the next pass reads it again.
            Err(CollectionError::Changed { .. }) => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        tracing::info!(mailbox = %self.mailbox.id, file = %href, "gave a tracked item without a UID one");
        match read::read_item(self.which, &given, &self.mailbox.tracking.category) {
            Ok(item) => Ok(Some((item, etag))),
            Err(_) => Err("no UID even after one was given".into()),
        }
    }

    /// Reads every listed file whose etag its link does not already hold (and that is not an
    /// untracked file remembered at this etag) into the view, or takes it from `pre_read`;
    /// returns what the collection holds. Unreadable files are counted failed and sit the
    /// pass out. Files are read [`crmsync_dav::MULTIGET_BATCH`] at a time (one multiget on a
    /// server), so a first import holds one batch in memory, not the collection.
    async fn read_changed(
        &mut self,
        entries: &[Entry],
        links: &[SyncLink],
        mut pre_read: HashMap<String, Reading>,
        view: &mut CollectionView,
        report: &mut PassReport,
    ) -> Result<BTreeSet<(ItemKind, ItemIdentity)>, PassError> {
        let which = self.which;
        let unchanged: BTreeSet<(&str, &str)> = links
            .iter()
            .filter_map(|l| {
                let version = l.item_version.as_ref()?;
                Some((collection::href(&l.location), version.0.as_str()))
            })
            .collect();
        let listed = &self.listed;
        let linked: BTreeSet<(ItemKind, &ItemIdentity)> =
            links.iter().map(|l| (l.kind, &l.identity)).collect();
        // A UID belongs to the file its link points at while that file is listed: another file
        // with the same UID (a copy) is a duplicate, not a rename.
        let mut seen_uids: BTreeMap<ItemIdentity, String> = links
            .iter()
            .map(|l| (l.identity.clone(), collection::href(&l.location).to_owned()))
            .filter(|(_, href)| listed.contains(href))
            .collect();
        let mut present = BTreeSet::new();
        let mut unreadable: Vec<(String, String)> = Vec::new();
        for chunk in entries.chunks(crmsync_dav::MULTIGET_BATCH) {
            // The batch's items to read: neither linked at their etag nor remembered
            // untracked at it.
            let mut pending = Vec::new();
            for entry in chunk {
                view.hrefs.insert(entry.href.clone());
                if unchanged.contains(&(entry.href.as_str(), entry.etag.as_str())) {
                    continue;
                }
                if let Some((etag, kind, identity)) =
                    self.memory.untracked.get(&(which, entry.href.clone()))
                    && *etag == entry.etag
                {
                    present.insert((*kind, identity.clone()));
                    continue;
                }
                pending.push(entry);
            }
            let to_read: Vec<String> = pending
                .iter()
                .filter(|entry| !pre_read.contains_key(&entry.href))
                .map(|entry| entry.href.clone())
                .collect();
            if !to_read.is_empty() {
                let read = match self.source.read_many(&to_read).await {
                    Ok(read) => read,
                    Err(error) => return Err(self.collection_error(error)),
                };
                for (href, result) in read {
                    let reading = self.reading(result);
                    pre_read.insert(href, reading);
                }
            }
            for entry in pending {
                let key = (which, entry.href.clone());
                let reading = pre_read.remove(&entry.href).unwrap_or(Ok(None));
                let (item, etag) = match reading {
                    Ok(Some(found)) => found,
                    Ok(None) => continue,
                    Err(NotRead::Unreadable(message)) => {
                        unreadable.push((entry.href.clone(), message));
                        continue;
                    }
                    Err(NotRead::NoUid { tracked: false }) => continue,
                    Err(NotRead::NoUid { tracked: true }) if self.options.dry_run => {
                        report.planned.push(format!(
                            "{} {}: give it a UID, then track it",
                            which.as_str(),
                            entry.href
                        ));
                        continue;
                    }
                    Err(NotRead::NoUid { tracked: true }) => match self.give_uid(&entry.href).await
                    {
                        Ok(Some(found)) => found,
                        Ok(None) => continue,
                        Err(message) => {
                            unreadable.push((entry.href.clone(), message));
                            continue;
                        }
                    },
                    Err(NotRead::NotAnItem(why)) => {
                        self.found.skipped.insert(entry.href.clone());
                        tracing::debug!(mailbox = %self.mailbox.id, file = %entry.href, "skipped: {why}");
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
                // Remembered only when untracked and unlinked: an untracked file whose link is
                // still to go is read again until its untrack has been carried out.
                if item.tracked || linked.contains(&(item.kind, &item.identity)) {
                    self.memory.untracked.remove(&key);
                } else {
                    self.memory
                        .untracked
                        .insert(key, (etag.clone(), item.kind, item.identity.clone()));
                }
                view.changed.push(observed(which, &entry.href, item, etag));
            }
        }
        for (href, message) in unreadable {
            self.item_failed(report, href.clone(), format!("skipped: {message}"));
            view.unreadable.insert(href);
        }
        Ok(present)
    }

    /// The CRM side of each link: the fields of rows that changed since the link (or whose
    /// file did), else the CRM's side of the base. A row that cannot be read is skipped.
    fn crm_side(
        &mut self,
        links: &[SyncLink],
        view: &CollectionView,
        report: &mut PassReport,
    ) -> Result<(BTreeMap<CrmRef, CrmItem>, BTreeSet<CrmRef>), PassError> {
        let linked = match self.extent {
            Extent::Whole => self.store.linked_items(&self.mailbox.id)?,
            Extent::Files(_) => {
                let mut rows = HashMap::new();
                for link in links {
                    if let Some(row) = self.store.linked_item(link.crm)? {
                        rows.insert(link.crm, row);
                    }
                }
                rows
            }
        };
        let observed: BTreeSet<(ItemKind, &ItemIdentity)> =
            view.changed.iter().map(|o| (o.kind, &o.identity)).collect();
        let owner = self.mailbox.owner.key();
        let mut crm = BTreeMap::new();
        let mut skipped = BTreeSet::new();
        for link in links {
            let Some(row) = linked.get(&link.crm) else {
                continue;
            };
            let fields = if Some(row.version) == link.crm_version
                && !observed.contains(&(link.kind, &link.identity))
            {
                collection::crm_side(&link.base)
            } else {
                match self.store.item_fields(link.crm) {
                    Ok(Some(fields)) => fields,
                    Ok(None) => continue,
                    // A row another program wrote against the schema (a priority that is no
                    // number, say): this item is skipped and counted, the rest goes on.
                    Err(error) => {
                        let href = collection::href(&link.location).to_owned();
                        self.item_failed(report, href, format!("skipped: CRM store: {error}"));
                        skipped.insert(link.crm);
                        continue;
                    }
                }
            };
            let owned = row
                .owner
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case(&owner));
            crm.insert(
                link.crm,
                CrmItem::Present {
                    fields,
                    version: row.version,
                    owned_by_mailbox_owner: owned,
                },
            );
        }
        Ok((crm, skipped))
    }

    /// The rows the CRM created for the owner that belong in this collection and have no link
    /// from the mailbox yet; never a second file for a UID the collection already holds.
    fn created(
        &mut self,
        present: &BTreeSet<(ItemKind, ItemIdentity)>,
    ) -> Result<Vec<CrmCreated>, PassError> {
        if self.config.from_crm == FromCrm::None {
            return Ok(Vec::new());
        }
        let rows = self.store.created_items(
            &self.mailbox.id,
            &self.mailbox.owner,
            self.which == Which::Calendar,
            self.which == Which::Contacts,
        )?;
        Ok(rows
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
            .filter(|row| !present.contains(&(row.kind, row.identity.clone())))
            .collect())
    }
}

fn observed(which: Which, href: &str, item: Read, etag: String) -> ObservedItem {
    ObservedItem {
        kind: item.kind,
        identity: item.identity,
        location: read::location(which, href),
        etag,
        tracked: item.tracked,
        fields: item.fields,
    }
}

/// A link whose CRM row could not be read sits this pass out: its row must not look deleted,
/// nor its file new.
fn sit_out(
    links: Vec<SyncLink>,
    skipped: &BTreeSet<CrmRef>,
    view: &mut CollectionView,
) -> Vec<SyncLink> {
    let (skipped_links, links): (Vec<SyncLink>, Vec<SyncLink>) =
        links.into_iter().partition(|l| skipped.contains(&l.crm));
    for link in &skipped_links {
        view.changed
            .retain(|o| (o.kind, &o.identity) != (link.kind, &link.identity));
        view.unreadable
            .insert(collection::href(&link.location).to_owned());
    }
    links
}
