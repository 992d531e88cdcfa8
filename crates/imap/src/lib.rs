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

use crmsync_core::readable::{MAX_MESSAGE, one_line, quote};

pub mod message;
pub mod session;
mod stream;
mod tls;

/// The rustls configuration of one server (system roots, `ca_file`, or no verification when a
/// config says so), shared with the other adapters that speak TLS.
pub use tls::client_config as tls_client_config;

pub use session::{
    Counters, FetchedHeader, FetchedMessage, FolderMarkers, FolderScan, IdleOutcome, ImapSession,
    ScanFields, Summarized, Wanted,
};

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
                rustls::Error::InvalidCertificate(reason) => Some(certificate_problem(reason)),
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

/// What is wrong with a certificate, in words.
fn certificate_problem(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match reason {
        E::UnknownIssuer => "it is not signed by a CA this machine trusts".into(),
        E::Expired | E::ExpiredContext { .. } => "it has expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "it is not made out for this host name".into()
        }
        E::Revoked => "it was revoked".into(),
        E::BadSignature | E::UnsupportedSignatureAlgorithmContext { .. } => {
            "its signature cannot be checked".into()
        }
        E::BadEncoding => "it is not a well-formed certificate".into(),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            "it is not meant for a server".into()
        }
        other => {
            let debug = format!("{other:?}");
            if debug.contains("CaUsedAsEndEntity") {
                "it is a CA's certificate, not a server's (to trust a self-signed one, name that very certificate in ca_file)".into()
            } else {
                one_line(&debug, QUOTED)
            }
        }
    }
}

impl From<async_imap::error::Error> for ImapError {
    /// In words, on one line: the library's messages carry debug dumps (`code: None, info:
    /// Some(..)`, bytes as arrays of numbers, a whole unparsable buffer).
    fn from(error: async_imap::error::Error) -> ImapError {
        use async_imap::error::{Error, ParseError};
        match error {
            Error::No(message) => ImapError::No(server_text(&message)),
            Error::Bad(message) => ImapError::Protocol(format!(
                "the server answered BAD: {}",
                server_text(&message)
            )),
            Error::Io(io) => io.into(),
            Error::ConnectionLost => ImapError::Protocol("connection lost".into()),
            Error::Parse(ParseError::Invalid(bytes)) => ImapError::Protocol(format!(
                "the server sent a status response that is not IMAP: {}",
                quote(&bytes, QUOTED)
            )),
            Error::Parse(ParseError::DataNotUtf8(bytes, _)) => ImapError::Protocol(format!(
                "the server sent text that is not UTF-8: {}",
                quote(&bytes, QUOTED)
            )),
            Error::Parse(ParseError::Unexpected(what)) => ImapError::Protocol(format!(
                "the server sent an unexpected response: {}",
                one_line(&what, QUOTED)
            )),
            other => ImapError::Protocol(one_line(&other.to_string(), MAX_MESSAGE)),
        }
    }
}

/// How much of what a server sent an error message quotes.
const QUOTED: usize = 80;

/// The text of a server's NO or BAD as the library words it (`code: Some(..), info:
/// Some("text")` or `outcome: Outcome { code: .., information: Some("text") }`): the server's
/// own text when there is one.
fn server_text(message: &str) -> String {
    let text = ["information: Some(\"", "info: Some(\""]
        .iter()
        .find_map(|start| message.split_once(start))
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(text, _)| text.replace("\\\"", "\"").replace("\\\\", "\\"));
    match text {
        Some(text) => one_line(&text, MAX_MESSAGE),
        None if message.contains(": None") => "(no reason given)".to_owned(),
        None => one_line(message, MAX_MESSAGE),
    }
}

impl From<std::io::Error> for ImapError {
    /// The library reports a response it cannot parse as an I/O error whose text holds the
    /// whole buffer as a debug string: said in words, with a short quotation.
    fn from(error: std::io::Error) -> ImapError {
        let text = error.to_string();
        match text.split_once(" during parsing of ") {
            Some((_, data)) => ImapError::Protocol(format!(
                "the server sent something that is not IMAP: {}",
                one_line(data, QUOTED)
            )),
            None => ImapError::Protocol(format!("connection: {}", one_line(&text, MAX_MESSAGE))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_text;

    #[test]
    fn a_servers_no_and_bad_are_its_own_words() {
        assert_eq!(
            server_text(r#"code: None, info: Some("Unknown command")"#),
            "Unknown command"
        );
        assert_eq!(
            server_text(
                r#"outcome: Outcome { code: Some(Alert), information: Some("Say \"hi\"") }"#
            ),
            "Say \"hi\""
        );
        assert_eq!(server_text("code: None, info: None"), "(no reason given)");
    }
}
