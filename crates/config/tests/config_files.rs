//! Config files as administrators write them, good and bad. Every bad one must give one line
//! per problem that names the file, the mailbox, the key and what is wrong.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crmsync_config::{AutoTracking, Config, NeverTrack, SecretSource, Security};
use crmsync_core::model::{ConflictPolicy, EmailAddress};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/crmsync.toml")
}

/// Parses `text` as the file `/etc/crmsync/crmsync.toml` and returns its error lines.
fn errors(text: &str) -> Vec<String> {
    match Config::parse(Path::new("/etc/crmsync/crmsync.toml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.to_string().lines().map(str::to_owned).collect(),
    }
}

fn one_error(text: &str) -> String {
    let mut lines = errors(text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0)
}

const MAILBOX: &str = r#"
[[mailbox]]
id = "alice"
owner = "alice@example.com"
[mailbox.imap]
host = "imap.example.com"
username = "alice"
password_credential = "alice-imap"
"#;

#[test]
fn the_example_config_is_valid() {
    let config = Config::load(&example_path()).unwrap();
    assert_eq!(
        config.crm.database.sqlite_path(),
        Some(Path::new("/var/lib/crmsync/crm.sqlite3"))
    );
    assert!(config.connection.enabled);
    assert_eq!(config.mailboxes.len(), 2);
    let alice = config.mailbox("alice").unwrap();
    assert_eq!(alice.owner, EmailAddress::new("alice@example.com").unwrap());
    let imap = alice.imap.as_ref().unwrap();
    assert_eq!(imap.port, 993);
    assert_eq!(imap.password, SecretSource::Credential("alice-imap".into()));
    // The tracked folder is watched beside the listed ones.
    assert_eq!(imap.folders, ["INBOX", "Sent", "Clients/Adventure Works"]);
    assert_eq!(
        alice.tracking.folders["Clients/Adventure Works"].as_str(),
        "ACC-1001"
    );
    assert_eq!(
        alice.tracking.never,
        [
            NeverTrack::Domain("family.example".into()),
            NeverTrack::Address("doctor@example.org".into())
        ]
    );
    assert_eq!(alice.smtp.as_ref().unwrap().port, 465);
    assert!(alice.calendar.is_some() && alice.contacts.is_some());

    let bob = config.mailbox("bob").unwrap();
    assert_eq!(bob.conflict_policy, ConflictPolicy::MailboxWins);
    assert_eq!(bob.imap.as_ref().unwrap().folders, ["INBOX"]);
    assert_eq!(bob.tracking.keyword, "crm");
    assert_eq!(bob.tracking.auto, AutoTracking::None);
    let Some(crmsync_config::Place::Server(calendar)) = bob.calendar.as_ref().map(|c| &c.place)
    else {
        panic!("bob's calendar is on a server");
    };
    assert_eq!(calendar.poll_interval, 30);
    assert_eq!(
        calendar.password,
        SecretSource::Credential("bob-dav".into())
    );
    assert!(bob.contacts.as_ref().unwrap().path().is_none());
}

#[test]
fn an_empty_file_takes_every_default() {
    let config = Config::parse(Path::new("/etc/crmsync/crmsync.toml"), "").unwrap();
    assert_eq!(
        config.crm.database.sqlite_path(),
        Some(Path::new("/var/lib/crmsync/crm.sqlite3"))
    );
    assert_eq!(config.status.file, Path::new("/run/crmsync/status.json"));
    assert!(config.connection.enabled);
    assert!(config.mailboxes.is_empty());
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let text = format!(
        "[crm]\ndatabase = \"data/crm.sqlite3\"\n[status]\nfile = \"/run/x.json\"\n{MAILBOX}[mailbox.calendar]\npath = \"cal\"\n"
    );
    let config = Config::parse(Path::new("/srv/crmsync/crmsync.toml"), &text).unwrap();
    assert_eq!(
        config.crm.database.sqlite_path(),
        Some(Path::new("/srv/crmsync/data/crm.sqlite3"))
    );
    assert_eq!(config.status.file, Path::new("/run/x.json"));
    let calendar = config.mailboxes[0].calendar.as_ref().unwrap();
    assert_eq!(calendar.path(), Some(Path::new("/srv/crmsync/cal")));
}

#[test]
fn port_out_of_range() {
    for port in ["0", "70000", "\"993\"", "-1"] {
        let text = MAILBOX.replace("username", &format!("port = {port}\nusername"));
        assert_eq!(
            one_error(&text),
            "/etc/crmsync/crmsync.toml: mailbox \"alice\": imap.port: expected a number from 1 to 65535"
        );
    }
}

#[test]
fn unknown_keys_are_refused_where_they_are() {
    let text = MAILBOX.replace("host =", "hots = \"x\"\nhost =");
    let line = one_error(&text);
    assert!(
        line.starts_with(
            "/etc/crmsync/crmsync.toml: mailbox \"alice\": imap.hots: unknown key (known keys here:"
        ),
        "{line}"
    );
    assert!(line.contains("host"), "{line}");

    let line = one_error("[crm]\ndatabse = \"x\"\n");
    assert!(
        line.starts_with("/etc/crmsync/crmsync.toml: crm.databse: unknown key"),
        "{line}"
    );
    let line = one_error("[logging]\nlevel = 1\n");
    assert!(
        line.starts_with("/etc/crmsync/crmsync.toml: logging: unknown key"),
        "{line}"
    );
}

#[test]
fn bad_toml_names_line_and_column() {
    let line = one_error("[crm]\ndatabase = \"x\"\nenabled = = true\n");
    assert!(line.starts_with("/etc/crmsync/crmsync.toml:3:"), "{line}");
    assert!(line.contains("invalid TOML"), "{line}");
    assert!(!line.contains('\n'));
}

#[test]
fn inline_passwords_are_refused() {
    let text = MAILBOX.replace(
        "password_credential = \"alice-imap\"",
        "password = \"hunter2\"",
    );
    let lines = errors(&text);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("imap.password: inline passwords are refused")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("hunter2")),
        "the password leaked: {lines:?}"
    );
}

