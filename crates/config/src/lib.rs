//! The crmsync configuration file (SPEC section 10): TOML parsed into typed structs with
//! explicit defaults, and validated as a whole before anything uses it.
//!
//! Parsing is by hand over a `toml::Table` rather than by serde derive, for the sake of the
//! messages: every problem names the file, the mailbox, the key and what was expected
//! (`/etc/crmsync/crmsync.toml: mailbox "alice": imap.port: expected a number from 1 to 65535`),
//! unknown keys are refused (a typo must not silently fall back to a default), and all problems
//! of a file are reported together rather than one per attempt.
//!
//! Relative paths in the file are taken relative to the directory of the file.
//!
//! Secrets never appear in the file: a password comes from a file that only crmsync can read
//! (`password_file`, checked here) or from a systemd credential (`password_credential`, read
//! from `$CREDENTIALS_DIRECTORY` when a connection needs it). An inline `password` is refused.
#![forbid(unsafe_code)]

mod parse;
mod secret;
mod section;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crmsync_core::model::{ConflictPolicy, EmailAddress, RecordNumber};

pub use parse::{DEFAULT_MESSAGE_SIZE, size_words};
pub use secret::{Secret, SecretError, SecretSource};

/// The default location of the config file, when neither `--config` nor `$CRMSYNC_CONFIG` say.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/crmsync/crmsync.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this config was read from.
    pub path: PathBuf,
    pub crm: CrmConfig,
    pub connection: ConnectionConfig,
    pub status: StatusConfig,
    pub log: LogConfig,
    pub daemon: DaemonConfig,
    pub mailboxes: Vec<MailboxConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`). Default `info`; `RUST_LOG`, when
    /// set, wins.
    pub level: String,
    /// Default `text`; `--log-format` wins.
    pub format: LogFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Seconds between fallback polls of a mailbox that nothing woke. Default 300.
    pub poll_interval: u64,
    /// How many folders per mailbox get their own IDLE connection; the rest are polled.
    /// Default 5.
    pub idle_folders: usize,
    /// Seconds the CRM store's change journal keeps an entry that every registered reader
    /// has read, for readers that follow it without a cursor. Default 604800 (7 days).
    pub journal_retention: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmConfig {
    /// Where the CRM store is. Default the SQLite file `/var/lib/crmsync/crm.sqlite3`.
    pub database: DatabaseConfig,
    /// The CRM's web address of a record or activity, with `{entity}` (the entity, or
    /// `email`/`appointment`/`task`), `{id}` (its uuid) and `{number}` (a record's number):
    /// `item show` and `activity show` print the "open in CRM" link.
    pub web_url: Option<String>,
}

/// The CRM store: a SQLite file (`database = "PATH"`) or a PostgreSQL database
/// (`database = "postgres://..."`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    Sqlite(PathBuf),
    Postgres(PostgresConfig),
}

impl DatabaseConfig {
    /// The SQLite file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DatabaseConfig::Sqlite(path) => Some(path),
            DatabaseConfig::Postgres(_) => None,
        }
    }

    /// The store for messages: the file, or the URL (which never holds a password).
    pub fn shown(&self) -> String {
        match self {
            DatabaseConfig::Sqlite(path) => path.display().to_string(),
            DatabaseConfig::Postgres(postgres) => postgres.url.clone(),
        }
    }
}

/// A PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://USER@HOST:PORT/DATABASE[?sslmode=...]`, without a password (refused).
    pub url: String,
    /// `password_file` or `password_credential`; none for a trusted or peer login.
    pub password: Option<SecretSource>,
    /// `ca_file`, `verify_certificates`. A server that is not on this machine is always
    /// reached over TLS.
    pub tls: TlsConfig,
    /// Connections per crmsync process (`pool_size`). Default 8.
    pub pool_size: usize,
}

