//! Email tracking end to end: a real Dovecot, the real binary, a real store.

mod support;

use serde_json::Value;
use support::mail::{Mail, message};

#[test]
fn a_message_with_the_keyword_becomes_one_email_activity() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env.ok(&[
        "record",
        "add",
        "account",
        "--name",
        "Adventure Works",
        "--email",
        "info@adventure-works.com",
    ]);
    mail.env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Dana",
        "--email",
        "dana@adventure-works.com",
    ]);
    let mut imap = mail.client("alice");
    imap.append(
        "INBOX",
        &["crm"],
        &message(
            "m1@adventure-works.com",
            "Dana <dana@adventure-works.com>",
            "alice@example.com, info@adventure-works.com",
            "Proposal",
        ),
    );
    imap.append(
        "INBOX",
        &["crm:ACC-1001"],
        &message(
            "m2@adventure-works.com",
            "dana@adventure-works.com",
            "alice@example.com",
            "Contract",
        ),
    );
    imap.append(
        "INBOX",
        &[],
        &message(
            "m3@private.example",
            "mum@family.example",
            "alice@example.com",
            "Secret family recipe",
        ),
    );

    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 2, "{report:#}");
    assert_eq!(report["tracked"], 2);
    assert_eq!(
        report["imap"]["bodies_fetched"], 2,
        "only tracked bodies are fetched"
    );

    let activities = mail.activities();
    assert_eq!(activities.len(), 2);
    let proposal = activities
        .iter()
        .find(|a| a["subject"] == "Proposal")
        .unwrap();
    assert_eq!(proposal["type"], "email");
    assert_eq!(proposal["state"], "received");
    assert_eq!(proposal["direction"], "incoming");
    assert_eq!(proposal["owner"], "alice@example.com");
    assert_eq!(proposal["message_id"], "m1@adventure-works.com");
    assert_eq!(
        proposal["description"].as_str().unwrap().trim(),
        "Body of Proposal."
    );
    assert_eq!(proposal["regarding"], Value::Null);
    let parties = proposal["parties"].as_array().unwrap();
    assert_eq!(parties[0]["role"], "from");
    assert_eq!(parties[0]["record"]["number"], "CON-1001");
    assert_eq!(parties[1]["role"], "to");
    assert_eq!(parties[1]["record"]["entity"], "systemuser");
    assert_eq!(parties[2]["record"]["number"], "ACC-1001");
    assert_eq!(proposal["links"][0]["mailbox"], "alice");

    let contract = activities
        .iter()
        .find(|a| a["subject"] == "Contract")
        .unwrap();
    assert_eq!(contract["regarding"]["number"], "ACC-1001");

    // Nothing of the untracked message reached the store.
    let store = std::fs::read(mail.env.path("crm.sqlite3")).unwrap();
    let wal = std::fs::read(mail.env.path("crm.sqlite3-wal")).unwrap_or_default();
    for bytes in [&store, &wal] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("Secret family recipe"));
        assert!(!text.contains("m3@private.example"));
    }

    // A second pass with no change writes nothing and fetches nothing.
    let journal = || -> i64 {
        let conn = rusqlite::Connection::open(mail.env.path("crm.sqlite3")).unwrap();
        conn.query_row("SELECT max(seq) FROM change_journal", [], |r| r.get(0))
            .unwrap()
    };
    let before = journal();
    let again = &mail.sync_ok()["alice"];
    assert_eq!(journal(), before, "the second pass wrote to the CRM");
    for counter in [
        "created",
        "linked",
        "deleted",
        "unlinked",
        "updated",
        "keywords_written",
    ] {
        assert_eq!(again[counter], 0, "{counter}: {again:#}");
    }
    // It reads the headers of the two messages once more: crmsync's own `crm-synced` marks
    // changed their mod-sequences after the first pass had read the folder. Then nothing.
    assert_eq!(again["imap"]["fetch_commands"], 1, "{again:#}");
    assert_eq!(again["imap"]["bodies_fetched"], 0);
    let third = &mail.sync_ok()["alice"];
    assert_eq!(third["imap"]["fetch_commands"], 0, "{third:#}");
    assert_eq!(third["imap"]["bodies_fetched"], 0);
    assert_eq!(journal(), before, "a pass with no change wrote to the CRM");
}

fn activity_id(mail: &Mail, subject: &str) -> String {
    mail.activities()
        .iter()
        .find(|a| a["subject"] == subject)
        .unwrap_or_else(|| panic!("no activity {subject:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn removing_the_keyword_deletes_the_owners_copy() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let uid = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "m1@x.example",
            "dana@x.example",
            "alice@example.com",
            "Hello",
        ),
    );
    mail.sync_ok();
    assert_eq!(mail.activities().len(), 1);

    imap.store("INBOX", uid, "-FLAGS (crm)");
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["deleted"], 1, "{report:#}");
    assert_eq!(report["tracked"], 0);
    assert!(mail.activities().is_empty());
    // The message itself is untouched.
    assert_eq!(imap.uids("INBOX"), vec![uid]);
}

