//! `crmsync check`: validate the config and test each mailbox.

use std::path::Path;

use crmsync_engine::check::{CheckReport, check_mailbox};
use serde_json::json;

use super::{CLI_ORIGIN, load_config, runtime, selected_mailboxes};
use crate::output::print_json;

pub fn run(config_path: &Path, only: Option<&str>, json: bool) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let mailboxes = selected_mailboxes(&config, only)?;
    let store = super::open_configured_store(&config, CLI_ORIGIN)?;
    let runtime = runtime()?;
    let reports: Vec<CheckReport> = runtime.block_on(async {
        let mut reports = Vec::new();
        for mailbox in mailboxes {
            reports.push(check_mailbox(&store, mailbox).await);
        }
        reports
    });
    if json {
        print_json(&json!({
            "config": config.path.display().to_string(),
            "connection_enabled": config.connection.enabled,
            "mailboxes": reports.iter().map(|r| json!({
                "id": r.mailbox,
                "ok": r.ok(),
                "checks": r.checks.iter().map(|c| json!({"what": c.what, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    } else {
        println!("config {}: valid", config.path.display());
        if !config.connection.enabled {
            println!("connection.enabled = false: the daemon synchronizes nothing");
        }
        for report in &reports {
            println!(
                "{}: {}",
                report.mailbox,
                if report.ok() { "ok" } else { "FAILED" }
            );
            for check in &report.checks {
                println!(
                    "  {} {:<11} {}",
                    if check.ok { "ok  " } else { "FAIL" },
                    check.what,
                    check.detail
                );
            }
        }
    }
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} mailboxes failed the check", reports.len());
    }
    Ok(())
}