#[test]
fn password_files_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alice.imap");
    std::fs::write(&file, "secret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = MAILBOX.replace(
        "password_credential = \"alice-imap\"",
        &format!("password_file = {:?}", file.display().to_string()),
    );
    let line = one_error(&text);
    assert_eq!(
        line,
        format!(
            "/etc/crmsync/crmsync.toml: mailbox \"alice\": imap.password_file: password file {0} is readable by group or others (mode 644); fix it with: chmod 600 {0}",
            file.display()
        )
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = Config::parse(Path::new("/etc/crmsync/crmsync.toml"), &text).unwrap();
    let password = &config.mailboxes[0].imap.as_ref().unwrap().password;
    assert_eq!(password.read().unwrap().expose(), "secret");

    let missing = text.replace("alice.imap", "nope.imap");
    assert!(one_error(&missing).ends_with("nope.imap: no such file"));
}

#[test]
fn plaintext_only_to_loopback() {
    let remote = MAILBOX.replace("username", "security = \"none\"\nusername");
    let line = one_error(&remote);
    assert!(
        line.contains("imap.security: \"none\" sends the password unencrypted to imap.example.com"),
        "{line}"
    );
    let allowed = remote.replace("username", "allow_plaintext = true\nusername");
    assert!(Config::parse(Path::new("/x.toml"), &allowed).is_ok());
    for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
        let local = remote.replace("imap.example.com", host);
        let config = Config::parse(Path::new("/x.toml"), &local).unwrap();
        let imap = config.mailboxes[0].imap.as_ref().unwrap();
        assert_eq!((imap.security, imap.port), (Security::None, 143));
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[connection]
enabled = "yes"
[[mailbox]]
id = "Alice Smith"
owner = "not-an-address"
[mailbox.imap]
username = "alice"
password_credential = "x"
[mailbox.tracking]
auto = "sometimes"
keyword = "my crm"
never = ["family"]
folders = { "Clients" = "bad number" }
[[mailbox]]
id = "bob"
owner = "bob@example.com"
"#;
    let lines = errors(text);
    let expected = [
        "connection.enabled: expected true or false",
        "mailbox #1: id: invalid mailbox id \"Alice Smith\"",
        "mailbox #1: owner: invalid email address \"not-an-address\"",
        "mailbox #1: imap.host: missing (required)",
        "mailbox #1: tracking.keyword: \"my crm\" is not a valid IMAP keyword",
        "mailbox #1: tracking.auto: unknown value \"sometimes\": expected one of none, replies, crm-records, all",
        "mailbox #1: tracking.never: \"family\" is neither an address nor a domain",
        "mailbox #1: tracking.folders.\"Clients\": invalid record number \"bad number\"",
        "mailbox \"bob\": names no store",
    ];
    for fragment in expected {
        assert!(
            lines.iter().any(|l| l.contains(fragment)),
            "no line with {fragment:?} in {lines:#?}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("/etc/crmsync/crmsync.toml: "))
    );
}

#[test]
fn duplicate_mailbox_ids() {
    let text = format!("{MAILBOX}{MAILBOX}");
    assert_eq!(
        one_error(&text),
        "/etc/crmsync/crmsync.toml: mailbox \"alice\": id: another mailbox has the same id"
    );
}

#[test]
fn mailbox_must_be_a_list_of_tables() {
    let line = one_error("[mailbox]\nid = \"alice\"\n");
    assert!(
        line.contains("mailbox: expected a list of tables"),
        "{line}"
    );
}

#[test]
fn a_missing_file_says_so() {
    let error = Config::load(Path::new("/nonexistent/crmsync.toml")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/nonexistent/crmsync.toml: no such file (give another with --config or CRMSYNC_CONFIG)"
    );
}

#[test]
fn never_rules_match_addresses_and_domains() {
    let domain = NeverTrack::Domain("family.example".into());
    assert!(domain.matches("Mum@Family.Example"));
    assert!(!domain.matches("mum@notfamily.example"));
    let single = NeverTrack::Address("doctor@example.org".into());
    assert!(single.matches("DOCTOR@example.org"));
    assert!(!single.matches("nurse@example.org"));
}

#[test]
fn log_and_daemon_settings() {
    let config = Config::parse(Path::new("/x.toml"), "").unwrap();
    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.format, crmsync_config::LogFormat::Text);
    assert_eq!(config.daemon.poll_interval, 300);
    assert_eq!(config.daemon.idle_folders, 5);

    let config = Config::parse(
        Path::new("/x.toml"),
        "[log]\nlevel = \"debug\"\nformat = \"json\"\n[daemon]\npoll_interval = 30\nidle_folders = 0\n",
    )
    .unwrap();
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.log.format, crmsync_config::LogFormat::Json);
    assert_eq!(config.daemon.poll_interval, 30);
    assert_eq!(config.daemon.idle_folders, 0);

    let lines = errors("[log]\nlevel = \"loud\"\n[daemon]\npoll_interval = 0\n");
    assert_eq!(
        lines,
        [
            "/etc/crmsync/crmsync.toml: log.level: unknown level \"loud\": expected one of error, warn, info, debug, trace",
            "/etc/crmsync/crmsync.toml: daemon.poll_interval: expected a number from 1 to 86400",
        ]
    );
}