#[test]
fn the_same_message_in_two_mailboxes_is_one_activity_and_only_the_owner_deletes_it() {
    let mail = Mail::new(&[("alice", "alice@example.com"), ("bob", "bob@example.com")]);
    let text = message(
        "shared@x.example",
        "dana@x.example",
        "alice@example.com, bob@example.com",
        "Team update",
    );
    // Each copy was delivered separately: different transport headers, same message.
    let alice_uid = mail.client("alice").append(
        "INBOX",
        &["crm"],
        &format!("Delivered-To: alice@example.com\n{text}"),
    );
    mail.sync_ok();
    let bob_uid = mail.client("bob").append(
        "INBOX",
        &["crm"],
        &format!("Delivered-To: bob@example.com\n{text}"),
    );
    let reports = mail.sync_ok();
    assert_eq!(reports["bob"]["linked"], 1, "{reports:#}");
    assert_eq!(reports["bob"]["created"], 0);
    assert_eq!(
        reports["bob"]["imap"]["bodies_fetched"], 0,
        "linking needs no body"
    );

    let activities = mail.activities();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0]["owner"], "alice@example.com");
    let links: Vec<&str> = activities[0]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mailbox"].as_str().unwrap())
        .collect();
    assert_eq!(links, ["alice", "bob"]);

    // Bob does not own it: untracking drops only his link.
    mail.client("bob").store("INBOX", bob_uid, "-FLAGS (crm)");
    let reports = mail.sync_ok();
    assert_eq!(reports["bob"]["unlinked"], 1, "{reports:#}");
    let activities = mail.activities();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0]["links"].as_array().unwrap().len(), 1);

    // Alice owns it: untracking deletes it.
    mail.client("alice")
        .store("INBOX", alice_uid, "-FLAGS (crm)");
    mail.sync_ok();
    assert!(mail.activities().is_empty());
}

#[test]
fn an_expunged_message_keeps_its_activity_and_a_moved_one_stays_one_activity() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let moved = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "moved@x.example",
            "dana@x.example",
            "alice@example.com",
            "Moved",
        ),
    );
    let expunged = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "gone@x.example",
            "dana@x.example",
            "alice@example.com",
            "Expunged",
        ),
    );
    // An untracked message stays, so the folder does not list empty (see the empty-listing test).
    imap.append(
        "INBOX",
        &[],
        &message(
            "stays@x.example",
            "dana@x.example",
            "alice@example.com",
            "Stays",
        ),
    );
    mail.sync_ok();

    let new_uid = imap.uid_move("INBOX", moved, "Archive");
    imap.expunge("INBOX", expunged);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 0, "{report:#}");
    assert_eq!(report["updated"], 1);
    assert_eq!(report["unlinked"], 1);

    let activities = mail.activities();
    assert_eq!(activities.len(), 2, "email deletes never cross to the CRM");
    let moved_activity = activities.iter().find(|a| a["subject"] == "Moved").unwrap();
    let link = &moved_activity["links"][0];
    assert!(
        link["item"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{new_uid}:Archive")),
        "{link}"
    );
    let expunged_activity = activities
        .iter()
        .find(|a| a["subject"] == "Expunged")
        .unwrap();
    assert_eq!(expunged_activity["links"], serde_json::json!([]));
}

#[test]
fn crm_side_changes_reach_the_keywords() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env
        .ok(&["record", "add", "account", "--name", "Adventure Works"]);
    mail.env
        .ok(&["record", "add", "account", "--name", "Contoso"]);
    let mut imap = mail.client("alice");
    let regarded = imap.append(
        "INBOX",
        &["crm:ACC-1001"],
        &message(
            "r@x.example",
            "dana@x.example",
            "alice@example.com",
            "Regarded",
        ),
    );
    let deleted = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "d@x.example",
            "dana@x.example",
            "alice@example.com",
            "Deleted",
        ),
    );
    mail.sync_ok();

    let id = activity_id(&mail, "Regarded");
    mail.env.ok(&["activity", "regarding", &id, "ACC-1002"]);
    let id = activity_id(&mail, "Deleted");
    mail.env.ok(&["activity", "delete", &id]);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["keywords_written"], 2, "{report:#}");

    assert_eq!(imap.flags("INBOX", regarded), ["crm:ACC-1002"]);
    assert!(
        imap.flags("INBOX", deleted).is_empty(),
        "the tracking keyword is removed"
    );
    let activities = mail.activities();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0]["regarding"]["number"], "ACC-1002");

    // And the other way: a new regarding keyword set in the mail client reaches the CRM.
    imap.store("INBOX", regarded, "-FLAGS (crm:ACC-1002)");
    imap.store("INBOX", regarded, "+FLAGS (crm:ACC-1001)");
    mail.sync_ok();
    assert_eq!(mail.activities()[0]["regarding"]["number"], "ACC-1001");

    // A pass with nothing new writes nothing on either side.
    let quiet = &mail.sync_ok()["alice"];
    assert_eq!(quiet["keywords_written"], 0, "{quiet:#}");
    assert_eq!(quiet["updated"], 0);
}

