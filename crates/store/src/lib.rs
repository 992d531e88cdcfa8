//! The CRM activity store: what crmsync keeps on the CRM side, behind the [`CrmStore`] trait.
//!
//! The store holds CRM users, records of every entity type, activities with their parties and
//! attachments, connections between records, the sync links that pair items with CRM rows,
//! per-folder sync state, and a change journal. [`SqliteStore`] is the embedded default: one
//! SQLite file in WAL mode, whose schema (`docs/schema.md`) other programs may read and write.
//!
//! Three properties hold for every program that writes the file, not only for crmsync, because
//! SQLite triggers keep them rather than this crate's code:
//! - every insert, update and delete of a record, user or activity lands in the change journal,
//!   which the daemon reads with a cursor instead of rescanning the store;
//! - every such change bumps the row's `version`, the CRM side's version marker;
//! - no delete leaves a dangling row: deleting a record that an activity regards, or a user who
//!   owns activities, is refused; dependent rows (emails, parties, attachments, connections) go
//!   with their parent; parties and child records that pointed at a deleted record keep their
//!   address and lose the pointer; sync links of a deleted row are marked `crm-deleted`.
//!
//! The row types here are the store's own (`store::RecordRow`, not a core type with a serde
//! derive): the binary converts them to its JSON and table output by hand.
#![forbid(unsafe_code)]

mod migrations;
mod open;
mod pg;
mod shared;
mod sql;
mod sqlite;
mod types;

pub use migrations::{MIGRATIONS, Migration};
pub use open::{Database, MailboxLock, Store, StoreLocation, sqlite_lock_path};
pub use pg::{PgDatabase, PgMailboxLock, PgOptions, PgStore, without_password};
pub use sqlite::SqliteStore;
pub use types::*;

use crmsync_core::auto::{NeverEntry, TrackedThread};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, Snapshot, SyncLink};
use crmsync_core::merge::FieldWrite;
use crmsync_core::model::{ActivityId, EmailAddress, EntityName, InvalidValue, RecordNumber};
use crmsync_core::resolve::{Candidate, Resolution};
use crmsync_core::token::TokenKey;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A value from the caller was refused: bad usage.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("{0} not found")]
    NotFound(String),
    /// The change would break a uniqueness rule (a record number, a user's address).
    #[error("{0}")]
    Conflict(String),
    /// The change would leave a dangling reference and was refused.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error(
        "the store {path} has schema version {found}, newer than this crmsync knows ({known}): upgrade crmsync"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("cannot open the CRM store {path}: {message}")]
    Open { path: String, message: String },
    /// A row that another program wrote and that does not follow the documented schema.
    #[error("bad row in {table} ({row}): {message}")]
    BadRow {
        table: &'static str,
        row: String,
        message: String,
    },
    /// The backend failed (SQLite's own error, a lost database connection...), in words.
    #[error("{0}")]
    Backend(String),
    /// The store cannot serve at all for now (locked by another program beyond the busy
    /// timeout, a full disk, an I/O error, a lost database connection), in words.
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    /// The store itself cannot serve: no item can be handled until it can, so a pass stops
    /// rather than fail every item in turn. A failure of one write (a constraint, a value
    /// too big) is not this: it fails that item only.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Open { .. })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The decisions a store applies inside its own transactions, chosen by whoever opens it (the
/// core's: `crmsync_engine::STORE_RULES`). The store supplies what they decide on, read in the
/// same transaction as the write, so a crash never separates a decision from its data; it
/// decides nothing itself, and a second backend applies the same rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A link's base from what the item holds and what the CRM stored of it (the CRM may not
    /// hold every value: an unknown regarding number, an address that is none).
    pub base: fn(item: &Snapshot, stored: &Snapshot) -> Snapshot,
    /// Which record an address resolves to, among the records that carry it (SPEC section 4).
    pub resolve: fn(candidates: &[Candidate]) -> Resolution,
}

/// The store traits, for code that calls them on a concrete store.
pub mod prelude {
    pub use crate::{
        ActivityStore, ConflictStore, ConnectionStore, CrmStore, EmailStore, FailureStore,
        ItemStore, JournalStore, LibraryStore, LinkStore, OutboundStore, RecordStore, UserStore,
    };
}

