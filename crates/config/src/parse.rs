//! The hand-written reader behind [`crate::Config::parse`].
//!
//! A [`Section`] wraps one TOML table and remembers which keys were asked for; whatever is left
//! when the section is finished is an unknown key. Every problem is pushed to one list with its
//! scope and dotted key, so one pass reports all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crmsync_core::model::{ConflictPolicy, EmailAddress, RecordNumber};
use toml::{Table, Value};

use crate::section::{Problems, Section};
use crate::{
    AutoTracking, CollectionConfig, Config, ConfigError, ConfigErrors, ConnectionConfig, CrmConfig,
    DaemonConfig, DatabaseConfig, DavConfig, FromCrm, ImapConfig, LogConfig, LogFormat,
    MailboxConfig, NeverTrack, Place, PostgresConfig, SecretSource, Security, SmtpConfig,
    StatusConfig, TlsConfig, TrackingConfig, WatchMode,
};

pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let table: Table = match text.parse() {
        Ok(table) => table,
        Err(error) => return Err(ConfigErrors(vec![syntax_error(path, text, &error)])),
    };
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    let mut problems = Problems {
        file: path,
        list: Vec::new(),
    };
    let mut root = Section::new(&table, "", None);

    let mut crm = CrmConfig {
        database: DatabaseConfig::Sqlite(PathBuf::from("/var/lib/crmsync/crm.sqlite3")),
        web_url: None,
    };
    if let Some(mut section) = root.sub(&mut problems, "crm") {
        crm.database = database(&mut section, &base, &mut problems);
        if let Some(url) = section.nonempty_string(&mut problems, "web_url") {
            if url.starts_with("https://") || url.starts_with("http://") {
                crm.web_url = Some(url);
            } else {
                section.report(
                    &mut problems,
                    "web_url",
                    "give an http:// or https:// address, with {entity}, {id} or {number} where the record goes",
                );
            }
        }
        section.finish(&mut problems);
    }

    let mut connection = ConnectionConfig { enabled: true };
    if let Some(mut section) = root.sub(&mut problems, "connection") {
        connection.enabled = section.bool(&mut problems, "enabled", true);
        section.finish(&mut problems);
    }

    let mut status = StatusConfig {
        file: PathBuf::from("/run/crmsync/status.json"),
    };
    if let Some(mut section) = root.sub(&mut problems, "status") {
        if let Some(file) = section.path(&mut problems, "file", &base) {
            status.file = file;
        }
        section.finish(&mut problems);
    }

    let log = log_section(&mut root, &mut problems);
    let daemon = daemon_section(&mut root, &mut problems);
    let mailboxes = mailboxes(&mut root, &base, &mut problems);
    root.finish(&mut problems);

    if problems.list.is_empty() {
        Ok(Config {
            path: path.to_owned(),
            crm,
            connection,
            status,
            log,
            daemon,
            mailboxes,
        })
    } else {
        Err(ConfigErrors(problems.list))
    }
}

fn log_section(root: &mut Section<'_>, problems: &mut Problems<'_>) -> LogConfig {
    let mut log = LogConfig {
        level: "info".to_owned(),
        format: LogFormat::Text,
    };
    let Some(mut section) = root.sub(problems, "log") else {
        return log;
    };
    if let Some(level) = section.nonempty_string(problems, "level") {
        if ["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
            log.level = level;
        } else {
            section.report(
                problems,
                "level",
                format!("unknown level {level:?}: expected one of error, warn, info, debug, trace"),
            );
        }
    }
    log.format = section.word(
        problems,
        "format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
    );
    section.finish(problems);
    log
}

fn daemon_section(root: &mut Section<'_>, problems: &mut Problems<'_>) -> DaemonConfig {
    let mut daemon = DaemonConfig {
        poll_interval: 300,
        idle_folders: 5,
        journal_retention: 7 * 24 * 3600,
    };
    let Some(mut section) = root.sub(problems, "daemon") else {
        return daemon;
    };
    if let Some(seconds) = section.integer(problems, "poll_interval", 1..=86_400) {
        daemon.poll_interval = seconds as u64;
    }
    if let Some(count) = section.integer(problems, "idle_folders", 0..=100) {
        daemon.idle_folders = count as usize;
    }
    if let Some(seconds) = section.integer(problems, "journal_retention", 1..=366 * 24 * 3600) {
        daemon.journal_retention = seconds as u64;
    }
    section.finish(problems);
    daemon
}

