//! Calendar and address-book sync with the real binary on real vdir directories (issue 5):
//! tracking by category, edits on either side, per-field merge and conflicts, the delete matrix,
//! renames, malformed files, empty listings, CRM-created items, the daemon's filesystem push,
//! and files that a real client library (Python's icalendar and vobject) accepts.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::Env;
use support::daemon::{Daemon, wait_until};

struct Collections {
    env: Env,
    calendar: PathBuf,
    contacts: PathBuf,
}

fn setup(extra: &str) -> Collections {
    let env = Env::new();
    let calendar = env.path("calendar");
    let contacts = env.path("contacts");
    std::fs::create_dir(&calendar).unwrap();
    std::fs::create_dir(&contacts).unwrap();
    env.write_config(&format!(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n\
         [[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n{extra}\n\
         [mailbox.calendar]\npath = \"calendar\"\n\n[mailbox.contacts]\npath = \"contacts\"\n"
    ));
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    env.ok(&[
        "record",
        "add",
        "account",
        "--name",
        "Adventure Works",
        "--number",
        "ACC-1001",
        "--email",
        "sales@adventure-works.com",
    ]);
    Collections {
        env,
        calendar,
        contacts,
    }
}

fn event(uid: &str, summary: &str, categories: &str, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//khal//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n\
BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n\
END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261129T100000Z\r\nSUMMARY:{summary}\r\n\
DTSTART;TZID=Europe/Berlin:20261201T100000\r\nDTEND;TZID=Europe/Berlin:20261201T110000\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nORGANIZER:mailto:alice@example.com\r\n\
ATTENDEE;CN=Sales;X-CUSTOM=1:mailto:sales@adventure-works.com\r\nCATEGORIES:{categories}\r\n\
X-CRM-REGARDING:ACC-1001\r\nX-KHAL-THING:kept\r\n{extra}BEGIN:VALARM\r\nACTION:DISPLAY\r\n\
TRIGGER:-PT15M\r\nDESCRIPTION:Reminder\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn sync(env: &Env) -> Value {
    let value = env.json(&["sync"]);
    value["mailboxes"][0].clone()
}

fn activities(env: &Env, kind: &str) -> Vec<Value> {
    env.json(&["activity", "list", "--type", kind])
        .as_array()
        .unwrap()
        .clone()
}

fn activity(env: &Env, kind: &str) -> Value {
    let all = activities(env, kind);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

#[test]
fn events_track_by_category_and_edits_cross_both_ways() {
    let c = setup("");
    let env = &c.env;
    write(
        &c.calendar,
        "e1.ics",
        &event("e1@example.com", "Kickoff", "Work,CRM", ""),
    );
    write(
        &c.calendar,
        "private.ics",
        &event("p1@example.com", "Dentist", "Private", ""),
    );
    let pass = sync(env);
    assert_eq!(pass["created"], 1, "{pass}");
    let kickoff = activity(env, "appointment");
    assert_eq!(kickoff["subject"], "Kickoff");
    assert_eq!(
        kickoff["start"], "2026-12-01T09:00:00Z",
        "Berlin time to UTC"
    );
    assert_eq!(kickoff["regarding"]["number"], "ACC-1001");
    let sales = kickoff["parties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == "sales@adventure-works.com")
        .unwrap();
    assert_eq!(sales["record"]["number"], "ACC-1001", "attendee resolved");
    let id = kickoff["id"].as_str().unwrap().to_owned();

    // A pass with nothing new changes nothing, on either side.
    let before = read(&c.calendar, "e1.ics");
    let pass = sync(env);
    assert_eq!(
        (pass["created"].as_u64(), pass["updated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(read(&c.calendar, "e1.ics"), before);

    // A CRM edit reaches the file; what crmsync does not map stays byte for byte.
    env.ok(&["activity", "set", &id, "location=Room 4"]);
    sync(env);
    let after = read(&c.calendar, "e1.ics");
    assert!(after.contains("LOCATION:Room 4\r\n"), "{after}");
    for kept in [
        "X-KHAL-THING:kept\r\n",
        "ATTENDEE;CN=Sales;X-CUSTOM=1:mailto:sales@adventure-works.com\r\n",
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Reminder\r\nEND:VALARM\r\n",
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n",
        "DTSTART;TZID=Europe/Berlin:20261201T100000\r\n",
    ] {
        assert!(after.contains(kept), "lost {kept:?}:\n{after}");
    }

    // A move of the start in the CRM is written in the event's own time zone.
    env.ok(&[
        "activity",
        "set",
        &id,
        "start=2026-12-01T10:00:00Z",
        "end=2026-12-01T11:00:00Z",
    ]);
    sync(env);
    let moved = read(&c.calendar, "e1.ics");
    assert!(
        moved.contains("DTSTART;TZID=Europe/Berlin:20261201T110000\r\n"),
        "{moved}"
    );

    // Both sides edit different fields: both kept.
    let text = read(&c.calendar, "e1.ics").replace("SUMMARY:Kickoff", "SUMMARY:Kickoff (v2)");
    write(&c.calendar, "e1.ics", &text);
    env.ok(&["activity", "set", &id, "location=Room 5"]);
    sync(env);
    let both = activity(env, "appointment");
    assert_eq!(both["subject"], "Kickoff (v2)");
    assert!(read(&c.calendar, "e1.ics").contains("LOCATION:Room 5\r\n"));

    // Both sides edit the same field: the mailbox wins by default, and the log says so.
    let text = read(&c.calendar, "e1.ics").replace("SUMMARY:Kickoff (v2)", "SUMMARY:Person's");
    write(&c.calendar, "e1.ics", &text);
    env.ok(&["activity", "set", &id, "subject=CRM's"]);
    sync(env);
    assert_eq!(activity(env, "appointment")["subject"], "Person's");
    assert!(read(&c.calendar, "e1.ics").contains("SUMMARY:Person's\r\n"));
    let conflicts = env.json(&["conflicts"]);
    let conflict = &conflicts.as_array().unwrap()[0];
    assert_eq!(conflict["field"], "subject");
    assert_eq!(conflict["mailbox_value"], "Person's");
    assert_eq!(conflict["crm_value"], "CRM's");
    assert_eq!(conflict["winner"], "mailbox");
    assert_eq!(conflict["kind"], "event");

    // A rename is the same item.
    std::fs::rename(c.calendar.join("e1.ics"), c.calendar.join("renamed.ics")).unwrap();
    sync(env);
    let renamed = activity(env, "appointment");
    assert_eq!(renamed["id"], id.as_str());
    assert!(
        renamed["links"][0]["item"]
            .as_str()
            .unwrap()
            .ends_with("renamed.ics"),
        "{renamed}"
    );
    let pane = env.json(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--href",
        "renamed.ics",
    ]);
    assert_eq!(pane["tracked"], true);
    assert_eq!(pane["activity"]["id"], id.as_str());

    // Untracking (the category removed) deletes the owner's CRM copy; the file stays.
    let text = read(&c.calendar, "renamed.ics").replace("CATEGORIES:Work,CRM", "CATEGORIES:Work");
    write(&c.calendar, "renamed.ics", &text);
    let pass = sync(env);
    assert_eq!(pass["deleted"], 1, "{pass}");
    assert!(activities(env, "appointment").is_empty());
    assert!(c.calendar.join("renamed.ics").exists());
}

fn task(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//todoman//EN\nBEGIN:VTODO\nUID:{uid}\nSUMMARY:{summary}\n\
DUE;VALUE=DATE:20261205\nPRIORITY:1\nSTATUS:NEEDS-ACTION\nCATEGORIES:crm\nX-TODOMAN:kept\nEND:VTODO\nEND:VCALENDAR\n"
    )
}

#[test]
fn tasks_follow_the_crm_wins_policy_and_deletes_cross() {
    let c = setup("conflict_policy = \"crm-wins\"");
    let env = &c.env;
    write(&c.calendar, "t1.ics", &task("t1", "Send quote"));
    sync(env);
    let quote = activity(env, "task");
    assert_eq!(quote["due"], "2026-12-05");
    let id = quote["id"].as_str().unwrap().to_owned();

    env.ok(&["activity", "set", &id, "state=completed"]);
    sync(env);
    let text = read(&c.calendar, "t1.ics");
    assert!(text.contains("STATUS:COMPLETED\n"), "{text}");
    assert!(
        text.contains("X-TODOMAN:kept\n"),
        "the file's own line endings and lines stay"
    );

    // The same field on both sides: the CRM wins under crm-wins.
    write(
        &c.calendar,
        "t1.ics",
        &text.replace("SUMMARY:Send quote", "SUMMARY:Mine"),
    );
    env.ok(&["activity", "set", &id, "subject=Theirs"]);
    sync(env);
    assert!(read(&c.calendar, "t1.ics").contains("SUMMARY:Theirs\n"));
    assert_eq!(activity(env, "task")["subject"], "Theirs");
    let conflicts = env.json(&["conflicts", "--mailbox", "alice"]);
    assert_eq!(conflicts[0]["winner"], "crm");
    assert_eq!(conflicts[0]["kind"], "task");

    // Deleting the file deletes the owner's CRM copy.
    std::fs::remove_file(c.calendar.join("t1.ics")).unwrap();
    write(&c.calendar, "other.ics", &task("t2", "Other"));
    let pass = sync(env);
    assert_eq!(pass["deleted"], 1, "{pass}");
    let left = activities(env, "task");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["subject"], "Other");
}

#[test]
fn contacts_become_records_under_their_account_and_sync_both_ways() {
    let c = setup("");
    let env = &c.env;
    write(
        &c.contacts,
        "dana.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dana-1\r\nFN:Dana Smith\r\nN:Smith;Dana;;;\r\n\
EMAIL;TYPE=work:Dana@Contoso.example\r\nTEL;TYPE=cell:+1 555 0100\r\nORG:Contoso\r\nTITLE:Buyer\r\n\
CATEGORIES:CRM\r\nX-KHARD:kept\r\nEND:VCARD\r\n",
    );
    sync(env);
    let contacts = env.json(&["record", "list", "contact"]);
    let dana = &contacts.as_array().unwrap()[0];
    assert_eq!(dana["name"], "Dana Smith");
    assert_eq!(dana["emails"][0], "dana@contoso.example");
    assert_eq!(dana["parent"]["name"], "Contoso", "ORG created the account");
    assert_eq!(dana["owner"], "alice@example.com");
    let number = dana["number"].as_str().unwrap().to_owned();

    env.ok(&["record", "set", &number, "job_title=Head of Buying"]);
    sync(env);
    let card = read(&c.contacts, "dana.vcf");
    assert!(card.contains("TITLE:Head of Buying\r\n"), "{card}");
    assert!(card.contains("EMAIL;TYPE=work:Dana@Contoso.example\r\n"));
    assert!(card.contains("X-KHARD:kept\r\n"));

    write(
        &c.contacts,
        "dana.vcf",
        &card.replace("TEL;TYPE=cell:+1 555 0100", "TEL;TYPE=cell:+1 555 0199"),
    );
    sync(env);
    let shown = env.json(&["record", "show", &number]);
    assert_eq!(shown["phones"][0], "+1 555 0199", "{shown}");

    // Deleted in the CRM: the person's card stays and loses its tracking category.
    env.ok(&["record", "delete", &number]);
    let pass = sync(env);
    assert_eq!(pass["unlinked"], 1, "{pass}");
    let card = read(&c.contacts, "dana.vcf");
    assert!(!card.contains("CATEGORIES:CRM"), "{card}");
    assert!(card.contains("FN:Dana Smith\r\n"));
    // And it is not tracked again.
    sync(env);
    assert_eq!(
        env.json(&["record", "list", "contact"]),
        serde_json::json!([])
    );
}

#[test]
fn crm_created_items_appear_and_leave_per_the_delete_matrix() {
    let c = setup("");
    let env = &c.env;
    let created = env.json(&[
        "activity",
        "add",
        "appointment",
        "--owner",
        "alice@example.com",
        "--subject",
        "Demo",
        "--start",
        "2026-12-03T14:00:00Z",
        "--end",
        "2026-12-03T15:00:00Z",
        "--regarding",
        "ACC-1001",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Eve Doe",
        "--email",
        "eve@example.org",
        "--parent",
        "ACC-1001",
    ]);
    // Contacts the owner owns appear; set the owner as a CRM user would.
    let eve = env.json(&["record", "list", "contact"])[0]["number"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["record", "set", &eve, "owner=alice@example.com"]);
    sync(env);
    let file = format!("{id}.ics");
    let text = read(&c.calendar, &file);
    assert!(text.contains(&format!("UID:{id}\r\n")), "{text}");
    assert!(text.contains("CATEGORIES:CRM\r\n"));
    assert!(text.contains("SUMMARY:Demo\r\n"));
    assert!(text.contains("X-CRM-REGARDING:ACC-1001\r\n"));
    let cards: Vec<_> = std::fs::read_dir(&c.contacts).unwrap().collect();
    assert_eq!(cards.len(), 1);
    // Written once: a second pass neither duplicates nor rewrites.
    let pass = sync(env);
    assert_eq!(pass["items_written"], 0, "{pass}");
    assert_eq!(std::fs::read_dir(&c.calendar).unwrap().count(), 1);

    // An item the person created loses only its category when its activity is deleted in the
    // CRM; the one the CRM created is removed.
    write(
        &c.calendar,
        "mine.ics",
        &event("mine@example.com", "Mine", "CRM", ""),
    );
    sync(env);
    let mine = activities(env, "appointment")
        .into_iter()
        .find(|a| a["subject"] == "Mine")
        .unwrap();
    env.ok(&["activity", "delete", mine["id"].as_str().unwrap()]);
    env.ok(&["activity", "delete", &id]);
    sync(env);
    assert!(
        !c.calendar.join(&file).exists(),
        "the CRM's item is removed"
    );
    let kept = read(&c.calendar, "mine.ics");
    assert!(
        kept.contains("CATEGORIES:\r\n") || !kept.contains("CATEGORIES"),
        "{kept}"
    );
    assert!(kept.contains("SUMMARY:Mine\r\n"));
    assert!(
        activities(env, "appointment").is_empty(),
        "not tracked again"
    );
}

#[test]
fn the_from_crm_filter_none_writes_nothing_into_the_calendar() {
    let env = Env::new();
    let calendar = env.path("calendar");
    std::fs::create_dir(&calendar).unwrap();
    env.write_config(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n[[mailbox]]\n\
         id = \"alice\"\nowner = \"alice@example.com\"\n\n[mailbox.calendar]\npath = \"calendar\"\n\
         from_crm = \"none\"\n",
    );
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    env.ok(&[
        "activity",
        "add",
        "task",
        "--owner",
        "alice@example.com",
        "--subject",
        "Call",
    ]);
    env.ok(&["sync"]);
    assert_eq!(std::fs::read_dir(&calendar).unwrap().count(), 0);
}

#[test]
fn a_malformed_file_is_counted_and_the_rest_synced() {
    let c = setup("");
    let env = &c.env;
    write(&c.calendar, "good.ics", &event("g1", "Good", "CRM", ""));
    write(
        &c.calendar,
        "broken.ics",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:no end\r\n",
    );
    write(
        &c.calendar,
        "no-uid.ics",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1, "failures make the exit code 1");
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let pass = &pass["mailboxes"][0];
    assert_eq!(pass["failed"], 2, "{pass}");
    assert_eq!(pass["created"], 1);
    let warnings = pass["warnings"].to_string();
    assert!(warnings.contains("broken.ics"), "{warnings}");
    assert!(
        warnings.contains("no-uid.ics") && warnings.contains("no UID"),
        "{warnings}"
    );
    assert_eq!(pass["collections"][0]["failed"], 2);
    assert_eq!(activity(env, "appointment")["subject"], "Good");
}

/// The address book too: an empty listing deletes no contact.
#[test]
fn an_empty_address_book_deletes_no_contact() {
    let c = setup("");
    let env = &c.env;
    write(
        &c.contacts,
        "d.vcf",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:d\r\nFN:Dana\r\nN:;Dana;;;\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n",
    );
    sync(env);
    std::fs::remove_file(c.contacts.join("d.vcf")).unwrap();
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let contacts = &pass["mailboxes"][0]["collections"][1];
    assert_eq!(contacts["name"], "contacts");
    assert_eq!(contacts["state"], "error", "{pass}");
    assert_eq!(contacts_of(env).len(), 1, "nothing deleted");
    // A missing directory is the same: an error, nothing deleted.
    std::fs::remove_dir(&c.contacts).unwrap();
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("is not a directory"), "{}", run.stdout);
    assert_eq!(contacts_of(env).len(), 1);
}

#[test]
fn an_empty_listing_deletes_nothing_until_an_administrator_accepts_it() {
    let c = setup("");
    let env = &c.env;
    write(&c.calendar, "a.ics", &event("a", "A", "CRM", ""));
    write(&c.calendar, "b.ics", &event("b", "B", "CRM", ""));
    sync(env);
    assert_eq!(activities(env, "appointment").len(), 2);
    // The collection lists empty (an unmounted share, a sync tool that wiped it).
    std::fs::remove_file(c.calendar.join("a.ics")).unwrap();
    std::fs::remove_file(c.calendar.join("b.ics")).unwrap();
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let pass = &pass["mailboxes"][0];
    assert_eq!(pass["state"], "error");
    assert_eq!(pass["collections"][0]["state"], "error");
    assert!(
        pass["errors"][0]
            .as_str()
            .unwrap()
            .contains("lists no item"),
        "{pass}"
    );
    assert_eq!(activities(env, "appointment").len(), 2, "nothing deleted");
    // The administrator confirms it.
    env.ok(&["sync", "--accept-empty"]);
    assert!(activities(env, "appointment").is_empty());
}

#[test]
fn the_daemon_sees_a_file_written_and_writes_crm_changes_back() {
    let c = setup("");
    let env = &c.env;
    let mut daemon = Daemon::start(env);
    daemon.wait_for_state("alice", "idle");
    write(&c.calendar, "live.ics", &event("live", "Live", "CRM", ""));
    let created = wait_until("the appointment", Duration::from_secs(20), || {
        activities(env, "appointment").into_iter().next()
    });
    assert_eq!(created["subject"], "Live");
    let id = created["id"].as_str().unwrap().to_owned();
    env.ok(&["activity", "set", &id, "location=Room 9"]);
    wait_until("the location in the file", Duration::from_secs(20), || {
        read(&c.calendar, "live.ics")
            .contains("LOCATION:Room 9\r\n")
            .then_some(())
    });
    let status = daemon.wait_for_state("alice", "idle");
    let calendar = &status["collections"][0];
    assert_eq!(calendar["name"], "calendar", "{status}");
    assert_eq!(calendar["tracked"], 1);
    daemon.terminate(Duration::from_secs(10));
}

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

/// One item of each kind, as a person's client writes it.
struct Kind {
    name: &'static str,
    dir: fn(&Collections) -> &Path,
    file: &'static str,
    text: &'static str,
    /// How the CRM lists it: `activity list --type T`, or the contact records.
    list: fn(&Env) -> Vec<Value>,
    /// Deletes the CRM copy as a CRM user would.
    delete: fn(&Env, &Value),
}

fn contacts_of(env: &Env) -> Vec<Value> {
    env.json(&["record", "list", "contact"])
        .as_array()
        .unwrap()
        .clone()
}

const KINDS: &[Kind] = &[
    Kind {
        name: "event",
        dir: |c| &c.calendar,
        file: "k.ics",
        text: "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:k-event\r\nSUMMARY:Visit\r\n\
DTSTART:20261202T090000Z\r\nDTEND:20261202T100000Z\r\nCATEGORIES:CRM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        list: |env| activities(env, "appointment"),
        delete: |env, row| {
            env.ok(&["activity", "delete", row["id"].as_str().unwrap()]);
        },
    },
    Kind {
        name: "task",
        dir: |c| &c.calendar,
        file: "k.ics",
        text: "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:k-task\r\nSUMMARY:Visit\r\n\
DUE:20261202T090000Z\r\nCATEGORIES:CRM\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
        list: |env| activities(env, "task"),
        delete: |env, row| {
            env.ok(&["activity", "delete", row["id"].as_str().unwrap()]);
        },
    },
    Kind {
        name: "contact",
        dir: |c| &c.contacts,
        file: "k.vcf",
        text: "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:k-contact\r\nFN:Visit\r\nN:Visit;;;;\r\n\
CATEGORIES:CRM\r\nEND:VCARD\r\n",
        list: contacts_of,
        delete: |env, row| {
            env.ok(&["record", "delete", row["number"].as_str().unwrap()]);
        },
    },
];

fn subject_of(kind: &Kind, row: &Value) -> String {
    let key = if kind.name == "contact" {
        "name"
    } else {
        "subject"
    };
    row[key].as_str().unwrap().to_owned()
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
