//! Tests of the SQLite store against real files, including writes by a second connection that
//! uses plain SQL the way another program would.

use crmsync_core::item::{ContentHash, ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::model::{
    ActivityState, ActivityType, EmailAddress, EntityName, PartyRole, RecordNumber,
};
use crmsync_store::prelude::*;
use crmsync_store::{
    ActivityChange, ActivityFilter, JournalEntity, JournalOp, MIGRATIONS, NewActivity,
    NewConnection, NewParty, NewRecord, NewUser, RecordChange, SqliteStore, StoreError, SyncState,
};
use rusqlite::Connection;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite3");
    let store = SqliteStore::open(&path, "test").unwrap();
    Fixture {
        _dir: dir,
        path,
        store,
    }
}

/// A second connection as another program opens it: foreign keys off, as SQLite's own default
/// is (the `sqlite3` shell, Python's sqlite3). rusqlite's bundled build defaults them on, so the
/// test turns them off to stand for the worst case.
fn other_program(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 0, "a plain connection has foreign keys off");
    conn
}

fn email(address: &str) -> EmailAddress {
    EmailAddress::new(address).unwrap()
}

fn number(text: &str) -> RecordNumber {
    RecordNumber::new(text).unwrap()
}

fn entity(name: &str) -> EntityName {
    EntityName::new(name).unwrap()
}

fn add_user(store: &mut SqliteStore, address: &str) {
    store
        .add_user(&NewUser {
            email: email(address),
            name: address.into(),
            sync: true,
        })
        .unwrap();
}

fn add_record(
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

fn new_activity(
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
                role: *role,
                address: email(address),
                display_name: None,
            })
            .collect(),
        created_by: "crm".into(),
    }
}

/// A store with Alice and one appointment of hers.
fn fixture_with_activity() -> (Fixture, crmsync_store::ActivityRow) {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let activity = fx
        .store
        .add_activity(&new_activity("alice@example.com", None, &[]))
        .unwrap();
    (fx, activity)
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn migrations_from_empty_and_rerun_are_idempotent() {
    let fx = fixture();
    let latest = MIGRATIONS.last().unwrap().version;
    assert_eq!(
        fx.store.applied_migrations().unwrap(),
        (1..=latest).collect::<Vec<_>>()
    );
    drop(fx.store);

    // Reopening runs nothing again and changes nothing.
    let conn = other_program(&fx.path);
    let tables_before = count(&conn, "SELECT count(*) FROM sqlite_master");
    let store = SqliteStore::open(&fx.path, "test").unwrap();
    assert_eq!(store.applied_migrations().unwrap().len(), MIGRATIONS.len());
    assert_eq!(
        count(&conn, "SELECT count(*) FROM sqlite_master"),
        tables_before
    );
    assert_eq!(count(&conn, "PRAGMA user_version"), latest);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM entities WHERE builtin = 1"),
        6
    );
}

#[test]
fn every_migration_runs_on_a_store_left_at_the_one_before() {
    // Apply the migrations one by one on a bare connection, as an older crmsync would have
    // left the store, then let the store bring it up to date.
    for stop_at in 0..MIGRATIONS.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT 'then')",
        )
        .unwrap();
        for migration in &MIGRATIONS[..stop_at] {
            conn.execute_batch(migration.sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                rusqlite::params![migration.version, migration.name],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, "test").unwrap();
        assert_eq!(store.applied_migrations().unwrap().len(), MIGRATIONS.len());
    }
}

#[test]
fn a_store_newer_than_the_binary_is_refused() {
    let fx = fixture();
    let conn = other_program(&fx.path);
    conn.execute(
        "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')",
        [],
    )
    .unwrap();
    drop(fx.store);
    match SqliteStore::open(&fx.path, "test") {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer store was opened"),
    }
}

#[test]
fn opening_in_a_missing_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere").join("crm.sqlite3");
    let error = SqliteStore::open(&path, "test").err().expect("must fail");
    let message = error.to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("nowhere"), "{message}");
}

