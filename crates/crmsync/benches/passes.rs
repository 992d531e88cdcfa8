//! What a pass costs as a folder grows: a first scan and a pass where nothing changed, on
//! folders of 1,000, 10,000 and 100,000 messages (1 % tracked), side by side with a raw IMAP
//! client asking the same server for the least that tells the same.
//! `cargo bench -p crmsync --bench passes [-- SIZE... TRIALS]` (defaults 1000 10000 100000,
//! and 5 trials); the results go to docs/benchmarks.md by hand.
//!
//! Per folder size, one IMAP user whose INBOX is written as a maildir, indexed by Dovecot and
//! its header-field cache built (one fetch of every field either side reads) before any clock
//! starts. Each message has a header of the usual size (three `Received`
//! lines and a DKIM signature: about 1.6 KB) and a short body.
//!
//! The raw header fetch and the decide-only scan take turns on the same untouched folder; the
//! ratio is of their medians (the raw fetch's fastest trial is given too). The whole first
//! scans come after them: their `crm-synced` marks rename maildir files, and the next scan of
//! the folder, by anyone, pays Dovecot's reread of the directory (before this order, the
//! decide-only scans paid it and the raw fetches did not).
//!
//! - **first scan, decide only**: `crmsync sync --dry-run` on a fresh store: every message's
//!   flags, the scanned header fields of the tracked ones, the decisions, nothing written. The
//!   raw client: login, `SELECT`, `UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (the
//!   identity's eight)])` (what crmsync fetched before it withheld untracked headers, and the
//!   goal's yardstick); and, as a second floor, the two fetches crmsync sends now: `UID FETCH
//!   1:* (UID FLAGS)`, then the eight fields of the tracked messages by UID set.
//! - **first scan, whole**: `crmsync sync`: the same, then the tracked 1 % fetched and stored.
//! - **no change**: `crmsync sync` again, nothing changed (process start, store, login,
//!   `SELECT`, and whatever the pass needs to know nothing changed). The raw client: login and
//!   `SELECT (CONDSTORE)`, HIGHESTMODSEQ compared. The two take turns, at least 30 trials each
//!   (their spread from run to run is about 10 ms, as much as the difference measured).

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{mailbox_config, numbers, relayed_message, stats, with_owner, write_maildir};
use support::dovecot::{Dovecot, ImapClient};

const PASSWORD: &str = "secret";

/// Trials of the no-change pass and the raw check, at least.
const NO_CHANGE_TRIALS: usize = 30;

/// Message `i`: about 1.6 KB of header and a two-line body.
fn message(i: usize) -> String {
    relayed_message(
        i,
        "Content-Type: text/plain; charset=utf-8\n\nLine one of the message.\nLine two.\n",
    )
}

/// A config for `user` with a store of its own (`fresh`: a new file each time).
fn config(dir: &Path, port: u16, user: &str, store: &str) -> std::path::PathBuf {
    mailbox_config(dir, port, user, store, "")
}

