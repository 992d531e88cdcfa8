//! `crmsync items`: the tracked items of the mailboxes, or (`--failed`) the failed-items list.

use std::path::Path;

use crmsync_core::item::ItemLocation;
use crmsync_engine::pass::failed_items_since;
use crmsync_store::{FailureStore, LinkStore, Store};
use serde_json::json;

use super::{CLI_ORIGIN, load_config, selected_mailboxes};
use crate::output::{print_json, print_table};

pub fn run(config: &Path, mailbox: Option<&str>, failed: bool, json: bool) -> anyhow::Result<()> {
    let config = load_config(config)?;
    let mailboxes = selected_mailboxes(&config, mailbox)?;
    let store = super::open_configured_store(&config, CLI_ORIGIN)?;
    if failed {
        failed_items(&store, mailbox, json)
    } else {
        let ids: Vec<&str> = mailboxes.iter().map(|m| m.id.as_str()).collect();
        tracked_items(&store, &ids, json)
    }
}

fn failed_items(store: &Store, mailbox: Option<&str>, json: bool) -> anyhow::Result<()> {
    let rows = store.failed_items(mailbox, &failed_items_since())?;
    if json {
        print_json(&json!(
            rows.iter()
                .map(|row| json!({
                    "mailbox": row.mailbox,
                    "scope": row.failure.scope,
                    "item": row.failure.item,
                    "reason": row.failure.reason,
                    "first_failed": row.first_failed,
                    "last_failed": row.last_failed,
                    "attempts": row.attempts,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no failed items in the last 3 days");
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.last_failed.clone(),
                row.mailbox.clone(),
                row.failure.scope.clone(),
                row.failure.item.clone(),
                row.attempts.to_string(),
                row.failure.reason.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "LAST FAILED",
            "MAILBOX",
            "SCOPE",
            "ITEM",
            "ATTEMPTS",
            "REASON",
        ],
        &table,
    );
    Ok(())
}

fn tracked_items(store: &Store, mailboxes: &[&str], json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for mailbox in mailboxes {
        for link in store.links(mailbox)? {
            rows.push(json!({
                "mailbox": link.mailbox,
                "kind": link.kind.as_str(),
                "item": location_text(&link.location),
                "crm": link.crm.to_string(),
                "state": link.state.as_str(),
                "created_by": link.created_by.as_str(),
            }));
        }
    }
    if json {
        print_json(&json!(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no tracked items");
        return Ok(());
    }
    let field = |row: &serde_json::Value, name: &str| row[name].as_str().unwrap_or("").to_owned();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            ["mailbox", "kind", "item", "crm", "state", "created_by"]
                .iter()
                .map(|name| field(row, name))
                .collect()
        })
        .collect();
    print_table(
        &["MAILBOX", "KIND", "ITEM", "CRM", "STATE", "CREATED BY"],
        &table,
    );
    Ok(())
}

/// Where an item is, as people name it: `FOLDER:UID`, or `calendar/FILE`.
fn location_text(location: &ItemLocation) -> String {
    match location {
        ItemLocation::Imap { folder, uid, .. } => format!("{folder}:{uid}"),
        ItemLocation::Collection { collection, href } => format!("{collection}/{href}"),
    }
}
