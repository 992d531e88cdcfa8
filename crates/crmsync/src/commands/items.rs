//! `crmsync item show`: the tracking pane of one message, event, task or contact.

use std::path::Path;

use crmsync_core::model::PartyRole;
use crmsync_engine::item::{AddressResolution, ItemPane, Locator, PaneAddress, item_pane};
use crmsync_store::{Connectable, ConnectionStore, RecordRef};
use serde_json::{Value, json};

use super::{CLI_ORIGIN, load_config, runtime, selected_mailboxes};
use crate::cli::ItemCommand;
use crate::output::{
    activity_json, print_details, print_json, record_ref_json, ref_label, resolution_label,
};
use crate::usage;

pub fn run(config_path: &Path, command: ItemCommand) -> anyhow::Result<()> {
    let ItemCommand::Show {
        mailbox,
        message_id,
        uid,
        href,
        output,
    } = command;
    let locator = match (message_id, uid) {
        _ if href.is_some() => Locator::Href(href.unwrap_or_default()),
        (Some(message_id), None) => {
            Locator::MessageId(message_id.trim().trim_matches(['<', '>']).to_owned())
        }
        (None, Some(uid)) => {
            let (folder, number) = uid.rsplit_once(':').ok_or_else(|| {
                usage(format!(
                    "--uid {uid:?}: expected FOLDER:UID, such as INBOX:42"
                ))
            })?;
            let number = number
                .parse()
                .map_err(|_| usage(format!("--uid {uid:?}: {number:?} is not a UID")))?;
            Locator::Uid {
                folder: folder.to_owned(),
                uid: number,
            }
        }
        _ => return Err(usage("give --message-id, --uid or --href")),
    };
    let config = load_config(config_path)?;
    let mailbox = selected_mailboxes(&config, Some(&mailbox))?[0];
    let store = super::open_configured_store(&config, CLI_ORIGIN)?;
    let runtime = runtime()?;
    let pane = runtime
        .block_on(item_pane(&store, mailbox, &locator))
        .map_err(anyhow::Error::msg)?;
    // The related records of what the item is in the CRM, and where to open it there.
    let (end, link) = match (&pane.activity, &pane.record) {
        (Some(activity), _) => (
            Some(Connectable::Activity(activity.id)),
            config.crm.link(
                activity.activity_type.as_str(),
                &activity.id.to_string(),
                None,
            ),
        ),
        (None, Some(record)) => (
            Some(Connectable::Record(record.number.clone())),
            config.crm.link(
                record.entity.as_str(),
                &record.id.to_string(),
                Some(record.number.as_str()),
            ),
        ),
        (None, None) => (None, None),
    };
    let connections = match &end {
        Some(end) => store.connections_of(end)?,
        None => Vec::new(),
    };
    if output.json {
        let mut value = pane_json(&pane);
        value["connections"] = json!(
            connections
                .iter()
                .map(super::connections::connection_json)
                .collect::<Vec<_>>()
        );
        value["web_url"] = json!(link);
        print_json(&value);
    } else {
        print_pane(&pane);
        for connection in &connections {
            println!(
                "related:    {}",
                super::connections::connection_line(connection)
            );
        }
        if let Some(link) = link {
            println!("open in CRM: {link}");
        }
    }
    Ok(())
}

fn resolution_json(resolution: &AddressResolution) -> (Value, Value) {
    match resolution {
        AddressResolution::Resolved(record) => (record_ref_json(record), json!([])),
        AddressResolution::Ambiguous(candidates) => (
            Value::Null,
            json!(candidates.iter().map(record_ref_json).collect::<Vec<_>>()),
        ),
        AddressResolution::Unresolved => (Value::Null, json!([])),
    }
}

fn pane_json(pane: &ItemPane) -> Value {
    let optional =
        |record: &Option<RecordRef>| record.as_ref().map_or(Value::Null, record_ref_json);
    json!({
        "mailbox": pane.mailbox,
        "tracked": pane.tracked,
        "location": pane.location,
        "message_id": pane.message_id,
        "keywords": pane.keywords,
        "regarding": optional(&pane.regarding),
        "regarding_parent": optional(&pane.regarding_parent),
        "addresses": pane.addresses.iter().map(|a| {
            let (record, candidates) = resolution_json(&a.resolution);
            json!({
                "role": a.role.as_str(),
                "address": a.address,
                "name": a.name,
                "group": a.group,
                "record": record,
                "candidates": candidates,
            })
        }).collect::<Vec<_>>(),
        "activity": pane.activity.as_ref().map_or(Value::Null, activity_json),
        "record": optional(&pane.record),
        "link_state": pane.link_state,
        "notes": pane.notes,
    })
}

fn print_pane(pane: &ItemPane) {
    let tracked = match &pane.link_state {
        Some(state) => format!("yes (link {state})"),
        None => "no".to_owned(),
    };
    let collection_item = pane
        .location
        .as_deref()
        .is_some_and(|l| l.starts_with("calendar/") || l.starts_with("contacts/"));
    let signal = if pane.keywords.is_empty() {
        "-".into()
    } else {
        pane.keywords.join(if collection_item { "," } else { " " })
    };
    let mut details = vec![
        ("mailbox", pane.mailbox.clone()),
        ("tracked", tracked),
        (
            "location",
            pane.location.clone().unwrap_or_else(|| "-".into()),
        ),
    ];
    if collection_item {
        details.push(("categories", signal));
    } else {
        details.push((
            "message id",
            pane.message_id.clone().unwrap_or_else(|| "-".into()),
        ));
        details.push(("keywords", signal));
    }
    if let Some(activity) = &pane.activity {
        details.push((
            "activity",
            format!(
                "{} {:?} ({}, {}), owner {}",
                activity.id,
                activity.subject,
                activity.activity_type,
                activity.state,
                activity.owner
            ),
        ));
    }
    if let Some(record) = &pane.record {
        details.push(("record", ref_label(Some(record))));
    }
    details.push(("regarding", ref_label(pane.regarding.as_ref())));
    details.push(("parent", ref_label(pane.regarding_parent.as_ref())));
    print_details(&details);
    print_addresses(&pane.addresses);
    for note in &pane.notes {
        println!("note:       {note}");
    }
}

/// One line per address, `Name <address> -> record`; the members of a group (`To: Team:
/// a@x, b@y;`) under a line that names the group as the message wrote it.
fn print_addresses(addresses: &[PaneAddress]) {
    let mut previous: Option<(PartyRole, &str)> = None;
    for address in addresses {
        let role = format!("{}:", address.role);
        let group = address.group.as_deref();
        if let Some(name) = group
            && previous != Some((address.role, name))
        {
            let members: Vec<&str> = addresses
                .iter()
                .filter(|a| a.role == address.role && a.group.as_deref() == Some(name))
                .map(|a| a.address.as_str())
                .collect();
            println!("{role:<11} {name}: {};", members.join(", "));
        }
        previous = group.map(|name| (address.role, name));
        let resolved = match &address.resolution {
            AddressResolution::Resolved(record) => resolution_label(Some(record), &[]),
            AddressResolution::Ambiguous(candidates) => resolution_label(None, candidates),
            AddressResolution::Unresolved => resolution_label(None, &[]),
        };
        let shown = match &address.name {
            Some(name) => format!("{name} <{}>", address.address),
            None => address.address.clone(),
        };
        let label = if group.is_some() { String::new() } else { role };
        let indent = if group.is_some() { "  " } else { "" };
        println!("{label:<11} {indent}{shown} -> {resolved}");
    }
}
