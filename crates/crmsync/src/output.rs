//! What the CLI prints: the JSON shapes of SPEC section 9, converted by hand from the store's
//! rows, and plain aligned tables for people.

use crmsync_store::{ActivityRow, PartyRow, RecordRef, RecordRow, UserRow};
use serde_json::{Value, json};

pub fn record_ref_json(record: &RecordRef) -> Value {
    json!({
        "entity": record.entity.as_str(),
        "id": record.id.to_string(),
        "number": record.number.as_str(),
        "name": record.name,
    })
}

fn optional_ref_json(record: Option<&RecordRef>) -> Value {
    record.map_or(Value::Null, record_ref_json)
}

pub fn user_json(user: &UserRow) -> Value {
    json!({
        "email": user.email,
        "name": user.record.name,
        "sync": user.sync,
        "id": user.record.id.to_string(),
        "number": user.record.number.as_str(),
    })
}

pub fn record_json(record: &RecordRow) -> Value {
    json!({
        "id": record.record.id.to_string(),
        "entity": record.record.entity.as_str(),
        "number": record.record.number.as_str(),
        "name": record.record.name,
        "emails": record.emails,
        "phones": record.phones,
        "parent": optional_ref_json(record.parent.as_ref()),
        "owner": record.owner,
        "given_name": record.given_name,
        "family_name": record.family_name,
        "job_title": record.job_title,
        "address": record.postal_address,
        "notes": record.notes,
        "version": record.version,
        "created": record.created,
        "modified": record.modified,
    })
}

fn party_json(party: &PartyRow) -> Value {
    json!({
        "role": party.role.as_str(),
        "address": party.address,
        "name": party.display_name,
        "record": optional_ref_json(party.record.as_ref()),
        "candidates": party.candidates.iter().map(record_ref_json).collect::<Vec<_>>(),
    })
}

pub fn activity_json(activity: &ActivityRow) -> Value {
    json!({
        "id": activity.id.to_string(),
        "type": activity.activity_type.as_str(),
        "subject": activity.subject,
        "owner": activity.owner,
        "regarding": optional_ref_json(activity.regarding.as_ref()),
        "parties": activity.parties.iter().map(party_json).collect::<Vec<_>>(),
        "message_id": activity.message_id,
        "direction": activity.direction,
        "sent": activity.sent,
        "received": activity.received,
        "state": activity.state.as_str(),
        "description": activity.description,
        "location": activity.location,
        "start": activity.start,
        "end": activity.end,
        "all_day": activity.all_day,
        "due": activity.due,
        "priority": activity.priority,
        "percent_complete": activity.percent_complete,
        "attachments": activity.attachments.iter().map(|a| json!({
            "name": a.name, "content_type": a.content_type, "size": a.size,
        })).collect::<Vec<_>>(),
        "links": activity.links.iter().map(|l| json!({
            "mailbox": l.mailbox, "kind": l.item_kind, "item": l.item_location, "state": l.state,
        })).collect::<Vec<_>>(),
        "created_by": activity.created_by,
        "version": activity.version,
        "created": activity.created,
        "modified": activity.modified,
    })
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value always serializes")
    );
}

/// Prints rows under headers, each column as wide as its widest cell. Control characters in
/// cells (a subject with a newline) are shown as spaces so that one row stays one line.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let clean = |cell: &str| -> String {
        cell.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `-` for an empty or missing value, in tables and detail views.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "-".to_owned(),
    }
}

pub fn ref_label(record: Option<&RecordRef>) -> String {
    record.map_or_else(|| "-".to_owned(), |r| format!("{} ({})", r.number, r.name))
}

/// Prints `key: value` lines, aligned.
pub fn print_details(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in pairs {
        let label = format!("{key}:");
        println!("{label:<width$} {value}");
    }
}

/// How an address resolved, for people: `contact CON-1001 (Dana)`, `ambiguous: contact
/// CON-1001, contact CON-1002`, or `unresolved`.
pub fn resolution_label(record: Option<&RecordRef>, candidates: &[RecordRef]) -> String {
    match (record, candidates) {
        (Some(record), _) => format!("{} {} ({})", record.entity, record.number, record.name),
        (None, []) => "unresolved".to_owned(),
        (None, candidates) => format!(
            "ambiguous: {}",
            candidates
                .iter()
                .map(|c| format!("{} {}", c.entity, c.number))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
