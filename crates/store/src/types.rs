//! The store's row and input types: the serialisable edge of the CRM side.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use crmsync_core::model::{
    ActivityId, ActivityState, ActivityType, EmailAddress, EntityName, PartyRole, RecordId,
    RecordNumber,
};

/// A short reference to a record, as listings show a regarding record, a parent or a party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub id: RecordId,
    pub entity: EntityName,
    pub number: RecordNumber,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: EmailAddress,
    pub name: String,
    pub sync: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub record: RecordRef,
    pub email: String,
    pub sync: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub entity: EntityName,
    pub name: String,
    pub emails: Vec<EmailAddress>,
    /// `None`: the store assigns the next free `PREFIX-NNNN` of the entity.
    pub number: Option<RecordNumber>,
    pub parent: Option<RecordNumber>,
    pub owner: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub record: RecordRef,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub parent: Option<RecordRef>,
    /// The owning user's address.
    pub owner: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub job_title: Option<String>,
    pub postal_address: Option<String>,
    pub notes: Option<String>,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

/// One change to a record's fields, as `crmsync record set` makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    Name(String),
    Emails(Vec<EmailAddress>),
    Phones(Vec<String>),
    Parent(Option<RecordNumber>),
    Owner(Option<EmailAddress>),
    GivenName(Option<String>),
    FamilyName(Option<String>),
    JobTitle(Option<String>),
    PostalAddress(Option<String>),
    Notes(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnection {
    pub record1: RecordNumber,
    pub role1: Option<String>,
    pub record2: RecordNumber,
    pub role2: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRow {
    pub other: RecordRef,
    pub own_role: Option<String>,
    pub other_role: Option<String>,
}

/// One end of a connection: a record, or an activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connectable {
    Record(RecordNumber),
    Activity(ActivityId),
}

/// What the other end of a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectedTo {
    Record(RecordRef),
    Activity {
        id: ActivityId,
        activity_type: ActivityType,
        subject: String,
    },
}

/// A connection as seen from one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub other: ConnectedTo,
    pub own_role: Option<String>,
    pub other_role: Option<String>,
}

/// A moment of an activity: an instant, or a whole day for all-day items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    At(DateTime<Utc>),
    Day(NaiveDate),
}

impl When {
    /// The stored form: RFC 3339 in UTC with seconds, or a plain date.
    pub fn to_storage(self) -> String {
        match self {
            When::At(instant) => instant.to_rfc3339_opts(SecondsFormat::Secs, true),
            When::Day(date) => date.format("%Y-%m-%d").to_string(),
        }
    }

    pub fn is_day(self) -> bool {
        matches!(self, When::Day(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewParty {
    pub role: PartyRole,
    pub address: EmailAddress,
    pub display_name: Option<String>,
    /// The group it was addressed through (`Team` of `To: Team: a@x, b@y;`).
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity {
    pub activity_type: ActivityType,
    pub owner: EmailAddress,
    pub subject: String,
    /// `None`: the type's initial state for an activity created in the CRM.
    pub state: Option<ActivityState>,
    pub description: Option<String>,
    pub regarding: Option<RecordNumber>,
    pub location: Option<String>,
    pub start: Option<When>,
    pub end: Option<When>,
    pub due: Option<When>,
    /// Parties, each resolved to a record by the store (SPEC section 4).
    pub parties: Vec<NewParty>,
    /// An email's HTML body, beside `description` (its text).
    pub html_body: Option<String>,
    /// An email's attachments (sales literature, say).
    pub attachments: Vec<NewAttachment>,
    /// `crm`, or the id of the mailbox whose item this activity copies.
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyRow {
    pub role: PartyRole,
    pub address: String,
    pub display_name: Option<String>,
    /// The group it was addressed through (`Team` of `To: Team: a@x, b@y;`).
    pub group: Option<String>,
    pub record: Option<RecordRef>,
    /// When the address matched several records of the best rank: those records.
    pub candidates: Vec<RecordRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub name: String,
    pub content_type: String,
    pub size: i64,
}

/// One link of an activity, as `activity show` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    pub mailbox: String,
    pub item_kind: String,
    pub item_location: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub id: ActivityId,
    pub activity_type: ActivityType,
    pub owner: String,
    pub regarding: Option<RecordRef>,
    pub subject: String,
    pub state: ActivityState,
    pub description: Option<String>,
    pub message_id: Option<String>,
    pub direction: Option<String>,
    pub sent: Option<String>,
    pub received: Option<String>,
    pub location: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub all_day: bool,
    pub due: Option<String>,
    pub priority: Option<i64>,
    pub percent_complete: Option<i64>,
    pub parties: Vec<PartyRow>,
    pub attachments: Vec<AttachmentInfo>,
    pub links: Vec<LinkSummary>,
    pub created_by: String,
    pub version: i64,
    pub created: String,
    pub modified: String,
}

/// One change to an activity's fields, as `crmsync activity set` makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityChange {
    Subject(String),
    Description(Option<String>),
    Location(Option<String>),
    Start(Option<When>),
    End(Option<When>),
    Due(Option<When>),
    State(ActivityState),
    Priority(Option<i64>),
    PercentComplete(Option<u8>),
    Regarding(Option<RecordNumber>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    pub activity_type: Option<ActivityType>,
    /// Only activities with a link from this mailbox.
    pub mailbox: Option<String>,
}

/// Where a mailbox's last pass over one folder or collection left off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    pub uid_validity: Option<u32>,
    pub highest_modseq: Option<u64>,
    pub sync_token: Option<String>,
    pub last_full_scan: Option<String>,
    /// Automatic tracking takes messages from this UID on (the folder's UIDNEXT when
    /// `auto_policy` was first seen).
    pub auto_from_uid: Option<u32>,
    pub auto_policy: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JournalEntity {
    Record,
    User,
    Activity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalOp {
    Insert,
    Update,
    Delete,
}

/// One change seen in the change journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: i64,
    pub entity: JournalEntity,
    /// The uuid of the record, user (its record) or activity.
    pub row_id: String,
    pub op: JournalOp,
    /// Who wrote it: crmsync's own writes carry its origin; other programs' writes `None`.
    pub origin: Option<String>,
    pub changed_at: String,
}

/// An attachment of a tracked email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// The CRM copy of a tracked email, as the IMAP adapter read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    pub owner: EmailAddress,
    /// The mailbox that tracked it first.
    pub mailbox: String,
    pub subject: String,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub message_id: String,
    pub content_hash: String,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    /// `outgoing` when From is the owner, else `incoming`.
    pub outgoing: bool,
    /// The Date header (UTC RFC 3339): sent time, and received time of an incoming message.
    pub date: Option<String>,
    pub parties: Vec<NewParty>,
    pub attachments: Vec<NewAttachment>,
    pub regarding: Option<RecordNumber>,
    /// Taken by automatic tracking, not by a person's signal (`activities.auto_tracked`).
    pub automatic: bool,
}

/// The CRM side of one linked activity, as a sync pass needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedActivity {
    pub owner: String,
    pub regarding: Option<RecordNumber>,
    pub version: i64,
}

/// One field changed on both sides to different values, as the conflict log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRow {
    pub mailbox: String,
    pub item_kind: String,
    /// The item's identity (for an email: Message-ID and content hash).
    pub item: String,
    /// The CRM row, as `activity:UUID` or `record:UUID`.
    pub crm: Option<String>,
    pub field: String,
    pub base: Option<String>,
    pub mailbox_value: Option<String>,
    pub crm_value: Option<String>,
    /// `mailbox` or `crm`.
    pub winner: String,
    pub at: String,
}

/// An email activity of an owner's outbox, with where its sending stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub activity: ActivityRow,
    /// `None` before any mailbox took it.
    pub phase: Option<crmsync_core::outbound::Phase>,
    /// The mailbox that took it.
    pub mailbox: Option<String>,
    pub attempts: u32,
    /// When a transient failure's backoff ends (UTC, as the store writes times).
    pub next_attempt: Option<String>,
    pub last_error: Option<String>,
    /// The message as it went out (from `committing` until its copy is in Sent).
    pub raw: Option<Vec<u8>>,
    /// When the send's record last changed.
    pub updated: Option<String>,
    /// The activity's HTML body and attachments, for composing the message.
    pub html_body: Option<String>,
    pub attachments: Vec<NewAttachment>,
}

/// A CRM email template (`crmsync template add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub subject: String,
    pub body: Option<String>,
    pub html: Option<String>,
}

