//! `crmsync sync`: one pass over the enabled mailboxes, then exit.

use std::path::Path;

use chrono::NaiveTime;
use crmsync_engine::STORE_RULES;
use crmsync_engine::lock::{lock_mailbox, try_lock_mailbox};
use crmsync_engine::{PassOptions, PassReport, sync_mailbox};
use crmsync_store::When;
use serde_json::json;

use super::{load_config, runtime, selected_mailboxes};
use crate::output::print_json;
use crate::{usage, when};

/// The origin of a one-shot pass's writes in the change journal.
const SYNC_ORIGIN: &str = "crmsync-sync";

/// The pass options from the command line: `--accept-empty`, `--accept-deletes`,
/// `--backfill SINCE`, `--dry-run`.
pub fn options(
    accept_empty: bool,
    accept_deletes: bool,
    backfill: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<PassOptions> {
    let backfill_since = match backfill {
        None => None,
        Some(text) => match when::parse(text, "--backfill")? {
            Some(When::At(at)) => Some(at.timestamp()),
            Some(When::Day(day)) => Some(day.and_time(NaiveTime::MIN).and_utc().timestamp()),
            None => return Err(usage("--backfill needs a time, such as 2026-11-01")),
        },
    };
    Ok(PassOptions {
        accept_empty,
        accept_deletes,
        backfill_since,
        dry_run,
    })
}

pub fn run(
    config_path: &Path,
    only: Option<&str>,
    options: PassOptions,
    json: bool,
) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let mailboxes = selected_mailboxes(&config, only)?;
    if !config.connection.enabled {
        anyhow::bail!(
            "connection.enabled is false in {}: nothing is synchronized",
            config.path.display()
        );
    }
    let database = crmsync_engine::store::open_database(&config.crm.database)?;
    let mut store = database.store(SYNC_ORIGIN, STORE_RULES)?;
    let runtime = runtime()?;
    let reports: Vec<PassReport> = runtime.block_on(async {
        let mut reports = Vec::new();
        for mailbox in mailboxes {
            // One process syncs a mailbox at a time: wait for the daemon's pass, if any.
            let lock = match try_lock_mailbox(&database, &mailbox.id)? {
                Some(lock) => lock,
                None => {
                    eprintln!(
                        "crmsync: mailbox {} is being synced by another process (the daemon?): waiting for it",
                        mailbox.id
                    );
                    lock_mailbox(&database, &mailbox.id).await?
                }
            };
            reports.push(sync_mailbox(&mut store, mailbox, options).await);
            drop(lock);
        }
        Ok::<_, std::io::Error>(reports)
    })?;
    if json {
        print_json(&json!({ "mailboxes": reports.iter().map(report_json).collect::<Vec<_>>() }));
    } else {
        for report in &reports {
            print_report(report);
        }
    }
    let failures = reports
        .iter()
        .filter(|r| !r.errors.is_empty() || r.failed > 0)
        .count();
    if !options.dry_run {
        let healthy: Vec<&str> = reports
            .iter()
            .filter(|r| r.errors.is_empty())
            .map(|r| r.mailbox.as_str())
            .collect();
        if let Some(pid) = crate::status::wake_daemon_for(&config.status.file, &healthy) {
            eprintln!(
                "crmsync: the daemon (pid {pid}) showed an error for a mailbox that synced now: it was asked to try again at once"
            );
        }
    }
    if failures > 0 {
        anyhow::bail!(
            "{failures} of {} mailboxes had failures (see above)",
            reports.len()
        );
    }
    Ok(())
}

fn report_json(report: &PassReport) -> serde_json::Value {
    json!({
        "id": report.mailbox,
        "state": report.state.as_str(),
        "created": report.created,
        "linked": report.linked,
        "deleted": report.deleted,
        "unlinked": report.unlinked,
        "updated": report.updated,
        "keywords_written": report.keywords_written,
        "sent": report.sent,
        "drafts_rewritten": report.drafts_rewritten,
        "items_written": report.items_written,
        "failed": report.failed,
        "tracked": report.tracked,
        "pending": report.pending,
        "errors": report.errors,
        "warnings": report.warnings,
        "planned": report.planned,
        "collections": report.collections.iter().map(|c| json!({
            "name": c.name,
            "path": c.path,
            "state": c.state.as_str(),
            "items": c.items,
            "tracked": c.tracked,
            "failed": c.failed,
            "skipped": c.skipped,
            "last_error": c.last_error,
        })).collect::<Vec<_>>(),
        "imap": {
            "select_commands": report.imap.select_commands,
            "fetch_commands": report.imap.fetch_commands,
            "bodies_fetched": report.imap.bodies_fetched,
            "store_commands": report.imap.store_commands,
        },
    })
}

fn print_report(report: &PassReport) {
    println!(
        "{}: {}; {} created, {} linked, {} deleted, {} unlinked, {} updated, {} keywords written, {} failed; {} tracked",
        report.mailbox,
        report.state.as_str(),
        report.created,
        report.linked,
        report.deleted,
        report.unlinked,
        report.updated,
        report.keywords_written,
        report.failed,
        report.tracked
    );
    for c in &report.collections {
        println!(
            "  {} {}: {}; {} items, {} tracked, {} failed, {} skipped",
            c.name,
            c.path,
            c.state.as_str(),
            c.items,
            c.tracked,
            c.failed,
            c.skipped
        );
    }
    for planned in &report.planned {
        println!("  would: {planned}");
    }
    if report.items_written > 0 {
        println!("  {} collection files written", report.items_written);
    }
    if report.sent > 0 {
        println!("  {} emails sent", report.sent);
    }
    if report.drafts_rewritten > 0 {
        println!("  {} drafts rewritten", report.drafts_rewritten);
    }
    for error in &report.errors {
        println!("  error: {error}");
    }
    for warning in &report.warnings {
        println!("  warning: {warning}");
    }
}
