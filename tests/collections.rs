//! Calendar and address-book sync with the real binary on real vdir directories (issue 5):
//! tracking by category, edits on either side, per-field merge and conflicts, the delete matrix,
//! renames, malformed files, empty listings, CRM-created items, the daemon's filesystem push,
//! and files that a real client library (Python's icalendar and vobject) accepts.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::Env;
use support::collections::*;
use support::daemon::{Daemon, wait_until};

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
    // Clients and servers see that it changed (issue 12): a new DTSTAMP, a LAST-MODIFIED,
    // and SEQUENCE raised for a move (the location edit before was not significant).
    assert!(!moved.contains("DTSTAMP:20261129T100000Z"), "{moved}");
    assert!(moved.contains("\r\nLAST-MODIFIED:20"), "{moved}");
    assert!(moved.contains("\r\nSEQUENCE:1\r\n"), "{moved}");
    assert!(
        !after.contains("SEQUENCE:"),
        "a location change is not significant: {after}"
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
    // A copy of good.ics under another name (read after it): the same UID twice.
    write(&c.calendar, "zz-copy.ics", &event("g1", "Copy", "CRM", ""));
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1, "failures make the exit code 1");
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let pass = &pass["mailboxes"][0];
    assert_eq!(pass["failed"], 2, "{pass}");
    assert_eq!(pass["created"], 1);
    let warnings = pass["warnings"].to_string();
    assert!(warnings.contains("broken.ics"), "{warnings}");
    assert!(
        warnings.contains("zz-copy.ics") && warnings.contains("is also the UID of good.ics"),
        "{warnings}"
    );
    assert_eq!(pass["collections"][0]["failed"], 2);
    assert_eq!(activity(env, "appointment")["subject"], "Good");

    // The failed-items list holds both files, and lets each go once it is fixed or gone.
    let failed = || {
        let mut items: Vec<String> = env
            .json(&["items", "--failed"])
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f["scope"].as_str().unwrap(),
                    f["item"].as_str().unwrap()
                )
            })
            .collect();
        items.sort();
        items
    };
    assert_eq!(failed(), ["calendar broken.ics", "calendar zz-copy.ics"]);
    std::fs::remove_file(c.calendar.join("broken.ics")).unwrap();
    write(&c.calendar, "zz-copy.ics", &event("n1", "Fixed", "", ""));
    env.ok(&["sync"]);
    assert!(failed().is_empty(), "{:?}", failed());
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
    // The status file follows within a second (it is written at most once a second).
    let status = wait_until(
        "the status file to count it",
        Duration::from_secs(10),
        || {
            daemon
                .mailbox_state("alice")
                .filter(|m| m["state"] == "idle" && m["collections"][0]["tracked"] == 1)
        },
    );
    assert_eq!(status["collections"][0]["name"], "calendar", "{status}");
    daemon.terminate(Duration::from_secs(10));
}

/// The daemon's "pass done" lines that looked only at the files a watcher named (`true`) or
/// at everything (`false`).
fn passes(daemon: &Daemon, partial: bool) -> usize {
    let wanted = format!("partial={partial}");
    daemon
        .log_text()
        .lines()
        .map(without_colours)
        .filter(|line| line.contains("pass done") && line.contains(&wanted))
        .count()
}