/// Everything crmsync asks of a CRM store, as the sum of one trait per concern. SQLite is the
/// embedded default; the traits are what let another backend (PostgreSQL) in without touching
/// the core, the engine or the binary. Generic code takes `S: CrmStore`; code that names a
/// concrete store brings the methods in with `use crmsync_store::prelude::*`.
///
/// Records are named by their number and activities by their id, as people name them on the
/// command line. Every method is one transaction.
pub trait CrmStore:
    UserStore
    + RecordStore
    + ActivityStore
    + EmailStore
    + ItemStore
    + ConflictStore
    + FailureStore
    + OutboundStore
    + LibraryStore
    + ConnectionStore
    + LinkStore
    + JournalStore
{
}

impl<T> CrmStore for T where
    T: UserStore
        + RecordStore
        + ActivityStore
        + EmailStore
        + ItemStore
        + ConflictStore
        + FailureStore
        + OutboundStore
        + LibraryStore
        + ConnectionStore
        + LinkStore
        + JournalStore
{
}

/// CRM users and their `sync` privilege.
pub trait UserStore {
    fn add_user(&mut self, user: &NewUser) -> Result<UserRow>;
    fn users(&self) -> Result<Vec<UserRow>>;
    fn user(&self, email: &EmailAddress) -> Result<UserRow>;
    fn set_user_sync(&mut self, email: &EmailAddress, sync: bool) -> Result<UserRow>;
}

/// Records of every entity type, and the records an address may resolve to.
pub trait RecordStore {
    fn add_record(&mut self, record: &NewRecord) -> Result<RecordRow>;
    fn records(&self, entity: Option<&EntityName>) -> Result<Vec<RecordRow>>;
    fn record(&self, number: &RecordNumber) -> Result<RecordRow>;
    fn update_record(
        &mut self,
        number: &RecordNumber,
        changes: &[RecordChange],
    ) -> Result<RecordRow>;
    fn delete_record(&mut self, number: &RecordNumber) -> Result<()>;
    /// The records that carry an address, for address resolution.
    fn records_with_email(&self, address: &EmailAddress) -> Result<Vec<Candidate>>;
    /// [`Self::records_with_email`] for many addresses in one go (automatic tracking looks up
    /// every address of a pass's new mail): the candidates by address, lower case; addresses
    /// no record carries are absent.
    fn records_with_emails(
        &self,
        addresses: &[EmailAddress],
    ) -> Result<HashMap<String, Vec<Candidate>>>;
    fn add_connection(&mut self, connection: &NewConnection) -> Result<()>;
    fn connections(&self, number: &RecordNumber) -> Result<Vec<ConnectionRow>>;
}

/// Activities as a CRM user sees them: added, listed, changed, deleted.
pub trait ActivityStore {
    fn add_activity(&mut self, activity: &NewActivity) -> Result<ActivityRow>;
    fn activities(&self, filter: &ActivityFilter) -> Result<Vec<ActivityRow>>;
    /// An activity by its id, or by a unique prefix of at least 4 characters of it.
    fn find_activity(&self, id_or_prefix: &str) -> Result<ActivityId>;
    fn activity(&self, id: ActivityId) -> Result<ActivityRow>;
    fn update_activity(
        &mut self,
        id: ActivityId,
        changes: &[ActivityChange],
    ) -> Result<ActivityRow>;
    fn delete_activity(&mut self, id: ActivityId) -> Result<()>;
}

