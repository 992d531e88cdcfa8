//! Observe, for automatic tracking: what the CRM knows about this pass's candidates (messages
//! nobody tracked by hand, arrived after the policy was switched on): which of their addresses
//! resolve to a CRM contact, lead or account, which tracked email they reply to, and which
//! messages a person untracked before. Only their headers were read; never a body.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_core::auto::{AutoPolicy, NeverEntry, TrackedThread};
use crmsync_core::email::{AutoView, MailboxView, Observed};
use crmsync_core::item::ItemLocation;
use crmsync_core::model::{ActivityId, EmailAddress};
use crmsync_core::resolve::{self, Resolution};
use crmsync_core::token;
use crmsync_store::{CrmStore, StoreError};

use super::{EmailPass, ScannedFolder};
use crate::error::PassError;
use crate::mail::MailStore;

/// The entities whose records make a message worth tracking under `crm-records`.
const CRM_ENTITIES: [&str; 3] = ["contact", "lead", "account"];

impl<S: CrmStore, M: MailStore> EmailPass<'_, S, M> {
    /// The automatic tracking part of the view, when the mailbox has a policy.
    pub(super) fn auto_view(
        &mut self,
        view: &MailboxView,
        scanned: &[ScannedFolder],
        linked: &BTreeSet<String>,
    ) -> Result<Option<AutoView>, PassError> {
        let policy = self.mailbox.tracking.auto;
        if policy == AutoPolicy::None {
            return Ok(None);
        }
        // The config's list and the store's (`crmsync never add`), which changes without a
        // reload.
        let mut never = self.mailbox.tracking.never.clone();
        for (_, entry) in self.store.never_entries(Some(&self.mailbox.id))? {
            if !never.contains(&entry) {
                never.push(entry);
            }
        }
        let mut auto = AutoView {
            policy,
            never,
            owner: self.mailbox.owner.key(),
            crm_addresses: BTreeSet::new(),
            threads: BTreeMap::new(),
            tombstones: BTreeSet::new(),
            from_uid: scanned
                .iter()
                .filter_map(|folder| Some((folder.name.clone(), folder.auto_from_uid?)))
                .collect(),
            backfill_since: self.options.backfill_since,
            recent: BTreeMap::new(),
        };
        let unsignalled: Vec<&Observed> = view
            .changed
            .iter()
            .filter(|observed| !linked.contains(&observed.identity.storage_key()))
            .filter(|observed| {
                !self
                    .rules
                    .signal(folder_of(observed), &observed.keywords)
                    .tracked
            })
            .collect();
        if unsignalled.is_empty() {
            return Ok(Some(auto));
        }
        auto.tombstones = self.store.tombstones(&self.mailbox.id)?;
        let candidates: Vec<&Observed> = unsignalled
            .into_iter()
            .filter(|observed| auto.considers(observed))
            .collect();
        auto.crm_addresses = crm_addresses(
            self.store,
            candidates
                .iter()
                .flat_map(|observed| observed.meta.addresses()),
            &auto.never,
        )?;
        let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let loop_keys: BTreeSet<(String, String)> = candidates
            .iter()
            .filter_map(|observed| AutoView::loop_key(&observed.meta))
            .collect();
        let loop_keys: Vec<(String, String)> = loop_keys.into_iter().collect();
        auto.recent = self.store.recent_emails(&loop_keys, &hour_ago)?;
        let replied_to: BTreeSet<&String> = candidates
            .iter()
            .flat_map(|observed| {
                observed
                    .meta
                    .in_reply_to
                    .iter()
                    .chain(&observed.meta.references)
            })
            .collect();
        let replied_to: Vec<String> = replied_to.into_iter().cloned().collect();
        auto.threads = threads(self.store, &replied_to)?;
        Ok(Some(auto))
    }
}

fn folder_of(observed: &Observed) -> &str {
    match &observed.location {
        ItemLocation::Imap { folder, .. } => folder,
        ItemLocation::Collection { .. } => "",
    }
}

/// The tracked email these Message-IDs name, by Message-ID: the email tracked with that
/// Message-ID, else the activity that a tracking token (the Message-ID of mail crmsync sent
/// for it, `core::token`) names, when this installation signed it.
pub(crate) fn threads<S: CrmStore>(
    store: &S,
    message_ids: &[String],
) -> Result<BTreeMap<String, TrackedThread>, StoreError> {
    let mut threads = store.email_threads(message_ids)?;
    let tokens: Vec<&String> = message_ids
        .iter()
        .filter(|id| !threads.contains_key(*id))
        .filter(|id| {
            id.get(..token::PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(token::PREFIX))
        })
        .collect();
    if tokens.is_empty() {
        return Ok(threads);
    }
    let key = store.tracking_key()?;
    let named: Vec<(&String, ActivityId)> = tokens
        .into_iter()
        .filter_map(|id| Some((id, token::activity(&key, id)?)))
        .collect();
    let activities: Vec<ActivityId> = named.iter().map(|(_, activity)| *activity).collect();
    let found = store.activity_threads(&activities)?;
    for (id, activity) in named {
        if let Some(thread) = found.get(&activity) {
            threads.insert(id.clone(), thread.clone());
        }
    }
    Ok(threads)
}

/// The addresses that resolve (SPEC section 4) to a CRM contact, lead or account; a CRM user
/// alone does not make mail worth tracking. Never-listed addresses are not even looked up.
pub(crate) fn crm_addresses<'a, S: CrmStore>(
    store: &S,
    addresses: impl Iterator<Item = &'a str>,
    never: &[NeverEntry],
) -> Result<BTreeSet<String>, crmsync_store::StoreError> {
    let addresses: BTreeSet<&str> = addresses
        .filter(|address| !never.iter().any(|entry| entry.matches(address)))
        .collect();
    let valid: Vec<EmailAddress> = addresses
        .into_iter()
        .filter_map(|address| EmailAddress::new(address).ok())
        .collect();
    let mut found = BTreeSet::new();
    for (address, records) in store.records_with_emails(&valid)? {
        if let Resolution::Resolved(id) = resolve::resolve(&records)
            && records
                .iter()
                .any(|c| c.record == id && CRM_ENTITIES.contains(&c.entity.as_str()))
        {
            found.insert(address);
        }
    }
    Ok(found)
}
