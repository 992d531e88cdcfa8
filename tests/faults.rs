//! Faults injected the way they happen: connections cut or stalled at a chosen IMAP command
//! (through `support::proxy`), the process killed with SIGKILL, logging turned up to trace.
//! Each test here is the regression test of a fault that once lost data or leaked a secret.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::daemon::{Daemon, wait_until};
use support::mail::{Mail, message};
use support::proxy::{Fault, FaultProxy};

fn activity(mail: &Mail, subject_prefix: &str) -> serde_json::Value {
    let activities = mail.activities();
    let found: Vec<&serde_json::Value> = activities
        .iter()
        .filter(|a| a["subject"].as_str().unwrap().starts_with(subject_prefix))
        .collect();
    assert_eq!(found.len(), 1, "{activities:#?}");
    found[0].clone()
}

/// One message tracked with `crm:ACC-1001` in a mailbox reached through a fault proxy.
fn regarded_message() -> (Mail, FaultProxy, u32, String) {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    for name in ["Adventure Works", "Contoso", "Fabrikam"] {
        mail.env.ok(&["record", "add", "account", "--name", name]);
    }
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let uid = mail.client("alice").append(
        "INBOX",
        &["crm:ACC-1001"],
        &message(
            "r@x.example",
            "dana@x.example",
            "alice@example.com",
            "Offer",
        ),
    );
    mail.sync_ok();
    let id = activity(&mail, "Offer")["id"].as_str().unwrap().to_owned();
    (mail, proxy, uid, id)
}

#[test]
fn a_regarding_rewrite_cut_between_its_two_stores_keeps_the_message_tracked() {
    let (mail, proxy, uid, id) = regarded_message();
    mail.env.ok(&["activity", "regarding", &id, "ACC-1002"]);
    mail.env
        .ok(&["activity", "set", &id, "subject=Offer (revised in the CRM)"]);

    // The connection drops when crmsync sends the second STORE, the one that removes the old
    // keyword: the new keyword is on the message, the old one still too.
    proxy.set(Fault::CutAt("-FLAGS".into()));
    let cut = &mail.sync()["alice"];
    assert_eq!(
        proxy.hits(),
        1,
        "the fault fell on the second STORE: {cut:#}"
    );
    assert_eq!(cut["state"], "error", "{cut:#}");
    let mut imap = mail.client("alice");
    let mut flags = imap.flags("INBOX", uid);
    flags.sort();
    assert_eq!(flags, ["crm:ACC-1001", "crm:ACC-1002"]);

    // The next pass recognises the half-done rewrite: nothing is untracked or deleted, the
    // CRM's regarding and its edit stay, and the old keyword goes.
    proxy.set(Fault::None);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["deleted"], 0, "{report:#}");
    assert_eq!(imap.flags("INBOX", uid), ["crm:ACC-1002"]);
    let offer = activity(&mail, "Offer");
    assert_eq!(offer["id"], id.as_str());
    assert_eq!(offer["subject"], "Offer (revised in the CRM)");
    assert_eq!(offer["regarding"]["number"], "ACC-1002");
    assert!(mail.env.json(&["conflicts"]).as_array().unwrap().is_empty());

    let quiet = &mail.sync_ok()["alice"];
    assert_eq!(quiet["keywords_written"], 0, "{quiet:#}");
    assert_eq!(quiet["updated"], 0, "{quiet:#}");
}

#[derive(Clone, Copy)]
enum Kill<'a> {
    /// At the proxy's stall of the `n`th command holding a fragment.
    AtStall(&'a FaultProxy, &'a str, u64),
    After(Duration),
}

