//! The per-field three-way merge of SPEC section 5.
//!
//! Given the base (both sides as they were when last in step) and the current fields of both
//! sides, each field is settled on its own:
//! - unchanged on both sides, or changed on both to the same value: that value;
//! - changed on one side only: that side's value, carried to the other;
//! - changed on both to different values: a conflict, settled by the mailbox's policy and
//!   reported so that it reaches the conflict log.
//!
//! The outcome says what to write to each side, so an adapter that applies it and records the
//! merged snapshot as the new base reaches a state where a second merge changes nothing.

use crate::link::Snapshot;
use crate::model::ConflictPolicy;

/// Which side a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Mailbox,
    Crm,
}

/// One field changed on both sides to different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub field: String,
    pub base: Option<String>,
    pub mailbox: Option<String>,
    pub crm: Option<String>,
    pub winner: Side,
}

/// A field to write on one side: its new value, or `None` to clear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldWrite {
    pub field: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The fields both sides hold once the writes are done: the next base.
    pub merged: Snapshot,
    /// What the mailbox side must change to reach `merged`.
    pub mailbox_writes: Vec<FieldWrite>,
    /// What the CRM side must change to reach `merged`.
    pub crm_writes: Vec<FieldWrite>,
    pub conflicts: Vec<Conflict>,
}

impl MergeOutcome {
    pub fn is_noop(&self) -> bool {
        self.mailbox_writes.is_empty() && self.crm_writes.is_empty()
    }
}

pub fn three_way(
    base: &Snapshot,
    mailbox: &Snapshot,
    crm: &Snapshot,
    policy: ConflictPolicy,
) -> MergeOutcome {
    let mut names: Vec<&str> = base
        .field_names()
        .chain(mailbox.field_names())
        .chain(crm.field_names())
        .collect();
    names.sort_unstable();
    names.dedup();

    let mut outcome = MergeOutcome {
        merged: Snapshot::new(),
        mailbox_writes: Vec::new(),
        crm_writes: Vec::new(),
        conflicts: Vec::new(),
    };
    for name in names {
        let (b, m, c) = (base.get(name), mailbox.get(name), crm.get(name));
        let value = if m == c || c == b {
            m
        } else if m == b {
            c
        } else {
            let winner = match policy {
                ConflictPolicy::MailboxWins => Side::Mailbox,
                ConflictPolicy::CrmWins => Side::Crm,
            };
            outcome.conflicts.push(Conflict {
                field: name.to_owned(),
                base: b.map(str::to_owned),
                mailbox: m.map(str::to_owned),
                crm: c.map(str::to_owned),
                winner,
            });
            match winner {
                Side::Mailbox => m,
                Side::Crm => c,
            }
        };
        let write = || FieldWrite {
            field: name.to_owned(),
            value: value.map(str::to_owned),
        };
        if value != m {
            outcome.mailbox_writes.push(write());
        }
        if value != c {
            outcome.crm_writes.push(write());
        }
        if let Some(value) = value {
            outcome.merged.set(name, value);
        }
    }
    outcome
}

