//! A calendar and an address book on a CalDAV/CardDAV server (Radicale, on loopback), synced
//! by crmsync directly and, side by side, by vdirsyncer 0.21 into local directories (what a
//! user would otherwise run between the server and a vdir).
//! `cargo bench -p crmsync --bench dav [-- ITEMS TRIALS]` (defaults 10000 and 30); results go
//! to docs/benchmarks.md by hand. Radicale comes from the test venv (`bash tests/run` makes
//! it), vdirsyncer from PyPI into `target/bench-venv`; `CRMSYNC_BENCH_VDIRSYNCER=no` leaves it
//! out.
//!
//! - **first import**: ITEMS tracked items on the server (four fifths events and tasks, one
//!   fifth vCards, written into Radicale's storage while it is stopped); `crmsync sync` on an
//!   empty store. vdirsyncer: `discover`, then `sync` to empty directories.
//! - **no-change pass**: `crmsync sync` again (a new process: it starts from the listing
//!   saved in the store), with the requests it sent counted in Radicale's log; and the
//!   daemon's poll of an unchanged collection (`took_ms` of its "poll: nothing changed" log
//!   lines). vdirsyncer: `sync` again.
//! - **server → CRM**: `crmsync run` with `poll_interval = 1`; a client PUTs a new tracked
//!   event (t0 when the PUT is answered); the delay until its appointment is committed (a
//!   1 ms poll of the store). The goal is one poll interval plus 100 ms.
//! - **CRM → server**: with the daemon running, an appointment is edited in the CRM
//!   (`crmsync activity set`, t0 when it returns); the delay until Radicale's file of the item
//!   holds the edit (a 1 ms poll of the file).

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{millis, numbers, poll, row, timed, vdirsyncer};
use support::Env;
use support::daemon::Daemon;
use support::dav::{DavServer, Kind, PASSWORD, USER};

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
                "DTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nLOCATION:Room {}\r\n\
ATTENDEE;CN=Guest:mailto:guest{}@example.org\r\n",
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
EMAIL;TYPE=work:person{i}@example.org\r\nORG:Company {}\r\nCATEGORIES:CRM\r\nEND:VCARD\r\n",
        i % 200
    )
}

/// A sync-collection REPORT asking for the changes since `token` (all items when empty).
fn sync_collection(token: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#
    )
}

/// The requests Radicale logged so far (at `info`, one line per request answered).
fn requests(server: &DavServer) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|line| line.contains("response status for"))
        .map(str::to_owned)
        .collect()
}

/// A log line without its terminal colours.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Restarts the server with its caches gone: it reads every item again on first use
/// (Radicale's; Xandikos keeps none of its own on disk).
fn cold(server: &mut DavServer) {
    if server.kind != Kind::Radicale {
        return;
    }
    server.stop();
    for calendar in [true, false] {
        let cache = server.storage(calendar).join(".Radicale.cache");
        if cache.exists() {
            std::fs::remove_dir_all(cache).unwrap();
        }
    }
    server.restart();
}

