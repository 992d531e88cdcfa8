//! A real SMTP server for one test: aiosmtpd (`tests/support/smtp_server.py`) on a free
//! loopback port, from the virtual environment `tests/run` makes, with AUTH and, when asked,
//! STARTTLS. What it received, and how it misbehaves, go through files in its directory.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    args: Vec<String>,
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The value of the first header `name` (unfolded), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

pub fn python() -> String {
    let python = std::env::var("CRMSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/test-venv/bin/python"
        )
        .to_owned()
    });
    assert!(
        Path::new(&python).exists(),
        "{python} is missing: run the tests with `bash tests/run`, which creates the venv with aiosmtpd"
    );
    python
}

impl SmtpServer {
    /// Plain SMTP with AUTH PLAIN/LOGIN as `user` / `password`.
    pub fn start(user: &str, password: &str) -> SmtpServer {
        SmtpServer::start_with(user, password, None)
    }

    /// With `tls` (certificate and key files), STARTTLS is offered and required before AUTH.
    pub fn start_with(user: &str, password: &str, tls: Option<(&Path, &Path)>) -> SmtpServer {
        let dir = tempfile::Builder::new()
            .prefix("crmsync-smtp-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args = vec![
            script().display().to_string(),
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--user".into(),
            user.into(),
            "--password".into(),
            password.into(),
        ];
        if let Some((cert, key)) = tls {
            args.push("--tls".into());
            args.push(cert.display().to_string());
            args.push(key.display().to_string());
        }
        let mut server = SmtpServer {
            port,
            dir,
            child: None,
            args,
        };
        server.restart();
        server
    }

    /// Starts the server (again, after [`SmtpServer::stop`]) on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(python())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP test server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP test server did not start");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every message accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(self.file("received.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                Received {
                    from: value["from"].as_str().unwrap().to_owned(),
                    to: value["to"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_owned())
                        .collect(),
                    data: value["data"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }

    /// Recipients answered `550`.
    pub fn refuse(&self, addresses: &[&str]) {
        std::fs::write(self.file("refuse"), addresses.join("\n")).unwrap();
    }

    /// The next `count` messages are answered `451` after their final dot.
    pub fn defer(&self, count: u32) {
        std::fs::write(self.file("defer"), count.to_string()).unwrap();
    }

    /// Each message is kept, then its final dot answered `millis` later.
    pub fn slow(&self, millis: u64) {
        std::fs::write(self.file("slow"), millis.to_string()).unwrap();
    }

    /// While on, final dots go unanswered.
    pub fn stall(&self, on: bool) {
        if on {
            std::fs::write(self.file("stall"), "").unwrap();
        } else {
            let _ = std::fs::remove_file(self.file("stall"));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/smtp_server.py")
}
