//! Calendar and address-book sync at its edges, with the real binary on real vdir
//! directories: every kind through the delete matrix, a meeting shared by two mailboxes, kills
//! in the middle of a pass, polled collections, copied files, values the CRM cannot hold, rows
//! the CRM must keep or cannot read, and files a real client library (Python's icalendar and
//! vobject) accepts.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::Env;
use support::collections::*;
use support::daemon::{Daemon, wait_until};

/// Every file crmsync writes is read by Python's icalendar and vobject, the libraries behind
/// many clients, with the properties crmsync does not know kept. `tests/run` makes the
/// virtual environment; without it this test fails, saying so, rather than skipping.
#[test]
fn written_files_are_accepted_by_python_icalendar_and_vobject() {
    let python = std::env::var("CRMSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/test-venv/bin/python"
        )
        .to_owned()
    });
    assert!(
        Path::new(&python).exists(),
        "{python} is missing: run the tests with `bash tests/run`, which creates the venv with icalendar and vobject"
    );
    let c = setup("");
    let env = &c.env;
    write(&c.calendar, "e1.ics", &event("e1", "Kickoff", "CRM", ""));
    write(
        &c.contacts,
        "dana.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dana-1\r\nFN:Dana Smith\r\nN:Smith;Dana;;;\r\nORG:Contoso\r\n\
EMAIL:dana@contoso.example\r\nCATEGORIES:CRM\r\nX-KHARD:kept\r\nEND:VCARD\r\n",
    );
    env.ok(&[
        "activity",
        "add",
        "task",
        "--owner",
        "alice@example.com",
        "--subject",
        "Quote, final",
        "--due",
        "2026-12-05",
    ]);
    env.ok(&[
        "activity",
        "add",
        "appointment",
        "--owner",
        "alice@example.com",
        "--subject",
        "Demo; café",
        "--start",
        "2026-12-03T14:00:00Z",
        "--end",
        "2026-12-03T15:00:00Z",
    ]);
    env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Eve Doe",
        "--email",
        "eve@example.org",
        "--owner",
        "alice@example.com",
        "--parent",
        "ACC-1001",
    ]);
    env.ok(&["sync"]);
    // Edits from the CRM into the person's files.
    let kickoff = activities(env, "appointment")
        .into_iter()
        .find(|a| a["subject"] == "Kickoff")
        .unwrap();
    env.ok(&[
        "activity",
        "set",
        kickoff["id"].as_str().unwrap(),
        "body=Line one\nLine two, with; marks",
    ]);
    let dana = env
        .json(&["record", "list", "contact"])
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Dana Smith")
        .unwrap()
        .clone();
    env.ok(&[
        "record",
        "set",
        dana["number"].as_str().unwrap(),
        "job_title=Buyer; EMEA",
    ]);
    env.ok(&["sync"]);

    let script = r#"
import sys, pathlib, icalendar, vobject
seen = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.ics")):
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    items = [c for c in cal.walk() if c.name in ("VEVENT", "VTODO")]
    assert items, path
    for item in items:
        assert "CRM" in str(item.get("CATEGORIES").to_ical(), "utf-8"), path
        print(path.name, item.name, item.get("SUMMARY"), item.get("DESCRIPTION"), item.get("X-KHAL-THING"))
    list(vobject.readComponents(path.read_text()))
    seen += 1
for path in sorted(pathlib.Path(sys.argv[2]).glob("*.vcf")):
    card = vobject.readOne(path.read_text())
    print(path.name, card.fn.value, card.contents.get("title", [None])[0] and card.title.value, card.contents.get("x-khard", [None])[0] and card.x_khard.value)
    seen += 1
print("files", seen)
"#;
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&c.calendar)
        .arg(&c.contacts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python refused a file:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("files 5"), "{stdout}");
    assert!(stdout.contains("VTODO Quote, final"), "{stdout}");
    assert!(stdout.contains("VEVENT Demo; café"), "{stdout}");
    assert!(
        stdout.contains("Line one\nLine two, with; marks kept"),
        "{stdout}"
    );
    assert!(stdout.contains("Dana Smith Buyer; EMEA kept"), "{stdout}");
    assert!(stdout.contains("Eve Doe"), "{stdout}");
}