/// A log line without its terminal colour codes.
fn without_colours(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Issue 14: after its first pass the daemon passes over only the files inotify named, and
/// gets what a whole pass would: a new file tracked, a rename followed (no second row), a copy
/// refused as a second file of the same UID, a malformed file counted until it is fixed, a
/// deletion carried to the CRM; the status file's counts stay those of the whole collection.
#[test]
fn the_daemon_passes_over_only_the_files_that_changed() {
    let c = setup("");
    let env = &c.env;
    for n in 1..=3 {
        let uid = format!("old{n}");
        write(
            &c.calendar,
            &format!("{uid}.ics"),
            &event(&uid, "Old", "CRM", ""),
        );
    }
    write(
        &c.calendar,
        "private.ics",
        &event("private", "Dentist", "", ""),
    );
    write(
        &c.calendar,
        "broken.ics",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n",
    );
    let mut daemon = Daemon::start(env);
    daemon.wait_for_state("alice", "idle");
    let calendar_status = |items: u64, tracked: u64, failed: u64| {
        let what = format!("{items} files, {tracked} tracked, {failed} failed in the status file");
        wait_until(&what, Duration::from_secs(20), || {
            let status = daemon.mailbox_state("alice")?;
            let calendar = &status["collections"][0];
            (status["state"] == "idle"
                && calendar["items"] == items
                && calendar["tracked"] == tracked
                && calendar["failed"] == failed
                && status["failed"] == failed)
                .then_some(())
        })
    };
    calendar_status(5, 3, 1);
    let whole = passes(&daemon, false);
    assert!(whole >= 1, "{}", daemon.log_text());
    assert_eq!(activities(env, "appointment").len(), 3);

    write(&c.calendar, "new.ics", &event("new", "New", "CRM", ""));
    wait_until("the new appointment", Duration::from_secs(20), || {
        (activities(env, "appointment").len() == 4).then_some(())
    });
    calendar_status(6, 4, 1);

    // Renamed: the link follows the file, no second row.
    std::fs::rename(c.calendar.join("new.ics"), c.calendar.join("renamed.ics")).unwrap();
    // Copied: the copy's UID belongs to the file its link points at.
    std::fs::copy(c.calendar.join("old1.ics"), c.calendar.join("copy.ics")).unwrap();
    calendar_status(7, 4, 2);
    assert_eq!(activities(env, "appointment").len(), 4);
    // Fixed: no longer failed (an untracked event now).
    write(&c.calendar, "broken.ics", &event("fixed", "Fixed", "", ""));
    std::fs::remove_file(c.calendar.join("copy.ics")).unwrap();
    calendar_status(6, 4, 0);
    // Deleted: the owner's row goes, the renamed file's included.
    std::fs::remove_file(c.calendar.join("renamed.ics")).unwrap();
    calendar_status(5, 3, 0);
    let subjects: Vec<String> = activities(env, "appointment")
        .iter()
        .map(|a| a["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects, ["Old", "Old", "Old"]);
    // All of it in passes over the files named; no whole pass since the first ones.
    assert_eq!(passes(&daemon, false), whole, "{}", daemon.log_text());
    assert!(passes(&daemon, true) >= 4, "{}", daemon.log_text());
    daemon.terminate(Duration::from_secs(10));
}

/// Issue 12's regressions: an Apple/iCloud card with grouped properties, a Windows export
/// with a byte-order mark, a vCard 2.1 card with bare types: each is tracked with its
/// addresses, and a CRM edit is written back into the file's own syntax (the group, the bare
/// types and the mark kept; everything else byte for byte).
#[test]
fn grouped_bom_and_bare_type_cards_are_tracked_and_written_back_in_their_own_syntax() {
    let c = setup("");
    let env = &c.env;
    let apple = "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iOS 17.0//EN\r\nUID:apple-1\r\n\
FN:Dana Apple\r\nN:Apple;Dana;;;\r\nitem1.EMAIL;type=INTERNET;type=pref:dana@apple.example\r\n\
item1.X-ABLabel:_$!<Work>!$_\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n";
    let bom = "\u{feff}BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bom-1\r\nFN:Erin Bom\r\nN:Bom;Erin;;;\r\n\
EMAIL:erin@bom.example\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n";
    let old = "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:old-1\r\nFN:Fred Old\r\nN:Old;Fred\r\n\
TEL;WORK;VOICE:+1 555 0100\r\nEMAIL;INTERNET:fred@old.example\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n";
    write(&c.contacts, "apple.vcf", apple);
    write(&c.contacts, "bom.vcf", bom);
    write(&c.contacts, "old.vcf", old);
    let pass = env.json(&["sync"]);
    assert_eq!(pass["mailboxes"][0]["failed"], 0, "{pass:#}");
    let contacts = contacts_of(env);
    let email_of = |name: &str| -> Value {
        contacts
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} tracked: {contacts:#?}"))["emails"][0]
            .clone()
    };
    assert_eq!(email_of("Dana Apple"), "dana@apple.example");
    assert_eq!(email_of("Erin Bom"), "erin@bom.example");
    assert_eq!(email_of("Fred Old"), "fred@old.example");

    // A CRM edit of each goes back into the file in that file's syntax.
    for name in ["Dana Apple", "Erin Bom", "Fred Old"] {
        let number = contacts.iter().find(|c| c["name"] == name).unwrap()["number"]
            .as_str()
            .unwrap()
            .to_owned();
        env.ok(&["record", "set", &number, &format!("name={name} Jr")]);
    }
    env.ok(&["sync"]);
    let read = |file: &str| std::fs::read_to_string(c.contacts.join(file)).unwrap();
    let apple_now = read("apple.vcf");
    assert!(apple_now.contains("FN:Dana Apple Jr\r\n"), "{apple_now}");
    assert_eq!(
        apple_now.replace("FN:Dana Apple Jr\r\n", "FN:Dana Apple\r\n"),
        apple,
        "only the changed property differs"
    );
    let bom_now = read("bom.vcf");
    assert!(
        bom_now.starts_with('\u{feff}') && bom_now.contains("FN:Erin Bom Jr\r\n"),
        "{bom_now}"
    );
    let old_now = read("old.vcf");
    assert!(
        old_now.contains("TEL;WORK;VOICE:+1 555 0100\r\n"),
        "{old_now}"
    );
    assert!(old_now.contains("FN:Fred Old Jr\r\n"), "{old_now}");
}

/// Issue 12: files that hold no event or task (a journal entry, free/busy, only changed
/// occurrences of a series kept elsewhere) are skipped and counted as such, never as failures,
/// and `item show` says why; an event's changed occurrence (RECURRENCE-ID) survives a write-back.
#[test]
fn journals_free_busy_and_lone_overrides_are_skipped_and_overrides_survive() {
    let c = setup("");
    let env = &c.env;
    let wrap = |body: &str| {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n")
    };
    write(
        &c.calendar,
        "journal.ics",
        &wrap(
            "BEGIN:VJOURNAL\r\nUID:j1\r\nDTSTAMP:20261129T100000Z\r\nSUMMARY:Notes\r\nEND:VJOURNAL\r\n",
        ),
    );
    write(
        &c.calendar,
        "busy.ics",
        &wrap(
            "BEGIN:VFREEBUSY\r\nUID:f1\r\nDTSTAMP:20261129T100000Z\r\nFREEBUSY:20261201T100000Z/PT1H\r\nEND:VFREEBUSY\r\n",
        ),
    );
    write(
        &c.calendar,
        "override.ics",
        &wrap(
            "BEGIN:VEVENT\r\nUID:o1\r\nDTSTAMP:20261129T100000Z\r\nRECURRENCE-ID:20261208T100000Z\r\n\
DTSTART:20261208T120000Z\r\nDTEND:20261208T130000Z\r\nSUMMARY:Moved once\r\nCATEGORIES:CRM\r\nEND:VEVENT\r\n",
        ),
    );
    let override_block = "BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20261129T100000Z\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20261208T100000\r\nDTSTART;TZID=Europe/Berlin:20261208T140000\r\n\
DTEND;TZID=Europe/Berlin:20261208T150000\r\nSUMMARY:Series (moved once)\r\nX-KEEP:me\r\nEND:VEVENT\r\n";
    let series = event("s1", "Series", "CRM", "").replace(
        "END:VCALENDAR\r\n",
        &format!("{override_block}END:VCALENDAR\r\n"),
    );
    write(&c.calendar, "series.ics", &series);
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let calendar = &pass["mailboxes"][0]["collections"][0];
    assert_eq!(calendar["failed"], 0, "{pass:#}");
    assert_eq!(calendar["skipped"], 3, "{pass:#}");
    assert_eq!(activities(env, "appointment").len(), 1);
    let pane = env.json(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--href",
        "journal.ics",
    ]);
    assert!(
        pane["notes"][0]
            .as_str()
            .unwrap()
            .contains("VJOURNAL: not an event or task"),
        "{pane:#}"
    );
    let pane = env.json(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--href",
        "override.ics",
    ]);
    assert!(
        pane["notes"][0]
            .as_str()
            .unwrap()
            .contains("only changed occurrences"),
        "{pane:#}"
    );

    // A CRM edit of the series leaves its changed occurrence byte for byte.
    let id = activity(env, "appointment")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&["activity", "set", &id, "location=Room 9"]);
    env.ok(&["sync"]);
    let after = read(&c.calendar, "series.ics");
    assert!(after.contains("LOCATION:Room 9\r\n"), "{after}");
    assert!(
        after.contains(override_block),
        "the override survives: {after}"
    );
}

