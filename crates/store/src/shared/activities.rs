//! Activities with their parties and attachments: loading, adding, changing, deleting them as a CRM user would.

use crmsync_core::model::{
    ActivityId, ActivityState, ActivityType, InvalidValue, PartyRole, RecordNumber,
};
use crmsync_core::resolve::{Candidate, Resolution};

use super::Backend;
use super::records::{
    RECORD_REF_COLUMNS, candidates_for, raw_record_ref, record_ref_by_id, record_ref_by_number,
    record_ref_from,
};
use super::users::user_id_by_email;
use super::{bad_row, parse_field, parse_uuid};
use crate::ActivityStore;
use crate::sql::{Param, Sql, optional, params, value};
use crate::{
    ActivityChange, ActivityFilter, ActivityRow, AttachmentInfo, LinkSummary, NewActivity,
    PartyRow, Result, StoreError,
};

pub(super) fn load_activity(conn: &mut dyn Sql, id: ActivityId) -> Result<ActivityRow> {
    let id_text = id.to_string();
    let row = conn.query_opt(
        "SELECT a.type, u.email, a.regarding_id, a.subject, a.state, a.description,
                    a.message_id, a.direction, a.location, a.start_at, a.end_at, a.all_day,
                    a.due_at, a.priority, a.percent_complete, a.created_by, a.version,
                    a.created, a.modified, a.sent_at, a.received_at
             FROM activities a LEFT JOIN users u ON u.record_id = a.owner_id
             WHERE a.id = ?1",
        params![&id_text],
    )?;
    let row = row
        .map(|row| -> Result<_> {
            Ok((
                row.get::<String>(0)?,
                row.get::<Option<String>>(1)?,
                row.get::<Option<String>>(2)?,
                ActivityRow {
                    id,
                    activity_type: ActivityType::Email,
                    owner: String::new(),
                    regarding: None,
                    subject: row.get(3)?,
                    state: ActivityState::Open,
                    description: row.get(5)?,
                    message_id: row.get(6)?,
                    direction: row.get(7)?,
                    sent: row.get(19)?,
                    received: row.get(20)?,
                    location: row.get(8)?,
                    start: row.get(9)?,
                    end: row.get(10)?,
                    all_day: row.get(11)?,
                    due: row.get(12)?,
                    priority: row.get(13)?,
                    percent_complete: row.get(14)?,
                    parties: Vec::new(),
                    attachments: Vec::new(),
                    links: Vec::new(),
                    created_by: row.get(15)?,
                    version: row.get(16)?,
                    created: row.get(17)?,
                    modified: row.get(18)?,
                },
                row.get::<String>(4)?,
            ))
        })
        .transpose()?;
    let Some((activity_type, owner, regarding_id, mut activity, state)) = row else {
        return Err(StoreError::NotFound(format!("activity {id}")));
    };
    activity.activity_type =
        parse_field("activities", &id_text, ActivityType::parse(&activity_type))?;
    activity.state = parse_field("activities", &id_text, ActivityState::parse(&state))?;
    activity.owner =
        owner.ok_or_else(|| bad_row("activities", &id_text, "owner_id names no user"))?;
    activity.regarding = match regarding_id {
        Some(regarding_id) => Some(
            record_ref_by_id(conn, &regarding_id)
                .map_err(|_| bad_row("activities", &id_text, "regarding_id names no record"))?,
        ),
        None => None,
    };
    activity.parties = load_parties(conn, &id_text)?;
    activity.attachments = load_attachments(conn, &id_text)?;
    activity.links = load_link_summaries(conn, &id_text)?;
    Ok(activity)
}

/// The attachments of an activity, without their content.
fn load_attachments(conn: &mut dyn Sql, id: &str) -> Result<Vec<AttachmentInfo>> {
    conn.query(
        "SELECT name, content_type, size FROM attachments WHERE activity_id = ?1 ORDER BY position",
        params![id],
    )?
    .iter()
    .map(|row| {
        Ok(AttachmentInfo {
            name: row.get(0)?,
            content_type: row.get(1)?,
            size: row.get(2)?,
        })
    })
    .collect()
}

/// Where an activity is linked: each mailbox's item and the link's state.
fn load_link_summaries(conn: &mut dyn Sql, id: &str) -> Result<Vec<LinkSummary>> {
    conn.query(
        "SELECT mailbox, item_kind, item_location, state FROM sync_links
         WHERE crm_kind = 'activity' AND crm_id = ?1 ORDER BY mailbox, id",
        params![id],
    )?
    .iter()
    .map(|row| {
        Ok(LinkSummary {
            mailbox: row.get(0)?,
            item_kind: row.get(1)?,
            item_location: row.get(2)?,
            state: row.get(3)?,
        })
    })
    .collect()
}

