//! The email part of a pass over one mailbox: [`EmailPass`], read top to bottom as
//! observe (`observe.rs`: the links with their CRM rows, the folder scans) →
//! [`crmsync_core::email::reconcile`] → apply (`apply.rs`).
//!
//! The effects are applied in the order the core gives them, which is the order that survives
//! a crash: a CRM copy and its link in one transaction; a keyword written to IMAP before the
//! link records it (and, for a rewrite in two steps, recorded as begun before the first); a
//! link dropped before its activity is deleted. A folder's sync markers are saved only when
//! every effect in it succeeded and the connection still answers, so a failure is retried on
//! the next pass instead of being skipped.

mod apply;
mod auto;
mod marks;

use marks::Mark;

pub(crate) use auto::{crm_addresses, threads};
mod observe;
mod plan;

use std::collections::{BTreeMap, HashSet};

use crmsync_config::MailboxConfig;
use crmsync_core::email::{self, MailboxView, TrackingRules};
use crmsync_core::item::ItemLocation;
use crmsync_imap::FolderMarkers;
use crmsync_store::{CrmStore, FailedItem, SyncState};

use crate::error::PassError;
use crate::mail::MailStore;
use crate::pass::PassOptions;
use crate::report::{EMAIL_SCOPE, PassReport};

/// One pass over a mailbox's IMAP folders, holding what every phase needs.
pub struct EmailPass<'a, S, M> {
    store: &'a mut S,
    mail: &'a mut M,
    mailbox: &'a MailboxConfig,
    rules: TrackingRules,
    options: PassOptions,
    report: &'a mut PassReport,
    /// Folders where an item failed: their markers are not saved, so the next pass sees
    /// those items again.
    failed_folders: HashSet<String>,
    /// Set when the store could not serve at all: the pass stops at the next effect.
    store_down: Option<String>,
    /// Messages whose header could not be read, with their keywords and their sync-state
    /// mark: failed when tracked, none when not.
    malformed: Vec<(ItemLocation, Vec<String>, Mark)>,
    /// Sync-state marks to write at the end of the pass: (folder, UID) → (add, remove).
    marks: BTreeMap<(String, u32), (Vec<String>, Vec<String>)>,
}

