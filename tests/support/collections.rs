//! A crmsync setup with a calendar and an address book (vdir directories), and the items
//! the collection tests write into them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Env;

pub struct Collections {
    pub env: Env,
    pub calendar: PathBuf,
    pub contacts: PathBuf,
}

pub fn setup(extra: &str) -> Collections {
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

pub fn event(uid: &str, summary: &str, categories: &str, extra: &str) -> String {
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

pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

pub fn sync(env: &Env) -> Value {
    let value = env.json(&["sync"]);
    value["mailboxes"][0].clone()
}

pub fn activities(env: &Env, kind: &str) -> Vec<Value> {
    env.json(&["activity", "list", "--type", kind])
        .as_array()
        .unwrap()
        .clone()
}

pub fn activity(env: &Env, kind: &str) -> Value {
    let all = activities(env, kind);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

pub fn task(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//todoman//EN\nBEGIN:VTODO\nUID:{uid}\nSUMMARY:{summary}\n\
DUE;VALUE=DATE:20261205\nPRIORITY:1\nSTATUS:NEEDS-ACTION\nCATEGORIES:crm\nX-TODOMAN:kept\nEND:VTODO\nEND:VCALENDAR\n"
    )
}

/// One item of each kind, as a person's client writes it.
pub struct Kind {
    pub name: &'static str,
    pub dir: fn(&Collections) -> &Path,
    pub file: &'static str,
    pub text: &'static str,
    /// How the CRM lists it: `activity list --type T`, or the contact records.
    pub list: fn(&Env) -> Vec<Value>,
    /// Deletes the CRM copy as a CRM user would.
    pub delete: fn(&Env, &Value),
}

pub fn contacts_of(env: &Env) -> Vec<Value> {
    env.json(&["record", "list", "contact"])
        .as_array()
        .unwrap()
        .clone()
}

pub const KINDS: &[Kind] = &[
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

pub fn subject_of(kind: &Kind, row: &Value) -> String {
    let key = if kind.name == "contact" {
        "name"
    } else {
        "subject"
    };
    row[key].as_str().unwrap().to_owned()
}