/// Tracked email: activities created from messages, with their links.
pub trait EmailStore {
    /// The email activities copying the messages with these identities (Message-ID, content
    /// hash), found ones only: one read for a whole run of messages.
    fn email_activities(
        &self,
        identities: &[(&str, &str)],
    ) -> Result<HashMap<(String, String), ActivityId>>;
    /// Creates the activity of a tracked email and its link, in one transaction, and returns
    /// its id. When an activity with the same identity exists by then (another mailbox tracked
    /// the message in the same instant), the link goes to it instead and its id is returned. A
    /// regarding number that names no record leaves the activity without regarding; the
    /// warning says so.
    fn track_email(
        &mut self,
        email: &NewEmail,
        link: &SyncLink,
    ) -> Result<(ActivityId, Option<String>)>;
    /// [`EmailStore::track_email`] for many messages in one transaction (one commit, one
    /// fsync): all of them, or, on an error, none.
    fn track_emails(
        &mut self,
        batch: &[(NewEmail, SyncLink)],
    ) -> Result<Vec<(ActivityId, Option<String>)>>;
    /// The CRM side of every activity the mailbox's links point at, in one query.
    fn linked_activities(&self, mailbox: &str) -> Result<HashMap<ActivityId, LinkedActivity>>;
    /// Saves a link and, when given, the activity's new regarding record, in one transaction.
    /// An unknown number clears the regarding; the warning says so.
    fn update_link(
        &mut self,
        link: &SyncLink,
        regarding: Option<Option<&RecordNumber>>,
    ) -> Result<Option<String>>;
    /// [`EmailStore::update_link`] for many links in one transaction (one commit, one fsync):
    /// all of them, or, on an error, none.
    fn update_links(
        &mut self,
        links: &[(SyncLink, Option<Option<&RecordNumber>>)],
    ) -> Result<Vec<Option<String>>>;
    /// Drops a link and deletes its activity (an owner untracked it), and records the message
    /// as one automatic tracking never takes again, in one transaction.
    fn untrack_and_delete(&mut self, link: &SyncLink) -> Result<()>;
    /// Drops a link whose message was untracked by someone other than the activity's owner, or
    /// whose activity the CRM deleted, and records the message as one automatic tracking
    /// never takes again, in one transaction.
    fn untrack_link(&mut self, mailbox: &str, identity: &ItemIdentity) -> Result<bool>;
    /// The messages of a mailbox that automatic tracking never takes again, by the storage
    /// key of their identity.
    fn tombstones(&self, mailbox: &str) -> Result<BTreeSet<String>>;
    /// The tracked email with each of these Message-IDs (any mailbox's): its regarding record
    /// and the addresses of its parties, for reply correlation. Message-IDs of no tracked
    /// email are absent.
    fn email_threads(&self, message_ids: &[String]) -> Result<BTreeMap<String, TrackedThread>>;
    /// The same for email activities named by id (the tracking token of a reply names one).
    fn activity_threads(
        &self,
        activities: &[ActivityId],
    ) -> Result<BTreeMap<ActivityId, TrackedThread>>;
    /// The installation's key for tracking tokens.
    fn tracking_key(&self) -> Result<TokenKey>;
    /// For each `(sender, subject)` (sender lower case): how many email activities from that
    /// sender with exactly that subject were created at or after `since` (a UTC time as the
    /// store writes them), for the loop guard. Every key asked for is in the answer.
    fn recent_emails(
        &self,
        keys: &[(String, String)],
        since: &str,
    ) -> Result<BTreeMap<(String, String), u32>>;
    /// The never-track list kept in the store: `(mailbox, entry)`, the mailbox `None` for an
    /// entry that holds for every mailbox; only those that hold for `mailbox` when given.
    fn never_entries(&self, mailbox: Option<&str>) -> Result<Vec<(Option<String>, NeverEntry)>>;
    /// Adds an entry (for one mailbox, or every one); false when it was there already.
    fn add_never(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<bool>;
    /// Removes an entry; false when it was not there.
    fn remove_never(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<bool>;
    /// Deletes the email activities that automatic tracking made with a party the entry
    /// matches (only those linked from `mailbox`, when given); never one a person tracked.
    /// Their links become `crm-deleted`, so the next pass removes the keyword and leaves a
    /// tombstone. Returns how many went.
    fn purge_automatic(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<u64>;
}

/// Tracked events, tasks and contacts: rows as field snapshots, with their links.
pub trait ItemStore {
    /// The version and owner of every row the mailbox's event, task and contact links point at,
    /// in one query (rows that are gone are absent).
    fn linked_items(&self, mailbox: &str) -> Result<HashMap<CrmRef, LinkedItem>>;
    /// [`ItemStore::linked_items`] for one row: `None` when it is gone.
    fn linked_item(&self, crm: CrmRef) -> Result<Option<LinkedItem>>;
    /// The fields of an appointment, task or contact row, as the collection adapter names
    /// them; `None` when the row is gone.
    fn item_fields(&self, crm: CrmRef) -> Result<Option<Snapshot>>;
    /// The row copying the item with this UID, and who created the item: the CRM when the UID
    /// is the id of a row created in the CRM for `owner` (crmsync wrote the item for it).
    fn item_by_uid(
        &self,
        kind: ItemKind,
        uid: &str,
        owner: &EmailAddress,
    ) -> Result<Option<(CrmRef, ItemCreator)>>;
    /// Tracks items, all in one transaction (a first import commits thousands of items in a
    /// few): an item whose UID a row already has is linked to that row, without a CRM
    /// version, so that the next merge settles their differences; otherwise its row is
    /// created (at `link.crm`) and linked, with the fields as the CRM stored them as the base.
    fn track_items(&mut self, items: &[(NewItem, SyncLink)]) -> Result<Vec<Tracked>>;
    /// Saves a link to an existing row, recording the item's UID on the row if it has none.
    /// A link without a CRM version is saved without one, so the next pass merges it.
    fn link_item(&mut self, link: &SyncLink, uid: &str) -> Result<i64>;
    /// Applies merged field writes to the row and saves the link, in one transaction; refused
    /// with [`StoreError::Conflict`] when the row's version is no longer `expected_version`.
    fn update_item(
        &mut self,
        link: &SyncLink,
        expected_version: i64,
        writes: &[FieldWrite],
        owner: &EmailAddress,
    ) -> Result<(i64, Vec<String>)>;
    /// Drops a link and deletes its row, in one transaction. A contact that is the regarding
    /// record of activities is refused ([`StoreError::Refused`]) and both stay.
    fn delete_item(&mut self, link: &SyncLink) -> Result<()>;
    /// The rows that belong in the owner's collections with no link from the mailbox yet.
    fn created_items(
        &self,
        mailbox: &str,
        owner: &EmailAddress,
        calendar: bool,
        contacts: bool,
    ) -> Result<Vec<CreatedItem>>;
}

/// The conflict log (SPEC section 5).
pub trait ConflictStore {
    /// Records one conflict (its `at` is set by the store).
    fn log_conflict(&mut self, conflict: &ConflictRow) -> Result<()>;
    /// The newest conflicts first, of one mailbox or all, at most `limit`.
    fn conflicts(&self, mailbox: Option<&str>, limit: usize) -> Result<Vec<ConflictRow>>;
}

/// Connections between records and activities (the seed's related records), and converting a
/// tracked activity into a new record.
pub trait ConnectionStore {
    /// Connects two ends (records, or an activity and a record), each with an optional role.
    fn connect(
        &mut self,
        one: &Connectable,
        one_role: Option<&str>,
        two: &Connectable,
        two_role: Option<&str>,
    ) -> Result<()>;
    /// Every connection of one end, records and activities alike.
    fn connections_of(&self, end: &Connectable) -> Result<Vec<Connection>>;
    /// Removes the connections between two ends; how many there were.
    fn disconnect(&mut self, one: &Connectable, two: &Connectable) -> Result<u64>;
    /// In one transaction: adds `record`, makes it the activity's regarding record, and
    /// connects the two (`converted to` / `converted from`).
    fn convert_activity(&mut self, activity: ActivityId, record: &NewRecord) -> Result<RecordRow>;
}

/// What a CRM user puts into outgoing email: templates, knowledge-base articles and sales
/// literature. Names are unique; adding one that exists is refused.
pub trait LibraryStore {
    fn add_template(&mut self, template: &Template) -> Result<()>;
    fn templates(&self) -> Result<Vec<Template>>;
    fn template(&self, name: &str) -> Result<Template>;
    fn delete_template(&mut self, name: &str) -> Result<()>;
    /// Adds an article under the next free number (`KB-1001` first); returns it.
    fn add_article(&mut self, title: &str, body: &str) -> Result<Article>;
    fn articles(&self) -> Result<Vec<Article>>;
    fn article(&self, number: &str) -> Result<Article>;
    fn add_literature(&mut self, literature: &Literature) -> Result<()>;
    /// Every piece of literature, with its files' names and types but not their content.
    fn literature_list(&self) -> Result<Vec<Literature>>;
    fn literature(&self, name: &str) -> Result<Literature>;
    fn delete_literature(&mut self, name: &str) -> Result<()>;
}

/// Sending the email activities the CRM created (SPEC section 5; docs/outbound.md).
pub trait OutboundStore {
    /// The email activities owned by `owner` that wait to be sent (`pending-send`), and those
    /// `mailbox` sent whose copy is not in the Sent folder yet, the oldest first.
    fn outbox(&self, mailbox: &str, owner: &EmailAddress) -> Result<Vec<OutboxItem>>;
    /// Records a step of `mailbox`'s send of `activity`, in one transaction with its effect on
    /// the activity. A `Claim` returns `false` (and changes nothing) when the activity is no
    /// longer `pending-send` or another mailbox is sending it.
    fn record_send(
        &mut self,
        mailbox: &str,
        activity: ActivityId,
        record: &SendRecord<'_>,
    ) -> Result<bool>;
    /// A person's decision to send again an activity that is `send-failed` or
    /// `send-uncertain`: `pending-send` again, the record of its earlier attempts gone.
    fn resend(&mut self, activity: ActivityId) -> Result<ActivityRow>;
}

/// The failed-items list: items a pass could not sync, kept while they keep failing and for
/// a few days after (`crmsync items --failed`, the status file).
pub trait FailureStore {
    /// One pass's outcome for a mailbox, in one transaction: `failed` items are added (or
    /// their reason, last time and attempts brought up to date), `resolved` ones (scope, item)
    /// go, and rows of any mailbox whose last failure is before `forget_before` are dropped.
    fn record_failures(
        &mut self,
        mailbox: &str,
        failed: &[ItemFailure],
        resolved: &[(String, String)],
        forget_before: &str,
    ) -> Result<()>;
    /// The items that failed at or after `since`, of one mailbox or all, the latest first.
    fn failed_items(&self, mailbox: Option<&str>, since: &str) -> Result<Vec<FailedItem>>;
}

/// Sync links (one per tracked item and mailbox) and per-folder sync state.
pub trait LinkStore {
    /// Inserts or replaces the link of (mailbox, kind, identity).
    fn put_link(&mut self, link: &SyncLink) -> Result<()>;
    fn link(
        &self,
        mailbox: &str,
        kind: ItemKind,
        identity: &ItemIdentity,
    ) -> Result<Option<SyncLink>>;
    fn links(&self, mailbox: &str) -> Result<Vec<SyncLink>>;
    /// The links of a mailbox whose items are of these kinds.
    fn links_of(&self, mailbox: &str, kinds: &[ItemKind]) -> Result<Vec<SyncLink>>;
    /// The links of a mailbox whose items are at these locations (one indexed lookup each).
    fn links_at(&self, mailbox: &str, locations: &[ItemLocation]) -> Result<Vec<SyncLink>>;
    /// The mailbox's links to these CRM rows.
    fn links_to(&self, mailbox: &str, rows: &[CrmRef]) -> Result<Vec<SyncLink>>;
    /// How many links of one kind a mailbox has (without loading them).
    fn link_count(&self, mailbox: &str, kind: ItemKind) -> Result<u64>;
    fn delete_link(
        &mut self,
        mailbox: &str,
        kind: ItemKind,
        identity: &ItemIdentity,
    ) -> Result<bool>;
    fn sync_state(&self, mailbox: &str, scope: &str) -> Result<Option<SyncState>>;
    fn put_sync_state(&mut self, mailbox: &str, scope: &str, state: &SyncState) -> Result<()>;
    /// The listing (href, etag) a server collection was last seen with, and the sync token it
    /// is as of; `None` before the first.
    fn collection_listing(&self, mailbox: &str, scope: &str) -> Result<Option<SavedListing>>;
    /// Saves a listing as of `token` in one transaction: `changes` (href, and its etag now or
    /// `None` when gone) onto the saved one, or onto nothing when `whole`.
    fn save_collection_listing(
        &mut self,
        mailbox: &str,
        scope: &str,
        token: &str,
        whole: bool,
        changes: &[(String, Option<String>)],
    ) -> Result<()>;
}

/// A server collection's listing as saved: its token and (href, etag) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedListing {
    pub token: String,
    pub entries: Vec<(String, String)>,
}

/// The change journal, which other programs' writes land in too.
pub trait JournalStore {
    /// Journal entries after `after_seq`, oldest first, at most `limit`.
    fn changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<JournalEntry>>;
    /// The newest journal entry's `seq` (0 when the journal is empty).
    fn journal_head(&self) -> Result<i64>;
    fn journal_cursor(&self, consumer: &str) -> Result<i64>;
    fn set_journal_cursor(&mut self, consumer: &str, seq: i64) -> Result<()>;
    /// Removes the journal entries changed before `changed_before` (a UTC time as the journal
    /// writes them, `2026-12-01T10:00:00.000Z`) that every registered reader (a row in
    /// `journal_cursors`) has read; with no reader registered, every entry before that time.
    /// Returns how many went.
    fn prune_journal(&mut self, changed_before: &str) -> Result<usize>;
    /// Whom `changes` concern: the mailboxes whose links point at a changed row (or at an
    /// activity regarding a changed record), and the owners of changed activities and
    /// records and the changed users themselves (their mailboxes get CRM-created items, sends
    /// and the sync privilege).
    fn concerned(&self, changes: &[JournalEntry]) -> Result<Concerned>;
}

/// Whom a run of journal changes concerns (see [`JournalStore::concerned`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Concerned {
    pub mailboxes: BTreeSet<String>,
    /// Users' addresses, in lower case.
    pub owners: BTreeSet<String>,
}
