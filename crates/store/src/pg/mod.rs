//! [`PgStore`]: the CRM store in a PostgreSQL database, for organisations whose CRM lives there
//! and for several crmsync nodes sharing one store.
//!
//! The statements are the shared ones (`crate::shared`), rewritten for PostgreSQL by
//! [`to_postgres`]; the rules (journal, versions, refusals, cleanup) are PL/pgSQL triggers in
//! the schema, so they hold for every program that writes the database.
//!
//! - **Connections**: one [`PgDatabase`] per process holds a small pool (at most
//!   `pool_size` connections, made when first needed); every [`PgStore`] made from it borrows
//!   a connection for one transaction at a time. A daemon serving a thousand mailboxes needs
//!   a few connections, not a thousand.
//! - **Blocking**: the `postgres` client drives its connection on a runtime of its own and
//!   must not block a thread that runs async tasks; a call from inside a tokio runtime moves
//!   off it (`block_in_place`, or a scoped thread on a current-thread runtime).
//! - **Writes** take one transaction-wide advisory lock first (the journal's, which every
//!   journal writer takes): crmsync's writes are serialised like SQLite's, journal rows commit
//!   in `seq` order, and crmsync's writers never deadlock with one another. The transaction's
//!   origin is the setting `crmsync.origin`, which the journal trigger copies.
//! - **Reads** run in one `REPEATABLE READ, READ ONLY` transaction: one snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, Config, IsolationLevel, Statement};

use crate::shared::Backend;
use crate::sql::{Cell, Param, Row, Sql, to_postgres};
use crate::{Result, Rules, StoreError};

/// The journal's lock (`crmsync_journal` in the schema takes the same key).
const JOURNAL_LOCK: i64 = 7_263_845_001;

/// How long a store call waits for a free connection before it reports the database busy.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL migrations, numbered on their own (the schema they reach is SQLite's at its
/// migration 17; later changes are a migration in each backend).
const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "schema", include_str!("0001_schema.sql"))];

/// Where and how to connect.
#[derive(Clone)]
pub struct PgOptions {
    /// A `postgres://user@host:port/database?sslmode=...` URL, without a password.
    pub url: String,
    /// The password, from a file or a systemd credential (never in the URL).
    pub password: Option<String>,
    /// TLS for `sslmode=require`: crmsync's rustls configuration (verified by default).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// At most this many connections from this process.
    pub pool_size: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(hidden)"))
            .field("tls", &self.tls.is_some())
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// One process's way to a PostgreSQL store: its connection pool. Cheap to clone.
#[derive(Clone)]
pub struct PgDatabase {
    pool: Arc<Pool>,
}

struct Pool {
    config: Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The URL, for messages (a password in it shown as `***`).
    name: String,
    size: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<PgConnection>,
    open: usize,
}

/// A connection and the statements prepared on it.
struct PgConnection {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PgDatabase {
    /// Connects (one connection, to check the URL and the password at once) and brings the
    /// schema up to date.
    pub fn connect(options: &PgOptions) -> Result<PgDatabase> {
        let name = without_password(&options.url);
        let open_error = |message: String| StoreError::Open {
            path: name.clone(),
            message,
        };
        let mut config: Config = options
            .url
            .parse()
            .map_err(|e: postgres::Error| open_error(e.to_string()))?;
        if config.get_password().is_some() {
            return Err(open_error(
                "the URL holds a password: give it in password_file or password_credential".into(),
            ));
        }
        if let Some(password) = &options.password {
            config.password(password.as_bytes());
        }
        // A server on another machine is reached over verified TLS only, whatever the URL's
        // sslmode says (its default, `prefer`, would fall back to plaintext).
        let remote = config.get_hosts().iter().any(|host| match host {
            Host::Tcp(name) => !is_loopback(name),
            Host::Unix(_) => false,
        });
        if remote {
            if config.get_ssl_mode() == SslMode::Disable {
                return Err(open_error(
                    "sslmode=disable for a server on another machine: crmsync reaches it over TLS only"
                        .into(),
                ));
            }
            if options.tls.is_none() {
                return Err(open_error(
                    "no TLS configuration for a remote server".into(),
                ));
            }
            config.ssl_mode(SslMode::Require);
        }
        config.application_name("crmsync");
        let database = PgDatabase {
            pool: Arc::new(Pool {
                config,
                tls: options.tls.clone(),
                name: name.clone(),
                size: options.pool_size.max(1),
                state: Mutex::new(PoolState::default()),
                returned: Condvar::new(),
            }),
        };
        database.migrate()?;
        Ok(database)
    }

