//! Who wrote a change: the `origin` column of the change journal, as a type. The journal
//! watcher decides from it whom to wake.

use std::fmt;

/// The writer of a change in the CRM store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The daemon's own bookkeeping (its journal cursor, say): wakes nobody.
    Daemon,
    /// A worker's writes for one mailbox: they may wake other workers (another mailbox may
    /// link the same row), never the one that wrote.
    Worker(String),
    /// Anyone else (the CLI, another program writing the schema, no origin at all): may wake
    /// any worker.
    Other(String),
}

const DAEMON: &str = "crmsync-daemon";

impl Origin {
    /// The origin a journal row names.
    pub fn parse(origin: Option<&str>) -> Origin {
        match origin {
            Some(DAEMON) => Origin::Daemon,
            Some(origin) => match origin
                .strip_prefix(DAEMON)
                .and_then(|r| r.strip_prefix(':'))
            {
                Some(mailbox) => Origin::Worker(mailbox.to_owned()),
                None => Origin::Other(origin.to_owned()),
            },
            None => Origin::Other(String::new()),
        }
    }

    /// Whether a change from this origin should wake the worker of `mailbox`.
    pub fn wakes(&self, mailbox: &str) -> bool {
        match self {
            Origin::Daemon => false,
            Origin::Worker(writer) => writer != mailbox,
            Origin::Other(_) => true,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Daemon => f.write_str(DAEMON),
            Origin::Worker(mailbox) => write!(f, "{DAEMON}:{mailbox}"),
            Origin::Other(origin) => f.write_str(origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Origin;

    #[test]
    fn origins_round_trip_and_wake_the_right_workers() {
        for origin in [Origin::Daemon, Origin::Worker("alice".into())] {
            assert_eq!(Origin::parse(Some(&origin.to_string())), origin);
        }
        assert_eq!(
            Origin::parse(Some("crmsync-cli")),
            Origin::Other("crmsync-cli".into())
        );
        assert_eq!(
            Origin::parse(Some("crmsync-daemonic")),
            Origin::Other("crmsync-daemonic".into())
        );
        assert!(!Origin::Daemon.wakes("alice"));
        assert!(!Origin::Worker("alice".into()).wakes("alice"));
        assert!(Origin::Worker("alice".into()).wakes("bob"));
        assert!(Origin::parse(None).wakes("alice"));
    }
}
