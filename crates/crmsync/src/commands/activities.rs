//! `crmsync activity ...`

use std::path::Path;

use crmsync_core::model::{ActivityState, ActivityType, PartyRole};
use crmsync_store::{
    ActivityChange, ActivityFilter, ActivityRow, ActivityStore, Connectable, ConnectionStore,
    NewActivity, NewParty, OutboundStore,
};

use crmsync_engine::compose::{Composed, Library, compose};

use super::{email, key_values, number, open_store, optional_text};
use crate::cli::{ActivityCommand, NewActivityArgs};
use crate::output::{
    activity_json, or_dash, print_details, print_json, print_table, ref_label, resolution_label,
};
use crate::{usage, when};

const SETTABLE: &[&str] = &[
    "subject",
    "body",
    "location",
    "start",
    "end",
    "due",
    "state",
    "priority",
    "percent",
    "regarding",
];

pub fn run(config: &Path, command: ActivityCommand) -> anyhow::Result<()> {
    match command {
        ActivityCommand::Add(args) => add(config, *args),
        ActivityCommand::List {
            activity_type,
            mailbox,
            output,
        } => list(config, activity_type, mailbox, output.json),
        ActivityCommand::Show { id, output } => {
            let settings = super::load_config(config)?;
            let store = open_store(config)?;
            let activity = store.activity(store.find_activity(&id)?)?;
            let connections = store.connections_of(&Connectable::Activity(activity.id))?;
            let link = settings.crm.link(
                activity.activity_type.as_str(),
                &activity.id.to_string(),
                None,
            );
            if output.json {
                let mut value = activity_json(&activity);
                value["connections"] = serde_json::json!(
                    connections
                        .iter()
                        .map(super::connections::connection_json)
                        .collect::<Vec<_>>()
                );
                value["web_url"] = serde_json::json!(link);
                print_json(&value);
            } else {
                show(&activity, false);
                for connection in &connections {
                    println!(
                        "related:   {}",
                        super::connections::connection_line(connection)
                    );
                }
                if let Some(link) = link {
                    println!("open in CRM: {link}");
                }
            }
            Ok(())
        }
        ActivityCommand::Set {
            id,
            changes,
            output,
        } => {
            let changes = activity_changes(&changes)?;
            let mut store = open_store(config)?;
            let id = store.find_activity(&id)?;
            let activity = store.update_activity(id, &changes)?;
            show(&activity, output.json);
            Ok(())
        }
        ActivityCommand::Delete { id } => {
            let mut store = open_store(config)?;
            let id = store.find_activity(&id)?;
            store.delete_activity(id)?;
            println!("deleted activity {id}");
            Ok(())
        }
        ActivityCommand::Regarding {
            id,
            number: wanted,
            output,
        } => set_regarding(config, &id, &wanted, output.json),
        ActivityCommand::Convert {
            id,
            kind,
            name,
            output,
        } => {
            let record = super::connections::convert(config, &id, &kind, name)?;
            if output.json {
                print_json(&crate::output::record_json(&record));
            } else {
                println!(
                    "converted into {} {} {:?}: the activity regards it and is connected to it",
                    record.record.entity, record.record.number, record.record.name
                );
            }
            Ok(())
        }
        ActivityCommand::Resend { id, output } => {
            let mut store = open_store(config)?;
            let id = store.find_activity(&id)?;
            let activity = store.resend(id)?;
            if output.json {
                print_json(&activity_json(&activity));
            } else {
                println!("activity {id} is pending-send again: the mailbox's next pass sends it");
            }
            Ok(())
        }
    }
}

/// A time option (`--start`, `--end`, `--due`).
fn time(value: Option<&str>, option: &str) -> anyhow::Result<Option<crmsync_store::When>> {
    Ok(value
        .map(|text| when::parse(text, option))
        .transpose()?
        .flatten())
}

