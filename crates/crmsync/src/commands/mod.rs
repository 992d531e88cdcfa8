//! The commands that work on the CRM store alone: users, records and activities.

pub mod activities;
pub mod check;
pub mod conflicts;
pub mod connections;
pub mod items;
pub mod library;
pub mod never;
pub mod records;
pub mod sync;
pub mod tracked;
pub mod users;

use std::path::Path;

use crmsync_config::Config;
use crmsync_core::model::{EmailAddress, EntityName, RecordNumber};
use crmsync_engine::STORE_RULES;
use crmsync_store::Store;

use crate::usage;

/// The origin of the CLI's writes in the change journal.
pub const CLI_ORIGIN: &str = "crmsync-cli";

pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// Loads and validates the config, then opens the CRM store it names.
pub fn open_store(config_path: &Path) -> anyhow::Result<Store> {
    let config = load_config(config_path)?;
    open_configured_store(&config, CLI_ORIGIN)
}

/// Opens the CRM store `config` names (a SQLite file, or a PostgreSQL database), its writes
/// marked with `origin` in the journal.
pub fn open_configured_store(config: &Config, origin: &str) -> anyhow::Result<Store> {
    let database = crmsync_engine::store::open_database(&config.crm.database)?;
    Ok(database.store(origin, STORE_RULES)?)
}

/// The mailboxes a command works on: the one `--mailbox` names, or all.
pub fn selected_mailboxes<'c>(
    config: &'c Config,
    only: Option<&str>,
) -> anyhow::Result<Vec<&'c crmsync_config::MailboxConfig>> {
    match only {
        Some(id) => Ok(vec![config.mailbox(id).ok_or_else(|| {
            usage(format!("no mailbox {id:?} in {}", config.path.display()))
        })?]),
        None => Ok(config.mailboxes.iter().collect()),
    }
}

/// The runtime of the one-shot commands that talk to servers.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

pub fn email(text: &str) -> anyhow::Result<EmailAddress> {
    Ok(EmailAddress::new(text)?)
}

pub fn number(text: &str) -> anyhow::Result<RecordNumber> {
    Ok(RecordNumber::new(text)?)
}

pub fn entity(text: &str) -> anyhow::Result<EntityName> {
    Ok(EntityName::new(text)?)
}

/// Splits `KEY=VALUE` arguments, refusing keys not in `known`.
pub fn key_values<'a>(
    changes: &'a [String],
    known: &[&str],
) -> anyhow::Result<Vec<(&'a str, &'a str)>> {
    changes
        .iter()
        .map(|change| {
            let (key, value) = change
                .split_once('=')
                .ok_or_else(|| usage(format!("{change:?} is not KEY=VALUE")))?;
            let key = key.trim();
            if !known.contains(&key) {
                return Err(usage(format!(
                    "unknown field {key:?}: expected one of {}",
                    known.join(", ")
                )));
            }
            Ok((key, value))
        })
        .collect()
}

/// `None` for an empty value (which clears a field), else the trimmed value.
pub fn optional_text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A comma-separated list, empty items dropped.
pub fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}
