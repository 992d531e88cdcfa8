//! The IMAP adapter of crmsync: async-imap on tokio, TLS by rustls (ring), and what crmsync
//! reads from messages.
//!
//! - [`session`]: connect (`tls`, `starttls` or `none`), log in, scan a folder incrementally by
//!   CONDSTORE, fetch a tracked message's body, write keywords back. It counts what it asks of
//!   the server ([`session::Counters`]).
//! - [`message`]: the identity of a message from its headers, and the content of a tracked one.
//! - `tls`: certificate verification against the system's roots and a mailbox's `ca_file`.
//!
//! The adapter observes and acts; it decides nothing. The reconciler (crmsync-core) decides.
#![forbid(unsafe_code)]

pub mod message;
pub mod session;
mod stream;
mod tls;

pub use session::{Counters, FetchedHeader, FolderMarkers, FolderScan, IdleOutcome, ImapSession};

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {address}: {message}")]
    Connect { address: String, message: String },
    /// The TLS configuration cannot work (an unreadable or empty `ca_file`, a host name that
    /// cannot be a TLS name).
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "TLS with {host}: the server's certificate is not trusted ({detail}); name its CA, or the certificate itself, in ca_file"
    )]
    UntrustedCertificate { host: String, detail: String },
    #[error("authentication failed for {user} on {host}: {message}")]
    Authentication {
        user: String,
        host: String,
        message: String,
    },
    #[error("folder {0:?} does not exist on the server")]
    FolderMissing(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the server refused: {0}")]
    No(String),
    #[error("IMAP: {0}")]
    Protocol(String),
}

impl ImapError {
    /// Failures that retrying soon will not cure: a bad password, a missing folder, an untrusted
    /// certificate. A mailbox with one goes to the error state and is retried slowly.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ImapError::Authentication { .. }
                | ImapError::FolderMissing(_)
                | ImapError::UntrustedCertificate { .. }
                | ImapError::Tls(_)
        )
    }

    fn from_tls_io(host: &str, error: std::io::Error) -> ImapError {
        let detail = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|tls| match tls {
                rustls::Error::InvalidCertificate(reason) => Some(format!("{reason:?}")),
                _ => None,
            });
        match detail {
            Some(Some(detail)) => ImapError::UntrustedCertificate {
                host: host.to_owned(),
                detail,
            },
            // A handshake cut short (a reset, a timeout) is a connection problem that a retry
            // may cure, not a TLS configuration problem.
            _ => ImapError::Protocol(format!("TLS handshake with {host} failed: {error}")),
        }
    }
}

impl From<async_imap::error::Error> for ImapError {
    fn from(error: async_imap::error::Error) -> ImapError {
        use async_imap::error::Error;
        match error {
            Error::No(message) => ImapError::No(message),
            Error::Io(io) => ImapError::Protocol(format!("connection: {io}")),
            Error::ConnectionLost => ImapError::Protocol("connection lost".into()),
            other => ImapError::Protocol(other.to_string()),
        }
    }
}

impl From<std::io::Error> for ImapError {
    fn from(error: std::io::Error) -> ImapError {
        ImapError::Protocol(format!("connection: {error}"))
    }
}