#[test]
fn plain_sql_writes_by_another_program_reach_the_journal() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let cursor = fx.store.changes_since(0, 1000).unwrap().last().unwrap().seq;

    let conn = other_program(&fx.path);
    conn.execute(
        "INSERT INTO records (id, entity, number, name)
         VALUES ('11111111-2222-3333-4444-555555555555', 'account', 'ACC-9001', 'Fabrikam')",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE records SET name = 'Fabrikam Inc' WHERE number = 'ACC-9001'",
        [],
    )
    .unwrap();
    conn.execute("UPDATE users SET sync = 0", []).unwrap();

    let changes = fx.store.changes_since(cursor, 1000).unwrap();
    let seen: Vec<(JournalEntity, JournalOp, Option<&str>)> = changes
        .iter()
        .map(|c| (c.entity, c.op, c.origin.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (JournalEntity::Record, JournalOp::Insert, None),
            (JournalEntity::Record, JournalOp::Update, None),
            (JournalEntity::User, JournalOp::Update, None),
        ]
    );
    assert_eq!(changes[0].row_id, "11111111-2222-3333-4444-555555555555");
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));

    // The update bumped the record's version marker and was seen by the store's own reads.
    let record = fx.store.record(&number("ACC-9001")).unwrap();
    assert_eq!(record.record.name, "Fabrikam Inc");
    assert_eq!(record.version, 2);

    // crmsync's own writes carry its origin; the marker does not leak to later writers.
    fx.store
        .update_record(
            &number("ACC-9001"),
            &[RecordChange::Name("Fabrikam Ltd".into())],
        )
        .unwrap();
    conn.execute(
        "UPDATE records SET notes = 'x' WHERE number = 'ACC-9001'",
        [],
    )
    .unwrap();
    let last_two: Vec<Option<String>> = fx
        .store
        .changes_since(changes.last().unwrap().seq, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.origin)
        .collect();
    assert_eq!(last_two, vec![Some("test".to_owned()), None]);
}

#[test]
fn child_rows_written_by_another_program_change_their_parent() {
    let (fx, activity) = fixture_with_activity();
    let cursor = fx.store.changes_since(0, 1000).unwrap().last().unwrap().seq;

    let conn = other_program(&fx.path);
    conn.execute(
        "INSERT INTO parties (activity_id, position, role, address) VALUES (?1, 0, 'required', 'x@example.org')",
        [activity.id.to_string()],
    )
    .unwrap();
    let changes = fx.store.changes_since(cursor, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].entity, changes[0].op),
        (JournalEntity::Activity, JournalOp::Update)
    );
    assert_eq!(changes[0].row_id, activity.id.to_string());
    let after = fx.store.activity(activity.id).unwrap();
    assert!(after.version > activity.version);
    assert_eq!(after.parties.len(), 1);
}

#[test]
fn record_numbers_are_unique() {
    let mut fx = fixture();
    let first = add_record(&mut fx.store, "account", "Adventure Works", &[], None);
    assert_eq!(first.as_str(), "ACC-1001");
    // A number given by hand is skipped by the automatic sequence.
    add_record(&mut fx.store, "account", "Contoso", &[], Some("acc-1002"));
    let third = add_record(&mut fx.store, "account", "Fabrikam", &[], None);
    assert_eq!(third.as_str(), "ACC-1003");

    let duplicate = fx.store.add_record(&NewRecord {
        entity: entity("lead"),
        name: "Someone".into(),
        emails: vec![],
        number: Some(number("ACC-1001")),
        parent: None,
        owner: None,
    });
    match duplicate {
        Err(StoreError::Conflict(message)) => {
            assert!(
                message.contains("ACC-1001") && message.contains("Adventure Works"),
                "{message}"
            )
        }
        other => panic!("duplicate number accepted: {other:?}"),
    }

    // The schema itself refuses a duplicate, whatever the case, from any program.
    let conn = other_program(&fx.path);
    let result = conn.execute(
        "INSERT INTO records (id, entity, number, name) VALUES ('x', 'account', 'acc-1001', 'Dup')",
        [],
    );
    assert!(result.unwrap_err().to_string().contains("UNIQUE"));
}