    /// A store on this database whose writes carry `origin` in the journal.
    pub fn store(&self, origin: &str, rules: Rules) -> PgStore {
        PgStore {
            database: self.clone(),
            origin: origin.to_owned(),
            rules,
        }
    }

    /// What the URL names, for messages.
    pub fn name(&self) -> &str {
        &self.pool.name
    }

    /// Runs every migration newer than the database's version, in one transaction under the
    /// journal's lock (nodes starting together migrate once).
    fn migrate(&self) -> Result<()> {
        self.with_connection(|connection| {
            let mut tx = connection.client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    BIGINT PRIMARY KEY,
                     name       TEXT NOT NULL,
                     applied_at TEXT NOT NULL DEFAULT to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                              'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 )",
            )?;
            let current: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations",
                    &[],
                )?
                .get(0);
            let known = MIGRATIONS.last().map_or(0, |m| m.0);
            if current > known {
                return Err(StoreError::SchemaTooNew {
                    path: self.pool.name.clone(),
                    found: current,
                    known,
                });
            }
            for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
                tx.batch_execute(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The versions of the migrations applied, oldest first.
    pub fn applied_migrations(&self) -> Result<Vec<i64>> {
        self.with_connection(|connection| {
            Ok(connection
                .client
                .query(
                    "SELECT version FROM schema_migrations ORDER BY version",
                    &[],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    /// Runs `body` with a connection of the pool, off any async runtime's thread.
    fn with_connection<T: Send>(
        &self,
        body: impl FnOnce(&mut PgConnection) -> Result<T> + Send,
    ) -> Result<T> {
        off_runtime(|| {
            let mut connection = self.pool.checkout()?;
            let result = body(&mut connection);
            self.pool.checkin(connection);
            result
        })
    }
}

/// The advisory-lock class of mailbox locks (the key is a hash of the mailbox's id).
const MAILBOX_LOCK_CLASS: i32 = 7263;

impl PgDatabase {
    /// The mailbox's lock if no other session holds it: a session advisory lock on a
    /// connection of its own, held until the guard is dropped (or the session ends).
    pub fn try_lock_mailbox(&self, mailbox: &str) -> Result<Option<PgMailboxLock>> {
        off_runtime(|| {
            let mut connection = self.pool.connect()?;
            let locked: bool = connection
                .client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&MAILBOX_LOCK_CLASS, &mailbox],
                )?
                .get(0);
            if locked {
                Ok(Some(PgMailboxLock {
                    client: Some(connection.client),
                }))
            } else {
                drop(connection);
                Ok(None)
            }
        })
    }
}

/// A mailbox's lock on PostgreSQL: the session that holds it.
pub struct PgMailboxLock {
    client: Option<Client>,
}

impl std::fmt::Debug for PgMailboxLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgMailboxLock")
    }
}

impl Drop for PgMailboxLock {
    fn drop(&mut self) {
        // Closing the session releases the lock. The client owns a runtime, which must not
        // be dropped on an async runtime's thread.
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let idle = std::mem::take(&mut state.idle);
        off_runtime(move || drop(idle));
    }
}

impl Pool {
    fn checkout(&self) -> Result<PgConnection> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(connection) = state.idle.pop() {
                if !connection.client.is_closed() {
                    return Ok(connection);
                }
                state.open -= 1;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return self.connect().inspect_err(|_| {
                    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.open -= 1;
                    self.returned.notify_one();
                });
            }
            let (next, timeout) = self
                .returned
                .wait_timeout(state, CHECKOUT_TIMEOUT)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.open >= self.size {
                return Err(StoreError::Unavailable(format!(
                    "all {} connections to {} are busy",
                    self.size, self.name
                )));
            }
        }
    }

    fn checkin(&self, connection: PgConnection) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if connection.client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(connection);
        }
        self.returned.notify_one();
    }

    fn connect(&self) -> Result<PgConnection> {
        let client = match &self.tls {
            Some(tls) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (**tls).clone(),
                )),
            None => self.config.connect(postgres::NoTls),
        }
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to {}: {e}", self.name)))?;
        Ok(PgConnection {
            client,
            statements: HashMap::new(),
        })
    }
}

