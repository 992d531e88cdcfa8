//! Events, tasks and contacts: the CRM side of collection items as field snapshots, and field
//! writes applied to the rows (SPEC section 4). The field names are those of the collection
//! adapter (`docs/collections.md`); moments are canonical (UTC `2026-12-01T09:00:00Z`, or a
//! date for whole days).

use chrono::{DateTime, NaiveDate, Utc};
use crmsync_core::item::ItemKind;
use crmsync_core::link::{CrmRef, ItemCreator, Snapshot};
use crmsync_core::merge::FieldWrite;
use crmsync_core::model::{ActivityId, EmailAddress, EntityName, PartyRole, RecordId};
use crmsync_core::resolve::{Candidate, Resolution};

use super::activities::{insert_parties, regarding_id, update_columns};
use super::records::{insert_record, next_number, replace_emails, replace_phones};
use super::users::user_id_by_email;
use super::{bad_row, parse_uuid};
use crate::sql::{Param, Sql, column, optional, params};
use crate::{CreatedItem, LinkedItem, NewParty, Result, StoreError};

/// A moment as stored by another program (RFC 3339 with any offset, or SQLite's own
/// `YYYY-MM-DD HH:MM:SS`, which is UTC) in the canonical form. Text that is no moment is kept
/// as it is: the collection adapter then leaves the file's property alone.
fn canonical_moment(text: &str) -> String {
    let text = text.trim();
    if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
        return text.to_owned();
    }
    let utc = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return utc(at.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return utc(at.and_utc());
        }
    }
    text.to_owned()
}

/// The fields of an event, task or contact row; `None` when the row is gone.
pub(super) fn item_fields(conn: &mut dyn Sql, crm: CrmRef) -> Result<Option<Snapshot>> {
    let id = crm.uuid().to_string();
    match crm {
        CrmRef::Activity(_) => activity_fields(conn, &id),
        CrmRef::Record(_) => contact_fields(conn, &id),
    }
}