impl CrmConfig {
    /// The "open in CRM" link of one row, when `web_url` is set.
    pub fn link(&self, entity: &str, id: &str, number: Option<&str>) -> Option<String> {
        self.web_url.as_ref().map(|url| {
            url.replace("{entity}", entity)
                .replace("{id}", id)
                .replace("{number}", number.unwrap_or(id))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// `false`: the daemon contacts no store and writes nothing. Default `true`.
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// Default `/run/crmsync/status.json`.
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxConfig {
    /// 1 to 64 of `a-z 0-9 _ -`, starting with a letter or digit: it names the mailbox in the
    /// store, the status file, logs and the CLI.
    pub id: String,
    /// The CRM user who owns this mailbox.
    pub owner: EmailAddress,
    /// Default `true`.
    pub enabled: bool,
    /// Default `mailbox-wins`.
    pub conflict_policy: ConflictPolicy,
    pub imap: Option<ImapConfig>,
    pub smtp: Option<SmtpConfig>,
    pub calendar: Option<CollectionConfig>,
    pub contacts: Option<CollectionConfig>,
    pub tracking: TrackingConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS before login.
    Starttls,
    /// No encryption: only to a loopback address unless `allow_plaintext = true`.
    None,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::None => "none",
        }
    }
}

/// How a server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Extra trusted certificates (PEM), beside the system's roots: a private CA, or a
    /// self-signed server certificate.
    pub ca_file: Option<PathBuf>,
    /// Default `true`. `false` turns certificate verification off for this server; the daemon
    /// logs a warning each time it connects that way.
    pub verify_certificates: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    pub host: String,
    /// Default 993 for `tls`, 143 otherwise.
    pub port: u16,
    /// Default `tls`.
    pub security: Security,
    pub username: String,
    pub password: SecretSource,
    /// The folders watched. Default `["INBOX"]`. Tracked folders of `[mailbox.tracking]` are
    /// watched as well, whether listed here or not.
    pub folders: Vec<String>,
    /// Where a draft with `crm:template:NAME` (or `crm:article:...`, `crm:literature:...`)
    /// is rewritten with that content inserted. Default `Drafts`; nothing happens when the
    /// folder does not exist.
    pub drafts_folder: String,
    /// The largest message copied whole (bytes; default 25 MB). A larger tracked message
    /// is copied without its attachments, with a note saying so.
    pub max_message_size: u64,
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 465 for `tls`, 587 for `starttls`, 25 for `none`.
    pub port: u16,
    /// Default `tls`.
    pub security: Security,
    /// Both or neither: a server on loopback may take mail without login.
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// The IMAP folder the copy of a message sent for the CRM goes to. Default `Sent`.
    pub sent_folder: String,
    /// Seconds before the first retry of a send that failed for a passing reason (the
    /// server down, a 4xx answer); each further retry waits twice as long, at most an hour,
    /// and the sixth failure fails the send. Default 60.
    pub retry_delay: u64,
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionConfig {
    /// Where the collection is: a directory, or a collection on a CalDAV/CardDAV server.
    pub place: Place,
    /// Which CRM rows that no item of the collection tracks are written into it.
    pub from_crm: FromCrm,
    /// How the daemon notices changes of a directory (a server collection is polled).
    pub watch: WatchMode,
}

impl CollectionConfig {
    /// The directory, when the collection is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.place {
            Place::Directory(path) => Some(path),
            Place::Server(_) => None,
        }
    }

    /// Where the collection is, for messages and the status file: the path or the URL (which
    /// never holds credentials: the config refuses a URL with a user or password in it).
    pub fn shown(&self) -> String {
        match &self.place {
            Place::Directory(path) => path.display().to_string(),
            Place::Server(server) => server.url.clone(),
        }
    }
}

/// Where a collection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A vdir: a directory of `.ics` or `.vcf` files, one item each (`path`).
    Directory(PathBuf),
    /// A CalDAV calendar or CardDAV address book (`url`).
    Server(DavConfig),
}

/// A collection on a CalDAV or CardDAV server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavConfig {
    /// `http://` or `https://`: the collection itself, or any address on the server (its root,
    /// the user's principal or home), from which the collection is discovered (RFC 6764
    /// `/.well-known/caldav`, `current-user-principal`, the home set). `http://` only to a
    /// loopback address unless `allow_plaintext = true`.
    pub url: String,
    pub username: String,
    pub password: SecretSource,
    pub tls: TlsConfig,
    /// Seconds between two polls of the collection's sync token by the daemon. Default 30.
    pub poll_interval: u64,
}

/// How the daemon notices a collection's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// inotify, falling back to polling when its watches run out. The default.
    Inotify,
    /// Polling every 2 seconds: for network file systems (NFS, SMB), where inotify does not
    /// see changes made on other machines.
    Poll,
}

/// The sync filter from the CRM to a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromCrm {
    /// A calendar gets the appointments and tasks created in the CRM for the mailbox's owner;
    /// an address book gets the contact records the owner owns. The default.
    Owned,
    /// Nothing: only items the person tracked are synchronized.
    None,
}

/// The automatic tracking policy: the core's.
pub use crmsync_core::auto::AutoPolicy as AutoTracking;

/// One entry of the never-track list: the core's, so that the rules and the config agree.
pub use crmsync_core::auto::NeverEntry as NeverTrack;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingConfig {
    /// The IMAP keyword that tracks a message. Default `crm`; matched case-insensitively.
    pub keyword: String,
    /// The CATEGORIES value that tracks an event, task or contact. Default `CRM`.
    pub category: String,
    /// Default `none`.
    pub auto: AutoTracking,
    pub never: Vec<NeverTrack>,
    /// The keyword crmsync writes on a message once its CRM copy exists, so the person sees it
    /// is synced. Default `crm-synced`; empty turns it off.
    pub synced_keyword: String,
    /// The keyword crmsync writes on a tracked message it cannot sync, removed once it can.
    /// Default `crm-failed`; empty turns it off.
    pub failed_keyword: String,
    /// Tracked folders: every message in the folder is tracked, regarding the record.
    pub folders: BTreeMap<String, RecordNumber>,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let message = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such file (give another with --config or CRMSYNC_CONFIG)".to_owned()
                }
                _ => format!("cannot read the config file: {e}"),
            };
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                scope: None,
                key: None,
                message,
            }])
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        parse::parse(path, text)
    }

    pub fn mailbox(&self, id: &str) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| m.id == id)
    }
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// For a TOML syntax error: the line and column.
    pub line: Option<(usize, usize)>,
    /// `mailbox "alice"`, or `mailbox #2` when it has no usable id.
    pub scope: Option<String>,
    /// The dotted key inside the scope: `imap.port`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.line {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(scope) = &self.scope {
            write!(f, ": {scope}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem of a config file, in file order. Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
