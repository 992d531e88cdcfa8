//! The corpus (issue 12): real-world calendar and address-book files from other projects'
//! test suites (`tests/corpus/SOURCES.md`), run through the real binary as a user's
//! collections. Every file ends as its directory's `EXPECTED` says: tracked (and after a CRM
//! edit only the changed property and the change stamps differ, and Python's icalendar or
//! vobject still reads it), skipped with the reason given, or refused with the reason given.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::Env;

/// One collection of the corpus, and what a CRM edit of a tracked item may change in it.
struct Shelf {
    dir: &'static str,
    extension: &'static str,
    /// Where the tracking category goes: after the first of these lines.
    begins: &'static [&'static str],
    /// The CRM edit: the CLI arguments after the id or number.
    edit: &'static str,
    /// The only properties that edit may change.
    may_change: &'static [&'static str],
    /// Python that must read every file written: `sys.argv[1]` is the path.
    python: &'static str,
}

const SHELVES: [Shelf; 2] = [
    Shelf {
        dir: "calendar",
        extension: ".ics",
        begins: &["BEGIN:VEVENT", "BEGIN:VTODO"],
        edit: "subject=Edited in the CRM",
        may_change: &["SUMMARY", "DTSTAMP", "LAST-MODIFIED"],
        python: "import sys, icalendar; icalendar.Calendar.from_ical(open(sys.argv[1], encoding='utf-8').read())",
    },
    Shelf {
        dir: "contacts",
        extension: ".vcf",
        begins: &["BEGIN:VCARD"],
        edit: "name=Edited in the CRM",
        may_change: &["FN"],
        python: "import sys, vobject; vobject.readOne(open(sys.argv[1], encoding='utf-8').read())",
    },
];

fn corpus(dir: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus")).join(dir)
}

/// `file → expectation` from a directory's EXPECTED.
fn expected(dir: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(corpus(dir).join("EXPECTED"))
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (file, expectation) = line.split_once(char::is_whitespace).unwrap();
            (file.to_owned(), expectation.trim().to_owned())
        })
        .collect()
}

/// Logical lines (unfolded), for comparing two versions of a file.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix([' ', '\t']) {
            Some(rest) if !lines.is_empty() => lines.last_mut().unwrap().push_str(rest),
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

/// The file with the tracking category right after the first of `begins`.
fn with_category(text: &str, begins: &[&str]) -> String {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    // Names are case-insensitive (`begin:vcard` in RFC 2426's example).
    let upper = text.to_ascii_uppercase();
    let at = begins
        .iter()
        .filter_map(|begin| upper.find(begin))
        .min()
        .expect("an item to track");
    let end = at + text[at..].find('\n').unwrap() + 1;
    format!("{}CATEGORIES:CRM{newline}{}", &text[..end], &text[end..])
}