/// Every `[[mailbox]]`, each validated on its own; ids must differ.
fn mailboxes(
    root: &mut Section<'_>,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Vec<MailboxConfig> {
    let mut mailboxes = Vec::new();
    if let Some(value) = root.value("mailbox") {
        match value.as_array() {
            Some(items) => {
                for (index, item) in items.iter().enumerate() {
                    match item.as_table() {
                        Some(table) => {
                            if let Some(mailbox) = mailbox(table, index, base, problems) {
                                mailboxes.push(mailbox);
                            }
                        }
                        None => problems.push(
                            None,
                            Some(format!("mailbox #{}", index + 1)),
                            "expected a table ([[mailbox]])",
                        ),
                    }
                }
            }
            None => problems.push(
                None,
                Some("mailbox".into()),
                "expected a list of tables: write each mailbox as [[mailbox]]",
            ),
        }
    }
    let mut seen = BTreeSet::new();
    for mailbox in &mailboxes {
        if !seen.insert(mailbox.id.as_str()) {
            problems.push(
                Some(&format!("mailbox {:?}", mailbox.id)),
                Some("id".into()),
                "another mailbox has the same id",
            );
        }
    }
    mailboxes
}

/// A TOML syntax error as one line: where it is and what is wrong.
fn syntax_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    });
    let message = error.message().trim().replace('\n', "; ");
    ConfigError {
        file: path.to_owned(),
        line,
        scope: None,
        key: None,
        message: format!("invalid TOML: {message}"),
    }
}

fn valid_mailbox_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

// Long on purpose: the keys of one [[mailbox]] in the order the documentation lists them.
fn mailbox(
    table: &Table,
    index: usize,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Option<MailboxConfig> {
    // The scope names the mailbox by its id when it has a usable one, else by position.
    let id = table
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| valid_mailbox_id(id));
    let scope = match id {
        Some(id) => format!("mailbox {id:?}"),
        None => format!("mailbox #{}", index + 1),
    };
    let mut section = Section::new(table, "", Some(scope));
    let errors_before = problems.list.len();

    let id = section.required_string(problems, "id");
    if let Some(id) = &id
        && !valid_mailbox_id(id)
    {
        section.report(
            problems,
            "id",
            format!("invalid mailbox id {id:?}: use 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit"),
        );
    }
    let owner = section
        .required_string(problems, "owner")
        .and_then(|owner| {
            EmailAddress::new(&owner)
                .map_err(|e| section.report(problems, "owner", e.0))
                .ok()
        });
    let enabled = section.bool(problems, "enabled", true);
    let conflict_policy = section.word(
        problems,
        "conflict_policy",
        &[
            ("mailbox-wins", ConflictPolicy::MailboxWins),
            ("crm-wins", ConflictPolicy::CrmWins),
        ],
        ConflictPolicy::MailboxWins,
    );

    let imap = section
        .sub(problems, "imap")
        .and_then(|sub| imap(sub, base, problems));
    let smtp = section
        .sub(problems, "smtp")
        .and_then(|sub| smtp(sub, base, problems));
    let calendar = section
        .sub(problems, "calendar")
        .and_then(|sub| collection(sub, base, problems));
    let contacts = section
        .sub(problems, "contacts")
        .and_then(|sub| collection(sub, base, problems));
    let tracking = match section.sub(problems, "tracking") {
        Some(sub) => tracking(sub, problems),
        None => TrackingConfig::default(),
    };
    check_stores(table, &mut section, problems, &tracking);
    section.finish(problems);

    if problems.list.len() > errors_before {
        return None;
    }
    let mut imap = imap;
    // Tracked folders are watched too.
    if let Some(imap) = imap.as_mut() {
        for folder in tracking.folders.keys() {
            if !imap.folders.contains(folder) {
                imap.folders.push(folder.clone());
            }
        }
    }
    Some(MailboxConfig {
        id: id?,
        owner: owner?,
        enabled,
        conflict_policy,
        imap,
        smtp,
        calendar,
        contacts,
        tracking,
    })
}

