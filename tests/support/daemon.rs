//! `crmsync run` as a child process, with its log in a file and its status file read as JSON.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Env, binary};

pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    status: PathBuf,
}

/// Polls `check` until it gives a value or `timeout` passes.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Daemon {
    pub fn start(env: &Env) -> Daemon {
        Daemon::start_logging(env, "debug,async_imap=warn")
    }

    /// Starts the daemon with `RUST_LOG` set to `filter`.
    pub fn start_logging(env: &Env, filter: &str) -> Daemon {
        let log = env.path("daemon.log");
        let child = Command::new(binary())
            .arg("-c")
            .arg(&env.config)
            .arg("run")
            .env_remove("CRMSYNC_CONFIG")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            log,
            status: env.path("status.json"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The status file, when it exists and parses.
    pub fn status(&self) -> Option<Value> {
        let text = std::fs::read_to_string(&self.status).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn mailbox_state(&self, id: &str) -> Option<Value> {
        let status = self.status()?;
        status["mailboxes"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
    }

    /// Waits until the mailbox's state is `state`; returns its status entry.
    pub fn wait_for_state(&mut self, id: &str, state: &str) -> Value {
        let what = format!("mailbox {id} to be {state}");
        let log = self.log.clone();
        let child = &mut self.child;
        let status = self.status.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        wait_until(&what, Duration::from_secs(31), || {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; status: {}\nlog:\n{}",
                    std::fs::read_to_string(&status).unwrap_or_default(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Ok(Some(exit)) = child.try_wait() {
                panic!(
                    "the daemon exited ({exit}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(&status).ok()?;
            let value: Value = serde_json::from_str(&text).ok()?;
            value["mailboxes"]
                .as_array()?
                .iter()
                .find(|m| m["id"] == id && m["state"] == state)
                .cloned()
        })
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, and the exit status, which must come within `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        let child = &mut self.child;
        wait_until("the daemon to exit", timeout, || child.try_wait().unwrap())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
