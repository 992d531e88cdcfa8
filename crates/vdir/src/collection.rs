//! The collection trait: what a pass needs of a calendar or address book, wherever it lives.
//! [`crate::vdir::Vdir`] implements it over a directory; `crmsync-dav` over a CalDAV or
//! CardDAV collection on a server. The engine's collection pass sees only this trait, so the
//! passes and the core are the same for both.
//!
//! An item is named by its *href*, the last segment of its name inside the collection (a
//! file name; on a server, the decoded last path segment), and versioned by an opaque
//! *etag*. Writes are conditional: an update or delete names the etag its caller last saw and
//! is refused with [`CollectionError::Changed`] when the item changed since (HTTP 412); a
//! create is refused with [`CollectionError::Exists`] when the href is taken.

use std::future::Future;

pub use crate::vdir::Entry;

/// Why a collection operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectionError {
    /// The item changed since the etag the caller gave (HTTP 412 on `If-Match`).
    #[error("{href} changed since it was read")]
    Changed { href: String },
    /// The href is taken (HTTP 412 on `If-None-Match: *`).
    #[error("{0} already exists")]
    Exists(String),
    /// No item of that href.
    #[error("{0} does not exist")]
    Missing(String),
    /// The server refused the login or the access (HTTP 401, 403): no retry helps until the
    /// configuration or the server's rights change.
    #[error("{0}")]
    Denied(String),
    /// The server could not be reached or failed (a refused connection, a timeout, HTTP 5xx):
    /// worth retrying later.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else, with where it came from.
    #[error("{0}")]
    Other(String),
}

impl CollectionError {
    /// Whether retrying soon cannot help (a refused login or access).
    pub fn is_permanent(&self) -> bool {
        matches!(self, CollectionError::Denied(_))
    }
}

/// Every item of a collection, as one listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sorted by href.
    pub entries: Vec<Entry>,
    /// Leftovers of crmsync's own interrupted writes that the listing removed (a vdir's
    /// temporary files).
    pub removed: Vec<String>,
    /// What to give [`Collection::changes`] next time, when the collection keeps a change log
    /// (a server's `sync-collection` token or its `getctag`).
    pub token: Option<String>,
}

/// What changed in a collection since a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Items new or changed since the token, with their etags now.
    pub changed: Vec<Entry>,
    /// Items gone since the token.
    pub gone: Vec<String>,
    /// The token to ask with next time.
    pub token: String,
}

/// One item read: its text and its etag at the time of reading.
pub type Item = (String, String);

/// A calendar or address book. The futures are `Send` so that a pass can run on any thread of
/// the daemon's runtime.
pub trait Collection {
    /// Where the collection is, for messages and the status file (a path, or a URL without
    /// credentials).
    fn location(&self) -> String;

    /// Every item with its etag. `clean` lets the listing remove crmsync's own leftovers (a
    /// dry run passes `false`). An unreadable collection is an error, never an empty listing.
    fn list(&self, clean: bool) -> impl Future<Output = Result<Listing, CollectionError>> + Send;

    /// What changed since `token` (from a [`Listing`] or earlier [`Changes`]); `None` when the
    /// collection cannot say (no change log, or the token expired): the caller lists it whole.
    fn changes(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<Changes>, CollectionError>> + Send;

    /// One href as a listing would show it: `None` when there is no item of that name.
    fn entry(
        &self,
        href: &str,
    ) -> impl Future<Output = Result<Option<Entry>, CollectionError>> + Send;

    /// One item's text and etag.
    fn read(&self, href: &str) -> impl Future<Output = Result<Item, CollectionError>> + Send;

    /// Several items at once (a server answers them in batches): each href with its own
    /// result; an error of the whole request is the outer one.
    #[allow(clippy::type_complexity)]
    fn read_many(
        &self,
        hrefs: &[String],
    ) -> impl Future<Output = Result<Vec<(String, Result<Item, CollectionError>)>, CollectionError>> + Send;

    /// Creates an item; [`CollectionError::Exists`] when the href is taken. Returns its etag.
    fn create(
        &self,
        href: &str,
        content: &str,
    ) -> impl Future<Output = Result<String, CollectionError>> + Send;

    /// Replaces an item whose etag is still `etag`; [`CollectionError::Changed`] otherwise.
    /// Returns the new etag.
    fn update(
        &self,
        href: &str,
        content: &str,
        etag: &str,
    ) -> impl Future<Output = Result<String, CollectionError>> + Send;

    /// Deletes an item whose etag is still `etag`.
    fn delete(
        &self,
        href: &str,
        etag: &str,
    ) -> impl Future<Output = Result<(), CollectionError>> + Send;
}
