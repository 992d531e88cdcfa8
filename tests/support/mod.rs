//! What the integration tests share: a throwaway directory with a config file, and the real
//! `crmsync` binary run in it as a user would run it.
#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod collections;
pub mod daemon;
pub mod dav;
pub mod dovecot;
pub mod mail;
pub mod proxy;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    /// A directory with a config whose store and status file live inside it.
    pub fn new() -> Env {
        Env::with_config("[crm]\ndatabase = \"crm.sqlite3\"\n\n[status]\nfile = \"status.json\"\n")
    }

    pub fn with_config(text: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("crmsync.toml");
        std::fs::write(&config, text).unwrap();
        Env { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// Runs `crmsync -c CONFIG ARGS...`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new(binary());
        command.arg("-c").arg(&self.config).args(args);
        run(command)
    }

    /// Runs and asserts success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "crmsync {args:?} failed:\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs with `--json` appended and parses the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }

    /// Runs, asserts the exit code and that standard error is exactly one line; returns it.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code, code,
            "crmsync {args:?}: wrong exit code\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        one_line(&run.stderr)
    }
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_crmsync"))
}

pub fn run(mut command: Command) -> Run {
    command.env_remove("CRMSYNC_CONFIG");
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the crmsync binary runs");
    Run {
        code: status
            .code()
            .expect("crmsync exits, not killed by a signal"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

pub fn one_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    lines[0].to_owned()
}
