//! What tracking one large message costs in memory: the peak resident set (RSS) of
//! `crmsync sync` tracking a message of 10 MB and one of 54 MB (a text part and one base64
//! attachment), under the default `max_message_size` (25 MB: the 54 MB one is fetched in part
//! and kept without its attachment) and under a limit of 100 MB (both fetched whole).
//! `cargo bench -p crmsync --bench large_message`; the results go to docs/benchmarks.md by
//! hand.
//!
//! The peak RSS is the `VmHWM` of `/proc/PID/status` of the `crmsync sync` measured, read
//! every 2 ms while it runs (a high-water mark: a read after the peak gives the peak; a peak in
//! the last 2 ms before the process exits would be missed).

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{mailbox_config, millis};
use support::dovecot::Dovecot;

const PASSWORD: &str = "secret";

/// A message of about `megabytes` MB: a short text part and one attachment.
fn message(id: &str, megabytes: usize) -> Vec<u8> {
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    let lines = megabytes * 1_000_000 / line.len();
    let mut text = format!(
        "Message-ID: <{id}@bench.example>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\
         From: dana@x.example\r\nTo: alice@example.com\r\nSubject: Large {megabytes} MB\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain\r\n\r\nThe drawings are attached.\r\n--b1\r\n\
         Content-Type: application/octet-stream; name=\"drawings.bin\"\r\n\
         Content-Disposition: attachment; filename=\"drawings.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    text.reserve(lines * line.len() + 16);
    for _ in 0..lines {
        text.extend_from_slice(line.as_bytes());
    }
    text.extend_from_slice(b"--b1--\r\n");
    text
}

/// The peak RSS (KiB) of a running process so far.
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One case: a store and a config for `user`, one `crmsync sync`; returns its peak RSS in
/// KiB, how long it took, and how many attachments the activity kept.
fn case(dir: &Path, port: u16, user: &str, limit: &str) -> (u64, Duration, usize) {
    let config = mailbox_config(
        dir,
        port,
        user,
        user,
        &format!("max_message_size = \"{limit}\"\n"),
    );
    let crmsync = |args: &[&str]| {
        let mut command = Command::new(support::binary());
        command.arg("--config").arg(&config).args(args);
        command
    };
    let run = |args: &[&str]| {
        let output = crmsync(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    run(&["user", "add", "alice@example.com", "--name", "Alice"]);
    let t0 = Instant::now();
    let mut child = crmsync(&["sync"]).stdout(Stdio::null()).spawn().unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(high_water_mark(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = t0.elapsed();
    let activities: serde_json::Value =
        serde_json::from_slice(&run(&["activity", "list", "--json"])).unwrap();
    assert_eq!(activities.as_array().unwrap().len(), 1, "{activities:#}");
    let attachments = activities[0]["attachments"].as_array().map_or(0, Vec::len);
    (peak, took, attachments)
}

fn main() {
    let cases = [(10, "25 MB"), (54, "25 MB"), (10, "100 MB"), (54, "100 MB")];
    let users: Vec<String> = (0..cases.len()).map(|n| format!("u{n}")).collect();
    let accounts: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), PASSWORD)).collect();
    let dovecot = Dovecot::start(&accounts);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();

    println!(
        "| message | max_message_size | peak RSS of crmsync sync | RSS / message | sync took | attachments kept |"
    );
    println!("|---|---|---|---|---|---|");
    for ((megabytes, limit), user) in cases.iter().zip(&users) {
        let raw = message(user, *megabytes);
        dovecot
            .client(user, PASSWORD)
            .append_bytes("INBOX", &["crm"], &raw);
        let (peak, took, attachments) = case(dir.path(), dovecot.port, user, limit);
        let size = raw.len() as f64 / 1e6;
        let rss = peak as f64 * 1024.0 / 1e6;
        println!(
            "| {size:.1} MB | {limit} | {rss:.0} MB | {:.1}× | {:.0} ms | {attachments} |",
            rss / size,
            millis(took),
        );
    }
}