/// A mailbox names at least one store; SMTP and tracked folders need IMAP.
fn check_stores(
    table: &Table,
    section: &mut Section<'_>,
    problems: &mut Problems<'_>,
    tracking: &TrackingConfig,
) {
    let had_stores = table.contains_key("imap")
        || table.contains_key("calendar")
        || table.contains_key("contacts");
    if !had_stores {
        problems.push(
            section.scope.as_deref(),
            None,
            "names no store: give at least one of [mailbox.imap], [mailbox.calendar], [mailbox.contacts]",
        );
    }
    if table.contains_key("smtp") && !table.contains_key("imap") {
        section.report(
            problems,
            "smtp",
            "needs [mailbox.imap] too: sent copies go to its Sent folder",
        );
    }
    if !tracking.folders.is_empty() && !table.contains_key("imap") {
        section.report(
            problems,
            "tracking.folders",
            "needs [mailbox.imap]: tracked folders are IMAP folders",
        );
    }
}

const SECURITY_WORDS: &[(&str, Security)] = &[
    ("tls", Security::Tls),
    ("starttls", Security::Starttls),
    ("none", Security::None),
];

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The common part of an IMAP and an SMTP server: host, port, security, TLS and password.
struct Server {
    host: String,
    port: u16,
    security: Security,
    tls: TlsConfig,
    password: Option<SecretSource>,
}

/// `[crm] database`: a path (SQLite), or a `postgres://` URL with its password, TLS and pool
/// keys, which a SQLite path does not take.
fn database(section: &mut Section<'_>, base: &Path, problems: &mut Problems<'_>) -> DatabaseConfig {
    let default = || DatabaseConfig::Sqlite(PathBuf::from("/var/lib/crmsync/crm.sqlite3"));
    let text = section.nonempty_string(problems, "database");
    let is_url = text
        .as_deref()
        .is_some_and(|t| t.starts_with("postgres://") || t.starts_with("postgresql://"));
    if !is_url {
        for key in [
            "password_file",
            "password_credential",
            "ca_file",
            "verify_certificates",
            "pool_size",
        ] {
            if section.value(key).is_some() {
                section.report(problems, key, "only a postgres:// database takes this key");
            }
        }
        return match text {
            Some(text) if text.contains("://") => {
                section.report(
                    problems,
                    "database",
                    "give a SQLite file's path or a postgres:// URL",
                );
                default()
            }
            Some(text) => {
                let path = PathBuf::from(text);
                DatabaseConfig::Sqlite(if path.is_absolute() {
                    path
                } else {
                    base.join(path)
                })
            }
            None => default(),
        };
    }
    let url = text.unwrap_or_default();
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
    if authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    {
        section.report(
            problems,
            "database",
            "the URL holds a password: put it in a file only crmsync can read and set password_file, or use password_credential",
        );
    }
    let password = password(section, base, problems);
    let tls = tls(section, base, problems);
    let pool_size = section
        .integer(problems, "pool_size", 1..=1000)
        .map_or(8, |n| n as usize);
    // Only the scheme, user, host, port and database are shown: never a password.
    let shown = match authority.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            url.replacen(userinfo, userinfo.split(':').next().unwrap_or(""), 1)
        }
        _ => url,
    };
    DatabaseConfig::Postgres(PostgresConfig {
        url: shown,
        password,
        tls,
        pool_size,
    })
}

/// `ca_file` and `verify_certificates`.
fn tls(section: &mut Section<'_>, base: &Path, problems: &mut Problems<'_>) -> TlsConfig {
    let ca_file = section.path(problems, "ca_file", base);
    if let Some(ca_file) = &ca_file
        && !ca_file.is_file()
    {
        section.report(
            problems,
            "ca_file",
            format!("{}: no such file", ca_file.display()),
        );
    }
    let verify_certificates = section.bool(problems, "verify_certificates", true);
    TlsConfig {
        ca_file,
        verify_certificates,
    }
}

