//! The regarding record of a tracked message whose activity exists: the three-way merge of the
//! mailbox's keyword and the CRM's record, and the keyword rewrite that carries a CRM change to
//! the message (new keyword first, the link told before, a half-done rewrite recognised).

use crate::item::ItemLocation;
use crate::link::{LinkState, Snapshot, SyncLink};
use crate::merge;
use crate::model::{ConflictPolicy, RecordNumber};

use super::{Effect, REGARDING, Signal, TrackingRules, WRITING, base_for, base_keywords, number};

/// The base as it stands once a rewrite that a link records as begun is taken into account,
/// and the regarding keywords that rewrite was about to remove and that are still on the
/// message. When the keyword it was adding is on the message, both sides agreed on that
/// keyword's record (crmsync wrote the CRM's value, or cleared it when the keyword is the plain
/// one) and the old base's other regarding keywords are leftovers of the rewrite, not the
/// person's; otherwise the rewrite never reached the server.
pub(super) fn effective_base(
    rules: &TrackingRules,
    base: &Snapshot,
    signal: &Signal,
) -> (Snapshot, Vec<String>) {
    let Some(writing) = base.get(WRITING) else {
        return (base.clone(), Vec::new());
    };
    let mut keywords = base_keywords(base);
    if !signal
        .keywords
        .iter()
        .any(|k| k.eq_ignore_ascii_case(writing))
    {
        return (
            base_for(number(base.get(REGARDING)).as_ref(), &keywords),
            Vec::new(),
        );
    }
    let was = rules.signal("", &keywords).numbers;
    let leftovers = signal
        .keywords
        .iter()
        .filter(|k| !k.eq_ignore_ascii_case(writing))
        .filter(|k| {
            rules
                .signal("", &[(*k).clone()])
                .numbers
                .first()
                .is_some_and(|n| was.contains(n))
        })
        .cloned()
        .collect();
    let written = rules.signal("", &[writing.to_owned()]).regarding;
    keywords.push(writing.to_owned());
    (base_for(written.as_ref(), &keywords), leftovers)
}

/// The regarding record of a tracked message whose activity exists: merged three ways, the
/// CRM told of a mailbox change, the keywords rewritten for a CRM change, the link updated.
pub(super) struct RegardingMerge<'a> {
    pub(super) rules: &'a TrackingRules,
    pub(super) policy: ConflictPolicy,
    pub(super) link: &'a SyncLink,
    pub(super) location: ItemLocation,
    pub(super) signal: &'a Signal,
    pub(super) crm_regarding: Option<&'a RecordNumber>,
}

impl RegardingMerge<'_> {
    fn folder(&self) -> &str {
        match &self.location {
            ItemLocation::Imap { folder, .. } => folder,
            ItemLocation::Collection { .. } => "",
        }
    }

    pub(super) fn effects(self, effects: &mut Vec<Effect>) {
        let identity = self.link.identity.clone();
        let single = |value: Option<&RecordNumber>| {
            Snapshot::new().with(REGARDING, value.map_or("", RecordNumber::as_str))
        };
        let (effective, leftovers) = effective_base(self.rules, &self.link.base, self.signal);
        // The person's side, without what a rewrite cut short left behind.
        let without_leftovers;
        let person = if leftovers.is_empty() {
            self.signal
        } else {
            let keywords: Vec<String> = self
                .signal
                .keywords
                .iter()
                .filter(|k| !leftovers.contains(k))
                .cloned()
                .collect();
            without_leftovers = self.rules.signal(self.folder(), &keywords);
            &without_leftovers
        };
        let mailbox_regarding = self.rules.mailbox_regarding(person, &effective);
        let outcome = merge::three_way(
            &single(number(effective.get(REGARDING)).as_ref()),
            &single(mailbox_regarding.as_ref()),
            &single(self.crm_regarding),
            self.policy,
        );
        let mut merged = number(outcome.merged.get(REGARDING));
        let mut crm_write = !outcome.crm_writes.is_empty();
        // A message in a tracked folder reads as regarding the folder's record whenever no
        // keyword names another, so "no regarding record" cannot be written to it: the
        // folder's record stands, on both sides.
        if merged.is_none()
            && let Some(implied) = self.rules.folders.get(self.folder())
        {
            crm_write = self.crm_regarding != Some(implied);
            merged = Some(implied.clone());
        }
        for conflict in outcome.conflicts {
            effects.push(Effect::Conflict {
                identity: identity.clone(),
                conflict,
            });
        }
        if crm_write {
            effects.push(Effect::SetRegarding {
                identity: identity.clone(),
                regarding: merged.clone(),
            });
        }
        // The keywords are rewritten when the regarding record changed on the CRM side (or a
        // conflict went the CRM's way), and when the message holds more than one regarding
        // keyword, so that one is left: the merged one.
        let rewrite = !outcome.mailbox_writes.is_empty()
            || self.signal.numbers.len() > 1
            || !leftovers.is_empty();
        let keywords = if rewrite {
            self.rewrite(&effective, merged.as_ref(), effects)
        } else {
            self.signal.keywords.clone()
        };
        let base = base_for(merged.as_ref(), &keywords);
        if crm_write
            || base != self.link.base
            || self.location != self.link.location
            || self.link.state != LinkState::Synced
        {
            effects.push(Effect::UpdateLink {
                identity,
                location: self.location,
                base,
            });
        }
    }

    /// Leaves one regarding keyword, for `merged`; returns the keywords the message then
    /// holds. A rewrite in two steps is recorded in the link before its first.
    fn rewrite(
        &self,
        effective: &Snapshot,
        merged: Option<&RecordNumber>,
        effects: &mut Vec<Effect>,
    ) -> Vec<String> {
        let mut keywords = self.signal.keywords.clone();
        let (add, remove) = self
            .rules
            .rewrite_regarding(&keywords, merged, self.folder());
        if let (Some(adding), false) = (add.first(), remove.is_empty()) {
            effects.push(Effect::BeginRewrite {
                identity: self.link.identity.clone(),
                location: self.location.clone(),
                base: effective.clone().with(WRITING, adding),
            });
        }
        if !add.is_empty() || !remove.is_empty() {
            keywords.retain(|k| !remove.contains(k));
            keywords.extend(add.iter().cloned());
            effects.push(Effect::WriteKeywords {
                identity: self.link.identity.clone(),
                location: self.location.clone(),
                add,
                remove,
            });
        }
        keywords
    }
}
