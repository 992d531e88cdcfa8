//! Email tracking end to end: a real Dovecot, the real binary, a real store.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::Env;
use support::dovecot::{Dovecot, ImapClient};

/// A crmsync setup with one mailbox per `(id, owner, imap user)`, all on one Dovecot.
struct Mail {
    dovecot: Dovecot,
    env: Env,
}

const PASSWORD: &str = "secret";

fn message(message_id: &str, from: &str, to: &str, subject: &str) -> String {
    format!(
        "Message-ID: <{message_id}>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\nFrom: {from}\nTo: {to}\n\
         Subject: {subject}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n\
         Body of {subject}.\n"
    )
}

impl Mail {
    fn new(mailboxes: &[(&str, &str)]) -> Mail {
        let users: Vec<(&str, &str)> = mailboxes.iter().map(|(id, _)| (*id, PASSWORD)).collect();
        let dovecot = Dovecot::start(&users);
        let env = Env::new();
        let mut config =
            String::from("[crm]\ndatabase = \"crm.sqlite3\"\n[status]\nfile = \"status.json\"\n");
        for (id, owner) in mailboxes {
            let password = env.path(&format!("{id}.imap"));
            std::fs::write(&password, PASSWORD).unwrap();
            std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
            config.push_str(&format!(
                "[[mailbox]]\nid = \"{id}\"\nowner = \"{owner}\"\n[mailbox.imap]\nhost = \"127.0.0.1\"\n\
                 port = {port}\nsecurity = \"none\"\nusername = \"{id}\"\npassword_file = \"{id}.imap\"\n\
                 folders = [\"INBOX\", \"Archive\"]\n",
                port = dovecot.port
            ));
            env.ok(&["user", "add", owner, "--name", id]);
        }
        env.write_config(&config);
        let mail = Mail { dovecot, env };
        for (id, _) in mailboxes {
            mail.client(id).create("Archive");
        }
        mail
    }

    fn client(&self, user: &str) -> ImapClient {
        self.dovecot.client(user, PASSWORD)
    }

    /// One `crmsync sync --json` pass; returns the mailbox reports by id.
    fn sync(&self) -> Value {
        let run = self.env.run(&["sync", "--json"]);
        let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!("sync printed no JSON ({e}): {}\n{}", run.stdout, run.stderr)
        });
        let mut by_id = serde_json::Map::new();
        for mailbox in report["mailboxes"].as_array().unwrap() {
            by_id.insert(mailbox["id"].as_str().unwrap().to_owned(), mailbox.clone());
        }
        Value::Object(by_id)
    }

    fn sync_ok(&self) -> Value {
        let reports = self.sync();
        for (id, report) in reports.as_object().unwrap() {
            assert_eq!(report["errors"], serde_json::json!([]), "{id}: {report:#}");
            assert_eq!(report["failed"], 0, "{id}: {report:#}");
        }
        reports
    }

    fn activities(&self) -> Vec<Value> {
        self.env
            .json(&["activity", "list"])
            .as_array()
            .unwrap()
            .clone()
    }
}

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
    let again = &mail.sync_ok()["alice"];
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
    assert_eq!(again["imap"]["fetch_commands"], 0, "{again:#}");
    assert_eq!(again["imap"]["bodies_fetched"], 0);
}