#[test]
fn custom_entities_get_their_own_number_prefix() {
    let mut fx = fixture();
    let project = add_record(&mut fx.store, "project", "Migration", &[], None);
    assert_eq!(project.as_str(), "PRO-1001");
    // "prospect" also starts with PRO: it gets a prefix of its own.
    let prospect = add_record(&mut fx.store, "prospect", "Maybe", &[], None);
    assert_eq!(prospect.as_str(), "PROSPECT-1001");
    let listed = fx.store.records(Some(&entity("project"))).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record.entity.as_str(), "project");
}

#[test]
fn deleting_a_regarded_record_is_refused_through_the_store_and_through_sql() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let account = add_record(&mut fx.store, "account", "Adventure Works", &[], None);
    fx.store
        .add_activity(&new_activity("alice@example.com", Some(&account), &[]))
        .unwrap();

    match fx.store.delete_record(&account) {
        Err(StoreError::Refused(message)) => {
            assert!(
                message.contains("regarding record of 1 activity"),
                "{message}"
            )
        }
        other => panic!("delete not refused: {other:?}"),
    }
    let conn = other_program(&fx.path);
    let error = conn
        .execute("DELETE FROM records WHERE number = ?1", [account.as_str()])
        .unwrap_err();
    assert!(error.to_string().contains("regarding record"), "{error}");
    assert!(fx.store.record(&account).is_ok());

    // Nor can the owner of activities go.
    let error = conn.execute("DELETE FROM users", []).unwrap_err();
    assert!(error.to_string().contains("owns activities"), "{error}");
}

#[test]
fn deleting_a_record_leaves_no_dangling_row_even_with_foreign_keys_off() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let account = add_record(
        &mut fx.store,
        "account",
        "Adventure Works",
        &["info@adventure-works.com"],
        None,
    );
    let contact = add_record(
        &mut fx.store,
        "contact",
        "Dana",
        &["dana@adventure-works.com"],
        None,
    );
    fx.store
        .update_record(&contact, &[RecordChange::Parent(Some(account.clone()))])
        .unwrap();
    fx.store
        .add_connection(&NewConnection {
            record1: contact.clone(),
            role1: Some("employee".into()),
            record2: account.clone(),
            role2: Some("employer".into()),
        })
        .unwrap();
    let activity = fx
        .store
        .add_activity(&new_activity(
            "alice@example.com",
            None,
            &[(PartyRole::Required, "info@adventure-works.com")],
        ))
        .unwrap();
    assert_eq!(activity.parties[0].record.as_ref().unwrap().number, account);

    let conn = other_program(&fx.path);
    conn.execute("DELETE FROM records WHERE number = ?1", [account.as_str()])
        .unwrap();

    let contact_row = fx.store.record(&contact).unwrap();
    assert_eq!(contact_row.parent, None);
    assert!(fx.store.connections(&contact).unwrap().is_empty());
    let party = &fx.store.activity(activity.id).unwrap().parties[0];
    assert_eq!(party.record, None);
    assert_eq!(party.address, "info@adventure-works.com");
    let conn = other_program(&fx.path);
    let account_id = "(SELECT id FROM records WHERE number = 'ACC-1001')";
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM record_emails WHERE record_id NOT IN (SELECT id FROM records)"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            &format!("SELECT count(*) FROM connections WHERE record1_id = {account_id}")
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
}

