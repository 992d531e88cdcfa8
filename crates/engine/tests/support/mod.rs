//! What the engine's model tests share: a crash switch, a store that stops writing once the
//! switch has tripped (a process killed between two writes writes nothing more), and an
//! in-memory mailbox behind the engine's `MailStore` trait.
#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod memory_mail;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, Snapshot, SyncLink};
use crmsync_core::merge::FieldWrite;
use crmsync_core::model::{ActivityId, EmailAddress, EntityName, RecordNumber};
use crmsync_core::resolve::Candidate;
use crmsync_store::*;

/// How many more writes (to the store or the mailbox) happen before the "process" dies; a
/// negative budget never runs out.
#[derive(Clone, Debug)]
pub struct CrashSwitch(Arc<AtomicI64>);

impl CrashSwitch {
    pub fn never() -> CrashSwitch {
        CrashSwitch(Arc::new(AtomicI64::new(-1)))
    }

    /// The next `writes` writes happen; every one after them fails.
    pub fn after(&self, writes: u32) {
        self.0.store(i64::from(writes), Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.0.store(-1, Ordering::SeqCst);
    }

    pub fn crashed(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }

    /// One write: allowed while the budget lasts.
    pub fn spend(&self) -> bool {
        let left = self.0.load(Ordering::SeqCst);
        match left {
            0 => false,
            n if n < 0 => true,
            n => {
                self.0.store(n - 1, Ordering::SeqCst);
                true
            }
        }
    }
}

/// A store whose writes stop at the crash switch.
pub struct CrashingStore<S> {
    pub inner: S,
    pub switch: CrashSwitch,
}

impl<S> CrashingStore<S> {
    fn write(&self) -> Result<()> {
        if self.switch.spend() {
            Ok(())
        } else {
            Err(StoreError::Unavailable("the process was killed".into()))
        }
    }
}

macro_rules! reads {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> Result<$ret> { self.inner.$name($($arg),*) })*
    };
}

macro_rules! writes {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&mut self, $($arg: $ty),*) -> Result<$ret> {
            self.write()?;
            self.inner.$name($($arg),*)
        })*
    };
}

impl<S: UserStore> UserStore for CrashingStore<S> {
    reads! {
        users() -> Vec<UserRow>;
        user(email: &EmailAddress) -> UserRow;
    }
    writes! {
        add_user(user: &NewUser) -> UserRow;
        set_user_sync(email: &EmailAddress, sync: bool) -> UserRow;
    }
}

impl<S: RecordStore> RecordStore for CrashingStore<S> {
    reads! {
        records(entity: Option<&EntityName>) -> Vec<RecordRow>;
        record(number: &RecordNumber) -> RecordRow;
        records_with_email(address: &EmailAddress) -> Vec<Candidate>;
        records_with_emails(addresses: &[EmailAddress]) -> HashMap<String, Vec<Candidate>>;
        connections(number: &RecordNumber) -> Vec<ConnectionRow>;
    }
    writes! {
        add_record(record: &NewRecord) -> RecordRow;
        update_record(number: &RecordNumber, changes: &[RecordChange]) -> RecordRow;
        delete_record(number: &RecordNumber) -> ();
        add_connection(connection: &NewConnection) -> ();
    }
}

impl<S: ActivityStore> ActivityStore for CrashingStore<S> {
    reads! {
        activities(filter: &ActivityFilter) -> Vec<ActivityRow>;
        find_activity(id_or_prefix: &str) -> ActivityId;
        activity(id: ActivityId) -> ActivityRow;
    }
    writes! {
        add_activity(activity: &NewActivity) -> ActivityRow;
        update_activity(id: ActivityId, changes: &[ActivityChange]) -> ActivityRow;
        delete_activity(id: ActivityId) -> ();
    }
}

