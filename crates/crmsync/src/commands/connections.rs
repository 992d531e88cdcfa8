//! `crmsync connection ...` and `crmsync activity convert`: the related records of an item.

use std::path::Path;

use crmsync_core::model::{ActivityId, EmailAddress, EntityName, PartyRole, RecordNumber};
use crmsync_store::{
    ActivityStore, Connectable, ConnectedTo, Connection, ConnectionStore, NewRecord, RecordStore,
    Store,
};
use serde_json::{Value, json};

use super::open_store;
use crate::cli::ConnectionCommand;
use crate::output::{print_json, print_table, record_ref_json};

/// A connection's end as people write it: a record number, else an activity id or prefix.
pub fn end(store: &Store, text: &str) -> anyhow::Result<Connectable> {
    if let Ok(number) = RecordNumber::new(text)
        && store.record(&number).is_ok()
    {
        return Ok(Connectable::Record(number));
    }
    Ok(Connectable::Activity(store.find_activity(text).map_err(
        |error| anyhow::anyhow!("{text:?} is neither a record number nor an activity: {error}"),
    )?))
}

pub fn connection_json(connection: &Connection) -> Value {
    let other = match &connection.other {
        ConnectedTo::Record(record) => json!({"record": record_ref_json(record)}),
        ConnectedTo::Activity {
            id,
            activity_type,
            subject,
        } => {
            json!({"activity": {"id": id.to_string(), "type": activity_type.as_str(), "subject": subject}})
        }
    };
    let mut value = other;
    value["role"] = json!(connection.own_role);
    value["other_role"] = json!(connection.other_role);
    value
}

/// One line per connection, for `show` commands.
pub fn connection_line(connection: &Connection) -> String {
    let role = connection
        .other_role
        .as_deref()
        .map_or(String::new(), |role| format!(" ({role})"));
    match &connection.other {
        ConnectedTo::Record(record) => format!("{} {}{role}", record.number, record.name),
        ConnectedTo::Activity {
            id,
            activity_type,
            subject,
        } => format!("{activity_type} {id} {subject:?}{role}"),
    }
}

pub fn run(config: &Path, command: ConnectionCommand) -> anyhow::Result<()> {
    let mut store = open_store(config)?;
    match command {
        ConnectionCommand::Add {
            from,
            to,
            role,
            other_role,
        } => {
            let (one, two) = (end(&store, &from)?, end(&store, &to)?);
            store.connect(&one, role.as_deref(), &two, other_role.as_deref())?;
            println!("connected {from} and {to}");
        }
        ConnectionCommand::List {
            end: wanted,
            output,
        } => {
            let connections = store.connections_of(&end(&store, &wanted)?)?;
            if output.json {
                print_json(&json!(
                    connections.iter().map(connection_json).collect::<Vec<_>>()
                ));
            } else if connections.is_empty() {
                println!("no connections");
            } else {
                let rows: Vec<Vec<String>> = connections
                    .iter()
                    .map(|c| {
                        vec![
                            connection_line(c),
                            c.own_role.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                print_table(&["CONNECTED TO", "OWN ROLE"], &rows);
            }
        }
        ConnectionCommand::Delete { from, to } => {
            let (one, two) = (end(&store, &from)?, end(&store, &to)?);
            match store.disconnect(&one, &two)? {
                0 => anyhow::bail!("{from} and {to} are not connected"),
                n => println!("removed {n} connection(s) between {from} and {to}"),
            }
        }
    }
    Ok(())
}

/// `activity convert ID lead|opportunity|case`: the new record, from the activity.
pub fn convert(
    config: &Path,
    id: &str,
    kind: &str,
    name: Option<String>,
) -> anyhow::Result<crmsync_store::RecordRow> {
    let mut store = open_store(config)?;
    let id: ActivityId = store.find_activity(id)?;
    let activity = store.activity(id)?;
    // The other side of the conversation: the sender of received mail, else the first
    // recipient.
    let owner = activity.owner.to_ascii_lowercase();
    let sender = activity
        .parties
        .iter()
        .find(|p| p.role == PartyRole::From && p.address.to_ascii_lowercase() != owner)
        .or_else(|| activity.parties.iter().find(|p| p.role == PartyRole::To))
        .or_else(|| {
            activity
                .parties
                .iter()
                .find(|p| p.role == PartyRole::Required)
        });
    let contact = sender.and_then(|p| p.record.clone());
    let entity = match kind {
        "lead" => EntityName::new("lead")?,
        "opportunity" => EntityName::new("opportunity")?,
        "case" | "incident" => EntityName::new("incident")?,
        other => {
            return Err(crate::usage(format!(
                "{other:?}: convert into lead, opportunity or case"
            )));
        }
    };
    let parent = match entity.as_str() {
        // A case is for the sender's contact (or account).
        "incident" => contact.as_ref().map(|r| r.number.clone()),
        // An opportunity sits under the sender's account: the contact's parent, or the
        // account the address resolved to.
        "opportunity" => match &contact {
            Some(record) if record.entity.as_str() == "account" => Some(record.number.clone()),
            Some(record) => store.record(&record.number)?.parent.map(|p| p.number),
            None => None,
        },
        _ => None,
    };
    let emails = match entity.as_str() {
        "lead" => sender
            .and_then(|p| EmailAddress::new(&p.address).ok())
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let record = NewRecord {
        entity,
        name: name.unwrap_or_else(|| activity.subject.clone()),
        emails,
        number: None,
        parent,
        owner: EmailAddress::new(&activity.owner).ok(),
    };
    Ok(store.convert_activity(id, &record)?)
}