/// `password_file` or `password_credential` (never an inline `password`), checked.
fn password(
    section: &mut Section<'_>,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Option<SecretSource> {
    if section.value("password").is_some() {
        section.report(
            problems,
            "password",
            "inline passwords are refused: put the password in a file only crmsync can read and set password_file, or use password_credential",
        );
    }
    let file = section.path(problems, "password_file", base);
    let credential = section.nonempty_string(problems, "password_credential");
    let password = match (file, credential) {
        (Some(_), Some(_)) => {
            section.report(
                problems,
                "password_file",
                "give password_file or password_credential, not both",
            );
            None
        }
        (Some(file), None) => Some(SecretSource::File(file)),
        (None, Some(name)) => {
            if name.contains('/') {
                section.report(
                    problems,
                    "password_credential",
                    "a credential name has no '/'",
                );
            }
            Some(SecretSource::Credential(name))
        }
        (None, None) => None,
    };
    if let Some(password) = &password
        && let Err(error) = password.check()
    {
        section.report(problems, "password_file", error.to_string());
    }
    password
}

// Long on purpose: the keys of a server section, one after another, in documentation order.
fn server(
    section: &mut Section<'_>,
    base: &Path,
    default_ports: [u16; 3],
    problems: &mut Problems<'_>,
) -> Option<Server> {
    let host = section.required_string(problems, "host");
    let security = section.word(problems, "security", SECURITY_WORDS, Security::Tls);
    let default_port = match security {
        Security::Tls => default_ports[0],
        Security::Starttls => default_ports[1],
        Security::None => default_ports[2],
    };
    let port = section.port(problems, "port").unwrap_or(default_port);
    let tls = tls(section, base, problems);
    let allow_plaintext = section.bool(problems, "allow_plaintext", false);
    if let Some(host) = &host
        && security == Security::None
        && !is_loopback(host)
        && !allow_plaintext
    {
        section.report(
            problems,
            "security",
            format!("\"none\" sends the password unencrypted to {host}: use tls or starttls, or set allow_plaintext = true"),
        );
    }

    let password = password(section, base, problems);
    Some(Server {
        host: host?,
        port,
        security,
        tls,
        password,
    })
}

fn imap(mut section: Section<'_>, base: &Path, problems: &mut Problems<'_>) -> Option<ImapConfig> {
    let server = server(&mut section, base, [993, 143, 143], problems);
    let username = section.required_string(problems, "username");
    let folders = section
        .strings(problems, "folders")
        .unwrap_or_else(|| vec!["INBOX".to_owned()]);
    if folders.iter().any(|f| f.trim().is_empty()) {
        section.report(problems, "folders", "a folder name must not be empty");
    }
    let drafts_folder = section
        .nonempty_string(problems, "drafts_folder")
        .unwrap_or_else(|| "Drafts".to_owned());
    let max_message_size = section
        .size(
            problems,
            "max_message_size",
            MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE,
        )
        .unwrap_or(DEFAULT_MESSAGE_SIZE);
    let mut password_missing = false;
    if let Some(server) = &server
        && server.password.is_none()
    {
        section.report(
            problems,
            "password_file",
            "missing: give password_file or password_credential",
        );
        password_missing = true;
    }
    section.finish(problems);
    let server = server?;
    if password_missing {
        return None;
    }
    Some(ImapConfig {
        host: server.host,
        port: server.port,
        security: server.security,
        username: username?,
        password: server.password?,
        folders,
        drafts_folder,
        max_message_size,
        tls: server.tls,
    })
}

/// The default `max_message_size`: 25 MB, what most mail servers accept.
pub const DEFAULT_MESSAGE_SIZE: u64 = 25_000_000;
const MIN_MESSAGE_SIZE: u64 = 64 * 1024;
const MAX_MESSAGE_SIZE: u64 = 1_000_000_000;

