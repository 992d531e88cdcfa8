//! Automatic tracking (issue 10) against a real Dovecot with the real binary: the `all`,
//! `crm-records` and `replies` policies, reply correlation and its guard against forwards,
//! automated mail, the never-track list, tombstones, and untracked bodies never fetched.

mod support;

use serde_json::Value;
use support::mail::{Mail, message};

/// A mailbox with an automatic tracking policy (and never-track entries).
fn mail_with(policy: &str, never: &[&str]) -> Mail {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    let never: Vec<String> = never.iter().map(|n| format!("{n:?}")).collect();
    mail.env.write_config(&format!(
        "{config}[mailbox.tracking]\nauto = \"{policy}\"\nnever = [{}]\n",
        never.join(", ")
    ));
    mail.env
        .ok(&["record", "add", "account", "--name", "Adventure Works"]);
    mail.env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Dana",
        "--email",
        "dana@adventure-works.com",
    ]);
    mail.env
        .ok(&["user", "add", "bob@example.com", "--name", "Bob"]);
    mail
}

fn with_headers(headers: &str, text: &str) -> String {
    format!("{headers}{text}")
}

#[test]
fn all_tracks_new_mail_but_not_older_automated_or_never_listed_mail() {
    let mail = mail_with("all", &["@family.example"]);
    let mut imap = mail.client("alice");
    imap.append(
        "INBOX",
        &[],
        &message(
            "old@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "Before",
        ),
    );
    // The first pass sees the policy: mail already there is left alone.
    let first = &mail.sync_ok()["alice"];
    assert_eq!(first["created"], 0, "{first:#}");

    let new = imap.append(
        "INBOX",
        &[],
        &message(
            "new@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "After",
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &with_headers(
            "List-Id: <news.example.com>\n",
            &message(
                "list@x.example",
                "news@example.com",
                "alice@example.com",
                "Newsletter",
            ),
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &with_headers(
            "Auto-Submitted: auto-replied\n",
            &message(
                "ooo@x.example",
                "sam@elsewhere.example",
                "alice@example.com",
                "Away",
            ),
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &with_headers(
            "Precedence: bulk\n",
            &message(
                "bulk@x.example",
                "offers@shop.example",
                "alice@example.com",
                "Offers",
            ),
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &message(
            "mum@x.example",
            "mum@family.example",
            "alice@example.com",
            "Sunday",
        ),
    );
    // A never-listed sender, but the person tracked it by hand: the person decided.
    imap.append(
        "INBOX",
        &["crm"],
        &message(
            "mum2@x.example",
            "mum@family.example",
            "alice@example.com",
            "Invoice",
        ),
    );
    let report = &mail.sync_ok()["alice"];
    assert_eq!(mail.subjects(), ["After", "Invoice"], "{report:#}");
    // Only tracked bodies are fetched.
    assert_eq!(report["imap"]["bodies_fetched"], 2, "{report:#}");
    // The person sees that it is tracked.
    assert_eq!(imap.flags("INBOX", new), ["crm"]);

    // Untracking it deletes its activity, and automatic tracking never takes it again.
    imap.store("INBOX", new, "-FLAGS (crm)");
    let untracked = &mail.sync_ok()["alice"];
    assert_eq!(untracked["deleted"], 1, "{untracked:#}");
    for _ in 0..2 {
        let again = &mail.sync_ok()["alice"];
        assert_eq!(again["created"], 0, "{again:#}");
    }
    assert_eq!(mail.subjects(), ["Invoice"]);
    assert!(imap.flags("INBOX", new).is_empty());
}

#[test]
fn crm_records_tracks_mail_with_a_crm_contact_but_not_with_a_user_alone() {
    let mail = mail_with("crm-records", &[]);
    mail.sync_ok();
    let mut imap = mail.client("alice");
    imap.append(
        "INBOX",
        &[],
        &message(
            "c1@x.example",
            "dana@adventure-works.com",
            "alice@example.com",
            "From Dana",
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &message(
            "c2@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "From Sam",
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &message(
            "c3@x.example",
            "bob@example.com",
            "alice@example.com",
            "From Bob",
        ),
    );
    let report = &mail.sync_ok()["alice"];
    assert_eq!(mail.subjects(), ["From Dana"], "{report:#}");
    assert_eq!(report["imap"]["bodies_fetched"], 1, "{report:#}");
}

#[test]
fn replies_follow_their_tracked_thread_and_forwards_to_new_people_do_not() {
    let mail = mail_with("replies", &[]);
    let mut imap = mail.client("alice");
    // A thread the person tracked by hand, regarding ACC-1001.
    imap.append(
        "INBOX",
        &["crm:ACC-1001"],
        &message(
            "t1@x.example",
            "erin@customer.example",
            "alice@example.com",
            "Offer",
        ),
    );
    mail.sync_ok();

    let reply = |id: &str, from: &str, to: &str, subject: &str, threading: &str| {
        with_headers(threading, &message(id, from, to, subject))
    };
    let by_in_reply_to = imap.append(
        "INBOX",
        &[],
        &reply(
            "r1@x.example",
            "erin@customer.example",
            "alice@example.com",
            "Re: Offer",
            "In-Reply-To: <t1@x.example>\n",
        ),
    );
    let by_references = imap.append(
        "INBOX",
        &[],
        &reply(
            "r2@x.example",
            "erin@customer.example",
            "alice@example.com",
            "Re: Re: Offer",
            "References: <t0@x.example> <t1@x.example>\n",
        ),
    );
    // Alice forwards the thread to someone it never had: not correlated.
    imap.append(
        "INBOX",
        &[],
        &reply(
            "f1@x.example",
            "alice@example.com",
            "new@other.example",
            "Fwd: Offer",
            "In-Reply-To: <t1@x.example>\n",
        ),
    );
    // A reply that says what it regards itself keeps its own record.
    let own = imap.append(
        "INBOX",
        &["crm:ACC-1002"],
        &reply(
            "r3@x.example",
            "erin@customer.example",
            "alice@example.com",
            "Re: Offer (other deal)",
            "In-Reply-To: <t1@x.example>\n",
        ),
    );
    mail.env
        .ok(&["record", "add", "account", "--name", "Contoso"]);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(
        mail.subjects(),
        [
            "Offer",
            "Re: Offer",
            "Re: Offer (other deal)",
            "Re: Re: Offer"
        ],
        "{report:#}"
    );
    let regarding = |subject: &str| -> Value {
        mail.activities()
            .into_iter()
            .find(|a| a["subject"] == subject)
            .unwrap()["regarding"]["number"]
            .clone()
    };
    assert_eq!(regarding("Re: Offer"), "ACC-1001");
    assert_eq!(regarding("Re: Re: Offer"), "ACC-1001");
    assert_eq!(regarding("Re: Offer (other deal)"), "ACC-1002");
    assert_eq!(imap.flags("INBOX", by_in_reply_to), ["crm:ACC-1001"]);
    assert_eq!(imap.flags("INBOX", by_references), ["crm:ACC-1001"]);
    assert_eq!(imap.flags("INBOX", own), ["crm:ACC-1002"]);
}

#[test]
fn backfill_applies_the_policy_to_older_mail_on_purpose() {
    let mail = mail_with("all", &[]);
    let mut imap = mail.client("alice");
    // Dated 2026-11-29 10:00 UTC, there before the policy was first seen.
    let old = imap.append(
        "INBOX",
        &[],
        &message(
            "old@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "Older",
        ),
    );
    assert_eq!(mail.sync_ok()["alice"]["created"], 0);

    let backfill = |since: &str| -> Value {
        let run = mail
            .env
            .run(&["sync", "--json", "--mailbox", "alice", "--backfill", since]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        let value: Value = serde_json::from_str(&run.stdout).unwrap();
        value["mailboxes"][0].clone()
    };
    // Mail older than the backfill's start stays alone.
    assert_eq!(backfill("2026-11-30")["created"], 0);
    let report = backfill("2026-11-29");
    assert_eq!(report["created"], 1, "{report:#}");
    assert_eq!(mail.subjects(), ["Older"]);
    assert_eq!(imap.flags("INBOX", old), ["crm"]);

    let bad = mail.env.fails(&["sync", "--backfill", "last week"], 2);
    assert!(bad.contains("--backfill"), "{bad}");
}

/// Every message file of a Dovecot mailbox (name, which holds its flags, and content), and the
/// keyword list: what a client could see change.
fn mail_files(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name == "dovecot-keywords"
                || ["cur", "new"].contains(&dir.file_name().unwrap().to_str().unwrap())
            {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_dry_run_says_what_a_pass_would_do_and_changes_nothing() {
    let mail = mail_with("all", &[]);
    let mut imap = mail.client("alice");
    imap.append(
        "INBOX",
        &[],
        &message(
            "d1@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "Candidate",
        ),
    );
    imap.append(
        "INBOX",
        &["crm"],
        &message(
            "d2@x.example",
            "dana@adventure-works.com",
            "alice@example.com",
            "By hand",
        ),
    );
    imap.uids("INBOX");
    let store = mail.env.path("crm.sqlite3");
    let mailbox = mail.dovecot.root().join("mail").join("alice");
    let before = (std::fs::read(&store).unwrap(), mail_files(&mailbox));
    assert!(before.1.len() >= 2, "the message files: {:?}", before.1);

    let run = mail
        .env
        .run(&["sync", "--json", "--dry-run", "--backfill", "2026-11-01"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let planned: Vec<String> = report["mailboxes"][0]["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap().to_owned())
        .collect();
    let tracks: Vec<&String> = planned.iter().filter(|l| l.contains(": track")).collect();
    assert_eq!(tracks.len(), 2, "{planned:#?}");
    assert!(
        planned.iter().any(|l| l.contains("add [\"crm\"]")),
        "the automatic keyword: {planned:#?}"
    );
    assert!(mail.activities().is_empty());
    let after = (std::fs::read(&store).unwrap(), mail_files(&mailbox));
    assert!(before.0 == after.0, "the store changed");
    assert_eq!(before.1, after.1, "the mailbox changed");

    // The same pass for real does what it said.
    let done = &mail.env.json(&["sync", "--backfill", "2026-11-01"])["mailboxes"][0];
    assert_eq!(done["created"], 2, "{done:#}");
    assert_eq!(mail.subjects(), ["By hand", "Candidate"]);
}

#[test]
fn the_loop_guard_stops_a_storm_of_one_sender_and_subject() {
    let mail = mail_with("all", &[]);
    mail.sync_ok();
    let mut imap = mail.client("alice");
    for n in 0..13 {
        imap.append(
            "INBOX",
            &[],
            &message(
                &format!("storm{n}@x.example"),
                "monitor@elsewhere.example",
                "alice@example.com",
                "Disk almost full",
            ),
        );
    }
    imap.append(
        "INBOX",
        &[],
        &message(
            "other@x.example",
            "monitor@elsewhere.example",
            "alice@example.com",
            "Weekly report",
        ),
    );
    let report = &mail.sync_ok()["alice"];
    // Ten of one sender and subject in an hour, then no more; another subject is not held.
    assert_eq!(report["created"], 11, "{report:#}");
    let again = &mail.sync_ok()["alice"];
    assert_eq!(again["created"], 0, "{again:#}");
}

#[test]
fn never_add_keeps_mail_out_and_purge_removes_only_what_automatic_tracking_made() {
    let mail = mail_with("all", &[]);
    mail.sync_ok();
    let mut imap = mail.client("alice");
    let auto = imap.append(
        "INBOX",
        &[],
        &message(
            "n1@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "Auto",
        ),
    );
    let by_hand = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "n2@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "By hand",
        ),
    );
    mail.sync_ok();
    assert_eq!(mail.subjects(), ["Auto", "By hand"]);

    let out = mail
        .env
        .ok(&["never", "add", "@Elsewhere.example", "--purge"]);
    assert!(out.contains("deleted 1 CRM copies"), "{out}");
    assert_eq!(mail.subjects(), ["By hand"]);
    let listed = mail.env.json(&["never", "list"]);
    assert_eq!(listed[0]["entry"], "@elsewhere.example", "{listed:#}");
    assert_eq!(listed[0]["source"], "store");

    // New mail from that domain is not taken; the purged message loses its keyword and is not
    // taken again; the one the person tracked stays.
    imap.append(
        "INBOX",
        &[],
        &message(
            "n3@x.example",
            "sam@elsewhere.example",
            "alice@example.com",
            "Later",
        ),
    );
    mail.sync_ok();
    mail.sync_ok();
    assert_eq!(mail.subjects(), ["By hand"]);
    assert!(imap.flags("INBOX", auto).is_empty());
    assert_eq!(imap.flags("INBOX", by_hand), ["crm"]);

    mail.env.ok(&["never", "remove", "@elsewhere.example"]);
    assert!(
        mail.env
            .json(&["never", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let bad = mail.env.fails(&["never", "add", "nobody"], 2);
    assert!(bad.contains("neither an address nor a domain"), "{bad}");
}

#[test]
fn item_show_explains_what_automatic_tracking_does_with_a_message() {
    let mail = mail_with("crm-records", &["@family.example"]);
    let mut imap = mail.client("alice");
    let before = imap.append(
        "INBOX",
        &[],
        &message(
            "e0@x.example",
            "dana@adventure-works.com",
            "alice@example.com",
            "Before",
        ),
    );
    mail.sync_ok();
    let mut append = |id: &str, from: &str, headers: &str| {
        imap.append(
            "INBOX",
            &[],
            &with_headers(headers, &message(id, from, "alice@example.com", id)),
        )
    };
    let list = append(
        "e1@x.example",
        "dana@adventure-works.com",
        "List-Id: <l.example>\n",
    );
    let family = append("e2@x.example", "mum@family.example", "");
    let stranger = append("e3@x.example", "sam@elsewhere.example", "");
    let contact = append("e4@x.example", "dana@adventure-works.com", "");
    let notes = |uid: u32| -> String {
        let pane = mail.env.json(&[
            "item",
            "show",
            "--mailbox",
            "alice",
            "--uid",
            &format!("INBOX:{uid}"),
        ]);
        pane["notes"].to_string()
    };
    assert!(
        notes(before).contains("arrived before the policy was switched on"),
        "{}",
        notes(before)
    );
    assert!(notes(list).contains("mailing-list mail"), "{}", notes(list));
    assert!(
        notes(family).contains("@family.example is on the never-track list"),
        "{}",
        notes(family)
    );
    assert!(
        notes(stranger).contains("no rule of the policy applies"),
        "{}",
        notes(stranger)
    );
    let taken = notes(contact);
    assert!(
        taken.contains("takes it on the next pass: dana@adventure-works.com is a CRM contact"),
        "{taken}"
    );
}

#[test]
fn the_person_sees_synced_and_failed_on_the_message() {
    let mail = mail_with("none", &[]);
    let mut imap = mail.client("alice");
    let good = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "k1@x.example",
            "dana@adventure-works.com",
            "alice@example.com",
            "Good",
        ),
    );
    // Tracked, but no header crmsync can read (neither From nor Message-ID).
    let bad = imap.append("INBOX", &["crm"], "Subject: nothing else\n\nbody\n");
    let report = &mail.sync()["alice"];
    assert_eq!(report["created"], 1, "{report:#}");
    let sorted = |imap: &mut support::dovecot::ImapClient, uid: u32| {
        let mut flags = imap.all_flags("INBOX", uid);
        flags.sort();
        flags
    };
    assert_eq!(sorted(&mut imap, good), ["crm", "crm-synced"]);
    assert_eq!(sorted(&mut imap, bad), ["crm", "crm-failed"]);
    // The failed-items list says which message and why, and counts the passes it failed in.
    let failed = |mail: &Mail| mail.env.json(&["items", "--failed", "--mailbox", "alice"]);
    let listed = failed(&mail);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["item"], format!("INBOX:{bad}"));
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("neither a From address nor a Message-ID"),
        "{listed:#}"
    );
    assert_eq!(listed[0]["attempts"], 1);
    let table = mail.env.ok(&["items", "--failed"]);
    assert!(table.contains(&format!("INBOX:{bad}")), "{table}");
    // The tracked items: the good one.
    let tracked = mail.env.json(&["items"]);
    assert_eq!(tracked.as_array().unwrap().len(), 1, "{tracked:#}");
    assert_eq!(tracked[0]["item"], format!("INBOX:{good}"));
    assert_eq!(tracked[0]["kind"], "email");

    // A mark lost (a kill before the end of the pass that wrote it, a person removing it)
    // comes back: the marks follow the state.
    imap.store("INBOX", good, "-FLAGS (crm-synced)");
    mail.sync();
    assert_eq!(sorted(&mut imap, good), ["crm", "crm-synced"]);
    assert_eq!(failed(&mail)[0]["attempts"], 2, "still failing, once more");

    // Untracked: the sync state goes with the keyword.
    imap.store("INBOX", good, "-FLAGS (crm)");
    mail.sync();
    assert!(imap.all_flags("INBOX", good).is_empty());
    // Untracked too: nothing is failing any more.
    imap.store("INBOX", bad, "-FLAGS (crm)");
    mail.sync();
    assert!(imap.all_flags("INBOX", bad).is_empty());
    assert_eq!(failed(&mail), serde_json::json!([]), "no longer failing");
}

/// The UIDs of a `UID FETCH` command's set (`1:3,7`).
fn uid_set(set: &str) -> Vec<u32> {
    set.split(',')
        .flat_map(|range| match range.split_once(':') {
            Some((from, to)) => {
                let (from, to): (u32, u32) = (from.parse().unwrap(), to.parse().unwrap());
                (from.min(to)..=from.max(to)).collect::<Vec<_>>()
            }
            None => vec![range.parse().unwrap()],
        })
        .collect()
}

/// The server's own record of the session (Dovecot's rawlog), not crmsync's counters: under
/// every policy, the only messages whose body (`BODY[]`, `BODY.PEEK[]`, `RFC822`) crmsync
/// asks for are the ones it tracks; everything else is read as flags and headers only.
#[test]
fn untracked_bodies_are_never_fetched_under_any_policy() {
    for (policy, expected) in [
        ("none", vec!["Keyword"]),
        ("replies", vec!["Keyword", "Re: Keyword"]),
        ("crm-records", vec!["From Dana", "Keyword", "Re: Keyword"]),
        (
            "all",
            vec!["From Dana", "Keyword", "Re: Keyword", "Stranger"],
        ),
    ] {
        let mail = mail_with(policy, &["private@doctor.example"]);
        mail.dovecot.record_traffic("alice");
        let mut imap = mail.client("alice");
        // Older than the policy: never taken automatically.
        imap.append(
            "INBOX",
            &[],
            &message(
                "old@x.example",
                "dana@adventure-works.com",
                "alice@example.com",
                "Old",
            ),
        );
        mail.sync_ok();
        let mail_from = |id: &str, from: &str, subject: &str, extra: &str| {
            with_headers(extra, &message(id, from, "alice@example.com", subject))
        };
        imap.append(
            "INBOX",
            &["crm"],
            &mail_from("k@x.example", "erin@customer.example", "Keyword", ""),
        );
        imap.append(
            "INBOX",
            &[],
            &mail_from("d@x.example", "dana@adventure-works.com", "From Dana", ""),
        );
        imap.append(
            "INBOX",
            &[],
            &mail_from(
                "r@x.example",
                "erin@customer.example",
                "Re: Keyword",
                "In-Reply-To: <k@x.example>\n",
            ),
        );
        imap.append(
            "INBOX",
            &[],
            &mail_from(
                "n@x.example",
                "news@list.example",
                "Newsletter",
                "List-Id: <news.list.example>\n",
            ),
        );
        imap.append(
            "INBOX",
            &[],
            &mail_from("p@x.example", "private@doctor.example", "Private", ""),
        );
        imap.append(
            "INBOX",
            &[],
            &mail_from("s@x.example", "stranger@else.example", "Stranger", ""),
        );
        // Two passes: the first takes (keywords written, bodies fetched), the second sees
        // the keywords it wrote and settles.
        mail.sync_ok();
        mail.sync_ok();
        assert_eq!(mail.subjects(), expected, "{policy}");

        let tracked: Vec<u32> = mail
            .env
            .json(&["items"])
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let place = item["item"].as_str().unwrap();
                place.strip_prefix("INBOX:").unwrap().parse().unwrap()
            })
            .collect();
        let mut fetched: Vec<u32> = Vec::new();
        for command in mail.dovecot.commands_of("alice") {
            let upper = command.to_ascii_uppercase();
            let whole = upper.contains("BODY[]")
                || upper.contains("BODY.PEEK[]")
                || upper.contains("RFC822 ")
                || upper.contains("RFC822)");
            if let (true, Some((_, rest))) = (whole, upper.split_once("UID FETCH ")) {
                fetched.extend(uid_set(rest.split_whitespace().next().unwrap()));
            }
        }
        assert!(
            !fetched.is_empty(),
            "{policy}: the rawlog shows the tracked bodies being fetched"
        );
        fetched.sort();
        fetched.dedup();
        let mut tracked_sorted = tracked.clone();
        tracked_sorted.sort();
        assert_eq!(
            fetched, tracked_sorted,
            "{policy}: bodies fetched (server side) = the tracked messages"
        );
    }
}

/// Every kind of automated mail is left alone by `all`, and `item show` says which kind;
/// the same sender writing in person is taken.
#[test]
fn no_kind_of_automated_mail_is_taken() {
    let mail = mail_with("all", &[]);
    let mut imap = mail.client("alice");
    mail.sync_ok();
    let from = "robot@vendor.example";
    // Each kind, its header, and what `item show` says of it.
    let kinds: [(&str, &str, &str); 8] = [
        (
            "auto-generated",
            "Auto-Submitted: auto-generated\n",
            "automated mail (Auto-Submitted: auto-generated)",
        ),
        (
            "list-id",
            "List-Id: <news.vendor.example>\n",
            "mailing-list mail",
        ),
        (
            "list-unsubscribe",
            "List-Unsubscribe: <mailto:leave@vendor.example>\n",
            "mailing-list mail",
        ),
        ("bulk", "Precedence: bulk\n", "bulk mail (Precedence: bulk)"),
        ("list", "Precedence: list\n", "bulk mail (Precedence: list)"),
        ("junk", "Precedence: junk\n", "bulk mail (Precedence: junk)"),
        (
            "null-return-path",
            "Return-Path: <>\n",
            "a bounce or delivery report",
        ),
        (
            "report",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n",
            "a bounce or delivery report",
        ),
    ];
    let mut automated = Vec::new();
    for (kind, header, said) in kinds {
        let text = message(
            &format!("{kind}@x.example"),
            from,
            "alice@example.com",
            kind,
        );
        // A report's own Content-Type replaces the plain one.
        let text = if kind == "report" {
            text.replace("Content-Type: text/plain; charset=utf-8\n", "")
                .replace(
                    "\n\nBody of report.\n",
                    "\n\n--b\nContent-Type: text/plain\n\nUndeliverable.\n--b--\n",
                )
        } else {
            text
        };
        automated.push((
            kind,
            said,
            imap.append("INBOX", &[], &with_headers(header, &text)),
        ));
    }
    let person = imap.append(
        "INBOX",
        &[],
        &message("person@x.example", from, "alice@example.com", "In person"),
    );
    mail.sync_ok();
    assert_eq!(mail.subjects(), ["In person"]);
    assert_eq!(imap.flags("INBOX", person), ["crm"]);
    for (kind, said, uid) in automated {
        assert!(imap.flags("INBOX", uid).is_empty(), "{kind}");
        let pane = mail.env.json(&[
            "item",
            "show",
            "--mailbox",
            "alice",
            "--uid",
            &format!("INBOX:{uid}"),
        ]);
        let notes = pane["notes"].to_string();
        assert!(
            notes.contains(&format!("does not take it: {said}")),
            "{kind}: {notes}"
        );
    }
}

/// Mail crmsync sends for a CRM email activity carries the activity's tracking token as its
/// Message-ID (`core::token`, signed with the installation's key from the store). A reply
/// names it in In-Reply-To only (no References), and follows that activity; a forged token,
/// or a token in a reply that shares no one with the activity, does not.
#[test]
fn a_reply_to_a_tracking_token_follows_its_activity() {
    use crmsync_core::model::ActivityId;
    use crmsync_core::token::{self, TokenKey};
    let mail = mail_with("replies", &[]);
    mail.sync_ok();
    let sent = mail.env.json(&[
        "activity",
        "add",
        "email",
        "--owner",
        "alice@example.com",
        "--subject",
        "Quote",
        "--regarding",
        "ACC-1001",
        "--to",
        "dana@adventure-works.com",
    ]);
    let activity = ActivityId(uuid::Uuid::parse_str(sent["id"].as_str().unwrap()).unwrap());
    let store = rusqlite::Connection::open(mail.env.path("crm.sqlite3")).unwrap();
    let key: Vec<u8> = store
        .query_row(
            "SELECT value FROM installation WHERE name = 'tracking_key'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let signed = token::message_id(&TokenKey::new(key).unwrap(), activity, "example.com");
    let forged = token::message_id(
        &TokenKey::new(vec![7; 32]).unwrap(),
        activity,
        "example.com",
    );

    let mut imap = mail.client("alice");
    let reply = |id: &str, from: &str, subject: &str, parent: &str| {
        with_headers(
            &format!("In-Reply-To: <{parent}>\n"),
            &message(id, from, "alice@example.com", subject),
        )
    };
    let taken = imap.append(
        "INBOX",
        &[],
        &reply(
            "r1@x.example",
            "dana@adventure-works.com",
            "Re: Quote",
            &signed,
        ),
    );
    let fake = imap.append(
        "INBOX",
        &[],
        &reply(
            "r2@x.example",
            "dana@adventure-works.com",
            "Re: Quote (2)",
            &forged,
        ),
    );
    let stranger = imap.append(
        "INBOX",
        &[],
        &reply("r3@x.example", "eve@else.example", "Re: Quote (3)", &signed),
    );
    mail.sync_ok();
    assert_eq!(mail.subjects(), ["Quote", "Re: Quote"]);
    assert_eq!(
        imap.flags("INBOX", taken),
        ["crm:ACC-1001"],
        "the regarding follows"
    );
    assert!(imap.flags("INBOX", fake).is_empty(), "a forged token");
    assert!(imap.flags("INBOX", stranger).is_empty(), "shares no one");
    let pane = mail.env.json(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--uid",
        &format!("INBOX:{fake}"),
    ]);
    assert!(
        pane["notes"]
            .to_string()
            .contains("no rule of the policy applies"),
        "{pane:#}"
    );
}