/// `crmsync sync` started and killed with SIGKILL: while it waits at a stalled command (the
/// second `UID STORE`, between the two steps of a keyword rewrite; a body fetch after a batch
/// was committed), or after a delay that lands anywhere in the pass. Returns whether the kill
/// fell during the pass (not after its end).
fn killed_sync(mail: &Mail, kill: Kill<'_>) -> bool {
    let mut child = Command::new(support::binary())
        .arg("-c")
        .arg(&mail.env.config)
        .args(["sync", "--json"])
        .env_remove("CRMSYNC_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    match kill {
        Kill::AtStall(proxy, fragment, nth) => {
            let hits = proxy.hits();
            proxy.set(Fault::StallAtNth(fragment.into(), nth));
            // A pass with fewer such commands (a single STORE: nothing to rewrite in two
            // steps) ends on its own.
            wait_until("the stalled command", Duration::from_secs(20), || {
                (proxy.hits() > hits || child.try_wait().unwrap().is_some()).then_some(())
            });
        }
        Kill::After(delay) => std::thread::sleep(delay),
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    if let Kill::AtStall(proxy, ..) = kill {
        proxy.set(Fault::None);
    }
    status.signal() == Some(9)
}

#[test]
fn thirty_kills_during_two_way_keyword_rewrites_lose_nothing() {
    let (mail, proxy, uid, id) = regarded_message();
    let numbers = ["ACC-1002", "ACC-1003", "ACC-1001"];
    let mut imap = mail.client("alice");
    let mut expected_subject = String::from("Offer");
    let (mut kills, mut kills_between_stores) = (0, 0);
    for round in 0..90u64 {
        if kills >= 30 && kills_between_stores >= 10 {
            break;
        }
        // A CRM edit in every round, and in every third round a change in the mail client.
        let regarding = numbers[round as usize % numbers.len()];
        if round % 3 == 2 {
            for flag in imap.flags("INBOX", uid) {
                imap.store("INBOX", uid, &format!("-FLAGS ({flag})"));
            }
            imap.store("INBOX", uid, &format!("+FLAGS (crm:{regarding})"));
        } else {
            mail.env.ok(&["activity", "regarding", &id, regarding]);
        }
        expected_subject = format!("Offer, round {round}");
        mail.env.ok(&[
            "activity",
            "set",
            &id,
            &format!("subject={expected_subject}"),
        ]);
        let stall = round % 3 != 2 && kills_between_stores < 10;
        let kill = if stall {
            Kill::AtStall(&proxy, "UID STORE", 2)
        } else {
            Kill::After(Duration::from_millis(10 * (round % 11)))
        };
        let hits = proxy.hits();
        if killed_sync(&mail, kill) {
            kills += 1;
            if stall && proxy.hits() > hits {
                kills_between_stores += 1;
            }
        }

        // After every kill the activity is still there, with the CRM's edit, and the message
        // is still tracked.
        let offer = activity(&mail, "Offer");
        assert_eq!(offer["id"], id.as_str(), "round {round}");
        assert_eq!(offer["subject"], expected_subject.as_str(), "round {round}");
        let flags = imap.flags("INBOX", uid);
        assert!(
            flags.iter().any(|f| f.starts_with("crm")),
            "round {round}: the message lost its tracking keyword: {flags:?}"
        );
    }
    assert!(kills >= 30, "{kills} kills");
    assert!(
        kills_between_stores >= 10,
        "{kills_between_stores} kills between the STOREs"
    );

    // Once a pass runs to its end, both sides agree on one regarding record, carried by one
    // keyword, and the CRM's last edit is there.
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["deleted"], 0, "{report:#}");
    let offer = activity(&mail, "Offer");
    assert_eq!(offer["id"], id.as_str());
    assert_eq!(offer["subject"], expected_subject.as_str());
    let regarding = offer["regarding"]["number"].as_str().unwrap().to_owned();
    assert!(numbers.contains(&regarding.as_str()), "{offer:#}");
    assert_eq!(imap.flags("INBOX", uid), [format!("crm:{regarding}")]);
    assert_eq!(mail.activities().len(), 1, "no duplicate");
    let quiet = &mail.sync_ok()["alice"];
    assert_eq!(quiet["keywords_written"], 0, "{quiet:#}");
}

