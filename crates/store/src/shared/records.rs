//! Records of every entity type: numbers, names, addresses, phones, parents, connections; and the candidates an address resolves to.

use std::collections::HashMap;

use crmsync_core::model::{EmailAddress, EntityName, InvalidValue, RecordId, RecordNumber};
use crmsync_core::resolve::Candidate;

use super::Backend;
use super::activities::{count, how_many, text_value, update_columns};
use super::users::user_id_by_email;
use super::{IN_CHUNK, parse_field, parse_uuid, placeholders};
use crate::RecordStore;
use crate::sql::{Param, Row, Sql, optional, params, value};
use crate::{
    ConnectionRow, NewConnection, NewRecord, RecordChange, RecordRef, RecordRow, Result, StoreError,
};

/// The columns of a record reference, in the order [`record_ref_from`] reads them.
pub(super) const RECORD_REF_COLUMNS: &str = "r.id, r.entity, r.number, r.name";

pub(super) struct RawRecordRef {
    id: String,
    entity: String,
    number: String,
    name: String,
}

/// A query that joins on a record's id found none: a row that breaks the schema.
pub(super) fn missing_id(table: &'static str) -> crate::StoreError {
    super::bad_row(table, "?", "a joined record has no id")
}

pub(super) fn raw_record_ref(row: &Row, first: usize) -> Result<Option<RawRecordRef>> {
    let id: Option<String> = row.get(first)?;
    let Some(id) = id else { return Ok(None) };
    Ok(Some(RawRecordRef {
        id,
        entity: row.get(first + 1)?,
        number: row.get(first + 2)?,
        name: row.get(first + 3)?,
    }))
}

pub(super) fn record_ref_from(raw: RawRecordRef) -> Result<RecordRef> {
    Ok(RecordRef {
        id: RecordId(parse_uuid("records", &raw.id)?),
        entity: parse_field("records", &raw.id, EntityName::new(&raw.entity))?,
        number: parse_field("records", &raw.id, RecordNumber::new(&raw.number))?,
        name: raw.name,
    })
}

pub(super) fn record_ref_by_number(conn: &mut dyn Sql, number: &RecordNumber) -> Result<RecordRef> {
    record_ref_where(conn, "r.number = ?1", number.as_str())
}

pub(super) fn record_ref_by_id(conn: &mut dyn Sql, id: &str) -> Result<RecordRef> {
    record_ref_where(conn, "r.id = ?1", id)
}

/// The one record matching `condition` on `r` with `key` as `?1`; `key` names it when missing.
pub(super) fn record_ref_where(
    conn: &mut dyn Sql,
    condition: &str,
    key: &str,
) -> Result<RecordRef> {
    let row = conn.query_opt(
        &format!("SELECT {RECORD_REF_COLUMNS} FROM records r WHERE {condition}"),
        params![key],
    )?;
    let raw = match row {
        Some(row) => raw_record_ref(&row, 0)?,
        None => None,
    };
    match raw {
        Some(raw) => record_ref_from(raw),
        None => Err(StoreError::NotFound(format!("record {key}"))),
    }
}

/// Registers a custom entity type on first use, choosing a number prefix no other entity has.
pub(super) fn ensure_entity(conn: &mut dyn Sql, entity: &EntityName) -> Result<()> {
    let known: bool = value(
        conn,
        "SELECT EXISTS (SELECT 1 FROM entities WHERE name = ?1)",
        params![entity.as_str()],
    )?;
    if known {
        return Ok(());
    }
    let base = entity.default_number_prefix();
    let whole: String = entity
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_ascii_uppercase();
    let choices = std::iter::once(base.clone())
        .chain(std::iter::once(whole))
        .chain((2..100).map(|n| format!("{base}{n}")));
    for prefix in choices {
        let taken: bool = value(
            conn,
            "SELECT EXISTS (SELECT 1 FROM entities WHERE number_prefix = ?1)",
            params![&prefix],
        )?;
        if !taken {
            conn.execute(
                "INSERT INTO entities (name, number_prefix) VALUES (?1, ?2)",
                params![entity.as_str(), prefix],
            )?;
            return Ok(());
        }
    }
    Err(StoreError::Conflict(format!(
        "no free record number prefix for entity {entity}"
    )))
}