fn add(config: &Path, args: NewActivityArgs) -> anyhow::Result<()> {
    let activity_type = ActivityType::parse(&args.activity_type)?;
    let owner = email(&args.owner)?;
    let recipients = args
        .to
        .iter()
        .map(|a| email(a))
        .collect::<Result<Vec<_>, _>>()?;
    let parties = parties(activity_type, &owner, recipients)?;
    let start = time(args.start.as_deref(), "--start")?;
    if activity_type == ActivityType::Appointment && start.is_none() {
        return Err(usage("an appointment needs --start"));
    }
    let regarding = args.regarding.as_deref().map(number).transpose()?;
    let mut store = open_store(config)?;
    let library = Library {
        template: args.template.as_deref(),
        article: args.article.as_deref(),
        literature: &args.literature,
    };
    let uses_library =
        library.template.is_some() || library.article.is_some() || !library.literature.is_empty();
    if uses_library && activity_type != ActivityType::Email {
        return Err(usage(
            "--template, --article and --literature are for emails",
        ));
    }
    let first_to = parties
        .iter()
        .find(|p| p.role == PartyRole::To)
        .map(|p| p.address.clone());
    let composed = if uses_library {
        compose(
            &store,
            &owner,
            first_to.as_ref(),
            regarding.as_ref(),
            (args.subject.as_deref(), args.body.as_deref()),
            &library,
        )
        .map_err(usage)?
    } else {
        Composed {
            subject: args
                .subject
                .clone()
                .ok_or_else(|| usage("give --subject"))?,
            text: args.body.clone(),
            html: None,
            attachments: Vec::new(),
        }
    };
    let new = NewActivity {
        activity_type,
        owner,
        subject: composed.subject,
        state: None,
        description: composed.text,
        html_body: composed.html,
        attachments: composed.attachments,
        regarding,
        location: args.location,
        start,
        end: time(args.end.as_deref(), "--end")?,
        due: time(args.due.as_deref(), "--due")?,
        parties,
        created_by: "crm".to_owned(),
    };
    let activity = store.add_activity(&new)?;
    if args.output.json {
        print_json(&activity_json(&activity));
    } else {
        println!(
            "added {} {} {:?}, state {}",
            activity.activity_type, activity.id, activity.subject, activity.state
        );
    }
    Ok(())
}

