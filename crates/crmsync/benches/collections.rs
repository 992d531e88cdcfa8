//! Calendar and address-book sync at scale, side by side with vdirsyncer syncing the same
//! collections to second directories.
//! `cargo bench -p crmsync --bench collections [-- ITEMS TRIALS]` (defaults 10000 and 50); the
//! results go to docs/benchmarks.md by hand. vdirsyncer comes from PyPI into
//! `target/bench-venv` on the first run; `CRMSYNC_BENCH_VDIRSYNCER=no` leaves it out (its
//! first sync of 100,000 items takes minutes).
//!
//! - **first import**: ITEMS tracked items (four fifths events and tasks, one fifth vCards) in
//!   fresh collections; `crmsync sync` on an empty store, then a second pass with nothing new.
//!   vdirsyncer: `discover` then `sync` to empty directories, then a second `sync`.
//! - **file to CRM**: with `crmsync run` watching the imported collections, a client writes a
//!   new tracked event the way vdir clients do (a temporary file, then a rename) at t0; the
//!   delay is until its appointment is committed (a 1 ms poll of the store). vdirsyncer has no
//!   watcher (it runs from a timer); its best case is one `vdirsyncer sync` started at t0, until
//!   the file is in the second directory.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{numbers, poll, row, timed, vdirsyncer};
use support::Env;
use support::daemon::Daemon;

fn event(uid: &str, summary: &str, task: bool) -> String {
    let (name, body) = if task {
        (
            "VTODO",
            "DUE;VALUE=DATE:20261205\r\nPRIORITY:2\r\n".to_owned(),
        )
    } else {
        (
            "VEVENT",
            format!(
                "DTSTART;TZID=Europe/Berlin:20261201T100000\r\nDTEND;TZID=Europe/Berlin:20261201T110000\r\n\
LOCATION:Room {}\r\nATTENDEE;CN=Guest:mailto:guest{}@example.org\r\n",
                summary.len(),
                summary.len() % 50
            ),
        )
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:{name}\r\nUID:{uid}\r\n\
DTSTAMP:20261129T100000Z\r\nSUMMARY:{summary}\r\n{body}CATEGORIES:Work,CRM\r\nX-BENCH:kept\r\n\
END:{name}\r\nEND:VCALENDAR\r\n"
    )
}

fn card(i: usize) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card{i}@bench\r\nFN:Person {i}\r\nN:{i};Person;;;\r\n\
EMAIL;TYPE=work:person{i}@example.org\r\nTEL:+1 555 {i:04}\r\nORG:Company {}\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n",
        i % 200
    )
}

/// Writes a file the way vdir clients do: a temporary file, then a rename.
fn write_atomically(dir: &Path, name: &str, text: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, dir.join(name)).unwrap();
}

