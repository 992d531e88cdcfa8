//! Address resolution (SPEC section 4).
//!
//! Each party address resolves to at most one record, preferring a CRM user (`systemuser`),
//! then a contact, then an account, then a lead. Records of other entity types never resolve a
//! party. When several records of the best rank share the address, the party stays unresolved
//! and keeps them as candidates, so that a person can pick one; crmsync never guesses.

use crate::model::{EntityName, RecordId};

/// A record that carries the address being resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub record: RecordId,
    pub entity: EntityName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Exactly one record of the best rank carries the address.
    Resolved(RecordId),
    /// Several records of the best rank carry it: unresolved, with these candidates (sorted).
    Ambiguous(Vec<RecordId>),
    /// No user, contact, account or lead carries it.
    Unresolved,
}

/// The rank of an entity type for resolution: lower wins; `None` never resolves a party.
pub fn rank(entity: &EntityName) -> Option<u8> {
    match entity.as_str() {
        EntityName::SYSTEMUSER => Some(0),
        EntityName::CONTACT => Some(1),
        EntityName::ACCOUNT => Some(2),
        EntityName::LEAD => Some(3),
        _ => None,
    }
}

pub fn resolve(candidates: &[Candidate]) -> Resolution {
    let Some(best_rank) = candidates.iter().filter_map(|c| rank(&c.entity)).min() else {
        return Resolution::Unresolved;
    };
    let mut best: Vec<RecordId> = candidates
        .iter()
        .filter(|c| rank(&c.entity) == Some(best_rank))
        .map(|c| c.record)
        .collect();
    best.sort();
    best.dedup();
    match best.as_slice() {
        [only] => Resolution::Resolved(*only),
        _ => Resolution::Ambiguous(best),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> RecordId {
        RecordId(uuid::Uuid::from_u128(n))
    }

    /// Each case: the candidates as (record number, entity), and the expected outcome.
    fn check(candidates: &[(u128, &str)], expected: Resolution) {
        let candidates: Vec<Candidate> = candidates
            .iter()
            .map(|(n, entity)| Candidate {
                record: id(*n),
                entity: EntityName::new(entity).unwrap(),
            })
            .collect();
        assert_eq!(resolve(&candidates), expected, "{candidates:?}");
    }

    #[test]
    fn resolution_table() {
        check(&[], Resolution::Unresolved);
        check(&[(1, "lead")], Resolution::Resolved(id(1)));
        check(&[(1, "lead"), (2, "account")], Resolution::Resolved(id(2)));
        check(
            &[(1, "account"), (2, "contact")],
            Resolution::Resolved(id(2)),
        );
        check(
            &[(1, "contact"), (2, "systemuser")],
            Resolution::Resolved(id(2)),
        );
        check(
            &[(3, "contact"), (2, "contact"), (1, "account")],
            Resolution::Ambiguous(vec![id(2), id(3)]),
        );
        check(
            &[(2, "contact"), (2, "contact")],
            Resolution::Resolved(id(2)),
        );
        check(
            &[(1, "project"), (2, "opportunity")],
            Resolution::Unresolved,
        );
        check(&[(1, "project"), (2, "lead")], Resolution::Resolved(id(2)));
    }
}
