//! `crmsync check`: for each mailbox, what "test and enable mailbox" checks in a CRM: the owner
//! may sync, the server answers, the certificate verifies, the login works, the folders exist,
//! and whether push (IDLE) and incremental sync (CONDSTORE) are available.

use crmsync_config::{CollectionConfig, ImapConfig, MailboxConfig, Place};
use crmsync_imap::ImapSession;
use crmsync_store::{CrmStore, StoreError};

use crate::collection::Which;

/// One line of a mailbox's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub mailbox: String,
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// Every check passed. IDLE and CONDSTORE missing are noted, not failures: crmsync polls
    /// and rescans without them.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn push(&mut self, what: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.to_owned(),
            ok,
            detail: detail.into(),
        });
    }
}

pub async fn check_mailbox<S: CrmStore>(store: &S, mailbox: &MailboxConfig) -> CheckReport {
    let mut report = CheckReport {
        mailbox: mailbox.id.clone(),
        checks: Vec::new(),
    };
    check_owner(store, mailbox, &mut report);
    if !mailbox.enabled {
        report.push(
            "enabled",
            true,
            "no: enabled = false, the daemon skips this mailbox",
        );
    }
    if let Some(imap) = &mailbox.imap {
        check_imap(imap, &mut report).await;
    }
    for which in Which::ALL {
        if let Some(config) = which.config(mailbox) {
            check_collection(which, config, &mut report).await;
        }
    }
    report
}

/// A directory exists; a server answers, and discovery finds the collections it holds: each
/// is listed, the configured one marked.
async fn check_collection(which: Which, config: &CollectionConfig, report: &mut CheckReport) {
    let what = which.as_str();
    let server = match &config.place {
        Place::Directory(path) => {
            let ok = path.is_dir();
            let detail = if ok {
                format!("{} is a directory", path.display())
            } else {
                format!("{} is not a directory", path.display())
            };
            report.push(what, ok, detail);
            return;
        }
        Place::Server(server) => server,
    };
    let discovery = match crmsync_dav::discover(server, which.dav_kind()).await {
        Ok(discovery) => discovery,
        Err(error) => {
            report.push(what, false, format!("{}: {error}", server.url));
            return;
        }
    };
    for found in &discovery.collections {
        let chosen = discovery.chosen.as_deref() == Some(found.url.as_str());
        let name = found
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let mark = if chosen { "configured: " } else { "found: " };
        report.push(what, true, format!("{mark}{}{name}", found.url));
    }
    match &discovery.chosen {
        Some(_) => {}
        None if discovery.collections.is_empty() => {
            report.push(
                what,
                false,
                format!("no {what} collection found from {}", server.url),
            );
        }
        None => report.push(
            what,
            false,
            format!(
                "{} collections found from {}: set url to one of them",
                discovery.collections.len(),
                server.url
            ),
        ),
    }
}

/// The owner is a CRM user with the `sync` privilege.
fn check_owner<S: CrmStore>(store: &S, mailbox: &MailboxConfig, report: &mut CheckReport) {
    let owner = &mailbox.owner;
    match store.user(owner) {
        Ok(user) if user.sync => report.push("owner", true, format!("{owner} may sync")),
        Ok(_) => report.push(
            "owner",
            false,
            format!("{owner} lacks the sync privilege (crmsync user set {owner} --sync yes)"),
        ),
        Err(StoreError::NotFound(_)) => report.push(
            "owner",
            false,
            format!("{owner} is not a CRM user (crmsync user add {owner} --name NAME)"),
        ),
        Err(error) => report.push("owner", false, format!("CRM store: {error}")),
    }
}

/// Logs in as a pass would, and says what the server offers and which folders exist.
async fn check_imap(imap: &ImapConfig, report: &mut CheckReport) {
    let password = match imap.password.read() {
        Ok(password) => password,
        Err(error) => {
            report.push("password", false, error.to_string());
            return;
        }
    };
    let mut session = match ImapSession::connect(imap, &password).await {
        Ok(session) => session,
        Err(error) => {
            report.push("imap", false, error.to_string());
            return;
        }
    };
    report.push(
        "imap",
        true,
        format!(
            "logged in to {}:{} ({}) as {}",
            imap.host,
            imap.port,
            imap.security.as_str(),
            imap.username
        ),
    );
    if !imap.tls.verify_certificates {
        report.push(
            "certificate",
            true,
            "NOT verified (verify_certificates = false)",
        );
    }
    let idle = if session.has_idle() {
        "yes: push"
    } else {
        "no: polled"
    };
    report.push("idle", true, idle);
    let condstore = if session.has_condstore() {
        "yes: incremental"
    } else {
        "no: every pass rescans the folders"
    };
    report.push("condstore", true, condstore);
    for folder in &imap.folders {
        match session.folder_exists(folder).await {
            Ok(true) => report.push("folder", true, format!("{folder:?} exists")),
            Ok(false) => report.push(
                "folder",
                false,
                format!("{folder:?} does not exist on the server"),
            ),
            Err(error) => report.push("folder", false, format!("{folder:?}: {error}")),
        }
    }
    session.logout().await;
}