impl<S: EmailStore> EmailStore for CrashingStore<S> {
    reads! {
        email_activities(identities: &[(&str, &str)]) -> HashMap<(String, String), ActivityId>;
        tombstones(mailbox: &str) -> std::collections::BTreeSet<String>;
        email_threads(message_ids: &[String]) -> std::collections::BTreeMap<String, crmsync_core::auto::TrackedThread>;
        activity_threads(activities: &[ActivityId]) -> std::collections::BTreeMap<ActivityId, crmsync_core::auto::TrackedThread>;
        tracking_key() -> crmsync_core::token::TokenKey;
        recent_emails(keys: &[(String, String)], since: &str) -> std::collections::BTreeMap<(String, String), u32>;
        never_entries(mailbox: Option<&str>) -> Vec<(Option<String>, crmsync_core::auto::NeverEntry)>;
        linked_activities(mailbox: &str) -> HashMap<ActivityId, LinkedActivity>;
    }
    writes! {
        track_email(email: &NewEmail, link: &SyncLink) -> (ActivityId, Option<String>);
        track_emails(batch: &[(NewEmail, SyncLink)]) -> Vec<(ActivityId, Option<String>)>;
        update_link(link: &SyncLink, regarding: Option<Option<&RecordNumber>>) -> Option<String>;
        update_links(links: &[(SyncLink, Option<Option<&RecordNumber>>)]) -> Vec<Option<String>>;
        untrack_and_delete(link: &SyncLink) -> ();
        untrack_link(mailbox: &str, identity: &ItemIdentity) -> bool;
        add_never(mailbox: Option<&str>, entry: &crmsync_core::auto::NeverEntry) -> bool;
        remove_never(mailbox: Option<&str>, entry: &crmsync_core::auto::NeverEntry) -> bool;
        purge_automatic(mailbox: Option<&str>, entry: &crmsync_core::auto::NeverEntry) -> u64;
    }
}

impl<S: ItemStore> ItemStore for CrashingStore<S> {
    reads! {
        linked_items(mailbox: &str) -> HashMap<CrmRef, LinkedItem>;
        linked_item(crm: CrmRef) -> Option<LinkedItem>;
        item_fields(crm: CrmRef) -> Option<Snapshot>;
        item_by_uid(kind: ItemKind, uid: &str, owner: &EmailAddress) -> Option<(CrmRef, ItemCreator)>;
        created_items(mailbox: &str, owner: &EmailAddress, calendar: bool, contacts: bool) -> Vec<CreatedItem>;
    }
    writes! {
        track_items(items: &[(NewItem, SyncLink)]) -> Vec<Tracked>;
        link_item(link: &SyncLink, uid: &str) -> i64;
        update_item(link: &SyncLink, expected_version: i64, writes: &[FieldWrite], owner: &EmailAddress) -> (i64, Vec<String>);
        delete_item(link: &SyncLink) -> ();
    }
}

impl<S: ConflictStore> ConflictStore for CrashingStore<S> {
    reads! {
        conflicts(mailbox: Option<&str>, limit: usize) -> Vec<ConflictRow>;
    }
    writes! {
        log_conflict(conflict: &ConflictRow) -> ();
    }
}

impl<S: ConnectionStore> ConnectionStore for CrashingStore<S> {
    reads! {
        connections_of(end: &Connectable) -> Vec<Connection>;
    }
    writes! {
        connect(one: &Connectable, one_role: Option<&str>, two: &Connectable, two_role: Option<&str>) -> ();
        disconnect(one: &Connectable, two: &Connectable) -> u64;
        convert_activity(activity: ActivityId, record: &NewRecord) -> RecordRow;
    }
}

impl<S: LibraryStore> LibraryStore for CrashingStore<S> {
    reads! {
        templates() -> Vec<Template>;
        template(name: &str) -> Template;
        articles() -> Vec<Article>;
        article(number: &str) -> Article;
        literature_list() -> Vec<Literature>;
        literature(name: &str) -> Literature;
    }
    writes! {
        add_template(template: &Template) -> ();
        delete_template(name: &str) -> ();
        add_article(title: &str, body: &str) -> Article;
        add_literature(literature: &Literature) -> ();
        delete_literature(name: &str) -> ();
    }
}