pub(super) fn load_parties(conn: &mut dyn Sql, activity_id: &str) -> Result<Vec<PartyRow>> {
    let rows = conn.query(
        &format!(
            "SELECT pa.id, pa.role, pa.address, pa.display_name, pa.group_name, {RECORD_REF_COLUMNS}
             FROM parties pa LEFT JOIN records r ON r.id = pa.record_id
             WHERE pa.activity_id = ?1 ORDER BY pa.position"
        ),
        params![activity_id],
    )?;
    let mut parties = Vec::new();
    let mut party_ids = Vec::new();
    for row in rows {
        let role: String = row.get(1)?;
        party_ids.push(row.get::<i64>(0)?);
        parties.push(PartyRow {
            role: parse_field("parties", activity_id, PartyRole::parse(&role))?,
            address: row.get(2)?,
            display_name: row.get(3)?,
            group: row.get(4)?,
            record: raw_record_ref(&row, 5)?.map(record_ref_from).transpose()?,
            candidates: Vec::new(),
        });
    }
    let candidates = format!(
        "SELECT {RECORD_REF_COLUMNS} FROM party_candidates c JOIN records r ON r.id = c.record_id
         WHERE c.party_id = ?1 ORDER BY r.number"
    );
    for (party, party_id) in parties.iter_mut().zip(party_ids) {
        for row in conn.query(&candidates, params![party_id])? {
            if let Some(raw) = raw_record_ref(&row, 0)? {
                party.candidates.push(record_ref_from(raw)?);
            }
        }
    }
    Ok(parties)
}

/// A count of rows that point at a record, for a refusal clearer than the trigger's.
pub(super) fn count(conn: &mut dyn Sql, sql: &str, id: &str) -> Result<i64> {
    value(conn, sql, params![id])
}

/// `1 activity`, `2 activities`.
pub(super) fn how_many(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

pub(super) fn when_value(when: Option<crate::When>) -> Param<'static> {
    match when {
        Some(when) => Param::owned_text(when.to_storage()),
        None => Param::Null,
    }
}

pub(super) fn text_value(text: &Option<String>) -> Param<'static> {
    match text {
        Some(text) => Param::owned_text(text.clone()),
        None => Param::Null,
    }
}

/// Inserts the parties of an activity, each resolved to a record (SPEC section 4).
/// Adds parties after the activity's existing ones.
pub(super) fn insert_attachments(
    conn: &mut dyn Sql,
    id: ActivityId,
    attachments: &[crate::NewAttachment],
) -> Result<()> {
    for (position, attachment) in attachments.iter().enumerate() {
        conn.execute(
            "INSERT INTO attachments (activity_id, position, name, content_type, size, content)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id.to_string(),
                position as i64,
                attachment.name,
                attachment.content_type,
                attachment.content.len() as i64,
                attachment.content
            ],
        )?;
    }
    Ok(())
}