type ActivityColumns = (
    String,
    String,
    [Option<String>; 11],
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn activity_columns(conn: &mut dyn Sql, id: &str) -> Result<Option<ActivityColumns>> {
    let row: Option<ActivityColumns> = conn
        .query_opt(
            "SELECT a.type, a.subject, a.location, a.description, a.start_at, a.end_at,
                    a.time_zone, a.recurrence_rule, a.recurrence_exceptions, a.show_as, a.state,
                    a.due_at, a.completed_at, a.priority, a.percent_complete,
                    (SELECT number FROM records WHERE id = a.regarding_id)
             FROM activities a WHERE a.id = ?1",
            params![id],
        )?
        .map(|row| -> Result<_> {
            Ok((
                row.get(0)?,
                row.get(1)?,
                [
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                    row.get(11)?,
                    row.get(12)?,
                ],
                row.get(13)?,
                row.get(14)?,
                row.get(15)?,
            ))
        })
        .transpose()?;
    Ok(row)
}

fn activity_fields(conn: &mut dyn Sql, id: &str) -> Result<Option<Snapshot>> {
    let Some((kind, subject, columns, priority, percent, regarding)) = activity_columns(conn, id)?
    else {
        return Ok(None);
    };
    let [
        location,
        description,
        start,
        end,
        time_zone,
        rule,
        exceptions,
        show_as,
        state,
        due,
        completed,
    ] = columns;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let moment =
        |value: &Option<String>| value.as_deref().map(canonical_moment).unwrap_or_default();
    let state = state.unwrap_or_default();
    let mut fields = Snapshot::new();
    fields.set("subject", &subject);
    fields.set("description", &text(&description));
    fields.set("start", &moment(&start));
    fields.set("time_zone", &text(&time_zone));
    fields.set(
        "regarding",
        &regarding.unwrap_or_default().to_ascii_uppercase(),
    );
    if kind == "task" {
        fields.set("due", &moment(&due));
        fields.set("completed", &moment(&completed));
        fields.set(
            "priority",
            // Priority 0 is "none" in iCalendar: the same as no priority.
            &priority
                .filter(|p| *p != 0)
                .map(|p| p.to_string())
                .unwrap_or_default(),
        );
        fields.set(
            "percent",
            &percent.map(|p| p.to_string()).unwrap_or_default(),
        );
        let status = match state.as_str() {
            "completed" => "completed",
            "cancelled" => "cancelled",
            _ => "open",
        };
        fields.set("status", status);
        return Ok(Some(fields));
    }
    fields.set("location", &text(&location));
    fields.set("end", &moment(&end));
    fields.set("recurrence", &text(&rule));
    fields.set("exceptions", &text(&exceptions));
    let status = if state == "cancelled" {
        "cancelled".to_owned()
    } else {
        show_as.unwrap_or_else(|| "busy".to_owned())
    };
    fields.set("status", &status);
    party_fields(conn, id, &mut fields)?;
    Ok(Some(fields))
}

/// An appointment's organizer and attendees (lowercase, attendees sorted), as the collection
/// adapter names them.
fn party_fields(conn: &mut dyn Sql, id: &str, fields: &mut Snapshot) -> Result<()> {
    let parties = conn
        .query(
            "SELECT role, address FROM parties WHERE activity_id = ?1 ORDER BY position",
            params![id],
        )?
        .iter()
        .map(|row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut attendees: Vec<String> = Vec::new();
    for (role, address) in parties {
        let address = address.to_ascii_lowercase();
        match role.as_str() {
            "organizer" => fields.set("organizer", &address),
            "required" | "optional" => attendees.push(address),
            _ => {}
        }
    }
    attendees.sort();
    attendees.dedup();
    fields.set("attendees", &attendees.join(","));
    Ok(())
}

fn contact_fields(conn: &mut dyn Sql, id: &str) -> Result<Option<Snapshot>> {
    type Columns = (String, [Option<String>; 6]);
    let row: Option<Columns> = conn
        .query_opt(
            "SELECT r.name, r.given_name, r.family_name, r.job_title, r.postal_address, r.notes,
                    (SELECT p.name FROM records p WHERE p.id = r.parent_id)
             FROM records r WHERE r.id = ?1",
            params![id],
        )?
        .map(|row| -> Result<_> {
            Ok((
                row.get(0)?,
                [
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ],
            ))
        })
        .transpose()?;
    let Some((name, [given, family, title, address, notes, organization])) = row else {
        return Ok(None);
    };
    let text = |value: Option<String>| value.unwrap_or_default();
    let mut fields = Snapshot::new();
    fields.set("name", &name);
    fields.set("given_name", &text(given));
    fields.set("family_name", &text(family));
    fields.set("job_title", &text(title));
    fields.set("address", &text(address));
    fields.set("notes", &text(notes));
    fields.set("organization", &text(organization));
    let mut list = |sql: &str| -> Result<String> {
        let mut values: Vec<String> = column(conn, sql, params![id])?;
        values.sort();
        values.dedup();
        Ok(values.join(","))
    };
    fields.set(
        "emails",
        &list("SELECT lower(address) FROM record_emails WHERE record_id = ?1")?,
    );
    fields.set(
        "phones",
        &list("SELECT number FROM record_phones WHERE record_id = ?1")?,
    );
    Ok(Some(fields))
}

/// The row's version, `None` when it is gone.
pub(super) fn row_version(conn: &mut dyn Sql, crm: CrmRef) -> Result<Option<i64>> {
    let sql = match crm {
        CrmRef::Activity(_) => "SELECT version FROM activities WHERE id = ?1",
        CrmRef::Record(_) => "SELECT version FROM records WHERE id = ?1",
    };
    optional(conn, sql, params![crm.uuid().to_string()])
}

fn optional_text(value: Option<&str>) -> Param<'static> {
    match value {
        Some(text) if !text.is_empty() => Param::owned_text(text.to_owned()),
        _ => Param::Null,
    }
}

fn number(
    field: &str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<i64>,
    warnings: &mut Vec<String>,
) -> Param<'static> {
    match value.map(|v| v.trim().parse::<i64>()) {
        None => Param::Null,
        Some(Ok(n)) if range.contains(&n) => Param::Int(n),
        Some(_) => {
            warnings.push(format!(
                "{field} {:?} is not a number from {} to {}: left empty in the CRM",
                value.unwrap_or(""),
                range.start(),
                range.end()
            ));
            Param::Null
        }
    }
}