fn list(
    config: &Path,
    activity_type: Option<String>,
    mailbox: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let filter = ActivityFilter {
        activity_type: activity_type
            .as_deref()
            .map(ActivityType::parse)
            .transpose()?,
        mailbox,
    };
    let store = open_store(config)?;
    let activities = store.activities(&filter)?;
    if json {
        print_json(&activities.iter().map(activity_json).collect());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = activities
        .iter()
        .map(|a| {
            let when = a
                .start
                .as_deref()
                .or(a.due.as_deref())
                .or(a.received.as_deref())
                .or(a.sent.as_deref());
            vec![
                a.id.to_string()[..8].to_owned(),
                a.activity_type.to_string(),
                a.state.to_string(),
                or_dash(when),
                a.owner.clone(),
                a.regarding
                    .as_ref()
                    .map_or("-".to_owned(), |r| r.number.to_string()),
                a.subject.clone(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TYPE",
        "STATE",
        "WHEN",
        "OWNER",
        "REGARDING",
        "SUBJECT",
    ];
    print_table(&header, &rows);
    Ok(())
}

fn set_regarding(config: &Path, id: &str, wanted: &str, json: bool) -> anyhow::Result<()> {
    let regarding = match wanted.trim() {
        "none" | "" => None,
        other => Some(number(other)?),
    };
    let mut store = open_store(config)?;
    let id = store.find_activity(id)?;
    let activity = store.update_activity(id, &[ActivityChange::Regarding(regarding)])?;
    if json {
        print_json(&activity_json(&activity));
    } else {
        println!(
            "activity {}: regarding {}",
            activity.id,
            ref_label(activity.regarding.as_ref())
        );
    }
    Ok(())
}

/// The parties of an activity created in the CRM: the owner sends an email and organizes an
/// appointment; `--to` addresses receive the email or attend the appointment.
fn parties(
    activity_type: ActivityType,
    owner: &crmsync_core::model::EmailAddress,
    recipients: Vec<crmsync_core::model::EmailAddress>,
) -> anyhow::Result<Vec<NewParty>> {
    let (owner_role, recipient_role) = match activity_type {
        ActivityType::Email => (PartyRole::From, PartyRole::To),
        ActivityType::Appointment => (PartyRole::Organizer, PartyRole::Required),
        ActivityType::Task => {
            if !recipients.is_empty() {
                return Err(usage(
                    "a task has no recipients: --to is for emails and appointments",
                ));
            }
            return Ok(Vec::new());
        }
    };
    if activity_type == ActivityType::Email && recipients.is_empty() {
        return Err(usage("an email needs at least one --to"));
    }
    let party = |role, address| NewParty {
        group: None,
        role,
        address,
        display_name: None,
    };
    Ok(std::iter::once(party(owner_role, owner.clone()))
        .chain(recipients.into_iter().map(|a| party(recipient_role, a)))
        .collect())
}

fn activity_changes(changes: &[String]) -> anyhow::Result<Vec<ActivityChange>> {
    key_values(changes, SETTABLE)?
        .into_iter()
        .map(|(key, value)| {
            let what = format!("{key}=");
            Ok(match key {
                "subject" => ActivityChange::Subject(value.to_owned()),
                "body" => ActivityChange::Description(optional_text(value)),
                "location" => ActivityChange::Location(optional_text(value)),
                "start" => ActivityChange::Start(when::parse(value, &what)?),
                "end" => ActivityChange::End(when::parse(value, &what)?),
                "due" => ActivityChange::Due(when::parse(value, &what)?),
                "state" => ActivityChange::State(ActivityState::parse(value.trim())?),
                "priority" => ActivityChange::Priority(match optional_text(value) {
                    None => None,
                    Some(text) => Some(text.parse().map_err(|_| {
                        usage(format!(
                            "invalid priority {text:?}: expected a whole number"
                        ))
                    })?),
                }),
                "percent" => ActivityChange::PercentComplete(match optional_text(value) {
                    None => None,
                    Some(text) => Some(text.parse::<u8>().ok().filter(|p| *p <= 100).ok_or_else(
                        || usage(format!("invalid percent {text:?}: expected 0 to 100")),
                    )?),
                }),
                "regarding" => ActivityChange::Regarding(match value.trim() {
                    "" | "none" => None,
                    other => Some(number(other)?),
                }),
                other => return Err(usage(format!("unknown field {other:?}"))),
            })
        })
        .collect()
}

fn show(activity: &ActivityRow, json: bool) {
    if json {
        print_json(&activity_json(activity));
        return;
    }
    print_details(&[
        ("id", activity.id.to_string()),
        ("type", activity.activity_type.to_string()),
        ("subject", activity.subject.clone()),
        ("state", activity.state.to_string()),
        ("owner", activity.owner.clone()),
        ("regarding", ref_label(activity.regarding.as_ref())),
        ("start", or_dash(activity.start.as_deref())),
        ("end", or_dash(activity.end.as_deref())),
        ("due", or_dash(activity.due.as_deref())),
        ("location", or_dash(activity.location.as_deref())),
        ("message id", or_dash(activity.message_id.as_deref())),
        (
            "created",
            format!("{} by {}", activity.created, activity.created_by),
        ),
        ("modified", activity.modified.clone()),
    ]);
    for party in &activity.parties {
        let resolved = resolution_label(party.record.as_ref(), &party.candidates);
        println!(
            "party:     {} {} -> {}",
            party.role, party.address, resolved
        );
    }
    for attachment in &activity.attachments {
        println!(
            "attachment: {} ({}, {} bytes)",
            attachment.name, attachment.content_type, attachment.size
        );
    }
    for link in &activity.links {
        println!(
            "link:      {} {} {} [{}]",
            link.mailbox, link.item_kind, link.item_location, link.state
        );
    }
    if let Some(description) = &activity.description {
        println!();
        println!("{description}");
    }
}