pub(super) fn number_taken(conn: &mut dyn Sql, number: &RecordNumber) -> Result<Option<RecordRef>> {
    match record_ref_by_number(conn, number) {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The next free automatic number of an entity. Numbers given by hand may have taken some of
/// the sequence; those are skipped.
pub(super) fn next_number(conn: &mut dyn Sql, entity: &EntityName) -> Result<RecordNumber> {
    let row = conn
        .query_opt(
            "SELECT number_prefix, next_number FROM entities WHERE name = ?1",
            params![entity.as_str()],
        )?
        .ok_or_else(|| crate::StoreError::NotFound(format!("entity {entity}")))?;
    let (prefix, mut next): (String, i64) = (row.get(0)?, row.get(1)?);
    loop {
        let candidate = RecordNumber::from_parts(&prefix, next.max(1) as u64)?;
        next += 1;
        if number_taken(conn, &candidate)?.is_none() {
            conn.execute(
                "UPDATE entities SET next_number = ?1 WHERE name = ?2",
                params![next, entity.as_str()],
            )?;
            return Ok(candidate);
        }
    }
}

pub(super) fn check_number_free(conn: &mut dyn Sql, number: &RecordNumber) -> Result<()> {
    match number_taken(conn, number)? {
        Some(holder) => Err(StoreError::Conflict(format!(
            "record number {number} is already taken by {} {:?}",
            holder.entity, holder.name
        ))),
        None => Ok(()),
    }
}

pub(super) fn insert_record(
    conn: &mut dyn Sql,
    entity: &EntityName,
    number: &RecordNumber,
    name: &str,
    parent_id: Option<&str>,
    owner_id: Option<&str>,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO records (id, entity, number, name, parent_id, owner_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            entity.as_str(),
            number.as_str(),
            name,
            parent_id,
            owner_id
        ],
    )?;
    Ok(id)
}

pub(super) fn replace_emails(
    conn: &mut dyn Sql,
    record_id: &str,
    emails: &[EmailAddress],
) -> Result<()> {
    conn.execute(
        "DELETE FROM record_emails WHERE record_id = ?1",
        params![record_id],
    )?;
    for (position, email) in emails.iter().enumerate() {
        conn.execute(
            "INSERT INTO record_emails (record_id, position, address) VALUES (?1, ?2, ?3)",
            params![record_id, position as i64, email.as_str()],
        )?;
    }
    Ok(())
}

pub(super) fn replace_phones(conn: &mut dyn Sql, record_id: &str, phones: &[String]) -> Result<()> {
    conn.execute(
        "DELETE FROM record_phones WHERE record_id = ?1",
        params![record_id],
    )?;
    for (position, phone) in phones.iter().enumerate() {
        conn.execute(
            "INSERT INTO record_phones (record_id, position, number) VALUES (?1, ?2, ?3)",
            params![record_id, position as i64, phone],
        )?;
    }
    Ok(())
}

pub(super) fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(InvalidValue("a record name must not be empty".into()).into());
    }
    Ok(())
}

/// Refuses a parent that is the record itself or one of its descendants.
pub(super) fn check_parent(conn: &mut dyn Sql, record_id: &str, parent: &RecordRef) -> Result<()> {
    let mut current = Some(parent.id.to_string());
    let mut steps = 0;
    while let Some(id) = current {
        if id == record_id {
            return Err(InvalidValue(format!(
                "{} cannot be the parent: that would make a cycle",
                parent.number
            ))
            .into());
        }
        steps += 1;
        if steps > 10_000 {
            break;
        }
        current = optional::<Option<String>>(
            conn,
            "SELECT parent_id FROM records WHERE id = ?1",
            params![&id],
        )?
        .flatten();
    }
    Ok(())
}

/// Loads full record rows matching `filter` (an SQL condition on `r`) in three queries.
pub(super) fn load_records(
    conn: &mut dyn Sql,
    filter: &str,
    args: &[Param<'_>],
) -> Result<Vec<RecordRow>> {
    let sql = format!(
        "SELECT {RECORD_REF_COLUMNS}, p.id, p.entity, p.number, p.name, u.email,
                r.given_name, r.family_name, r.job_title, r.postal_address, r.notes,
                r.version, r.created, r.modified
         FROM records r
         LEFT JOIN records p ON p.id = r.parent_id
         LEFT JOIN users u ON u.record_id = r.owner_id
         WHERE {filter}
         ORDER BY r.number"
    );
    let mut records = Vec::new();
    for row in conn.query(&sql, args)? {
        let own = raw_record_ref(&row, 0)?.ok_or_else(|| missing_id("records"))?;
        let parent = raw_record_ref(&row, 4)?.map(record_ref_from).transpose()?;
        records.push(RecordRow {
            record: record_ref_from(own)?,
            emails: Vec::new(),
            phones: Vec::new(),
            parent,
            owner: row.get(8)?,
            given_name: row.get(9)?,
            family_name: row.get(10)?,
            job_title: row.get(11)?,
            postal_address: row.get(12)?,
            notes: row.get(13)?,
            version: row.get(14)?,
            created: row.get(15)?,
            modified: row.get(16)?,
        });
    }
    if records.is_empty() {
        return Ok(records);
    }
    let index: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.record.id.to_string(), i))
        .collect();
    for (table, column) in [("record_emails", "address"), ("record_phones", "number")] {
        let sql = format!(
            "SELECT x.record_id, x.{column} FROM {table} x JOIN records r ON r.id = x.record_id
             WHERE {filter} ORDER BY x.record_id, x.position"
        );
        for row in conn.query(&sql, args)? {
            let record_id: String = row.get(0)?;
            let value: String = row.get(1)?;
            if let Some(&i) = index.get(&record_id) {
                match table {
                    "record_emails" => records[i].emails.push(value),
                    _ => records[i].phones.push(value),
                }
            }
        }
    }
    Ok(records)
}