#[test]
fn an_unknown_regarding_number_leaves_no_regarding_and_says_so() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.client("alice").append(
        "INBOX",
        &["crm:ACC-4040"],
        &message(
            "u@x.example",
            "dana@x.example",
            "alice@example.com",
            "Unknown",
        ),
    );
    let report = &mail.sync_ok()["alice"];
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("regarding record ACC-4040 does not exist")),
        "{report:#}"
    );
    let activities = mail.activities();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0]["regarding"], Value::Null);

    // The person's keyword is left alone, pass after pass.
    let again = &mail.sync_ok()["alice"];
    assert_eq!(again["keywords_written"], 0, "{again:#}");
    assert_eq!(mail.client("alice").flags("INBOX", 1), ["crm:ACC-4040"]);

    // The tracking pane says why there is no regarding record.
    let pane = mail
        .env
        .ok(&["item", "show", "--mailbox", "alice", "--uid", "INBOX:1"]);
    assert!(
        pane.contains("the keyword crm:ACC-4040 names no record"),
        "{pane}"
    );
}

#[test]
fn a_recreated_folder_neither_duplicates_nor_deletes() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let first = message(
        "a1@x.example",
        "dana@x.example",
        "alice@example.com",
        "Archived one",
    );
    let second = message(
        "a2@x.example",
        "dana@x.example",
        "alice@example.com",
        "Archived two",
    );
    imap.append("Archive", &["crm"], &first);
    imap.append("Archive", &["crm"], &second);
    mail.sync_ok();
    assert_eq!(mail.activities().len(), 2);

    // Delete and recreate the folder with the same messages: a new UIDVALIDITY.
    imap.select("INBOX");
    imap.delete("Archive");
    imap.create("Archive");
    imap.append("Archive", &["crm"], &first);
    imap.append("Archive", &["crm"], &second);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 0, "{report:#}");
    assert_eq!(report["deleted"], 0);
    assert_eq!(report["unlinked"], 0);
    assert_eq!(report["updated"], 2, "both links point at their new UIDs");
    assert_eq!(mail.activities().len(), 2);
}

#[test]
fn a_malformed_tracked_message_fails_alone() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let bad = imap.append(
        "INBOX",
        &["crm"],
        "this is not a message\nno header here\n\njust text\n",
    );
    imap.append(
        "INBOX",
        &["crm"],
        &message(
            "good@x.example",
            "dana@x.example",
            "alice@example.com",
            "Good",
        ),
    );
    let run = mail.env.run(&["sync", "--json"]);
    assert_eq!(
        run.code, 1,
        "a failed item makes the pass exit 1: {}",
        run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let alice = &report["mailboxes"][0];
    assert_eq!(alice["failed"], 1, "{alice:#}");
    assert_eq!(alice["created"], 1);
    let error = alice["errors"][0].as_str().unwrap();
    assert!(
        error.starts_with(&format!("INBOX:{bad}: malformed message")),
        "{error}"
    );
    assert_eq!(mail.activities().len(), 1);
    assert!(run.stderr.contains("had failures"), "{}", run.stderr);
}

#[test]
fn an_empty_listing_where_links_exist_deletes_nothing() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let uid = imap.append(
        "Archive",
        &["crm"],
        &message("e@x.example", "dana@x.example", "alice@example.com", "Kept"),
    );
    mail.sync_ok();
    imap.expunge("Archive", uid);
    let run = mail.env.run(&["sync", "--json"]);
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let alice = &report["mailboxes"][0];
    assert_eq!(alice["state"], "error", "{alice:#}");
    assert!(
        alice["errors"][0]
            .as_str()
            .unwrap()
            .contains("lists no message while 1 tracked messages"),
        "{alice:#}"
    );
    assert_eq!(alice["unlinked"], 0);
    let activities = mail.activities();
    assert_eq!(
        activities[0]["links"].as_array().unwrap().len(),
        1,
        "the link is kept"
    );
}

