//! The store's sync side on both backends (a SQLite file, a private PostgreSQL): sync links and sync state, the journal's
//! cursors and pruning, tracked email, and tracked events, tasks and contacts.

mod support;

use crmsync_core::item::{ContentHash, ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink};
use crmsync_core::model::{ActivityState, PartyRole};
use crmsync_store::{ActivityChange, ActivityFilter, JournalOp, NewRecord, StoreError, SyncState};
use support::*;

fn sync_links_round_trip_and_upsert_by_identity(on: On) {
    let (mut fx, activity) = fixture_with_activity(on);
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
    // The counts follow every writer, another program's SQL included.
    assert_eq!(fx.store.link_count("alice", ItemKind::Email).unwrap(), 0);
    assert_eq!(fx.store.link_count("bob", ItemKind::Email).unwrap(), 1);
    let mut other = fx.other();
    other
        .execute(
            "UPDATE sync_links SET mailbox = 'carol' WHERE mailbox = 'bob'",
            &[],
        )
        .unwrap();
    assert_eq!(fx.store.link_count("bob", ItemKind::Email).unwrap(), 0);
    assert_eq!(fx.store.link_count("carol", ItemKind::Email).unwrap(), 1);
    other.execute("DELETE FROM sync_links", &[]).unwrap();
    assert_eq!(fx.store.link_count("carol", ItemKind::Email).unwrap(), 0);
}