pub(super) fn load_record(conn: &mut dyn Sql, number: &RecordNumber) -> Result<RecordRow> {
    load_records(conn, "r.number = ?1", params![number.as_str()])?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("record {number}")))
}

/// Adds a record inside a transaction (`add_record`, and converting an activity).
pub(super) fn add_record_in(tx: &mut dyn Sql, record: &NewRecord) -> Result<RecordRow> {
    check_name(&record.name)?;
    if record.entity.as_str() == EntityName::SYSTEMUSER {
        return Err(InvalidValue(
            "a systemuser record is a CRM user: add it with `crmsync user add`".into(),
        )
        .into());
    }
    ensure_entity(tx, &record.entity)?;
    let number = match &record.number {
        Some(number) => {
            check_number_free(tx, number)?;
            number.clone()
        }
        None => next_number(tx, &record.entity)?,
    };
    let parent_id = match &record.parent {
        Some(parent) => Some(record_ref_by_number(tx, parent)?.id.to_string()),
        None => None,
    };
    let owner_id = match &record.owner {
        Some(owner) => Some(user_id_by_email(tx, owner)?),
        None => None,
    };
    let id = insert_record(
        tx,
        &record.entity,
        &number,
        record.name.trim(),
        parent_id.as_deref(),
        owner_id.as_deref(),
    )?;
    replace_emails(tx, &id, &record.emails)?;
    load_record(tx, &number)
}

pub(super) fn candidates_for(conn: &mut dyn Sql, address: &EmailAddress) -> Result<Vec<Candidate>> {
    let rows = conn.query(
        "SELECT DISTINCT r.id, r.entity FROM record_emails e JOIN records r ON r.id = e.record_id
         WHERE e.address = ?1 COLLATE NOCASE",
        params![address.as_str()],
    )?;
    let mut candidates = Vec::new();
    for row in rows {
        let id: String = row.get(0)?;
        let entity: String = row.get(1)?;
        candidates.push(Candidate {
            record: RecordId(parse_uuid("records", &id)?),
            entity: parse_field("records", &id, EntityName::new(&entity))?,
        });
    }
    Ok(candidates)
}

impl<B: Backend> RecordStore for B {
    fn add_record(&mut self, record: &NewRecord) -> Result<RecordRow> {
        self.write(|tx| add_record_in(tx, record))
    }

    fn records(&self, entity: Option<&EntityName>) -> Result<Vec<RecordRow>> {
        self.read(|conn| match entity {
            Some(entity) => load_records(conn, "r.entity = ?1", params![entity.as_str()]),
            None => load_records(conn, "1 = 1", &[]),
        })
    }

    fn record(&self, number: &RecordNumber) -> Result<RecordRow> {
        self.read(|conn| load_record(conn, number))
    }

