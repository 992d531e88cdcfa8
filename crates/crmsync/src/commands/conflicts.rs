//! `crmsync conflicts`: the conflict log.

use std::path::Path;

use crmsync_store::ConflictStore;
use serde_json::json;

use super::open_store;
use crate::output::{or_dash, print_json, print_table};

pub fn run(config: &Path, mailbox: Option<&str>, limit: usize, json: bool) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let conflicts = store.conflicts(mailbox, limit)?;
    if json {
        print_json(&json!(
            conflicts
                .iter()
                .map(|c| json!({
                    "at": c.at,
                    "mailbox": c.mailbox,
                    "kind": c.item_kind,
                    "item": c.item,
                    "crm": c.crm,
                    "field": c.field,
                    "base": c.base,
                    "mailbox_value": c.mailbox_value,
                    "crm_value": c.crm_value,
                    "winner": c.winner,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if conflicts.is_empty() {
        println!("no conflicts");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = conflicts
        .iter()
        .map(|c| {
            vec![
                c.at.clone(),
                c.mailbox.clone(),
                c.item.clone(),
                c.field.clone(),
                or_dash(c.mailbox_value.as_deref()),
                or_dash(c.crm_value.as_deref()),
                c.winner.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "AT",
            "MAILBOX",
            "ITEM",
            "FIELD",
            "MAILBOX VALUE",
            "CRM VALUE",
            "WINNER",
        ],
        &rows,
    );
    Ok(())
}
