//! The CLI of SPEC section 9, driven through the real binary on a real store file.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::Env;

/// Alice (a user), an account with a contact under it, and an appointment regarding the account.
fn populated() -> (Env, String) {
    let env = Env::new();
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice Adams"]);
    env.ok(&[
        "record",
        "add",
        "account",
        "--name",
        "Adventure Works",
        "--email",
        "info@adventure-works.com",
    ]);
    env.ok(&[
        "record",
        "add",
        "contact",
        "--name",
        "Dana Smith",
        "--email",
        "dana@adventure-works.com",
        "--parent",
        "ACC-1001",
        "--owner",
        "alice@example.com",
    ]);
    let activity = env.json(&[
        "activity",
        "add",
        "appointment",
        "--owner",
        "alice@example.com",
        "--subject",
        "Kickoff",
        "--start",
        "2026-12-01T10:00:00Z",
        "--end",
        "2026-12-01T11:00:00Z",
        "--regarding",
        "ACC-1001",
        "--to",
        "dana@adventure-works.com",
        "--location",
        "Room 1",
    ]);
    let id = activity["id"].as_str().unwrap().to_owned();
    (env, id)
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn assert_has_keys(value: &Value, wanted: &[&str]) {
    let present = keys(value);
    for key in wanted {
        assert!(present.contains(key), "no {key:?} in {value:#}");
    }
}

#[test]
fn users_are_added_listed_and_given_the_sync_privilege() {
    let env = Env::new();
    let added = env.ok(&["user", "add", "alice@example.com", "--name", "Alice Adams"]);
    assert_eq!(
        added.trim(),
        "added user alice@example.com \"Alice Adams\" as USR-1001, sync yes"
    );
    env.ok(&[
        "user",
        "add",
        "bob@example.com",
        "--name",
        "Bob",
        "--no-sync",
    ]);

    let users = env.json(&["user", "list"]);
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "alice@example.com");
    assert_eq!(users[0]["name"], "Alice Adams");
    assert_eq!(users[0]["sync"], true);
    assert_eq!(users[1]["sync"], false);

    env.ok(&["user", "set", "bob@example.com", "--sync", "yes"]);
    env.ok(&["user", "set", "alice@example.com", "--sync", "no"]);
    let table = env.ok(&["user", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("EMAIL"), "{table}");
    assert!(
        lines[1].starts_with("alice@example.com") && lines[1].ends_with("no"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("bob@example.com") && lines[2].ends_with("yes"),
        "{table}"
    );

    let line = env.fails(&["user", "add", "ALICE@example.com", "--name", "Again"], 1);
    assert_eq!(
        line,
        "crmsync: a user with address ALICE@example.com already exists"
    );
    let line = env.fails(&["user", "set", "carol@example.com", "--sync", "yes"], 1);
    assert_eq!(line, "crmsync: user carol@example.com not found");
}

#[test]
fn records_are_added_listed_shown_and_changed() {
    let (env, _) = populated();
    let records = env.json(&["record", "list", "contact"]);
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 1);
    let dana = &records[0];
    assert_has_keys(
        dana,
        &[
            "id", "entity", "number", "name", "emails", "parent", "owner",
        ],
    );
    assert_eq!(dana["entity"], "contact");
    assert_eq!(dana["number"], "CON-1001");
    assert_eq!(
        dana["emails"],
        serde_json::json!(["dana@adventure-works.com"])
    );
    assert_eq!(dana["owner"], "alice@example.com");
    assert_eq!(dana["parent"]["number"], "ACC-1001");
    assert_eq!(dana["parent"]["entity"], "account");
    assert_eq!(dana["parent"]["name"], "Adventure Works");
    assert!(dana["parent"]["id"].as_str().unwrap().len() == 36);

    let table = env.ok(&["record", "list"]);
    assert!(
        table.lines().next().unwrap().starts_with("NUMBER"),
        "{table}"
    );
    assert!(table.contains("ACC-1001  account"), "{table}");
    assert!(table.contains("USR-1001  systemuser"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");

    let shown = env.ok(&["record", "show", "con-1001"]);
    assert!(
        shown.contains("Dana Smith") && shown.contains("ACC-1001 (Adventure Works)"),
        "{shown}"
    );

    let changed = env.json(&[
        "record",
        "set",
        "CON-1001",
        "name=Dana Smith-Jones",
        "email=dana@a.example, dana@b.example",
        "phone=+1 555 0100",
        "job_title=Buyer",
        "parent=",
    ]);
    assert_eq!(changed["name"], "Dana Smith-Jones");
    assert_eq!(
        changed["emails"],
        serde_json::json!(["dana@a.example", "dana@b.example"])
    );
    assert_eq!(changed["phones"], serde_json::json!(["+1 555 0100"]));
    assert_eq!(changed["job_title"], "Buyer");
    assert_eq!(changed["parent"], Value::Null);
    assert_eq!(
        env.json(&["record", "show", "CON-1001"])["name"],
        "Dana Smith-Jones"
    );

    // A custom entity, with a number given by hand.
    env.ok(&[
        "record",
        "add",
        "project",
        "--name",
        "Migration",
        "--number",
        "PRJ-7",
    ]);
    assert_eq!(env.json(&["record", "show", "PRJ-7"])["entity"], "project");
}

#[test]
fn activities_are_added_listed_shown_changed_and_deleted() {
    let (env, id) = populated();
    let listed = env.json(&["activity", "list"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    let activity = &listed[0];
    assert_has_keys(
        activity,
        &[
            "id",
            "type",
            "subject",
            "owner",
            "regarding",
            "parties",
            "message_id",
            "state",
            "start",
            "end",
            "due",
            "links",
            "created",
            "modified",
        ],
    );
    assert_eq!(activity["id"], id.as_str());
    assert_eq!(activity["type"], "appointment");
    assert_eq!(activity["owner"], "alice@example.com");
    assert_eq!(activity["state"], "open");
    assert_eq!(activity["start"], "2026-12-01T10:00:00Z");
    assert_eq!(activity["regarding"]["number"], "ACC-1001");
    assert_eq!(activity["regarding"]["entity"], "account");
    assert_eq!(activity["links"], serde_json::json!([]));
    let parties = activity["parties"].as_array().unwrap();
    assert_eq!(parties[0]["role"], "organizer");
    assert_eq!(parties[0]["record"]["entity"], "systemuser");
    assert_eq!(parties[1]["role"], "required");
    assert_eq!(parties[1]["address"], "dana@adventure-works.com");
    assert_eq!(parties[1]["record"]["number"], "CON-1001");

    // Shown by a prefix of its id, as a person would type it.
    let shown = env.ok(&["activity", "show", &id[..8]]);
    assert!(
        shown.contains("Kickoff") && shown.contains("ACC-1001 (Adventure Works)"),
        "{shown}"
    );
    assert!(
        shown.contains("required dana@adventure-works.com -> contact CON-1001"),
        "{shown}"
    );

    let table = env.ok(&["activity", "list", "--type", "appointment"]);
    assert!(
        table.contains(&id[..8]) && table.contains("Kickoff"),
        "{table}"
    );
    assert_eq!(
        env.json(&["activity", "list", "--type", "task"]),
        serde_json::json!([])
    );
    assert_eq!(
        env.json(&["activity", "list", "--mailbox", "alice"]),
        serde_json::json!([])
    );

    let changed = env.json(&[
        "activity",
        "set",
        &id,
        "subject=Kickoff (moved)",
        "location=",
        "state=completed",
    ]);
    assert_eq!(changed["subject"], "Kickoff (moved)");
    assert_eq!(changed["location"], Value::Null);
    assert_eq!(changed["state"], "completed");
    assert!(changed["modified"].as_str() >= activity["modified"].as_str());

    let regarding = env.json(&["activity", "regarding", &id, "CON-1001"]);
    assert_eq!(regarding["regarding"]["number"], "CON-1001");
    let cleared = env.json(&["activity", "regarding", &id, "none"]);
    assert_eq!(cleared["regarding"], Value::Null);

    let deleted = env.ok(&["activity", "delete", &id]);
    assert_eq!(deleted.trim(), format!("deleted activity {id}"));
    let line = env.fails(&["activity", "show", &id], 1);
    assert_eq!(line, format!("crmsync: activity {id} not found"));
    assert_eq!(env.json(&["activity", "list"]), serde_json::json!([]));
}

#[test]
fn emails_and_tasks_created_in_the_crm() {
    let (env, _) = populated();
    let email = env.json(&[
        "activity",
        "add",
        "email",
        "--owner",
        "alice@example.com",
        "--subject",
        "Proposal",
        "--to",
        "info@adventure-works.com",
        "--body",
        "Please find the proposal.",
    ]);
    assert_eq!(email["state"], "pending-send");
    assert_eq!(email["parties"][0]["role"], "from");
    assert_eq!(email["parties"][1]["role"], "to");
    assert_eq!(email["parties"][1]["record"]["number"], "ACC-1001");
    assert_eq!(email["description"], "Please find the proposal.");

    let task = env.json(&[
        "activity",
        "add",
        "task",
        "--owner",
        "alice@example.com",
        "--subject",
        "Call back",
        "--due",
        "2026-12-03",
    ]);
    assert_eq!(task["state"], "open");
    assert_eq!(task["due"], "2026-12-03");
    let task_id = task["id"].as_str().unwrap();
    let done = env.json(&[
        "activity",
        "set",
        task_id,
        "percent=100",
        "state=completed",
        "priority=1",
    ]);
    assert_eq!(done["percent_complete"], 100);
    assert_eq!(done["priority"], 1);

    let line = env.fails(&["activity", "set", task_id, "state=sent"], 2);
    assert!(line.contains("a task cannot be in state sent"), "{line}");
    let line = env.fails(
        &[
            "activity",
            "add",
            "email",
            "--owner",
            "alice@example.com",
            "--subject",
            "x",
        ],
        2,
    );
    assert_eq!(line, "crmsync: an email needs at least one --to");
    let line = env.fails(
        &[
            "activity",
            "add",
            "task",
            "--owner",
            "alice@example.com",
            "--subject",
            "x",
            "--to",
            "a@b.example",
        ],
        2,
    );
    assert!(line.contains("a task has no recipients"), "{line}");
    let line = env.fails(
        &[
            "activity",
            "add",
            "appointment",
            "--owner",
            "alice@example.com",
            "--subject",
            "x",
            "--start",
            "2026-12-02T10:00:00Z",
            "--end",
            "2026-12-02T09:00:00Z",
        ],
        2,
    );
    assert_eq!(line, "crmsync: the end is before the start");
}

#[test]
fn cli_writes_reach_the_change_journal_with_their_origin() {
    let (env, id) = populated();
    env.ok(&["activity", "set", &id, "subject=Changed"]);
    let conn = rusqlite::Connection::open(env.path("crm.sqlite3")).unwrap();
    let (entity, row_id, op, origin): (String, String, String, Option<String>) = conn
        .query_row(
            "SELECT entity, row_id, op, origin FROM change_journal ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (entity.as_str(), row_id.as_str(), op.as_str()),
        ("activity", id.as_str(), "update")
    );
    assert_eq!(origin.as_deref(), Some("crmsync-cli"));
}

#[test]
fn deleting_a_regarded_record_is_refused() {
    let (env, id) = populated();
    let line = env.fails(&["record", "delete", "ACC-1001"], 1);
    assert!(
        line.starts_with(
            "crmsync: cannot delete ACC-1001: it is the regarding record of 1 activity"
        ),
        "{line}"
    );
    env.ok(&["activity", "regarding", &id, "none"]);
    env.ok(&["record", "delete", "ACC-1001"]);
    // The contact under it stays, without a parent.
    assert_eq!(
        env.json(&["record", "show", "CON-1001"])["parent"],
        Value::Null
    );
    env.fails(&["record", "show", "ACC-1001"], 1);
}

#[test]
fn bad_input_exits_with_one_clear_line() {
    let (env, _) = populated();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["record", "add", "Bad-Entity", "--name", "x"],
            2,
            "crmsync: invalid entity name \"Bad-Entity\": use 1 to 64 lowercase letters, digits or '_', starting with a letter",
        ),
        (
            &[
                "record", "add", "lead", "--name", "x", "--number", "ACC-1001",
            ],
            1,
            "crmsync: record number ACC-1001 is already taken by account \"Adventure Works\"",
        ),
        (
            &["record", "show", "ACC-9999"],
            1,
            "crmsync: record ACC-9999 not found",
        ),
        (
            &["record", "set", "ACC-9999", "name=x"],
            1,
            "crmsync: record ACC-9999 not found",
        ),
        (
            &[
                "record", "add", "contact", "--name", "x", "--parent", "ACC-4242",
            ],
            1,
            "crmsync: record ACC-4242 not found",
        ),
        (
            &[
                "record",
                "add",
                "contact",
                "--name",
                "x",
                "--email",
                "not an address",
            ],
            2,
            "crmsync: invalid email address \"not an address\": expected the form name@example.com",
        ),
        (
            &["record", "set", "CON-1001", "colour=blue"],
            2,
            "crmsync: unknown field \"colour\": expected one of name, email, phone, parent, owner, given_name, family_name, job_title, address, notes",
        ),
        (
            &["record", "set", "CON-1001", "name"],
            2,
            "crmsync: \"name\" is not KEY=VALUE",
        ),
        (
            &["record", "set", "CON-1001", "name= "],
            2,
            "crmsync: a record name must not be empty",
        ),
        (
            &["record", "show", "ACC 1"],
            2,
            "crmsync: invalid record number \"ACC 1\": use 1 to 32 letters, digits or '-', such as ACC-1001",
        ),
        (
            &["activity", "show", "00000000"],
            1,
            "crmsync: activity 00000000 not found",
        ),
        (
            &[
                "activity",
                "add",
                "meeting",
                "--owner",
                "alice@example.com",
                "--subject",
                "x",
            ],
            2,
            "crmsync: invalid activity type \"meeting\": expected one of email, appointment, task",
        ),
        (
            &[
                "activity",
                "add",
                "task",
                "--owner",
                "nobody@example.com",
                "--subject",
                "x",
            ],
            1,
            "crmsync: user nobody@example.com not found",
        ),
        (
            &[
                "activity",
                "add",
                "task",
                "--owner",
                "alice@example.com",
                "--subject",
                "x",
                "--due",
                "soon",
            ],
            2,
            "crmsync: invalid time \"soon\" for --due: use 2026-12-01 (all day), 2026-12-01T10:00 (local time) or 2026-12-01T10:00:00Z",
        ),
        (
            &[
                "activity",
                "add",
                "task",
                "--owner",
                "alice@example.com",
                "--subject",
                "x",
                "--regarding",
                "OPP-1",
            ],
            1,
            "crmsync: record OPP-1 not found",
        ),
    ];
    for (args, code, expected) in cases {
        let line = env.fails(args, *code);
        assert_eq!(&line, expected, "crmsync {args:?}");
    }
    // Nothing of the refused commands reached the store.
    assert_eq!(env.json(&["record", "list"]).as_array().unwrap().len(), 3);
    assert_eq!(env.json(&["activity", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn bad_config_exits_2_with_one_line_naming_the_problem() {
    let env = Env::new();
    let config = env.config.display().to_string();

    let missing = env.path("missing.toml");
    let run = support::run({
        let mut command = std::process::Command::new(support::binary());
        command.args(["-c", missing.to_str().unwrap(), "user", "list"]);
        command
    });
    assert_eq!(run.code, 2);
    assert_eq!(
        support::one_line(&run.stderr),
        format!(
            "crmsync: {}: no such file (give another with --config or CRMSYNC_CONFIG)",
            missing.display()
        )
    );

    env.write_config("[crm]\ndatabase = \"crm.sqlite3\"\nthis is not toml\n");
    let line = env.fails(&["user", "list"], 2);
    assert!(line.starts_with(&format!("crmsync: {config}:3:")), "{line}");
    assert!(line.contains("invalid TOML"), "{line}");

    env.write_config("[crm]\ndatabase = \"crm.sqlite3\"\ncolor = \"blue\"\n");
    let line = env.fails(&["user", "list"], 2);
    assert!(
        line.starts_with(&format!("crmsync: {config}: crm.color: unknown key")),
        "{line}"
    );

    let password = env.path("alice.imap");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.write_config(
        "[crm]\ndatabase = \"crm.sqlite3\"\n[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
         [mailbox.imap]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nusername = \"alice\"\npassword_file = \"alice.imap\"\n"
    );
    let line = env.fails(&["user", "list"], 2);
    assert_eq!(
        line,
        format!(
            "crmsync: {config}: mailbox \"alice\": imap.password_file: password file {0} is readable by group or others (mode 644); fix it with: chmod 600 {0}",
            password.display()
        )
    );
    assert!(!line.contains("secret"));
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["user", "list"]);

    env.write_config("[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n[mailbox.imap]\nhost = \"x\"\nport = 99999\nusername = \"a\"\npassword_credential = \"c\"\n");
    let line = env.fails(&["user", "list"], 2);
    assert_eq!(
        line,
        format!(
            "crmsync: {config}: mailbox \"alice\": imap.port: expected a number from 1 to 65535"
        )
    );

    // Several problems: one line each.
    env.write_config("[crm]\ndatabase = 5\n[connection]\nenabled = \"no\"\n");
    let run = env.run(&["user", "list"]);
    assert_eq!(run.code, 2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("crmsync: {config}: crm.database: expected a string"),
            format!("crmsync: {config}: connection.enabled: expected true or false"),
        ]
    );
}

#[test]
fn the_store_directory_must_exist() {
    let env = Env::with_config("[crm]\ndatabase = \"no/such/dir/crm.sqlite3\"\n");
    let line = env.fails(&["user", "list"], 1);
    assert!(
        line.starts_with("crmsync: cannot open the CRM store"),
        "{line}"
    );
    assert!(line.ends_with("no/such/dir does not exist"), "{line}");
}

#[test]
fn the_config_comes_from_the_environment_when_not_given() {
    let env = Env::new();
    let mut command = std::process::Command::new(support::binary());
    command.args(["user", "add", "alice@example.com", "--name", "Alice"]);
    command.env("CRMSYNC_CONFIG", &env.config);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(env.path("crm.sqlite3").exists());
}

#[test]
fn status_without_a_daemon_says_so() {
    let env = Env::new();
    let line = env.fails(&["status"], 1);
    assert_eq!(
        line,
        format!(
            "crmsync: no status yet: {} does not exist (the daemon writes it once `crmsync run` has started)",
            env.path("status.json").display()
        )
    );
    std::fs::write(env.path("status.json"), "{\"schema\": 1, \"upd").unwrap();
    let line = env.fails(&["status"], 1);
    assert!(line.contains("status.json is not valid"), "{line}");
}

#[test]
fn status_renders_the_status_file() {
    let env = Env::new();
    let status = serde_json::json!({
        "schema": 1,
        "updated": "2026-11-29T10:00:05Z",
        "daemon": {
            "version": "0.1.0", "pid": 999_999_999u32, "started": "2026-11-29T09:00:00Z",
            "connection_enabled": true, "config": "/etc/crmsync/crmsync.toml"
        },
        "mailboxes": [
            {"id": "alice", "owner": "alice@example.com", "state": "idle",
             "last_success": "2026-11-29T10:00:04Z", "last_error": null,
             "tracked": 12, "pending": 0, "failed": 1,
             "folders": [{"name": "INBOX", "kind": "imap", "uid_validity": 1, "highest_modseq": 77,
                          "sync_token": null, "last_success": "2026-11-29T10:00:04Z"}]},
            {"id": "bob", "owner": "bob@example.com", "state": "error",
             "last_success": null, "last_error": "authentication failed",
             "tracked": 0, "pending": 0, "failed": 0, "folders": []}
        ]
    });
    let text = serde_json::to_string_pretty(&status).unwrap();
    std::fs::write(env.path("status.json"), &text).unwrap();

    let shown = env.ok(&["status"]);
    assert!(
        shown.contains("NOT RUNNING (pid 999999999 is gone"),
        "{shown}"
    );
    let alice = shown.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(alice.contains("idle") && alice.contains("12"), "{shown}");
    let bob = shown.lines().find(|l| l.starts_with("bob")).unwrap();
    assert!(
        bob.contains("error") && bob.ends_with("authentication failed"),
        "{shown}"
    );

    assert_eq!(env.json(&["status"]), status);
}

#[test]
fn every_command_has_help() {
    let env = Env::new();
    let commands: &[&[&str]] = &[
        &[],
        &["user"],
        &["user", "add"],
        &["user", "list"],
        &["user", "set"],
        &["record"],
        &["record", "add"],
        &["record", "list"],
        &["record", "show"],
        &["record", "set"],
        &["record", "delete"],
        &["activity"],
        &["activity", "add"],
        &["activity", "list"],
        &["activity", "show"],
        &["activity", "set"],
        &["activity", "delete"],
        &["activity", "regarding"],
        &["status"],
        &["sync"],
        &["run"],
        &["check"],
        &["conflicts"],
        &["item"],
        &["item", "show"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = env.ok(&args);
        assert!(help.contains("Usage: crmsync"), "{command:?}: {help}");
        // The first line says what the command does.
        assert!(
            help.lines().next().unwrap().len() > 10,
            "{command:?}: {help}"
        );
    }
    let run = env.run(&["frobnicate"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        run.stderr
    );
}