#[test]
fn item_show_gives_the_tracking_pane() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env
        .ok(&["record", "add", "account", "--name", "Adventure Works"]);
    mail.env.ok(&[
        "record",
        "add",
        "opportunity",
        "--name",
        "Big deal",
        "--parent",
        "ACC-1001",
    ]);
    mail.env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Dana",
        "--email",
        "dana@x.example",
    ]);
    let mut imap = mail.client("alice");
    imap.append(
        "INBOX",
        &["crm:OPP-1001"],
        &message(
            "t@x.example",
            "Dana <dana@x.example>",
            "alice@example.com",
            "Tracked",
        ),
    );
    let untracked = imap.append(
        "INBOX",
        &[],
        &message(
            "u@x.example",
            "dana@x.example",
            "nobody@x.example",
            "Untracked",
        ),
    );
    mail.sync_ok();

    let pane = mail.env.json(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--message-id",
        "<t@x.example>",
    ]);
    assert_eq!(pane["tracked"], true, "{pane:#}");
    assert_eq!(pane["regarding"]["number"], "OPP-1001");
    assert_eq!(pane["regarding_parent"]["number"], "ACC-1001");
    assert_eq!(pane["link_state"], "synced");
    assert_eq!(pane["addresses"][0]["role"], "from");
    assert_eq!(pane["addresses"][0]["record"]["number"], "CON-1001");
    assert_eq!(pane["addresses"][1]["record"]["entity"], "systemuser");
    assert_eq!(pane["activity"]["subject"], "Tracked");

    let pane = mail.env.json(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--uid",
        &format!("INBOX:{untracked}"),
    ]);
    assert_eq!(pane["tracked"], false, "{pane:#}");
    assert_eq!(pane["activity"], Value::Null);
    assert_eq!(
        pane["addresses"][0]["record"]["number"], "CON-1001",
        "resolution is shown before tracking"
    );
    assert_eq!(pane["addresses"][1]["record"], Value::Null);
    assert!(
        pane["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("not tracked"),
        "{pane:#}"
    );
    let text = mail.env.ok(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--uid",
        &format!("INBOX:{untracked}"),
    ]);
    assert!(text.contains("tracked:") && text.contains("no"), "{text}");
    assert!(
        text.contains("from:       dana@x.example -> contact CON-1001 (Dana)"),
        "{text}"
    );

    let line = mail.env.fails(
        &["item", "show", "--mailbox", "alice", "--uid", "INBOX:999"],
        1,
    );
    assert_eq!(line, "crmsync: no such message in mailbox alice");
    let line = mail
        .env
        .fails(&["item", "show", "--mailbox", "bob", "--uid", "INBOX:1"], 2);
    assert!(line.starts_with("crmsync: no mailbox \"bob\""), "{line}");
    let line = mail
        .env
        .fails(&["item", "show", "--mailbox", "alice", "--uid", "INBOX"], 2);
    assert!(line.contains("expected FOLDER:UID"), "{line}");
}

#[test]
fn attachments_and_html_bodies_are_kept() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let multipart = "Message-ID: <mp@x.example>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\
        From: alice@example.com\nTo: dana@x.example\nSubject: Quote attached\nMIME-Version: 1.0\n\
        Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\n\
        Content-Type: multipart/alternative; boundary=\"b2\"\n\n--b2\nContent-Type: text/plain\n\nSee the quote.\n\
        --b2\nContent-Type: text/html\n\n<p>See the <b>quote</b>.</p>\n--b2--\n\
        --b1\nContent-Type: application/pdf; name=\"quote.pdf\"\nContent-Disposition: attachment; filename=\"quote.pdf\"\n\
        Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJcfsj6IK\n--b1--\n";
    mail.client("alice").append("Archive", &["crm"], multipart);
    mail.sync_ok();
    let activity = &mail.activities()[0];
    assert_eq!(activity["direction"], "outgoing", "From is the owner");
    assert_eq!(activity["state"], "sent");
    assert_eq!(
        activity["description"].as_str().unwrap().trim(),
        "See the quote."
    );
    assert_eq!(activity["attachments"][0]["name"], "quote.pdf");
    assert_eq!(
        activity["attachments"][0]["content_type"],
        "application/pdf"
    );
    assert_eq!(activity["attachments"][0]["size"], 15, "the decoded size");
    let conn = rusqlite::Connection::open(mail.env.path("crm.sqlite3")).unwrap();
    let (html, content): (String, Vec<u8>) = conn
        .query_row("SELECT a.html_body, t.content FROM activities a JOIN attachments t ON t.activity_id = a.id", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(html.contains("<b>quote</b>"), "{html}");
    assert_eq!(content, b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n");
}

#[test]
fn a_tracked_folder_tracks_every_message_in_it() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env
        .ok(&["record", "add", "account", "--name", "Adventure Works"]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    mail.env.write_config(&format!(
        "{config}[mailbox.tracking]\nfolders = {{ \"Clients/Adventure Works\" = \"ACC-1001\" }}\n"
    ));
    let mut imap = mail.client("alice");
    imap.create("Clients/Adventure Works");
    let uid = imap.append(
        "Clients/Adventure Works",
        &[],
        &message(
            "f@x.example",
            "dana@x.example",
            "alice@example.com",
            "In the folder",
        ),
    );
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 1, "{report:#}");
    assert_eq!(mail.activities()[0]["regarding"]["number"], "ACC-1001");

    // Moving it out to a watched folder without the keyword untracks it (Alice owns it).
    imap.append(
        "INBOX",
        &[],
        &message(
            "other@x.example",
            "dana@x.example",
            "alice@example.com",
            "Other",
        ),
    );
    imap.uid_move("Clients/Adventure Works", uid, "INBOX");
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["deleted"], 1, "{report:#}");
    assert!(mail.activities().is_empty());
}

