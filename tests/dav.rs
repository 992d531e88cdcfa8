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
    trace_logging_shows_no_password_and_no_item,
    the_adapter_reads_412_as_changed_or_exists_and_lists_incrementally,
    kills_during_a_first_import_duplicate_nothing_on_either_side,
    a_new_process_asks_only_for_what_changed_since_the_saved_token,
    a_broken_server_collection_leaves_the_mail_going_and_heals,
    crm_changes_between_polls_never_take_an_item_for_deleted,
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
    // A row the CRM makes for the owner appears on the server (a whole pass: it has no link
    // yet); one it deletes leaves the person's item without its category (a pass over the
    // one item linked to it).
    let created = env.json(&[
        "activity",
        "add",
        "appointment",
        "--owner",
        "alice@example.com",
        "--subject",
        "From the CRM",
        "--start",
        "2026-12-04T09:00:00Z",
        "--end",
        "2026-12-04T10:00:00Z",
    ]);
    let file = format!("{}.ics", created["id"].as_str().unwrap());
    wait_until(
        "the CRM's appointment reaches the server",
        Duration::from_secs(20),
        || server.get(true, &file),
    );
    env.ok(&["activity", "delete", &id]);
    wait_until(
        "the delete reaches the server",
        Duration::from_secs(20),
        || {
            server
                .get(true, "e1.ics")
                .filter(|text| !text.contains("CATEGORIES:CRM"))
        },
    );
    assert!(server.get(true, &file).is_some());
    let log = daemon.log_text();
    assert!(!log.contains("ERROR"), "{log}");
    drop(daemon);
}

fn trace_logging_shows_no_password_and_no_item(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    let marker = "Board-minutes-SECRET-91d3";
    server.put(
        true,
        "e1.ics",
        &event(
            "e1@example.com",
            "Kickoff",
            "CRM",
            &format!("DESCRIPTION:{marker}\r\n"),
        ),
    );
    let filters = ["trace", "trace,reqwest=trace,hyper=trace,hyper_util=trace"];
    for (round, filter) in filters.into_iter().enumerate() {
        if round > 0 {
            let description = format!("DESCRIPTION:{marker}\r\n");
            server.put(
                true,
                "e2.ics",
                &event("e2@example.com", "Two", "CRM", &description),
            );
        }
        let daemon = Daemon::start_logging(&env, filter);
        wait_until("the event is tracked", Duration::from_secs(20), || {
            (activities(&env, "appointment").len() == round + 1).then_some(())
        });
        std::thread::sleep(Duration::from_millis(1500));
        let status = daemon.terminate(Duration::from_secs(20));
        assert!(status.success());
        let log = std::fs::read_to_string(env.path("daemon.log")).unwrap();
        assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
        // The password, as itself and inside a Basic authorization header.
        for secret in [
            support::dav::PASSWORD,
            "YWxpY2U6UGE1NS1kYXYteHl6enktMDgxNQ==",
            "Authorization",
        ] {
            assert!(
                !log.contains(secret),
                "RUST_LOG={filter}: {secret} is logged"
            );
        }
        assert!(
            !log.contains(marker),
            "RUST_LOG={filter}: the item is logged"
        );
    }
    assert!(
        activities(&env, "appointment")
            .iter()
            .all(|a| a["description"].as_str().unwrap().contains(marker)),
        "the marker was there to be logged"
    );
}

