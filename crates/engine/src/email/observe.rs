//! Observe: the mailbox's email links with the state of their CRM rows, and a scan of every
//! watched folder (only what changed since the saved markers, when the server can say).

use std::collections::HashSet;
use std::sync::OnceLock;

use crmsync_config::TrackingConfig;
use crmsync_core::auto::{AutoPolicy, MessageMeta};
use crmsync_core::email::{self, CrmState, FolderView, MailboxView, Observed, TrackingRules};
use crmsync_core::item::{ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, SyncLink};
use crmsync_imap::{
    FetchedHeader, FolderMarkers, FolderScan, ImapError, Summarized, Wanted, message,
};
use crmsync_store::{CrmStore, FailedItem, SyncState};

use super::{EmailPass, Mark, ScannedFolder};
use crate::error::PassError;
use crate::mail::MailStore;
use crate::report::EMAIL_SCOPE;

impl<S: CrmStore, M: MailStore> EmailPass<'_, S, M> {
    /// The email links of the mailbox, each with its CRM row's regarding and owner (or gone).
    pub(super) fn linked(&mut self) -> Result<Vec<(SyncLink, CrmState)>, PassError> {
        let links = self.store.links_of(&self.mailbox.id, &[ItemKind::Email])?;
        let activities = self.store.linked_activities(&self.mailbox.id)?;
        let owner = self.mailbox.owner.key();
        Ok(links
            .into_iter()
            .map(|link| {
                let crm = match link.crm {
                    CrmRef::Activity(id) => match activities.get(&id) {
                        Some(activity) => CrmState::Present {
                            regarding: activity.regarding.clone(),
                            owned_by_mailbox_owner: activity.owner.eq_ignore_ascii_case(&owner),
                        },
                        None => CrmState::Deleted,
                    },
                    CrmRef::Record(_) => CrmState::Deleted,
                };
                (link, crm)
            })
            .collect())
    }

    /// Scans every watched folder. A missing folder fails the mailbox (permanently) but not
    /// the other folders; any other IMAP error ends the pass. A full scan reads the headers
    /// of the messages the pass may act on ([`wants_header`], and those at a link's place or
    /// failed); when a link's message is then not where the link says, the headers it left
    /// out are read too, since that message may be one of them (moved without its keyword).
    pub(super) async fn observe(
        &mut self,
        linked: &[(SyncLink, CrmState)],
        failed: &[FailedItem],
    ) -> Result<(MailboxView, Vec<ScannedFolder>), PassError> {
        let mut view = MailboxView {
            accept_empty: self.options.accept_empty,
            accept_deletes: self.options.accept_deletes,
            ..MailboxView::default()
        };
        let mut scanned = Vec::new();
        let mut withheld = Vec::new();
        let imap = self.mailbox.imap.as_ref().expect("an email pass has IMAP");
        // The folder the connection holds first: on maildir, Dovecot rereads a folder's whole
        // UID list when it next syncs it after the session looked at another folder (the
        // STATUS of an unchanged one), and that folder is the one a change is in, as a rule.
        let held = self.mail.selected_folder().map(str::to_owned);
        let mut folders: Vec<&String> = imap.folders.iter().collect();
        folders.sort_by_key(|folder| Some(*folder) != held.as_ref());
        for folder in folders {
            let saved = self.store.sync_state(&self.mailbox.id, folder)?;
            let markers = saved.as_ref().and_then(|state| {
                state.uid_validity.map(|uid_validity| FolderMarkers {
                    uid_validity,
                    highest_modseq: state.highest_modseq,
                })
            });
            // A backfill reads every message's header, not only what changed.
            let markers = markers.filter(|_| self.options.backfill_since.is_none());
            let (rules, tracking) = (&self.rules, &self.mailbox.tracking);
            let every = tracking.auto != AutoPolicy::None
                || self.options.backfill_since.is_some()
                || self.rules.folders.contains_key(folder);
            // Built on a full scan's first question only: an incremental one asks none.
            let known_here = OnceLock::new();
            let wants = |uid_validity: u32, uid: u32, keywords: &[String]| {
                let (linked_here, failed_here) =
                    known_here.get_or_init(|| places_in(folder, linked, failed));
                linked_here.contains(&(uid_validity, uid))
                    || failed_here.contains(&uid)
                    || wants_header(rules, tracking, folder, keywords)
            };
            let wanted = if every {
                Wanted::All
            } else {
                Wanted::Some(&wants)
            };
            let mut scan = match self.mail.scan_folder(folder, markers, wanted).await {
                Ok(scan) => scan,
                Err(error @ ImapError::FolderMissing(_)) => {
                    self.report.permanent = true;
                    self.report.fail(error.to_string());
                    continue;
                }
                // The server refused this folder for a reason of its own (`NO [NOPERM]`,
                // `[SERVERBUG]`): that folder fails, the others go on.
                Err(error @ ImapError::No(_)) => {
                    self.report.fail(format!("folder {folder:?}: {error}"));
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let changed = summarize_all(std::mem::take(&mut scan.changed));
            self.observe_messages(folder, scan.uid_validity, changed, &mut view);
            view.folders.push(FolderView {
                folder: folder.clone(),
                uid_validity: scan.uid_validity,
                present: scan.present.clone(),
            });
            if !scan.withheld.is_empty() {
                let uids = std::mem::take(&mut scan.withheld);
                withheld.push((folder.clone(), scan.uid_validity, uids));
            }
            self.report.full_scan |= scan.full;
            scanned.push(ScannedFolder {
                name: folder.clone(),
                markers: FolderMarkers {
                    uid_validity: scan.uid_validity,
                    highest_modseq: scan.highest_modseq,
                },
                last_full_scan: if scan.full {
                    Some(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string())
                } else {
                    saved
                        .as_ref()
                        .and_then(|state| state.last_full_scan.clone())
                },
                auto_from_uid: auto_from_uid(self.mailbox.tracking.auto, saved.as_ref(), &scan),
                auto_policy: (self.mailbox.tracking.auto != AutoPolicy::None)
                    .then(|| self.mailbox.tracking.auto.as_str().to_owned()),
                saved,
            });
        }
        if !withheld.is_empty() && email::links_astray(&view, linked) {
            for (folder, uid_validity, uids) in withheld {
                // A failure here ends the pass: without these identities a moved message
                // would read as gone.
                let fetched = self
                    .mail
                    .fetch_headers_of(&folder, uid_validity, &uids)
                    .await?;
                self.observe_messages(&folder, uid_validity, summarize_all(fetched), &mut view);
            }
        }
        // What the core reads in the configured order of the folders, whichever was held.
        let rank = |folder: &str| imap.folders.iter().position(|f| f == folder);
        view.folders.sort_by_key(|f| rank(&f.folder));
        view.changed
            .sort_by_key(|observed| match &observed.location {
                ItemLocation::Imap { folder, .. } => rank(folder),
                _ => None,
            });
        Ok((view, scanned))
    }

    /// One folder's scanned messages into the view: each with its identity (from its header)
    /// and keywords. A tracked message whose header cannot be read fails alone; untracked
    /// garbage is none of crmsync's business.
    fn observe_messages(
        &mut self,
        folder: &str,
        uid_validity: u32,
        changed: Vec<(FetchedHeader, Summarized)>,
        view: &mut MailboxView,
    ) {
        for (fetched, summary) in changed {
            let location = ItemLocation::Imap {
                folder: folder.to_owned(),
                uid_validity,
                uid: fetched.uid,
            };
            match summary {
                Ok(summary) => view.changed.push(Observed {
                    meta: MessageMeta {
                        size: fetched.size,
                        ..summary.meta
                    },
                    identity: summary.identity,
                    location,
                    keywords: fetched.keywords,
                }),
                Err(error) if self.rules.signal(folder, &fetched.keywords).tracked => {
                    self.report
                        .item_failed(format!("{folder}:{}", fetched.uid), error.to_string());
                    self.failed_folders.insert(folder.to_owned());
                    self.malformed
                        .push((location, fetched.keywords, Mark::Failed));
                }
                // Untracked now: a failed mark left from when it was tracked goes.
                Err(_) => self
                    .malformed
                    .push((location, fetched.keywords, Mark::Cleared)),
            }
        }
    }
}

/// The places in `folder` that links point at (UIDVALIDITY, UID), and the UIDs of its
/// failed items.
fn places_in(
    folder: &str,
    linked: &[(SyncLink, CrmState)],
    failed: &[FailedItem],
) -> (HashSet<(u32, u32)>, HashSet<u32>) {
    let linked_here = linked
        .iter()
        .filter_map(|(link, _)| match &link.location {
            ItemLocation::Imap {
                folder: at,
                uid_validity,
                uid,
            } if at == folder => Some((*uid_validity, *uid)),
            _ => None,
        })
        .collect();
    let failed_here = failed
        .iter()
        .filter(|entry| entry.failure.scope == EMAIL_SCOPE)
        .filter_map(|entry| entry.failure.item.rsplit_once(':'))
        .filter(|(at, _)| *at == folder)
        .filter_map(|(_, uid)| uid.parse().ok())
        .collect();
    (linked_here, failed_here)
}

/// Whether a full scan reads the header of a message with these keywords in `folder`,
/// whatever its UID: one with a tracking signal, or a sync-state mark crmsync wrote (to be
/// kept or cleared). The pass adds the messages links point at and failed items.
fn wants_header(
    rules: &TrackingRules,
    tracking: &TrackingConfig,
    folder: &str,
    keywords: &[String],
) -> bool {
    let marked =
        |mark: &str| !mark.is_empty() && keywords.iter().any(|k| k.eq_ignore_ascii_case(mark));
    marked(&tracking.synced_keyword)
        || marked(&tracking.failed_keyword)
        || rules.signal(folder, keywords).tracked
}

/// The headers of a scan, each beside its message, in order: those the scan read as they
/// arrived ([`FetchedHeader::summary`]), the others (a small scan's) read here.
fn summarize_all(changed: Vec<FetchedHeader>) -> Vec<(FetchedHeader, Summarized)> {
    changed
        .into_iter()
        .map(|mut fetched| {
            let summary = fetched
                .summary
                .take()
                .unwrap_or_else(|| message::summarize(&fetched.header));
            (fetched, summary)
        })
        .collect()
}

/// The first UID automatic tracking takes in a folder: the one recorded when the mailbox's
/// policy was first seen, or, for a policy seen now for the first time, the folder's UIDNEXT
/// (mail already there is left alone). `None` without a policy.
fn auto_from_uid(policy: AutoPolicy, saved: Option<&SyncState>, scan: &FolderScan) -> Option<u32> {
    if policy == AutoPolicy::None {
        return None;
    }
    let recorded = saved
        .filter(|state| state.auto_policy.as_deref() == Some(policy.as_str()))
        .and_then(|state| state.auto_from_uid);
    recorded.or(scan.uid_next).or_else(|| {
        Some(
            scan.present
                .last_listed()
                .map_or(1, |uid| uid.saturating_add(1)),
        )
    })
}