/// A full scan reads the headers of tracked, marked and linked messages alone. When a link's
/// message is not where the link says, the headers it left out are read after all: here a
/// message moved out of its tracked folder, without a keyword, into a folder scanned for the
/// first time, is found there and untracked, not taken for gone.
#[test]
fn a_linked_message_moved_into_a_folder_scanned_anew_is_found_by_its_header() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env
        .ok(&["record", "add", "account", "--name", "Adventure Works"]);
    let config = std::fs::read_to_string(&mail.env.config).unwrap();
    let inbox_only = config.replace(
        "folders = [\"INBOX\", \"Archive\"]",
        "folders = [\"INBOX\"]",
    );
    assert_ne!(inbox_only, config);
    let tracked_folder = "[mailbox.tracking]\nfolders = { \"Clients\" = \"ACC-1001\" }\n";
    mail.env
        .write_config(&format!("{inbox_only}{tracked_folder}"));
    let mut imap = mail.client("alice");
    imap.create("Clients");
    for n in 0..3 {
        let subject = format!("Archived {n}");
        let id = format!("a{n}@x.example");
        imap.append(
            "Archive",
            &[],
            &message(&id, "dana@x.example", "alice@example.com", &subject),
        );
    }
    let uid = imap.append(
        "Clients",
        &[],
        &message("c@x.example", "dana@x.example", "alice@example.com", "C"),
    );
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 1, "{report:#}");

    // Without its sync-state mark too (a full scan reads a marked message's header).
    imap.store("Clients", uid, "-FLAGS (crm-synced)");
    imap.uid_move("Clients", uid, "Archive");
    mail.env.write_config(&format!("{config}{tracked_folder}"));
    mail.dovecot.record_traffic("alice");
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["deleted"], 1, "{report:#}");
    assert!(mail.activities().is_empty());
    let commands = mail.dovecot.commands_of("alice");
    let header_fetches: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("HEADER.FIELDS"))
        .collect();
    // Archive's first scan withheld all four headers; the pass read them once it missed the
    // message in Clients.
    assert!(
        commands
            .iter()
            .any(|c| c.contains("UID FETCH 1:* (UID FLAGS)")),
        "{commands:#?}"
    );
    assert_eq!(header_fetches.len(), 1, "{commands:#?}");
    assert!(
        header_fetches[0].contains("UID FETCH 1:4 "),
        "{commands:#?}"
    );
}

#[test]
fn a_regarding_changed_on_both_sides_is_settled_by_the_policy_and_logged() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    for name in ["Adventure Works", "Contoso", "Fabrikam"] {
        mail.env.ok(&["record", "add", "account", "--name", name]);
    }
    let mut imap = mail.client("alice");
    let uid = imap.append(
        "INBOX",
        &["crm:ACC-1001"],
        &message(
            "c@x.example",
            "dana@x.example",
            "alice@example.com",
            "Contested",
        ),
    );
    mail.sync_ok();
    assert_eq!(mail.env.ok(&["conflicts"]).trim(), "no conflicts");

    // Both sides change the regarding record before the next pass.
    imap.store("INBOX", uid, "-FLAGS (crm:ACC-1001)");
    imap.store("INBOX", uid, "+FLAGS (crm:ACC-1002)");
    let id = activity_id(&mail, "Contested");
    mail.env.ok(&["activity", "regarding", &id, "ACC-1003"]);
    let report = &mail.sync_ok()["alice"];
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("conflict on regarding"),
        "{report:#}"
    );

    // mailbox-wins (the default): the CRM takes the mailbox's value.
    assert_eq!(mail.activities()[0]["regarding"]["number"], "ACC-1002");
    let log = mail.env.json(&["conflicts"]);
    let entry = &log[0];
    assert_eq!(entry["mailbox"], "alice");
    assert_eq!(entry["field"], "regarding");
    assert_eq!(entry["base"], "ACC-1001");
    assert_eq!(entry["mailbox_value"], "ACC-1002");
    assert_eq!(entry["crm_value"], "ACC-1003");
    assert_eq!(entry["winner"], "mailbox");
    assert_eq!(entry["crm"], format!("activity:{id}"));
    let table = mail.env.ok(&["conflicts", "--mailbox", "alice"]);
    assert!(
        table.contains("regarding") && table.contains("ACC-1003"),
        "{table}"
    );
    assert_eq!(
        mail.env.json(&["conflicts", "--mailbox", "bob"]),
        serde_json::json!([])
    );
}