/// Applies field writes to an appointment or task row.
pub(super) fn write_activity(
    conn: &mut dyn Sql,
    id: ActivityId,
    writes: &[FieldWrite],
    warnings: &mut Vec<String>,
    resolve: Resolve,
) -> Result<()> {
    let key = id.to_string();
    let (kind, state): (String, String) = conn
        .query_opt(
            "SELECT type, state FROM activities WHERE id = ?1",
            params![&key],
        )?
        .ok_or_else(|| crate::StoreError::NotFound(format!("activity {id}")))
        .and_then(|row| -> Result<_> { Ok((row.get(0)?, row.get(1)?)) })?;
    let task = kind == "task";
    let mut columns: Vec<(&str, Param<'static>)> = Vec::new();
    for write in writes {
        let value = write.value.as_deref();
        match write.field.as_str() {
            "subject" => {
                columns.push(("subject", Param::owned_text(value.unwrap_or("").to_owned())))
            }
            "description" => columns.push(("description", optional_text(value))),
            "location" => columns.push(("location", optional_text(value))),
            "time_zone" => columns.push(("time_zone", optional_text(value))),
            "recurrence" => columns.push(("recurrence_rule", optional_text(value))),
            "exceptions" => columns.push(("recurrence_exceptions", optional_text(value))),
            "start" => {
                columns.push(("start_at", optional_text(value)));
                let day = value.is_some_and(|v| v.len() == 10);
                columns.push(("all_day", Param::Int(i64::from(day))));
            }
            "end" => columns.push(("end_at", optional_text(value))),
            "due" => columns.push(("due_at", optional_text(value))),
            "completed" => columns.push(("completed_at", optional_text(value))),
            "priority" => columns.push(("priority", number("priority", value, 0..=9, warnings))),
            "percent" => columns.push((
                "percent_complete",
                number("percent complete", value, 0..=100, warnings),
            )),
            "status" => columns.extend(status_columns(task, &state, value)),
            "regarding" => {
                let number = regarding_number(value, warnings);
                let (regarding, warning) = regarding_id(conn, number.as_ref())?;
                warnings.extend(warning);
                columns.push((
                    "regarding_id",
                    regarding.map_or(Param::Null, Param::owned_text),
                ));
            }
            "organizer" => replace_parties(
                conn,
                (id, resolve),
                &["organizer"],
                PartyRole::Organizer,
                value,
                warnings,
            )?,
            "attendees" => replace_parties(
                conn,
                (id, resolve),
                &["required", "optional"],
                PartyRole::Required,
                value,
                warnings,
            )?,
            _ => {}
        }
    }
    update_columns(conn, "activities", &key, columns)
}

/// The columns a `status` value sets: a task's state; an appointment's free/busy (`show_as`),
/// or its cancellation (a status other than cancelled reopens a cancelled one).
fn status_columns(
    task: bool,
    state: &str,
    value: Option<&str>,
) -> Vec<(&'static str, Param<'static>)> {
    if task {
        let state = match value {
            Some("completed") => "completed",
            Some("cancelled") => "cancelled",
            _ => "open",
        };
        return vec![("state", Param::owned_text(state.to_owned()))];
    }
    if value == Some("cancelled") {
        return vec![("state", Param::owned_text("cancelled"))];
    }
    let mut columns = Vec::new();
    if state == "cancelled" {
        columns.push(("state", Param::owned_text("open")));
    }
    let show_as = match value {
        Some("tentative") => "tentative",
        Some("free") => "free",
        _ => "busy",
    };
    columns.push(("show_as", Param::owned_text(show_as.to_owned())));
    columns
}

/// An `X-CRM-REGARDING` value as a record number; one that is none is a warning.
fn regarding_number(
    value: Option<&str>,
    warnings: &mut Vec<String>,
) -> Option<crmsync_core::model::RecordNumber> {
    match crmsync_core::model::RecordNumber::new(value?) {
        Ok(number) => Some(number),
        Err(error) => {
            warnings.push(format!("X-CRM-REGARDING: {error}"));
            None
        }
    }
}

/// The resolution rule of the store's `Rules`.
pub(super) type Resolve = fn(&[Candidate]) -> Resolution;

fn replace_parties(
    conn: &mut dyn Sql,
    (id, resolve): (ActivityId, Resolve),
    roles: &[&str],
    role: PartyRole,
    value: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    for old in roles {
        conn.execute(
            "DELETE FROM parties WHERE activity_id = ?1 AND role = ?2",
            params![id.to_string(), old],
        )?;
    }
    let mut parties = Vec::new();
    for address in value.unwrap_or("").split(',').filter(|a| !a.is_empty()) {
        match EmailAddress::new(address) {
            Ok(address) => parties.push(NewParty {
                role,
                address,
                display_name: None,
                group: None,
            }),
            Err(error) => warnings.push(format!("{}: {error}", role.as_str())),
        }
    }
    insert_parties(conn, id, &parties, resolve)
}

/// Applies field writes to a contact record. The organisation is the parent account, found by
/// name (case-insensitively) or created, owned by `owner`.
pub(super) fn write_contact(
    conn: &mut dyn Sql,
    id: RecordId,
    owner: &EmailAddress,
    writes: &[FieldWrite],
    warnings: &mut Vec<String>,
) -> Result<()> {
    let key = id.to_string();
    let mut columns: Vec<(&str, Param<'static>)> = Vec::new();
    for write in writes {
        let value = write.value.as_deref();
        match write.field.as_str() {
            "name" => match value.map(str::trim).filter(|v| !v.is_empty()) {
                Some(name) => columns.push(("name", Param::owned_text(name.to_owned()))),
                None => warnings.push("a contact without a name keeps its CRM name".into()),
            },
            "given_name" => columns.push(("given_name", optional_text(value))),
            "family_name" => columns.push(("family_name", optional_text(value))),
            "job_title" => columns.push(("job_title", optional_text(value))),
            "address" => columns.push(("postal_address", optional_text(value))),
            "notes" => columns.push(("notes", optional_text(value))),
            "emails" => {
                let mut emails = Vec::new();
                for address in value.unwrap_or("").split(',').filter(|a| !a.is_empty()) {
                    match EmailAddress::new(address) {
                        Ok(address) => emails.push(address),
                        Err(error) => warnings.push(format!("EMAIL: {error}")),
                    }
                }
                replace_emails(conn, &key, &emails)?;
            }
            "phones" => {
                let phones: Vec<String> = value
                    .unwrap_or("")
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                replace_phones(conn, &key, &phones)?;
            }
            "organization" => {
                let parent = match value.map(str::trim).filter(|v| !v.is_empty()) {
                    Some(name) => account_named(conn, name, owner, warnings)?,
                    None => None,
                };
                columns.push(("parent_id", parent.map_or(Param::Null, Param::owned_text)));
            }
            _ => {}
        }
    }
    update_columns(conn, "records", &key, columns)
}

/// The account of that name, created when there is none. Several accounts of the name: none is
/// chosen, and the warning says so.
fn account_named(
    conn: &mut dyn Sql,
    name: &str,
    owner: &EmailAddress,
    warnings: &mut Vec<String>,
) -> Result<Option<String>> {
    let found = conn
        .query(
            "SELECT id, number FROM records WHERE entity = 'account' AND lower(name) = lower(?1)
         ORDER BY number LIMIT 3",
            params![name],
        )?
        .iter()
        .map(|row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)))
        .collect::<Result<Vec<_>>>()?;
    match found.as_slice() {
        [(id, _)] => Ok(Some(id.clone())),
        [] => {
            let entity = EntityName::new("account")?;
            let number = next_number(conn, &entity)?;
            let owner_id = user_id_by_email(conn, owner)?;
            Ok(Some(insert_record(
                conn,
                &entity,
                &number,
                name,
                None,
                Some(&owner_id),
            )?))
        }
        several => {
            let numbers: Vec<&str> = several.iter().map(|(_, n)| n.as_str()).collect();
            warnings.push(format!(
                "organisation {name:?} matches several accounts ({}): the contact gets no parent account",
                numbers.join(", ")
            ));
            Ok(None)
        }
    }
}

