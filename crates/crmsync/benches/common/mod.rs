//! What the benchmarks share: a 1 ms poll and the statistics of the tables in
//! docs/benchmarks.md.
#![allow(dead_code)] // Each benchmark uses its own part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The benchmark's numeric arguments (`cargo bench --bench NAME -- 10000 3`), in order;
/// cargo's own `--bench` and anything else that is no number are left out.
pub fn numbers() -> Vec<usize> {
    std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// Writes `DIR/STORE.toml`: one mailbox `alice` (owner alice@example.com) reading INBOX of
/// `user` on the Dovecot at `port` with the password in `DIR/password`, the store
/// `DIR/STORE.sqlite3`, errors only in the log; `imap` adds lines to `[mailbox.imap]`.
pub fn mailbox_config(dir: &Path, port: u16, user: &str, store: &str, imap: &str) -> PathBuf {
    let path = dir.join(format!("{store}.toml"));
    std::fs::write(
        &path,
        format!(
            "[crm]\ndatabase = \"{dir}/{store}.sqlite3\"\n[status]\nfile = \"{dir}/status.json\"\n\
             [log]\nlevel = \"error\"\n[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
             [mailbox.imap]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
             username = \"{user}\"\npassword_file = \"{dir}/password\"\nfolders = [\"INBOX\"]\n{imap}",
            dir = dir.display(),
        ),
    )
    .unwrap();
    path
}

/// The config's store with the mailbox's owner in it.
pub fn with_owner(config: PathBuf) -> PathBuf {
    let status = Command::new(super::support::binary())
        .arg("--config")
        .arg(&config)
        .args(["user", "add", "alice@example.com", "--name", "Alice"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    config
}

/// Polls `check` every millisecond (the tests' `wait_until` sleeps 50 ms: too coarse here).
pub fn poll<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    try_poll(check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// [`poll`] for at most a minute; `None` when the time ran out.
pub fn try_poll<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub struct Stats {
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(samples: &[Duration]) -> Stats {
    let mut sorted: Vec<f64> = samples.iter().copied().map(millis).collect();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    }
}

/// One row of a results table.
pub fn row(name: &str, samples: &[Duration]) {
    let s = stats(samples);
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.median, s.p99, s.min, s.max
    );
}

/// Writes `messages` as the maildir at `root` (a folder of Dovecot's mail root), each with
/// `\Seen` and, when its flag says so, the keyword `crm`; owned by Dovecot's `mail` user. Far
/// faster than appending through IMAP; Dovecot indexes it on first access.
pub fn write_maildir(root: &Path, messages: &[(String, bool)]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("dovecot-keywords"), "0 crm\n").unwrap();
    for (i, (text, keyword)) in messages.iter().enumerate() {
        let flags = if *keyword { "Sa" } else { "S" };
        // S= the size on disk, W= the size with CRLF line ends (RFC822.SIZE), as Dovecot
        // names the files it delivers itself: without W=, its first RFC822.SIZE of a message
        // reads the whole file.
        let name = format!(
            "{}.M{i}P1.bench,S={},W={}:2,{flags}",
            1_764_000_000 + i,
            text.len(),
            text.len() + text.matches('\n').count()
        );
        std::fs::write(root.join("cur").join(name), text).unwrap();
    }
    let chown = Command::new("chown")
        .args(["-R", "mail:mail"])
        .arg(root)
        .status()
        .unwrap();
    assert!(chown.success());
}

/// Message `i` with the header of mail that crossed a few servers (three `Received` lines and
/// a DKIM signature: about 1.6 KB), then `content`: its `Content-Type` header, a blank line
/// and the body.
pub fn relayed_message(i: usize, content: &str) -> String {
    let received = |hop: usize| {
        format!(
            "Received: from mx{hop}.relay.example (mx{hop}.relay.example [192.0.2.{hop}])\n\
             \tby mail.example.com (Postfix) with ESMTPS id 4Q{i:08X}{hop}\n\
             \tfor <alice@example.com>; Sun, 29 Nov 2026 10:00:0{hop} +0000\n"
        )
    };
    let dkim = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=customers.example; \
                s=sel; h=from:to:subject:date:message-id;\n\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n\
                \tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwgaXQgaXMgYSBwbGFjZWhvbGRlciBvZiB0aGUgdXN1YWwgc2l6ZQ\n\
                \tdGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwgaXQgaXMgYSBwbGFjZWhvbGRlciBvZiB0aGUgdXN1YWwgc2l6ZQ\n";
    format!(
        "{}{}{}{dkim}Message-ID: <m{i}@bench.example>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\
         From: Sender {i} <sender{}@customers.example>\nTo: Alice <alice@example.com>\n\
         Subject: Message {i} about order {}\nMIME-Version: 1.0\n{content}",
        received(1),
        received(2),
        received(3),
        i % 500,
        i % 1000,
    )
}

/// vdirsyncer 0.21.0, installed from PyPI into `target/bench-venv` on the first call.
pub fn vdirsyncer() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-venv");
    let binary = venv.join("bin/vdirsyncer");
    if !binary.exists() {
        eprintln!("installing vdirsyncer into {}", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "vdirsyncer==0.21.0"])
                .status()
                .unwrap()
                .success();
        assert!(ok, "cannot install vdirsyncer");
    }
    binary
}

/// Runs a command to its end, which must be a success; how long it took.
pub fn timed(command: &mut Command) -> Duration {
    let t0 = Instant::now();
    let output = command.output().unwrap();
    let took = t0.elapsed();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}