/// `item show` gives each address with its display name, and the members of a group (`To:
/// Team: a@x, b@y;`) under the group's name, for a tracked message (from the CRM copy) and
/// an untracked one (from the server).
#[test]
fn item_show_gives_display_names_and_groups() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    mail.env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Dana",
        "--email",
        "dana@x.example",
    ]);
    let mut imap = mail.client("alice");
    let headers = |id: &str| {
        format!(
            "Message-ID: <{id}@x.example>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\
             From: \"Dana Smith\" <dana@x.example>\n\
             To: Sales Team: alice@example.com, \"Bob B\" <bob@x.example>;, carol@x.example\n\
             Cc: undisclosed-recipients:;\nSubject: Team {id}\n\nHello.\n"
        )
    };
    imap.append("INBOX", &["crm"], &headers("g1"));
    let untracked = imap.append("INBOX", &[], &headers("g2"));
    mail.sync_ok();

    for locator in [
        vec!["--message-id", "g1@x.example"],
        vec!["--uid", &format!("INBOX:{untracked}")],
    ] {
        let mut args = vec!["item", "show", "--mailbox", "alice"];
        args.extend(&locator);
        let pane = mail.env.json(&args);
        let addresses: Vec<(String, String, Value, Value)> = pane["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["role"].as_str().unwrap().to_owned(),
                    a["address"].as_str().unwrap().to_owned(),
                    a["name"].clone(),
                    a["group"].clone(),
                )
            })
            .collect();
        let team = Value::from("Sales Team");
        assert_eq!(
            addresses,
            [
                (
                    "from".into(),
                    "dana@x.example".into(),
                    "Dana Smith".into(),
                    Value::Null
                ),
                (
                    "to".into(),
                    "alice@example.com".into(),
                    Value::Null,
                    team.clone()
                ),
                ("to".into(), "bob@x.example".into(), "Bob B".into(), team),
                (
                    "to".into(),
                    "carol@x.example".into(),
                    Value::Null,
                    Value::Null
                ),
            ],
            "{locator:?}: {pane:#}"
        );
        assert_eq!(pane["addresses"][0]["record"]["number"], "CON-1001");

        let text = mail.env.ok(&args);
        for line in [
            "from:       Dana Smith <dana@x.example> -> contact CON-1001 (Dana)",
            "to:         Sales Team: alice@example.com, bob@x.example;",
            "              Bob B <bob@x.example> -> ",
            "to:         carol@x.example -> ",
        ] {
            assert!(text.contains(line), "{locator:?}: {line:?} in\n{text}");
        }
    }
}

/// The actions after tracking: a tracked email converted into a lead, an opportunity and a
/// case (each then its regarding record, the keyword following), connections between records
/// and between the email and a record, shown in `record show`, `activity show` and `item
/// show`, with the "open in CRM" link of `[crm] web_url`.
#[test]
fn a_tracked_email_is_converted_and_connected_and_its_related_records_shown() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let env = &mail.env;
    let config = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&config.replace(
        "database = \"crm.sqlite3\"\n",
        "database = \"crm.sqlite3\"\nweb_url = \"https://crm.example.com/{entity}/{number}\"\n",
    ));
    env.ok(&["record", "add", "account", "--name", "Adventure Works"]);
    env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Dana",
        "--email",
        "dana@adventure-works.com",
        "--parent",
        "ACC-1001",
    ]);
    let mut imap = mail.client("alice");
    let uid = imap.append(
        "INBOX",
        &["crm"],
        &message(
            "ask@adventure-works.com",
            "dana@adventure-works.com",
            "alice@example.com",
            "Need 40 licences",
        ),
    );
    mail.sync_ok();
    let id = activity_id(&mail, "Need 40 licences");

    // A lead from the sender, then an opportunity under her account, then a case for her.
    let lead = env.json(&["activity", "convert", &id, "lead"]);
    assert_eq!(lead["entity"], "lead", "{lead:#}");
    assert_eq!(lead["name"], "Need 40 licences");
    assert_eq!(lead["emails"][0], "dana@adventure-works.com");
    let lead_number = lead["number"].as_str().unwrap().to_owned();
    mail.sync_ok();
    assert_eq!(
        imap.flags("INBOX", uid),
        ["crm".to_owned(), format!("crm:{lead_number}")],
        "the regarding keyword follows (the person's own `crm` stays)"
    );
    let opportunity = env.json(&[
        "activity",
        "convert",
        &id,
        "opportunity",
        "--name",
        "40 licences",
    ]);
    assert_eq!(
        opportunity["parent"]["number"], "ACC-1001",
        "{opportunity:#}"
    );
    let case = env.json(&["activity", "convert", &id, "case"]);
    assert_eq!(case["entity"], "incident");
    assert_eq!(case["parent"]["number"], "CON-1001", "{case:#}");
    let case_number = case["number"].as_str().unwrap().to_owned();
    let shown = env.json(&["activity", "show", &id]);
    assert_eq!(shown["regarding"]["number"], case_number.as_str());
    let related: Vec<String> = shown["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["record"]["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(related.len(), 3, "{shown:#}");
    assert_eq!(shown["connections"][0]["role"], "converted to");
    assert!(
        shown["web_url"]
            .as_str()
            .unwrap()
            .starts_with("https://crm.example.com/email/")
    );

    // Connections by hand: two records, and the email to the account.
    env.ok(&[
        "connection",
        "add",
        "CON-1001",
        "ACC-1001",
        "--role",
        "buyer",
        "--other-role",
        "customer",
    ]);
    env.ok(&[
        "connection",
        "add",
        &id[..8],
        "ACC-1001",
        "--other-role",
        "about",
    ]);
    let account = env.json(&["record", "show", "ACC-1001"]);
    let connections = account["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2, "{account:#}");
    assert_eq!(connections[0]["record"]["number"], "CON-1001");
    assert_eq!(connections[0]["other_role"], "buyer");
    assert_eq!(connections[1]["activity"]["subject"], "Need 40 licences");
    assert_eq!(
        account["web_url"],
        "https://crm.example.com/account/ACC-1001"
    );
    let listed = env.json(&["connection", "list", &id]);
    assert_eq!(listed.as_array().unwrap().len(), 4);
    let pane = env.ok(&[
        "item",
        "show",
        "--mailbox",
        "alice",
        "--uid",
        &format!("INBOX:{uid}"),
    ]);
    assert!(
        pane.contains("related:    ACC-1001 Adventure Works (about)"),
        "{pane}"
    );
    assert!(
        pane.contains(&format!(
            "related:    {case_number} Need 40 licences (converted from)"
        )),
        "{pane}"
    );
    assert!(
        pane.contains("open in CRM: https://crm.example.com/email/"),
        "{pane}"
    );
    env.ok(&["connection", "delete", "ACC-1001", &id]);
    assert_eq!(
        env.json(&["connection", "list", &id])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let refused = env.fails(&["activity", "convert", &id, "invoice"], 2);
    assert!(refused.contains("lead, opportunity or case"), "{refused}");
}

/// Issue 12: some iPhone and Yahoo mails start with a line of blanks; Dovecot and Python read
/// the header after it, and so does crmsync.
#[test]
fn a_message_whose_first_line_is_blank_is_tracked() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    imap.append(
        "INBOX",
        &["crm"],
        &format!(
            " \n{}",
            message(
                "blank@x.example",
                "dana@x.example",
                "alice@example.com",
                "Blank first line"
            )
        ),
    );
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 1, "{report:#}");
    let activities = mail.activities();
    assert_eq!(activities[0]["subject"], "Blank first line");
    assert_eq!(activities[0]["message_id"], "blank@x.example");
}

/// Issue 12: a forwarded message whose inner multipart is never closed keeps all three of its
/// attachments (the forwarded message itself and the two files after it), as Dovecot and
/// Python see them.
#[test]
fn attachments_after_an_unclosed_inner_multipart_are_kept() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let raw = include_str!("../crates/imap/tests/data/unclosed_inner_multipart.eml");
    imap.append("INBOX", &["crm"], raw);
    mail.sync_ok();
    let id = activity_id(&mail, "Fwd");
    let shown = mail.env.json(&["activity", "show", &id]);
    let names: Vec<&str> = shown["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inner.eml", "two.pdf", "three.pdf"], "{shown:#}");
}

