//! `crmsync run`: push sync under a real Dovecot, the status file, faults, reload, the
//! connection switch, the privilege gate and shutdown.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::daemon::{Daemon, wait_until};
use support::mail::{Mail, message};

fn activities(mail: &Mail) -> Vec<Value> {
    mail.env
        .json(&["activity", "list"])
        .as_array()
        .unwrap()
        .clone()
}

fn wait_for_activities(mail: &Mail, count: usize) -> Vec<Value> {
    wait_until(
        &format!("{count} activities"),
        Duration::from_secs(20),
        || {
            let found = activities(mail);
            (found.len() == count).then_some(found)
        },
    )
}

#[test]
fn push_both_ways_without_any_command() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    // Another mail client tracks a message: the daemon sees it through IDLE. The poll
    // interval is 300 s, so only push can make this pass in time.
    let mut imap = mail.client("alice");
    let uid = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "p1@x.example",
            "dana@x.example",
            "alice@example.com",
            "Pushed",
        ),
    );
    let found = wait_for_activities(&mail, 1);
    assert_eq!(found[0]["subject"], "Pushed");

    // The CRM deletes it: the daemon sees it in the change journal and removes the keyword.
    let id = found[0]["id"].as_str().unwrap().to_owned();
    mail.env.ok(&["activity", "delete", &id]);
    wait_until("the keyword to go", Duration::from_secs(20), || {
        imap.flags("INBOX", uid).is_empty().then_some(())
    });
    assert!(daemon.is_running());
    let status = daemon.status().unwrap();
    assert_eq!(status["schema"], 1);
    assert_eq!(status["daemon"]["pid"], daemon.pid());
    assert_eq!(status["daemon"]["connection_enabled"], true);
}

#[test]
fn a_server_outage_is_an_error_and_the_daemon_recovers() {
    let mut mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    mail.dovecot.stop();
    let entry = daemon.wait_for_state("alice", "error");
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.contains("cannot connect to 127.0.0.1"), "{error}");
    assert!(daemon.is_running());

    mail.dovecot.restart();
    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "o1@x.example",
            "dana@x.example",
            "alice@example.com",
            "After the outage",
        ),
    );
    daemon.wait_for_state("alice", "idle");
    let found = wait_for_activities(&mail, 1);
    assert_eq!(found[0]["subject"], "After the outage");
}

#[test]
fn a_wrong_password_is_an_authentication_error() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    std::fs::write(mail.env.path("alice.imap"), "not-the-password").unwrap();
    let mut daemon = Daemon::start(&mail.env);
    let entry = daemon.wait_for_state("alice", "error");
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.contains("authentication failed for alice"), "{error}");
    assert!(
        !daemon.log_text().contains("not-the-password"),
        "the password reached the log"
    );
    assert!(
        !std::fs::read_to_string(mail.env.path("status.json"))
            .unwrap()
            .contains("not-the-password")
    );
}

#[test]
fn sighup_keeps_a_broken_config_and_applies_a_good_one() {
    let mail = Mail::new(&[("alice", "alice@example.com"), ("bob", "bob@example.com")]);
    let good = std::fs::read_to_string(&mail.env.config).unwrap();
    // Start with Alice only: Bob's mailbox is not in the config yet.
    let bob_starts = good.find("[[mailbox]]\nid = \"bob\"").unwrap();
    mail.env.write_config(&good[..bob_starts]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");
    assert!(daemon.mailbox_state("bob").is_none());

    // A broken config is refused, and says why; the daemon keeps running as it was.
    mail.env.write_config("[crm]\ndatabase = 5\n");
    daemon.signal("HUP");
    wait_until("the refusal in the log", Duration::from_secs(10), || {
        daemon
            .log_text()
            .contains("config reload refused")
            .then_some(())
    });
    assert!(
        daemon
            .log_text()
            .contains("crm.database: expected a string")
    );
    assert!(daemon.is_running());
    // (A pass may be running: the IDLE watchers wake the worker once they are in place.)
    daemon.wait_for_state("alice", "idle");

    // A good one with Bob enabled starts Bob.
    mail.env.write_config(&good);
    daemon.signal("HUP");
    daemon.wait_for_state("bob", "idle");
    mail.client("bob").append(
        "INBOX",
        &["crm"],
        &message(
            "b1@x.example",
            "dana@x.example",
            "bob@example.com",
            "For Bob",
        ),
    );
    let found = wait_for_activities(&mail, 1);
    assert_eq!(found[0]["owner"], "bob@example.com");
}

#[test]
fn the_connection_switch_stops_and_resumes_all_traffic() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    let off = config.replacen("[crm]", "[connection]\nenabled = false\n\n[crm]", 1);
    mail.env.write_config(&off);
    daemon.wait_for_state("alice", "disabled");
    assert_eq!(
        daemon.status().unwrap()["daemon"]["connection_enabled"],
        false
    );
    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "s1@x.example",
            "dana@x.example",
            "alice@example.com",
            "While off",
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        activities(&mail).is_empty(),
        "nothing is synced while the connection is off"
    );

    mail.env.write_config(&config);
    daemon.wait_for_state("alice", "idle");
    let found = wait_for_activities(&mail, 1);
    assert_eq!(found[0]["subject"], "While off");
}

