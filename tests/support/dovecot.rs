//! A real Dovecot IMAP server for one test, on a free loopback port, in a throwaway directory
//! (recipe: the team's TESTING.md), and a small synchronous IMAP client that plays "another
//! mail client" in the tests: it appends messages and sets keywords the way Thunderbird would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    /// Plain IMAP (STARTTLS when TLS is on).
    pub port: u16,
    /// Implicit TLS (IMAPS), when started with TLS.
    pub tls_port: Option<u16>,
    child: Option<Child>,
    conf: PathBuf,
}

/// TLS material for a server with `ssl = required`.
pub struct TlsFiles<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Dovecot {
    /// Starts Dovecot with these `(user, password)` accounts, plain IMAP only.
    pub fn start(users: &[(&str, &str)]) -> Dovecot {
        Dovecot::start_with(users, None)
    }

    pub fn start_with(users: &[(&str, &str)], tls: Option<TlsFiles<'_>>) -> Dovecot {
        Dovecot::start_configured(users, tls, "")
    }

    /// A server with `settings` added to its configuration (the benchmarks raise its process
    /// and connection limits for hundreds of mailboxes).
    pub fn start_configured(
        users: &[(&str, &str)],
        tls: Option<TlsFiles<'_>>,
        settings: &str,
    ) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("crmsync-dovecot-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_owned();
        let root = root.as_path();
        // Dovecot hands mail to the `mail` user, which must reach the mail directory.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["-R", "mail:mail"])
            .arg(root.join("mail"))
            .status()
            .unwrap();
        assert!(chown.success());
        let passwd: String = users
            .iter()
            .map(|(user, password)| format!("{user}:{{PLAIN}}{password}\n"))
            .collect();
        std::fs::write(root.join("passwd"), passwd).unwrap();

        let mut dovecot = Dovecot {
            dir,
            port: 0,
            tls_port: None,
            child: None,
            conf: root.join("dovecot.conf"),
        };
        // A free port can be taken by another test's server between our probe and Dovecot's
        // bind; then Dovecot exits and we try again with other ports.
        for attempt in 1..=5 {
            let port = free_port();
            let tls_port = tls.as_ref().map(|_| free_port());
            let ssl = match &tls {
                Some(files) => {
                    std::fs::write(root.join("cert.pem"), files.cert_pem).unwrap();
                    std::fs::write(root.join("key.pem"), files.key_pem).unwrap();
                    format!(
                        "ssl = required\nssl_cert = <{0}/cert.pem\nssl_key = <{0}/key.pem\n",
                        root.display()
                    )
                }
                None => "ssl = no\n".to_owned(),
            };
            let conf = format!(
                r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 8
mail_location = maildir:{d}/mail/%u
# Each IMAP session's raw traffic, for the users whose directory exists (Dovecot::rawlog).
rawlog_dir = {d}/rawlog/%u
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \Sent
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={d}/mail/%u
}}
{settings}
"#,
                d = root.display(),
                imaps = tls_port.unwrap_or(0),
            );
            std::fs::write(&dovecot.conf, conf).unwrap();
            dovecot.port = port;
            dovecot.tls_port = tls_port;
            match dovecot.try_start() {
                Ok(()) => return dovecot,
                Err(log) => eprintln!("dovecot did not start (attempt {attempt}): {log}"),
            }
        }
        panic!("dovecot did not start in 5 attempts: {}", dovecot.log())
    }

    /// Starts the server (again, after [`Dovecot::stop`]) and waits until the port answers.
    pub fn restart(&mut self) {
        if let Err(log) = self.try_start() {
            panic!("dovecot did not listen: {log}");
        }
    }

    /// Starts the server and waits until its ports answer and it is still running a moment
    /// later (a Dovecot that could not bind exits at once, while another server on the same
    /// port would answer the probe). `Err` carries its log.
    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let started = Instant::now();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts (is dovecot-imapd installed? run tests/run)");
        self.child = Some(child);
        let deadline = started + Duration::from_secs(15);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        loop {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return Err(self.log());
            }
            let listening = ports
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok());
            if listening && started.elapsed() > Duration::from_millis(300) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Delivers a message with doveadm, without IMAP (for servers that require TLS), and sets
    /// keywords on it; the message is found again by its Message-ID.
    pub fn deliver(
        &self,
        user: &str,
        folder: &str,
        keywords: &[&str],
        message_id: &str,
        message: &str,
    ) {
        let mut save = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(["save", "-u", user, "-m", folder])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        save.stdin
            .take()
            .unwrap()
            .write_all(message.replace('\n', "\r\n").as_bytes())
            .unwrap();
        assert!(
            save.wait().unwrap().success(),
            "doveadm save failed: {}",
            self.log()
        );
        for keyword in keywords {
            let status = Command::new("doveadm")
                .arg("-c")
                .arg(&self.conf)
                .args([
                    "flags",
                    "add",
                    "-u",
                    user,
                    keyword,
                    "mailbox",
                    folder,
                    "header",
                    "Message-ID",
                    message_id,
                ])
                .status()
                .unwrap();
            assert!(status.success(), "doveadm flags failed: {}", self.log());
        }
    }

    /// Runs `doveadm` against this server's configuration; panics with its output on failure.
    pub fn doveadm(&self, args: &[&str]) {
        let output = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "doveadm {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Records the raw IMAP traffic of `user`'s sessions from now on (Dovecot's rawlog: one
    /// `.in` file of the client's commands and one `.out` file per session).
    pub fn record_traffic(&self, user: &str) {
        let dir = self.dir.path().join("rawlog").join(user);
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "mail:mail"])
            .arg(self.dir.path().join("rawlog"))
            .status()
            .unwrap();
        assert!(chown.success());
    }

    /// Every command `user`'s recorded sessions sent, one per line.
    pub fn commands_of(&self, user: &str) -> Vec<String> {
        self.sessions_of(user).into_iter().flatten().collect()
    }

    /// The commands of each of `user`'s recorded sessions, one list per session.
    pub fn sessions_of(&self, user: &str) -> Vec<Vec<String>> {
        let dir = self.dir.path().join("rawlog").join(user);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "in"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path).unwrap();
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Logs in as `user` with a plain connection.
    pub fn client(&self, user: &str, password: &str) -> ImapClient {
        ImapClient::login(self.port, user, password)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal IMAP client: one command at a time, responses as lines.
pub struct ImapClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl ImapClient {
    pub fn login(port: u16, user: &str, password: &str) -> ImapClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut client = ImapClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            tag: 0,
        };
        let greeting = client.line();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        client.ok(&format!("LOGIN {} {}", quote(user), quote(password)));
        client
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the server closed the connection");
        // A literal {N} at the end of a line: read its bytes into the line, then the rest.
        while let Some(size) = literal_size(&line) {
            let mut bytes = vec![0; size];
            self.reader.read_exact(&mut bytes).unwrap();
            line.push_str(&String::from_utf8_lossy(&bytes));
            let mut rest = String::new();
            self.reader.read_line(&mut rest).unwrap();
            line.push_str(&rest);
        }
        line
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("T{}", self.tag)
    }

    /// Sends a command and returns its untagged lines and the tagged completion.
    pub fn command(&mut self, command: &str) -> (Vec<String>, String) {
        let tag = self.next_tag();
        write!(self.writer, "{tag} {command}\r\n").unwrap();
        self.collect(&tag)
    }

    fn collect(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        loop {
            let line = self.line();
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return (untagged, rest.trim_end().to_owned());
            }
            untagged.push(line.trim_end().to_owned());
        }
    }

    /// A command that must succeed.
    pub fn ok(&mut self, command: &str) -> Vec<String> {
        let (untagged, done) = self.command(command);
        assert!(done.starts_with("OK"), "{command} -> {done} {untagged:?}");
        untagged
    }

    /// Appends a message with flags; returns its UID (from UIDPLUS).
    pub fn append(&mut self, folder: &str, flags: &[&str], message: &str) -> u32 {
        self.append_bytes(folder, flags, message.as_bytes())
    }

    /// [`ImapClient::append`] of bytes that need not be UTF-8 (real-world mail); bare LF line
    /// ends become CRLF.
    pub fn append_bytes(&mut self, folder: &str, flags: &[&str], message: &[u8]) -> u32 {
        let mut crlf = Vec::with_capacity(message.len() + message.len() / 40);
        for (i, byte) in message.iter().enumerate() {
            if *byte == b'\n' && (i == 0 || message[i - 1] != b'\r') {
                crlf.push(b'\r');
            }
            crlf.push(*byte);
        }
        let message = crlf;
        let tag = self.next_tag();
        write!(
            self.writer,
            "{tag} APPEND {} ({}) {{{}}}\r\n",
            quote(folder),
            flags.join(" "),
            message.len()
        )
        .unwrap();
        let go = self.line();
        assert!(go.starts_with('+'), "{go}");
        self.writer.write_all(&message).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        let (_, done) = self.collect(&tag);
        assert!(done.starts_with("OK"), "APPEND -> {done}");
        done.split("APPENDUID ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|uid| uid.trim_end_matches(']').parse().ok())
            .expect("APPENDUID")
    }

    /// The whole message (the FETCH's lines, literal included, joined).
    pub fn body(&mut self, folder: &str, uid: u32) -> String {
        self.select(folder);
        self.ok(&format!("UID FETCH {uid} (BODY.PEEK[])"))
            .join("\n")
    }

    pub fn select(&mut self, folder: &str) {
        self.ok(&format!("SELECT {}", quote(folder)));
    }

    pub fn create(&mut self, folder: &str) {
        self.ok(&format!("CREATE {}", quote(folder)));
    }

    pub fn delete(&mut self, folder: &str) {
        self.ok(&format!("DELETE {}", quote(folder)));
    }

    /// `UID STORE uid +FLAGS (...)` or `-FLAGS`, in `folder`.
    pub fn store(&mut self, folder: &str, uid: u32, change: &str) {
        self.select(folder);
        self.ok(&format!("UID STORE {uid} {change}"));
    }

    /// A message's flags, without the sync-state keywords crmsync writes (`crm-synced`,
    /// `crm-failed`), which most tests do not look at: `all_flags` has them.
    pub fn flags(&mut self, folder: &str, uid: u32) -> Vec<String> {
        self.all_flags(folder, uid)
            .into_iter()
            .filter(|flag| flag != "crm-synced" && flag != "crm-failed")
            .collect()
    }

    pub fn all_flags(&mut self, folder: &str, uid: u32) -> Vec<String> {
        self.select(folder);
        self.selected_flags(uid)
            .unwrap_or_else(|| panic!("no message {uid} in {folder}"))
    }

    /// Every flag of message `uid` in the folder selected now, without selecting it again;
    /// `None` when the folder has no such message. Another message's FETCH that comes with the
    /// answer (a change the server tells of) is not taken for it.
    pub fn selected_flags(&mut self, uid: u32) -> Option<Vec<String>> {
        let lines = self.ok(&format!("UID FETCH {uid} (FLAGS)"));
        let line = lines.iter().find(|l| {
            l.contains("FETCH")
                && (l.contains(&format!("UID {uid} ")) || l.contains(&format!("UID {uid})")))
        })?;
        let inside = line.split("FLAGS (").nth(1)?.split(')').next()?;
        Some(inside.split_whitespace().map(str::to_owned).collect())
    }

    /// Moves a message; returns its new UID.
    pub fn uid_move(&mut self, from: &str, uid: u32, to: &str) -> u32 {
        self.select(from);
        let lines = self.ok(&format!("UID MOVE {uid} {}", quote(to)));
        lines
            .iter()
            .find_map(|l| l.split("COPYUID ").nth(1))
            .and_then(|rest| rest.split_whitespace().nth(2))
            .and_then(|uid| uid.trim_end_matches(']').parse().ok())
            .expect("COPYUID")
    }

    pub fn expunge(&mut self, folder: &str, uid: u32) {
        self.select(folder);
        self.ok(&format!("UID STORE {uid} +FLAGS (\\Deleted)"));
        self.ok(&format!("UID EXPUNGE {uid}"));
    }

    pub fn uids(&mut self, folder: &str) -> Vec<u32> {
        self.select(folder);
        let lines = self.ok("UID SEARCH ALL");
        let mut uids: Vec<u32> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        uids.sort_unstable();
        uids
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let trimmed = line.trim_end();
    let inner = trimmed.strip_suffix('}')?;
    let start = inner.rfind('{')?;
    inner[start + 1..].parse().ok()
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A test CA and a server certificate it signed, for `localhost` and 127.0.0.1, made with the
/// openssl command line.
pub struct TestCertificates {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub server_pem: String,
    pub server_key: String,
}

impl TestCertificates {
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn new() -> TestCertificates {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=crmsync test CA",
        ]);
        run(&args);
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&args);
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        TestCertificates {
            ca_pem: read("ca.pem"),
            server_pem: read("server.pem"),
            server_key: read("server.key"),
            dir,
        }
    }
}