/// A first import killed with SIGKILL again and again while tracked mail keeps arriving: at a
/// random moment (start, scan, fetches, commits, the synced marks), and at the fourth body
/// fetch, when the first batch of 200 activities is committed and the second is not. Each run
/// takes up where the last one was killed; no message is imported twice and none is lost.
#[test]
fn thirty_kills_during_a_batched_first_import_lose_and_duplicate_nothing() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let mut imap = mail.client("alice");
    let mut appended = 0;
    let mut append = |count: usize| {
        for _ in 0..count {
            let subject = format!("Import {appended}");
            let text = message(
                &format!("import{appended}@x.example"),
                "dana@x.example",
                "alice@example.com",
                &subject,
            );
            imap.append("INBOX", &["crm"], &text);
            appended += 1;
        }
        appended
    };
    let stored = |mail: &Mail| -> usize {
        let subjects = mail.subjects();
        let mut distinct = subjects.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), subjects.len(), "a message imported twice");
        subjects.len()
    };
    // How long an import of two batches takes, whole: the random kills fall in that time.
    append(400);
    let started = std::time::Instant::now();
    mail.sync_ok();
    let whole = started.elapsed().as_millis() as u64;

    let (mut kills, mut between_batches) = (0, 0);
    // A small linear congruential generator: the same delays every time the test runs.
    let mut seed: u64 = 17;
    for round in 0..60 {
        if kills >= 30 && between_batches >= 10 {
            break;
        }
        let before = stored(&mail);
        if round % 3 == 0 {
            // Enough waiting for four body fetches of a hundred.
            let appended = append(310);
            assert!(
                killed_sync(&mail, Kill::AtStall(&proxy, "BODY.PEEK[]", 4)),
                "round {round}: the import ended before its fourth body fetch"
            );
            let after = stored(&mail);
            assert!(
                after > before && after < appended,
                "round {round}: {before} before, {after} after, of {appended}"
            );
            between_batches += 1;
            kills += 1;
        } else {
            append(40);
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let delay = Duration::from_millis(10 + (seed >> 33) % whole);
            kills += u32::from(killed_sync(&mail, Kill::After(delay)));
            stored(&mail);
        }
    }
    assert!(kills >= 30, "{kills} kills");
    assert!(
        between_batches >= 10,
        "{between_batches} kills between batches"
    );

    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["pending"], 0, "{report:#}");
    let mut expected: Vec<String> = (0..appended).map(|n| format!("Import {n}")).collect();
    expected.sort();
    assert_eq!(mail.subjects(), expected, "every message once, none lost");
    let quiet = &mail.sync_ok()["alice"];
    assert_eq!(quiet["created"], 0, "{quiet:#}");
    assert_eq!(quiet["linked"], 0, "{quiet:#}");
}

#[test]
fn trace_logging_never_shows_a_password_or_a_body() {
    // A password and a body that cannot turn up in a log line by chance.
    let password = "Pa55-word-xyzzy-4711";
    let mail = Mail::with_password(&[("alice", "alice@example.com")], password);
    let body_marker = "Quarterly-figures-SECRET-7c1f";
    let text = message(
        "t@x.example",
        "dana@x.example",
        "alice@example.com",
        "Trace",
    )
    .replace("Body of Trace.", body_marker);
    let mut imap = mail.client("alice");
    let first = imap.append("INBOX", &["crm"], &text);

    // Trace everything, and ask for the IMAP library's protocol lines by name too.
    for (round, filter) in ["trace", "trace,async_imap=trace,imap_proto=trace"]
        .into_iter()
        .enumerate()
    {
        if round > 0 {
            let again = text.replace("t@x.example", "t2@x.example");
            imap.append("INBOX", &["crm"], &again);
        }
        let mut daemon = Daemon::start_logging(&mail.env, filter);
        daemon.wait_for_state("alice", "idle");
        wait_until("the message to be tracked", Duration::from_secs(20), || {
            (mail.activities().len() == round + 1).then_some(())
        });
        // The second pass of a worker reuses its connection: one more pass through IDLE.
        imap.store("INBOX", first, "+FLAGS (seen-by-test)");
        std::thread::sleep(Duration::from_millis(1500));
        let status = daemon.terminate(Duration::from_secs(20));
        assert!(status.success());
        let log = std::fs::read_to_string(mail.env.path("daemon.log")).unwrap();
        // Trace logging is on: crmsync's own lines at the lowest levels are there.
        assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
        assert!(
            !log.contains(password),
            "RUST_LOG={filter}: the password is logged"
        );
        assert!(
            !log.contains(body_marker),
            "RUST_LOG={filter}: the body is logged"
        );
        for protocol in ["LOGIN", "BODY.PEEK", "UID FETCH"] {
            assert!(
                !log.contains(protocol),
                "RUST_LOG={filter}: an IMAP protocol line is logged ({protocol})"
            );
        }
    }
    // The messages were tracked with their bodies: the marker was there to be logged.
    let activities = mail.activities();
    assert!(
        activities[0]["description"]
            .as_str()
            .unwrap()
            .contains(body_marker)
    );
}