/// Every kind through the same life: tracked, renamed, edited in the file, untracked (the
/// owner's copy goes), tracked again and deleted as a file (the copy goes), tracked again and
/// deleted in the CRM (the file stays without its category), and a malformed sibling.
#[test]
fn every_kind_follows_the_delete_matrix() {
    for kind in KINDS {
        let c = setup("");
        let env = &c.env;
        let dir = (kind.dir)(&c);
        let what = kind.name;
        write(dir, kind.file, kind.text);
        let bad = if kind.file.ends_with(".vcf") {
            "bad.vcf"
        } else {
            "bad.ics"
        };
        write(dir, bad, "BEGIN:VCARD\r\nBEGIN:VEVENT\r\n");
        let run = env.run(&["sync", "--json"]);
        assert_eq!(run.code, 1, "{what}: the malformed file fails the pass");
        let pass: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(pass["mailboxes"][0]["created"], 1, "{what}: {pass}");
        std::fs::remove_file(dir.join(bad)).unwrap();
        let rows = (kind.list)(env);
        assert_eq!(rows.len(), 1, "{what}");
        assert_eq!(subject_of(kind, &rows[0]), "Visit", "{what}");

        // Renamed and edited in the same move: one item, the edit carried.
        let renamed = format!("renamed-{}", kind.file);
        std::fs::remove_file(dir.join(kind.file)).unwrap();
        let edited = kind.text.replace("Visit", "Visit two");
        write(dir, &renamed, &edited);
        env.ok(&["sync"]);
        let rows = (kind.list)(env);
        assert_eq!(rows.len(), 1, "{what}: a rename is the same item");
        assert_eq!(subject_of(kind, &rows[0]), "Visit two", "{what}");

        // Untracked: the owner's copy goes, the file stays.
        write(dir, &renamed, &edited.replace("CATEGORIES:CRM\r\n", ""));
        env.ok(&["sync"]);
        assert!(
            (kind.list)(env).is_empty(),
            "{what}: untrack deletes the copy"
        );
        assert!(dir.join(&renamed).exists());

        // Tracked again, then the file deleted: the copy goes.
        write(dir, &renamed, &edited);
        env.ok(&["sync"]);
        assert_eq!((kind.list)(env).len(), 1, "{what}: tracked again");
        // (An untracked sibling keeps the listing from being empty, which would stop deletes.)
        std::fs::remove_file(dir.join(&renamed)).unwrap();
        let sibling = if kind.file.ends_with(".vcf") {
            "sibling.vcf"
        } else {
            "sibling.ics"
        };
        write(
            dir,
            sibling,
            &kind
                .text
                .replace("CATEGORIES:CRM\r\n", "")
                .replace("UID:k-", "UID:s-"),
        );
        env.ok(&["sync"]);
        assert!(
            (kind.list)(env).is_empty(),
            "{what}: a deleted file deletes the copy"
        );

        // Tracked again, then deleted in the CRM: the person's file stays, untracked.
        write(dir, &renamed, &edited);
        env.ok(&["sync"]);
        let row = (kind.list)(env).remove(0);
        (kind.delete)(env, &row);
        env.ok(&["sync"]);
        let text = read(dir, &renamed);
        assert!(!text.contains("CATEGORIES:CRM"), "{what}: {text}");
        assert!(text.contains("Visit two"), "{what}");
        env.ok(&["sync"]);
        assert!((kind.list)(env).is_empty(), "{what}: not tracked again");
    }
}