#[test]
fn the_privilege_gate() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env
        .ok(&["user", "set", "alice@example.com", "--sync", "no"]);
    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "g1@x.example",
            "dana@x.example",
            "alice@example.com",
            "Gated",
        ),
    );
    let mut daemon = Daemon::start(&mail.env);
    let entry = daemon.wait_for_state("alice", "not-permitted");
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("lacks the sync privilege")
    );
    assert!(activities(&mail).is_empty());

    // Granting it starts the mailbox without a restart.
    mail.env
        .ok(&["user", "set", "alice@example.com", "--sync", "yes"]);
    let found = wait_for_activities(&mail, 1);
    assert_eq!(found[0]["subject"], "Gated");
}

#[test]
fn sigterm_exits_0_and_the_status_file_is_always_valid_json() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    // Read the status file in a tight loop while the daemon rewrites it.
    let status = mail.env.path("status.json");
    let reader = std::thread::spawn(move || {
        let mut reads = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            let text = std::fs::read_to_string(&status).expect("the status file is always there");
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("invalid status JSON ({e}): {text}"));
            reads += 1;
        }
        reads
    });
    let mut imap = mail.client("alice");
    for n in 0..10 {
        imap.append(
            "INBOX",
            &["crm"],
            &message(
                &format!("t{n}@x.example"),
                "dana@x.example",
                "alice@example.com",
                &format!("Load {n}"),
            ),
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let reads = reader.join().unwrap();
    assert!(reads > 100, "only {reads} reads");

    let exit = daemon.terminate(Duration::from_secs(10));
    assert!(exit.success(), "{exit}");
    let text = std::fs::read_to_string(mail.env.path("status.json")).unwrap();
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["mailboxes"][0]["id"], "alice");
}

#[test]
fn one_process_syncs_a_mailbox_at_a_time() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "l1@x.example",
            "dana@x.example",
            "alice@example.com",
            "Locked",
        ),
    );
    // Another process (here: the test) is in the middle of a pass of alice.
    let lock = std::fs::File::create(mail.env.path(".crmsync-alice.lock")).unwrap();
    lock.lock().unwrap();
    let stderr = mail.env.path("sync.err");
    let mut sync = std::process::Command::new(support::binary())
        .args(["-c", mail.env.config.to_str().unwrap(), "sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        sync.try_wait().unwrap().is_none(),
        "sync did not wait for the lock"
    );
    assert!(activities(&mail).is_empty());
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        said.contains("mailbox alice is being synced by another process"),
        "{said}"
    );

    lock.unlock().unwrap();
    let exit = wait_until("sync to finish", Duration::from_secs(20), || {
        sync.try_wait().unwrap()
    });
    assert!(exit.success());
    assert_eq!(activities(&mail).len(), 1);
}

