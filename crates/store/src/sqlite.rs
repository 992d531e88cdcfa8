//! [`SqliteStore`]: the CRM store in one SQLite file.
//!
//! Every connection runs in WAL mode (readers never block the writer, and other programs can
//! read while the daemon writes), with foreign keys on, `synchronous = FULL` (a commit that
//! returned survives a power cut, which the write-then-link order of the sync relies on) and a
//! busy timeout, so that a short write by another program waits instead of failing.
//!
//! Writes go through [`SqliteStore::write`]: one `BEGIN IMMEDIATE` transaction that marks its
//! journal rows with this store's origin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use crate::migrations::{MIGRATIONS, latest_version};
use crate::shared::Backend;
use crate::sql::{Cell, Param, Row, Sql};
use crate::{Result, Rules, StoreError};

/// SQLite's errors reach callers as [`StoreError::Unavailable`] when the database cannot serve
/// at all (busy or locked beyond the busy timeout, full, an I/O error, cannot be opened or
/// written, out of memory), else as [`StoreError::Backend`]: the store traits name no backend.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as Code;
        match error.sqlite_error_code() {
            Some(
                Code::DatabaseBusy
                | Code::DatabaseLocked
                | Code::DiskFull
                | Code::SystemIoFailure
                | Code::CannotOpen
                | Code::ReadOnly
                | Code::OutOfMemory,
            ) => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Backend(error.to_string()),
        }
    }
}

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    origin: String,
    rules: Rules,
}

/// The newest migration applied to the store (0 for none).
fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    query_row_cached(
        conn,
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    /// `origin` marks this process's writes in the change journal (`crmsync-cli`,
    /// `crmsync-daemon`); it lets the daemon tell its own changes from everyone else's.
    pub fn open(path: &Path, origin: &str, rules: Rules) -> Result<SqliteStore> {
        let open_error = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(open_error(format!(
                "directory {} does not exist",
                parent.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| open_error(e.to_string()))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            origin: origin.to_owned(),
            rules,
        };
        store.configure_connection().map_err(open_error)?;
        // A store at the latest version (every open but the first of a new crmsync) is not
        // locked for writing to find that out: a daemon opens one connection per mailbox.
        // (A new file has no such table yet: an error here, and the migration says what.)
        if schema_version(&store.conn).ok() != Some(latest_version()) {
            store.migrate()?;
        }
        Ok(store)
    }

    fn configure_connection(&self) -> Result<(), String> {
        let setup = || -> rusqlite::Result<String> {
            self.conn.busy_timeout(Duration::from_secs(10))?;
            self.conn.set_prepared_statement_cache_capacity(128);
            self.conn.execute_batch(
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
            )?;
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        };
        let mode = setup().map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "cannot switch to WAL mode (the file stays in {mode} mode)"
            ));
        }
        Ok(())
    }

    /// Runs every migration newer than the store's version, each in its own transaction.
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.display().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             )",
        )?;
        let current = schema_version(&tx)?;
        if current > latest_version() {
            return Err(StoreError::SchemaTooNew {
                path,
                found: current,
                known: latest_version(),
            });
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.execute_batch(migration.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                params![migration.version, migration.name],
            )?;
            tx.pragma_update(None, "user_version", migration.version)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The versions of the migrations applied to this store, oldest first.
    pub fn applied_migrations(&self) -> Result<Vec<i64>> {
        let mut statement = self
            .conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")?;
        let versions = statement
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(versions)
    }
}

impl Backend for SqliteStore {
    fn rules(&self) -> Rules {
        self.rules
    }

    /// One immediate write transaction whose journal rows carry this store's origin. The
    /// origin is cleared again before commit, so no other program's write can ever be
    /// attributed to crmsync. Where the journal stood at the start (`since`) lets the triggers
    /// journal a row changed several times in a row once (migration 14).
    fn write<T: Send>(&mut self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut sql = SqliteSql { conn: &tx };
        sql.execute(
            "UPDATE journal_writer
             SET origin = ?1,
                 since = COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'change_journal'), 0)
             WHERE id = 1",
            &[Param::from(&self.origin)],
        )?;
        let value = body(&mut sql)?;
        sql.execute(
            "UPDATE journal_writer SET origin = NULL, since = NULL WHERE id = 1",
            &[],
        )?;
        tx.commit()?;
        Ok(value)
    }

    fn read<T: Send>(&self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T> {
        let tx = self.conn.unchecked_transaction()?;
        let value = body(&mut SqliteSql { conn: &tx })?;
        tx.finish()?;
        Ok(value)
    }
}

/// One SQLite transaction as [`Sql`]: every statement through the connection's statement
/// cache (compiling one, with the triggers it fires, costs more than running it).
struct SqliteSql<'a> {
    conn: &'a Connection,
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Null => ValueRef::Null,
            Param::Int(value) => ValueRef::Integer(*value),
            Param::Text(text) => ValueRef::Text(text.as_bytes()),
            Param::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl Sql for SqliteSql<'_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize> {
        let mut statement = self.conn.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params.iter()))?)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(match row.get_ref(index)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(value) => Cell::Int(value),
                    ValueRef::Real(value) => Cell::Real(value),
                    // Text that is not UTF-8 (another program's) reads as a blob: a column
                    // read as text then names it instead of changing it.
                    ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                        Ok(text) => Cell::Text(text.to_owned()),
                        Err(_) => Cell::Blob(bytes.to_vec()),
                    },
                    ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
                });
            }
            found.push(Row { cells });
        }
        Ok(found)
    }
}

/// A value of the schema's own tables (`schema_migrations`).
fn query_row_cached<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}
