//! `crmsync record ...`

use std::path::Path;

use crmsync_store::{
    Connectable, ConnectionStore, NewRecord, RecordChange, RecordRow, RecordStore,
};
use serde_json::json;

use super::{email, entity, key_values, list, number, open_store, optional_text};
use crate::cli::RecordCommand;
use crate::output::{or_dash, print_details, print_json, print_table, record_json, ref_label};
use crate::usage;

const SETTABLE: &[&str] = &[
    "name",
    "email",
    "phone",
    "parent",
    "owner",
    "given_name",
    "family_name",
    "job_title",
    "address",
    "notes",
];

pub fn run(config: &Path, command: RecordCommand) -> anyhow::Result<()> {
    match command {
        RecordCommand::Add {
            entity: entity_name,
            name,
            emails,
            number: wanted_number,
            parent,
            owner,
            output,
        } => {
            let new = NewRecord {
                entity: entity(&entity_name)?,
                name,
                emails: emails.iter().map(|e| email(e)).collect::<Result<_, _>>()?,
                number: wanted_number.as_deref().map(number).transpose()?,
                parent: parent.as_deref().map(number).transpose()?,
                owner: owner.as_deref().map(email).transpose()?,
            };
            let mut store = open_store(config)?;
            let record = store.add_record(&new)?;
            if output.json {
                print_json(&record_json(&record));
            } else {
                println!(
                    "added {} {} {:?}",
                    record.record.entity, record.record.number, record.record.name
                );
            }
        }
        RecordCommand::List {
            entity: entity_name,
            output,
        } => list_records(config, entity_name.as_deref(), output.json)?,
        RecordCommand::Show {
            number: wanted,
            output,
        } => show_record(config, &wanted, output.json)?,
        RecordCommand::Set {
            number: wanted,
            changes,
            output,
        } => {
            let wanted = number(&wanted)?;
            let changes = record_changes(&changes)?;
            let mut store = open_store(config)?;
            let record = store.update_record(&wanted, &changes)?;
            if output.json {
                print_json(&record_json(&record));
            } else {
                print_record(&record);
            }
        }
        RecordCommand::Delete { number: wanted } => {
            let wanted = number(&wanted)?;
            let mut store = open_store(config)?;
            store.delete_record(&wanted)?;
            println!("deleted record {wanted}");
        }
    }
    Ok(())
}

fn list_records(config: &Path, entity_name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let wanted = entity_name.map(entity).transpose()?;
    let store = open_store(config)?;
    let records = store.records(wanted.as_ref())?;
    if json {
        print_json(&records.iter().map(record_json).collect());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.record.number.to_string(),
                r.record.entity.to_string(),
                r.record.name.clone(),
                or_dash(Some(&r.emails.join(", "))),
                r.parent
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.number.to_string()),
                or_dash(r.owner.as_deref()),
            ]
        })
        .collect();
    print_table(
        &["NUMBER", "ENTITY", "NAME", "EMAILS", "PARENT", "OWNER"],
        &rows,
    );
    Ok(())
}

fn show_record(config: &Path, wanted: &str, json: bool) -> anyhow::Result<()> {
    let wanted = number(wanted)?;
    let settings = super::load_config(config)?;
    let store = open_store(config)?;
    let record = store.record(&wanted)?;
    let connections = store.connections_of(&Connectable::Record(wanted.clone()))?;
    let link = settings.crm.link(
        record.record.entity.as_str(),
        &record.record.id.to_string(),
        Some(record.record.number.as_str()),
    );
    if json {
        let mut value = record_json(&record);
        value["web_url"] = json!(link);
        value["connections"] = json!(
            connections
                .iter()
                .map(super::connections::connection_json)
                .collect::<Vec<_>>()
        );
        print_json(&value);
        return Ok(());
    }
    print_record(&record);
    for connection in &connections {
        println!(
            "connection:   {}",
            super::connections::connection_line(connection)
        );
    }
    if let Some(link) = link {
        println!("open in CRM:  {link}");
    }
    Ok(())
}

fn record_changes(changes: &[String]) -> anyhow::Result<Vec<RecordChange>> {
    key_values(changes, SETTABLE)?
        .into_iter()
        .map(|(key, value)| {
            Ok(match key {
                "name" => RecordChange::Name(value.to_owned()),
                "email" => RecordChange::Emails(
                    list(value)
                        .into_iter()
                        .map(email)
                        .collect::<Result<_, _>>()?,
                ),
                "phone" => {
                    RecordChange::Phones(list(value).into_iter().map(str::to_owned).collect())
                }
                "parent" => {
                    RecordChange::Parent(optional_text(value).as_deref().map(number).transpose()?)
                }
                "owner" => {
                    RecordChange::Owner(optional_text(value).as_deref().map(email).transpose()?)
                }
                "given_name" => RecordChange::GivenName(optional_text(value)),
                "family_name" => RecordChange::FamilyName(optional_text(value)),
                "job_title" => RecordChange::JobTitle(optional_text(value)),
                "address" => RecordChange::PostalAddress(optional_text(value)),
                "notes" => RecordChange::Notes(optional_text(value)),
                other => return Err(usage(format!("unknown field {other:?}"))),
            })
        })
        .collect()
}

fn print_record(record: &RecordRow) {
    print_details(&[
        ("number", record.record.number.to_string()),
        ("entity", record.record.entity.to_string()),
        ("name", record.record.name.clone()),
        ("id", record.record.id.to_string()),
        ("emails", or_dash(Some(&record.emails.join(", ")))),
        ("phones", or_dash(Some(&record.phones.join(", ")))),
        ("parent", ref_label(record.parent.as_ref())),
        ("owner", or_dash(record.owner.as_deref())),
        ("given name", or_dash(record.given_name.as_deref())),
        ("family name", or_dash(record.family_name.as_deref())),
        ("job title", or_dash(record.job_title.as_deref())),
        ("address", or_dash(record.postal_address.as_deref())),
        ("notes", or_dash(record.notes.as_deref())),
        ("modified", record.modified.clone()),
    ]);
}