/// Creates the CRM row of a newly tracked item (without its link).
pub(super) fn insert_item(
    conn: &mut dyn Sql,
    crm: CrmRef,
    item: &crate::NewItem,
    warnings: &mut Vec<String>,
    resolve: Resolve,
) -> Result<()> {
    let owner_id = user_id_by_email(conn, &item.owner)?;
    let writes: Vec<FieldWrite> = item
        .fields
        .fields()
        .map(|(field, value)| FieldWrite {
            field: field.to_owned(),
            value: Some(value.to_owned()),
        })
        .collect();
    match (crm, item.kind) {
        (CrmRef::Activity(id), ItemKind::Event | ItemKind::Task) => {
            let kind = if item.kind == ItemKind::Task {
                "task"
            } else {
                "appointment"
            };
            conn.execute(
                "INSERT INTO activities (id, type, owner_id, subject, state, created_by, uid)
                 VALUES (?1, ?2, ?3, '', 'open', ?4, ?5)",
                params![id.to_string(), kind, owner_id, item.mailbox, item.uid],
            )?;
            write_activity(conn, id, &writes, warnings, resolve)
        }
        (CrmRef::Record(id), ItemKind::Contact) => {
            let fields = &item.fields;
            let name = fields
                .get("name")
                .map(str::to_owned)
                .or_else(|| {
                    let parts: Vec<&str> = [fields.get("given_name"), fields.get("family_name")]
                        .into_iter()
                        .flatten()
                        .collect();
                    (!parts.is_empty()).then(|| parts.join(" "))
                })
                .or_else(|| {
                    fields
                        .get("emails")
                        .and_then(|e| e.split(',').next())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| item.uid.clone());
            let entity = EntityName::new("contact")?;
            let number = next_number(conn, &entity)?;
            conn.execute(
                "INSERT INTO records (id, entity, number, name, owner_id, uid)
                 VALUES (?1, 'contact', ?2, ?3, ?4, ?5)",
                params![id.to_string(), number.as_str(), name, owner_id, item.uid],
            )?;
            let writes: Vec<FieldWrite> =
                writes.into_iter().filter(|w| w.field != "name").collect();
            write_contact(conn, id, &item.owner, &writes, warnings)
        }
        _ => Err(crmsync_core::model::InvalidValue(format!(
            "a {} cannot be copied to this kind of CRM row",
            item.kind
        ))
        .into()),
    }
}

/// The CRM row copying the item with this UID: one with that UID, or (for an item crmsync
/// wrote for a CRM-created row) the row whose id is the UID. The item counts as created by the
/// CRM only when it is that: a row created in the CRM, owned by `owner`, whose id is the UID
/// (the same event reaching another person as an invitation is theirs).
pub(super) fn by_uid(
    conn: &mut dyn Sql,
    kind: ItemKind,
    uid: &str,
    owner: &EmailAddress,
) -> Result<Option<(CrmRef, ItemCreator)>> {
    // The activity type, or a contact record.
    let activity_type = match kind {
        ItemKind::Event => Some("appointment"),
        ItemKind::Task => Some("task"),
        ItemKind::Contact => None,
        ItemKind::Email => return Ok(None),
    };
    let activity = activity_type.is_some();
    // `|| ''` keeps SQLite off the type and entity indexes: on those it would read every
    // contact (or appointment) for each item tracked, and a first import of 100,000 items would
    // take minutes; on the UID and id indexes it reads one or two rows. (`+a.type`, SQLite's
    // own idiom, is no text operator in PostgreSQL.)
    let sql = if activity {
        "SELECT a.id, a.created_by = 'crm' AND u.email = ?2 COLLATE NOCASE
         FROM activities a LEFT JOIN users u ON u.record_id = a.owner_id
         WHERE a.type || '' = ?3 AND (a.uid = ?1 OR a.id = lower(?1))
         ORDER BY a.uid IS NULL LIMIT 1"
    } else {
        "SELECT r.id, u.email = ?2 COLLATE NOCASE
         FROM records r LEFT JOIN users u ON u.record_id = r.owner_id
         WHERE r.entity || '' = 'contact' AND CAST(?3 AS TEXT) IS NULL AND (r.uid = ?1 OR r.id = lower(?1))
         ORDER BY r.uid IS NULL LIMIT 1"
    };
    let found: Option<(String, Option<bool>)> = conn
        .query_opt(sql, params![uid, owner.as_str(), activity_type])?
        .map(|row| -> Result<_> { Ok((row.get(0)?, row.get(1)?)) })
        .transpose()?;
    let Some((id, crm_owned)) = found else {
        return Ok(None);
    };
    let table = if activity { "activities" } else { "records" };
    let id = parse_uuid(table, &id)?;
    let crm = if activity {
        CrmRef::Activity(ActivityId(id))
    } else {
        CrmRef::Record(RecordId(id))
    };
    let creator = if crm_owned == Some(true) && id.to_string() == uid.to_ascii_lowercase() {
        ItemCreator::Crm
    } else {
        ItemCreator::Mailbox
    };
    Ok(Some((crm, creator)))
}

/// Records the UID on a row that has none yet.
pub(super) fn set_uid(conn: &mut dyn Sql, crm: CrmRef, uid: &str) -> Result<()> {
    let sql = match crm {
        CrmRef::Activity(_) => "UPDATE activities SET uid = ?2 WHERE id = ?1 AND uid IS NULL",
        CrmRef::Record(_) => "UPDATE records SET uid = ?2 WHERE id = ?1 AND uid IS NULL",
    };
    conn.execute(sql, params![crm.uuid().to_string(), uid])?;
    Ok(())
}

/// The version and owner of every event, task and contact row a mailbox's links point at.
pub(super) fn linked(
    conn: &mut dyn Sql,
    mailbox: &str,
) -> Result<std::collections::HashMap<CrmRef, LinkedItem>> {
    let rows = conn
        .query("SELECT l.crm_kind, l.crm_id, COALESCE(a.version, r.version), COALESCE(ua.email, ur.email)
         FROM sync_links l
         LEFT JOIN activities a ON l.crm_kind = 'activity' AND a.id = l.crm_id
         LEFT JOIN users ua ON ua.record_id = a.owner_id
         LEFT JOIN records r ON l.crm_kind = 'record' AND r.id = l.crm_id
         LEFT JOIN users ur ON ur.record_id = r.owner_id
         WHERE l.mailbox = ?1 AND l.item_kind <> 'email' AND (a.id IS NOT NULL OR r.id IS NOT NULL)", params![mailbox])?
        .iter()
        .map(|row| {
            Ok((
                row.get::<String>(0)?,
                row.get::<String>(1)?,
                row.get::<i64>(2)?,
                row.get::<Option<String>>(3)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut linked = std::collections::HashMap::new();
    for (kind, id, version, owner) in rows {
        let crm = match kind.as_str() {
            "activity" => CrmRef::Activity(ActivityId(parse_uuid("sync_links", &id)?)),
            "record" => CrmRef::Record(RecordId(parse_uuid("sync_links", &id)?)),
            other => return Err(bad_row("sync_links", &id, format!("crm_kind {other:?}"))),
        };
        linked.insert(crm, LinkedItem { owner, version });
    }
    Ok(linked)
}

/// The version and owner of one appointment, task or contact row (`None` when it is gone).
pub(super) fn linked_one(conn: &mut dyn Sql, crm: CrmRef) -> Result<Option<LinkedItem>> {
    let sql = match crm {
        CrmRef::Activity(_) => {
            "SELECT a.version, u.email FROM activities a LEFT JOIN users u ON u.record_id = a.owner_id
             WHERE a.id = ?1"
        }
        CrmRef::Record(_) => {
            "SELECT r.version, u.email FROM records r LEFT JOIN users u ON u.record_id = r.owner_id
             WHERE r.id = ?1"
        }
    };
    conn.query_opt(sql, params![crm.uuid().to_string()])?
        .map(|row| -> Result<_> {
            Ok(LinkedItem {
                version: row.get(0)?,
                owner: row.get(1)?,
            })
        })
        .transpose()
}

/// The rows that belong in the owner's collections and have no link from the mailbox:
/// appointments and tasks created in the CRM for the owner (`calendar`), contact records the
/// owner owns (`contacts`).
pub(super) fn created(
    conn: &mut dyn Sql,
    mailbox: &str,
    owner: &EmailAddress,
    calendar: bool,
    contacts: bool,
) -> Result<Vec<CreatedItem>> {
    let owner_id = match user_id_by_email(conn, owner) {
        Ok(id) => id,
        Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
        Err(other) => return Err(other),
    };
    let mut rows: Vec<(ItemKind, CrmRef, String, i64)> = Vec::new();
    if calendar {
        let found = conn
            .query(
                "SELECT id, type, COALESCE(uid, id), version FROM activities a
             WHERE owner_id = ?1 AND type IN ('appointment', 'task') AND created_by = 'crm'
               AND NOT EXISTS (SELECT 1 FROM sync_links l WHERE l.mailbox = ?2
                               AND l.crm_kind = 'activity' AND l.crm_id = a.id)
             ORDER BY created, id",
                params![owner_id, mailbox],
            )?
            .iter()
            .map(|row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<String>(2)?,
                    row.get::<i64>(3)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        for (id, kind, uid, version) in found {
            let kind = if kind == "task" {
                ItemKind::Task
            } else {
                ItemKind::Event
            };
            let crm = CrmRef::Activity(ActivityId(parse_uuid("activities", &id)?));
            rows.push((kind, crm, uid, version));
        }
    }
    if contacts {
        let found = conn
            .query(
                "SELECT id, COALESCE(uid, id), version FROM records r
             WHERE owner_id = ?1 AND entity = 'contact'
               AND NOT EXISTS (SELECT 1 FROM sync_links l WHERE l.mailbox = ?2
                               AND l.crm_kind = 'record' AND l.crm_id = r.id)
             ORDER BY created, id",
                params![owner_id, mailbox],
            )?
            .iter()
            .map(|row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<i64>(2)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        for (id, uid, version) in found {
            let crm = CrmRef::Record(RecordId(parse_uuid("records", &id)?));
            rows.push((ItemKind::Contact, crm, uid, version));
        }
    }
    let mut items = Vec::new();
    for (kind, crm, uid, version) in rows {
        if let Some(fields) = item_fields(conn, crm)? {
            items.push(CreatedItem {
                kind,
                crm,
                uid,
                fields,
                version,
            });
        }
    }
    Ok(items)
}
