//! Real CalDAV/CardDAV servers on loopback for the tests: Radicale (plain HTTP, htpasswd) and
//! Xandikos (HTTPS with a test CA, as it takes passwords only over TLS), both from the test
//! venv; and curl, as the person's own client, to put, read and delete items on them.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::dovecot::TestCertificates;
use super::smtp::python;

pub const USER: &str = "alice";
/// A password that cannot turn up in a log line by chance.
pub const PASSWORD: &str = "Pa55-dav-xyzzy-0815";
/// The password after [`DavServer::set_password`].
pub const OTHER_PASSWORD: &str = "Changed-dav-0815";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Radicale,
    Xandikos,
}

pub struct DavServer {
    pub kind: Kind,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Xandikos's CA, for `ca_file`.
    pub certificates: Option<TestCertificates>,
    child: Option<Child>,
    args: Vec<String>,
    other_password: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv_bin(name: &str) -> String {
    let python = python();
    let bin = std::path::Path::new(&python).parent().unwrap().join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `bash tests/run`, which installs Radicale and Xandikos",
        bin.display()
    );
    bin.display().to_string()
}

impl DavServer {
    /// A server with one calendar and one address book for alice.
    pub fn start(kind: Kind) -> DavServer {
        DavServer::start_logging(kind, "warning")
    }

    /// [`DavServer::start`] with Radicale logging at `level` (`info` logs each request).
    pub fn start_logging(kind: Kind, level: &str) -> DavServer {
        let dir = tempfile::Builder::new()
            .prefix("crmsync-dav-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let (args, certificates) = match kind {
            Kind::Radicale => {
                std::fs::write(dir.path().join("users"), format!("{USER}:{PASSWORD}\n")).unwrap();
                std::fs::write(
                    dir.path().join("config"),
                    format!(
                        "[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = htpasswd\n\
                         htpasswd_filename = {users}\nhtpasswd_encryption = plain\ndelay = 0.1\n\
                         [rights]\ntype = owner_only\n[storage]\nfilesystem_folder = {store}\n\
                         [logging]\nlevel = {level}\n",
                        users = dir.path().join("users").display(),
                        store = dir.path().join("collections").display(),
                    ),
                )
                .unwrap();
                let args = vec![
                    venv_bin("radicale"),
                    "--config".into(),
                    dir.path().join("config").display().to_string(),
                ];
                (args, None)
            }
            Kind::Xandikos => {
                let certificates = TestCertificates::new();
                let certs = dir.path().join("state/certs");
                std::fs::create_dir_all(&certs).unwrap();
                std::fs::write(certs.join("selfsigned.crt"), &certificates.server_pem).unwrap();
                std::fs::write(certs.join("selfsigned.key"), &certificates.server_key).unwrap();
                // {SHA} is base64 of the SHA-1 of PASSWORD.
                std::fs::write(
                    dir.path().join("htpasswd"),
                    format!("{USER}:{{SHA}}fZD9ysiRIWm0ei1I/VgQmN45xYI=\n"),
                )
                .unwrap();
                let args = vec![
                    venv_bin("xandikos"),
                    "serve".into(),
                    "-d".into(),
                    dir.path().join("data").display().to_string(),
                    "--state-dir".into(),
                    dir.path().join("state").display().to_string(),
                    "-l".into(),
                    "localhost".into(),
                    "-p".into(),
                    port.to_string(),
                    "--no-detect-systemd".into(),
                    "--current-user-principal".into(),
                    format!("/{USER}/"),
                    // The principal with a calendar and an address book (--autocreate alone
                    // makes the homes but no collection in them).
                    "--defaults".into(),
                    "--autocert".into(),
                    "--htpasswd".into(),
                    dir.path().join("htpasswd").display().to_string(),
                ];
                (args, Some(certificates))
            }
        };
        let mut server = DavServer {
            kind,
            port,
            dir,
            certificates,
            child: None,
            args,
            other_password: false,
        };
        server.restart();
        server.make_collections();
        server
    }