/// Runs `crmsync ARGS` with `config`; returns how long it took and its JSON report.
fn crmsync(config: &Path, args: &[&str]) -> (Duration, serde_json::Value) {
    let t0 = Instant::now();
    let output = Command::new(support::binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = serde_json::from_slice(&output.stdout).unwrap_or_default();
    (took, report)
}

/// The UIDs of the FETCH answers (of `UID FLAGS`) whose flags hold the tracking keyword.
fn tracked_uids(answers: &[String]) -> Vec<String> {
    answers
        .iter()
        .filter(|line| line.contains("FLAGS (") && line.contains("crm"))
        .filter_map(|line| {
            let rest = &line[line.find("UID ")? + 4..];
            Some(rest.split([' ', ')']).next()?.to_owned())
        })
        .collect()
}

fn timed(mut run: impl FnMut()) -> Duration {
    let t0 = Instant::now();
    run();
    t0.elapsed()
}

fn median(samples: &[Duration]) -> f64 {
    stats(samples).median
}

fn main() {
    let numbers = numbers();
    let (sizes, trials) = match numbers.split_last() {
        Some((trials, sizes)) if !sizes.is_empty() => (sizes.to_vec(), *trials),
        _ => (vec![1_000, 10_000, 100_000], 5),
    };
    let users: Vec<String> = sizes.iter().map(|size| format!("s{size}")).collect();
    let accounts: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), PASSWORD)).collect();
    let dovecot = Dovecot::start(&accounts);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), PASSWORD).unwrap();
    std::fs::set_permissions(
        dir.path().join("password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    println!("{trials} trials per cell, medians in ms\n");
    println!(
        "| messages | raw header fetch (fastest) | raw header fetch | raw flags, then tracked headers | first scan, decide only | × raw header fetch | first scan, whole | raw CONDSTORE check | no-change pass |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut no_change_medians = Vec::new();
    for (size, user) in sizes.iter().zip(&users) {
        let folder: Vec<(String, bool)> = (0..*size).map(|i| (message(i), i % 100 == 0)).collect();
        write_maildir(&dovecot.root().join("mail").join(user), &folder);
        // Dovecot indexes a maildir it has not seen on first access: not anyone's time here.
        assert_eq!(dovecot.client(user, PASSWORD).uids("INBOX").len(), *size);

        let identity_fields = "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE \
                               FROM TO CC SUBJECT IN-REPLY-TO REFERENCES)])";
        // Dovecot builds its cache of a header field the first time a client asks for it:
        // asked once for every field either side reads, before any clock starts.
        let mut warm = ImapClient::login(dovecot.port, user, PASSWORD);
        warm.ok("SELECT INBOX");
        warm.ok(
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM \
             TO CC SUBJECT IN-REPLY-TO REFERENCES AUTO-SUBMITTED LIST-ID LIST-UNSUBSCRIBE \
             PRECEDENCE RETURN-PATH CONTENT-TYPE X-CRMSYNC-DRAFT-OF)])",
        );
        warm.ok(identity_fields);
        // The raw fetch and the decide-only scan take turns on the same folder, untouched by
        // either (a dry run writes nothing to the server); the whole first scans come after,
        // since their `crm-synced` marks rename files, and on maildir the next scan of the
        // folder pays Dovecot's reread of its directory.
        let mut raw_fetch = Vec::new();
        let mut raw_two = Vec::new();
        let mut decide = Vec::new();
        for trial in 0..trials {
            raw_fetch.push(timed(|| {
                let mut client = ImapClient::login(dovecot.port, user, PASSWORD);
                client.ok("SELECT INBOX");
                assert_eq!(client.ok(identity_fields).len(), *size);
            }));
            raw_two.push(timed(|| {
                let mut client = ImapClient::login(dovecot.port, user, PASSWORD);
                client.ok("SELECT INBOX");
                let tracked = tracked_uids(&client.ok("UID FETCH 1:* (UID FLAGS)"));
                assert_eq!(tracked.len(), size.div_ceil(100));
                let fetch = identity_fields.replacen("1:*", &tracked.join(","), 1);
                assert_eq!(client.ok(&fetch).len(), tracked.len());
            }));
            let dry = with_owner(config(
                dir.path(),
                dovecot.port,
                user,
                &format!("{user}-d{trial}"),
            ));
            decide.push(crmsync(&dry, &["sync", "--json", "--dry-run"]).0);
        }
        let mut whole = Vec::new();
        for trial in 0..trials {
            let fresh = with_owner(config(
                dir.path(),
                dovecot.port,
                user,
                &format!("{user}-t{trial}"),
            ));
            let (took, report) = crmsync(&fresh, &["sync", "--json"]);
            assert_eq!(
                report["mailboxes"][0]["tracked"],
                size.div_ceil(100),
                "{report:#}"
            );
            whole.push(took);
        }
        let settled = config(dir.path(), dovecot.port, user, &format!("{user}-t0"));
        // The first pass's own writes (the `crm-synced` marks of the last trial) are a change
        // the next pass reads once.
        crmsync(&settled, &["sync", "--json"]);
        // A no-change pass takes tens of milliseconds, with a spread of about ten from run to
        // run: many more trials than the scans, taking turns with the raw check.
        let mut raw_check = Vec::new();
        let mut no_change = Vec::new();
        for _ in 0..trials.max(NO_CHANGE_TRIALS) {
            raw_check.push(timed(|| {
                let mut client = ImapClient::login(dovecot.port, user, PASSWORD);
                let lines = client.ok("SELECT INBOX (CONDSTORE)");
                assert!(lines.iter().any(|l| l.contains("HIGHESTMODSEQ")));
            }));
            let (took, report) = crmsync(&settled, &["sync", "--json"]);
            assert_eq!(report["mailboxes"][0]["imap"]["fetch_commands"], 0);
            no_change.push(took);
        }
        no_change_medians.push(median(&no_change));
        println!(
            "| {size} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.0} | {:.1} | {:.1} |",
            stats(&raw_fetch).min,
            median(&raw_fetch),
            median(&raw_two),
            median(&decide),
            median(&decide) / median(&raw_fetch),
            median(&whole),
            median(&raw_check),
            median(&no_change),
        );
    }
    if let (Some(first), Some(last)) = (no_change_medians.first(), no_change_medians.last()) {
        println!(
            "\nno-change pass, largest / smallest folder: {:.2}",
            last / first
        );
    }
}