/// A knowledge-base article (`crmsync article add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// `KB-1001`, given by the store.
    pub number: String,
    pub title: String,
    pub body: String,
}

/// Sales literature: a named set of files (`crmsync literature add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literature {
    pub name: String,
    pub files: Vec<NewAttachment>,
}

/// A step of one send, recorded before (or as) it happens (docs/outbound.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRecord<'a> {
    /// Taken by a mailbox, before it connects; counts an attempt.
    Claim,
    /// The message's body is about to go out: the activity gets the Message-ID and content
    /// hash of the message (its identity, for the sent copy's link).
    Commit {
        message_id: &'a str,
        content_hash: &'a str,
        raw: &'a [u8],
    },
    /// The server took it: the activity is `sent`.
    Accepted { sent_at: &'a str },
    /// Its copy is in the Sent folder, linked.
    Done {
        link: &'a crmsync_core::link::SyncLink,
    },
    /// A transient failure: again at `next_attempt`.
    Retry {
        reason: &'a str,
        next_attempt: &'a str,
    },
    /// The server refused it for good (or the attempts are used up): `send-failed`.
    Failed { reason: &'a str },
    /// It cannot be known whether the server took it: `send-uncertain`.
    Uncertain { reason: &'a str },
}

/// An item a pass could not sync, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    /// `email`, `calendar` or `contacts`.
    pub scope: String,
    /// Where the item is: `FOLDER:UID` for a message, the file name for a collection item.
    pub item: String,
    pub reason: String,
}

/// A row of the failed-items list: an item that failed in a pass of the last days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    pub mailbox: String,
    pub failure: ItemFailure,
    pub first_failed: String,
    pub last_failed: String,
    /// Passes it failed in.
    pub attempts: u32,
}

/// The CRM copy of a tracked event, task or contact, as the collection adapter read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub kind: crmsync_core::item::ItemKind,
    pub owner: EmailAddress,
    /// The mailbox that tracked it first.
    pub mailbox: String,
    /// The iCalendar or vCard UID.
    pub uid: String,
    /// The mapped fields (the names of `docs/collections.md`).
    pub fields: crmsync_core::link::Snapshot,
}

/// The CRM side of one linked event, task or contact, as a pass needs it without its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedItem {
    /// The owning user's address (a contact record may have none).
    pub owner: Option<String>,
    pub version: i64,
}

/// A CRM row that belongs in a person's collection and has no link from the mailbox yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedItem {
    pub kind: crmsync_core::item::ItemKind,
    pub crm: crmsync_core::link::CrmRef,
    /// The UID its item gets: the row's own UID when it has one, else its id.
    pub uid: String,
    pub fields: crmsync_core::link::Snapshot,
    pub version: i64,
}

/// What tracking one item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// `Some`: linked to the row that already had its UID (and who created the item); `None`:
    /// its row was created.
    pub linked: Option<crmsync_core::link::ItemCreator>,
    /// What the CRM could not take (an unknown regarding number, say).
    pub warnings: Vec<String>,
}