/// The mass-delete guard on a folder: the tracking keyword gone from 12 of 16 tracked messages
/// at once (a client that dropped keywords) deletes no activity; the pass says why and how to
/// confirm, the folder's changes are seen again next pass, and `--accept-deletes` carries the
/// untracks out, also of the messages filed into another folder meanwhile.
#[test]
fn most_of_a_folder_untracked_at_once_is_held_until_accepted() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let uids: Vec<u32> = (0..16)
        .map(|n| {
            imap.append(
                "INBOX",
                &["crm"],
                &message(
                    &format!("m{n}@x.example"),
                    "dana@x.example",
                    "alice@example.com",
                    &format!("Thread {n}"),
                ),
            )
        })
        .collect();
    assert_eq!(mail.sync_ok()["alice"]["created"], 16);
    for uid in &uids[..12] {
        imap.store("INBOX", *uid, "-FLAGS (crm)");
    }
    // Half of them are also filed away into another watched folder: their untrack is seen
    // there, and must be seen there again on the next pass.
    for uid in &uids[6..12] {
        imap.uid_move("INBOX", *uid, "Archive");
    }
    for _ in 0..2 {
        let report = &mail.sync()["alice"];
        assert_eq!(report["state"], "error", "{report:#}");
        assert_eq!(report["deleted"], 0, "{report:#}");
        let error = report["errors"][0].as_str().unwrap();
        assert!(
            error.contains("folder \"INBOX\": 12 of its 16 tracked messages are gone or untracked")
                && error.contains("--accept-deletes"),
            "{error}"
        );
        assert_eq!(mail.activities().len(), 16);
    }
    let run = mail.env.run(&["sync", "--accept-deletes", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(mail.activities().len(), 4);
    assert_eq!(mail.sync_ok()["alice"]["deleted"], 0);
}

/// On a server with QRESYNC (Dovecot), a pass learns what vanished from the server's
/// `VANISHED (EARLIER)` instead of listing every UID of the folder on every pass, and a pass
/// where nothing changed sends no FETCH and no SEARCH at all; an expunged tracked message
/// still loses its link (the activity stays).
#[test]
fn expunges_are_seen_through_qresync_without_listing_the_folder() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let uids: Vec<u32> = (0..3)
        .map(|n| {
            imap.append(
                "INBOX",
                &["crm"],
                &message(
                    &format!("q{n}@x.example"),
                    "dana@x.example",
                    "alice@example.com",
                    &format!("Q {n}"),
                ),
            )
        })
        .collect();
    assert_eq!(mail.sync_ok()["alice"]["created"], 3);
    mail.dovecot.record_traffic("alice");
    imap.expunge("INBOX", uids[2]);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["unlinked"], 1, "{report:#}");
    assert_eq!(mail.activities().len(), 3, "email deletes never cross");
    let quiet = &mail.sync_ok()["alice"];
    assert_eq!(quiet["imap"]["fetch_commands"], 0, "{quiet:#}");
    let commands = mail.dovecot.commands_of("alice");
    assert!(
        commands.iter().any(|c| c.contains("ENABLE QRESYNC")),
        "{commands:#?}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains("(CHANGEDSINCE") && c.contains("VANISHED)")),
        "{commands:#?}"
    );
    assert!(
        !commands.iter().any(|c| c.contains("UID SEARCH")),
        "{commands:#?}"
    );
}

