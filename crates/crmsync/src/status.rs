//! The status file (SPEC section 8; schema in `docs/status.md`) and `crmsync status`.
//!
//! The daemon replaces the file atomically after every pass and state change; this module
//! holds its types, so that the writer and the reader cannot drift apart, and renders it for
//! people. `--json` prints the file as it is.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::JsonFlag;
use crate::commands::load_config;
use crate::output::{or_dash, print_table};

/// The version of the status file's schema; it changes only when a field changes meaning.
pub const STATUS_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    pub schema: u32,
    /// When the daemon last wrote the file.
    pub updated: String,
    pub daemon: DaemonStatus,
    pub mailboxes: Vec<MailboxStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub started: String,
    pub connection_enabled: bool,
    pub config: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub id: String,
    pub owner: String,
    /// `starting`, `syncing`, `idle`, `error`, `disabled` or `not-permitted`.
    pub state: String,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub tracked: u64,
    pub pending: u64,
    pub failed: u64,
    /// Failed passes in a row (0 after a pass that succeeded).
    #[serde(default)]
    pub consecutive_errors: u32,
    #[serde(default)]
    pub folders: Vec<FolderStatus>,
    #[serde(default)]
    pub collections: Vec<CollectionStatus>,
    /// The latest items that failed in the last 3 days and have not synced since, the latest
    /// first (at most [`FAILED_ITEMS_LISTED`]; `crmsync items --failed` lists them all).
    #[serde(default)]
    pub failed_items: Vec<FailedItemStatus>,
}

/// How many failed items the status file lists per mailbox.
pub const FAILED_ITEMS_LISTED: usize = 50;

/// An item a pass could not sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedItemStatus {
    /// `email`, `calendar` or `contacts`.
    pub scope: String,
    /// `FOLDER:UID` for a message, the file name for a calendar or address-book item.
    pub item: String,
    pub reason: String,
    pub first_failed: String,
    pub last_failed: String,
    /// Passes it failed in.
    pub attempts: u32,
}

impl From<crmsync_store::FailedItem> for FailedItemStatus {
    fn from(row: crmsync_store::FailedItem) -> FailedItemStatus {
        FailedItemStatus {
            scope: row.failure.scope,
            item: row.failure.item,
            reason: row.failure.reason,
            first_failed: row.first_failed,
            last_failed: row.last_failed,
            attempts: row.attempts,
        }
    }
}

/// A calendar or address book (a vdir) of a mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionStatus {
    /// `calendar` or `contacts`.
    pub name: String,
    pub path: String,
    /// `idle` or `error`.
    pub state: String,
    /// Item files listed by the last pass.
    pub items: u64,
    /// Items linked to the CRM.
    pub tracked: u64,
    /// Files the last pass could not read or write.
    pub failed: u64,
    /// Tracked files with no link yet (their tracking is still to be carried out, or failed
    /// and is retried).
    #[serde(default)]
    pub pending: u64,
    /// Well-formed files that hold nothing crmsync tracks (a journal entry, free/busy, only
    /// changed occurrences of a series kept elsewhere).
    #[serde(default)]
    pub skipped: u64,
    pub last_error: Option<String>,
    pub last_success: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FolderStatus {
    /// The IMAP folder name.
    pub name: String,
    /// `imap`.
    pub kind: String,
    pub uid_validity: Option<u32>,
    pub highest_modseq: Option<u64>,
    pub sync_token: Option<String>,
    /// When the last scan that read every message's flags and header ran (a first scan, a
    /// UIDVALIDITY change, a server without CONDSTORE).
    #[serde(default)]
    pub last_full_scan: Option<String>,
    pub last_success: Option<String>,
}

pub fn run(config_path: &Path, flags: &JsonFlag) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let path = &config.status.file;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "no status yet: {} does not exist (the daemon writes it once `crmsync run` has started)",
                path.display()
            );
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the status file {}", path.display()));
        }
    };
    let status: StatusFile = serde_json::from_str(&text)
        .with_context(|| format!("the status file {} is not valid", path.display()))?;
    if status.schema != STATUS_SCHEMA {
        anyhow::bail!(
            "the status file {} has schema {}, and this crmsync reads schema {STATUS_SCHEMA}",
            path.display(),
            status.schema
        );
    }
    if flags.json {
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
        return Ok(());
    }
    render(&status);
    Ok(())
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn render(status: &StatusFile) {
    let daemon = &status.daemon;
    let running = if process_alive(daemon.pid) {
        format!("running as pid {}", daemon.pid)
    } else {
        format!(
            "NOT RUNNING (pid {} is gone; this is the last status it wrote)",
            daemon.pid
        )
    };
    println!(
        "crmsync {}: {running}, started {}",
        daemon.version, daemon.started
    );
    println!(
        "connection: {}; config {}; status written {}",
        if daemon.connection_enabled {
            "enabled"
        } else {
            "DISABLED (nothing is synchronized)"
        },
        daemon.config,
        status.updated
    );
    if status.mailboxes.is_empty() {
        println!("no mailboxes configured");
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = status
        .mailboxes
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.owner.clone(),
                m.state.clone(),
                or_dash(m.last_success.as_deref()),
                m.tracked.to_string(),
                m.pending.to_string(),
                m.failed.to_string(),
                or_dash(m.last_error.as_deref()),
            ]
        })
        .collect();
    print_table(
        &[
            "MAILBOX",
            "OWNER",
            "STATE",
            "LAST SYNC",
            "TRACKED",
            "PENDING",
            "FAILED",
            "LAST ERROR",
        ],
        &rows,
    );
    let failed: Vec<Vec<String>> = status
        .mailboxes
        .iter()
        .flat_map(|m| {
            m.failed_items.iter().map(|f| {
                vec![
                    m.id.clone(),
                    f.item.clone(),
                    f.last_failed.clone(),
                    f.attempts.to_string(),
                    f.reason.clone(),
                ]
            })
        })
        .collect();
    if !failed.is_empty() {
        println!();
        println!("failed items (crmsync items --failed lists them all):");
        print_table(
            &["MAILBOX", "ITEM", "LAST FAILED", "ATTEMPTS", "REASON"],
            &failed,
        );
    }
}

/// After `crmsync sync` passed `mailboxes` without error: a running daemon that shows one of
/// them in the error state (a password just fixed, a server back) is asked to try again now
/// (SIGUSR1) instead of waiting out its retry. Returns the daemon's pid when it was asked.
pub fn wake_daemon_for(path: &Path, mailboxes: &[&str]) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let status: StatusFile = serde_json::from_str(&text).ok()?;
    let pid = status.daemon.pid;
    // Only a running daemon (`crmsync ... run`) handles SIGUSR1; it would end any other
    // process, a crmsync CLI that got a dead daemon's pid among them.
    let is_crmsync = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim() == "crmsync");
    let is_daemon = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"run"));
    let erring = status
        .mailboxes
        .iter()
        .any(|m| m.state == "error" && mailboxes.contains(&m.id.as_str()));
    if !is_crmsync || !is_daemon || !erring || pid == std::process::id() {
        return None;
    }
    let pid_t = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::kill_process(pid_t, rustix::process::Signal::USR1).ok()?;
    Some(pid)
}
