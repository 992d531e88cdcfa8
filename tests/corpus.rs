//! The corpus (issue 12): real-world calendar files from other projects' test suites
//! (`tests/corpus/SOURCES.md`), run through the real binary as a user's calendar. Every file
//! ends as `tests/corpus/calendar/EXPECTED` says: tracked (and after a CRM edit only the
//! changed property and the change stamps differ, and Python's icalendar still reads it),
//! skipped with the reason given, or refused with the reason given.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use support::Env;

fn corpus() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/calendar"
    ))
}

/// `file → expectation` from EXPECTED.
fn expected() -> BTreeMap<String, String> {
    std::fs::read_to_string(corpus().join("EXPECTED"))
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

/// The file with the tracking category on its first event or task.
fn with_category(text: &str) -> String {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let at = ["BEGIN:VEVENT", "BEGIN:VTODO"]
        .iter()
        .filter_map(|begin| text.find(begin))
        .min()
        .expect("an event or task");
    let end = at + text[at..].find('\n').unwrap() + 1;
    format!("{}CATEGORIES:CRM{newline}{}", &text[..end], &text[end..])
}

#[test]
fn every_corpus_file_ends_as_expected() {
    let expected = expected();
    let files: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".ics"))
        .collect();
    for file in &files {
        assert!(
            expected.contains_key(file),
            "{file} has no line in EXPECTED"
        );
    }
    let env = Env::new();
    let calendar = env.path("calendar");
    std::fs::create_dir(&calendar).unwrap();
    let config = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&format!(
        "{config}[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
         [mailbox.calendar]\npath = \"calendar\"\nfrom_crm = \"none\"\n"
    ));
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    let tracked: Vec<&String> = files
        .iter()
        .filter(|f| expected[f.as_str()] == "tracked")
        .collect();
    let mut categorized = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(corpus().join(file)).unwrap();
        let text = if expected[file.as_str()] == "tracked" {
            with_category(&text)
        } else {
            text
        };
        std::fs::write(calendar.join(file), &text).unwrap();
        categorized.insert(file.clone(), text);
    }
    let run = env.run(&["sync", "--json"]);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    let mailbox = &pass["mailboxes"][0];
    let warnings = mailbox["warnings"].to_string();
    let refused = expected
        .values()
        .filter(|e| e.starts_with("refused"))
        .count();
    assert_eq!(mailbox["failed"], refused, "{mailbox:#}");
    let skipped = expected
        .values()
        .filter(|e| e.starts_with("skipped"))
        .count();
    assert_eq!(mailbox["collections"][0]["skipped"], skipped, "{mailbox:#}");
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
    let activities = env.json(&["activity", "list"]);
    let activities = activities.as_array().unwrap();
    assert_eq!(activities.len(), tracked.len(), "{activities:#?}");

    // A CRM edit of each: only SUMMARY and the change stamps differ in the file.
    for activity in activities {
        let id = activity["id"].as_str().unwrap();
        env.ok(&["activity", "set", id, "subject=Edited in the CRM"]);
    }
    env.ok(&["sync"]);
    let python = support::smtp::python();
    for file in tracked {
        let after = std::fs::read_to_string(calendar.join(file)).unwrap();
        let (before, now) = (
            logical_lines(&categorized[file.as_str()]),
            logical_lines(&after),
        );
        let changed = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|l| !b.contains(l)).cloned().collect()
        };
        for line in changed(&before, &now).iter().chain(&changed(&now, &before)) {
            let name = line.split([':', ';']).next().unwrap_or("");
            assert!(
                ["SUMMARY", "DTSTAMP", "LAST-MODIFIED"].contains(&name),
                "{file}: {line:?} changed:\n{after}"
            );
        }
        assert!(
            now.contains(&"SUMMARY:Edited in the CRM".to_owned()),
            "{file}:\n{after}"
        );
        let check = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys, icalendar; icalendar.Calendar.from_ical(open(sys.argv[1], encoding='utf-8').read())",
            ])
            .arg(calendar.join(file))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
