//! A private PostgreSQL for tests: Debian's PostgreSQL 15 binaries, a cluster made by `initdb`
//! in a temporary directory, listening on a free loopback port and a private socket directory.
//! PostgreSQL refuses to run as root, so as root (CI) the cluster runs as the `postgres` user.
//!
//! `tests/run` starts one server for the whole test run and names it in `CRMSYNC_TEST_PG`
//! (`host:port`); each test then makes its own database on it (tens of milliseconds). Without
//! it a test starts a server of its own (about two seconds), stopped when the test ends.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgServer {
    /// The cluster this test started (None when it uses the run's shared server).
    own: Option<tempfile::TempDir>,
    pub host: String,
    pub port: u16,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL program, as the `postgres` user when this process is root.
fn pg_command(program: &str) -> Command {
    let path = format!("{BIN}/{program}");
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (is Debian's postgresql installed?)"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes and starts a cluster in `dir` on `port`; `dir` must be empty or missing.
pub fn start_cluster(dir: &Path, port: u16) {
    let data = dir.join("data");
    let sockets = dir.join("sockets");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&sockets).unwrap();
    if running_as_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(dir);
                c
            },
            "chown",
        );
        // The temporary directory's parents must let the postgres user in.
        let mut parent = dir.parent();
        while let Some(path) = parent {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode();
                if mode & 0o001 == 0 {
                    let _ = std::fs::set_permissions(
                        path,
                        std::fs::Permissions::from_mode(mode | 0o001),
                    );
                }
            }
            parent = path.parent();
        }
    }
    let mut initdb = pg_command("initdb");
    initdb.arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "-A",
        "trust",
        "-N",
    ]);
    run(initdb, "initdb");
    let mut start = pg_command("pg_ctl");
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args([
            "-w",
            "-o",
            &format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=off -c max_connections=300",
                sockets.display()
            ),
            "start",
        ]);
    run(start, "pg_ctl start");
}

/// Stops the cluster in `dir` at once.
pub fn stop_cluster(dir: &Path) {
    let mut stop = pg_command("pg_ctl");
    stop.arg("-D")
        .arg(dir.join("data"))
        .args(["-m", "immediate", "-w", "stop"]);
    let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

impl PgServer {
    /// The test run's server, or a new one of this test's own.
    pub fn start() -> PgServer {
        if let Ok(address) = std::env::var("CRMSYNC_TEST_PG") {
            let (host, port) = address
                .rsplit_once(':')
                .expect("CRMSYNC_TEST_PG is host:port");
            return PgServer {
                own: None,
                host: host.to_owned(),
                port: port.parse().expect("CRMSYNC_TEST_PG's port"),
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("crmsync-pg")
            .tempdir()
            .unwrap();
        let port = free_port();
        start_cluster(dir.path(), port);
        PgServer {
            own: Some(dir),
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// A new empty database on the server, and its URL (the superuser, no password).
    pub fn new_database(&self) -> String {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}_{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", self.host, self.port)
    }

    /// Runs SQL with psql on a database; its output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(format!("{BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.host)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn data_dir(&self) -> Option<PathBuf> {
        self.own.as_ref().map(|dir| dir.path().join("data"))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            stop_cluster(dir.path());
        }
    }
}
