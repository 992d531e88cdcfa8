//! The sync state a person sees on a message (the seed's "is it synced yet?"): the
//! `synced_keyword` (default `crm-synced`) once its CRM copy exists, the `failed_keyword`
//! (default `crm-failed`) while it cannot be synced, neither once it is untracked. Mail clients
//! show them as tags. They are written best effort: a failure to write one is a warning, never
//! the failure of the item, and they never count as a tracking signal.

use crmsync_core::item::ItemLocation;
use crmsync_store::CrmStore;

use super::{EmailPass, imap_location, location_text};
use crate::mail::MailStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    Synced,
    Failed,
    /// Neither: the message is no longer tracked.
    Cleared,
}

impl<S: CrmStore, M: MailStore> EmailPass<'_, S, M> {
    /// Writes `mark` on the message at `location`, whose keywords are `keywords` now, when
    /// that changes anything.
    pub(super) async fn mark(&mut self, location: &ItemLocation, keywords: &[String], mark: Mark) {
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
        if add.is_empty() && remove.is_empty() {
            return;
        }
        let (folder, uid) = imap_location(location);
        if let Err(error) = self.mail.store_keywords(folder, uid, &add, &remove).await {
            self.report.warn(format!(
                "{}: the sync-state keyword could not be written: {error}",
                location_text(location)
            ));
        }
    }
}
