//! Automatic tracking inside the email reconciler: what a pass knows for it ([`AutoView`]),
//! and the effects for a message the policy takes (the decision itself is `crate::auto`).

use std::collections::{BTreeMap, BTreeSet};

use crate::auto::{AutoContext, AutoDecision, AutoPolicy, MessageMeta, NeverEntry, TrackedThread};
use crate::item::{ItemIdentity, ItemLocation};
use crate::model::RecordNumber;

use super::{Effect, Observed, TrackingRules, base_for};

/// What automatic tracking decides with, for one pass (see [`crate::auto`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoView {
    pub policy: AutoPolicy,
    pub never: Vec<NeverEntry>,
    /// The mailbox owner's address, lower case.
    pub owner: String,
    /// Addresses of this pass's messages that resolve to a CRM contact, lead or account.
    pub crm_addresses: BTreeSet<String>,
    /// Tracked email that this pass's messages reply to, by Message-ID.
    pub threads: BTreeMap<String, TrackedThread>,
    /// Messages (by identity's storage key) that a person untracked or the CRM deleted.
    pub tombstones: BTreeSet<String>,
    /// Per folder, the first UID automatic tracking takes: mail that arrived before the policy
    /// was switched on is left alone...
    pub from_uid: BTreeMap<String, u32>,
    /// ...unless it is dated from this time on (UNIX seconds; `sync --backfill SINCE`).
    pub backfill_since: Option<i64>,
    /// The loop guard: how many emails with this (sender, subject) the CRM got in the last
    /// hour. One more than [`LOOP_LIMIT`] in an hour is a mail loop or a notification storm,
    /// not correspondence, and is not taken automatically.
    pub recent: BTreeMap<(String, String), u32>,
}

/// How many emails with one sender and subject automatic tracking takes in an hour.
pub const LOOP_LIMIT: u32 = 10;

impl AutoView {
    /// The loop guard's key of a message: its first sender and its subject.
    pub fn loop_key(meta: &MessageMeta) -> Option<(String, String)> {
        Some((meta.from.first()?.clone(), meta.subject.clone()))
    }
}

impl AutoView {
    /// Records a message tracked in this pass as a thread its replies can follow.
    pub(super) fn add_thread(&mut self, observed: &Observed, regarding: Option<RecordNumber>) {
        let ItemIdentity::Email { message_id, .. } = &observed.identity else {
            return;
        };
        let participants = observed
            .meta
            .addresses()
            .map(str::to_ascii_lowercase)
            .collect();
        self.threads
            .entry(message_id.clone())
            .or_insert(TrackedThread {
                regarding,
                participants,
            });
    }

    /// Whether automatic tracking considers a message at all: one that arrived after the
    /// policy was switched on, or that a backfill reaches, and that nobody untracked before.
    pub fn considers(&self, observed: &Observed) -> bool {
        let ItemLocation::Imap { folder, uid, .. } = &observed.location else {
            return false;
        };
        let arrived_after = self.from_uid.get(folder).is_some_and(|from| uid >= from);
        let backfilled = self
            .backfill_since
            .zip(observed.meta.date)
            .is_some_and(|(since, date)| date >= since);
        (arrived_after || backfilled) && !self.tombstones.contains(&observed.identity.storage_key())
    }
}

/// A message nobody tracked by hand, decided by the automatic policy; returns the regarding
/// record of one it takes (`Some(None)` for none). One that is taken gets
/// the tracking keyword (`crm:NUMBER` when it inherits a thread's regarding record) written
/// *before* its activity is made, so the person sees it tracked and untracks it the usual way,
/// and a kill in between leaves a message that the next pass tracks by its keyword.
pub(super) fn track_automatically(
    rules: &TrackingRules,
    auto: &AutoView,
    observed: &Observed,
    effects: &mut Vec<Effect>,
) -> Option<Option<RecordNumber>> {
    if !auto.considers(observed) {
        return None;
    }
    let context = AutoContext {
        owner: &auto.owner,
        crm_addresses: &auto.crm_addresses,
        threads: &auto.threads,
    };
    let AutoDecision::Track { regarding, .. } =
        crate::auto::decide(auto.policy, &auto.never, &observed.meta, context)
    else {
        return None;
    };
    let keyword = match &regarding {
        Some(number) => rules.regarding_keyword(number),
        None => rules.keyword.clone(),
    };
    effects.push(Effect::WriteKeywords {
        identity: observed.identity.clone(),
        location: observed.location.clone(),
        add: vec![keyword.clone()],
        remove: Vec::new(),
    });
    let mut tracked = observed.clone();
    tracked.keywords.push(keyword.clone());
    effects.push(Effect::Track {
        observed: tracked,
        base: base_for(regarding.as_ref(), &[keyword]),
        regarding: regarding.clone(),
        automatic: true,
    });
    Some(regarding)
}
