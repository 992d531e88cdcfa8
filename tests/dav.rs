//! Calendars and address books on real CalDAV/CardDAV servers (issue 15): Radicale and
//! Xandikos, started on loopback from the test venv, driven by the real binary; curl plays
//! the person's own client. Every scenario runs against both servers.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::Env;
use support::collections::{activities, activity, contacts_of, event};
use support::daemon::{Daemon, wait_until};
use support::dav::{DavServer, Kind};

/// A mailbox whose calendar and address book are on `server`; `url` picks how they are
/// named: `None` for each collection's own URL, `Some(url)` for discovery from there.
fn setup(server: &DavServer, url: Option<&str>) -> Env {
    let env = Env::new();
    let password = env.path("dav.password");
    std::fs::write(&password, format!("{}\n", support::dav::PASSWORD)).unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let calendar = url.map_or_else(|| server.collection(true), str::to_owned);
    let contacts = url.map_or_else(|| server.collection(false), str::to_owned);
    env.write_config(&format!(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n\
         [[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\n\
         [mailbox.calendar]\n{}\n[mailbox.contacts]\n{}",
        server.config_keys(&calendar, &password),
        server.config_keys(&contacts, &password),
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
    env
}

fn sync(env: &Env) -> Value {
    env.json(&["sync"])["mailboxes"][0].clone()
}

fn collection<'a>(pass: &'a Value, name: &str) -> &'a Value {
    pass["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {pass}"))
}

const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-1\r\nFN:Eve Doe\r\nN:Doe;Eve;;;\r\n\
EMAIL:eve@example.org\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n";

/// Both servers, one test each.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod radicale {
            $(#[test] fn $name() { super::$name(super::Kind::Radicale) })*
        }
        mod xandikos {
            $(#[test] fn $name() { super::$name(super::Kind::Xandikos) })*
        }
    };
}

on_both!(
    discovery_finds_the_collections_and_check_names_the_configured_one,
    items_sync_both_ways_with_merges_conflicts_and_untrack,
    crm_created_items_appear_and_leave_per_the_delete_matrix,
    a_stale_etag_is_refused_and_the_edit_is_merged_not_overwritten,
    an_emptied_collection_deletes_nothing,
    a_server_down_or_a_wrong_password_is_a_clear_collection_error,
    the_daemon_polls_the_server_and_writes_crm_changes_back,
);

fn discovery_finds_the_collections_and_check_names_the_configured_one(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, Some(&format!("{}/", server.base())));
    let check = env.ok(&["check"]);
    let calendar = server.collection(true);
    let contacts = server.collection(false);
    assert!(
        check.contains(&format!("calendar    configured: {calendar}")),
        "{check}"
    );
    assert!(
        check.contains(&format!("contacts    configured: {contacts}")),
        "{check}"
    );
    // Found from the server's root, the collections sync as if named directly.
    assert_eq!(
        server.put(
            true,
            "e1.ics",
            &event("e1@example.com", "Kickoff", "CRM", "")
        ),
        201
    );
    assert_eq!(server.put(false, "c1.vcf", CARD), 201);
    let pass = sync(&env);
    assert_eq!(pass["created"], 2, "{pass}");
    assert_eq!(activity(&env, "appointment")["subject"], "Kickoff");
    assert_eq!(contacts_of(&env)[0]["name"], "Eve Doe");
    assert_eq!(collection(&pass, "calendar")["path"], calendar.as_str());

    // A second calendar makes the choice ambiguous: check says so and lists both.
    let second = format!(
        "{}second/",
        calendar
            .trim_end_matches('/')
            .rsplit_once('/')
            .unwrap()
            .0
            .to_owned()
            + "/"
    );
    let made = server.curl(&["-X", "MKCALENDAR", &second]);
    assert_eq!(made.0, 201, "{made:?}");
    let run = env.run(&["check"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("found: {second}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2 collections found from"),
        "{}",
        run.stdout
    );
}

