//! A crmsync setup on a real Dovecot: mailboxes, their password files, and their config.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use super::Env;
use super::dovecot::{Dovecot, ImapClient};

/// A crmsync setup with one mailbox per `(id, owner, imap user)`, all on one Dovecot.
pub struct Mail {
    pub dovecot: Dovecot,
    pub env: Env,
    password: String,
}

pub const PASSWORD: &str = "secret";

pub fn message(message_id: &str, from: &str, to: &str, subject: &str) -> String {
    format!(
        "Message-ID: <{message_id}>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\nFrom: {from}\nTo: {to}\n\
         Subject: {subject}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n\
         Body of {subject}.\n"
    )
}

impl Mail {
    pub fn new(mailboxes: &[(&str, &str)]) -> Mail {
        Mail::with_password(mailboxes, PASSWORD)
    }

    /// Every mailbox's IMAP password is `password`.
    pub fn with_password(mailboxes: &[(&str, &str)], password: &str) -> Mail {
        Mail::configured(mailboxes, password, "")
    }

    /// With `settings` added to Dovecot's configuration (a benchmark's other mail format).
    pub fn configured(mailboxes: &[(&str, &str)], password: &str, settings: &str) -> Mail {
        let users: Vec<(&str, &str)> = mailboxes.iter().map(|(id, _)| (*id, password)).collect();
        let dovecot = Dovecot::start_configured(&users, None, settings);
        let env = Env::new();
        let mut config =
            String::from("[crm]\ndatabase = \"crm.sqlite3\"\n[status]\nfile = \"status.json\"\n");
        for (id, owner) in mailboxes {
            let password_file = env.path(&format!("{id}.imap"));
            std::fs::write(&password_file, password).unwrap();
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
                .unwrap();
            config.push_str(&format!(
                "[[mailbox]]\nid = \"{id}\"\nowner = \"{owner}\"\n[mailbox.imap]\nhost = \"127.0.0.1\"\n\
                 port = {port}\nsecurity = \"none\"\nusername = \"{id}\"\npassword_file = \"{id}.imap\"\n\
                 folders = [\"INBOX\", \"Archive\"]\n",
                port = dovecot.port
            ));
            env.ok(&["user", "add", owner, "--name", id]);
        }
        env.write_config(&config);
        let mail = Mail {
            dovecot,
            env,
            password: password.to_owned(),
        };
        for (id, _) in mailboxes {
            mail.client(id).create("Archive");
        }
        mail
    }

    pub fn client(&self, user: &str) -> ImapClient {
        self.dovecot.client(user, &self.password)
    }

    /// Points every mailbox of the config at `port` on loopback (a fault proxy in front of
    /// Dovecot) instead of Dovecot itself.
    pub fn route_through(&self, port: u16) {
        let config = std::fs::read_to_string(&self.env.config).unwrap();
        let dovecot = format!("port = {}\n", self.dovecot.port);
        assert!(config.contains(&dovecot));
        self.env
            .write_config(&config.replace(&dovecot, &format!("port = {port}\n")));
    }

    /// One `crmsync sync --json` pass; returns the mailbox reports by id.
    pub fn sync(&self) -> Value {
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

    pub fn sync_ok(&self) -> Value {
        let reports = self.sync();
        for (id, report) in reports.as_object().unwrap() {
            assert_eq!(report["errors"], serde_json::json!([]), "{id}: {report:#}");
            assert_eq!(report["failed"], 0, "{id}: {report:#}");
        }
        reports
    }

    /// The subjects of every activity, sorted.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = self
            .activities()
            .iter()
            .map(|a| a["subject"].as_str().unwrap().to_owned())
            .collect();
        subjects.sort();
        subjects
    }

    pub fn activities(&self) -> Vec<Value> {
        self.env
            .json(&["activity", "list"])
            .as_array()
            .unwrap()
            .clone()
    }
}
