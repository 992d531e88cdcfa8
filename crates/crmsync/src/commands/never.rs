//! `crmsync never ...`: the never-track list kept in the CRM store, next to the config's.

use std::path::Path;

use crmsync_core::auto::NeverEntry;
use crmsync_store::EmailStore;
use serde_json::json;

use super::{load_config, open_store, selected_mailboxes};
use crate::cli::NeverCommand;
use crate::output::{print_json, print_table};
use crate::usage;

fn entry(text: &str) -> anyhow::Result<NeverEntry> {
    NeverEntry::parse(text).ok_or_else(|| {
        usage(format!(
            "{text:?} is neither an address nor a domain such as \"@example.org\""
        ))
    })
}

pub fn run(config_path: &Path, command: NeverCommand) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let mailbox_of = |mailbox: Option<&str>| -> anyhow::Result<()> {
        selected_mailboxes(&config, mailbox).map(|_| ())
    };
    match command {
        NeverCommand::Add {
            entry: text,
            mailbox,
            purge,
        } => {
            let entry = entry(&text)?;
            mailbox_of(mailbox.as_deref())?;
            let mut store = open_store(config_path)?;
            let added = store.add_never(mailbox.as_deref(), &entry)?;
            let scope = mailbox.as_deref().unwrap_or("every mailbox");
            println!(
                "{} {entry} for {scope}",
                if added {
                    "never tracking"
                } else {
                    "already never tracking"
                }
            );
            if purge {
                let purged = store.purge_automatic(mailbox.as_deref(), &entry)?;
                println!(
                    "deleted {purged} CRM copies that automatic tracking made; their messages lose the tracking keyword on the next pass"
                );
            }
        }
        NeverCommand::Remove {
            entry: text,
            mailbox,
        } => {
            let entry = entry(&text)?;
            let mut store = open_store(config_path)?;
            let scope = mailbox.as_deref().unwrap_or("every mailbox");
            if !store.remove_never(mailbox.as_deref(), &entry)? {
                anyhow::bail!("{entry} is not on the store's never-track list for {scope}");
            }
            println!("removed {entry} for {scope}");
        }
        NeverCommand::List { mailbox, output } => {
            mailbox_of(mailbox.as_deref())?;
            let store = open_store(config_path)?;
            let mut rows: Vec<(String, String, String)> = Vec::new();
            for configured in &config.mailboxes {
                if mailbox.as_deref().is_some_and(|m| m != configured.id) {
                    continue;
                }
                for entry in &configured.tracking.never {
                    rows.push((configured.id.clone(), entry.to_string(), "config".into()));
                }
            }
            for (scope, entry) in store.never_entries(mailbox.as_deref())? {
                let scope = scope.unwrap_or_else(|| "*".to_owned());
                rows.push((scope, entry.to_string(), "store".into()));
            }
            if output.json {
                print_json(&json!(
                    rows.iter()
                        .map(|(m, e, s)| json!({"mailbox": m, "entry": e, "source": s}))
                        .collect::<Vec<_>>()
                ));
            } else {
                let table: Vec<Vec<String>> =
                    rows.into_iter().map(|(m, e, s)| vec![m, e, s]).collect();
                print_table(&["MAILBOX", "ENTRY", "SOURCE"], &table);
            }
        }
    }
    Ok(())
}