/// The adapter on its own against the server: conditional writes refused with 412 come back
/// as `Changed` (update, delete) or `Exists` (create) and leave the person's item as it was;
/// a listing after a change asks only for what changed; multiget reads in batches.
fn the_adapter_reads_412_as_changed_or_exists_and_lists_incrementally(kind: Kind) {
    use crmsync_dav::DavCollection;
    use crmsync_vdir::collection::{Collection, CollectionError};

    let server = DavServer::start(kind);
    let env = setup(&server, None);
    let config = crmsync_config::Config::load(&env.config).unwrap();
    let crmsync_config::Place::Server(dav) = &config.mailboxes[0].calendar.as_ref().unwrap().place
    else {
        panic!("a server collection");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let calendar = DavCollection::connect(dav, crmsync_dav::Kind::Calendar)
            .await
            .unwrap();
        let text = event("e1@example.com", "Kickoff", "CRM", "");
        let etag = calendar.create("e1.ics", &text).await.unwrap();
        assert_eq!(
            calendar.create("e1.ics", &text).await,
            Err(CollectionError::Exists("e1.ics".into()))
        );
        // The person saves meanwhile: crmsync's write with the etag it read is refused.
        let person = text.replace("SUMMARY:Kickoff", "SUMMARY:Person's");
        assert_eq!(server.put(true, "e1.ics", &person) / 100, 2);
        let stale = calendar
            .update("e1.ics", &text.replace("Kickoff", "Overwrite"), &etag)
            .await;
        assert_eq!(
            stale,
            Err(CollectionError::Changed {
                href: "e1.ics".into()
            })
        );
        assert_eq!(
            calendar.delete("e1.ics", &etag).await,
            Err(CollectionError::Changed {
                href: "e1.ics".into()
            })
        );
        assert!(
            server
                .get(true, "e1.ics")
                .unwrap()
                .contains("SUMMARY:Person's")
        );
        // Read again, the write with the new etag goes through.
        let (now, etag) = calendar.read("e1.ics").await.unwrap();
        assert!(now.contains("SUMMARY:Person's"));
        let etag = calendar
            .update("e1.ics", &now.replace("Person's", "Merged"), &etag)
            .await
            .unwrap();
        assert!(
            server
                .get(true, "e1.ics")
                .unwrap()
                .contains("SUMMARY:Merged")
        );

        // A listing, then what changed since its token: one new item, one gone.
        // The first listing is a PROPFIND (no waiting for the server's change history);
        // the next asks for a sync token.
        let listing = calendar.list(true).await.unwrap();
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.entries[0].etag, etag);
        let first = listing.token.clone().unwrap();
        assert!(first.starts_with("first:"), "{first}");
        let listing = calendar.list(true).await.unwrap();
        assert_eq!(listing.entries.len(), 1);
        let token = listing.token.clone().expect("a sync token");
        assert!(token.starts_with("sync:"), "{token}");
        let unchanged = calendar.changes(&token).await.unwrap().unwrap();
        assert!(unchanged.changed.is_empty() && unchanged.gone.is_empty());
        // A server without sync-collection is followed by its ctag: the same ctag, nothing
        // changed; another, `None` (the caller lists it whole).
        let ctag = first.replacen("first:", "ctag:", 1);
        assert!(
            ctag.len() > "ctag:".len(),
            "{first}: the server has a getctag"
        );
        let same = calendar.changes(&ctag).await.unwrap().unwrap();
        assert!(same.changed.is_empty() && same.gone.is_empty());
        for n in 0..150 {
            let text = event(&format!("n{n}@example.com"), "Many", "", "");
            assert_eq!(server.put(true, &format!("n{n}.ics"), &text), 201);
        }
        assert_eq!(server.delete(true, "e1.ics") / 100, 2);
        assert_eq!(calendar.changes(&ctag).await.unwrap(), None);
        let changes = calendar.changes(&token).await.unwrap().unwrap();
        assert_eq!(changes.changed.len(), 150);
        assert_eq!(changes.gone, vec!["e1.ics".to_owned()]);
        // Bodies in batches of 100: 150 items, each with its own text and etag.
        let names: Vec<String> = changes.changed.iter().map(|e| e.href.clone()).collect();
        let read = calendar.read_many(&names).await.unwrap();
        assert_eq!(read.len(), 150);
        for ((name, result), entry) in read.iter().zip(&changes.changed) {
            let (text, etag) = result.as_ref().unwrap();
            assert!(text.contains(&format!(
                "UID:{}@example.com",
                name.trim_end_matches(".ics")
            )));
            assert_eq!(*etag, entry.etag);
        }
        let missing = calendar.read_many(&["gone.ics".to_owned()]).await.unwrap();
        assert_eq!(
            missing[0].1,
            Err(CollectionError::Missing("gone.ics".into()))
        );
    });
}