#[test]
fn check_tests_each_mailbox() {
    let mail = Mail::new(&[("alice", "alice@example.com"), ("bob", "bob@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    // Bob's config names a folder that does not exist, and Bob may not sync.
    let broken = config.replacen(
        "username = \"bob\"",
        "username = \"bob\"\nfolders = [\"INBOX\", \"Nope\"]",
        1,
    );
    let broken = broken.replacen("folders = [\"INBOX\", \"Archive\"]\n", "", 2);
    let broken = broken.replacen(
        "password_file = \"alice.imap\"\n",
        "password_file = \"alice.imap\"\nfolders = [\"INBOX\", \"Archive\"]\n",
        1,
    );
    mail.env.write_config(&broken);
    mail.env
        .ok(&["user", "set", "bob@example.com", "--sync", "no"]);

    let run = mail.env.run(&["check", "--json"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let alice = &report["mailboxes"][0];
    assert_eq!(alice["ok"], true, "{alice:#}");
    let details: Vec<&str> = alice["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert!(details.contains(&"yes: push"), "{details:?}");
    assert!(details.contains(&"yes: incremental"), "{details:?}");
    let bob = &report["mailboxes"][1];
    assert_eq!(bob["ok"], false);
    let failures: Vec<&str> = bob["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        failures,
        [
            "bob@example.com lacks the sync privilege (crmsync user set bob@example.com --sync yes)",
            "\"Nope\" does not exist on the server"
        ]
    );
    let text = mail.env.run(&["check", "--mailbox", "alice"]);
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert!(text.stdout.contains("alice: ok"), "{}", text.stdout);
}

/// The unit file as shipped, with ExecStart pointing at the binary under test (verify wants
/// the executable to exist).
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../systemd/crmsync.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/crmsync "));
    let unit = unit.replace(
        "/usr/local/bin/crmsync",
        support::binary().to_str().unwrap(),
    );
    let path = dir.join("crmsync.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_is_rated_ok_or_better() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs (tests/run installs systemd)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no rating: {text}"));
    let exposure: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable rating: {line}"));
    assert!(exposure <= 4.9, "exposure {exposure}: {line}");
}

#[test]
fn the_journal_stays_bounded_under_ten_thousand_crm_changes() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    mail.env
        .write_config(&format!("{config}[daemon]\njournal_retention = 1\n"));
    mail.env
        .ok(&["record", "add", "account", "--name", "Adventure Works"]);
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    // Another program writes the documented schema: 10,000 changes, each journaled.
    let mut conn = rusqlite::Connection::open(mail.env.path("crm.sqlite3")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    for batch in 0..20 {
        let tx = conn.transaction().unwrap();
        for change in 0..500 {
            tx.execute(
                "UPDATE records SET name = ?1 WHERE number = 'ACC-1001'",
                [format!("Adventure Works {batch}-{change}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let count = |conn: &rusqlite::Connection| -> (i64, i64) {
        conn.query_row(
            "SELECT count(*), coalesce(max(seq), 0) FROM change_journal",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
    };
    let (rows, newest) = count(&conn);
    assert!(
        rows >= 10_000 && newest >= 10_000,
        "{rows} rows, newest {newest}"
    );

    // The daemon reads them all, records its cursor, and prunes what it read once older than
    // the retention (1 s here).
    wait_until("the journal to be pruned", Duration::from_secs(30), || {
        let (rows, _) = count(&conn);
        (rows < 100).then_some(())
    });
    let cursor: i64 = conn
        .query_row(
            "SELECT seq FROM journal_cursors WHERE consumer = 'crmsync-daemon'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(cursor >= newest, "cursor {cursor}, newest {newest}");
    // New changes keep numbers growing and still reach the daemon.
    mail.env
        .ok(&["record", "set", "ACC-1001", "name=Adventure Works Ltd"]);
    let (_, after) = count(&conn);
    assert!(after > newest);
    assert!(daemon.is_running());
    daemon.wait_for_state("alice", "idle");
}

#[test]
fn status_pending_counts_tracked_messages_not_synced_yet() {
    use support::proxy::{Fault, FaultProxy};
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    let mut daemon = Daemon::start(&mail.env);
    let entry = daemon.wait_for_state("alice", "idle");
    assert_eq!(entry["pending"], 0);

    // The daemon can see the mailbox's flags and headers but not fetch a body: the three
    // tracked messages are seen and pending.
    proxy.set(Fault::CutAt("BODY.PEEK[]".into()));
    let mut imap = mail.client("alice");
    for n in 1..=3 {
        imap.append(
            "INBOX",
            &["crm"],
            &message(
                &format!("pending{n}@x.example"),
                "dana@x.example",
                "alice@example.com",
                &format!("Pending {n}"),
            ),
        );
    }
    let entry = wait_until("3 pending messages", Duration::from_secs(30), || {
        daemon
            .mailbox_state("alice")
            .filter(|m| m["pending"] == 3 && m["state"] == "error")
    });
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.contains("INBOX:1"), "{entry:#}");
    assert!(
        entry["consecutive_errors"].as_u64().unwrap() >= 1,
        "{entry:#}"
    );
    assert!(activities(&mail).is_empty());
    // The failed-items list names the message and why, in the status file and the CLI.
    let failed = wait_until("a failed item listed", Duration::from_secs(30), || {
        daemon
            .mailbox_state("alice")
            .filter(|m| m["failed_items"].as_array().is_some_and(|a| !a.is_empty()))
    });
    let item = &failed["failed_items"][0];
    assert_eq!(item["scope"], "email", "{failed:#}");
    assert_eq!(item["item"], "INBOX:1", "{failed:#}");
    assert!(
        item["reason"].as_str().unwrap().contains("fetch"),
        "{failed:#}"
    );
    let listed = mail.env.json(&["items", "--failed"]);
    assert_eq!(listed[0]["mailbox"], "alice", "{listed:#}");
    assert_eq!(listed[0]["item"], "INBOX:1", "{listed:#}");

    // Access comes back: they are synced and nothing is pending.
    proxy.set(Fault::None);
    wait_for_activities(&mail, 3);
    let entry = wait_until("nothing pending", Duration::from_secs(30), || {
        daemon
            .mailbox_state("alice")
            .filter(|m| m["pending"] == 0 && m["state"] == "idle")
    });
    assert_eq!(entry["consecutive_errors"], 0);
    assert!(
        entry["folders"][0]["last_full_scan"].is_string(),
        "{entry:#}"
    );
    // Synced now: off the failed-items list.
    assert_eq!(entry["failed_items"], serde_json::json!([]), "{entry:#}");
    assert_eq!(mail.env.json(&["items", "--failed"]), serde_json::json!([]));
}

/// A wrong password puts the mailbox in the error state with the slow retry (5 minutes).
/// Fixing the password file and then running `crmsync sync`, or reloading the config, gets
/// the daemon to try again at once.
#[test]
fn a_fixed_password_is_tried_again_after_sync_or_a_reload() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let password_file = mail.env.path("alice.imap");
    let set_password = |text: &str| std::fs::write(&password_file, text).unwrap();

    for retry in ["sync", "reload"] {
        set_password("wrong");
        let mut daemon = Daemon::start(&mail.env);
        let failed = daemon.wait_for_state("alice", "error");
        assert!(
            failed["last_error"]
                .as_str()
                .unwrap()
                .contains("authentication failed"),
            "{failed:#}"
        );
        set_password(support::mail::PASSWORD);
        match retry {
            "sync" => {
                let run = mail.env.run(&["sync"]);
                assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
                assert!(run.stderr.contains("asked to try again"), "{}", run.stderr);
            }
            _ => daemon.signal("HUP"),
        }
        // Well inside the 5-minute slow retry.
        let started = std::time::Instant::now();
        daemon.wait_for_state("alice", "idle");
        assert!(started.elapsed() < Duration::from_secs(30), "{retry}");
        assert!(daemon.terminate(Duration::from_secs(20)).success());
    }
}

/// A change in one mailbox wakes only the workers it concerns: Alice's newly tracked message
/// (an activity only her mailbox links) sets off no pass in Bob's; a CRM change to the
/// activity of Bob's message wakes Bob's worker, which writes the new regarding keyword at
/// once (the fallback poll is 300 s).
#[test]
fn a_change_wakes_only_the_mailboxes_it_concerns() {
    let mail = Mail::new(&[("alice", "alice@example.com"), ("bob", "bob@example.com")]);
    mail.env
        .ok(&["record", "add", "account", "--name", "Contoso"]);
    let bob_uid = mail.client("bob").append(
        "INBOX",
        &["crm"],
        &message("b@x.example", "dana@x.example", "bob@example.com", "Bob's"),
    );
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");
    daemon.wait_for_state("bob", "idle");
    let bobs_passes = |daemon: &Daemon| {
        daemon
            .log_text()
            .lines()
            .filter(|l| l.contains("pass done") && l.contains("bob"))
            .count()
    };
    // The passes after the IDLE watchers came up are over.
    let mut before = bobs_passes(&daemon);
    wait_until("Bob's worker to settle", Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(1500));
        let now = bobs_passes(&daemon);
        let settled = now == before;
        before = now;
        settled.then_some(())
    });

    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "a@x.example",
            "erin@x.example",
            "alice@example.com",
            "Alice's",
        ),
    );
    wait_for_activities(&mail, 2);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        bobs_passes(&daemon),
        before,
        "Alice's change woke Bob's worker:\n{}",
        daemon.log_text()
    );

    let bobs = activities(&mail)
        .into_iter()
        .find(|a| a["subject"] == "Bob's")
        .unwrap();
    let account = mail.env.json(&["record", "list"])[0]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    mail.env.ok(&[
        "activity",
        "regarding",
        bobs["id"].as_str().unwrap(),
        &account,
    ]);
    let mut bob = mail.client("bob");
    wait_until("Bob's keyword to follow", Duration::from_secs(20), || {
        bob.flags("INBOX", bob_uid)
            .contains(&format!("crm:{account}"))
            .then_some(())
    });
}

/// A daemon on one mailbox whose IMAP traffic Dovecot records, after three passes, each over
/// a message tracked after the one before was imported.
fn three_passes_recorded() -> (Mail, Daemon) {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.dovecot.record_traffic("alice");
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");
    let mut imap = mail.client("alice");
    for n in 0..3 {
        imap.append(
            "INBOX",
            &["crm"],
            &message(
                &format!("d{n}@x.example"),
                "dana@x.example",
                "alice@example.com",
                &format!("Pass {n}"),
            ),
        );
        wait_for_activities(&mail, n + 1);
    }
    (mail, daemon)
}

/// A mailbox without a drafts folder: the daemon's worker asks for it once, not on every
/// pass (a command answered NO per pass per mailbox adds up with many mailboxes), and with a
/// STATUS, which leaves the mail folder selected (a SELECT that fails leaves none, and the
/// worker waits in IDLE on that folder).
#[test]
fn a_missing_drafts_folder_is_not_asked_for_on_every_pass() {
    let (mail, _daemon) = three_passes_recorded();
    let commands = mail.dovecot.commands_of("alice");
    let drafts: Vec<&String> = commands.iter().filter(|c| c.contains("Drafts")).collect();
    assert_eq!(drafts.len(), 1, "{commands:#?}");
    assert!(drafts[0].contains("STATUS \"Drafts\""), "{commands:#?}");
}

/// The worker's connection keeps the folder that changes selected: a pass after a change asks
/// that folder for what changed since (`UID FETCH ... (CHANGEDSINCE m VANISHED)`) without a
/// SELECT, which makes Dovecot reread a large maildir folder, and learns from a STATUS that
/// another folder did not change without selecting that one either.
#[test]
fn a_pass_after_a_change_selects_no_folder_again() {
    let (mail, _daemon) = three_passes_recorded();
    let sessions = mail.dovecot.sessions_of("alice");
    let working: Vec<&Vec<String>> = sessions
        .iter()
        .filter(|commands| commands.iter().any(|c| c.contains("CHANGEDSINCE")))
        .collect();
    assert_eq!(working.len(), 1, "one worker connection: {sessions:#?}");
    let commands = working[0];
    let count = |what: &str| commands.iter().filter(|c| c.contains(what)).count();
    let changes = count("CHANGEDSINCE");
    assert!(
        changes >= 3,
        "a scan of what changed after each of the three: {commands:#?}"
    );
    // The first pass selects both folders; the first change finds INBOX not held (Archive
    // was scanned last) and selects it; after that, nothing is selected again.
    assert_eq!(count("SELECT \"INBOX\""), 2, "{commands:#?}");
    assert_eq!(count("SELECT \"Archive\""), 1, "{commands:#?}");
    assert!(count("STATUS \"Archive\"") >= 2, "{commands:#?}");
    // Without automatic tracking a scan asks for the identity's header fields alone (the
    // drafts folder's scan, which needs its own, is not in this mailbox).
    let scans: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("HEADER.FIELDS"))
        .collect();
    assert!(
        !scans.is_empty()
            && scans
                .iter()
                .all(|c| c.contains("REFERENCES)]") && !c.contains("AUTO-SUBMITTED")),
        "{commands:#?}"
    );
}

/// A pass over the folder the worker holds selected counts its messages from what the server
/// said since the SELECT: a message expunged by another client unlinks its activity, and the
/// folder emptied after that trips the guard against an empty listing (the link is kept), with
/// no SELECT of the folder again for either.
#[test]
fn expunges_in_a_folder_held_selected_are_seen_and_an_emptied_one_is_refused() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.dovecot.record_traffic("alice");
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");
    let mut imap = mail.client("alice");
    let uids: Vec<u32> = ["Gone", "Kept"]
        .iter()
        .enumerate()
        .map(|(n, subject)| {
            let uid = imap.append(
                "INBOX",
                &["crm"],
                &message(
                    &format!("e{n}@x.example"),
                    "dana@x.example",
                    "alice@example.com",
                    subject,
                ),
            );
            wait_for_activities(&mail, n + 1);
            uid
        })
        .collect();
    let links_of = |subject: &str| -> Option<usize> {
        activities(&mail)
            .iter()
            .find(|a| a["subject"] == subject)
            .map(|a| a["links"].as_array().map_or(0, Vec::len))
    };
    imap.expunge("INBOX", uids[0]);
    wait_until(
        "the expunged message unlinked",
        Duration::from_secs(20),
        || (links_of("Gone") == Some(0)).then_some(()),
    );
    assert_eq!(links_of("Kept"), Some(1));

    imap.expunge("INBOX", uids[1]);
    let alice = daemon.wait_for_state("alice", "error");
    assert!(
        alice
            .to_string()
            .contains("lists no message while 1 tracked messages"),
        "{alice:#}"
    );
    assert_eq!(links_of("Kept"), Some(1), "the link is kept");

    let sessions = mail.dovecot.sessions_of("alice");
    let worker = sessions
        .iter()
        .find(|commands| commands.iter().any(|c| c.contains("CHANGEDSINCE")))
        .expect("the worker's connection");
    let inbox_selects = worker
        .iter()
        .filter(|c| c.contains("SELECT \"INBOX\""))
        .count();
    // The first pass, and the first change (Archive was scanned last): see
    // `a_pass_after_a_change_selects_no_folder_again`.
    assert_eq!(inbox_selects, 2, "{worker:#?}");
}

/// The IDLE connection selects its folder once. After a notification it goes back into IDLE on
/// the folder still selected, so a change made while it was out of IDLE is reported when the
/// next IDLE begins (a new SELECT would take that change in silently: lost until the fallback
/// poll when the worker's scan came first), and a large maildir folder is not reread for it.
#[test]
fn the_idle_connection_selects_its_folder_once() {
    let (mail, _daemon) = three_passes_recorded();
    let sessions = mail.dovecot.sessions_of("alice");
    // The worker's own connection waits in IDLE on the folder it holds (Archive, scanned last)
    // until a change makes it hold INBOX, which has a watcher already: Archive gets one then.
    let watchers: Vec<&Vec<String>> = sessions
        .iter()
        .filter(|commands| {
            commands.iter().any(|c| c.ends_with(" IDLE"))
                && !commands.iter().any(|c| c.contains("CHANGEDSINCE"))
        })
        .collect();
    assert_eq!(watchers.len(), 2, "{sessions:#?}");
    for commands in &watchers {
        let selects = commands.iter().filter(|c| c.contains("SELECT")).count();
        assert_eq!(selects, 1, "{commands:#?}");
    }
    let inbox = watchers
        .iter()
        .find(|commands| commands.iter().any(|c| c.contains("SELECT \"INBOX\"")))
        .expect("an IDLE connection on INBOX");
    // One IDLE, then one after each change it told of (the last may not be written down yet
    // when the third activity is in the store).
    let idles = inbox.iter().filter(|c| c.ends_with(" IDLE")).count();
    assert!(
        idles >= 3,
        "one IDLE, then one after each change: {inbox:#?}"
    );
}

/// A mailbox that watches one folder is watched on the worker's own connection: one login and
/// one SELECT, one pass at startup (no second connection, whose first IDLE would ask for a
/// pass to cover the moment before it). A change made after the pass read the folder, before
/// its IDLE reached the server, is reported when that IDLE begins: a message tracked while a
/// proxy holds the daemon's IDLE back is imported once it goes through, the fallback poll
/// being 300 s away.
#[test]
fn one_watched_folder_is_watched_on_the_workers_own_connection() {
    use support::proxy::{Fault, FaultProxy};
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    let two = "folders = [\"INBOX\", \"Archive\"]";
    assert!(config.contains(two));
    mail.env
        .write_config(&config.replace(two, "folders = [\"INBOX\"]"));
    mail.dovecot.record_traffic("alice");
    let proxy = FaultProxy::start(mail.dovecot.port);
    mail.route_through(proxy.port);
    proxy.set(Fault::HoldAt(" IDLE".into()));
    let daemon = Daemon::start(&mail.env);
    wait_until("the daemon's IDLE", Duration::from_secs(30), || {
        (proxy.hits() == 1).then_some(())
    });
    let passes = |daemon: &Daemon| daemon.log_text().matches("pass done").count();
    assert_eq!(passes(&daemon), 1, "{}", daemon.log_text());

    mail.client("alice").append(
        "INBOX",
        &["crm"],
        &message(
            "held@x.example",
            "dana@x.example",
            "alice@example.com",
            "Held",
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(activities(&mail).is_empty());
    proxy.set(Fault::None);
    wait_for_activities(&mail, 1);
    // The change's pass, and none for the mark it stored (the server's word on it, a FETCH of
    // the new MODSEQ alone, is no change).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(passes(&daemon), 2, "{}", daemon.log_text());

    let sessions = mail.dovecot.sessions_of("alice");
    let daemons: Vec<&Vec<String>> = sessions
        .iter()
        .filter(|commands| !commands.iter().any(|c| c.contains(" APPEND ")))
        .collect();
    assert_eq!(daemons.len(), 1, "one connection: {sessions:#?}");
    let commands = daemons[0];
    let count = |what: &str| commands.iter().filter(|c| c.contains(what)).count();
    assert_eq!(count("SELECT \"INBOX\""), 1, "{commands:#?}");
    assert!(count(" IDLE") >= 2, "{commands:#?}");
    let after_done: Vec<&String> = commands
        .windows(2)
        .filter(|pair| pair[0].ends_with(" DONE"))
        .map(|pair| &pair[1])
        .collect();
    assert!(!after_done.is_empty(), "{commands:#?}");
    assert!(
        after_done.iter().all(|c| !c.contains("NOOP")),
        "a pass out of IDLE asks no NOOP: {commands:#?}"
    );
}

/// The drafts are looked at after the mail (on maildir, Dovecot rereads a mail folder's UID
/// list the next time it is opened after another folder was looked at: the drafts first
/// would cost that on every change's way to the CRM). A pass that rewrites a draft selects
/// the drafts folder, then the mail folder again, so the worker goes on waiting in IDLE on its
/// own connection: a message tracked after it is imported with no second connection.
#[test]
fn after_a_draft_is_rewritten_the_worker_waits_on_its_mail_folder_again() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    let two = "folders = [\"INBOX\", \"Archive\"]";
    mail.env
        .write_config(&config.replace(two, "folders = [\"INBOX\"]"));
    mail.env.ok(&[
        "article",
        "add",
        "--title",
        "Returns",
        "--body",
        "Returns are free for 30 days.",
    ]);
    let mut imap = mail.client("alice");
    imap.create("Drafts");
    mail.dovecot.record_traffic("alice");
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");

    let draft = imap.append(
        "Drafts",
        &["\\Draft", "crm:article:KB-1001"],
        "Message-ID: <d1@client.example>\nFrom: alice@example.com\nTo: dana@x.example\n\
         Subject: Returns\nContent-Type: text/plain; charset=utf-8\n\nMy own words.\n",
    );
    // The drafts folder is not watched: a change in INBOX brings the pass that finds it.
    let track = |imap: &mut support::dovecot::ImapClient, id: &str| {
        imap.append(
            "INBOX",
            &["crm"],
            &message(id, "dana@x.example", "alice@example.com", id),
        );
    };
    track(&mut imap, "first@x.example");
    wait_for_activities(&mail, 1);
    wait_until("the draft rewritten", Duration::from_secs(20), || {
        (imap.uids("Drafts").len() == 1 && !imap.uids("Drafts").contains(&draft)).then_some(())
    });
    track(&mut imap, "second@x.example");
    wait_for_activities(&mail, 2);

    let sessions = mail.dovecot.sessions_of("alice");
    let daemons: Vec<&Vec<String>> = sessions
        .iter()
        .filter(|commands| !commands.iter().any(|c| c.contains(" APPEND \"INBOX\"")))
        .collect();
    assert_eq!(daemons.len(), 1, "one connection: {sessions:#?}");
    let commands = daemons[0];
    let position = |what: &str| commands.iter().position(|c| c.contains(what));
    let drafts = position("SELECT \"Drafts\"").expect("the drafts folder selected");
    assert!(
        commands[drafts..]
            .iter()
            .any(|c| c.contains("SELECT \"INBOX\"")),
        "INBOX selected again after the drafts: {commands:#?}"
    );
    let last_idle = commands.iter().rposition(|c| c.ends_with(" IDLE"));
    assert!(last_idle > Some(drafts), "{commands:#?}");
}
