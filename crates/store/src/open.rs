//! Either backend, chosen by the configuration: [`Database`] is what a process opens once (a
//! SQLite file's path, or a PostgreSQL pool), [`Store`] what each worker or command uses.
//! Every store trait is implemented once for both (`crate::shared`), so `Store` only passes
//! transactions to the backend it holds.

use std::path::{Path, PathBuf};

use crate::pg::{PgDatabase, PgMailboxLock};
use crate::shared::Backend;
use crate::sql::Sql;
use crate::{PgOptions, PgStore, Result, Rules, SqliteStore};

/// Where the CRM store is.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(PgOptions),
}

/// The CRM store as a process holds it: cheap to clone, one per process.
#[derive(Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PgDatabase),
}

impl Database {
    /// Opens the database: for PostgreSQL, connects and brings the schema up to date; for
    /// SQLite nothing yet (each [`Database::store`] opens the file and migrates it).
    pub fn open(location: &StoreLocation) -> Result<Database> {
        match location {
            StoreLocation::Sqlite(path) => Ok(Database::Sqlite(path.clone())),
            StoreLocation::Postgres(options) => {
                Ok(Database::Postgres(PgDatabase::connect(options)?))
            }
        }
    }

    /// A store whose writes carry `origin` in the change journal.
    pub fn store(&self, origin: &str, rules: Rules) -> Result<Store> {
        match self {
            Database::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(path, origin, rules)?)),
            Database::Postgres(database) => Ok(Store::Postgres(database.store(origin, rules))),
        }
    }

    /// The store's name in messages: the file, or the URL without a password.
    pub fn name(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(database) => database.name().to_owned(),
        }
    }

    /// The SQLite file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// Waits until this process alone syncs `mailbox` on this store, and holds it until the
    /// guard is dropped: a lock file beside a SQLite store (an `flock`, dropped by the kernel
    /// when the process dies), a session advisory lock on PostgreSQL (dropped by the server
    /// when the session ends), so a one-shot `crmsync sync` and a daemon, on any machine,
    /// never sync one mailbox at once. `None` from [`Database::try_lock_mailbox`] when another
    /// holds it.
    pub fn try_lock_mailbox(&self, mailbox: &str) -> std::io::Result<Option<MailboxLock>> {
        match self {
            Database::Sqlite(path) => {
                Ok(sqlite_lock::try_lock(path, mailbox)?.map(MailboxLock::File))
            }
            Database::Postgres(database) => database
                .try_lock_mailbox(mailbox)
                .map(|lock| lock.map(|lock| MailboxLock::Postgres(Box::new(lock))))
                .map_err(|e| std::io::Error::other(e.to_string())),
        }
    }
}

/// Held while one process syncs a mailbox (see [`Database::try_lock_mailbox`]).
#[derive(Debug)]
pub enum MailboxLock {
    File(std::fs::File),
    Postgres(Box<PgMailboxLock>),
}

mod sqlite_lock {
    use std::fs::{File, OpenOptions, TryLockError};
    use std::io;
    use std::path::{Path, PathBuf};

    /// `.crmsync-MAILBOX.lock` in the store's directory.
    pub(super) fn lock_path(database: &Path, mailbox: &str) -> PathBuf {
        let directory = database
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        directory.join(format!(".crmsync-{mailbox}.lock"))
    }

    pub(super) fn try_lock(database: &Path, mailbox: &str) -> io::Result<Option<File>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(database, mailbox))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }
}

/// The lock file of a mailbox beside a SQLite store.
pub fn sqlite_lock_path(database: &Path, mailbox: &str) -> PathBuf {
    sqlite_lock::lock_path(database, mailbox)
}

/// A store on either backend; it implements every store trait.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Backend for Store {
    fn rules(&self) -> Rules {
        match self {
            Store::Sqlite(store) => store.rules(),
            Store::Postgres(store) => store.rules(),
        }
    }

    fn write<T: Send>(&mut self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T> {
        match self {
            Store::Sqlite(store) => store.write(body),
            Store::Postgres(store) => store.write(body),
        }
    }

    fn read<T: Send>(&self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T> {
        match self {
            Store::Sqlite(store) => store.read(body),
            Store::Postgres(store) => store.read(body),
        }
    }
}