#[test]
fn collection_settings() {
    let text = format!(
        "{MAILBOX}[mailbox.calendar]\npath = \"/srv/cal\"\nfrom_crm = \"none\"\nwatch = \"poll\"\n\
         [mailbox.contacts]\npath = \"/srv/cards\"\n"
    );
    let config = Config::parse(Path::new("/etc/crmsync/crmsync.toml"), &text).unwrap();
    let alice = config.mailbox("alice").unwrap();
    let calendar = alice.calendar.as_ref().unwrap();
    assert_eq!(calendar.from_crm, crmsync_config::FromCrm::None);
    assert_eq!(calendar.watch, crmsync_config::WatchMode::Poll);
    let contacts = alice.contacts.as_ref().unwrap();
    assert_eq!(
        contacts.from_crm,
        crmsync_config::FromCrm::Owned,
        "the default"
    );
    assert_eq!(
        contacts.watch,
        crmsync_config::WatchMode::Inotify,
        "the default"
    );

    let bad = format!(
        "{MAILBOX}[mailbox.calendar]\npath = \"/srv/cal\"\nfrom_crm = \"all\"\nwatch = \"fanotify\"\n"
    );
    assert_eq!(
        errors(&bad),
        [
            "/etc/crmsync/crmsync.toml: mailbox \"alice\": calendar.from_crm: unknown value \"all\": expected one of owned, none",
            "/etc/crmsync/crmsync.toml: mailbox \"alice\": calendar.watch: unknown value \"fanotify\": expected one of inotify, poll",
        ]
    );
}