// Long on purpose: the whole corpus run, one shelf after the other, read top to bottom.
#[test]
fn every_corpus_file_ends_as_expected() {
    let env = Env::new();
    let config = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&format!(
        "{config}[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
         [mailbox.calendar]\npath = \"calendar\"\nfrom_crm = \"none\"\n\
         [mailbox.contacts]\npath = \"contacts\"\nfrom_crm = \"none\"\n"
    ));
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    let mut written: Vec<(usize, String, String)> = Vec::new();
    for (index, shelf) in SHELVES.iter().enumerate() {
        let expected = expected(shelf.dir);
        std::fs::create_dir(env.path(shelf.dir)).unwrap();
        let files: Vec<String> = std::fs::read_dir(corpus(shelf.dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(shelf.extension))
            .collect();
        assert!(!files.is_empty());
        for file in &files {
            let expectation = expected
                .get(file)
                .unwrap_or_else(|| panic!("{file} has no line in EXPECTED"));
            let text = std::fs::read_to_string(corpus(shelf.dir).join(file)).unwrap();
            let text = if expectation == "tracked" {
                with_category(&text, shelf.begins)
            } else {
                text
            };
            std::fs::write(env.path(shelf.dir).join(file), &text).unwrap();
            if expectation == "tracked" {
                written.push((index, file.clone(), text));
            }
        }
    }
    let run = env.run(&["sync", "--json"]);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let mailbox = &pass["mailboxes"][0];
    let warnings = mailbox["warnings"].to_string();
    for (index, shelf) in SHELVES.iter().enumerate() {
        let expected = expected(shelf.dir);
        let count = |kind: &str| expected.values().filter(|e| e.starts_with(kind)).count();
        let collection = &mailbox["collections"][index];
        assert_eq!(collection["name"], shelf.dir);
        assert_eq!(collection["failed"], count("refused"), "{mailbox:#}");
        assert_eq!(collection["skipped"], count("skipped"), "{mailbox:#}");
        assert_eq!(collection["tracked"], count("tracked"), "{mailbox:#}");
        for (file, expectation) in &expected {
            if let Some(why) = expectation.strip_prefix("refused: ") {
                assert!(
                    warnings.contains(file) && warnings.contains(why),
                    "{file}: {warnings}"
                );
            }
            if let Some(why) = expectation.strip_prefix("skipped: ") {
                let pane = env.json(&["item", "show", "--mailbox", "alice", "--href", file]);
                assert!(pane["notes"].to_string().contains(why), "{file}: {pane:#}");
            }
        }
    }

    // A CRM edit of each tracked item: only what it changes differs in the file.
    let (_, contact_edit) = SHELVES[1].edit.split_once('=').unwrap();
    for activity in env.json(&["activity", "list"]).as_array().unwrap() {
        let id = activity["id"].as_str().unwrap();
        env.ok(&["activity", "set", id, SHELVES[0].edit]);
    }
    for record in env.json(&["record", "list", "contact"]).as_array().unwrap() {
        let number = record["number"].as_str().unwrap();
        env.ok(&["record", "set", number, &format!("name={contact_edit}")]);
    }
    // Refused files make the pass's exit code 1; the others are written back.
    env.run(&["sync"]);
    let python = support::smtp::python();
    for (index, file, before) in &written {
        let shelf = &SHELVES[*index];
        let after = std::fs::read_to_string(env.path(shelf.dir).join(file)).unwrap();
        let (before, now) = (logical_lines(before), logical_lines(&after));
        let changed = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|l| !b.contains(l)).cloned().collect()
        };
        let had_uid = before
            .iter()
            .any(|l| l.to_ascii_uppercase().starts_with("UID"));
        for line in changed(&before, &now).iter().chain(&changed(&now, &before)) {
            let name = line.split([':', ';']).next().unwrap_or("");
            // A tracked item without a UID is given one; one that has a UID keeps it.
            let given_uid = name.eq_ignore_ascii_case("UID") && !had_uid;
            assert!(
                shelf.may_change.contains(&name) || given_uid,
                "{file}: {line:?} changed:\n{after}"
            );
        }
        assert!(after.contains("Edited in the CRM"), "{file}:\n{after}");
        // Python reads what crmsync wrote whenever it reads the original (vobject refuses
        // Lotus Notes' `PROFILE:VCard` either way).
        let reads = |path: &Path| {
            std::process::Command::new(&python)
                .args(["-c", shelf.python])
                .arg(path)
                .output()
                .unwrap()
        };
        if reads(&corpus(shelf.dir).join(file)).status.success() {
            let check = reads(&env.path(shelf.dir).join(file));
            assert!(
                check.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

/// What Python's email package decodes as a message's subject, whitespace collapsed.
fn python_subject(python: &str, path: &Path) -> String {
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, email, email.policy; m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default); print(' '.join(str(m['subject'] or '').split()))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The mail of the corpus (MIME samples of other parsers), each appended with the tracking
/// keyword to a real Dovecot: tracked with the subject Python decodes, or refused with the
/// reason given.
#[test]
fn every_corpus_message_ends_as_expected() {
    use support::mail::Mail;
    let expected = expected("mail");
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let mut imap = mail.client("alice");
    let mut uids = BTreeMap::new();
    let files: Vec<String> = std::fs::read_dir(corpus("mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    for file in &files {
        assert!(
            expected.contains_key(file),
            "{file} has no line in EXPECTED"
        );
        let raw = std::fs::read(corpus("mail").join(file)).unwrap();
        uids.insert(file.clone(), imap.append_bytes("INBOX", &["crm"], &raw));
    }
    mail.sync();
    let failed = mail.env.json(&["items", "--failed"]);
    let python = support::smtp::python();
    for (file, expectation) in &expected {
        let place = format!("INBOX:{}", uids[file]);
        let failure = failed
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["item"] == place.as_str());
        if let Some(why) = expectation.strip_prefix("refused: ") {
            let failure = failure.unwrap_or_else(|| panic!("{file} was not refused: {failed:#}"));
            assert!(
                failure["reason"].as_str().unwrap().contains(why),
                "{file}: {failure:#}"
            );
            continue;
        }
        assert!(failure.is_none(), "{file} failed: {failure:?}");
        let pane = mail
            .env
            .json(&["item", "show", "--mailbox", "alice", "--uid", &place]);
        assert_eq!(pane["tracked"], true, "{file}: {pane:#}");
        let subject = pane["activity"]["subject"].as_str().unwrap();
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            subject,
            python_subject(&python, &corpus("mail").join(file)),
            "{file}"
        );
    }
}
