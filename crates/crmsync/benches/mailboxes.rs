//! Many mailboxes in one daemon: `crmsync run` with N mailboxes of M messages each (1 %
//! tracked), side by side with a raw IMAP client scanning all of them.
//! `cargo bench -p crmsync --bench mailboxes [-- MAILBOXES MESSAGES]` (defaults 200 and 1000);
//! the results go to docs/benchmarks.md by hand. Dovecot's process and client limits are
//! raised for it, and this process's soft file limit to its hard limit (the daemon inherits
//! it, as the unit's `LimitNOFILE` gives it under systemd).
//!
//! - **raw scan of all**: four threads, each logging in to its share of the mailboxes in turn:
//!   `SELECT`, the flags and the identity's eight header fields of every message.
//! - **all idle**: from the daemon's start until its last pass before the status file showed
//!   every mailbox `idle` (the time of that pass in the log: the file is written at most once
//!   a second): every first scan and first import done. The time the file said so is given
//!   too.
//! - **passes at startup**: the daemon's `pass done` log lines until then, and in the 3 s after.
//! - **RSS**: the daemon's resident memory 3 s after all were idle, per mailbox.
//! - **one change**: another client stores the tracking keyword on a message of one mailbox;
//!   the passes that follow in the next 3 s, and how many mailboxes they were in.
//!
//! The kernel's inotify instances per user are raised to twice the mailboxes (Dovecot's IDLE
//! sessions each hold one): beyond 128, the default, Dovecot checks a mailbox for changes
//! only every 30 s.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{numbers, poll, relayed_message, write_maildir};
use support::dovecot::{Dovecot, ImapClient};

const PASSWORD: &str = "secret";

/// Limits for hundreds of IMAP connections from one address.
const DOVECOT_SETTINGS: &str = "default_process_limit = 5000
default_client_limit = 20000
default_vsz_limit = 0
mail_max_userip_connections = 50
service imap-login {
  service_count = 0
  process_min_avail = 2
}
service imap {
  process_limit = 5000
}
";

fn user(i: usize) -> String {
    format!("m{i:04}")
}

fn message(i: usize) -> String {
    relayed_message(
        i,
        "Content-Type: text/plain; charset=utf-8\n\nLine one of the message.\nLine two.\n",
    )
}

/// The daemon's config: every mailbox on the same server, IDLE on INBOX.
fn config(dir: &Path, port: u16, mailboxes: usize) -> std::path::PathBuf {
    let mut text = format!(
        "[crm]\ndatabase = \"{dir}/crm.sqlite3\"\n[status]\nfile = \"{dir}/status.json\"\n\
         [log]\nlevel = \"info\"\n",
        dir = dir.display()
    );
    for i in 0..mailboxes {
        text.push_str(&format!(
            "[[mailbox]]\nid = \"{u}\"\nowner = \"{u}@example.com\"\n[mailbox.imap]\n\
             host = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nusername = \"{u}\"\n\
             password_file = \"{dir}/password\"\nfolders = [\"INBOX\"]\n",
            u = user(i),
            dir = dir.display(),
        ));
    }
    let path = dir.join("crmsync.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Adds the mailboxes' owners to the store, four CLI processes at a time.
fn add_owners(config: &Path, mailboxes: usize) {
    let add = |i: usize| {
        let status = Command::new(support::binary())
            .arg("--config")
            .arg(config)
            .args([
                "user",
                "add",
                &format!("{}@example.com", user(i)),
                "--name",
                &user(i),
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    // The first creates the store; the rest in parallel.
    add(0);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || (1..mailboxes).filter(|i| i % 4 == worker).for_each(add));
        }
    });
}

fn raw_scan(port: u16, mailboxes: usize, messages: usize) -> Duration {
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || {
                for i in (0..mailboxes).filter(|i| i % 4 == worker) {
                    let mut client = ImapClient::login(port, &user(i), PASSWORD);
                    client.ok("SELECT INBOX");
                    let lines = client.ok(
                        "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM \
                         TO CC SUBJECT IN-REPLY-TO REFERENCES)])",
                    );
                    assert_eq!(lines.len(), messages);
                }
            });
        }
    });
    t0.elapsed()
}

fn passes(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("pass done"))
        .map(str::to_owned)
        .collect()
}