impl<S: OutboundStore> OutboundStore for CrashingStore<S> {
    reads! {
        outbox(mailbox: &str, owner: &EmailAddress) -> Vec<OutboxItem>;
    }
    writes! {
        record_send(mailbox: &str, activity: ActivityId, record: &SendRecord<'_>) -> bool;
        resend(activity: ActivityId) -> ActivityRow;
    }
}

impl<S: FailureStore> FailureStore for CrashingStore<S> {
    reads! {
        failed_items(mailbox: Option<&str>, since: &str) -> Vec<FailedItem>;
    }
    writes! {
        record_failures(mailbox: &str, failed: &[ItemFailure], resolved: &[(String, String)], forget_before: &str) -> ();
    }
}

impl<S: LinkStore> LinkStore for CrashingStore<S> {
    reads! {
        link(mailbox: &str, kind: ItemKind, identity: &ItemIdentity) -> Option<SyncLink>;
        links(mailbox: &str) -> Vec<SyncLink>;
        links_of(mailbox: &str, kinds: &[ItemKind]) -> Vec<SyncLink>;
        links_at(mailbox: &str, locations: &[ItemLocation]) -> Vec<SyncLink>;
        links_to(mailbox: &str, rows: &[CrmRef]) -> Vec<SyncLink>;
        link_count(mailbox: &str, kind: ItemKind) -> u64;
        sync_state(mailbox: &str, scope: &str) -> Option<SyncState>;
        collection_listing(mailbox: &str, scope: &str) -> Option<SavedListing>;
    }
    writes! {
        put_link(link: &SyncLink) -> ();
        delete_link(mailbox: &str, kind: ItemKind, identity: &ItemIdentity) -> bool;
        put_sync_state(mailbox: &str, scope: &str, state: &SyncState) -> ();
        save_collection_listing(mailbox: &str, scope: &str, token: &str, whole: bool, changes: &[(String, Option<String>)]) -> ();
    }
}

impl<S: JournalStore> JournalStore for CrashingStore<S> {
    reads! {
        changes_since(after_seq: i64, limit: usize) -> Vec<JournalEntry>;
        journal_head() -> i64;
        journal_cursor(consumer: &str) -> i64;
        concerned(changes: &[JournalEntry]) -> Concerned;
    }
    writes! {
        set_journal_cursor(consumer: &str, seq: i64) -> ();
        prune_journal(changed_before: &str) -> usize;
    }
}

/// A pass after the histories settled must change nothing on either side.
pub fn assert_idle(
    report: &crmsync_engine::PassReport,
) -> Result<(), proptest::test_runner::TestCaseError> {
    for (what, count) in [
        ("created", report.created),
        ("linked", report.linked),
        ("deleted", report.deleted),
        ("unlinked", report.unlinked),
        ("updated", report.updated),
        ("keywords_written", report.keywords_written),
        ("items_written", report.items_written),
        ("failed", report.failed),
    ] {
        proptest::prop_assert_eq!(
            count,
            0,
            "a further pass is not idle ({}): {:?}",
            what,
            report
        );
    }
    Ok(())
}

/// A fresh SQLite store in a temporary directory (in memory where `/dev/shm` exists), with
/// the user `alice@example.com` (who may sync) and accounts ACC-1001 to ACC-1003.
pub fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut store = SqliteStore::open(
        &dir.path().join("crm.sqlite3"),
        "model-test",
        crmsync_engine::STORE_RULES,
    )
    .unwrap();
    store
        .add_user(&NewUser {
            email: EmailAddress::new("alice@example.com").unwrap(),
            name: "Alice".into(),
            sync: true,
        })
        .unwrap();
    for name in ["Adventure Works", "Contoso", "Fabrikam"] {
        store
            .add_record(&NewRecord {
                entity: EntityName::new("account").unwrap(),
                name: name.into(),
                emails: Vec::new(),
                number: None,
                parent: None,
                owner: None,
            })
            .unwrap();
    }
    (dir, store)
}