/// Issue 12: a vCard 2.1 card as Outlook and Android write it (quoted-printable with soft line
/// breaks, Latin-1 and UTF-8) is tracked with its decoded name; a CRM edit is written back in
/// 2.1 syntax (the changed value plain, everything else byte for byte), and Python's vobject
/// reads the result.
#[test]
fn a_vcard_21_with_quoted_printable_values_is_tracked_and_written_back() {
    let c = setup("");
    let env = &c.env;
    let card = "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:qp-1\r\nN;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:M=FCller;Ren=E9\r\n\
FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Ren=C3=A9 M=C3=BCl=\r\nler\r\n\
EMAIL;PREF;INTERNET:rene@mueller.example\r\nTEL;WORK;VOICE:+49 30 1234\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n";
    write(&c.contacts, "rene.vcf", card);
    let pass = env.json(&["sync"]);
    assert_eq!(pass["mailboxes"][0]["failed"], 0, "{pass:#}");
    let contacts = contacts_of(env);
    assert_eq!(contacts[0]["name"], "René Müller", "{contacts:#?}");
    assert_eq!(contacts[0]["emails"][0], "rene@mueller.example");
    let number = contacts[0]["number"].as_str().unwrap().to_owned();
    env.ok(&["record", "set", &number, "name=René Müller-Lüdenscheidt"]);
    env.ok(&["sync"]);
    let written = read(&c.contacts, "rene.vcf");
    assert!(
        written.starts_with("BEGIN:VCARD\r\nVERSION:2.1\r\n"),
        "{written}"
    );
    assert!(
        written.contains("\r\nFN;CHARSET=UTF-8:René Müller-Lüdenscheidt\r\n"),
        "{written}"
    );
    assert!(
        written.contains("TEL;WORK;VOICE:+49 30 1234\r\n"),
        "{written}"
    );
    let python = support::smtp::python();
    let check = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, vobject; c = vobject.readOne(open(sys.argv[1], encoding='utf-8').read()); print(c.fn.value)",
        ])
        .arg(c.contacts.join("rene.vcf"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "René Müller-Lüdenscheidt"
    );
}

