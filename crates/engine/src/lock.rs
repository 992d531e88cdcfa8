//! One process syncs a mailbox at a time.
//!
//! A pass holds the mailbox's lock for as long as it runs, so a `crmsync sync` started while
//! the daemon runs waits for the daemon's pass of that mailbox to end instead of racing it,
//! and the other way round: a file beside a SQLite store (`.crmsync-MAILBOX.lock`, an
//! `flock`), a session advisory lock on a PostgreSQL store (any machine's process). The kernel
//! or the server drops the lock when the process dies, so a killed pass never leaves a
//! mailbox locked.

use std::io;
use std::time::Duration;

use crmsync_store::{Database, MailboxLock};

/// The lock if it is free now, `None` if another process holds it.
pub fn try_lock_mailbox(database: &Database, mailbox: &str) -> io::Result<Option<MailboxLock>> {
    database.try_lock_mailbox(mailbox)
}

/// Waits for the lock without blocking the runtime.
pub async fn lock_mailbox(database: &Database, mailbox: &str) -> io::Result<MailboxLock> {
    loop {
        if let Some(lock) = try_lock_mailbox(database, mailbox)? {
            return Ok(lock);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
