//! What automatic tracking costs on a first scan: the same 10,000-message folder synced with
//! `auto = "none"` and with `auto = "crm-records"` against 1,000 CRM contacts.
//! `cargo bench -p crmsync --bench auto_tracking [-- MESSAGES RECORDS TRIALS]` (defaults
//! 10000, 1000 and 5); the results go to docs/benchmarks.md by hand.
//!
//! The folder: 1 % of the messages carry the tracking keyword (tracked under both policies),
//! 1 % come from a CRM contact, 10 % reply to an earlier message (a tenth of those to a
//! tracked one), 5 % are list mail; the rest come from 3,000 strangers, with 4,000 subjects.
//! Every trial gets a fresh copy of the folder (its own IMAP user, its indexes built before the
//! clock starts) and a fresh copy of the store (the users and the records only), and runs
//! `crmsync sync --backfill 2000-01-01` (so the policy reaches every message of the folder,
//! not only mail that arrives after it was switched on), interleaved none / crm-records:
//!
//! - **decide only** (`--dry-run`): the scan of flags and headers, the CRM lookups and the
//!   decisions, nothing written;
//! - **whole first scan**: the same, then tracking what the policy took (bodies fetched,
//!   activities created, keywords written).

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{millis, numbers, stats, write_maildir};
use crmsync_core::model::{EmailAddress, EntityName};
use crmsync_store::prelude::*;
use crmsync_store::{NewRecord, NewUser, SqliteStore};
use support::dovecot::Dovecot;

const PASSWORD: &str = "secret";

/// Message `i` of the folder, and whether it carries the tracking keyword.
fn message(i: usize, records: usize) -> (String, bool) {
    let keyword = i.is_multiple_of(100);
    let sender = |i: usize| {
        if i % 100 == 50 {
            format!("contact{}@customers.example", (i / 100) % records)
        } else {
            format!("stranger{}@else.example", (i * 7) % 3000)
        }
    };
    // A reply comes from the sender of the message it answers.
    let from = if i % 10 == 3 {
        sender(i - 3)
    } else {
        sender(i)
    };
    let mut extra = String::new();
    if i % 10 == 3 {
        extra.push_str(&format!("In-Reply-To: <m{}@bench.example>\n", i - 3));
    }
    if i % 20 == 7 {
        extra.push_str("List-Id: <news.list.example>\n");
    }
    let body: String = (0..20)
        .map(|line| format!("Line {line} of message {i}, some ordinary words.\n"))
        .collect();
    let text = format!(
        "Message-ID: <m{i}@bench.example>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\nFrom: {from}\n\
         To: alice@example.com\nCc: stranger{cc}@else.example\nSubject: Subject {subject}\n{extra}\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}",
        cc = (i * 13) % 3000,
        subject = i % 4000,
    );
    (text.replace('\n', "\r\n"), keyword)
}

/// The store every trial starts from: the mailbox owner and RECORDS contacts.
fn template_store(path: &Path, records: usize) {
    let mut store = SqliteStore::open(path, "bench", crmsync_engine::STORE_RULES).unwrap();
    store
        .add_user(&NewUser {
            email: EmailAddress::new("alice@example.com").unwrap(),
            name: "Alice".into(),
            sync: true,
        })
        .unwrap();
    for r in 0..records {
        store
            .add_record(&NewRecord {
                entity: EntityName::new("contact").unwrap(),
                name: format!("Contact {r}"),
                emails: vec![EmailAddress::new(&format!("contact{r}@customers.example")).unwrap()],
                number: None,
                parent: None,
                owner: None,
            })
            .unwrap();
    }
}