/// `crmsync sync` killed with SIGKILL at growing moments of a first import that goes both
/// ways (300 tracked events to the CRM, 40 CRM appointments to the server); then a pass that
/// ends. Nothing is imported twice, nothing written twice to the server, nothing lost.
fn kills_during_a_first_import_duplicate_nothing_on_either_side(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    for n in 0..300 {
        let text = event(
            &format!("i{n}@example.com"),
            &format!("Import {n}"),
            "CRM",
            "",
        );
        assert_eq!(server.put(true, &format!("i{n}.ics"), &text), 201);
    }
    for n in 0..40 {
        env.ok(&[
            "activity",
            "add",
            "appointment",
            "--owner",
            "alice@example.com",
            "--subject",
            &format!("CRM {n}"),
            "--start",
            "2026-12-03T14:00:00Z",
            "--end",
            "2026-12-03T15:00:00Z",
        ]);
    }
    let check = |env: &Env| {
        let rows = activities(env, "appointment");
        let mut subjects: Vec<String> = rows
            .iter()
            .map(|a| a["subject"].as_str().unwrap().to_owned())
            .collect();
        subjects.sort();
        let before = subjects.len();
        subjects.dedup();
        assert_eq!(before, subjects.len(), "an item imported twice");
        assert!(before >= 40, "a CRM appointment lost: {before}");
        let names = server.names(true);
        let mut uids: Vec<String> = names
            .iter()
            .filter(|name| !name.starts_with('i'))
            .map(|name| {
                let text = server.get(true, name).unwrap();
                text.lines()
                    .find_map(|l| l.strip_prefix("UID:"))
                    .unwrap()
                    .trim()
                    .to_owned()
            })
            .collect();
        let written = uids.len();
        uids.sort();
        uids.dedup();
        assert_eq!(written, uids.len(), "a CRM appointment written twice");
        assert_eq!(names.iter().filter(|n| n.starts_with('i')).count(), 300);
        (before, written)
    };
    let mut kills = 0;
    // From before the first commit to the CRM's items being written (the import takes about
    // 0.5 to 1 s here).
    let delays = [60, 150, 250, 330, 400, 460, 520, 580, 640, 700, 800, 950];
    for (round, delay) in delays.into_iter().enumerate() {
        let mut child = std::process::Command::new(support::binary())
            .arg("-c")
            .arg(&env.config)
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let (imported, written) = check(&env);
        eprintln!("round {round}: {imported} activities, {written} CRM appointments on the server");
    }
    assert!(
        kills >= 3,
        "only {kills} passes were killed before they ended"
    );
    let pass = sync(&env);
    assert_eq!(pass["pending"], 0, "{pass}");
    assert_eq!(check(&env), (340, 40));
    let again = sync(&env);
    assert_eq!(
        (again["created"].as_u64(), again["items_written"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    // Each appointment has exactly one link, to one item.
    for row in activities(&env, "appointment") {
        assert_eq!(row["links"].as_array().unwrap().len(), 1, "{row}");
    }
}

/// The listing and its sync token are saved in the store after each pass: the next process
/// (here each `crmsync sync`) asks the server only for what changed since. Shown from the
/// store's side: a row taken out of the saved listing is not listed again while the server
/// reports no change of it, and comes back once the token is no longer valid (a whole
/// listing).
fn a_new_process_asks_only_for_what_changed_since_the_saved_token(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    server.put(
        true,
        "e1.ics",
        &event("e1@example.com", "Tracked", "CRM", ""),
    );
    server.put(
        true,
        "u1.ics",
        &event("u1@example.com", "Untracked", "Private", ""),
    );
    sync(&env);
    let store = rusqlite::Connection::open(env.path("crm.sqlite3")).unwrap();
    let scope = format!("collection:calendar:{}", server.collection(true));
    let token = |store: &rusqlite::Connection| -> String {
        store
            .query_row(
                "SELECT sync_token FROM sync_state WHERE mailbox = 'alice' AND scope = ?1",
                [&scope],
                |row| row.get(0),
            )
            .unwrap()
    };
    let listed = |store: &rusqlite::Connection| -> Vec<String> {
        let mut statement = store
            .prepare("SELECT href FROM collection_listings WHERE scope = ?1 ORDER BY href")
            .unwrap();
        statement
            .query_map([&scope], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // A first listing by PROPFIND; the next pass gets a sync token.
    assert!(token(&store).starts_with("first:"), "{}", token(&store));
    assert_eq!(listed(&store), ["e1.ics", "u1.ics"]);
    sync(&env);
    let first = token(&store);
    assert!(first.starts_with("sync:"), "{first}");
    assert_eq!(listed(&store), ["e1.ics", "u1.ics"]);

    // A change on the server: the next process saves it under a new token.
    server.put(
        true,
        "e2.ics",
        &event("e2@example.com", "Second", "CRM", ""),
    );
    let pass = sync(&env);
    assert_eq!(pass["created"], 1, "{pass}");
    assert_ne!(token(&store), first);
    assert_eq!(listed(&store), ["e1.ics", "e2.ics", "u1.ics"]);

    // Taken out of the saved listing: the server reports no change of it, so it stays out.
    store
        .execute(
            "DELETE FROM collection_listings WHERE scope = ?1 AND href = 'u1.ics'",
            [&scope],
        )
        .unwrap();
    let pass = sync(&env);
    assert_eq!(pass["errors"], serde_json::json!([]), "{pass}");
    assert_eq!(
        listed(&store),
        ["e1.ics", "e2.ics"],
        "asked only for changes"
    );
    // A token the server does not know: listed whole, and the listing is complete again.
    store
        .execute(
            "UPDATE sync_state SET sync_token = 'sync:http://example.invalid/sync/1' WHERE scope = ?1",
            [&scope],
        )
        .unwrap();
    let pass = sync(&env);
    assert_eq!(pass["errors"], serde_json::json!([]), "{pass}");
    assert_eq!(listed(&store), ["e1.ics", "e2.ics", "u1.ics"]);
    assert_eq!(activities(&env, "appointment").len(), 2);
}

/// Under the daemon, a mailbox with mail on Dovecot and a calendar on the DAV server: the
/// server down, then a wrong password, put the calendar (not the mailbox) in error with the
/// reason in the status file, while tracked mail goes on reaching the CRM; the server back (a
/// poll that backs off) and the password fixed (the next pass reads it again) heal it.
fn a_broken_server_collection_leaves_the_mail_going_and_heals(kind: Kind) {
    use support::mail::{Mail, message};

    let mut server = DavServer::start(kind);
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let password = mail.env.path("dav.password");
    std::fs::write(&password, support::dav::PASSWORD).unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    mail.env.write_config(&format!(
        "{config}[mailbox.calendar]\n{}",
        server.config_keys(&server.collection(true), &password)
    ));
    server.stop();
    let mut daemon = Daemon::start(&mail.env);
    let calendar_state = |daemon: &Daemon| -> Option<(String, String)> {
        let mailbox = daemon.mailbox_state("alice")?;
        let calendar = mailbox["collections"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "calendar")?
            .clone();
        Some((
            calendar["state"].as_str()?.to_owned(),
            calendar["last_error"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ))
    };
    let (_, error) = wait_until("the calendar in error", Duration::from_secs(20), || {
        calendar_state(&daemon).filter(|(state, _)| state == "error")
    });
    assert!(error.contains("cannot connect"), "{error}");
    // The mail goes on.
    daemon.wait_for_state("alice", "idle");
    let mut imap = mail.client("alice");
    let text = message(
        "m1@x.example",
        "dana@x.example",
        "alice@example.com",
        "While down",
    );
    imap.append("INBOX", &["crm"], &text);
    wait_until("the message tracked", Duration::from_secs(20), || {
        (mail.activities().len() == 1).then_some(())
    });
    // The server back: the poll's backoff (1 s doubling, at most poll_interval) finds it.
    server.restart();
    server.put(true, "e1.ics", &event("e1@example.com", "Back", "CRM", ""));
    wait_until("the event tracked", Duration::from_secs(30), || {
        activities(&mail.env, "appointment").into_iter().next()
    });
    wait_until("the calendar idle", Duration::from_secs(20), || {
        calendar_state(&daemon).filter(|(state, _)| state == "idle")
    });

    // The password changed on the server: the next poll's login is refused, the calendar
    // in error with the reason, the mail going on.
    server.set_password(true);
    let (_, error) = wait_until("the refused login", Duration::from_secs(30), || {
        // Not the connection refused while the server restarts: the login refused after.
        calendar_state(&daemon)
            .filter(|(state, e)| state == "error" && e.contains("refused the login"))
    });
    assert!(error.contains("refused the login of alice"), "{error}");
    assert_eq!(daemon.mailbox_state("alice").unwrap()["state"], "idle");
    // The administrator puts the new password in the file: the next pass (here woken by new
    // mail; else the slow retry, five minutes) reads it again and the calendar heals.
    std::fs::write(&password, support::dav::OTHER_PASSWORD).unwrap();
    server.put(true, "e2.ics", &event("e2@example.com", "Fixed", "CRM", ""));
    let text = message(
        "m2@x.example",
        "dana@x.example",
        "alice@example.com",
        "After",
    );
    imap.append("INBOX", &["crm"], &text);
    wait_until("both tracked", Duration::from_secs(30), || {
        (activities(&mail.env, "appointment").len() == 2 && mail.activities().len() == 4)
            .then_some(())
    });
    wait_until("the calendar idle again", Duration::from_secs(20), || {
        calendar_state(&daemon).filter(|(state, _)| state == "idle")
    });
}

/// Under the daemon with a poll far away, CRM changes are passed over with the listing of the
/// last look at the server. An item crmsync wrote itself since, or one another process
/// (`crmsync sync`) linked since, is not in that listing: it must not look deleted.
fn crm_changes_between_polls_never_take_an_item_for_deleted(kind: Kind) {
    let server = DavServer::start(kind);
    let env = setup(&server, None);
    let config = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&config.replace("poll_interval = 1\n", "poll_interval = 600\n"));
    server.put(
        true,
        "e0.ics",
        &event("e0@example.com", "Before", "CRM", ""),
    );
    let mut daemon = Daemon::start(&env);
    daemon.wait_for_state("alice", "idle");
    let add = |subject: &str| -> String {
        let row = env.json(&[
            "activity",
            "add",
            "appointment",
            "--owner",
            "alice@example.com",
            "--subject",
            subject,
            "--start",
            "2026-12-04T09:00:00Z",
            "--end",
            "2026-12-04T10:00:00Z",
        ]);
        row["id"].as_str().unwrap().to_owned()
    };
    // A written by crmsync, then B: the pass for B must still see A.
    let a = add("A");
    wait_until("A on the server", Duration::from_secs(20), || {
        server.get(true, &format!("{a}.ics"))
    });
    let b = add("B");
    wait_until("B on the server", Duration::from_secs(20), || {
        server.get(true, &format!("{b}.ics"))
    });
    env.ok(&["activity", "set", &a, "location=Room A"]);
    wait_until("A's edit on the server", Duration::from_secs(20), || {
        server
            .get(true, &format!("{a}.ics"))
            .filter(|text| text.contains("LOCATION:Room A"))
    });
    // E tracked by another process while the daemon's listing is old.
    server.put(
        true,
        "e1.ics",
        &event("e1@example.com", "Elsewhere", "CRM", ""),
    );
    let pass = sync(&env);
    assert_eq!(pass["created"], 1, "{pass}");
    let e = activities(&env, "appointment")
        .into_iter()
        .find(|row| row["subject"] == "Elsewhere")
        .unwrap();
    env.ok(&[
        "activity",
        "set",
        e["id"].as_str().unwrap(),
        "location=Room E",
    ]);
    wait_until("E's edit on the server", Duration::from_secs(20), || {
        server
            .get(true, "e1.ics")
            .filter(|text| text.contains("LOCATION:Room E"))
    });
    let subjects: Vec<String> = activities(&env, "appointment")
        .iter()
        .map(|row| row["subject"].as_str().unwrap().to_owned())
        .collect();
    for subject in ["Before", "A", "B", "Elsewhere"] {
        assert!(
            subjects.iter().any(|s| s == subject),
            "{subject} lost: {subjects:?}"
        );
    }
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(daemon.is_running());
}