/// SIGTERM while a pass waits on a server that stopped answering: the daemon exits, cleanly,
/// well inside the 30 s systemd gives it (`TimeoutStopSec` of the unit), instead of waiting for
/// the 60 s operation timeout. A bound on correctness, not a speed figure.
#[test]
fn sigterm_during_a_pass_stalled_on_the_server_exits_in_time() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    // The next pass stalls when it fetches the body of a newly tracked message.
    proxy.set(Fault::StallAt("BODY.PEEK[]".into()));
    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "s@x.example",
            "dana@x.example",
            "alice@example.com",
            "Stalled",
        ),
    );
    wait_until("the pass to stall", Duration::from_secs(20), || {
        (proxy.hits() > 0).then_some(())
    });
    let started = std::time::Instant::now();
    let status = daemon.terminate(Duration::from_secs(30));
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took < Duration::from_secs(25),
        "SIGTERM took {took:?}: systemd would have killed the daemon"
    );
    // Nothing was half done: the next pass, with the server answering, tracks the message.
    proxy.set(Fault::None);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 1, "{report:#}");
}

/// The daemon's log written to a file beside its config, at trace level: the config watcher
/// sees that directory, and nothing it does about the log file's own changes may be logged
/// (each such line changed the file again: tens of megabytes a second).
#[test]
fn a_trace_log_beside_the_config_does_not_feed_itself() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    assert_eq!(
        mail.env.path("daemon.log").parent(),
        mail.env.config.parent(),
        "the log is in the config's directory"
    );
    let mut daemon = Daemon::start_logging(&mail.env, "trace");
    daemon.wait_for_state("alice", "idle");
    std::thread::sleep(Duration::from_millis(500));
    let before = std::fs::metadata(&daemon.log).unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    let grown = std::fs::metadata(&daemon.log).unwrap().len() - before;
    let log = daemon.log_text();
    assert!(
        grown < 256 * 1024,
        "an idle daemon logged {grown} bytes in 3 s:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
    // Still a trace log: the config watcher sees a real change of the config and says so.
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    mail.env.write_config(&format!("{config}\n# touched\n"));
    wait_until("the reload to be logged", Duration::from_secs(10), || {
        daemon
            .log_text()
            .contains("the config file changed")
            .then_some(())
    });
}

/// The CRM store held locked by another program for longer than crmsync waits for it: the
/// pass fails with the store's own reason in the log (not only, briefly, in the status file),
/// and the message is tracked once the lock is gone.
#[test]
fn a_store_locked_by_another_program_is_logged_and_then_caught_up() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    // Another program takes the store's write lock and keeps it for 14 s (crmsync waits 10 s).
    let mut locker = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(14)\n\
             c.execute('ROLLBACK')\n",
        )
        .arg(mail.env.path("crm.sqlite3"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "l@x.example",
            "dana@x.example",
            "alice@example.com",
            "Locked out",
        ),
    );
    let failed = daemon.wait_for_state("alice", "error");
    let error = failed["last_error"].as_str().unwrap().to_owned();
    assert!(error.contains("database is locked"), "{failed:#}");
    let log = daemon.log_text();
    let logged = log
        .lines()
        .find(|l| l.contains("database is locked") && l.contains("alice"))
        .unwrap_or_else(|| panic!("the store error is not logged:\n{log}"));
    assert!(logged.contains("ERROR"), "{logged}");

    assert!(locker.wait().unwrap().success());
    wait_until("the message to be tracked", Duration::from_secs(30), || {
        (mail.activities().len() == 1).then_some(())
    });
    daemon.wait_for_state("alice", "idle");
}