/// One `crmsync sync` over user `user`'s fresh folder with a fresh store; its time and report.
fn trial(
    dir: &Path,
    dovecot: &Dovecot,
    user: &str,
    policy: &str,
    dry_run: bool,
) -> (Duration, serde_json::Value) {
    let store = dir.join(format!("{user}.sqlite3"));
    std::fs::copy(dir.join("template.sqlite3"), &store).unwrap();
    let config = dir.join(format!("{user}.toml"));
    std::fs::write(
        &config,
        format!(
            "[crm]\ndatabase = \"{store}\"\n[status]\nfile = \"{dir}/status.json\"\n[log]\nlevel = \"error\"\n\
             [[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n[mailbox.imap]\nhost = \"127.0.0.1\"\n\
             port = {port}\nsecurity = \"none\"\nusername = \"{user}\"\npassword_file = \"{dir}/password\"\n\
             folders = [\"INBOX\"]\n[mailbox.tracking]\nauto = \"{policy}\"\n",
            store = store.display(),
            dir = dir.display(),
            port = dovecot.port,
        ),
    )
    .unwrap();
    let mut command = Command::new(support::binary());
    command
        .arg("--config")
        .arg(&config)
        .args(["sync", "--json", "--backfill", "2000-01-01"]);
    if dry_run {
        command.arg("--dry-run");
    }
    let t0 = Instant::now();
    let output = command.output().unwrap();
    let took = t0.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "sync printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (took, report["mailboxes"][0].clone())
}

fn median(samples: &[Duration]) -> f64 {
    stats(samples).median
}

// Long on purpose: the benchmark as a script, read top to bottom.
fn main() {
    let numbers = numbers();
    let messages = numbers.first().copied().unwrap_or(10_000);
    let records = numbers.get(1).copied().unwrap_or(1_000);
    let trials = numbers.get(2).copied().unwrap_or(5);

    // Two kinds of run (decide only, whole), two policies, `trials` each: one user apiece.
    let users: Vec<String> = (0..trials * 4).map(|t| format!("t{t}")).collect();
    let accounts: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), PASSWORD)).collect();
    let dovecot = Dovecot::start(&accounts);
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    template_store(&dir.path().join("template.sqlite3"), records);
    let folder: Vec<(String, bool)> = (0..messages).map(|i| message(i, records)).collect();
    for user in &users {
        write_maildir(&dovecot.root().join("mail").join(user), &folder);
        // Dovecot indexes a maildir it has not seen on first access: not crmsync's time.
        let uids = dovecot.client(user, PASSWORD).uids("INBOX");
        assert_eq!(uids.len(), messages);
    }

    let mut times: [[Vec<Duration>; 2]; 2] = Default::default();
    let mut reports: [[Option<serde_json::Value>; 2]; 2] = Default::default();
    let mut next = users.iter();
    for _ in 0..trials {
        for (run, dry_run) in [(0, true), (1, false)] {
            for (p, policy) in ["none", "crm-records"].into_iter().enumerate() {
                let user = next.next().unwrap();
                let (took, report) = trial(dir.path(), &dovecot, user, policy, dry_run);
                assert_eq!(report["state"], "idle", "{report:#}");
                times[run][p].push(took);
                reports[run][p] = Some(report);
            }
        }
    }

    println!(
        "{messages} messages, {records} CRM contacts, {trials} trials per cell, medians in ms\n"
    );
    println!("| first scan | auto = none | auto = crm-records | added |");
    println!("|---|---|---|---|");
    for (run, name) in [
        (0, "decide only (--dry-run)"),
        (1, "whole (tracking what it takes)"),
    ] {
        let (none, crm) = (median(&times[run][0]), median(&times[run][1]));
        println!(
            "| {name} | {none:.0} | {crm:.0} | {:+.1} % |",
            (crm / none - 1.0) * 100.0
        );
    }
    let whole = |p: usize| reports[1][p].clone().unwrap();
    let planned = |p: usize| {
        reports[0][p].as_ref().unwrap()["planned"]
            .as_array()
            .map_or(0, |a| a.len())
    };
    println!(
        "\ntracked: none {} (created {}), crm-records {} (created {}); planned lines: none {}, crm-records {}",
        whole(0)["tracked"],
        whole(0)["created"],
        whole(1)["tracked"],
        whole(1)["created"],
        planned(0),
        planned(1),
    );
    for (run, name) in [(0, "decide only"), (1, "whole")] {
        for (p, policy) in ["none", "crm-records"].into_iter().enumerate() {
            let all: Vec<String> = times[run][p]
                .iter()
                .map(|t| format!("{:.0}", millis(*t)))
                .collect();
            println!("{name}, {policy}: {}", all.join(" "));
        }
    }
}