#[test]
fn deleting_an_activity_removes_its_rows_and_marks_its_links() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let activity = fx
        .store
        .add_activity(&new_activity(
            "alice@example.com",
            None,
            &[(PartyRole::Required, "x@example.org")],
        ))
        .unwrap();
    fx.store
        .put_link(&link("alice", CrmRef::Activity(activity.id)))
        .unwrap();

    let conn = other_program(&fx.path);
    conn.execute(
        "DELETE FROM activities WHERE id = ?1",
        [activity.id.to_string()],
    )
    .unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM parties"), 0);
    let links = fx.store.links("alice").unwrap();
    assert_eq!(
        links.len(),
        1,
        "the link stays until the mailbox side is cleaned up"
    );
    assert_eq!(links[0].state, LinkState::CrmDeleted);
    assert_eq!(links[0].crm_version, None);
    assert!(matches!(
        fx.store.activity(activity.id),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        fx.store.delete_activity(activity.id),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn parties_resolve_by_rank_and_keep_candidates_when_ambiguous() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    add_record(
        &mut fx.store,
        "contact",
        "Alice as contact",
        &["Alice@Example.com"],
        None,
    );
    let dana1 = add_record(
        &mut fx.store,
        "contact",
        "Dana One",
        &["dana@example.org"],
        None,
    );
    let dana2 = add_record(
        &mut fx.store,
        "contact",
        "Dana Two",
        &["dana@example.org"],
        None,
    );
    add_record(
        &mut fx.store,
        "lead",
        "Dana Lead",
        &["dana@example.org"],
        None,
    );
    let lead = add_record(&mut fx.store, "lead", "Lee", &["lee@example.net"], None);

    let activity = fx
        .store
        .add_activity(&new_activity(
            "alice@example.com",
            None,
            &[
                (PartyRole::Organizer, "ALICE@example.com"),
                (PartyRole::Required, "dana@example.org"),
                (PartyRole::Optional, "lee@example.net"),
                (PartyRole::Optional, "nobody@example.net"),
            ],
        ))
        .unwrap();
    let parties = &activity.parties;
    let organizer = parties[0].record.as_ref().unwrap();
    assert_eq!(
        organizer.entity.as_str(),
        "systemuser",
        "a user outranks a contact"
    );
    assert_eq!(parties[1].record, None);
    let candidates: Vec<&RecordNumber> = parties[1].candidates.iter().map(|c| &c.number).collect();
    assert_eq!(candidates, vec![&dana1, &dana2]);
    assert_eq!(parties[2].record.as_ref().unwrap().number, lead);
    assert_eq!(parties[3].record, None);
    assert!(parties[3].candidates.is_empty());
    assert_eq!(parties[3].address, "nobody@example.net");
}

#[test]
fn activity_fields_states_and_regarding() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let account = add_record(&mut fx.store, "account", "Adventure Works", &[], None);
    let mut new = new_activity("alice@example.com", None, &[]);
    new.activity_type = ActivityType::Email;
    let email_activity = fx.store.add_activity(&new).unwrap();
    assert_eq!(email_activity.state, ActivityState::PendingSend);

    let wrong_state = fx.store.update_activity(
        email_activity.id,
        &[ActivityChange::State(ActivityState::Completed)],
    );
    match wrong_state {
        Err(StoreError::Invalid(e)) => assert!(e.0.contains("cannot be in state completed"), "{e}"),
        other => panic!("bad state accepted: {other:?}"),
    }
    let updated = fx
        .store
        .update_activity(
            email_activity.id,
            &[
                ActivityChange::Subject("New subject".into()),
                ActivityChange::Regarding(Some(account.clone())),
            ],
        )
        .unwrap();
    assert_eq!(updated.subject, "New subject");
    assert_eq!(updated.regarding.as_ref().unwrap().number, account);
    assert_eq!(
        updated.version,
        email_activity.version + 1,
        "one change, one version"
    );

    let cleared = fx
        .store
        .update_activity(email_activity.id, &[ActivityChange::Regarding(None)])
        .unwrap();
    assert_eq!(cleared.regarding, None);

    let unknown = fx.store.update_activity(
        email_activity.id,
        &[ActivityChange::Regarding(Some(number("ACC-4040")))],
    );
    assert!(matches!(unknown, Err(StoreError::NotFound(m)) if m == "record ACC-4040"));

    let filter = ActivityFilter {
        activity_type: Some(ActivityType::Task),
        mailbox: None,
    };
    assert!(fx.store.activities(&filter).unwrap().is_empty());
    assert_eq!(
        fx.store
            .activities(&ActivityFilter::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn activities_are_found_by_unique_prefix() {
    let (fx, activity) = fixture_with_activity();
    let full = activity.id.to_string();
    assert_eq!(fx.store.find_activity(&full).unwrap(), activity.id);
    assert_eq!(
        fx.store.find_activity(&full[..8].to_uppercase()).unwrap(),
        activity.id
    );
    assert!(matches!(
        fx.store.find_activity("zzzz"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        fx.store.find_activity("ab"),
        Err(StoreError::NotFound(_))
    ));
}

fn link(mailbox: &str, crm: CrmRef) -> SyncLink {
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

#[test]
fn sync_links_round_trip_and_upsert_by_identity() {
    let (mut fx, activity) = fixture_with_activity();
    let mut original = link("alice", CrmRef::Activity(activity.id));
    fx.store.put_link(&original).unwrap();
    assert_eq!(
        fx.store
            .link("alice", ItemKind::Email, &original.identity)
            .unwrap(),
        Some(original.clone())
    );

    // A move is the same identity at a new location: the link is updated, not duplicated.
    original.location = ItemLocation::Imap {
        folder: "Archive".into(),
        uid_validity: 9,
        uid: 1,
    };
    original.base.set("subject", "Hello again");
    fx.store.put_link(&original).unwrap();
    let links = fx.store.links("alice").unwrap();
    assert_eq!(links, vec![original.clone()]);
    assert_eq!(fx.store.link_count("alice", ItemKind::Email).unwrap(), 1);
    assert_eq!(fx.store.link_count("alice", ItemKind::Event).unwrap(), 0);

    // The same message in a second mailbox is a second link to the same activity.
    fx.store
        .put_link(&link("bob", CrmRef::Activity(activity.id)))
        .unwrap();
    let shown = fx.store.activity(activity.id).unwrap();
    let mailboxes: Vec<&str> = shown.links.iter().map(|l| l.mailbox.as_str()).collect();
    assert_eq!(mailboxes, vec!["alice", "bob"]);
    let filter = ActivityFilter {
        activity_type: None,
        mailbox: Some("bob".into()),
    };
    assert_eq!(fx.store.activities(&filter).unwrap().len(), 1);

    assert!(
        fx.store
            .delete_link("alice", ItemKind::Email, &original.identity)
            .unwrap()
    );
    assert!(
        !fx.store
            .delete_link("alice", ItemKind::Email, &original.identity)
            .unwrap()
    );
    assert!(fx.store.links("alice").unwrap().is_empty());
}

#[test]
fn a_link_row_written_badly_by_another_program_is_an_error_not_a_panic() {
    let mut fx = fixture();
    let conn = other_program(&fx.path);
    conn.execute(
        "INSERT INTO sync_links (mailbox, item_kind, item_identity, item_location, crm_kind, crm_id, base, created_by)
         VALUES ('alice', 'email', 'id@x abc', 'imap:1:2:INBOX', 'activity', 'not-a-uuid', '{}', 'mailbox')",
        [],
    )
    .unwrap();
    let error = fx.store.links("alice").unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::BadRow {
                table: "sync_links",
                ..
            }
        ),
        "{error}"
    );
    // The store stays usable.
    fx.store
        .put_sync_state("alice", "INBOX", &SyncState::default())
        .unwrap();
}

#[test]
fn sync_state_and_journal_cursors() {
    let mut fx = fixture();
    assert_eq!(fx.store.sync_state("alice", "INBOX").unwrap(), None);
    let state = SyncState {
        uid_validity: Some(1_700_000_000),
        highest_modseq: Some(u64::from(u32::MAX) + 5),
        sync_token: None,
        last_full_scan: Some("2026-11-29T10:00:00Z".into()),
    };
    fx.store.put_sync_state("alice", "INBOX", &state).unwrap();
    assert_eq!(fx.store.sync_state("alice", "INBOX").unwrap(), Some(state));
    assert!(matches!(
        fx.store.put_sync_state(
            "alice",
            "INBOX",
            &SyncState {
                highest_modseq: Some(u64::MAX),
                ..Default::default()
            }
        ),
        Err(StoreError::Invalid(_))
    ));

    add_user(&mut fx.store, "alice@example.com");
    add_user(&mut fx.store, "bob@example.com");
    let all = fx.store.changes_since(0, 100).unwrap();
    assert!(all.len() >= 4);
    assert_eq!(fx.store.journal_cursor("daemon").unwrap(), 0);
    fx.store.set_journal_cursor("daemon", all[1].seq).unwrap();
    assert_eq!(fx.store.journal_cursor("daemon").unwrap(), all[1].seq);
    assert_eq!(
        fx.store.changes_since(all[1].seq, 100).unwrap(),
        all[2..].to_vec()
    );
    assert_eq!(fx.store.changes_since(0, 2).unwrap(), all[..2].to_vec());

    // Pruning removes what every registered reader has read, once older than the time given.
    let future = "9999-12-31T00:00:00.000Z";
    assert_eq!(
        fx.store.prune_journal("2000-01-01T00:00:00.000Z").unwrap(),
        0
    );
    assert_eq!(
        fx.store.prune_journal(future).unwrap(),
        2,
        "up to the cursor"
    );
    assert_eq!(fx.store.changes_since(0, 100).unwrap(), all[2..].to_vec());
    // It keeps the sequence growing: new entries never reuse a pruned number.
    let last = all.last().unwrap().seq;
    fx.store.set_journal_cursor("daemon", last).unwrap();
    assert_eq!(fx.store.prune_journal(future).unwrap(), all.len() - 2);
    fx.store
        .set_user_sync(&email("bob@example.com"), false)
        .unwrap();
    let next = fx.store.changes_since(0, 100).unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].seq > last);
}

#[test]
fn users_and_their_sync_privilege() {
    let mut fx = fixture();
    fx.store
        .add_user(&NewUser {
            email: email("Alice@Example.com"),
            name: "Alice".into(),
            sync: false,
        })
        .unwrap();
    let duplicate = fx.store.add_user(&NewUser {
        email: email("alice@example.com"),
        name: "Alice 2".into(),
        sync: true,
    });
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))));
    let user = fx
        .store
        .set_user_sync(&email("ALICE@example.com"), true)
        .unwrap();
    assert!(user.sync);
    assert_eq!(user.record.number.as_str(), "USR-1001");
    assert!(matches!(
        fx.store.set_user_sync(&email("nobody@example.com"), true),
        Err(StoreError::NotFound(_))
    ));
    let refused = fx.store.add_record(&NewRecord {
        entity: entity("systemuser"),
        name: "Sneaky".into(),
        emails: vec![],
        number: None,
        parent: None,
        owner: None,
    });
    assert!(matches!(refused, Err(StoreError::Invalid(_))));
}