/// Applies writes to a snapshot, as an adapter would apply them to its side.
pub fn apply(snapshot: &Snapshot, writes: &[FieldWrite]) -> Snapshot {
    let mut result = snapshot.clone();
    for write in writes {
        result.set(&write.field, write.value.as_deref().unwrap_or(""));
    }
    result
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn snap(fields: &[(&str, &str)]) -> Snapshot {
        fields
            .iter()
            .fold(Snapshot::new(), |s, (k, v)| s.with(k, v))
    }

    /// A scenario is (base, mailbox, crm) and the expected merged fields and conflict fields.
    fn check(
        base: &[(&str, &str)],
        mailbox: &[(&str, &str)],
        crm: &[(&str, &str)],
        policy: ConflictPolicy,
        merged: &[(&str, &str)],
        conflicts: &[&str],
    ) {
        let outcome = three_way(&snap(base), &snap(mailbox), &snap(crm), policy);
        assert_eq!(outcome.merged, snap(merged), "merged");
        let fields: Vec<&str> = outcome.conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, conflicts, "conflicts");
    }

    #[test]
    fn merge_table() {
        use ConflictPolicy::*;
        let base = [("subject", "Call"), ("location", "Room 1")];
        // Nothing changed.
        check(&base, &base, &base, MailboxWins, &base, &[]);
        // One side changed a field.
        let moved = [("subject", "Call"), ("location", "Room 2")];
        check(&base, &moved, &base, MailboxWins, &moved, &[]);
        check(&base, &base, &moved, MailboxWins, &moved, &[]);
        // Both changed different fields: both kept.
        let renamed = [("subject", "Call v2"), ("location", "Room 1")];
        let both = [("subject", "Call v2"), ("location", "Room 2")];
        check(&base, &moved, &renamed, MailboxWins, &both, &[]);
        // Both changed the same field the same way: no conflict.
        check(&base, &moved, &moved, CrmWins, &moved, &[]);
        // Both changed the same field differently: the policy decides.
        let moved3 = [("subject", "Call"), ("location", "Room 3")];
        check(&base, &moved, &moved3, MailboxWins, &moved, &["location"]);
        check(&base, &moved, &moved3, CrmWins, &moved3, &["location"]);
        // A field cleared on one side is a change like any other.
        check(
            &base,
            &[("subject", "Call")],
            &base,
            MailboxWins,
            &[("subject", "Call")],
            &[],
        );
        // A field added on both sides differently is a conflict.
        check(
            &[],
            &[("due", "1")],
            &[("due", "2")],
            CrmWins,
            &[("due", "2")],
            &["due"],
        );
    }

    fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
        prop::collection::btree_map(
            prop::sample::select(vec!["subject", "location", "start", "due"]),
            prop::sample::select(vec!["", "a", "b", "c"]),
            0..4,
        )
        .prop_map(|fields| {
            fields
                .into_iter()
                .fold(Snapshot::new(), |s, (k, v)| s.with(k, v))
        })
    }

    fn policy_strategy() -> impl Strategy<Value = ConflictPolicy> {
        prop::sample::select(ConflictPolicy::ALL.to_vec())
    }

    proptest! {
        /// Applying the writes brings both sides to the merged snapshot, and a second merge
        /// from there writes nothing.
        #[test]
        fn merge_converges_and_is_idempotent(
            base in snapshot_strategy(),
            mailbox in snapshot_strategy(),
            crm in snapshot_strategy(),
            policy in policy_strategy(),
        ) {
            let outcome = three_way(&base, &mailbox, &crm, policy);
            let mailbox_after = apply(&mailbox, &outcome.mailbox_writes);
            let crm_after = apply(&crm, &outcome.crm_writes);
            prop_assert_eq!(&mailbox_after, &outcome.merged);
            prop_assert_eq!(&crm_after, &outcome.merged);
            let again = three_way(&outcome.merged, &mailbox_after, &crm_after, policy);
            prop_assert!(again.is_noop());
            prop_assert!(again.conflicts.is_empty());
        }

        /// No edit is lost except by the declared policy: every field that one side changed
        /// ends with that side's value unless it is a reported conflict that the other side won.
        #[test]
        fn no_edit_is_lost_silently(
            base in snapshot_strategy(),
            mailbox in snapshot_strategy(),
            crm in snapshot_strategy(),
            policy in policy_strategy(),
        ) {
            let outcome = three_way(&base, &mailbox, &crm, policy);
            for (side, snapshot) in [(Side::Mailbox, &mailbox), (Side::Crm, &crm)] {
                let names: Vec<&str> = base.field_names().chain(snapshot.field_names()).collect();
                for name in names {
                    if snapshot.get(name) == base.get(name) {
                        continue;
                    }
                    let kept = outcome.merged.get(name) == snapshot.get(name);
                    let lost_by_policy = outcome
                        .conflicts
                        .iter()
                        .any(|c| c.field == name && c.winner != side);
                    prop_assert!(kept || lost_by_policy, "edit of {} on {:?} lost", name, side);
                }
            }
        }
    }
}