    fn update_record(
        &mut self,
        number: &RecordNumber,
        changes: &[RecordChange],
    ) -> Result<RecordRow> {
        self.write(|tx| {
            let own = record_ref_by_number(tx, number)?;
            let id = own.id.to_string();
            let mut columns: Vec<(&str, Param<'static>)> = Vec::new();
            for change in changes {
                match change {
                    RecordChange::Name(name) => {
                        check_name(name)?;
                        columns.push(("name", Param::owned_text(name.trim())));
                    }
                    RecordChange::Emails(emails) => replace_emails(tx, &id, emails)?,
                    RecordChange::Phones(phones) => replace_phones(tx, &id, phones)?,
                    RecordChange::Parent(parent) => {
                        let value = match parent {
                            Some(parent) => {
                                let parent = record_ref_by_number(tx, parent)?;
                                check_parent(tx, &id, &parent)?;
                                Param::owned_text(parent.id.to_string())
                            }
                            None => Param::Null,
                        };
                        columns.push(("parent_id", value));
                    }
                    RecordChange::Owner(owner) => {
                        let value = match owner {
                            Some(owner) => Param::owned_text(user_id_by_email(tx, owner)?),
                            None => Param::Null,
                        };
                        columns.push(("owner_id", value));
                    }
                    RecordChange::GivenName(v) => columns.push(("given_name", text_value(v))),
                    RecordChange::FamilyName(v) => columns.push(("family_name", text_value(v))),
                    RecordChange::JobTitle(v) => columns.push(("job_title", text_value(v))),
                    RecordChange::PostalAddress(v) => {
                        columns.push(("postal_address", text_value(v)))
                    }
                    RecordChange::Notes(v) => columns.push(("notes", text_value(v))),
                }
            }
            update_columns(tx, "records", &id, columns)?;
            load_record(tx, number)
        })
    }

    fn delete_record(&mut self, number: &RecordNumber) -> Result<()> {
        self.write(|tx| {
            let own = record_ref_by_number(tx, number)?;
            let id = own.id.to_string();
            let regarding = count(tx, "SELECT count(*) FROM activities WHERE regarding_id = ?1", &id)?;
            if regarding > 0 {
                return Err(StoreError::Refused(format!(
                    "cannot delete {number}: it is the regarding record of {}; change {} regarding first (crmsync activity regarding ID NUM)",
                    how_many(regarding, "activity", "activities"),
                    if regarding == 1 { "its" } else { "their" }
                )));
            }
            let owned = count(tx, "SELECT count(*) FROM activities WHERE owner_id = ?1", &id)?;
            if owned > 0 {
                return Err(StoreError::Refused(format!(
                    "cannot delete {number}: this user owns {}",
                    how_many(owned, "activity", "activities")
                )));
            }
            let owned = count(tx, "SELECT count(*) FROM records WHERE owner_id = ?1", &id)?;
            if owned > 0 {
                return Err(StoreError::Refused(format!(
                    "cannot delete {number}: this user owns {}",
                    how_many(owned, "record", "records")
                )));
            }
            tx.execute("DELETE FROM records WHERE id = ?1", params![&id])?;
            Ok(())
        })
    }

    fn records_with_email(&self, address: &EmailAddress) -> Result<Vec<Candidate>> {
        self.read(|conn| candidates_for(conn, address))
    }

    fn records_with_emails(
        &self,
        addresses: &[EmailAddress],
    ) -> Result<HashMap<String, Vec<Candidate>>> {
        let mut found: HashMap<String, Vec<Candidate>> = HashMap::new();
        self.read(|conn| {
            for chunk in addresses.chunks(IN_CHUNK) {
                let sql = format!(
                    "SELECT DISTINCT lower(e.address), r.id, r.entity
                     FROM record_emails e JOIN records r ON r.id = e.record_id
                     WHERE e.address COLLATE NOCASE IN ({})",
                    placeholders(1, chunk.len())
                );
                let values: Vec<Param<'_>> = chunk.iter().map(|a| a.as_str().into()).collect();
                for row in conn.query(&sql, &values)? {
                    let id: String = row.get(1)?;
                    let entity: String = row.get(2)?;
                    found.entry(row.get(0)?).or_default().push(Candidate {
                        record: RecordId(parse_uuid("records", &id)?),
                        entity: parse_field("records", &id, EntityName::new(&entity))?,
                    });
                }
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn add_connection(&mut self, connection: &NewConnection) -> Result<()> {
        self.write(|tx| {
            let one = record_ref_by_number(tx, &connection.record1)?;
            let two = record_ref_by_number(tx, &connection.record2)?;
            if one.id == two.id {
                return Err(InvalidValue(format!(
                    "a record cannot be connected to itself ({})",
                    one.number
                ))
                .into());
            }
            tx.execute(
                "INSERT INTO connections (record1_id, role1, record2_id, role2)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    one.id.to_string(),
                    connection.role1,
                    two.id.to_string(),
                    connection.role2
                ],
            )?;
            Ok(())
        })
    }

    fn connections(&self, number: &RecordNumber) -> Result<Vec<ConnectionRow>> {
        self.read(|conn| {
            let own = record_ref_by_number(conn, number)?;
            let raw = conn
                .query(
                    "SELECT record2_id, role1, role2 FROM connections WHERE record1_id = ?1
                     UNION ALL
                     SELECT record1_id, role2, role1 FROM connections WHERE record2_id = ?1",
                    params![own.id.to_string()],
                )?
                .iter()
                .map(|row| {
                    Ok((
                        row.get::<String>(0)?,
                        row.get::<Option<String>>(1)?,
                        row.get::<Option<String>>(2)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            raw.into_iter()
                .map(|(other, own_role, other_role)| {
                    Ok(ConnectionRow {
                        other: record_ref_by_id(conn, &other)?,
                        own_role,
                        other_role,
                    })
                })
                .collect()
        })
    }
}