impl<'a, S: CrmStore, M: MailStore> EmailPass<'a, S, M> {
    pub fn new(
        store: &'a mut S,
        mail: &'a mut M,
        mailbox: &'a MailboxConfig,
        options: PassOptions,
        report: &'a mut PassReport,
    ) -> EmailPass<'a, S, M> {
        EmailPass {
            store,
            mail,
            mailbox,
            rules: TrackingRules {
                keyword: mailbox.tracking.keyword.clone(),
                folders: mailbox.tracking.folders.clone(),
            },
            options,
            report,
            failed_folders: HashSet::new(),
            store_down: None,
            malformed: Vec::new(),
            marks: BTreeMap::new(),
        }
    }

    /// Observe, decide, apply, save the markers. An `Err` is a failure of the whole pass (the
    /// connection lost, the store unusable); a failure of one item is counted in the report
    /// and the pass goes on.
    pub async fn run(mut self) -> Result<(), PassError> {
        let counters_before = self.mail.counters();
        let result = self.observe_decide_apply().await;
        self.report.imap = self.mail.counters().since(counters_before);
        result
    }

    async fn observe_decide_apply(&mut self) -> Result<(), PassError> {
        let linked = self.linked()?;
        let failed = self.store.failed_items(Some(&self.mailbox.id), "")?;
        let (mut view, markers) = self.observe(&linked, &failed).await?;
        let linked_keys = linked
            .iter()
            .map(|(link, _)| link.identity.storage_key())
            .collect();
        view.auto = self.auto_view(&view, &markers, &linked_keys)?;
        let effects = email::reconcile(&self.rules, self.mailbox.conflict_policy, &view, &linked);
        if self.options.dry_run {
            let planned = effects
                .iter()
                .map(|effect| plan::describe(effect, &self.rules));
            self.report.planned.extend(planned);
            return Ok(());
        }
        // Every message this pass looked at, for the failed-items list.
        let seen: HashSet<(String, u32)> = view
            .changed
            .iter()
            .map(|o| &o.location)
            .chain(self.malformed.iter().map(|(location, _, _)| location))
            .map(|location| {
                let (folder, uid) = imap_location(location);
                (folder.to_owned(), uid)
            })
            .collect();
        for (location, keywords, mark) in std::mem::take(&mut self.malformed) {
            self.mark(&location, &keywords, mark);
        }
        // The marks follow the state the pass found, so one lost (a kill before the end of
        // the pass that wrote it, a person removing it) comes back: a linked message is
        // synced, a failed one untracked before it ever had a link is failing no more.
        // Applying below may replace a mark with its outcome (failed, cleared).
        for observed in &view.changed {
            let linked = linked
                .iter()
                .any(|(link, _)| link.identity == observed.identity);
            let tracked = self
                .rules
                .signal(folder_name(&observed.location), &observed.keywords)
                .tracked;
            if linked && tracked {
                self.mark(&observed.location, &observed.keywords, Mark::Synced);
            } else if !linked && !tracked {
                self.mark(&observed.location, &observed.keywords, Mark::Cleared);
            }
        }
        let applied = self.apply(effects, linked, &view.changed).await;
        self.flush_marks().await;
        applied?;
        self.resolve_failures(failed, &view, &seen);
        self.save_markers(markers).await
    }

    /// The entries of the failed-items list this pass settled: messages of a folder it
    /// scanned that it looked at without a failure, or that are gone from the folder.
    fn resolve_failures(
        &mut self,
        listed: Vec<FailedItem>,
        view: &MailboxView,
        seen: &HashSet<(String, u32)>,
    ) {
        for entry in listed {
            let failure = entry.failure;
            if failure.scope != EMAIL_SCOPE {
                continue;
            }
            let Some((folder, uid)) = failure.item.rsplit_once(':') else {
                continue;
            };
            let (Some(scanned), Ok(uid)) = (
                view.folders.iter().find(|f| f.folder == folder),
                uid.parse::<u32>(),
            ) else {
                continue;
            };
            let failing_now = self
                .report
                .failures
                .iter()
                .any(|f| f.scope == EMAIL_SCOPE && f.item == failure.item);
            let settled =
                !scanned.present.contains(uid) || seen.contains(&(folder.to_owned(), uid));
            if settled && !failing_now {
                self.report.resolved.push((failure.scope, failure.item));
            }
        }
    }

    /// Saves each folder's markers, except where an item failed or nothing moved (a pass that
    /// found nothing to do writes nothing: no transaction, no fsync). A FETCH that the
    /// connection cut short ends like a complete one in the IMAP library, so the markers are
    /// saved only when the connection still answers after the pass's last command.
    async fn save_markers(&mut self, scanned: Vec<ScannedFolder>) -> Result<(), PassError> {
        let changed: Vec<(String, SyncState)> = scanned
            .into_iter()
            .filter(|folder| !self.failed_folders.contains(&folder.name))
            .filter_map(|folder| {
                let state = SyncState {
                    uid_validity: Some(folder.markers.uid_validity),
                    highest_modseq: folder.markers.highest_modseq,
                    sync_token: None,
                    last_full_scan: folder.last_full_scan,
                    auto_from_uid: folder.auto_from_uid,
                    auto_policy: folder.auto_policy,
                };
                (folder.saved.as_ref() != Some(&state)).then_some((folder.name, state))
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        if !self.mail.is_alive().await {
            return Err(PassError::ConnectionLost);
        }
        for (folder, state) in changed {
            self.store
                .put_sync_state(&self.mailbox.id, &folder, &state)?;
        }
        Ok(())
    }
}

/// Where one folder's scan left off, to be saved once the pass succeeded.
struct ScannedFolder {
    name: String,
    markers: FolderMarkers,
    /// This scan's time when it read the whole folder, else the last full scan's.
    last_full_scan: Option<String>,
    /// Where automatic tracking starts in this folder, and for which policy.
    auto_from_uid: Option<u32>,
    auto_policy: Option<String>,
    /// What the store held for the folder when the pass began.
    saved: Option<SyncState>,
}

fn folder_name(location: &ItemLocation) -> &str {
    imap_location(location).0
}

/// `folder:UID` of a message, for messages and logs.
fn location_text(location: &ItemLocation) -> String {
    let (folder, uid) = imap_location(location);
    format!("{folder}:{uid}")
}

fn imap_location(location: &ItemLocation) -> (&str, u32) {
    match location {
        ItemLocation::Imap { folder, uid, .. } => (folder, *uid),
        ItemLocation::Collection { href, .. } => (href, 0),
    }
}