#[test]
fn a_parent_cycle_is_refused() {
    let mut fx = fixture();
    let a = add_record(&mut fx.store, "account", "A", &[], None);
    let b = add_record(&mut fx.store, "account", "B", &[], None);
    fx.store
        .update_record(&b, &[RecordChange::Parent(Some(a.clone()))])
        .unwrap();
    let cycle = fx
        .store
        .update_record(&a, &[RecordChange::Parent(Some(b.clone()))]);
    assert!(matches!(cycle, Err(StoreError::Invalid(_))), "{cycle:?}");
    let own = fx
        .store
        .update_record(&a, &[RecordChange::Parent(Some(a.clone()))]);
    assert!(matches!(own, Err(StoreError::Invalid(_))));
}

fn item_link(kind: ItemKind, uid: &str, crm: CrmRef) -> SyncLink {
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

fn snapshot(fields: &[(&str, &str)]) -> Snapshot {
    fields
        .iter()
        .fold(Snapshot::new(), |s, (k, v)| s.with(k, v))
}

#[test]
fn tracked_events_round_trip_their_fields_and_refuse_stale_writes() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    add_record(
        &mut fx.store,
        "account",
        "Adventure Works",
        &["dana@adventure-works.com"],
        Some("ACC-1001"),
    );
    let fields = snapshot(&[
        ("subject", "Kickoff"),
        ("location", "Room 2"),
        ("start", "2026-12-01T09:00:00Z"),
        ("end", "2026-12-01T10:00:00Z"),
        ("time_zone", "Europe/Berlin"),
        ("recurrence", "FREQ=WEEKLY;COUNT=4"),
        ("exceptions", "2026-12-15T09:00:00Z"),
        ("status", "tentative"),
        ("organizer", "alice@example.com"),
        ("attendees", "dana@adventure-works.com"),
        ("regarding", "ACC-1001"),
    ]);
    let crm = CrmRef::Activity(crmsync_core::model::ActivityId(uuid::Uuid::new_v4()));
    let link = item_link(ItemKind::Event, "e1@example.com", crm);
    let item = crmsync_store::NewItem {
        kind: ItemKind::Event,
        owner: email("alice@example.com"),
        mailbox: "alice".into(),
        uid: "e1@example.com".into(),
        fields: fields.clone(),
    };
    let tracked = fx
        .store
        .track_items(&[(item.clone(), link.clone())])
        .unwrap()
        .remove(0);
    assert_eq!(tracked.linked, None, "created");
    assert_eq!(tracked.warnings, Vec::<String>::new());
    assert_eq!(fx.store.item_fields(crm).unwrap(), Some(fields.clone()));
    let CrmRef::Activity(id) = crm else {
        unreachable!()
    };
    let row = fx.store.activity(id).unwrap();
    let version = row.version;
    // The same UID tracked from a second mailbox is linked to the same row, not copied.
    let mut bobs = link.clone();
    bobs.mailbox = "bob".into();
    bobs.crm = CrmRef::Activity(crmsync_core::model::ActivityId(uuid::Uuid::new_v4()));
    let again = fx.store.track_items(&[(item, bobs)]).unwrap().remove(0);
    assert_eq!(again.linked, Some(ItemCreator::Mailbox));
    let bob_link = &fx.store.links("bob").unwrap()[0];
    assert_eq!(bob_link.crm, crm);
    assert_eq!(bob_link.crm_version, None, "a merge is due");
    assert_eq!(
        fx.store
            .activities(&ActivityFilter::default())
            .unwrap()
            .len(),
        1
    );
    fx.store
        .delete_link("bob", ItemKind::Event, &bob_link.identity)
        .unwrap();
    assert_eq!(row.regarding.unwrap().number.as_str(), "ACC-1001");
    let dana = row
        .parties
        .iter()
        .find(|p| p.address == "dana@adventure-works.com")
        .unwrap();
    assert_eq!(dana.role, PartyRole::Required);
    assert_eq!(dana.record.as_ref().unwrap().number.as_str(), "ACC-1001");
    // The UID finds the row again (the same meeting in a second calendar).
    assert_eq!(
        fx.store
            .item_by_uid(
                ItemKind::Event,
                "e1@example.com",
                &email("alice@example.com")
            )
            .unwrap(),
        Some((crm, ItemCreator::Mailbox))
    );
    assert_eq!(
        fx.store
            .item_by_uid(
                ItemKind::Task,
                "e1@example.com",
                &email("alice@example.com")
            )
            .unwrap(),
        None
    );

    let writes = [crmsync_core::merge::FieldWrite {
        field: "status".into(),
        value: Some("cancelled".into()),
    }];
    let owner = email("alice@example.com");
    let (new_version, _) = fx
        .store
        .update_item(&link, version, &writes, &owner)
        .unwrap();
    assert!(new_version > version);
    assert_eq!(
        fx.store.activity(id).unwrap().state,
        ActivityState::Cancelled
    );
    // A writer holding the old version is refused: an edit made in between is not lost.
    assert!(matches!(
        fx.store.update_item(&link, version, &writes, &owner),
        Err(StoreError::Conflict(_))
    ));
    fx.store.delete_item(&link).unwrap();
    assert_eq!(fx.store.item_fields(crm).unwrap(), None);
    assert_eq!(fx.store.links("alice").unwrap(), []);
}

