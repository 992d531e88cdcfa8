//! What Dovecot charges, on a maildir folder of FOLDER messages, for each step a pass may take
//! after another client changed a message's flags: the floor under crmsync's push on large
//! folders. `cargo bench -p crmsync --bench dovecot_costs [-- TRIALS FOLDER]` (defaults 10 and
//! 100000); the results go to docs/benchmarks.md by hand.
//!
//! Each trial: a client stores a keyword on one message (t0). Then, timed one after another:
//! - **IDLE**: a connection in IDLE on the folder sees the FETCH (the bare IDLE delay);
//! - **on the IDLE connection**: `DONE`, then `UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`;
//! - **on a second connection** that had the folder selected before the change: `NOOP`, the
//!   changed message's body (what an import reads: on maildir a keyword is part of the file's
//!   name, so the file was renamed under this connection), then `SELECT` of the same folder
//!   again;
//! - **a mark**: `UID STORE +FLAGS.SILENT` of a second keyword on the second connection.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{numbers, relayed_message, row, write_maildir};
use support::mail::{Mail, PASSWORD};

/// A raw connection, for IDLE, which the tests' client does not speak.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut raw = Raw {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            tag: 0,
        };
        raw.until("* OK");
        raw.command(&format!("LOGIN alice {PASSWORD}"));
        raw
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed");
        line
    }

    fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let done = line.starts_with(prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends a command and reads to its tagged answer; returns every line.
    fn command(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        write!(self.writer, "{tag} {command}\r\n").unwrap();
        let lines = self.until(&format!("{tag} "));
        assert!(
            lines.last().unwrap().starts_with(&format!("{tag} OK")),
            "{command}: {lines:?}"
        );
        lines
    }

    fn idle(&mut self) {
        self.tag += 1;
        write!(self.writer, "t{} IDLE\r\n", self.tag).unwrap();
        self.until("+");
    }

    fn done(&mut self) {
        write!(self.writer, "DONE\r\n").unwrap();
        self.until(&format!("t{} ", self.tag));
    }
}

/// The highest `MODSEQ (n)` in the lines, or `before`.
fn highest_modseq(lines: &[String], before: u64) -> u64 {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("MODSEQ (")? + 8..];
            rest[..rest.find(')')?].parse::<u64>().ok()
        })
        .fold(before, u64::max)
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t0 = Instant::now();
    let value = f();
    (t0.elapsed(), value)
}

// Long on purpose: the benchmark as a script, read top to bottom.
fn main() {
    let numbers = numbers();
    let trials = numbers.first().copied().unwrap_or(10);
    let folder = numbers.get(1).copied().unwrap_or(100_000);
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    let filler: Vec<(String, bool)> = (0..folder)
        .map(|i| {
            let body = "Content-Type: text/plain; charset=utf-8\n\nLine one.\nLine two.\n";
            (relayed_message(i, body), false)
        })
        .collect();
    write_maildir(&mail.dovecot.root().join("mail").join("alice"), &filler);
    // Dovecot indexes a maildir it has not seen on first access: not anyone's time here.
    assert_eq!(mail.client("alice").uids("INBOX").len(), folder);
    let port = mail.dovecot.port;

    let mut changer = Raw::connect(port);
    changer.command("SELECT INBOX");
    let mut idler = Raw::connect(port);
    idler.command("ENABLE QRESYNC");
    let selected = idler.command("SELECT INBOX (CONDSTORE)");
    let mut modseq = selected
        .iter()
        .find_map(|l| {
            let rest = &l[l.find("HIGHESTMODSEQ ")? + 14..];
            rest[..rest.find(']')?].parse::<u64>().ok()
        })
        .expect("HIGHESTMODSEQ");
    let mut second = Raw::connect(port);
    second.command("ENABLE QRESYNC");
    second.command("SELECT INBOX (CONDSTORE)");
    idler.idle();

    let names = [
        "IDLE: keyword stored -> FETCH seen (bare IDLE delay)",
        "IDLE connection: DONE",
        "IDLE connection: UID FETCH (CHANGEDSINCE)",
        "second connection: NOOP",
        "second connection: UID FETCH of the changed message's body",
        "second connection: SELECT again",
        "second connection: UID STORE of a mark",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for trial in 0..trials {
        let uid = trial + 1;
        let t0 = Instant::now();
        changer.command(&format!("UID STORE {uid} +FLAGS.SILENT (kw{trial})"));
        loop {
            let line = idler.line();
            if line.starts_with('*') && line.contains("FETCH") {
                break;
            }
        }
        samples[0].push(t0.elapsed());
        samples[1].push(timed(|| idler.done()).0);
        let (took, lines) =
            timed(|| idler.command(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")));
        assert!(
            lines.iter().any(|l| l.contains(&format!("kw{trial}"))),
            "{lines:?}"
        );
        modseq = highest_modseq(&lines, modseq);
        samples[2].push(took);
        idler.idle();
        samples[3].push(timed(|| second.command("NOOP")).0);
        let (took, lines) = timed(|| second.command(&format!("UID FETCH {uid} (BODY.PEEK[])")));
        assert!(lines.iter().any(|l| l.contains("Line two.")), "{lines:?}");
        samples[4].push(took);
        samples[5].push(timed(|| second.command("SELECT INBOX (CONDSTORE)")).0);
        samples[6]
            .push(timed(|| second.command(&format!("UID STORE {uid} +FLAGS.SILENT (mark)"))).0);
        // The mark's own notification, before the next trial.
        loop {
            let line = idler.line();
            if line.starts_with('*') && line.contains("mark") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    println!("trials: {trials}, folder of {folder} messages");
    println!("| step | median ms | p99 ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, samples) in names.iter().zip(&samples) {
        row(name, samples);
    }
}
