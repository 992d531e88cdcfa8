//! The store's schema and CRM data, on both backends (a SQLite file, a private PostgreSQL):
//! migrations, the change journal, records, users, activities and their parties, including
//! writes by a second connection that uses plain SQL the way another program would. The sync
//! side (links, tracked email and items) is in `sync.rs`.

mod support;

use crmsync_core::item::ItemKind;
use crmsync_core::link::{CrmRef, LinkState};
use crmsync_core::model::{ActivityState, ActivityType, PartyRole, RecordNumber};
use crmsync_store::prelude::*;
use crmsync_store::{
    ActivityChange, ActivityFilter, JournalEntity, JournalOp, MIGRATIONS, NewConnection, NewRecord,
    NewUser, PgDatabase, PgOptions, RecordChange, SqliteStore, StoreError,
};
use rusqlite::Connection;
use support::*;

#[test]
fn migrations_from_empty_and_rerun_are_idempotent() {
    let fx = fixture();
    let latest = MIGRATIONS.last().unwrap().version;
    drop(fx.store);
    let store = SqliteStore::open(&fx.path, "test", RULES).unwrap();
    assert_eq!(
        store.applied_migrations().unwrap(),
        (1..=latest).collect::<Vec<_>>()
    );
    drop(store);

    // Reopening runs nothing again and changes nothing.
    let conn = other_program(&fx.path);
    let tables_before = count(&conn, "SELECT count(*) FROM sqlite_master");
    let store = SqliteStore::open(&fx.path, "test", RULES).unwrap();
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
        let store = SqliteStore::open(&path, "test", RULES).unwrap();
        assert_eq!(store.applied_migrations().unwrap().len(), MIGRATIONS.len());
    }
}

#[test]
fn the_link_counts_of_a_store_from_before_migration_16_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.sqlite3");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
         applied_at TEXT NOT NULL DEFAULT 'then')",
    )
    .unwrap();
    for migration in MIGRATIONS.iter().filter(|m| m.version < 16) {
        conn.execute_batch(migration.sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            rusqlite::params![migration.version, migration.name],
        )
        .unwrap();
    }
    for (mailbox, kind, n) in [
        ("alice", "event", 1),
        ("alice", "event", 2),
        ("bob", "contact", 3),
    ] {
        conn.execute(
            "INSERT INTO sync_links (mailbox, item_kind, item_identity, item_location, crm_kind,
                 crm_id, created_by)
             VALUES (?1, ?2, ?3, 'vdir:calendar:x.ics', 'activity', ?4, 'mailbox')",
            rusqlite::params![
                mailbox,
                kind,
                format!("uid{n}"),
                uuid::Uuid::new_v4().to_string()
            ],
        )
        .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&path, "test", RULES).unwrap();
    assert_eq!(store.link_count("alice", ItemKind::Event).unwrap(), 2);
    assert_eq!(store.link_count("alice", ItemKind::Contact).unwrap(), 0);
    assert_eq!(store.link_count("bob", ItemKind::Contact).unwrap(), 1);
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
    match SqliteStore::open(&fx.path, "test", RULES) {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer store was opened"),
    }
}

#[test]
fn postgres_migrations_run_once_and_a_newer_database_is_refused() {
    let fx = fixture_on(On::Postgres);
    let options = PgOptions {
        url: fx.url.clone(),
        password: None,
        tls: None,
        pool_size: 1,
    };
    // A second process opening the same database runs nothing again.
    let database = PgDatabase::connect(&options).unwrap();
    assert_eq!(database.applied_migrations().unwrap(), vec![1]);
    assert_eq!(
        fx.count("SELECT count(*) FROM entities WHERE builtin = 1"),
        6
    );
    assert_eq!(
        fx.count("SELECT length(value) FROM installation WHERE name = 'tracking_key'"),
        32
    );
    let mut other = fx.other();
    other
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')",
            &[],
        )
        .unwrap();
    match PgDatabase::connect(&options) {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer database was opened"),
    }
    // A URL carrying a password is refused: passwords come from files.
    let with_password = PgOptions {
        url: fx.url.replace("postgres@", "postgres:secret@"),
        ..options
    };
    let error = PgDatabase::connect(&with_password)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("password_file"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}

#[test]
fn opening_in_a_missing_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere").join("crm.sqlite3");
    let error = SqliteStore::open(&path, "test", RULES)
        .err()
        .expect("must fail");
    let message = error.to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("nowhere"), "{message}");
}

