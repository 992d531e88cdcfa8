//! Push latency of `crmsync run`, measured side by side with the bare IDLE notification delay of
//! the same Dovecot. `cargo bench -p crmsync --bench push_latency [-- TRIALS [FOLDER]]`; the
//! results go to docs/benchmarks.md by hand. `FOLDER` fills INBOX with that many untracked
//! messages before the daemon starts (default none): what a pass costs as the folder grows.
//! `BENCH_MAIL_FORMAT=sdbox` keeps the mail in Dovecot's own format instead of maildir (the
//! filler imported with `doveadm import`).
//!
//! Each trial, with the daemon running and a bare IDLE client watching INBOX:
//! - forward: another client stores the keyword `crm` on a message (t0); the bare client sees
//!   the FETCH (IDLE delay); the daemon commits the activity (push latency, read from the store
//!   with a 1 ms poll). Meanwhile the bare client, once it has seen the FETCH, leaves IDLE and
//!   reads the message's body on the same connection, as an import must: the floor of a push
//!   that imports the message. (On maildir a keyword is part of the file's name: the file was
//!   renamed under every other connection, and Dovecot looks for it again in the folder.);
//! - reverse: another program deletes the activity with plain SQL (t0); a second client reads
//!   the message's flags until the daemon has removed the keyword (reverse latency).
//!
//! The mailbox has a drafts folder (empty), as people's mailboxes do: each pass looks at it.
//!
//! The daemon's fallback poll is 300 s, so nothing but push can make a trial finish in time.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{numbers, poll, relayed_message, row, try_poll, write_maildir};
use support::daemon::Daemon;
use support::mail::{Mail, PASSWORD, message};

/// A bare IMAP client in IDLE on INBOX, reporting each line with its arrival; the stream to
/// write its next commands to.
fn bare_idle(port: u16) -> (mpsc::Receiver<(Instant, String)>, TcpStream) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut expect = |reader: &mut BufReader<TcpStream>, prefix: &str| loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with(prefix) {
            break;
        }
    };
    expect(&mut reader, "* OK");
    write!(writer, "a LOGIN alice {PASSWORD}\r\n").unwrap();
    expect(&mut reader, "a OK");
    write!(writer, "b SELECT INBOX\r\n").unwrap();
    expect(&mut reader, "b OK");
    write!(writer, "c IDLE\r\n").unwrap();
    expect(&mut reader, "+");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if std::env::var_os("BENCH_DEBUG").is_some() {
                eprint!("idle: {line}");
            }
            if tx.send((Instant::now(), line.clone())).is_err() {
                return;
            }
        }
    });
    (rx, writer)
}

/// The arrival of the next line that `wanted` accepts.
fn next_line(rx: &mpsc::Receiver<(Instant, String)>, wanted: impl Fn(&str) -> bool) -> Instant {
    loop {
        let (at, line) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("an IDLE notification");
        if wanted(&line) {
            return at;
        }
    }
}