/// A size with an optional unit (`"25 MB"`, `"25MB"`, `"512 KiB"`, `"1000"`).
pub(crate) fn size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let factor: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A size for people: `25 MB`, `64 KiB`, or bytes.
pub fn size_words(bytes: u64) -> String {
    if bytes >= 1_000_000_000 && bytes.is_multiple_of(100_000_000) {
        let gb = bytes as f64 / 1e9;
        format!("{gb} GB")
    } else if bytes >= 1_000_000 && bytes.is_multiple_of(100_000) {
        let mb = bytes as f64 / 1e6;
        format!("{mb} MB")
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn smtp(mut section: Section<'_>, base: &Path, problems: &mut Problems<'_>) -> Option<SmtpConfig> {
    let server = server(&mut section, base, [465, 587, 25], problems);
    let username = section.nonempty_string(problems, "username");
    let sent_folder = section
        .nonempty_string(problems, "sent_folder")
        .unwrap_or_else(|| "Sent".to_owned());
    let retry_delay = section
        .integer(problems, "retry_delay", 0..=3600)
        .map_or(60, |seconds| seconds as u64);
    if let Some(server) = &server
        && username.is_some() != server.password.is_some()
    {
        section.report(
            problems,
            "username",
            "give username and a password together, or neither",
        );
    }
    section.finish(problems);
    let server = server?;
    Some(SmtpConfig {
        host: server.host,
        port: server.port,
        security: server.security,
        username,
        password: server.password,
        sent_folder,
        retry_delay,
        tls: server.tls,
    })
}

fn collection(
    mut section: Section<'_>,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Option<CollectionConfig> {
    let has_path = section.table.contains_key("path");
    let has_url = section.table.contains_key("url");
    if has_path == has_url {
        section.taken.insert("path");
        section.taken.insert("url");
        let message = if has_path {
            "give path (a directory) or url (a CalDAV/CardDAV server), not both"
        } else {
            "missing: give path (a directory) or url (a CalDAV/CardDAV server)"
        };
        section.report(problems, "path", message);
    }
    let path = section.path(problems, "path", base);
    let server = if has_url && !has_path {
        dav(&mut section, base, problems)
    } else {
        None
    };
    let from_crm = section.word(
        problems,
        "from_crm",
        &[("owned", FromCrm::Owned), ("none", FromCrm::None)],
        FromCrm::Owned,
    );
    if has_url && section.table.contains_key("watch") {
        section.report(
            problems,
            "watch",
            "only for a directory: a server collection is polled every poll_interval seconds",
        );
    }
    let watch = section.word(
        problems,
        "watch",
        &[("inotify", WatchMode::Inotify), ("poll", WatchMode::Poll)],
        WatchMode::Inotify,
    );
    section.finish(problems);
    let place = match (path, server) {
        (Some(path), None) => Place::Directory(path),
        (None, Some(server)) => Place::Server(server),
        _ => return None,
    };
    Some(CollectionConfig {
        place,
        from_crm,
        watch,
    })
}

/// The keys of a collection on a server: `url`, `username`, the password, TLS and
/// `poll_interval`.
fn dav(section: &mut Section<'_>, base: &Path, problems: &mut Problems<'_>) -> Option<DavConfig> {
    let url = section.required_string(problems, "url");
    let username = section.required_string(problems, "username");
    let allow_plaintext = section.bool(problems, "allow_plaintext", false);
    if let Some(url) = &url
        && let Err(message) = check_dav_url(url, allow_plaintext)
    {
        section.report(problems, "url", message);
    }
    let tls = tls(section, base, problems);
    let password = password(section, base, problems);
    if password.is_none() {
        section.report(
            problems,
            "password_file",
            "missing: give password_file or password_credential",
        );
    }
    let poll_interval = section
        .integer(problems, "poll_interval", 1..=86_400)
        .map_or(30, |n| n as u64);
    Some(DavConfig {
        url: url?,
        username: username?,
        password: password?,
        tls,
        poll_interval,
    })
}

/// A server collection's URL: http or https, a host, no credentials in it, and https unless
/// the host is a loopback address or plaintext is allowed.
fn check_dav_url(url: &str, allow_plaintext: bool) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL: expected https://HOST/..."))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the URL holds a user or password: set username, and password_file or password_credential"
                .to_owned(),
        );
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default().to_owned(),
        None => authority.split(':').next().unwrap_or_default().to_owned(),
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(&host) || allow_plaintext => Ok(()),
        "http" => Err(format!(
            "http:// sends the password unencrypted to {host}: use https://, or set allow_plaintext = true"
        )),
        other => Err(format!("unknown scheme {other:?}: expected https or http")),
    }
}