/// An activity's HTML body and attachments with their content, as a message is composed.
pub(super) fn load_contents(
    conn: &mut dyn Sql,
    id: ActivityId,
) -> Result<(Option<String>, Vec<crate::NewAttachment>)> {
    let html: Option<String> = optional::<Option<String>>(
        conn,
        "SELECT html_body FROM activities WHERE id = ?1",
        params![id.to_string()],
    )?
    .ok_or_else(|| StoreError::NotFound(format!("activity {id}")))?;
    let attachments = conn
        .query(
            "SELECT name, content_type, content FROM attachments WHERE activity_id = ?1
             ORDER BY position",
            params![id.to_string()],
        )?
        .iter()
        .map(|row| {
            Ok(crate::NewAttachment {
                name: row.get(0)?,
                content_type: row.get(1)?,
                content: row.get(2)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((html, attachments))
}

pub(super) fn insert_parties(
    conn: &mut dyn Sql,
    id: ActivityId,
    parties: &[crate::NewParty],
    resolve: fn(&[Candidate]) -> Resolution,
) -> Result<()> {
    let first: i64 = value(
        conn,
        "SELECT COALESCE(MAX(position) + 1, 0) FROM parties WHERE activity_id = ?1",
        params![id.to_string()],
    )?;
    for (offset, party) in parties.iter().enumerate() {
        let position = first + offset as i64;
        let resolution = resolve(&candidates_for(conn, &party.address)?);
        let record_id = match &resolution {
            Resolution::Resolved(record) => Some(record.to_string()),
            _ => None,
        };
        let party_id: i64 = value(
            conn,
            "INSERT INTO parties (activity_id, position, role, address, display_name, group_name,
                                  record_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            params![
                id.to_string(),
                position,
                party.role.as_str(),
                party.address.as_str(),
                &party.display_name,
                &party.group,
                record_id
            ],
        )?;
        if let Resolution::Ambiguous(candidates) = resolution {
            for candidate in candidates {
                conn.execute(
                    "INSERT INTO party_candidates (party_id, record_id) VALUES (?1, ?2)",
                    params![party_id, candidate.to_string()],
                )?;
            }
        }
    }
    Ok(())
}

/// The id of a record by number, or a warning when there is none.
pub(super) fn regarding_id(
    conn: &mut dyn Sql,
    number: Option<&RecordNumber>,
) -> Result<(Option<String>, Option<String>)> {
    match number {
        None => Ok((None, None)),
        Some(number) => match record_ref_by_number(conn, number) {
            Ok(record) => Ok((Some(record.id.to_string()), None)),
            Err(StoreError::NotFound(_)) => Ok((
                None,
                Some(format!(
                    "regarding record {number} does not exist; the activity has no regarding record"
                )),
            )),
            Err(other) => Err(other),
        },
    }
}

pub(super) fn check_state(activity_type: ActivityType, state: ActivityState) -> Result<()> {
    if activity_type.allows_state(state) {
        return Ok(());
    }
    let allowed: Vec<&str> = activity_type
        .allowed_states()
        .into_iter()
        .map(ActivityState::as_str)
        .collect();
    let article = match activity_type {
        ActivityType::Task => "a",
        ActivityType::Email | ActivityType::Appointment => "an",
    };
    Err(InvalidValue(format!(
        "{article} {activity_type} cannot be in state {state}: expected one of {}",
        allowed.join(", ")
    ))
    .into())
}

/// Refuses an end before the start, when both are of the same kind (two instants or two days).
pub(super) fn check_span(start: Option<crate::When>, end: Option<crate::When>) -> Result<()> {
    use crate::When::{At, Day};
    let backwards = match (start, end) {
        (Some(At(start)), Some(At(end))) => end < start,
        (Some(Day(start)), Some(Day(end))) => end < start,
        _ => false,
    };
    if backwards {
        return Err(InvalidValue("the end is before the start".into()).into());
    }
    Ok(())
}

/// One UPDATE for all changed columns of a row, so that one change is one journal entry.
pub(super) fn update_columns(
    conn: &mut dyn Sql,
    table: &str,
    id: &str,
    columns: Vec<(&str, Param<'static>)>,
) -> Result<()> {
    if columns.is_empty() {
        return Ok(());
    }
    let assignments: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ?{}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE {table} SET {} WHERE id = ?1",
        assignments.join(", ")
    );
    let mut args: Vec<Param<'_>> = vec![Param::from(id)];
    args.extend(columns.into_iter().map(|(_, value)| value));
    conn.execute(&sql, &args)?;
    Ok(())
}

impl<B: Backend> ActivityStore for B {
    fn add_activity(&mut self, activity: &NewActivity) -> Result<ActivityRow> {
        let state = activity
            .state
            .unwrap_or_else(|| activity.activity_type.initial_crm_state());
        check_state(activity.activity_type, state)?;
        check_span(activity.start, activity.end)?;
        let id = ActivityId(uuid::Uuid::new_v4());
        let resolve = self.rules().resolve;
        self.write(|tx| {
            let owner_id = user_id_by_email(tx, &activity.owner)?;
            let regarding_id = match &activity.regarding {
                Some(number) => Some(record_ref_by_number(tx, number)?.id.to_string()),
                None => None,
            };
            let all_day = activity.start.is_some_and(|w| w.is_day());
            tx.execute(
                "INSERT INTO activities (id, type, owner_id, regarding_id, subject, state,
                     description, location, start_at, end_at, all_day, due_at, created_by,
                     html_body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    id.to_string(),
                    activity.activity_type.as_str(),
                    owner_id,
                    regarding_id,
                    activity.subject,
                    state.as_str(),
                    activity.description,
                    activity.location,
                    when_value(activity.start),
                    when_value(activity.end),
                    all_day,
                    when_value(activity.due),
                    activity.created_by,
                    activity.html_body,
                ],
            )?;
            insert_parties(tx, id, &activity.parties, resolve)?;
            insert_attachments(tx, id, &activity.attachments)?;
            load_activity(tx, id)
        })
    }

    fn activities(&self, filter: &ActivityFilter) -> Result<Vec<ActivityRow>> {
        self.read(|conn| {
            let mut sql = String::from("SELECT id FROM activities WHERE 1 = 1");
            let mut args: Vec<Param<'_>> = Vec::new();
            if let Some(activity_type) = filter.activity_type {
                args.push(Param::from(activity_type.as_str()));
                sql.push_str(&format!(" AND type = ?{}", args.len()));
            }
            if let Some(mailbox) = &filter.mailbox {
                args.push(Param::from(mailbox));
                sql.push_str(&format!(
                    " AND id IN (SELECT crm_id FROM sync_links WHERE crm_kind = 'activity' AND mailbox = ?{})",
                    args.len()
                ));
            }
            sql.push_str(" ORDER BY created, id");
            let ids: Vec<String> = crate::sql::column(conn, &sql, &args)?;
            ids.iter()
                .map(|id| load_activity(conn, ActivityId(parse_uuid("activities", id)?)))
                .collect()
        })
    }

    fn find_activity(&self, id_or_prefix: &str) -> Result<ActivityId> {
        let wanted = id_or_prefix.trim().to_ascii_lowercase();
        let not_found = || StoreError::NotFound(format!("activity {id_or_prefix}"));
        let plausible =
            wanted.len() >= 4 && wanted.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if !plausible {
            return Err(not_found());
        }
        self.read(|conn| {
            let found: Vec<String> = crate::sql::column(
                conn,
                "SELECT id FROM activities WHERE id >= ?1 AND id < ?1 || 'g' LIMIT 2",
                params![&wanted],
            )?;
            match found.as_slice() {
                [] => Err(not_found()),
                [one] => Ok(ActivityId(parse_uuid("activities", one)?)),
                _ => Err(StoreError::Ambiguous(format!(
                    "activity id {id_or_prefix} matches several activities: give more of it"
                ))),
            }
        })
    }

    fn activity(&self, id: ActivityId) -> Result<ActivityRow> {
        self.read(|conn| load_activity(conn, id))
    }

    fn update_activity(
        &mut self,
        id: ActivityId,
        changes: &[ActivityChange],
    ) -> Result<ActivityRow> {
        self.write(|tx| {
            let current = load_activity(tx, id)?;
            let mut columns: Vec<(&str, Param<'static>)> = Vec::new();
            for change in changes {
                match change {
                    ActivityChange::Subject(subject) => {
                        columns.push(("subject", Param::owned_text(subject.clone())))
                    }
                    ActivityChange::Description(v) => columns.push(("description", text_value(v))),
                    ActivityChange::Location(v) => columns.push(("location", text_value(v))),
                    ActivityChange::Start(when) => {
                        columns.push(("start_at", when_value(*when)));
                        columns.push(("all_day", Param::from(when.is_some_and(|w| w.is_day()))));
                    }
                    ActivityChange::End(when) => columns.push(("end_at", when_value(*when))),
                    ActivityChange::Due(when) => columns.push(("due_at", when_value(*when))),
                    ActivityChange::State(state) => {
                        check_state(current.activity_type, *state)?;
                        columns.push(("state", Param::from(state.as_str())));
                    }
                    ActivityChange::Priority(priority) => {
                        columns.push(("priority", Param::from(*priority)))
                    }
                    ActivityChange::PercentComplete(percent) => {
                        if percent.is_some_and(|p| p > 100) {
                            return Err(InvalidValue(
                                "percent complete must be from 0 to 100".into(),
                            )
                            .into());
                        }
                        columns.push(("percent_complete", Param::from(*percent)))
                    }
                    ActivityChange::Regarding(number) => {
                        let value = match number {
                            Some(number) => {
                                Param::owned_text(record_ref_by_number(tx, number)?.id.to_string())
                            }
                            None => Param::Null,
                        };
                        columns.push(("regarding_id", value));
                    }
                }
            }
            update_columns(tx, "activities", &id.to_string(), columns)?;
            load_activity(tx, id)
        })
    }

    fn delete_activity(&mut self, id: ActivityId) -> Result<()> {
        self.write(|tx| {
            let deleted = tx.execute(
                "DELETE FROM activities WHERE id = ?1",
                params![id.to_string()],
            )?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("activity {id}")));
            }
            Ok(())
        })
    }
}