#[test]
fn tracked_contacts_find_or_create_their_account_and_crm_rows_reach_the_owner() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    let crm = CrmRef::Record(crmsync_core::model::RecordId(uuid::Uuid::new_v4()));
    let fields = snapshot(&[
        ("name", "Dana Smith"),
        ("given_name", "Dana"),
        ("family_name", "Smith"),
        ("emails", "dana@adventure-works.com,dana@home.example"),
        ("phones", "+1 555 0100"),
        ("organization", "Adventure Works"),
        ("job_title", "Buyer"),
    ]);
    let link = item_link(ItemKind::Contact, "c1", crm);
    let item = crmsync_store::NewItem {
        kind: ItemKind::Contact,
        owner: email("alice@example.com"),
        mailbox: "alice".into(),
        uid: "c1".into(),
        fields: fields.clone(),
    };
    fx.store.track_items(&[(item, link.clone())]).unwrap();
    assert_eq!(fx.store.item_fields(crm).unwrap(), Some(fields));
    let accounts = fx.store.records(Some(&entity("account"))).unwrap();
    assert_eq!(accounts.len(), 1, "ORG created the account");
    assert_eq!(accounts[0].owner.as_deref(), Some("alice@example.com"));
    // The contact is linked, so it is not a CRM-created item to write; a new CRM contact
    // owned by Alice and a CRM appointment for her are.
    assert_eq!(
        fx.store
            .created_items("alice", &email("alice@example.com"), true, true)
            .unwrap(),
        []
    );
    fx.store
        .add_record(&NewRecord {
            entity: entity("contact"),
            name: "Eve Doe".into(),
            emails: vec![email("eve@example.org")],
            number: None,
            parent: Some(accounts[0].record.number.clone()),
            owner: Some(email("alice@example.com")),
        })
        .unwrap();
    fx.store
        .add_activity(&new_activity("alice@example.com", None, &[]))
        .unwrap();
    let created = fx
        .store
        .created_items("alice", &email("alice@example.com"), true, true)
        .unwrap();
    let kinds: Vec<ItemKind> = created.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ItemKind::Event, ItemKind::Contact]);
    assert_eq!(
        created[1].fields.get("organization"),
        Some("Adventure Works")
    );
    assert_eq!(created[1].fields.get("emails"), Some("eve@example.org"));
    // Only what the filter asks for.
    let only_contacts = fx
        .store
        .created_items("alice", &email("alice@example.com"), false, true)
        .unwrap();
    assert_eq!(only_contacts.len(), 1);
    // The item written for a CRM-created row carries the row's id as its UID: found again.
    let uid = created[0].uid.clone();
    assert_eq!(
        fx.store
            .item_by_uid(
                ItemKind::Event,
                &uid.to_ascii_uppercase(),
                &email("alice@example.com")
            )
            .unwrap(),
        Some((created[0].crm, ItemCreator::Crm))
    );
    // The same file reaching Bob (an invitation) is his item, not one the CRM made for him.
    add_user(&mut fx.store, "bob@example.com");
    assert_eq!(
        fx.store
            .item_by_uid(ItemKind::Event, &uid, &email("bob@example.com"))
            .unwrap(),
        Some((created[0].crm, ItemCreator::Mailbox))
    );
}