/// The CPU time `pid` used so far (user and system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// Long on purpose: the benchmark as a script, read top to bottom.
fn main() {
    let numbers = numbers();
    let mailboxes = numbers.first().copied().unwrap_or(200);
    let messages = numbers.get(1).copied().unwrap_or(1_000);
    // The soft file limit up to the hard one (the unit's `LimitNOFILE` is 65,536).
    let mut files = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    files.current = files.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, files)
        .expect("raising the file limit to its hard limit");

    // Dovecot tells each IDLE session of a change through an inotify instance of its own, all
    // under the `mail` user: past the kernel's limit per user (128 by default) it falls back
    // to checking every 30 s, and a change in a mailbox beyond the 128th IDLE reaches nobody
    // in time. Raised for the run when this process may (root).
    let instances = "/proc/sys/fs/inotify/max_user_instances";
    let wanted = 2 * mailboxes + 128;
    let current: usize = std::fs::read_to_string(instances)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if current < wanted && std::fs::write(instances, wanted.to_string()).is_err() {
        eprintln!(
            "{instances} is {current}: Dovecot's IDLE beyond that many sessions polls every 30 s"
        );
    }
    let users: Vec<String> = (0..mailboxes).map(user).collect();
    let accounts: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), PASSWORD)).collect();
    let dovecot = Dovecot::start_configured(&accounts, None, DOVECOT_SETTINGS);
    let folder: Vec<(String, bool)> = (0..messages).map(|i| (message(i), i % 100 == 0)).collect();
    for name in &users {
        write_maildir(&dovecot.root().join("mail").join(name), &folder);
    }
    // Dovecot indexes each maildir on first access and caches the header fields asked for:
    // not anyone's time here.
    for name in &users {
        let mut client = dovecot.client(name, PASSWORD);
        assert_eq!(client.uids("INBOX").len(), messages);
        client.ok(
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM \
             TO CC SUBJECT IN-REPLY-TO REFERENCES AUTO-SUBMITTED LIST-ID LIST-UNSUBSCRIBE \
             PRECEDENCE RETURN-PATH CONTENT-TYPE X-CRMSYNC-DRAFT-OF)])",
        );
    }
    let raw = raw_scan(dovecot.port, mailboxes, messages);

    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = config(dir.path(), dovecot.port, mailboxes);
    add_owners(&config, mailboxes);

    let log = dir.path().join("daemon.log");
    let status = dir.path().join("status.json");
    let t0 = Instant::now();
    let mut daemon = Command::new(support::binary())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = chrono::Utc::now();
    // The status file is written at most once a second: it is read again only when it
    // changed, so that this process does not take a core's share from the daemon and Dovecot.
    let mut seen = None;
    let status_says = poll("every mailbox idle", || {
        std::thread::sleep(Duration::from_millis(20));
        let modified = std::fs::metadata(&status).and_then(|m| m.modified()).ok()?;
        if seen.replace(modified) == Some(modified) {
            return None;
        }
        let text = std::fs::read(&status).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
        let all = value["mailboxes"].as_array()?;
        let idle = all
            .iter()
            .filter(|m| m["state"] == "idle" && !m["last_success"].is_null())
            .count();
        (all.len() == mailboxes && idle == mailboxes).then(|| t0.elapsed())
    });
    // The moment itself: the last `pass done` in the log by then (the status file is up to a
    // second late).
    let idle_after = passes(&log)
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
        .max()
        .and_then(|last| (last.with_timezone(&chrono::Utc) - started).to_std().ok())
        .unwrap_or(status_says);
    let startup_cpu = cpu_seconds(daemon.id());
    let startup_passes = passes(&log).len();
    std::thread::sleep(Duration::from_secs(3));
    let settled_passes = passes(&log).len();
    let rss = rss_kib(daemon.id());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", daemon.id()))
        .unwrap()
        .count();

    // One change in one mailbox.
    let mut client = dovecot.client(&user(0), PASSWORD);
    client.ok("SELECT INBOX");
    client.ok("UID STORE 2 +FLAGS.SILENT (crm)");
    std::thread::sleep(Duration::from_secs(3));
    let after_change: Vec<String> = passes(&log).split_off(settled_passes);
    let woken: std::collections::BTreeSet<&str> = after_change
        .iter()
        .filter_map(|line| users.iter().find(|u| line.contains(u.as_str())))
        .map(String::as_str)
        .collect();

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // Kept for a look at the timeline after the run.
    let _ = std::fs::write(
        std::env::temp_dir().join("crmsync-mailboxes-daemon.log"),
        &text,
    );
    let troubles: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    if !troubles.is_empty() {
        eprintln!(
            "{} warnings and errors in the daemon's log, the first:\n{}",
            troubles.len(),
            troubles[..troubles.len().min(5)].join("\n")
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();

    println!("{mailboxes} mailboxes of {messages} messages (1 % tracked), one daemon\n");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| raw scan of all (4 clients) | {:.2} s |",
        raw.as_secs_f64()
    );
    println!(
        "| crmsync: all idle after start | {:.2} s ({:.1}× raw) |",
        idle_after.as_secs_f64(),
        idle_after.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "| the status file says so after | {:.2} s |",
        status_says.as_secs_f64()
    );
    println!("| crmsync CPU until all idle | {startup_cpu:.2} s |");
    println!(
        "| passes until all idle / in the 3 s after | {startup_passes} / {} |",
        settled_passes - startup_passes
    );
    println!(
        "| RSS 3 s after all idle | {:.1} MiB ({:.2} MiB per mailbox) |",
        rss as f64 / 1024.0,
        rss as f64 / 1024.0 / mailboxes as f64
    );
    println!("| open files | {fds} |");
    println!(
        "| one keyword stored in one mailbox: passes in the next 3 s | {} in {} mailbox(es) |",
        after_change.len(),
        woken.len()
    );
}
