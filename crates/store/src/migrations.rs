//! Numbered schema migrations.
//!
//! Each migration runs once, in order, inside the transaction that records it in
//! `schema_migrations`, so a crash mid-migration leaves the store at the previous version.
//! A store newer than this binary is refused instead of being written with an older idea of
//! the schema. A migration is never edited once released: a change is a new migration.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "email_identity",
        sql: include_str!("migrations/0002_email_identity.sql"),
    },
    Migration {
        version: 3,
        name: "conflict_log",
        sql: include_str!("migrations/0003_conflict_log.sql"),
    },
    Migration {
        version: 4,
        name: "item_uid",
        sql: include_str!("migrations/0004_item_uid.sql"),
    },
    Migration {
        version: 5,
        name: "automatic_tracking",
        sql: include_str!("migrations/0005_automatic_tracking.sql"),
    },
    Migration {
        version: 6,
        name: "never_track",
        sql: include_str!("migrations/0006_never_track.sql"),
    },
    Migration {
        version: 7,
        name: "failed_items",
        sql: include_str!("migrations/0007_failed_items.sql"),
    },
    Migration {
        version: 8,
        name: "party_groups",
        sql: include_str!("migrations/0008_party_groups.sql"),
    },
    Migration {
        version: 9,
        name: "activities_created",
        sql: include_str!("migrations/0009_activities_created.sql"),
    },
    Migration {
        version: 10,
        name: "installation",
        sql: include_str!("migrations/0010_installation.sql"),
    },
    Migration {
        version: 11,
        name: "outbound",
        sql: include_str!("migrations/0011_outbound.sql"),
    },
    Migration {
        version: 12,
        name: "library",
        sql: include_str!("migrations/0012_library.sql"),
    },
    Migration {
        version: 13,
        name: "activity_connections",
        sql: include_str!("migrations/0013_activity_connections.sql"),
    },
    Migration {
        version: 14,
        name: "journal_per_transaction",
        sql: include_str!("migrations/0014_journal_per_transaction.sql"),
    },
    Migration {
        version: 15,
        name: "links_by_location",
        sql: include_str!("migrations/0015_links_by_location.sql"),
    },
    Migration {
        version: 16,
        name: "link_counts",
        sql: include_str!("migrations/0016_link_counts.sql"),
    },
    Migration {
        version: 17,
        name: "collection_listings",
        sql: include_str!("migrations/0017_collection_listings.sql"),
    },
];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}
