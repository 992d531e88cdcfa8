//! The sync state a person sees on a message (the seed's "is it synced yet?"): the
//! `synced_keyword` (default `crm-synced`) once its CRM copy exists, the `failed_keyword`
//! (default `crm-failed`) while it cannot be synced, neither once it is untracked. Mail clients
//! show them as tags. They are written best effort: a failure to write one is a warning, never
//! the failure of the item, and they never count as a tracking signal. The marks of a pass are
//! collected and written at its end, one `UID STORE` per folder and change with a UID set, not
//! one round trip per message (a first import of thousands of messages marks them all).

use std::collections::BTreeMap;

use crmsync_core::item::ItemLocation;
use crmsync_store::CrmStore;

use super::{EmailPass, imap_location};
use crate::mail::MailStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    Synced,
    Failed,
    /// Neither: the message is no longer tracked.
    Cleared,
}

impl<S: CrmStore, M: MailStore> EmailPass<'_, S, M> {
    /// Queues `mark` for the message at `location`, whose keywords are `keywords` now, when
    /// that changes anything; [`Self::flush_marks`] writes them. A later mark of the same
    /// message in the pass replaces an earlier one (the outcome of applying beats the state
    /// the pass found).
    pub(super) fn mark(&mut self, location: &ItemLocation, keywords: &[String], mark: Mark) {
        let tracking = &self.mailbox.tracking;
        let has = |keyword: &str| {
            !keyword.is_empty() && keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword))
        };
        let (wanted, unwanted): (&[&String], &[&String]) = match mark {
            Mark::Synced => (&[&tracking.synced_keyword], &[&tracking.failed_keyword]),
            Mark::Failed => (&[&tracking.failed_keyword], &[&tracking.synced_keyword]),
            Mark::Cleared => (&[], &[&tracking.synced_keyword, &tracking.failed_keyword]),
        };
        let add: Vec<String> = wanted
            .iter()
            .filter(|k| !k.is_empty() && !has(k))
            .map(|k| (*k).clone())
            .collect();
        let remove: Vec<String> = unwanted
            .iter()
            .filter(|k| has(k))
            .map(|k| (*k).clone())
            .collect();
        let (folder, uid) = imap_location(location);
        let key = (folder.to_owned(), uid);
        if add.is_empty() && remove.is_empty() {
            self.marks.remove(&key);
        } else {
            self.marks.insert(key, (add, remove));
        }
    }

    /// Writes the queued marks: one `UID STORE` per folder and change.
    pub(super) async fn flush_marks(&mut self) {
        let mut batches: BTreeMap<(String, Vec<String>, Vec<String>), Vec<u32>> = BTreeMap::new();
        for ((folder, uid), (add, remove)) in std::mem::take(&mut self.marks) {
            batches.entry((folder, add, remove)).or_default().push(uid);
        }
        for ((folder, add, remove), uids) in batches {
            if let Err(error) = self
                .mail
                .store_keywords(&folder, &uids, &add, &remove)
                .await
            {
                self.report.warn(format!(
                    "{folder}: the sync-state keywords of {} messages could not be written: {error}",
                    uids.len()
                ));
            }
        }
    }
}
