//! What the store's tests share: a fresh store on either backend (a SQLite file in a temporary
//! directory, or a new database on a private PostgreSQL), a second connection that writes plain
//! SQL the way another program would, and builders of rows and links.
#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod pg;

use crmsync_core::item::{ContentHash, ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::model::{ActivityType, EmailAddress, EntityName, PartyRole, RecordNumber};
use crmsync_store::prelude::*;
use crmsync_store::{
    NewActivity, NewParty, NewRecord, NewUser, PgDatabase, PgOptions, SqliteStore,
};
use rusqlite::Connection;

/// The core's decisions, as crmsync opens every store with them.
pub const RULES: crmsync_store::Rules = crmsync_store::Rules {
    base: crmsync_core::collection::two_sided_base,
    resolve: crmsync_core::resolve::resolve,
};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Sqlite,
    Postgres,
}

/// Runs each named test function (`fn name(on: On)`) once on each backend: `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::support::On::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::support::On::Postgres)
            }
        }
    )*};
}

pub struct Fixture {
    pub store: Box<dyn CrmStore + Send>,
    pub on: On,
    /// The SQLite file (empty on PostgreSQL).
    pub path: std::path::PathBuf,
    /// The PostgreSQL database's URL (empty on SQLite).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _server: Option<pg::PgServer>,
}

/// A fresh SQLite store.
pub fn fixture() -> Fixture {
    fixture_on(On::Sqlite)
}

/// A fresh store on `on`.
pub fn fixture_on(on: On) -> Fixture {
    match on {
        On::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crm.sqlite3");
            let store = SqliteStore::open(&path, "test", RULES).unwrap();
            Fixture {
                store: Box::new(store),
                on,
                path,
                url: String::new(),
                _dir: Some(dir),
                _server: None,
            }
        }
        On::Postgres => {
            let server = pg::PgServer::start();
            let url = server.new_database();
            let database = PgDatabase::connect(&PgOptions {
                url: url.clone(),
                password: None,
                tls: None,
                pool_size: 4,
            })
            .unwrap();
            Fixture {
                store: Box::new(database.store("test", RULES)),
                on,
                path: std::path::PathBuf::new(),
                url,
                _dir: None,
                _server: Some(server),
            }
        }
    }
}

impl Fixture {
    /// A second connection, as another program opens it (on SQLite with foreign keys off).
    pub fn other(&self) -> Other {
        match self.on {
            On::Sqlite => Other::Sqlite(other_program(&self.path)),
            On::Postgres => {
                Other::Postgres(postgres::Client::connect(&self.url, postgres::NoTls).unwrap())
            }
        }
    }

    /// `SELECT count(*) ...` (or any one integer) through another connection.
    pub fn count(&self, sql: &str) -> i64 {
        self.other().count(sql)
    }
}

/// Another program's connection to the store, writing plain SQL (`?1` parameters, as text).
pub enum Other {
    Sqlite(Connection),
    Postgres(postgres::Client),
}

impl Other {
    /// Runs a statement; how many rows it changed, or the database's error in words.
    pub fn execute(&mut self, sql: &str, params: &[&str]) -> Result<u64, String> {
        match self {
            Other::Sqlite(conn) => conn
                .execute(sql, rusqlite::params_from_iter(params))
                .map(|n| n as u64)
                .map_err(|e| e.to_string()),
            Other::Postgres(client) => {
                let sql = dollar_params(sql);
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                client
                    .execute(&sql, &params)
                    .map_err(|e| match e.as_db_error() {
                        Some(db) => db.message().to_owned(),
                        None => e.to_string(),
                    })
            }
        }
    }

    pub fn count(&mut self, sql: &str) -> i64 {
        match self {
            Other::Sqlite(conn) => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
            Other::Postgres(client) => {
                let row = client.query_one(sql, &[]).unwrap();
                row.try_get::<_, i64>(0)
                    .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                    .unwrap()
            }
        }
    }
}

/// `?N` parameters as PostgreSQL's `$N`.
fn dollar_params(sql: &str) -> String {
    let mut out = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
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

pub fn add_user(store: &mut dyn CrmStore, address: &str) {
    store
        .add_user(&NewUser {
            email: email(address),
            name: address.into(),
            sync: true,
        })
        .unwrap();
}

pub fn add_record(
    store: &mut dyn CrmStore,
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
pub fn fixture_with_activity(on: On) -> (Fixture, crmsync_store::ActivityRow) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let activity = fx
        .store
        .add_activity(&new_activity("alice@example.com", None, &[]))
        .unwrap();
    (fx, activity)
}

/// One integer from a plain SQLite connection.
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
