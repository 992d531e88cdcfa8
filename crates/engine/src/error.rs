//! The failure of a whole pass (or of a whole collection within one), as a type: what the
//! status file shows as `last_error`, and whether retrying soon can cure it.

use crmsync_imap::ImapError;
use crmsync_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("CRM store: {0}")]
    Store(#[from] StoreError),
    /// The IMAP adapter's errors say what they are about themselves.
    #[error("{0}")]
    Imap(#[from] ImapError),
    #[error("IMAP password: {0}")]
    Password(String),
    #[error("owner {0} is not a CRM user (crmsync user add {0} --name NAME)")]
    UnknownOwner(String),
    #[error("IMAP: the connection was lost during the pass")]
    ConnectionLost,
    /// A calendar or address book that cannot be listed or that lists suspiciously.
    #[error("{0}")]
    Collection(String),
}

impl PassError {
    /// Failures that retrying soon will not cure (a bad password, a missing folder, an
    /// untrusted certificate, an owner who is not a CRM user): the worker retries slowly.
    pub fn is_permanent(&self) -> bool {
        match self {
            PassError::Imap(error) => error.is_permanent(),
            PassError::Password(_) | PassError::UnknownOwner(_) => true,
            PassError::Store(_) | PassError::ConnectionLost | PassError::Collection(_) => false,
        }
    }
}