/// What a server that sends garbage, or answers NO and BAD, gets into the report, the log and
/// the status file: one readable line, capped, in words (no debug dumps, no bytes as arrays of
/// numbers, no `IMAP: IMAP:`, no `code: None, info: Some(..)`).
#[test]
fn errors_from_a_server_that_sends_garbage_are_one_readable_line() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let mut binary = b"* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[HEADER] \x00\x01\xff\xfe[[[".to_vec();
    binary.extend(std::iter::repeat_n(0x9c_u8, 20_000));
    binary.extend_from_slice(b"\r\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("SELECT", binary, "not IMAP"),
        (
            "SELECT",
            b"{tag} BAD Unknown command, says the server\r\n".to_vec(),
            "the server answered BAD: Unknown command, says the server",
        ),
        (
            "SELECT",
            b"{tag} NO [SERVERBUG] Internal error occurred\r\n".to_vec(),
            "Internal error occurred",
        ),
        (
            "SELECT",
            format!("* OK {}\r\n* 1 GARBAGE\r\n", "x".repeat(30_000)).into_bytes(),
            "not IMAP",
        ),
    ];
    for (at, answer, expected) in cases {
        proxy.set(Fault::AnswerAt(at.into(), answer));
        let report = &mail.sync()["alice"];
        assert_eq!(report["state"], "error", "{report:#}");
        let errors = report["errors"].as_array().unwrap();
        assert!(!errors.is_empty(), "{report:#}");
        for error in errors {
            let error = error.as_str().unwrap();
            assert!(error.contains(expected), "{expected}: {error}");
            assert!(
                error.chars().count() <= 401,
                "{} chars: {error}",
                error.len()
            );
            assert!(!error.contains('\n') && !error.contains('\r'), "{error}");
            for dump in [
                "IMAP: IMAP:",
                "code: None",
                "info: Some",
                "[0, 1, 255",
                "156, 156",
            ] {
                assert!(!error.contains(dump), "{dump}: {error}");
            }
        }
    }
    proxy.set(Fault::None);
    mail.sync_ok();
}

/// A response line that never ends: cut off at the response limit with a clear error, long
/// before the 60 s operation timeout, instead of a core spent parsing it again and again.
#[test]
fn an_endless_response_line_is_cut_off_with_a_clear_error() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    proxy.set(Fault::EndlessAt("SELECT".into()));
    let started = std::time::Instant::now();
    let report = &mail.sync()["alice"];
    let took = started.elapsed();
    assert_eq!(report["state"], "error", "{report:#}");
    let error = report["errors"][0].as_str().unwrap();
    assert!(
        error.contains("the server sent a response longer than 8 MiB"),
        "{error}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    proxy.set(Fault::None);
    mail.sync_ok();
}

/// A tracked message larger than `max_message_size`: only its first part is fetched, it is
/// kept with its text and without its attachments, with a note saying so; a smaller one keeps
/// its attachment.
#[test]
fn a_message_over_max_message_size_is_kept_without_its_attachments() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    mail.env.write_config(&config.replace(
        "folders = [\"INBOX\", \"Archive\"]\n",
        "folders = [\"INBOX\", \"Archive\"]\nmax_message_size = \"1 MB\"\n",
    ));
    let with_attachment = |id: &str, subject: &str, base64_lines: usize| {
        let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\n";
        format!(
            "Message-ID: <{id}>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\nFrom: dana@x.example\n\
             To: alice@example.com\nSubject: {subject}\nMIME-Version: 1.0\n\
             Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\n\
             The plans are attached.\n--b1\nContent-Type: application/octet-stream; name=\"plans.bin\"\n\
             Content-Disposition: attachment; filename=\"plans.bin\"\nContent-Transfer-Encoding: base64\n\n\
             {}--b1--\n",
            line.repeat(base64_lines)
        )
    };
    let mut imap = mail.client("alice");
    // About 3 MB and about 40 KB.
    imap.append(
        "INBOX",
        &["crm"],
        &with_attachment("big@x.example", "Big plans", 40_000),
    );
    imap.append(
        "INBOX",
        &["crm"],
        &with_attachment("small@x.example", "Small plans", 500),
    );
    let report = &mail.sync()["alice"];
    assert_eq!(report["created"], 2, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    let warning = report["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("INBOX:1") && warning.contains("more than max_message_size (1 MB)"),
        "{warning}"
    );
    let big = activity(&mail, "Big plans");
    let text = big["description"].as_str().unwrap();
    assert!(text.starts_with("The plans are attached."), "{text}");
    assert!(
        text.contains("its attachments were not copied to the CRM"),
        "{text}"
    );
    assert_eq!(big["attachments"], serde_json::json!([]), "{big:#}");
    let small = activity(&mail, "Small plans");
    assert_eq!(small["attachments"][0]["name"], "plans.bin", "{small:#}");
}