// Long on purpose: the benchmark as a script, read top to bottom.
fn main() {
    let numbers = numbers();
    let trials = numbers.first().copied().unwrap_or(100);
    let folder = numbers.get(1).copied().unwrap_or(0);
    let sdbox = std::env::var("BENCH_MAIL_FORMAT").is_ok_and(|format| format == "sdbox");
    let settings = if sdbox {
        "mail_location = sdbox:~/sdbox"
    } else {
        ""
    };
    let mail = Mail::configured(&[("alice", "alice@example.com")], PASSWORD, settings);
    if folder > 0 {
        let filler: Vec<(String, bool)> = (0..folder)
            .map(|i| {
                let body = "Content-Type: text/plain; charset=utf-8\n\nLine one.\nLine two.\n";
                (relayed_message(i, body), false)
            })
            .collect();
        let home = mail.dovecot.root().join("mail").join("alice");
        if sdbox {
            let maildir = home.join("filler");
            write_maildir(&maildir, &filler);
            let source = format!("maildir:{}", maildir.display());
            mail.dovecot
                .doveadm(&["import", "-u", "alice", &source, "", "mailbox", "INBOX"]);
        } else {
            write_maildir(&home, &filler);
        }
        // Dovecot indexes a maildir it has not seen on first access: not anyone's time here.
        assert_eq!(mail.client("alice").uids("INBOX").len(), folder);
    }
    // A drafts folder, as mailboxes have one: each pass looks at it (a STATUS), after the mail.
    mail.client("alice").create("Drafts");
    let mut daemon = Daemon::start(&mail.env);
    daemon.wait_for_state("alice", "idle");
    let store = rusqlite::Connection::open(mail.env.path("crm.sqlite3")).unwrap();
    store.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut client = mail.client("alice");
    let mut checker = mail.client("alice");
    // Selected once: on a large maildir folder each SELECT after a change costs about a second,
    // which would be counted in the trials.
    for connection in [&mut client, &mut checker] {
        connection.select("INBOX");
    }
    let (idle, mut bare) = bare_idle(mail.dovecot.port);

    let (mut idle_delays, mut push, mut reads, mut reverse) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for trial in 0..trials {
        let message_id = format!("bench{trial}@x.example");
        let uid = client.append(
            "INBOX",
            &[],
            &message(&message_id, "dana@x.example", "alice@example.com", "Bench"),
        );
        // The bare client must know the message before its flags change, or the server folds
        // the change into the EXISTS; then let the daemon's pass over it finish.
        next_line(&idle, |line| line.contains("EXISTS"));
        std::thread::sleep(Duration::from_millis(150));
        while idle.try_recv().is_ok() {}
        // The checker must know the message, or its FETCH of the flags answers nothing.
        checker.ok("NOOP");

        // Forward: keyword stored by another client -> activity committed.
        let t0 = Instant::now();
        client.ok(&format!("UID STORE {uid} +FLAGS.SILENT (crm)"));
        let seen = next_line(&idle, |line| line.contains("FETCH") && line.contains("crm"));
        write!(bare, "DONE\r\nr{trial} UID FETCH {uid} (BODY.PEEK[])\r\n").unwrap();
        let read = next_line(&idle, |line| line.starts_with(&format!("r{trial} OK")));
        write!(bare, "i{trial} IDLE\r\n").unwrap();
        next_line(&idle, |line| line.starts_with('+'));
        let committed = try_poll(|| {
            let found: i64 = store
                .query_row(
                    "SELECT count(*) FROM activities WHERE message_id = ?1",
                    [&message_id],
                    |r| r.get(0),
                )
                .unwrap();
            (found == 1).then(Instant::now)
        })
        .unwrap_or_else(|| {
            panic!(
                "trial {trial}: no activity after a minute; the daemon's log:\n{}",
                daemon.log_text()
            )
        });
        idle_delays.push(seen - t0);
        push.push(committed - t0);

        reads.push(read - t0);

        // Reverse: activity deleted by another program -> keyword removed by the daemon.
        std::thread::sleep(Duration::from_millis(50));
        while idle.try_recv().is_ok() {}
        let t0 = Instant::now();
        store
            .execute(
                "DELETE FROM activities WHERE message_id = ?1",
                [&message_id],
            )
            .unwrap();
        // Read the flags directly (a UID FETCH every few milliseconds) rather than through IDLE,
        // whose own delay would be counted again.
        let removed = poll("the keyword to go", || {
            let flags = checker.selected_flags(uid).expect("the message");
            (!flags.iter().any(|flag| flag == "crm")).then(Instant::now)
        });
        reverse.push(removed - t0);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.is_running(), "{}", daemon.log_text());
    // Kept for a look at the timeline after the run.
    let _ = std::fs::write(
        std::env::temp_dir().join("crmsync-push-daemon.log"),
        daemon.log_text(),
    );

    println!("trials: {trials}, folder of {folder} messages before the first trial");
    println!("| measure | median ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, samples) in [
        (
            "bare IDLE notification (keyword stored -> FETCH seen)",
            &idle_delays,
        ),
        ("crmsync push (keyword stored -> activity committed)", &push),
        (
            "bare client: keyword stored -> FETCH seen -> body read",
            &reads,
        ),
        (
            "crmsync reverse (activity deleted -> keyword removed)",
            &reverse,
        ),
    ] {
        row(name, samples);
    }
    let over: Vec<Duration> = push
        .iter()
        .zip(&idle_delays)
        .map(|(p, i)| p.saturating_sub(*i))
        .collect();
    row("crmsync push minus bare IDLE, per trial", &over);
    let over_floor: Vec<Duration> = push
        .iter()
        .zip(&reads)
        .map(|(p, r)| p.saturating_sub(*r))
        .collect();
    row(
        "crmsync push minus bare client's notice and read, per trial",
        &over_floor,
    );
}