/// Issue 12: most exported vCards have no UID. An untracked one is left alone (not touched,
/// not failed); a tracked one is given a UID (the only line added) and tracked, and keeps it.
#[test]
fn a_tracked_card_without_a_uid_is_given_one_and_an_untracked_one_is_left_alone() {
    let c = setup("");
    let env = &c.env;
    let untracked = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Uid\r\nN:Uid;No;;;\r\nEND:VCARD\r\n";
    let tracked = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Gina Export\r\nN:Export;Gina;;;\r\n\
EMAIL:gina@export.example\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n";
    write(&c.contacts, "untracked.vcf", untracked);
    write(&c.contacts, "tracked.vcf", tracked);
    let pass = env.json(&["sync"]);
    assert_eq!(pass["mailboxes"][0]["failed"], 0, "{pass:#}");
    assert_eq!(read(&c.contacts, "untracked.vcf"), untracked, "untouched");
    let given = read(&c.contacts, "tracked.vcf");
    let uid_line = given
        .lines()
        .find(|l| l.starts_with("UID:"))
        .unwrap_or_else(|| panic!("a UID: {given}"))
        .to_owned();
    assert_eq!(
        given.replace(&format!("{uid_line}\r\n"), ""),
        tracked,
        "only the UID line is added"
    );
    let contacts = contacts_of(env);
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["emails"][0], "gina@export.example");
    env.ok(&["sync"]);
    assert_eq!(read(&c.contacts, "tracked.vcf"), given, "the UID stays");
    assert_eq!(contacts_of(env).len(), 1, "no second contact");
}