// Long on purpose: the benchmark as a script, read top to bottom.
fn main() {
    let numbers = numbers();
    let items = numbers.first().copied().unwrap_or(10_000);
    let trials = numbers.get(1).copied().unwrap_or(50);
    let with_vdirsyncer = std::env::var("CRMSYNC_BENCH_VDIRSYNCER").as_deref() != Ok("no");

    let env = Env::new();
    let (calendar, contacts) = (env.path("calendar"), env.path("contacts"));
    for dir in [
        "calendar",
        "contacts",
        "calendar-copy",
        "contacts-copy",
        "vdirsyncer",
    ] {
        std::fs::create_dir(env.path(dir)).unwrap();
    }
    env.write_config(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n[log]\nlevel = \"warn\"\n\n\
         [[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\n\
         [mailbox.calendar]\npath = \"calendar\"\n\n[mailbox.contacts]\npath = \"contacts\"\n",
    );
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    let cards = items / 5;
    for i in 0..items - cards {
        let text = event(&format!("item{i}@bench"), &format!("Item {i}"), i % 4 == 3);
        std::fs::write(calendar.join(format!("item{i}.ics")), text).unwrap();
    }
    for i in 0..cards {
        std::fs::write(contacts.join(format!("card{i}.vcf")), card(i)).unwrap();
    }

    // First import.
    let t0 = Instant::now();
    let pass = env.json(&["sync"]);
    let crmsync_first = t0.elapsed();
    assert_eq!(pass["mailboxes"][0]["created"], items as u64, "{pass}");
    let t0 = Instant::now();
    env.ok(&["sync"]);
    let crmsync_second = t0.elapsed();

    let config = env.path("vdirsyncer/config");
    std::fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{status}\"\n\n\
             [pair calendar]\na = \"calendar_a\"\nb = \"calendar_b\"\ncollections = null\n\n\
             [storage calendar_a]\ntype = \"filesystem\"\npath = \"{calendar}\"\nfileext = \".ics\"\n\n\
             [storage calendar_b]\ntype = \"filesystem\"\npath = \"{calendar_copy}\"\nfileext = \".ics\"\n\n\
             [pair contacts]\na = \"contacts_a\"\nb = \"contacts_b\"\ncollections = null\n\n\
             [storage contacts_a]\ntype = \"filesystem\"\npath = \"{contacts}\"\nfileext = \".vcf\"\n\n\
             [storage contacts_b]\ntype = \"filesystem\"\npath = \"{contacts_copy}\"\nfileext = \".vcf\"\n",
            status = env.path("vdirsyncer/status").display(),
            calendar = calendar.display(),
            calendar_copy = env.path("calendar-copy").display(),
            contacts = contacts.display(),
            contacts_copy = env.path("contacts-copy").display(),
        ),
    )
    .unwrap();
    let vdirsyncer = if with_vdirsyncer {
        vdirsyncer()
    } else {
        PathBuf::from("vdirsyncer")
    };
    let vdirsyncer_command = |args: &[&str]| {
        let mut command = Command::new(&vdirsyncer);
        command.arg("-c").arg(&config).args(args);
        command
    };
    let (mut vdirsyncer_first, mut vdirsyncer_second) = (Duration::ZERO, Duration::ZERO);
    if with_vdirsyncer {
        timed(vdirsyncer_command(&["discover"]).stdin(std::process::Stdio::null()));
        vdirsyncer_first = timed(&mut vdirsyncer_command(&["sync"]));
        let copied = std::fs::read_dir(env.path("calendar-copy"))
            .unwrap()
            .count()
            + std::fs::read_dir(env.path("contacts-copy"))
                .unwrap()
                .count();
        assert_eq!(copied, items, "vdirsyncer copied every item");
        vdirsyncer_second = timed(&mut vdirsyncer_command(&["sync"]));
    }

    // File to CRM, crmsync's daemon, logging as shipped.
    let mut daemon = Daemon::start_logging(&env, "info");
    daemon.wait_for_state("alice", "idle");
    let store = rusqlite::Connection::open(env.path("crm.sqlite3")).unwrap();
    store.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut crmsync_delays = Vec::new();
    for trial in 0..trials {
        let uid = format!("live{trial}@bench");
        let text = event(&uid, &format!("Live {trial}"), false);
        // Let the pass that the previous trial's own writes caused finish first.
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        write_atomically(&calendar, &format!("live{trial}.ics"), &text);
        let committed = poll("the appointment", || {
            let found: i64 = store
                .query_row(
                    "SELECT count(*) FROM activities WHERE uid = ?1",
                    [&uid],
                    |r| r.get(0),
                )
                .unwrap();
            (found == 1).then(Instant::now)
        });
        crmsync_delays.push(committed - t0);
    }
    assert!(daemon.is_running(), "{}", daemon.log_text());
    daemon.terminate(Duration::from_secs(30));

    // File to second directory, one vdirsyncer run (its best case).
    let vdirsyncer_trials = if with_vdirsyncer { trials.min(10) } else { 0 };
    if with_vdirsyncer {
        timed(&mut vdirsyncer_command(&["sync"]));
    }
    let mut vdirsyncer_delays = Vec::new();
    for trial in 0..vdirsyncer_trials {
        let name = format!("vlive{trial}.ics");
        let text = event(&format!("vlive{trial}@bench"), "Live", false);
        let before = std::fs::read_dir(env.path("calendar-copy"))
            .unwrap()
            .count();
        let t0 = Instant::now();
        write_atomically(&calendar, &name, &text);
        timed(&mut vdirsyncer_command(&["sync", "calendar"]));
        let after = std::fs::read_dir(env.path("calendar-copy"))
            .unwrap()
            .count();
        assert_eq!(after, before + 1, "vdirsyncer copied the new item");
        vdirsyncer_delays.push(t0.elapsed());
    }

    println!(
        "items: {items} ({} calendar, {cards} contacts); trials: {trials} crmsync, {vdirsyncer_trials} vdirsyncer",
        items - cards
    );
    println!("| measure | seconds |");
    println!("|---|---|");
    let mut firsts = vec![
        (
            "crmsync first import (`crmsync sync`, empty store)",
            crmsync_first,
        ),
        ("crmsync second pass, nothing changed", crmsync_second),
    ];
    if with_vdirsyncer {
        firsts.push((
            "vdirsyncer first sync to an empty directory",
            vdirsyncer_first,
        ));
        firsts.push(("vdirsyncer second sync, nothing changed", vdirsyncer_second));
    }
    for (name, took) in firsts {
        println!("| {name} | {:.2} |", took.as_secs_f64());
    }
    println!();
    println!("| measure | median ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    row(
        "crmsync daemon: file renamed in -> appointment committed",
        &crmsync_delays,
    );
    if with_vdirsyncer {
        row(
            "vdirsyncer: file renamed in -> one `vdirsyncer sync` done (best case, no timer wait)",
            &vdirsyncer_delays,
        );
    }
}