/// `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A URL as messages show it: a password in it (refused anyway) replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// Runs `body` where the blocking client may block: as is outside a tokio runtime, through
/// `block_in_place` on a multi-thread runtime, on a scoped thread on a current-thread one.
fn off_runtime<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => body(),
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(body)
        }
        Ok(_) => std::thread::scope(|scope| match scope.spawn(body).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// A store on a PostgreSQL database: the pool it borrows connections from, its origin and
/// rules.
pub struct PgStore {
    database: PgDatabase,
    origin: String,
    rules: Rules,
}

impl PgStore {
    pub fn database(&self) -> &PgDatabase {
        &self.database
    }
}

impl Backend for PgStore {
    fn rules(&self) -> Rules {
        self.rules
    }

    fn write<T: Send>(&mut self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T> {
        let origin = self.origin.as_str();
        self.database.with_connection(|connection| {
            let PgConnection { client, statements } = connection;
            let mut tx = client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1), set_config('crmsync.origin', $2, true)",
                &[&JOURNAL_LOCK, &origin],
            )?;
            let value = body(&mut PgSql {
                tx: &mut tx,
                statements,
            })?;
            tx.commit()?;
            Ok(value)
        })
    }

    fn read<T: Send>(&self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T> {
        self.database.with_connection(|connection| {
            let PgConnection { client, statements } = connection;
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let value = body(&mut PgSql {
                tx: &mut tx,
                statements,
            })?;
            tx.commit()?;
            Ok(value)
        })
    }
}

/// One PostgreSQL transaction as [`Sql`].
struct PgSql<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    statements: &'a mut HashMap<String, Statement>,
}

impl PgSql<'_, '_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(&to_postgres(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Sql for PgSql<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize> {
        let statement = self.prepared(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let changed = self.tx.execute(&statement, &params)?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let statement = self.prepared(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.tx.query(&statement, &params)?;
        rows.iter()
            .map(|row| {
                let cells = (0..row.len())
                    .map(|index| Ok(row.try_get::<_, Cell>(index)?))
                    .collect::<Result<Vec<Cell>>>()?;
                Ok(Row { cells })
            })
            .collect()
    }
}

/// PostgreSQL's errors reach callers as [`StoreError::Unavailable`] when the database cannot
/// serve (the connection is gone, the server is shutting down or out of resources), else as
/// [`StoreError::Backend`] with the server's message.
impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> StoreError {
        use postgres::error::SqlState;
        let unavailable = error.is_closed()
            || error.code().is_some_and(|code| {
                let class = &code.code()[..2];
                // 08: connection exception, 53: insufficient resources, 57: operator
                // intervention (shutdown), 58: system error.
                matches!(class, "08" | "53" | "57" | "58") || *code == SqlState::ADMIN_SHUTDOWN
            });
        let message = match error.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => error.to_string(),
        };
        if unavailable {
            StoreError::Unavailable(message)
        } else {
            StoreError::Backend(message)
        }
    }
}

// Values across the wire. A parameter converts to the type the server inferred for it; a
// result column of any type crmsync's schema uses converts to a cell.

fn text_like(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || ty.name() == "citext"
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::BOOL => (*value != 0).to_sql(ty, out),
                Type::FLOAT8 => (*value as f64).to_sql(ty, out),
                _ if text_like(ty) => value.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound as {ty}").into()),
            },
            Param::Text(text) => match *ty {
                Type::BYTEA => text.as_bytes().to_sql(ty, out),
                _ if text_like(ty) => {
                    out.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                _ => Err(format!("text cannot be bound as {ty}").into()),
            },
            Param::Blob(bytes) => match *ty {
                Type::BYTEA => bytes.as_ref().to_sql(ty, out),
                _ => Err(format!("a blob cannot be bound as {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Cell, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Cell::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Cell::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Cell::Blob(raw.to_vec()),
            _ if text_like(ty) => Cell::Text(String::from_utf8(raw.to_vec())?),
            _ => return Err(format!("a column of type {ty} is not read by crmsync").into()),
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Cell, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            without_password("postgres://crm:s3cret@db.example:5432/crm?sslmode=require"),
            "postgres://crm:***@db.example:5432/crm?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://crm@db.example/crm"),
            "postgres://crm@db.example/crm"
        );
    }
}
