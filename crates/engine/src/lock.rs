//! One process syncs a mailbox at a time.
//!
//! A pass holds an exclusive lock on a file beside the CRM store
//! (`.crmsync-MAILBOX.lock` in the store's directory) for as long as it runs, so a
//! `crmsync sync` started while the daemon runs waits for the daemon's pass of that mailbox to
//! end instead of racing it, and the other way round. The lock is an `flock`: the kernel drops
//! it when the process dies, so a killed pass never leaves a mailbox locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Held for the length of one pass.
#[derive(Debug)]
pub struct MailboxLock {
    _file: File,
}

pub fn lock_path(database: &Path, mailbox: &str) -> PathBuf {
    let directory = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    directory.join(format!(".crmsync-{mailbox}.lock"))
}

fn open(database: &Path, mailbox: &str) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(database, mailbox))
}

/// The lock if it is free now, `None` if another process holds it.
pub fn try_lock_mailbox(database: &Path, mailbox: &str) -> io::Result<Option<MailboxLock>> {
    let file = open(database, mailbox)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(MailboxLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

/// Waits for the lock without blocking the runtime.
pub async fn lock_mailbox(database: &Path, mailbox: &str) -> io::Result<MailboxLock> {
    loop {
        if let Some(lock) = try_lock_mailbox(database, mailbox)? {
            return Ok(lock);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