/// The same meeting in two people's calendars is one appointment with two links; the one who
/// does not own it untracking it removes only their link.
#[test]
fn a_shared_meeting_is_one_appointment_and_a_non_owner_untracks_only_their_link() {
    let env = Env::new();
    for dir in ["alice-cal", "bob-cal"] {
        std::fs::create_dir(env.path(dir)).unwrap();
    }
    env.write_config(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n\
         [[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\n[mailbox.calendar]\npath = \"alice-cal\"\n\n\
         [[mailbox]]\nid = \"bob\"\nowner = \"bob@example.com\"\n\n[mailbox.calendar]\npath = \"bob-cal\"\n",
    );
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    env.ok(&["user", "add", "bob@example.com", "--name", "Bob"]);
    let meeting = event("meeting@example.com", "Pricing", "CRM", "");
    write(&env.path("alice-cal"), "m.ics", &meeting);
    env.ok(&["sync", "--mailbox", "alice"]);
    // Bob's copy has another summary and a location (and is kept in another time zone).
    let bobs = meeting
        .replace(
            "SUMMARY:Pricing",
            "SUMMARY:Pricing (Bob)\r\nLOCATION:Room 9",
        )
        .replace(
            "TZID=Europe/Berlin:20261201T100000",
            "TZID=Europe/London:20261201T090000",
        )
        .replace(
            "TZID=Europe/Berlin:20261201T110000",
            "TZID=Europe/London:20261201T100000",
        );
    write(&env.path("bob-cal"), "invite.ics", &bobs);
    env.ok(&["sync", "--mailbox", "bob"]);
    let shared = activity(&env, "appointment");
    assert_eq!(shared["owner"], "alice@example.com");
    assert_eq!(shared["links"].as_array().unwrap().len(), 2, "{shared}");
    // With no common base, a value both copies hold differently is a conflict the policy
    // settles, and it is logged; a value only Bob's copy has is simply added.
    assert_eq!(
        shared["subject"], "Pricing (Bob)",
        "mailbox-wins: Bob's value"
    );
    assert_eq!(shared["location"], "Room 9");
    let conflicts = env.json(&["conflicts", "--mailbox", "bob"]);
    assert_eq!(conflicts.as_array().unwrap().len(), 1, "{conflicts}");
    assert_eq!(conflicts[0]["field"], "subject");
    assert_eq!(conflicts[0]["crm_value"], "Pricing");
    let bob_file = read(&env.path("bob-cal"), "invite.ics");
    assert!(bob_file.contains("LOCATION:Room 9\r\n"), "{bob_file}");
    assert!(
        bob_file.contains("DTSTART;TZID=Europe/London:20261201T090000\r\n"),
        "Bob's zone kept: {bob_file}"
    );
    // Alice's copy follows the shared appointment, in her own zone.
    env.ok(&["sync", "--mailbox", "alice"]);
    let alice_file = read(&env.path("alice-cal"), "m.ics");
    assert!(alice_file.contains("LOCATION:Room 9\r\n"), "{alice_file}");
    assert!(
        alice_file.contains("SUMMARY:Pricing (Bob)\r\n"),
        "{alice_file}"
    );
    assert!(
        alice_file.contains("DTSTART;TZID=Europe/Berlin:20261201T100000\r\n"),
        "{alice_file}"
    );

    write(
        &env.path("bob-cal"),
        "invite.ics",
        &meeting.replace("CATEGORIES:CRM", "CATEGORIES:Work"),
    );
    env.ok(&["sync", "--mailbox", "bob"]);
    let kept = activity(&env, "appointment");
    assert_eq!(
        kept["links"].as_array().unwrap().len(),
        1,
        "only Bob's link went"
    );
    assert_eq!(kept["links"][0]["mailbox"], "alice");
}

/// A kill -9 in the middle of a first import, or of writing CRM-created items into the
/// calendar, loses and duplicates nothing: the next pass converges to one row per item and one
/// file per row.
#[test]
fn a_kill_in_the_middle_of_a_pass_loses_and_duplicates_nothing() {
    let c = setup("");
    let env = &c.env;
    const FILES: usize = 1500;
    const ROWS: usize = 600;
    for i in 0..FILES {
        write(
            &c.calendar,
            &format!("f{i}.ics"),
            &event(&format!("f{i}@example.com"), &format!("F{i}"), "CRM", ""),
        );
    }
    // Appointments created in the CRM by another program, as the documented schema allows.
    let store = rusqlite::Connection::open(env.path("crm.sqlite3")).unwrap();
    store.busy_timeout(Duration::from_secs(10)).unwrap();
    let owner: String = store
        .query_row(
            "SELECT record_id FROM users WHERE email = 'alice@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for i in 0..ROWS {
        store
            .execute(
                "INSERT INTO activities (id, type, owner_id, subject, state, start_at, end_at)
                 VALUES (?1, 'appointment', ?2, ?3, 'open', '2026-12-03T14:00:00Z', '2026-12-03T15:00:00Z')",
                rusqlite::params![format!("00000000-0000-4000-8000-{i:012}"), owner, format!("R{i}")],
            )
            .unwrap();
    }
    // Kill the pass at a few different moments; each restart goes on from where it was.
    for delay in [150u64, 400, 700] {
        let mut child = std::process::Command::new(support::binary())
            .arg("-c")
            .arg(&env.config)
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    env.ok(&["sync"]);
    env.ok(&["sync"]);
    let count = |sql: &str| -> i64 { store.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM activities"),
        (FILES + ROWS) as i64
    );
    assert_eq!(
        count("SELECT count(DISTINCT uid) FROM activities"),
        (FILES + ROWS) as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM sync_links"),
        (FILES + ROWS) as i64
    );
    // Item files only: a kill between writing a temporary file and renaming it leaves the
    // temporary file (hidden, skipped by every vdir reader).
    let files = std::fs::read_dir(&c.calendar)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(
        files,
        FILES + ROWS,
        "one file per CRM-created row, none twice"
    );
}

/// A collection on a network file system is polled (`watch = "poll"`): a file written there
/// still reaches the CRM without any other wake-up (the fallback poll interval is 300 s).
#[test]
fn a_polled_collection_is_synced_by_the_daemon() {
    let env = Env::new();
    std::fs::create_dir(env.path("calendar")).unwrap();
    env.write_config(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n[[mailbox]]\n\
         id = \"alice\"\nowner = \"alice@example.com\"\n\n[mailbox.calendar]\npath = \"calendar\"\n\
         watch = \"poll\"\n",
    );
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    let mut daemon = Daemon::start(&env);
    daemon.wait_for_state("alice", "idle");
    write(
        &env.path("calendar"),
        "polled.ics",
        &event("polled", "Polled", "CRM", ""),
    );
    let created = wait_until("the appointment", Duration::from_secs(20), || {
        activities(&env, "appointment").into_iter().next()
    });
    assert_eq!(created["subject"], "Polled");
    assert!(
        daemon.log_text().contains("polling it every 2 s"),
        "{}",
        daemon.log_text()
    );
    daemon.terminate(Duration::from_secs(10));
}

/// A copy of a tracked file (the same UID) is a duplicate, reported and left out; the CRM row
/// does not flip between the two files.
#[test]
fn a_copied_file_is_a_duplicate_not_a_rename() {
    let c = setup("");
    let env = &c.env;
    write(&c.calendar, "a.ics", &event("same", "Original", "CRM", ""));
    sync(env);
    let copy = event("same", "Copy", "CRM", "");
    write(&c.calendar, "b.ics", &copy);
    for _ in 0..3 {
        let run = env.run(&["sync", "--json"]);
        assert_eq!(run.code, 1, "the duplicate fails the pass");
        assert!(run.stdout.contains("b.ics"), "{}", run.stdout);
        let row = activity(env, "appointment");
        assert_eq!(row["subject"], "Original");
        assert!(row["links"][0]["item"].as_str().unwrap().ends_with("a.ics"));
    }
}

/// What the CRM cannot hold (a regarding number that names no record, an address that is
/// none) stays in the person's file when something else changes.
#[test]
fn values_the_crm_cannot_hold_stay_in_the_file() {
    let c = setup("");
    let env = &c.env;
    let text = event("e", "Call", "CRM", "")
        .replace("X-CRM-REGARDING:ACC-1001", "X-CRM-REGARDING:OPP-4242");
    write(&c.calendar, "e.ics", &text);
    write(
        &c.contacts,
        "c.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Dana\r\nN:;Dana;;;\r\nEMAIL:dana@contoso.example\r\n\
EMAIL:not-an-address\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n",
    );
    let pass = sync(env);
    let warnings = pass["warnings"].to_string();
    assert!(warnings.contains("OPP-4242"), "{warnings}");
    assert!(warnings.contains("not-an-address"), "{warnings}");
    // The person edits something else in both files; the CRM edits the event too.
    write(
        &c.calendar,
        "e.ics",
        &text.replace("SUMMARY:Call", "SUMMARY:Call back"),
    );
    let card = read(&c.contacts, "c.vcf").replace("FN:Dana", "FN:Dana Smith");
    write(&c.contacts, "c.vcf", &card);
    let id = activity(env, "appointment")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["activity", "set", &id, "location=Room 1"]);
    sync(env);
    let event_text = read(&c.calendar, "e.ics");
    assert!(
        event_text.contains("X-CRM-REGARDING:OPP-4242\r\n"),
        "{event_text}"
    );
    assert!(event_text.contains("LOCATION:Room 1\r\n"));
    let card = read(&c.contacts, "c.vcf");
    assert!(card.contains("EMAIL:not-an-address\r\n"), "{card}");
    assert_eq!(contacts_of(env)[0]["name"], "Dana Smith");

    // The CRM adds an address while the person renames the card: the CRM's addresses reach
    // the card, nothing is taken back from the CRM, and no conflict is claimed.
    let number = contacts_of(env)[0]["number"].as_str().unwrap().to_owned();
    env.ok(&[
        "record",
        "set",
        &number,
        "email=dana@contoso.example,dana.new@contoso.example",
    ]);
    write(
        &c.contacts,
        "c.vcf",
        &card.replace("FN:Dana Smith", "FN:Dana Smith-Jones"),
    );
    sync(env);
    let dana = &contacts_of(env)[0];
    assert_eq!(dana["name"], "Dana Smith-Jones");
    let emails = dana["emails"].to_string();
    assert!(emails.contains("dana.new@contoso.example"), "{emails}");
    assert!(read(&c.contacts, "c.vcf").contains("dana.new@contoso.example"));
    assert_eq!(env.json(&["conflicts"]), serde_json::json!([]));
}

/// A contact deleted from the address book that other activities regard is kept in the CRM
/// (deleting it is refused), reported, and not written back into the address book.
#[test]
fn a_contact_the_crm_must_keep_is_not_written_back() {
    let c = setup("");
    let env = &c.env;
    write(
        &c.contacts,
        "dana.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dana\r\nFN:Dana\r\nN:;Dana;;;\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n",
    );
    write(
        &c.contacts,
        "other.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:other\r\nFN:Other\r\nN:;Other;;;\r\nEND:VCARD\r\n",
    );
    sync(env);
    let number = contacts_of(env)[0]["number"].as_str().unwrap().to_owned();
    env.ok(&[
        "activity",
        "add",
        "task",
        "--owner",
        "alice@example.com",
        "--subject",
        "Call Dana",
        "--regarding",
        &number,
    ]);
    std::fs::remove_file(c.contacts.join("dana.vcf")).unwrap();
    for _ in 0..2 {
        let run = env.run(&["sync", "--json"]);
        assert_eq!(run.code, 1, "reported as failed");
        assert!(run.stdout.contains("regarding record"), "{}", run.stdout);
    }
    assert_eq!(contacts_of(env).len(), 1, "kept in the CRM");
    let cards: Vec<String> = std::fs::read_dir(&c.contacts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        cards,
        ["other.vcf"],
        "not written back into the address book"
    );
}

/// A CRM row another program wrote against the schema is skipped, reported and left alone
/// (its file is not tracked again), and the person's edit goes through once the row is mended.
#[test]
fn a_bad_crm_row_is_skipped_and_the_edit_waits() {
    let c = setup("");
    let env = &c.env;
    write(&c.calendar, "t.ics", &task("t", "Call"));
    sync(env);
    let store = rusqlite::Connection::open(env.path("crm.sqlite3")).unwrap();
    store.busy_timeout(Duration::from_secs(10)).unwrap();
    store
        .execute(
            "UPDATE activities SET priority = 'high' WHERE type = 'task'",
            [],
        )
        .unwrap();
    let text = read(&c.calendar, "t.ics").replace("SUMMARY:Call", "SUMMARY:Call back");
    write(&c.calendar, "t.ics", &text);
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let pass = &pass["mailboxes"][0];
    assert_eq!(pass["failed"], 1, "counted once: {pass}");
    assert_eq!(pass["linked"], 0, "not tracked again: {pass}");
    assert_eq!(pass["created"], 0);
    store
        .execute("UPDATE activities SET priority = 1 WHERE type = 'task'", [])
        .unwrap();
    sync(env);
    assert_eq!(activity(env, "task")["subject"], "Call back");
    assert!(read(&c.calendar, "t.ics").contains("SUMMARY:Call back\n"));
}

/// The mass-delete guard: 15 of 20 tracked calendar files deleted one by one, a few hundred
/// milliseconds apart (a sync client gone wrong), so that the daemon's passes see them a few
/// at a time: once more than half of them and more than 10 are gone within its window, the
/// daemon holds the rest, says so in its status file and its log, and
/// `crmsync sync --accept-deletes` carries them out. A temporary file a killed write left
/// behind is cleaned up by the next pass.
#[test]
fn most_of_a_collection_deleted_file_by_file_is_held_until_accepted() {
    let c = setup("");
    let env = &c.env;
    for n in 0..20 {
        write(
            &c.calendar,
            &format!("e{n}.ics"),
            &event(&format!("e{n}"), &format!("Meeting {n}"), "CRM", ""),
        );
    }
    env.ok(&["sync"]);
    assert_eq!(activities(env, "appointment").len(), 20);
    // Left by a kill between the write and the rename, long ago.
    let leftover = c
        .calendar
        .join(".e0.ics.0123456789abcdef0123456789abcdef.tmp");
    std::fs::write(&leftover, "BEGIN:VCALENDAR").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();

    // And a status file a killed daemon left (its pid is gone).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let status_leftover = env.path(&format!(".status.json.{dead_pid}.tmp"));
    std::fs::write(&status_leftover, "{").unwrap();

    let mut daemon = Daemon::start(env);
    daemon.wait_for_state("alice", "idle");
    wait_until("the leftovers to go", Duration::from_secs(10), || {
        (!leftover.exists() && !status_leftover.exists()).then_some(())
    });
    for n in 0..15 {
        std::fs::remove_file(c.calendar.join(format!("e{n}.ics"))).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let held = daemon.wait_for_state("alice", "error");
    let error = held["last_error"].as_str().unwrap();
    assert!(
        error.contains("of its 20 tracked items are deleted or untracked")
            && error.contains("--accept-deletes"),
        "{held:#}"
    );
    let calendar = &held["collections"].as_array().unwrap()[0];
    assert_eq!(calendar["state"], "error", "{held:#}");
    assert!(
        daemon
            .log_text()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("of its 20 tracked items")),
        "{}",
        daemon.log_text()
    );
    // At most the first 10 went before the guard held the rest.
    let kept = activities(env, "appointment").len();
    assert!((10..=20).contains(&kept), "{kept} appointments left");
    assert!(daemon.terminate(Duration::from_secs(20)).success());

    // The administrator confirms.
    env.ok(&["sync", "--accept-deletes"]);
    let left: Vec<String> = activities(env, "appointment")
        .iter()
        .map(|a| a["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.iter().all(|s| s.starts_with("Meeting 1")), "{left:?}");
    // A few deleted afterwards are no mass delete.
    for n in 15..17 {
        std::fs::remove_file(c.calendar.join(format!("e{n}.ics"))).unwrap();
    }
    env.ok(&["sync"]);
    assert_eq!(activities(env, "appointment").len(), 3);
}
