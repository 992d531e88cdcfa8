//! What the store's tests share: a fresh store in a temporary directory, a second connection
//! that writes plain SQL the way another program would, and builders of rows and links.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use crmsync_core::item::{ContentHash, ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::model::{ActivityType, EmailAddress, EntityName, PartyRole, RecordNumber};
use crmsync_store::prelude::*;
use crmsync_store::{NewActivity, NewParty, NewRecord, NewUser, SqliteStore};
use rusqlite::Connection;

/// The core's decisions, as crmsync opens every store with them.
pub const RULES: crmsync_store::Rules = crmsync_store::Rules {
    base: crmsync_core::collection::two_sided_base,
    resolve: crmsync_core::resolve::resolve,
};

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub store: SqliteStore,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite3");
    let store = SqliteStore::open(&path, "test", RULES).unwrap();
    Fixture {
        _dir: dir,
        path,
        store,
    }
}

/// A second connection as another program opens it: foreign keys off, as SQLite's own default
/// is (the `sqlite3` shell, Python's sqlite3). rusqlite's bundled build defaults them on, so the
/// test turns them off to stand for the worst case.
pub fn other_program(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 0, "a plain connection has foreign keys off");
    conn
}

pub fn email(address: &str) -> EmailAddress {
    EmailAddress::new(address).unwrap()
}

pub fn number(text: &str) -> RecordNumber {
    RecordNumber::new(text).unwrap()
}

pub fn entity(name: &str) -> EntityName {
    EntityName::new(name).unwrap()
}

pub fn add_user(store: &mut SqliteStore, address: &str) {
    store
        .add_user(&NewUser {
            email: email(address),
            name: address.into(),
            sync: true,
        })
        .unwrap();
}

pub fn add_record(
    store: &mut SqliteStore,
    kind: &str,
    name: &str,
    emails: &[&str],
    num: Option<&str>,
) -> RecordNumber {
    store
        .add_record(&NewRecord {
            entity: entity(kind),
            name: name.into(),
            emails: emails.iter().map(|e| email(e)).collect(),
            number: num.map(number),
            parent: None,
            owner: None,
        })
        .unwrap()
        .record
        .number
}

pub fn new_activity(
    owner: &str,
    regarding: Option<&RecordNumber>,
    parties: &[(PartyRole, &str)],
) -> NewActivity {
    NewActivity {
        activity_type: ActivityType::Appointment,
        owner: email(owner),
        subject: "Quarterly review".into(),
        state: None,
        description: None,
        regarding: regarding.cloned(),
        location: None,
        start: None,
        end: None,
        due: None,
        parties: parties
            .iter()
            .map(|(role, address)| NewParty {
                group: None,
                role: *role,
                address: email(address),
                display_name: None,
            })
            .collect(),
        html_body: None,
        attachments: Vec::new(),
        created_by: "crm".into(),
    }
}

/// A store with Alice and one appointment of hers.
pub fn fixture_with_activity() -> (Fixture, crmsync_store::ActivityRow) {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let activity = fx
        .store
        .add_activity(&new_activity("alice@example.com", None, &[]))
        .unwrap();
    (fx, activity)
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn link(mailbox: &str, crm: CrmRef) -> SyncLink {
    SyncLink {
        mailbox: mailbox.into(),
        kind: ItemKind::Email,
        identity: ItemIdentity::Email {
            message_id: "m1@example.com".into(),
            content_hash: ContentHash::new("abc123").unwrap(),
        },
        location: ItemLocation::Imap {
            folder: "INBOX".into(),
            uid_validity: 7,
            uid: 42,
        },
        crm,
        base: Snapshot::new()
            .with("subject", "Hello")
            .with("to", "dana@example.org"),
        item_version: Some(VersionMarker("7/100".into())),
        crm_version: Some(3),
        created_by: ItemCreator::Mailbox,
        state: LinkState::Synced,
    }
}

pub fn item_link(kind: ItemKind, uid: &str, crm: CrmRef) -> SyncLink {
    SyncLink {
        mailbox: "alice".into(),
        kind,
        identity: match kind {
            ItemKind::Contact => ItemIdentity::Contact { uid: uid.into() },
            _ => ItemIdentity::Calendar { uid: uid.into() },
        },
        location: ItemLocation::Collection {
            collection: "calendar".into(),
            href: format!("{uid}.ics"),
        },
        crm,
        base: Snapshot::new(),
        item_version: Some(VersionMarker("e1".into())),
        crm_version: None,
        created_by: ItemCreator::Mailbox,
        state: LinkState::Synced,
    }
}

pub fn snapshot(fields: &[(&str, &str)]) -> Snapshot {
    fields
        .iter()
        .fold(Snapshot::new(), |s, (k, v)| s.with(k, v))
}