/// The seconds the server says it took over these requests ("... in 0.070 seconds ...").
fn server_seconds(lines: &[String]) -> f64 {
    lines
        .iter()
        .filter_map(|line| {
            let after = line.split(" in ").nth(1)?;
            after.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

// Long on purpose: the benchmark as a script, read top to bottom.
fn main() {
    let numbers = numbers();
    let items = numbers.first().copied().unwrap_or(10_000);
    let trials = numbers.get(1).copied().unwrap_or(30);
    let with_vdirsyncer = std::env::var("CRMSYNC_BENCH_VDIRSYNCER").as_deref() != Ok("no");

    let kind = match std::env::var("CRMSYNC_BENCH_SERVER").as_deref() {
        Ok("xandikos") => Kind::Xandikos,
        _ => Kind::Radicale,
    };
    let mut server = DavServer::start_logging(kind, "info");
    let cards = items / 5;
    server.stop();
    for i in 0..items - cards {
        let text = event(&format!("item{i}@bench"), &format!("Item {i}"), i % 4 == 3);
        std::fs::write(server.storage(true).join(format!("item{i}.ics")), text).unwrap();
    }
    for i in 0..cards {
        std::fs::write(server.storage(false).join(format!("card{i}.vcf")), card(i)).unwrap();
    }
    server.commit_storage();
    server.restart();

    let env = Env::new();
    let password = env.path("password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    env.write_config(&format!(
        "[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n\n[log]\nlevel = \"warn\"\n\n\
         [[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\n\
         [mailbox.calendar]\n{}\n[mailbox.contacts]\n{}",
        server.config_keys(&server.collection(true), &password),
        server.config_keys(&server.collection(false), &password),
    ));
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);

    // First import, on a server that has not read its items yet (as for vdirsyncer below).
    cold(&mut server);
    let before = requests(&server).len();
    let t0 = Instant::now();
    let pass = env.json(&["sync"]);
    let crmsync_first = t0.elapsed();
    assert_eq!(pass["mailboxes"][0]["created"], items as u64, "{pass}");
    let import_requests = requests(&server).split_off(before);

    // The next pass gets the first sync token (Radicale builds its change history of every
    // item then, once), and the one after that changes nothing: the requests it sends.
    let t0 = Instant::now();
    env.ok(&["sync"]);
    let crmsync_token = t0.elapsed();
    let before = requests(&server).len();
    let t0 = Instant::now();
    let pass = env.json(&["sync"]);
    let crmsync_second = t0.elapsed();
    assert_eq!(pass["mailboxes"][0]["created"], 0, "{pass}");
    let sent: Vec<String> = requests(&server).split_off(before);

    let (mut vdirsyncer_first, mut vdirsyncer_second) = (Duration::ZERO, Duration::ZERO);
    if with_vdirsyncer {
        for dir in ["vdirsyncer", "calendar-copy", "contacts-copy"] {
            std::fs::create_dir(env.path(dir)).unwrap();
        }
        let config = env.path("vdirsyncer/config");
        std::fs::write(
            &config,
            format!(
                "[general]\nstatus_path = \"{status}\"\n\n\
                 [pair calendar]\na = \"calendar_a\"\nb = \"calendar_b\"\ncollections = null\n\n\
                 [storage calendar_a]\ntype = \"caldav\"\nurl = \"{calendar}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n{verify}\n\
                 [storage calendar_b]\ntype = \"filesystem\"\npath = \"{calendar_copy}\"\nfileext = \".ics\"\n\n\
                 [pair contacts]\na = \"contacts_a\"\nb = \"contacts_b\"\ncollections = null\n\n\
                 [storage contacts_a]\ntype = \"carddav\"\nurl = \"{contacts}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n{verify}\n\
                 [storage contacts_b]\ntype = \"filesystem\"\npath = \"{contacts_copy}\"\nfileext = \".vcf\"\n",
                status = env.path("vdirsyncer/status").display(),
                verify = server.certificates.as_ref().map_or(String::new(), |c| format!(
                    "verify = \"{}\"\n",
                    c.ca_path().display()
                )),
                calendar = server.collection(true),
                contacts = server.collection(false),
                calendar_copy = env.path("calendar-copy").display(),
                contacts_copy = env.path("contacts-copy").display(),
            ),
        )
        .unwrap();
        let vdirsyncer = vdirsyncer();
        let command = |args: &[&str]| {
            let mut command = Command::new(&vdirsyncer);
            command.arg("-c").arg(&config).args(args);
            command
        };
        timed(command(&["discover"]).stdin(std::process::Stdio::null()));
        cold(&mut server);
        vdirsyncer_first = timed(&mut command(&["sync"]));
        let copied = std::fs::read_dir(env.path("calendar-copy"))
            .unwrap()
            .count()
            + std::fs::read_dir(env.path("contacts-copy"))
                .unwrap()
                .count();
        assert_eq!(copied, items, "vdirsyncer copied every item");
        vdirsyncer_second = timed(&mut command(&["sync"]));
    }

    // The daemon: server -> CRM and CRM -> server.
    let mut daemon = Daemon::start_logging(&env, "warn,crmsync_engine::daemon=debug");
    daemon.wait_for_state("alice", "idle");
    let store = rusqlite::Connection::open(env.path("crm.sqlite3")).unwrap();
    store.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut to_crm = Vec::new();
    for trial in 0..trials {
        let uid = format!("live{trial}@bench");
        let text = event(&uid, &format!("Live {trial}"), false);
        // Anywhere in the poll interval.
        std::thread::sleep(Duration::from_millis(137 * (trial as u64 % 7)));
        assert_eq!(server.put(true, &format!("live{trial}.ics"), &text), 201);
        let t0 = Instant::now();
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
        to_crm.push(committed - t0);
    }
    let mut to_server = Vec::new();
    for trial in 0..trials {
        let uid = format!("live{trial}@bench");
        let id: String = store
            .query_row("SELECT id FROM activities WHERE uid = ?1", [&uid], |r| {
                r.get(0)
            })
            .unwrap();
        let file = server.storage(true).join(format!("live{trial}.ics"));
        let location = format!("Room T{trial}");
        std::thread::sleep(Duration::from_millis(200));
        env.ok(&["activity", "set", &id, &format!("location={location}")]);
        let t0 = Instant::now();
        let written = poll("the edit on the server", || {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|text| text.contains(&location))
                .map(|_| Instant::now())
        });
        to_server.push(written - t0);
    }
    // The server's own time for such a write: a client's PUT replacing one item (curl, a
    // new connection each), as crmsync's write above replaces one.
    let mut puts = Vec::new();
    for trial in 0..trials.min(10) {
        let name = format!("live{trial}.ics");
        let text = std::fs::read_to_string(server.storage(true).join(&name))
            .unwrap()
            .replace("Room T", "Room P");
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        assert_eq!(server.put(true, &name, &text) / 100, 2);
        puts.push(t0.elapsed());
    }
    // Ten seconds of polls with nothing to find.
    std::thread::sleep(Duration::from_secs(10));
    assert!(daemon.is_running(), "{}", daemon.log_text());
    let polls: Vec<Duration> = daemon
        .log_text()
        .lines()
        .filter(|line| line.contains("poll: nothing changed"))
        .map(without_colours)
        .filter_map(|line| {
            let value = line.split("took_ms=").nth(1)?.split_whitespace().next()?;
            value.parse::<f64>().ok()
        })
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect();
    daemon.terminate(Duration::from_secs(30));
    // With the daemon stopped (Radicale answers one request at a time), the server's own
    // time for what a no-change poll asks: a client's sync-collection
    // REPORT from the current token, and the cheapest standard change probe, a PROPFIND of
    // the collection's getctag (curl, both collections, as a daemon poll covers both).
    let floor = |body: &dyn Fn(&str) -> String, method: &str, depth: &str| {
        let mut took = Vec::new();
        for _ in 0..trials.min(10) {
            let mut sum = Duration::ZERO;
            for calendar in [true, false] {
                let collection = server.collection(calendar);
                let t0 = Instant::now();
                let (status, _) = server.curl_body(
                    &["-X", method, "-H", depth, &collection],
                    &body(&collection),
                );
                sum += t0.elapsed();
                assert_eq!(status, 207, "{method} {collection}");
            }
            took.push(sum);
        }
        took
    };
    let tokens: Vec<String> = [true, false]
        .into_iter()
        .map(|calendar| {
            let (_, answer) = server.curl_body(
                &[
                    "-X",
                    "REPORT",
                    "-H",
                    "Depth: 1",
                    &server.collection(calendar),
                ],
                &sync_collection(""),
            );
            let token = answer.split("sync-token>").nth(1).unwrap_or("");
            token.split('<').next().unwrap_or("").to_owned()
        })
        .collect();
    let reports = floor(
        &|collection| {
            let calendar = collection == server.collection(true);
            sync_collection(&tokens[usize::from(!calendar)])
        },
        "REPORT",
        "Depth: 1",
    );
    let ctags = floor(
        &|_| {
            r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><cs:getctag/></d:prop></d:propfind>"#
                .to_owned()
        },
        "PROPFIND",
        "Depth: 0",
    );

    println!(
        "items: {items} ({} calendar, {cards} contacts) on {kind:?}; trials: {trials}",
        items - cards
    );
    println!("| measure | seconds |");
    println!("|---|---|");
    let mut firsts = vec![
        (
            "crmsync first import (`crmsync sync`, empty store)",
            crmsync_first,
        ),
        (
            "crmsync second pass: the first sync token (Radicale builds its history then)",
            crmsync_token,
        ),
        (
            "crmsync third pass, nothing changed (a new process)",
            crmsync_second,
        ),
    ];
    if with_vdirsyncer {
        firsts.push((
            "vdirsyncer first sync to empty directories",
            vdirsyncer_first,
        ));
        firsts.push(("vdirsyncer second sync, nothing changed", vdirsyncer_second));
    }
    for (name, took) in firsts {
        println!("| {name} | {:.2} |", took.as_secs_f64());
    }
    println!();
    if kind == Kind::Radicale {
        println!(
            "requests of the first import: {}, answered by the server in {:.2} s in all",
            import_requests.len(),
            server_seconds(&import_requests)
        );
        for line in &import_requests {
            let start = line.find("] [").map_or(0, |i| i + 2);
            println!("- {}", &line[start..]);
        }
        println!();
        println!("requests of the no-change `crmsync sync` ({}):", sent.len());
        for line in &sent {
            let start = line.find("] ").map_or(0, |i| i + 2);
            println!("- {}", &line[start..]);
        }
    }
    println!();
    println!("| measure | median ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    if !polls.is_empty() {
        row(
            &format!(
                "daemon poll of an unchanged collection ({} polls)",
                polls.len()
            ),
            &polls,
        );
    }
    row(
        "server -> CRM: PUT answered -> appointment committed (poll_interval 1 s)",
        &to_crm,
    );
    row(
        "CRM -> server: `activity set` returned -> the item on the server holds the edit",
        &to_server,
    );
    row(
        "a client's PUT replacing one item on the same server (curl)",
        &puts,
    );
    row(
        "a client's no-change sync-collection REPORT, both collections (curl)",
        &reports,
    );
    row(
        "a client's PROPFIND of getctag, both collections (curl)",
        &ctags,
    );
    let within: usize = to_crm.iter().filter(|d| millis(**d) <= 1100.0).count();
    println!(
        "\nserver -> CRM within one poll interval + 100 ms: {within} of {}",
        to_crm.len()
    );
}