#[test]
fn a_collection_on_a_server() {
    let text = format!(
        "{MAILBOX}[mailbox.calendar]\nurl = \"https://dav.example.com/\"\nusername = \"alice\"\n\
         password_credential = \"alice-dav\"\nca_file = \"/etc/hostname\"\n\
         [mailbox.contacts]\nurl = \"http://127.0.0.1:5232/alice/contacts/\"\nusername = \"alice\"\n\
         password_credential = \"alice-dav\"\npoll_interval = 5\nfrom_crm = \"none\"\n"
    );
    let config = Config::parse(Path::new("/etc/crmsync/crmsync.toml"), &text).unwrap();
    let alice = config.mailbox("alice").unwrap();
    let calendar = alice.calendar.as_ref().unwrap();
    let crmsync_config::Place::Server(server) = &calendar.place else {
        panic!("{calendar:?}");
    };
    assert_eq!(server.url, "https://dav.example.com/");
    assert_eq!(server.username, "alice");
    assert_eq!(
        server.password,
        SecretSource::Credential("alice-dav".into())
    );
    assert_eq!(
        server.tls.ca_file.as_deref(),
        Some(Path::new("/etc/hostname"))
    );
    assert!(server.tls.verify_certificates);
    assert_eq!(server.poll_interval, 30, "the default");
    assert_eq!(calendar.path(), None);
    assert_eq!(calendar.shown(), "https://dav.example.com/");
    let contacts = alice.contacts.as_ref().unwrap();
    let crmsync_config::Place::Server(server) = &contacts.place else {
        panic!("{contacts:?}");
    };
    assert_eq!(server.poll_interval, 5);
    assert_eq!(contacts.from_crm, crmsync_config::FromCrm::None);

    let prefix = "/etc/crmsync/crmsync.toml: mailbox \"alice\": calendar.";
    let bad = |keys: &str| one_error(&format!("{MAILBOX}[mailbox.calendar]\n{keys}"));
    let login = "username = \"alice\"\npassword_credential = \"c\"\n";
    assert_eq!(
        bad("path = \"/srv/cal\"\nurl = \"https://x.example/\"\n"),
        format!("{prefix}path: give path (a directory) or url (a CalDAV/CardDAV server), not both")
    );
    assert_eq!(
        bad("from_crm = \"none\"\n"),
        format!("{prefix}path: missing: give path (a directory) or url (a CalDAV/CardDAV server)")
    );
    assert_eq!(
        bad(&format!("url = \"http://dav.example.com/\"\n{login}")),
        format!(
            "{prefix}url: http:// sends the password unencrypted to dav.example.com: use https://, or set allow_plaintext = true"
        )
    );
    assert_eq!(
        bad(&format!(
            "url = \"https://alice:pw@dav.example.com/\"\n{login}"
        )),
        format!(
            "{prefix}url: the URL holds a user or password: set username, and password_file or password_credential"
        )
    );
    assert_eq!(
        bad(&format!("url = \"ftp://dav.example.com/\"\n{login}")),
        format!("{prefix}url: unknown scheme \"ftp\": expected https or http")
    );
    assert_eq!(
        bad("url = \"https://dav.example.com/\"\nusername = \"alice\"\n"),
        format!("{prefix}password_file: missing: give password_file or password_credential")
    );
    assert_eq!(
        bad(&format!(
            "url = \"https://dav.example.com/\"\n{login}watch = \"poll\"\n"
        )),
        format!(
            "{prefix}watch: only for a directory: a server collection is polled every poll_interval seconds"
        )
    );
    assert_eq!(
        bad(&format!(
            "url = \"https://dav.example.com/\"\n{login}password = \"x\"\n"
        )),
        format!(
            "{prefix}password: inline passwords are refused: put the password in a file only crmsync can read and set password_file, or use password_credential"
        )
    );
    // Plain HTTP to another host only when allowed in so many words.
    let allowed = format!(
        "{MAILBOX}[mailbox.calendar]\nurl = \"http://dav.example.com/\"\n{login}allow_plaintext = true\n"
    );
    assert!(Config::parse(Path::new("/etc/crmsync/crmsync.toml"), &allowed).is_ok());
}

