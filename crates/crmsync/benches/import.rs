//! A first import: 10,000 tracked messages copied into an empty CRM store, side by side with
//! mbsync mirroring the same folder to the same disk and a raw IMAP client fetching every body.
//! `cargo bench -p crmsync --bench import [-- MESSAGES TRIALS]` (defaults 10000 and 3); the
//! results go to docs/benchmarks.md by hand. mbsync comes from Debian's `isync` (a benchmark
//! dependency only: without it its column says so).
//!
//! One IMAP user whose INBOX is written as a maildir, every message carrying the tracking
//! keyword, indexed by Dovecot before any clock starts. The messages are mail as it comes: the
//! header of mail that crossed a few servers (about 1.6 KB), a text body of about 3 KB, and one
//! message in four with a 32 KB PDF attached (about 15 KB per message on average).
//!
//! - **raw body fetch**: login, `SELECT`, `UID FETCH 1:* (BODY.PEEK[])`: the bytes alone.
//! - **mbsync**: `mbsync -a` pulling the folder into a new local maildir (its default fsync).
//! - **crmsync**: `crmsync sync` on an empty store: scan, fetch, parse, store, the `crm-synced`
//!   marks. Then the store's size beside the mail's and the change journal's rows per activity.
//! - **the daemon's memory**: `crmsync run` on another empty store, until the status file shows
//!   the mailbox idle after its first import; its peak resident memory (`VmHWM`) and what it
//!   holds 3 s and 15 s later (`VmRSS`): what a large pass leaves behind in a long-running
//!   daemon.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{mailbox_config, numbers, relayed_message, stats, with_owner, write_maildir};
use support::dovecot::{Dovecot, ImapClient};

const PASSWORD: &str = "secret";
const USER: &str = "importer";

/// Message `i`: a text body of about 3 KB and, one in four, a 32 KB attachment.
fn message(i: usize) -> String {
    let text: String = (0..40)
        .map(|line| {
            format!("Line {line} of message {i}: the order, its delivery and the invoice.\n")
        })
        .collect();
    if !i.is_multiple_of(4) {
        return relayed_message(
            i,
            &format!("Content-Type: text/plain; charset=utf-8\n\n{text}"),
        );
    }
    let attachment: String = (0..32 * 1024 / 57)
        .map(|line| {
            let bytes: Vec<u8> = (0..57).map(|b| ((i + line * 57 + b) % 251) as u8).collect();
            format!("{}\n", base64(&bytes))
        })
        .collect();
    relayed_message(
        i,
        &format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n\
             Content-Type: text/plain; charset=utf-8\n\n{text}\n--b{i}\n\
             Content-Type: application/pdf; name=\"invoice-{i}.pdf\"\n\
             Content-Disposition: attachment; filename=\"invoice-{i}.pdf\"\n\
             Content-Transfer-Encoding: base64\n\n{attachment}--b{i}--\n"
        ),
    )
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, b)| n | (u32::from(*b) << (16 - 8 * k)));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn mbsync_config(dir: &Path, port: u16, near: &Path) -> PathBuf {
    let path = dir.join("mbsyncrc");
    std::fs::write(
        &path,
        format!(
            "IMAPAccount bench\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n\
             SSLType None\nAuthMechs LOGIN\n\nIMAPStore far\nAccount bench\n\n\
             MaildirStore near\nPath {near}/\nInbox {near}/INBOX\n\n\
             Channel bench\nFar :far:\nNear :near:\nPatterns INBOX\nCreate Near\nSync Pull\n\
             SyncState *\n",
            near = near.display(),
        ),
    )
    .unwrap();
    path
}