fn plain_sql_writes_by_another_program_reach_the_journal(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let cursor = fx.store.changes_since(0, 1000).unwrap().last().unwrap().seq;

    let mut conn = fx.other();
    conn.execute(
        "INSERT INTO records (id, entity, number, name)
         VALUES ('11111111-2222-3333-4444-555555555555', 'account', 'ACC-9001', 'Fabrikam')",
        &[],
    )
    .unwrap();
    conn.execute(
        "UPDATE records SET name = 'Fabrikam Inc' WHERE number = 'ACC-9001'",
        &[],
    )
    .unwrap();
    conn.execute("UPDATE users SET sync = 0", &[]).unwrap();

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
        &[],
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

fn child_rows_written_by_another_program_change_their_parent(on: On) {
    let (fx, activity) = fixture_with_activity(on);
    let cursor = fx.store.changes_since(0, 1000).unwrap().last().unwrap().seq;

    let mut conn = fx.other();
    conn.execute(
        "INSERT INTO parties (activity_id, position, role, address) VALUES (?1, 0, 'required', 'x@example.org')",
        &[&activity.id.to_string()],
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

fn record_numbers_are_unique(on: On) {
    let mut fx = fixture_on(on);
    let first = add_record(fx.store.as_mut(), "account", "Adventure Works", &[], None);
    assert_eq!(first.as_str(), "ACC-1001");
    // A number given by hand is skipped by the automatic sequence.
    add_record(
        fx.store.as_mut(),
        "account",
        "Contoso",
        &[],
        Some("acc-1002"),
    );
    let third = add_record(fx.store.as_mut(), "account", "Fabrikam", &[], None);
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
    let mut conn = fx.other();
    let result = conn.execute(
        "INSERT INTO records (id, entity, number, name) VALUES ('x', 'account', 'acc-1001', 'Dup')",
        &[],
    );
    let error = result.unwrap_err().to_lowercase();
    assert!(error.contains("unique"), "{error}");
}

fn custom_entities_get_their_own_number_prefix(on: On) {
    let mut fx = fixture_on(on);
    let project = add_record(fx.store.as_mut(), "project", "Migration", &[], None);
    assert_eq!(project.as_str(), "PRO-1001");
    // "prospect" also starts with PRO: it gets a prefix of its own.
    let prospect = add_record(fx.store.as_mut(), "prospect", "Maybe", &[], None);
    assert_eq!(prospect.as_str(), "PROSPECT-1001");
    let listed = fx.store.records(Some(&entity("project"))).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record.entity.as_str(), "project");
}

fn deleting_a_regarded_record_is_refused_through_the_store_and_through_sql(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let account = add_record(fx.store.as_mut(), "account", "Adventure Works", &[], None);
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
    let mut conn = fx.other();
    let error = conn
        .execute("DELETE FROM records WHERE number = ?1", &[account.as_str()])
        .unwrap_err();
    assert!(error.to_string().contains("regarding record"), "{error}");
    assert!(fx.store.record(&account).is_ok());

    // Nor can the owner of activities go.
    let error = conn.execute("DELETE FROM users", &[]).unwrap_err();
    assert!(error.to_string().contains("owns activities"), "{error}");
}

fn deleting_a_record_leaves_no_dangling_row_even_with_foreign_keys_off(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let account = add_record(
        fx.store.as_mut(),
        "account",
        "Adventure Works",
        &["info@adventure-works.com"],
        None,
    );
    let contact = add_record(
        fx.store.as_mut(),
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

    let mut conn = fx.other();
    conn.execute("DELETE FROM records WHERE number = ?1", &[account.as_str()])
        .unwrap();

    let contact_row = fx.store.record(&contact).unwrap();
    assert_eq!(contact_row.parent, None);
    assert!(fx.store.connections(&contact).unwrap().is_empty());
    let party = &fx.store.activity(activity.id).unwrap().parties[0];
    assert_eq!(party.record, None);
    assert_eq!(party.address, "info@adventure-works.com");
    let mut conn = fx.other();
    let account_id = "(SELECT id FROM records WHERE number = 'ACC-1001')";
    assert_eq!(
        conn.count(
            "SELECT count(*) FROM record_emails WHERE record_id NOT IN (SELECT id FROM records)"
        ),
        0
    );
    assert_eq!(
        conn.count(&format!(
            "SELECT count(*) FROM connections WHERE record1_id = {account_id}"
        )),
        0
    );
    if on == On::Sqlite {
        assert_eq!(
            conn.count("SELECT count(*) FROM pragma_foreign_key_check"),
            0
        );
    }
}

fn deleting_an_activity_removes_its_rows_and_marks_its_links(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
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

    let mut conn = fx.other();
    conn.execute(
        "DELETE FROM activities WHERE id = ?1",
        &[&activity.id.to_string()],
    )
    .unwrap();
    assert_eq!(conn.count("SELECT count(*) FROM parties"), 0);
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

fn parties_resolve_by_rank_and_keep_candidates_when_ambiguous(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    add_record(
        fx.store.as_mut(),
        "contact",
        "Alice as contact",
        &["Alice@Example.com"],
        None,
    );
    let dana1 = add_record(
        fx.store.as_mut(),
        "contact",
        "Dana One",
        &["dana@example.org"],
        None,
    );
    let dana2 = add_record(
        fx.store.as_mut(),
        "contact",
        "Dana Two",
        &["dana@example.org"],
        None,
    );
    add_record(
        fx.store.as_mut(),
        "lead",
        "Dana Lead",
        &["dana@example.org"],
        None,
    );
    let lead = add_record(fx.store.as_mut(), "lead", "Lee", &["lee@example.net"], None);

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

fn activity_fields_states_and_regarding(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let account = add_record(fx.store.as_mut(), "account", "Adventure Works", &[], None);
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

fn activities_are_found_by_unique_prefix(on: On) {
    let (fx, activity) = fixture_with_activity(on);
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

fn users_and_their_sync_privilege(on: On) {
    let mut fx = fixture_on(on);
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

fn a_parent_cycle_is_refused(on: On) {
    let mut fx = fixture_on(on);
    let a = add_record(fx.store.as_mut(), "account", "A", &[], None);
    let b = add_record(fx.store.as_mut(), "account", "B", &[], None);
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

on_both!(
    plain_sql_writes_by_another_program_reach_the_journal,
    child_rows_written_by_another_program_change_their_parent,
    record_numbers_are_unique,
    custom_entities_get_their_own_number_prefix,
    deleting_a_regarded_record_is_refused_through_the_store_and_through_sql,
    deleting_a_record_leaves_no_dangling_row_even_with_foreign_keys_off,
    deleting_an_activity_removes_its_rows_and_marks_its_links,
    parties_resolve_by_rank_and_keep_candidates_when_ambiguous,
    activity_fields_states_and_regarding,
    activities_are_found_by_unique_prefix,
    users_and_their_sync_privilege,
    a_parent_cycle_is_refused,
);