#[test]
fn max_message_size_takes_bytes_or_a_unit() {
    let parse = |value: &str| {
        let text = MAILBOX.replace("username", &format!("max_message_size = {value}\nusername"));
        Config::parse(Path::new("/etc/crmsync/crmsync.toml"), &text)
            .map(|config| config.mailboxes[0].imap.as_ref().unwrap().max_message_size)
    };
    assert_eq!(
        Config::parse(Path::new("/etc/crmsync/crmsync.toml"), MAILBOX)
            .unwrap()
            .mailboxes[0]
            .imap
            .as_ref()
            .unwrap()
            .max_message_size,
        25_000_000
    );
    for (value, bytes) in [
        ("\"25 MB\"", 25_000_000),
        ("\"10MB\"", 10_000_000),
        ("\"512 KiB\"", 524_288),
        ("\"1 GB\"", 1_000_000_000),
        ("2000000", 2_000_000),
    ] {
        assert_eq!(parse(value).unwrap(), bytes, "{value}");
    }
    for value in [
        "\"25 parsecs\"",
        "\"lots\"",
        "\"2 GB\"",
        "100",
        "-5",
        "true",
    ] {
        let text = MAILBOX.replace("username", &format!("max_message_size = {value}\nusername"));
        assert_eq!(
            one_error(&text),
            "/etc/crmsync/crmsync.toml: mailbox \"alice\": imap.max_message_size: expected a size from 64 KiB to 1 GB (bytes, or a string such as \"25 MB\")",
            "{value}"
        );
    }
}

#[test]
fn a_postgres_database_takes_its_password_from_a_file_and_never_from_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("db-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let file = dir.path().join("crmsync.toml");
    let text = format!(
        "[crm]\ndatabase = \"postgres://crmsync@db.example:5432/crm\"\npassword_file = \"{}\"\npool_size = 4\n",
        password.display()
    );
    let config = Config::parse(&file, &text).unwrap();
    match &config.crm.database {
        crmsync_config::DatabaseConfig::Postgres(postgres) => {
            assert_eq!(postgres.url, "postgres://crmsync@db.example:5432/crm");
            assert_eq!(postgres.pool_size, 4);
            assert_eq!(
                postgres.password.as_ref().unwrap().read().unwrap().expose(),
                "s3cret"
            );
            assert!(postgres.tls.verify_certificates);
        }
        other => panic!("not a PostgreSQL store: {other:?}"),
    }

    let with_password = "[crm]\ndatabase = \"postgres://crmsync:s3cret@db.example/crm\"\n";
    let errors = Config::parse(&file, with_password).unwrap_err().to_string();
    assert!(
        errors.contains("crm.database") && errors.contains("password_file"),
        "{errors}"
    );
    assert!(!errors.contains("s3cret"), "{errors}");

    let sqlite_with_pool = "[crm]\ndatabase = \"crm.sqlite3\"\npool_size = 4\n";
    let errors = Config::parse(&file, sqlite_with_pool)
        .unwrap_err()
        .to_string();
    assert!(errors.contains("only a postgres:// database"), "{errors}");

    let other_scheme = "[crm]\ndatabase = \"mysql://crm@db/crm\"\n";
    let errors = Config::parse(&file, other_scheme).unwrap_err().to_string();
    assert!(errors.contains("postgres:// URL"), "{errors}");
}