fn has_mbsync() -> bool {
    Command::new("mbsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn timed(run: impl FnOnce()) -> Duration {
    let t0 = Instant::now();
    run();
    t0.elapsed()
}

/// A field of `/proc/PID/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// `crmsync run` on an empty store until its first import is done: the peak and the
/// resident memory 3 s and 15 s later, in MiB.
fn daemon_memory(dir: &Path, port: u16, count: usize) -> (f64, f64, f64) {
    let config = with_owner(mailbox_config(dir, port, USER, "daemon", ""));
    let status = dir.join("status.json");
    // A `crmsync sync` before may have left one.
    std::fs::remove_file(&status).ok();
    let mut daemon = Command::new(support::binary())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mailbox = &value["mailboxes"][0];
        if mailbox["state"] == "idle" && !mailbox["last_success"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon's import did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let pid = daemon.id();
    let (peak, soon) = (proc_kib(pid, "VmHWM:"), proc_kib(pid, "VmRSS:"));
    std::thread::sleep(Duration::from_secs(12));
    let later = proc_kib(pid, "VmRSS:");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let db = rusqlite::Connection::open(dir.join("daemon.sqlite3")).unwrap();
    let imported: i64 = db
        .query_row("SELECT count(*) FROM activities", [], |row| row.get(0))
        .unwrap();
    assert_eq!(imported, count as i64, "the daemon imported every message");
    let mib = |kib: u64| kib as f64 / 1024.0;
    (mib(peak), mib(soon), mib(later))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn main() {
    let (count, trials) = match numbers()[..] {
        [count, trials, ..] => (count, trials),
        [count] => (count, 3),
        [] => (10_000, 3),
    };
    let dovecot = Dovecot::start(&[(USER, PASSWORD)]);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();

    let folder: Vec<(String, bool)> = (0..count).map(|i| (message(i), true)).collect();
    let mail_bytes: usize = folder.iter().map(|(text, _)| text.len()).sum();
    write_maildir(&dovecot.root().join("mail").join(USER), &folder);
    drop(folder);
    // Dovecot indexes a maildir it has not seen on first access, and caches the header fields
    // a client asks for the first time: not anyone's time here.
    let mut warm = dovecot.client(USER, PASSWORD);
    assert_eq!(warm.uids("INBOX").len(), count);
    warm.ok(
        "UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO CC \
         SUBJECT IN-REPLY-TO REFERENCES AUTO-SUBMITTED LIST-ID LIST-UNSUBSCRIBE PRECEDENCE \
         RETURN-PATH CONTENT-TYPE X-CRMSYNC-DRAFT-OF)])",
    );
    println!(
        "{count} tracked messages, {:.1} MB of mail; {trials} trials, interleaved\n",
        mail_bytes as f64 / 1e6
    );

    let mbsync = has_mbsync();
    let (mut raw, mut mirrored, mut imported) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_store = None;
    for trial in 0..trials {
        raw.push(timed(|| {
            let mut client = ImapClient::login(dovecot.port, USER, PASSWORD);
            client.ok("SELECT INBOX");
            assert_eq!(client.ok("UID FETCH 1:* (BODY.PEEK[])").len(), count);
        }));
        if mbsync {
            let near = dir.path().join(format!("near{trial}"));
            std::fs::create_dir_all(&near).unwrap();
            let rc = mbsync_config(dir.path(), dovecot.port, &near);
            mirrored.push(timed(|| {
                let output = Command::new("mbsync")
                    .arg("-c")
                    .arg(&rc)
                    .arg("-aq")
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "mbsync: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }));
            let copied = std::fs::read_dir(near.join("INBOX").join("cur"))
                .unwrap()
                .count()
                + std::fs::read_dir(near.join("INBOX").join("new"))
                    .unwrap()
                    .count();
            assert_eq!(copied, count, "mbsync copied every message");
            std::fs::remove_dir_all(&near).unwrap();
        }
        let store = format!("import{trial}");
        let config = with_owner(mailbox_config(dir.path(), dovecot.port, USER, &store, ""));
        let t0 = Instant::now();
        let output = Command::new(support::binary())
            .arg("--config")
            .arg(&config)
            .args(["sync", "--json"])
            .output()
            .unwrap();
        imported.push(t0.elapsed());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            report["mailboxes"][0]["created"], count,
            "every message imported: {report:#}"
        );
        if let Some(previous) = last_store.replace(dir.path().join(format!("{store}.sqlite3"))) {
            std::fs::remove_file(previous).ok();
        }
    }
    let store = last_store.unwrap();
    let db = rusqlite::Connection::open(&store).unwrap();
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let count_of = |sql: &str| -> i64 { db.query_row(sql, [], |row| row.get(0)).unwrap() };
    let activities = count_of("SELECT count(*) FROM activities");
    let journal = count_of("SELECT count(*) FROM change_journal WHERE entity = 'activity'");
    let store_bytes = file_size(&store) + file_size(&store.with_extension("sqlite3-wal"));

    println!("| | median s | min s | max s | ms per message |");
    println!("|---|---|---|---|---|");
    let line = |name: &str, samples: &[Duration]| {
        let s = stats(samples);
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.3} |",
            s.median / 1000.0,
            s.min / 1000.0,
            s.max / 1000.0,
            s.median / count as f64
        );
    };
    line("raw body fetch", &raw);
    if mbsync {
        line("mbsync (isync)", &mirrored);
    } else {
        println!("| mbsync (isync) | not installed | | | |");
    }
    line("crmsync sync", &imported);
    println!(
        "\nstore: {:.1} MB for {:.1} MB of mail ({:.2}×); change journal: {:.2} rows per activity",
        store_bytes as f64 / 1e6,
        mail_bytes as f64 / 1e6,
        store_bytes as f64 / mail_bytes as f64,
        journal as f64 / activities as f64
    );
    // The daemon's first import: after the table, so its `crm-synced` marks (a rename per
    // message on maildir) slow none of the timed runs.
    let (peak, soon, later) = daemon_memory(dir.path(), dovecot.port, count);
    println!();
    println!(
        "crmsync run, first import: peak RSS {peak:.1} MiB; RSS 3 s after idle {soon:.1} MiB, \
         15 s after {later:.1} MiB"
    );
}