fn items_sync_both_ways_with_merges_conflicts_and_untrack(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    server.put(
        true,
        "e1.ics",
        &event("e1@example.com", "Kickoff", "Work,CRM", ""),
    );
    server.put(
        true,
        "private.ics",
        &event("p1@example.com", "Dentist", "Private", ""),
    );
    let pass = sync(&env);
    assert_eq!(pass["created"], 1, "{pass}");
    let kickoff = activity(&env, "appointment");
    assert_eq!(kickoff["start"], "2026-12-01T09:00:00Z");
    assert_eq!(kickoff["regarding"]["number"], "ACC-1001");
    let id = kickoff["id"].as_str().unwrap().to_owned();

    // Nothing new: nothing written on either side.
    let before = server.get(true, "e1.ics").unwrap();
    let pass = sync(&env);
    assert_eq!(
        (pass["created"].as_u64(), pass["updated"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(pass["items_written"], 0, "{pass}");
    assert_eq!(server.get(true, "e1.ics").unwrap(), before);

    // A CRM edit reaches the server, what crmsync does not map kept.
    env.ok(&["activity", "set", &id, "location=Room 4"]);
    sync(&env);
    let after = server.get(true, "e1.ics").unwrap();
    assert!(after.contains("LOCATION:Room 4"), "{after}");
    assert!(after.contains("X-KHAL-THING:kept"), "{after}");
    assert!(after.contains("TRIGGER:-PT15M"), "{after}");

    // Both sides edit different fields: both kept. The same field: the mailbox wins, logged.
    server.put(
        true,
        "e1.ics",
        &after.replace("SUMMARY:Kickoff", "SUMMARY:Kickoff (v2)"),
    );
    env.ok(&["activity", "set", &id, "location=Room 5"]);
    sync(&env);
    assert_eq!(activity(&env, "appointment")["subject"], "Kickoff (v2)");
    let now = server.get(true, "e1.ics").unwrap();
    assert!(now.contains("LOCATION:Room 5"), "{now}");
    server.put(
        true,
        "e1.ics",
        &now.replace("SUMMARY:Kickoff (v2)", "SUMMARY:Person's"),
    );
    env.ok(&["activity", "set", &id, "subject=CRM's"]);
    sync(&env);
    assert_eq!(activity(&env, "appointment")["subject"], "Person's");
    assert!(
        server
            .get(true, "e1.ics")
            .unwrap()
            .contains("SUMMARY:Person's")
    );
    let conflicts = env.json(&["conflicts"]);
    let conflict = &conflicts.as_array().unwrap()[0];
    assert_eq!(conflict["field"], "subject");
    assert_eq!(conflict["crm_value"], "CRM's");
    assert_eq!(conflict["winner"], "mailbox");

    // A contact, both ways (beside an untracked one: a collection left empty would be held
    // by the empty-listing guard).
    server.put(false, "c1.vcf", CARD);
    server.put(
        false,
        "other.vcf",
        &CARD
            .replace("card-1", "card-2")
            .replace("CATEGORIES:CRM\r\n", ""),
    );
    sync(&env);
    let eve = contacts_of(&env)[0].clone();
    env.ok(&[
        "record",
        "set",
        eve["number"].as_str().unwrap(),
        "job_title=Buyer",
    ]);
    sync(&env);
    let card = server.get(false, "c1.vcf").unwrap();
    assert!(card.contains("TITLE:Buyer"), "{card}");

    // Untracking deletes the owner's CRM copy; the item stays on the server.
    let text = server
        .get(true, "e1.ics")
        .unwrap()
        .replace("CATEGORIES:Work,CRM", "CATEGORIES:Work");
    server.put(true, "e1.ics", &text);
    let pass = sync(&env);
    assert_eq!(pass["deleted"], 1, "{pass}");
    assert!(activities(&env, "appointment").is_empty());
    assert!(server.get(true, "e1.ics").is_some());
    // Deleted on the server: the contact's CRM copy goes too.
    assert_eq!(server.delete(false, "c1.vcf") / 100, 2);
    let pass = sync(&env);
    assert_eq!(pass["deleted"], 1, "{pass}");
    assert!(contacts_of(&env).is_empty());
}

fn crm_created_items_appear_and_leave_per_the_delete_matrix(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
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
    sync(&env);
    let file = format!("{id}.ics");
    let text = server
        .get(true, &file)
        .expect("the CRM's appointment is on the server");
    assert!(text.contains(&format!("UID:{id}")), "{text}");
    assert!(text.contains("SUMMARY:Demo"), "{text}");
    // Written once: a second pass neither duplicates nor rewrites.
    let pass = sync(&env);
    assert_eq!(pass["items_written"], 0, "{pass}");
    assert_eq!(server.names(true), vec![file.clone()]);

    // The person's own item loses only its category when its CRM copy is deleted; the CRM's
    // is removed from the server.
    server.put(
        true,
        "mine.ics",
        &event("mine@example.com", "Mine", "CRM", ""),
    );
    sync(&env);
    let mine = activities(&env, "appointment")
        .into_iter()
        .find(|a| a["subject"] == "Mine")
        .unwrap();
    env.ok(&["activity", "delete", mine["id"].as_str().unwrap()]);
    env.ok(&["activity", "delete", &id]);
    sync(&env);
    assert_eq!(server.names(true), vec!["mine.ics".to_owned()]);
    let kept = server.get(true, "mine.ics").unwrap();
    assert!(kept.contains("SUMMARY:Mine"), "{kept}");
    assert!(!kept.contains("CATEGORIES:CRM"), "{kept}");
    assert!(
        activities(&env, "appointment").is_empty(),
        "not tracked again"
    );
}

fn a_stale_etag_is_refused_and_the_edit_is_merged_not_overwritten(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    server.put(
        true,
        "e1.ics",
        &event("e1@example.com", "Kickoff", "CRM", ""),
    );
    sync(&env);
    let id = activity(&env, "appointment")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The server refuses a write with an etag that is no longer the item's: 412.
    let (_, listing) = server.curl_body(
        &["-X", "PROPFIND", "-H", "Depth: 0", &format!("{}e1.ics", server.collection(true))],
        r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#,
    );
    let etag = listing
        .split("getetag>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap()
        .replace("&quot;", "\"");
    let person = server
        .get(true, "e1.ics")
        .unwrap()
        .replace("SUMMARY:Kickoff", "SUMMARY:Person's edit");
    server.put(true, "e1.ics", &person);
    let stale = server.curl_body(
        &[
            "-X",
            "PUT",
            "-H",
            &format!("If-Match: {etag}"),
            "-H",
            "Content-Type: text/calendar",
            &format!("{}e1.ics", server.collection(true)),
        ],
        &person.replace("Person's edit", "Overwritten"),
    );
    assert_eq!(stale.0, 412, "{stale:?}");
    // crmsync's pass reads the newer item and merges the CRM's edit into it.
    env.ok(&["activity", "set", &id, "location=Room 9"]);
    sync(&env);
    let merged = server.get(true, "e1.ics").unwrap();
    assert!(merged.contains("SUMMARY:Person's edit"), "{merged}");
    assert!(merged.contains("LOCATION:Room 9"), "{merged}");
    assert_eq!(activity(&env, "appointment")["subject"], "Person's edit");
}

fn an_emptied_collection_deletes_nothing(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    server.put(true, "e1.ics", &event("e1@example.com", "One", "CRM", ""));
    server.put(true, "e2.ics", &event("e2@example.com", "Two", "CRM", ""));
    sync(&env);
    assert_eq!(activities(&env, "appointment").len(), 2);
    for name in ["e1.ics", "e2.ics"] {
        assert_eq!(server.delete(true, name) / 100, 2);
    }
    let pass = sync(&env);
    let calendar = collection(&pass, "calendar");
    assert_eq!(calendar["state"], "error", "{pass}");
    assert!(
        calendar["last_error"]
            .as_str()
            .unwrap()
            .contains("lists no item"),
        "{pass}"
    );
    assert_eq!(activities(&env, "appointment").len(), 2, "nothing deleted");
    let accepted = env.json(&["sync", "--accept-empty"]);
    assert_eq!(accepted["mailboxes"][0]["deleted"], 2, "{accepted}");
}

fn a_server_down_or_a_wrong_password_is_a_clear_collection_error(kind: Kind) {
    let mut server = DavServer::start(kind);
    let env = setup(&server, None);
    server.put(
        true,
        "e1.ics",
        &event("e1@example.com", "Kickoff", "CRM", ""),
    );
    sync(&env);
    server.stop();
    let pass = sync(&env);
    let calendar = collection(&pass, "calendar");
    assert_eq!(calendar["state"], "error", "{pass}");
    let message = calendar["last_error"].as_str().unwrap();
    assert!(message.contains("cannot connect"), "{message}");
    assert_eq!(activities(&env, "appointment").len(), 1, "nothing deleted");
    server.restart();
    std::fs::write(env.path("dav.password"), "wrong\n").unwrap();
    let pass = sync(&env);
    let message = collection(&pass, "calendar")["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("refused the login of alice"), "{message}");
    assert!(
        !message.contains("wrong"),
        "no password in messages: {message}"
    );
    assert_eq!(activities(&env, "appointment").len(), 1, "nothing deleted");
}

fn the_daemon_polls_the_server_and_writes_crm_changes_back(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    let daemon = Daemon::start(&env);
    server.put(
        true,
        "e1.ics",
        &event("e1@example.com", "Kickoff", "CRM", ""),
    );
    let row = wait_until("the event is tracked", Duration::from_secs(20), || {
        activities(&env, "appointment").into_iter().next()
    });
    let id = row["id"].as_str().unwrap().to_owned();
    env.ok(&["activity", "set", &id, "location=Room 7"]);
    wait_until(
        "the CRM edit reaches the server",
        Duration::from_secs(20),
        || {
            server
                .get(true, "e1.ics")
                .filter(|text| text.contains("LOCATION:Room 7"))
        },
    );
    let edited = server
        .get(true, "e1.ics")
        .unwrap()
        .replace("SUMMARY:Kickoff", "SUMMARY:Moved");
    server.put(true, "e1.ics", &edited);
    wait_until(
        "the server edit reaches the CRM",
        Duration::from_secs(20),
        || {
            activities(&env, "appointment")
                .into_iter()
                .find(|a| a["subject"] == "Moved")
        },
    );
    drop(daemon);
}
