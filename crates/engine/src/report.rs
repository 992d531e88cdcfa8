//! What a pass did: the [`PassReport`] that the CLI prints, the daemon turns into the status
//! file, and the tests read.

use crmsync_core::readable::{MAX_MESSAGE, one_line};
use crmsync_imap::Counters;
use crmsync_store::ItemFailure;

/// The failed-items list's scope of messages (collections use their name).
pub const EMAIL_SCOPE: &str = "email";

/// Where a mailbox stands after a pass (the status file's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxState {
    Idle,
    Error,
    Disabled,
    NotPermitted,
}

impl MailboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxState::Idle => "idle",
            MailboxState::Error => "error",
            MailboxState::Disabled => "disabled",
            MailboxState::NotPermitted => "not-permitted",
        }
    }
}

/// Where a calendar or address book stands after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionState {
    Idle,
    Error,
}

impl CollectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionState::Idle => "idle",
            CollectionState::Error => "error",
        }
    }
}

/// What a pass saw of one collection, for the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionReport {
    pub name: &'static str,
    pub path: String,
    pub state: CollectionState,
    /// Item files listed.
    pub items: u64,
    /// Links into the collection after the pass.
    pub tracked: u64,
    /// Tracked files that have no link yet after the pass (their tracking is still to be
    /// carried out, or failed and is retried).
    pub pending: u64,
    /// Files that could not be read (malformed, no UID, a UID used twice).
    pub failed: u64,
    /// Well-formed files that hold nothing crmsync tracks (a journal entry, free/busy, only
    /// changed occurrences of a series kept elsewhere): skipped, not failed.
    pub skipped: u64,
    pub last_error: Option<String>,
}

/// What one pass did, for the CLI, the status file and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub mailbox: String,
    pub state: MailboxState,
    /// Activities created for newly tracked messages.
    pub created: u64,
    /// Newly tracked messages linked to an activity another mailbox had already created.
    pub linked: u64,
    /// Activities deleted because their owner untracked the message.
    pub deleted: u64,
    /// Links dropped (message gone, untracked by a non-owner, or activity deleted in the CRM).
    pub unlinked: u64,
    /// Links updated (moved message, regarding changed on either side).
    pub updated: u64,
    /// Messages whose keywords were written back.
    pub keywords_written: u64,
    /// Email activities of the CRM sent through the mailbox's SMTP server.
    pub sent: u64,
    /// Drafts rewritten with the template, article or literature they asked for.
    pub drafts_rewritten: u64,
    /// When the next pass is due, if sooner than the daemon would make one: the soonest send
    /// that failed for a passing reason, or at once when the pass's connection heard of a
    /// change in its mail folder that the pass did not read (after a draft's rewrite).
    pub retry_in: Option<std::time::Duration>,
    /// Collection files crmsync wrote, created or deleted.
    pub items_written: u64,
    /// Items that could not be synced (a malformed message, say); retried next pass.
    pub failed: u64,
    /// Each of them with where it is and why, for the failed-items list.
    pub failures: Vec<ItemFailure>,
    /// Items of the failed-items list (scope, item) that this pass handled, or found gone.
    pub resolved: Vec<(String, String)>,
    /// Links of the mailbox after the pass (every kind).
    pub tracked: u64,
    /// Items whose tracking signal this pass saw but that are not linked yet (their CRM copy
    /// is still to be made: a failed fetch, a lost connection); retried next pass.
    pub pending: u64,
    /// Whether this pass read every message's flags and header of at least one folder (a
    /// first scan, a UIDVALIDITY change, a server without CONDSTORE).
    pub full_scan: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// What a dry run would have done, one line per effect (empty for a real pass).
    pub planned: Vec<String>,
    pub imap: Counters,
    /// The calendar and address book, when the mailbox has them.
    pub collections: Vec<CollectionReport>,
    /// The failure is one that retrying soon will not cure (a bad password, a missing folder,
    /// an untrusted certificate, an owner who is not a CRM user): retry slowly.
    pub permanent: bool,
    /// The IMAP server offers IDLE (known after a pass that reached it).
    pub idle_supported: bool,
    /// The pass looked only at the collection files a watcher named ([`crate::Scope::Files`]):
    /// no mail folder, no outbox, and only the collections in `collections`.
    pub partial: bool,
}

impl PassReport {
    pub fn new(mailbox: &str) -> PassReport {
        PassReport {
            mailbox: mailbox.to_owned(),
            state: MailboxState::Idle,
            created: 0,
            linked: 0,
            deleted: 0,
            unlinked: 0,
            updated: 0,
            keywords_written: 0,
            sent: 0,
            drafts_rewritten: 0,
            retry_in: None,
            items_written: 0,
            failed: 0,
            failures: Vec::new(),
            resolved: Vec::new(),
            tracked: 0,
            pending: 0,
            full_scan: false,
            errors: Vec::new(),
            warnings: Vec::new(),
            planned: Vec::new(),
            imap: Counters::default(),
            collections: Vec::new(),
            permanent: false,
            idle_supported: false,
            partial: false,
        }
    }

    /// A failure of the whole pass (or of one of its parts): logged, and the mailbox goes to
    /// the error state.
    pub fn fail(&mut self, message: String) {
        let message = one_line(&message, MAX_MESSAGE);
        tracing::error!(mailbox = %self.mailbox, "{message}");
        self.errors.push(message);
        self.state = MailboxState::Error;
    }

    /// A failure of one message, at `item` (`FOLDER:UID`): logged, counted and listed; the
    /// pass goes on and the message is retried next pass.
    pub fn item_failed(&mut self, item: String, reason: String) {
        let (item, reason) = (one_line(&item, MAX_MESSAGE), one_line(&reason, MAX_MESSAGE));
        tracing::warn!(mailbox = %self.mailbox, item = %item, "item failed: {reason}");
        self.failed += 1;
        self.errors.push(format!("{item}: {reason}"));
        self.failures.push(ItemFailure {
            scope: EMAIL_SCOPE.to_owned(),
            item,
            reason,
        });
    }

    pub fn warn(&mut self, message: String) {
        let message = one_line(&message, MAX_MESSAGE);
        tracing::warn!(mailbox = %self.mailbox, "{message}");
        self.warnings.push(message);
    }
}