/// A first scan lists the folder by the UIDs its one FETCH of every message brings: no
/// `UID SEARCH` (whose answer for a large folder costs more to parse than the headers). The
/// listing is whole: a message expunged afterwards is seen gone. It asks no sizes (on maildir
/// each costs Dovecot a file-name lookup): only the tracked messages' sizes are asked, in one
/// command, and their bodies then come in one lot.
#[test]
fn a_first_scan_lists_the_folder_without_a_uid_search() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let uids: Vec<u32> = (0..5)
        .map(|n| {
            let keywords: &[&str] = if n < 3 { &["crm"] } else { &[] };
            imap.append(
                "INBOX",
                keywords,
                &message(
                    &format!("f{n}@x.example"),
                    "dana@x.example",
                    "alice@example.com",
                    &format!("F {n}"),
                ),
            )
        })
        .collect();
    mail.dovecot.record_traffic("alice");
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["created"], 3, "{report:#}");
    let commands = mail.dovecot.commands_of("alice");
    assert!(
        !commands.iter().any(|c| c.contains("UID SEARCH")),
        "{commands:#?}"
    );
    // Every message's flags, then the header fields of the three tracked ones alone.
    let flag_fetches = commands
        .iter()
        .filter(|c| c.contains("UID FETCH 1:* (UID FLAGS)"))
        .count();
    assert_eq!(flag_fetches, 1, "{commands:#?}");
    let tracked: Vec<String> = uids[..3].iter().map(u32::to_string).collect();
    let tracked_set = [format!("{}:{}", tracked[0], tracked[2]), tracked.join(",")];
    let header_fetches: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("HEADER.FIELDS"))
        .collect();
    assert_eq!(header_fetches.len(), 1, "{commands:#?}");
    assert!(
        tracked_set
            .iter()
            .any(|set| header_fetches[0].contains(&format!("UID FETCH {set} "))),
        "{commands:#?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("UID FETCH 1:* ") && c.contains("RFC822.SIZE")),
        "{commands:#?}"
    );
    let size_requests: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("(UID RFC822.SIZE)"))
        .collect();
    assert_eq!(size_requests.len(), 1, "{commands:#?}");
    assert!(
        tracked_set.iter().any(|set| size_requests[0].contains(set)),
        "{commands:#?}"
    );
    let body_fetches = commands
        .iter()
        .filter(|c| c.contains("BODY.PEEK[]<0."))
        .count();
    assert_eq!(body_fetches, 1, "{commands:#?}");

    imap.expunge("INBOX", uids[0]);
    let report = &mail.sync_ok()["alice"];
    assert_eq!(report["unlinked"], 1, "{report:#}");
}

/// A pass that finds nothing to do writes nothing to the store: no transaction, no fsync (at a
/// thousand mailboxes, one write per folder per pass was thousands of fsyncs in a row). A pass
/// that finds a change, even to an untracked message, saves its folder's markers.
#[test]
fn a_pass_that_finds_nothing_writes_nothing() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    // The drafts folder is read on every pass too.
    imap.create("Drafts");
    imap.append(
        "INBOX",
        &["crm"],
        &message("w0@x.example", "dana@x.example", "alice@example.com", "W"),
    );
    let untracked = imap.append(
        "INBOX",
        &[],
        &message("w1@x.example", "dana@x.example", "alice@example.com", "U"),
    );
    assert_eq!(mail.sync_ok()["alice"]["created"], 1);
    mail.sync_ok();
    // SQLite's data_version moves when another connection commits to the file.
    let store = rusqlite::Connection::open(mail.env.path("crm.sqlite3")).unwrap();
    let version = |store: &rusqlite::Connection| -> i64 {
        store
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .unwrap()
    };
    let modseq = |store: &rusqlite::Connection| -> i64 {
        store
            .query_row(
                "SELECT highest_modseq FROM sync_state WHERE mailbox = 'alice' AND scope = 'INBOX'",
                [],
                |row| row.get(0),
            )
            .unwrap()
    };
    let (before, saved) = (version(&store), modseq(&store));
    let quiet = &mail.sync_ok()["alice"];
    assert_eq!(quiet["imap"]["fetch_commands"], 0, "{quiet:#}");
    assert_eq!(version(&store), before, "a pass with nothing to do wrote");

    imap.store("INBOX", untracked, "+FLAGS (\\Flagged)");
    mail.sync_ok();
    assert!(
        modseq(&store) > saved,
        "the changed folder's markers were not saved"
    );
}