fn a_link_row_written_badly_by_another_program_is_an_error_not_a_panic(on: On) {
    let mut fx = fixture_on(on);
    let mut conn = fx.other();
    conn.execute(
        "INSERT INTO sync_links (mailbox, item_kind, item_identity, item_location, crm_kind, crm_id, base, created_by)
         VALUES ('alice', 'email', 'id@x abc', 'imap:1:2:INBOX', 'activity', 'not-a-uuid', '{}', 'mailbox')",
        &[],
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

fn sync_state_and_journal_cursors(on: On) {
    let mut fx = fixture_on(on);
    assert_eq!(fx.store.sync_state("alice", "INBOX").unwrap(), None);
    let state = SyncState {
        uid_validity: Some(1_700_000_000),
        highest_modseq: Some(u64::from(u32::MAX) + 5),
        sync_token: None,
        last_full_scan: Some("2026-11-29T10:00:00Z".into()),
        auto_from_uid: Some(42),
        auto_policy: Some("all".into()),
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

    add_user(fx.store.as_mut(), "alice@example.com");
    add_user(fx.store.as_mut(), "bob@example.com");
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

// Long on purpose: one scenario, read top to bottom.
fn tracked_events_round_trip_their_fields_and_refuse_stale_writes(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    add_record(
        fx.store.as_mut(),
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
    // Found by where the item is, and its row's version and owner on their own.
    let at = fx
        .store
        .links_at("alice", std::slice::from_ref(&link.location))
        .unwrap();
    assert_eq!(at.len(), 1);
    assert_eq!(at[0].identity, link.identity);
    assert_eq!(
        fx.store
            .links_at("bob", std::slice::from_ref(&link.location))
            .unwrap(),
        []
    );
    let one = fx
        .store
        .linked_item(crm)
        .unwrap()
        .expect("the row is there");
    assert_eq!(one.version, version);
    assert_eq!(one.owner.as_deref(), Some("alice@example.com"));
    assert_eq!(
        fx.store.linked_items("alice").unwrap().get(&crm),
        Some(&one)
    );
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
    assert_eq!(
        fx.store.linked_item(crm).unwrap().map(|l| l.version),
        Some(new_version)
    );
    fx.store.delete_item(&link).unwrap();
    assert_eq!(fx.store.item_fields(crm).unwrap(), None);
    assert_eq!(fx.store.linked_item(crm).unwrap(), None);
    assert_eq!(
        fx.store
            .links_at("alice", std::slice::from_ref(&link.location))
            .unwrap(),
        []
    );
    assert_eq!(fx.store.links("alice").unwrap(), []);
}

// Long on purpose: one scenario, read top to bottom.
fn tracked_contacts_find_or_create_their_account_and_crm_rows_reach_the_owner(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
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
    add_user(fx.store.as_mut(), "bob@example.com");
    assert_eq!(
        fx.store
            .item_by_uid(ItemKind::Event, &uid, &email("bob@example.com"))
            .unwrap(),
        Some((created[0].crm, ItemCreator::Mailbox))
    );
}

fn one_message_tracked_by_two_mailboxes_at_once_is_one_activity(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    add_user(fx.store.as_mut(), "bob@example.com");
    // Both workers saw no activity yet and both try to create one.
    let (email, alice) = tracked_message(1, "alice@example.com", "alice");
    let (first, _) = fx.store.track_email(&email, &alice).unwrap();
    assert_eq!(alice.crm, CrmRef::Activity(first));
    let (email, bob) = tracked_message(1, "bob@example.com", "bob");
    let (second, _) = fx.store.track_email(&email, &bob).unwrap();
    assert_eq!(second, first, "linked to the activity that exists");
    let all = fx.store.activities(&ActivityFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].links.len(), 2);
    assert_eq!(all[0].owner, "alice@example.com");
}

/// Message `n`, owned by `owner`, as the email pass of `mailbox` hands it to the store.
fn tracked_message(n: u32, owner: &str, mailbox: &str) -> (crmsync_store::NewEmail, SyncLink) {
    let id = format!("b{n}@x.example");
    let email = crmsync_store::NewEmail {
        owner: email(owner),
        mailbox: mailbox.into(),
        subject: format!("Batch {n}"),
        text_body: Some("Hello".into()),
        html_body: None,
        message_id: id.clone(),
        content_hash: "abcd".into(),
        in_reply_to: None,
        references: None,
        outgoing: false,
        date: None,
        parties: Vec::new(),
        attachments: Vec::new(),
        regarding: None,
        automatic: false,
    };
    let link = SyncLink {
        mailbox: mailbox.into(),
        kind: ItemKind::Email,
        identity: ItemIdentity::Email {
            message_id: id,
            content_hash: ContentHash::new("abcd").unwrap(),
        },
        location: ItemLocation::Imap {
            folder: "INBOX".into(),
            uid_validity: 1,
            uid: n,
        },
        crm: CrmRef::Activity(crmsync_core::model::ActivityId(uuid::Uuid::new_v4())),
        base: Snapshot::new(),
        item_version: None,
        crm_version: None,
        created_by: ItemCreator::Mailbox,
        state: LinkState::Synced,
    };
    (email, link)
}

/// A batch of tracked messages is one transaction: all of them, or, when one cannot be
/// stored (its owner is no CRM user here), none; each good one is then stored on its own.
fn a_batch_of_tracked_messages_is_stored_whole_or_not_at_all(on: On) {
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let message = |n: u32, owner: &str| tracked_message(n, owner, "alice");
    let good: Vec<_> = (1..=3).map(|n| message(n, "alice@example.com")).collect();
    let stored = fx.store.track_emails(&good).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(
        fx.store
            .activities(&ActivityFilter::default())
            .unwrap()
            .len(),
        3
    );

    let mixed = vec![
        message(4, "alice@example.com"),
        message(5, "nobody@example.com"),
        message(6, "alice@example.com"),
    ];
    assert!(fx.store.track_emails(&mixed).is_err());
    assert_eq!(
        fx.store
            .activities(&ActivityFilter::default())
            .unwrap()
            .len(),
        3,
        "none of the refused batch"
    );
    for (email, link) in [&mixed[0], &mixed[2]] {
        fx.store.track_email(email, link).unwrap();
    }
    assert_eq!(
        fx.store
            .activities(&ActivityFilter::default())
            .unwrap()
            .len(),
        5
    );
}

fn the_journal_holds_one_row_per_changed_activity_per_transaction(on: On) {
    use crmsync_store::{NewAttachment, NewParty};
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let head = fx.store.journal_head().unwrap();
    // Three emails of four parties and an attachment each: every party and attachment is a
    // change of its activity, made in the transaction that creates it.
    let batch: Vec<_> = (1..=3)
        .map(|n| {
            let (mut new, link) = tracked_message(n, "alice@example.com", "alice");
            new.parties = ["from", "to", "cc", "bcc"]
                .iter()
                .map(|role| NewParty {
                    role: PartyRole::parse(role).unwrap(),
                    address: email(&format!("{role}{n}@x.example")),
                    display_name: None,
                    group: None,
                })
                .collect();
            new.attachments = vec![NewAttachment {
                name: "a.pdf".into(),
                content_type: "application/pdf".into(),
                content: vec![1, 2, 3],
            }];
            (new, link)
        })
        .collect();
    let stored = fx.store.track_emails(&batch).unwrap();
    let journal = |fx: &Fixture, after: i64| -> Vec<(String, JournalOp, Option<String>)> {
        fx.store
            .changes_since(after, 1000)
            .unwrap()
            .into_iter()
            .map(|c| (c.row_id, c.op, c.origin))
            .collect()
    };
    let inserted: Vec<_> = stored
        .iter()
        .map(|(id, _)| (id.to_string(), JournalOp::Insert, Some("test".to_owned())))
        .collect();
    assert_eq!(journal(&fx, head), inserted, "one row per new activity");
    let first = fx.store.activity(stored[0].0).unwrap();
    assert_eq!(first.parties.len(), 4);
    assert_eq!(first.attachments.len(), 1);

    // Changed twice, in two transactions: journaled twice (a reader may have read between).
    let head = fx.store.journal_head().unwrap();
    for subject in ["Changed once", "Changed twice"] {
        fx.store
            .update_activity(stored[0].0, &[ActivityChange::Subject(subject.into())])
            .unwrap();
    }
    let update = (
        stored[0].0.to_string(),
        JournalOp::Update,
        Some("test".to_owned()),
    );
    assert_eq!(journal(&fx, head), vec![update.clone(), update]);
    let version = fx.store.activity(stored[0].0).unwrap().version;

    // Another program's plain SQL is journaled row by row, as before, and bumps the version.
    let head = fx.store.journal_head().unwrap();
    let mut conn = fx.other();
    conn.execute(
        "INSERT INTO parties (activity_id, position, role, address) VALUES (?1, 9, 'cc', 'z@x.example')",
        &[&stored[0].0.to_string()],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM attachments WHERE activity_id = ?1",
        &[&stored[0].0.to_string()],
    )
    .unwrap();
    let update = (stored[0].0.to_string(), JournalOp::Update, None);
    assert_eq!(journal(&fx, head), vec![update.clone(), update]);
    assert_eq!(fx.store.activity(stored[0].0).unwrap().version, version + 2);
}

fn the_failed_items_list_keeps_what_fails_drops_what_is_resolved_and_forgets_old_rows(on: On) {
    use crmsync_store::ItemFailure;
    let mut fx = fixture_on(on);
    let failure = |scope: &str, item: &str, reason: &str| ItemFailure {
        scope: scope.into(),
        item: item.into(),
        reason: reason.into(),
    };
    let long_ago = "2000-01-01T00:00:00.000Z";
    let failed = [
        failure("email", "INBOX:7", "no header could be read"),
        failure("calendar", "e1.ics", "not an iCalendar object"),
    ];
    fx.store
        .record_failures("alice", &failed, &[], long_ago)
        .unwrap();
    fx.store
        .record_failures(
            "bob",
            &[failure("email", "INBOX:7", "other")],
            &[],
            long_ago,
        )
        .unwrap();
    let alice = fx.store.failed_items(Some("alice"), long_ago).unwrap();
    assert_eq!(alice.len(), 2);
    assert!(
        alice
            .iter()
            .all(|f| f.attempts == 1 && f.mailbox == "alice")
    );
    assert_eq!(fx.store.failed_items(None, long_ago).unwrap().len(), 3);

    // Failing again: one row, the new reason, two attempts, the first time kept.
    let first = alice
        .iter()
        .find(|f| f.failure.scope == "email")
        .unwrap()
        .clone();
    fx.store
        .record_failures(
            "alice",
            &[failure("email", "INBOX:7", "fetching it: connection reset")],
            &[("calendar".into(), "e1.ics".into())],
            long_ago,
        )
        .unwrap();
    let alice = fx.store.failed_items(Some("alice"), long_ago).unwrap();
    assert_eq!(
        alice.len(),
        1,
        "the resolved calendar item is gone: {alice:?}"
    );
    assert_eq!(alice[0].failure.reason, "fetching it: connection reset");
    assert_eq!(alice[0].attempts, 2);
    assert_eq!(alice[0].first_failed, first.first_failed);
    assert!(alice[0].last_failed >= first.last_failed);

    // Only rows failed since `since` are listed; rows before `forget_before` are dropped.
    assert!(
        fx.store
            .failed_items(Some("alice"), "2999-01-01T00:00:00Z")
            .unwrap()
            .is_empty()
    );
    fx.store
        .record_failures("carol", &[], &[], "2999-01-01T00:00:00Z")
        .unwrap();
    assert!(fx.store.failed_items(None, long_ago).unwrap().is_empty());
}

fn automatic_tracking_looks_up_many_addresses_threads_and_senders_at_once(on: On) {
    use crmsync_core::model::EmailAddress;
    let mut fx = fixture_on(on);
    add_record(
        fx.store.as_mut(),
        "contact",
        "Dana",
        &["Dana@Adventure-Works.com"],
        None,
    );
    let addresses: Vec<EmailAddress> = ["dana@adventure-works.com", "nobody@else.example"]
        .iter()
        .map(|a| email(a))
        .collect();
    let found = fx.store.records_with_emails(&addresses).unwrap();
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["dana@adventure-works.com"],
        "case-insensitive, and only addresses a record carries"
    );
    assert_eq!(
        found["dana@adventure-works.com"][0].entity.as_str(),
        "contact"
    );
    // Many at once: more than one IN list.
    let many: Vec<EmailAddress> = (0..450)
        .map(|n| email(&format!("n{n}@x.example")))
        .chain(addresses.iter().cloned())
        .collect();
    assert_eq!(fx.store.records_with_emails(&many).unwrap().len(), 1);

    // No email is tracked yet: no thread, no recent email (the Dovecot tests of replies and
    // of the loop guard count real ones).
    let none = fx.store.email_threads(&["t@x.example".to_owned()]).unwrap();
    assert!(none.is_empty());
    let key = ("erin@x.example".to_owned(), "Offer".to_owned());
    let counts = fx
        .store
        .recent_emails(std::slice::from_ref(&key), "2000-01-01T00:00:00Z")
        .unwrap();
    assert_eq!(counts[&key], 0, "every key asked for is answered");
}

fn a_send_goes_through_its_phases_and_only_one_mailbox_takes_it(on: On) {
    use crmsync_core::model::ActivityType;
    use crmsync_core::outbound::Phase;
    use crmsync_store::SendRecord;
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let mut email_activity = new_activity(
        "alice@example.com",
        None,
        &[(PartyRole::To, "dana@x.example")],
    );
    email_activity.activity_type = ActivityType::Email;
    email_activity.state = Some(ActivityState::PendingSend);
    let id = fx.store.add_activity(&email_activity).unwrap().id;
    let alice = email("alice@example.com");
    let outbox = fx.store.outbox("work", &alice).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].phase, None);

    assert!(
        fx.store
            .record_send("work", id, &SendRecord::Claim)
            .unwrap()
    );
    assert!(
        !fx.store
            .record_send("home", id, &SendRecord::Claim)
            .unwrap(),
        "another mailbox of the same owner does not take it while it is sent"
    );
    let commit = SendRecord::Commit {
        message_id: "crm.x@example.com",
        content_hash: "abc",
        raw: b"Subject: x\r\n\r\n",
    };
    fx.store.record_send("work", id, &commit).unwrap();
    let committing = &fx.store.outbox("work", &alice).unwrap()[0];
    assert_eq!(committing.phase, Some(Phase::Committing));
    assert_eq!(committing.raw.as_deref(), Some(&b"Subject: x\r\n\r\n"[..]));
    fx.store
        .record_send(
            "work",
            id,
            &SendRecord::Accepted {
                sent_at: "2026-12-02T06:00:00Z",
            },
        )
        .unwrap();
    let row = fx.store.activity(id).unwrap();
    assert_eq!(row.state, ActivityState::Sent);
    assert_eq!(row.message_id.as_deref(), Some("crm.x@example.com"));
    assert_eq!(row.sent.as_deref(), Some("2026-12-02T06:00:00Z"));
    // Sent, its copy not yet in Sent: still in this mailbox's outbox, not another's.
    assert_eq!(
        fx.store.outbox("work", &alice).unwrap()[0].phase,
        Some(Phase::Accepted)
    );
    assert!(fx.store.outbox("home", &alice).unwrap().is_empty());
    assert!(
        !fx.store
            .record_send("work", id, &SendRecord::Claim)
            .unwrap(),
        "sent is sent"
    );

    // Another one fails after a retry, and a person sends it again.
    let second = fx.store.add_activity(&email_activity).unwrap().id;
    fx.store
        .record_send("work", second, &SendRecord::Claim)
        .unwrap();
    let retry = SendRecord::Retry {
        reason: "421 busy",
        next_attempt: "2026-12-02T06:01:00Z",
    };
    fx.store.record_send("work", second, &retry).unwrap();
    let item = fx
        .store
        .outbox("work", &alice)
        .unwrap()
        .into_iter()
        .find(|i| i.activity.id == second)
        .unwrap();
    assert_eq!((item.phase, item.attempts), (Some(Phase::Retry), 1));
    assert_eq!(item.last_error.as_deref(), Some("421 busy"));
    fx.store
        .record_send("work", second, &SendRecord::Claim)
        .unwrap();
    fx.store
        .record_send(
            "work",
            second,
            &SendRecord::Failed {
                reason: "550 no such user",
            },
        )
        .unwrap();
    assert_eq!(
        fx.store.activity(second).unwrap().state,
        ActivityState::SendFailed
    );
    assert!(
        fx.store.resend(id).is_err(),
        "a sent email is not sent again"
    );
    let again = fx.store.resend(second).unwrap();
    assert_eq!(again.state, ActivityState::PendingSend);
    let item = fx
        .store
        .outbox("home", &alice)
        .unwrap()
        .into_iter()
        .find(|i| i.activity.id == second)
        .unwrap();
    assert_eq!(
        (item.phase, item.attempts),
        (None, 0),
        "the earlier attempts are forgotten"
    );
}

fn a_send_is_moved_on_only_by_the_mailbox_that_holds_it(on: On) {
    use crmsync_core::model::ActivityType;
    use crmsync_core::outbound::Phase;
    use crmsync_store::SendRecord;
    let mut fx = fixture_on(on);
    add_user(fx.store.as_mut(), "alice@example.com");
    let mut new = new_activity(
        "alice@example.com",
        None,
        &[(PartyRole::To, "dana@x.example")],
    );
    new.activity_type = ActivityType::Email;
    new.state = Some(ActivityState::PendingSend);
    let id = fx.store.add_activity(&new).unwrap().id;
    assert!(
        fx.store
            .record_send("work", id, &SendRecord::Claim)
            .unwrap()
    );
    let commit = SendRecord::Commit {
        message_id: "crm.y@example.com",
        content_hash: "def",
        raw: b"Subject: y\r\n\r\n",
    };
    assert!(
        !fx.store.record_send("home", id, &commit).unwrap(),
        "another mailbox cannot commit a send it does not hold"
    );
    assert!(fx.store.record_send("work", id, &commit).unwrap());
    let accepted = SendRecord::Accepted {
        sent_at: "2026-12-02T06:00:00Z",
    };
    assert!(!fx.store.record_send("home", id, &accepted).unwrap());
    // Found committing by another mailbox whose holder is gone: settled as uncertain, and
    // the old holder cannot call it sent afterwards.
    let alice = email("alice@example.com");
    assert_eq!(
        fx.store.outbox("home", &alice).unwrap()[0].phase,
        Some(Phase::Committing)
    );
    let uncertain = SendRecord::Uncertain { reason: "gone" };
    assert!(fx.store.record_send("home", id, &uncertain).unwrap());
    assert_eq!(
        fx.store.activity(id).unwrap().state,
        ActivityState::SendUncertain
    );
    assert!(!fx.store.record_send("work", id, &accepted).unwrap());
    assert_eq!(
        fx.store.activity(id).unwrap().state,
        ActivityState::SendUncertain
    );
}

on_both!(
    sync_links_round_trip_and_upsert_by_identity,
    a_link_row_written_badly_by_another_program_is_an_error_not_a_panic,
    sync_state_and_journal_cursors,
    tracked_events_round_trip_their_fields_and_refuse_stale_writes,
    tracked_contacts_find_or_create_their_account_and_crm_rows_reach_the_owner,
    one_message_tracked_by_two_mailboxes_at_once_is_one_activity,
    a_batch_of_tracked_messages_is_stored_whole_or_not_at_all,
    the_journal_holds_one_row_per_changed_activity_per_transaction,
    the_failed_items_list_keeps_what_fails_drops_what_is_resolved_and_forgets_old_rows,
    automatic_tracking_looks_up_many_addresses_threads_and_senders_at_once,
    a_send_goes_through_its_phases_and_only_one_mailbox_takes_it,
    a_send_is_moved_on_only_by_the_mailbox_that_holds_it,
);
