//! The mail side of a pass, as a small trait: what the email pass asks of a mailbox. The IMAP
//! session implements it for the daemon and the CLI; the engine's model tests implement it
//! with an in-memory mailbox, so they drive the real pass.

use std::collections::BTreeMap;
use std::future::Future;

use crmsync_imap::{
    Counters, FetchedHeader, FetchedMessage, FolderMarkers, FolderScan, ImapError, ImapSession,
    Wanted,
};

pub trait MailStore {
    /// The folder's UIDs and the flags and headers of what changed since `saved` (on a full
    /// scan: of every message `wanted`, the others listed as withheld).
    fn scan_folder(
        &mut self,
        folder: &str,
        saved: Option<FolderMarkers>,
        wanted: Wanted<'_>,
    ) -> impl Future<Output = Result<FolderScan, ImapError>> + Send;
    /// The flags and headers of messages a full scan withheld, sorted by UID, in the folder
    /// as that scan saw it (`uid_validity`; another is an error). A UID the folder no longer
    /// holds is left out.
    fn fetch_headers_of(
        &mut self,
        folder: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<FetchedHeader>, ImapError>> + Send;
    /// Messages of one folder (only ever tracked ones), in one request: each whole, or its
    /// first `max_message_size` bytes. A UID the folder no longer holds is left out.
    fn fetch_messages(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<(u32, FetchedMessage)>, ImapError>> + Send;
    /// The sizes of messages of one folder that a full scan gave none, in one request (they
    /// bound a lot of body fetches). A UID the folder no longer holds is left out.
    fn fetch_sizes(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> impl Future<Output = Result<BTreeMap<u32, u32>, ImapError>> + Send;
    /// Adds `add`, then removes `remove` (in that order: see `ImapSession::store_keywords`),
    /// on every message of `uids`.
    fn store_keywords(
        &mut self,
        folder: &str,
        uids: &[u32],
        add: &[String],
        remove: &[String],
    ) -> impl Future<Output = Result<(), ImapError>> + Send;
    /// Whether the connection still answers (checked before the folder markers are saved).
    fn is_alive(&mut self) -> impl Future<Output = bool> + Send;
    /// What was asked of the server so far.
    fn counters(&self) -> Counters;
    /// The folder the connection holds selected, scanned first (see `EmailPass::observe`).
    fn selected_folder(&self) -> Option<&str> {
        None
    }
}

impl MailStore for ImapSession {
    fn selected_folder(&self) -> Option<&str> {
        ImapSession::selected_folder(self)
    }

    fn scan_folder(
        &mut self,
        folder: &str,
        saved: Option<FolderMarkers>,
        wanted: Wanted<'_>,
    ) -> impl Future<Output = Result<FolderScan, ImapError>> + Send {
        ImapSession::scan_folder(self, folder, saved, wanted)
    }

    fn fetch_headers_of(
        &mut self,
        folder: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<FetchedHeader>, ImapError>> + Send {
        ImapSession::fetch_headers_of(self, folder, uid_validity, uids)
    }

    fn fetch_messages(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<(u32, FetchedMessage)>, ImapError>> + Send {
        ImapSession::fetch_messages(self, folder, uids)
    }

    fn fetch_sizes(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> impl Future<Output = Result<BTreeMap<u32, u32>, ImapError>> + Send {
        ImapSession::fetch_sizes(self, folder, uids)
    }

    fn store_keywords(
        &mut self,
        folder: &str,
        uids: &[u32],
        add: &[String],
        remove: &[String],
    ) -> impl Future<Output = Result<(), ImapError>> + Send {
        ImapSession::store_keywords(self, folder, uids, add, remove)
    }

    fn is_alive(&mut self) -> impl Future<Output = bool> + Send {
        ImapSession::is_alive(self)
    }

    fn counters(&self) -> Counters {
        self.counters
    }
}