    /// Starts the server (again, after [`DavServer::stop`]) on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(&self.args[0])
            .args(&self.args[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the DAV test server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the {:?} server did not start: {}",
                self.kind,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes alice's password on the server (to [`OTHER_PASSWORD`], or back to
    /// [`PASSWORD`]) and restarts it; curl goes on with the new one.
    pub fn set_password(&mut self, other: bool) {
        self.stop();
        match self.kind {
            Kind::Radicale => {
                let password = if other { OTHER_PASSWORD } else { PASSWORD };
                std::fs::write(
                    self.dir.path().join("users"),
                    format!("{USER}:{password}\n"),
                )
                .unwrap();
            }
            Kind::Xandikos => {
                let hash = if other {
                    "Y6w238Qq+iV0Pbt59nvfvG5ek8Y="
                } else {
                    "fZD9ysiRIWm0ei1I/VgQmN45xYI="
                };
                std::fs::write(
                    self.dir.path().join("htpasswd"),
                    format!("{USER}:{{SHA}}{hash}\n"),
                )
                .unwrap();
            }
        }
        self.other_password = other;
        self.restart();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn base(&self) -> String {
        match self.kind {
            Kind::Radicale => format!("http://127.0.0.1:{}", self.port),
            Kind::Xandikos => format!("https://localhost:{}", self.port),
        }
    }

    /// The URL of alice's calendar or address book.
    pub fn collection(&self, calendar: bool) -> String {
        match (self.kind, calendar) {
            (Kind::Radicale, true) => format!("{}/{USER}/calendar/", self.base()),
            (Kind::Radicale, false) => format!("{}/{USER}/contacts/", self.base()),
            (Kind::Xandikos, true) => format!("{}/{USER}/calendars/calendar/", self.base()),
            (Kind::Xandikos, false) => format!("{}/{USER}/contacts/addressbook/", self.base()),
        }
    }

    fn make_collections(&self) {
        match self.kind {
            Kind::Radicale => {
                let calendar = self.curl(&["-X", "MKCALENDAR", &self.collection(true)]);
                assert!(calendar.0 == 201, "MKCALENDAR: {calendar:?}");
                let body = r#"<?xml version="1.0"?><d:mkcol xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype><d:collection/><card:addressbook/></d:resourcetype></d:prop></d:set></d:mkcol>"#;
                let contacts = self.curl_body(&["-X", "MKCOL", &self.collection(false)], body);
                assert!(contacts.0 == 201, "MKCOL: {contacts:?}");
            }
            // --defaults made both.
            Kind::Xandikos => {
                let answer =
                    self.curl(&["-X", "PROPFIND", "-H", "Depth: 0", &self.collection(true)]);
                assert_eq!(answer.0, 207, "the Xandikos calendar exists: {answer:?}");
            }
        }
    }

    /// The password file and the `[mailbox.calendar]` / `[mailbox.contacts]` keys of this
    /// server's collection (`url` as given).
    pub fn config_keys(&self, url: &str, password_file: &std::path::Path) -> String {
        let mut keys = format!(
            "url = \"{url}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\npoll_interval = 1\n",
            password_file.display()
        );
        if let Some(certificates) = &self.certificates {
            keys.push_str(&format!(
                "ca_file = \"{}\"\n",
                certificates.ca_path().display()
            ));
        }
        keys
    }

    /// Runs curl as alice against the server; returns the status and the body.
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        self.curl_with(args, None, self.password())
    }

    pub fn curl_body(&self, args: &[&str], body: &str) -> (u16, String) {
        self.curl_with(args, Some(body), self.password())
    }

    fn password(&self) -> &'static str {
        if self.other_password {
            OTHER_PASSWORD
        } else {
            PASSWORD
        }
    }

    fn curl_with(&self, args: &[&str], body: Option<&str>, password: &str) -> (u16, String) {
        let mut command = Command::new("curl");
        command
            .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-u"])
            .arg(format!("{USER}:{password}"));
        if let Some(certificates) = &self.certificates {
            command.arg("--cacert").arg(certificates.ca_path());
        }
        if body.is_some() {
            command.args(["--data-binary", "@-"]);
            if !args.iter().any(|a| a.starts_with("Content-Type")) {
                command.args(["-H", "Content-Type: application/xml; charset=utf-8"]);
            }
        }
        command.args(args);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl runs");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            if let Some(body) = body {
                stdin.write_all(body.as_bytes()).unwrap();
            }
        }
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child.wait().unwrap();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Puts an item (`If-None-Match: *` when `create`); returns the status.
    pub fn put(&self, calendar: bool, name: &str, text: &str) -> u16 {
        let url = format!("{}{name}", self.collection(calendar));
        let kind = if calendar {
            "Content-Type: text/calendar; charset=utf-8"
        } else {
            "Content-Type: text/vcard; charset=utf-8"
        };
        self.curl_body(&["-X", "PUT", "-H", kind, &url], text).0
    }

    /// An item's text, `None` when it is not there.
    pub fn get(&self, calendar: bool, name: &str) -> Option<String> {
        let url = format!("{}{name}", self.collection(calendar));
        let (status, body) = self.curl(&[&url]);
        (status == 200).then_some(body)
    }

    pub fn delete(&self, calendar: bool, name: &str) -> u16 {
        let url = format!("{}{name}", self.collection(calendar));
        self.curl(&["-X", "DELETE", &url]).0
    }

    /// The names of the collection's items, sorted.
    pub fn names(&self, calendar: bool) -> Vec<String> {
        let collection = self.collection(calendar);
        let (status, body) = self.curl_body(
            &["-X", "PROPFIND", "-H", "Depth: 1", &collection],
            r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#,
        );
        assert_eq!(status, 207, "PROPFIND {collection}: {body}");
        let path = collection
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap();
        let mut names: Vec<String> = body
            .split("href>")
            .filter_map(|part| part.split('<').next())
            .filter_map(|href| href.trim().strip_prefix(&path).map(str::to_owned))
            .filter(|name| !name.is_empty() && !name.ends_with('/'))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Where the server keeps alice's calendar or address book: one file per item, named by
    /// its href (Xandikos: the working tree of the collection's git repository).
    pub fn storage(&self, calendar: bool) -> PathBuf {
        let (root, name) = match (self.kind, calendar) {
            (Kind::Radicale, true) => ("collections/collection-root", "calendar"),
            (Kind::Radicale, false) => ("collections/collection-root", "contacts"),
            (Kind::Xandikos, true) => ("data", "calendars/calendar"),
            (Kind::Xandikos, false) => ("data", "contacts/addressbook"),
        };
        self.dir.path().join(root).join(USER).join(name)
    }

    /// After files were written into [`DavServer::storage`] with the server stopped: Xandikos
    /// serves what is committed, so they are committed.
    pub fn commit_storage(&self) {
        if self.kind != Kind::Xandikos {
            return;
        }
        for calendar in [true, false] {
            let dir = self.storage(calendar);
            for args in [
                &["add", "-A"][..],
                &[
                    "-c",
                    "user.name=bench",
                    "-c",
                    "user.email=bench@example.com",
                    "commit",
                    "-q",
                    "-m",
                    "items",
                ][..],
            ] {
                let status = Command::new("git")
                    .args(args)
                    .current_dir(&dir)
                    .status()
                    .expect("git runs");
                assert!(status.success(), "git {args:?} in {}", dir.display());
            }
        }
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        self.stop();
    }
}