impl Default for TrackingConfig {
    fn default() -> TrackingConfig {
        TrackingConfig {
            keyword: "crm".to_owned(),
            category: "CRM".to_owned(),
            auto: AutoTracking::None,
            never: Vec::new(),
            synced_keyword: "crm-synced".to_owned(),
            failed_keyword: "crm-failed".to_owned(),
            folders: BTreeMap::new(),
        }
    }
}

/// An IMAP keyword is an atom: no space, no control character, none of `(){%*"\]`, and it
/// does not start with `\` (that is a system flag).
fn valid_keyword(keyword: &str) -> bool {
    !keyword.is_empty()
        && keyword
            .chars()
            .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c))
}

// Long on purpose: the keys of [mailbox.tracking], one after another, in documentation order.
fn tracking(mut section: Section<'_>, problems: &mut Problems<'_>) -> TrackingConfig {
    let mut tracking = TrackingConfig::default();
    if let Some(keyword) = section.nonempty_string(problems, "keyword") {
        if valid_keyword(&keyword) {
            tracking.keyword = keyword;
        } else {
            section.report(
                problems,
                "keyword",
                format!("{keyword:?} is not a valid IMAP keyword: use letters, digits and -_.:, no spaces"),
            );
        }
    }
    if let Some(category) = section.nonempty_string(problems, "category") {
        if category.contains(',') {
            section.report(problems, "category", "a category must not contain ','");
        } else {
            tracking.category = category;
        }
    }
    for (key, target) in [
        ("synced_keyword", &mut tracking.synced_keyword),
        ("failed_keyword", &mut tracking.failed_keyword),
    ] {
        if let Some(keyword) = section.string(problems, key) {
            if keyword.is_empty() || valid_keyword(&keyword) {
                *target = keyword;
            } else {
                section.report(
                    problems,
                    key,
                    format!("{keyword:?} is not a valid IMAP keyword: use letters, digits and -_.:, no spaces (or \"\" for none)"),
                );
            }
        }
    }
    tracking.auto = section.word(
        problems,
        "auto",
        &[
            ("none", AutoTracking::None),
            ("replies", AutoTracking::Replies),
            ("crm-records", AutoTracking::CrmRecords),
            ("all", AutoTracking::All),
        ],
        AutoTracking::None,
    );
    for entry in section.strings(problems, "never").unwrap_or_default() {
        let entry = entry.trim().to_ascii_lowercase();
        if let Some(domain) = entry.strip_prefix('@')
            && !domain.is_empty()
            && !domain.contains('@')
        {
            tracking.never.push(NeverTrack::Domain(domain.to_owned()));
        } else if EmailAddress::new(&entry).is_ok() {
            tracking.never.push(NeverTrack::Address(entry));
        } else {
            section.report(
                problems,
                "never",
                format!("{entry:?} is neither an address nor a domain such as \"@example.org\""),
            );
        }
    }
    if let Some(folders) = section.table(problems, "folders") {
        for (folder, number) in folders {
            let key = format!("folders.{folder:?}");
            match number.as_str().map(RecordNumber::new) {
                Some(Ok(number)) => {
                    tracking.folders.insert(folder.clone(), number);
                }
                Some(Err(error)) => {
                    problems.push(section.scope.as_deref(), Some(section.key(&key)), error.0)
                }
                None => problems.push(
                    section.scope.as_deref(),
                    Some(section.key(&key)),
                    "expected a record number such as \"ACC-1001\"",
                ),
            }
        }
    }
    section.finish(problems);
    tracking
}