#[test]
fn one_message_tracked_by_two_mailboxes_at_once_is_one_activity() {
    let mut fx = fixture();
    add_user(&mut fx.store, "alice@example.com");
    add_user(&mut fx.store, "bob@example.com");
    let email_of = |owner: &str, mailbox: &str| crmsync_store::NewEmail {
        owner: email(owner),
        mailbox: mailbox.into(),
        subject: "Quote".into(),
        text_body: Some("Hello".into()),
        html_body: None,
        message_id: "q1@x.example".into(),
        content_hash: "abcd".into(),
        in_reply_to: None,
        references: None,
        outgoing: false,
        date: None,
        parties: Vec::new(),
        attachments: Vec::new(),
        regarding: None,
    };
    let link_of = |mailbox: &str| SyncLink {
        mailbox: mailbox.into(),
        kind: ItemKind::Email,
        identity: ItemIdentity::Email {
            message_id: "q1@x.example".into(),
            content_hash: ContentHash::new("abcd").unwrap(),
        },
        location: ItemLocation::Imap {
            folder: "INBOX".into(),
            uid_validity: 1,
            uid: 1,
        },
        crm: CrmRef::Activity(crmsync_core::model::ActivityId(uuid::Uuid::new_v4())),
        base: Snapshot::new(),
        item_version: None,
        crm_version: None,
        created_by: ItemCreator::Mailbox,
        state: LinkState::Synced,
    };
    // Both workers saw no activity yet and both try to create one.
    let alice = link_of("alice");
    let (first, _) = fx
        .store
        .track_email(&email_of("alice@example.com", "alice"), &alice)
        .unwrap();
    assert_eq!(alice.crm, CrmRef::Activity(first));
    let (second, _) = fx
        .store
        .track_email(&email_of("bob@example.com", "bob"), &link_of("bob"))
        .unwrap();
    assert_eq!(second, first, "linked to the activity that exists");
    let all = fx.store.activities(&ActivityFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].links.len(), 2);
    assert_eq!(all[0].owner, "alice@example.com");
}