/// The connection lost in the middle of a pass with many messages to track: the pass stops
/// at the first message it could not fetch and reports the mailbox in the error state, instead
/// of trying every remaining message on a dead connection and calling the mailbox idle.
#[test]
fn a_connection_lost_mid_pass_ends_the_pass_in_the_error_state() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let mut imap = mail.client("alice");
    for n in 0..25 {
        imap.append(
            "INBOX",
            &["crm"],
            &message(
                &format!("cut{n}@x.example"),
                "dana@x.example",
                "alice@example.com",
                &format!("Cut {n}"),
            ),
        );
    }
    proxy.set(Fault::CutAt("BODY.PEEK[]".into()));
    let report = &mail.sync()["alice"];
    assert_eq!(report["state"], "error", "{report:#}");
    assert!(report["failed"].as_u64().unwrap() <= 1, "{report:#}");
    assert!(
        report["errors"].as_array().unwrap().len() <= 2,
        "{report:#}"
    );
    assert_eq!(proxy.hits(), 1, "one body fetch, then the pass stopped");
    assert!(mail.activities().is_empty());
    proxy.set(Fault::None);
    assert_eq!(mail.sync_ok()["alice"]["created"], 25);
}

/// A tracked message that cannot be read is logged with where it is and why (SPEC 11), not
/// only counted in the pass summary; the rest of the mailbox goes on.
#[test]
fn a_failed_item_is_logged_with_where_it_came_from_and_why() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");
    let mut imap = mail.client("alice");
    let broken = imap.append(
        "INBOX",
        &["crm"],
        "Subject: Neither sender nor Message-ID\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\nBody.\n",
    );
    imap.append(
        "INBOX",
        &["crm"],
        &message(
            "fine@x.example",
            "dana@x.example",
            "alice@example.com",
            "Fine",
        ),
    );
    wait_until(
        "the good message to be tracked",
        Duration::from_secs(20),
        || (mail.activities().len() == 1).then_some(()),
    );
    let line = wait_until("the failure to be logged", Duration::from_secs(20), || {
        daemon
            .log_text()
            .lines()
            .find(|l| l.contains("item failed") && l.contains(&format!("INBOX:{broken}")))
            .map(str::to_owned)
    });
    assert!(line.contains("WARN") && line.contains("alice"), "{line}");
    assert!(
        line.contains("From") || line.contains("Message-ID"),
        "the reason: {line}"
    );
}

/// A fetch of many bodies refused by the server (a `NO` for the lot) is tried again one
/// message at a time, so only a message the server really refuses fails; here none does.
#[test]
fn a_refused_fetch_of_many_bodies_is_tried_again_one_message_at_a_time() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let mut imap = mail.client("alice");
    let uids: Vec<u32> = (0..5)
        .map(|n| {
            imap.append(
                "INBOX",
                &["crm"],
                &message(
                    &format!("lot{n}@x.example"),
                    "dana@x.example",
                    "alice@example.com",
                    &format!("Lot {n}"),
                ),
            )
        })
        .collect();
    // The lot's command names the UIDs as one range; each message's own names one UID.
    let lot = format!("FETCH {}:{} (UID RFC822.SIZE", uids[0], uids[4]);
    proxy.set(Fault::AnswerAt(
        lot,
        b"{tag} NO [SERVERBUG] Internal error occurred\r\n".to_vec(),
    ));
    let report = &mail.sync_ok()["alice"];
    assert_eq!(proxy.hits(), 1, "the lot was refused once: {report:#}");
    assert_eq!(report["created"], 5, "{report:#}");
    assert_eq!(report["imap"]["bodies_fetched"], 5, "{report:#}");
    assert_eq!(mail.activities().len(), 5);
}
