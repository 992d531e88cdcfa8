//! Connecting to the mail server: a wrong password, and TLS or STARTTLS with a certificate
//! that is trusted (through `ca_file`) or not. A real Dovecot, the real binary.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::Env;
use support::dovecot::Dovecot;
use support::mail::{Mail, PASSWORD, message};

#[test]
fn a_wrong_password_says_authentication_failed() {
    let mail = Mail::new(&[("alice", "alice@example.com")]);
    std::fs::write(mail.env.path("alice.imap"), "wrong").unwrap();
    let run = mail.env.run(&["sync"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("alice: error"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("authentication failed for alice on 127.0.0.1"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("wrong") && !run.stderr.contains("wrong"),
        "the password leaked"
    );
}

/// A Dovecot with `ssl = required` and a certificate signed by a test CA, one tracked message
/// delivered, and a crmsync config for it; `trust_ca` says whether the config names the CA.
fn tls_setup(security: &str, trust_ca: bool) -> (Dovecot, Env, support::dovecot::TestCertificates) {
    let certificates = support::dovecot::TestCertificates::new();
    let dovecot = Dovecot::start_with(
        &[("alice", PASSWORD)],
        Some(support::dovecot::TlsFiles {
            cert_pem: &certificates.server_pem,
            key_pem: &certificates.server_key,
        }),
    );
    dovecot.deliver(
        "alice",
        "INBOX",
        &["crm"],
        "<tls@x.example>",
        &message(
            "tls@x.example",
            "dana@x.example",
            "alice@example.com",
            "Over TLS",
        ),
    );
    let env = Env::new();
    let password = env.path("alice.imap");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = match security {
        "tls" => dovecot.tls_port.unwrap(),
        _ => dovecot.port,
    };
    let ca_line = if trust_ca {
        format!(
            "ca_file = {:?}\n",
            certificates.ca_path().display().to_string()
        )
    } else {
        String::new()
    };
    env.write_config(&format!(
        "[crm]\ndatabase = \"crm.sqlite3\"\n[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
         [mailbox.imap]\nhost = \"localhost\"\nport = {port}\nsecurity = \"{security}\"\nusername = \"alice\"\n\
         password_file = \"alice.imap\"\n{ca_line}"
    ));
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    (dovecot, env, certificates)
}

#[test]
fn tls_and_starttls_work_when_the_ca_is_trusted() {
    for security in ["tls", "starttls"] {
        let (_dovecot, env, _certificates) = tls_setup(security, true);
        let run = env.run(&["sync", "--json"]);
        assert_eq!(run.code, 0, "{security}: {}\n{}", run.stdout, run.stderr);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            report["mailboxes"][0]["created"], 1,
            "{security}: {report:#}"
        );
        let activities = env.json(&["activity", "list"]);
        assert_eq!(activities[0]["subject"], "Over TLS");
    }
}

#[test]
fn tls_and_starttls_refuse_an_untrusted_certificate() {
    for security in ["tls", "starttls"] {
        let (_dovecot, env, _certificates) = tls_setup(security, false);
        let run = env.run(&["sync"]);
        assert_eq!(run.code, 1, "{security}: {}", run.stdout);
        assert!(
            run.stdout
                .contains("the server's certificate is not trusted (it is not signed by a CA this machine trusts)"),
            "{security}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("ca_file"),
            "{security}: the error says how to fix it: {}",
            run.stdout
        );
        assert_eq!(env.json(&["activity", "list"]), serde_json::json!([]));
    }
}

/// Issue 13, item 4: a self-signed certificate made with plain `openssl req -x509` (CA:TRUE)
/// and named in `ca_file` is trusted, as the docs say; without `ca_file` it is refused.
#[test]
fn a_self_signed_certificate_named_in_ca_file_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let text = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let (cert, key) = (text("cert.pem"), text("key.pem"));
    assert!(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.path().join("cert.pem"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("CA:TRUE"))
            .unwrap(),
        "the certificate is CA:TRUE, as plain openssl makes it"
    );
    let dovecot = Dovecot::start_with(
        &[("alice", PASSWORD)],
        Some(support::dovecot::TlsFiles {
            cert_pem: &cert,
            key_pem: &key,
        }),
    );
    let env = Env::new();
    let password = env.path("alice.imap");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = |ca_line: &str| {
        format!(
            "[crm]\ndatabase = \"crm.sqlite3\"\n[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
             [mailbox.imap]\nhost = \"localhost\"\nport = {}\nsecurity = \"tls\"\nusername = \"alice\"\n\
             password_file = \"alice.imap\"\n{ca_line}",
            dovecot.tls_port.unwrap()
        )
    };
    env.write_config(&config(""));
    env.ok(&["user", "add", "alice@example.com", "--name", "Alice"]);
    let refused = env.run(&["sync"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stdout.contains("not trusted"), "{}", refused.stdout);
    env.write_config(&config(&format!(
        "ca_file = {:?}\n",
        dir.path().join("cert.pem").display().to_string()
    )));
    let run = env.run(&["sync", "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let pass: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(pass["mailboxes"][0]["state"], "idle", "{pass:#}");
}
