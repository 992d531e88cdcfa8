//! [`SqliteStore`]: the CRM store in one SQLite file.
//!
//! Every connection runs in WAL mode (readers never block the writer, and other programs can
//! read while the daemon writes), with foreign keys on, `synchronous = FULL` (a commit that
//! returned survives a power cut, which the write-then-link order of the sync relies on) and a
//! busy timeout, so that a short write by another program waits instead of failing.
//!
//! Writes go through [`SqliteStore::write`]: one `BEGIN IMMEDIATE` transaction that marks its
//! journal rows with this store's origin.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::merge::FieldWrite;
use crmsync_core::model::{
    ActivityId, ActivityState, ActivityType, EmailAddress, EntityName, InvalidValue, PartyRole,
    RecordId, RecordNumber,
};
use crmsync_core::resolve::{self, Candidate, Resolution};
use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

mod items;

use crate::migrations::{MIGRATIONS, latest_version};
use crate::{
    ActivityChange, ActivityFilter, ActivityRow, AttachmentInfo, ConflictRow, ConnectionRow,
    CrmStore, JournalEntity, JournalEntry, JournalOp, LinkSummary, LinkedActivity, NewActivity,
    NewConnection, NewEmail, NewRecord, NewUser, PartyRow, RecordChange, RecordRef, RecordRow,
    Result, StoreError, SyncState, UserRow,
};

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    origin: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    /// `origin` marks this process's writes in the change journal (`crmsync-cli`,
    /// `crmsync-daemon`); it lets the daemon tell its own changes from everyone else's.
    pub fn open(path: &Path, origin: &str) -> Result<SqliteStore> {
        let open_error = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(open_error(format!(
                "directory {} does not exist",
                parent.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| open_error(e.to_string()))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            origin: origin.to_owned(),
        };
        store.configure_connection().map_err(open_error)?;
        store.migrate()?;
        Ok(store)
    }

    fn configure_connection(&self) -> Result<(), String> {
        let setup = || -> rusqlite::Result<String> {
            self.conn.busy_timeout(Duration::from_secs(10))?;
            self.conn.set_prepared_statement_cache_capacity(128);
            self.conn.execute_batch(
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
            )?;
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        };
        let mode = setup().map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "cannot switch to WAL mode (the file stays in {mode} mode)"
            ));
        }
        Ok(())
    }

    /// Runs every migration newer than the store's version, each in its own transaction.
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.display().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             )",
        )?;
        let current: i64 = query_row_cached(
            &tx,
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )?;
        if current > latest_version() {
            return Err(StoreError::SchemaTooNew {
                path,
                found: current,
                known: latest_version(),
            });
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.execute_batch(migration.sql)?;
            execute_cached(
                &tx,
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                params![migration.version, migration.name],
            )?;
            tx.pragma_update(None, "user_version", migration.version)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The versions of the migrations applied to this store, oldest first.
    pub fn applied_migrations(&self) -> Result<Vec<i64>> {
        let mut statement = self
            .conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")?;
        let versions = statement
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(versions)
    }

    /// Runs `body` in one immediate write transaction whose journal rows carry this store's
    /// origin. The origin is cleared again before commit, so no other program's write can ever
    /// be attributed to crmsync.
    fn write<T>(&mut self, body: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        execute_cached(
            &tx,
            "UPDATE journal_writer SET origin = ?1 WHERE id = 1",
            [&self.origin],
        )?;
        let value = body(&tx)?;
        execute_cached(
            &tx,
            "UPDATE journal_writer SET origin = NULL WHERE id = 1",
            [],
        )?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `body` in one read transaction: a consistent snapshot across its queries.
    fn read<T>(&self, body: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let tx = self.conn.unchecked_transaction()?;
        let value = body(&tx)?;
        tx.finish()?;
        Ok(value)
    }
}

// Reading rows that any program may have written: a value that does not follow the schema is
// a `BadRow`, naming the table and the row, never a panic.

/// Runs a statement through the connection's statement cache: the statements of a sync pass
/// run thousands of times, and compiling one (with the triggers it fires) costs more than
/// running it.
fn execute_cached(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

fn query_row_cached<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

fn bad_row(table: &'static str, row: &str, message: impl ToString) -> StoreError {
    StoreError::BadRow {
        table,
        row: row.to_owned(),
        message: message.to_string(),
    }
}

fn parse_uuid(table: &'static str, text: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|e| bad_row(table, text, format!("bad uuid: {e}")))
}

fn parse_field<T>(table: &'static str, row: &str, parsed: Result<T, InvalidValue>) -> Result<T> {
    parsed.map_err(|e| bad_row(table, row, e))
}

/// The columns of a record reference, in the order [`record_ref_from`] reads them.
const RECORD_REF_COLUMNS: &str = "r.id, r.entity, r.number, r.name";

struct RawRecordRef {
    id: String,
    entity: String,
    number: String,
    name: String,
}

fn raw_record_ref(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<RawRecordRef>> {
    let id: Option<String> = row.get(first)?;
    let Some(id) = id else { return Ok(None) };
    Ok(Some(RawRecordRef {
        id,
        entity: row.get(first + 1)?,
        number: row.get(first + 2)?,
        name: row.get(first + 3)?,
    }))
}

fn record_ref_from(raw: RawRecordRef) -> Result<RecordRef> {
    Ok(RecordRef {
        id: RecordId(parse_uuid("records", &raw.id)?),
        entity: parse_field("records", &raw.id, EntityName::new(&raw.entity))?,
        number: parse_field("records", &raw.id, RecordNumber::new(&raw.number))?,
        name: raw.name,
    })
}

fn record_ref_by_number(conn: &Connection, number: &RecordNumber) -> Result<RecordRef> {
    record_ref_where(conn, "r.number = ?1", number.as_str())
}

fn record_ref_by_id(conn: &Connection, id: &str) -> Result<RecordRef> {
    record_ref_where(conn, "r.id = ?1", id)
}

/// The one record matching `condition` on `r` with `key` as `?1`; `key` names it when missing.
fn record_ref_where(conn: &Connection, condition: &str, key: &str) -> Result<RecordRef> {
    let raw = query_row_cached(
        conn,
        &format!("SELECT {RECORD_REF_COLUMNS} FROM records r WHERE {condition}"),
        [key],
        |row| raw_record_ref(row, 0),
    )
    .optional()?
    .flatten();
    match raw {
        Some(raw) => record_ref_from(raw),
        None => Err(StoreError::NotFound(format!("record {key}"))),
    }
}

fn user_id_by_email(conn: &Connection, email: &EmailAddress) -> Result<String> {
    query_row_cached(
        conn,
        "SELECT record_id FROM users WHERE email = ?1",
        [email.as_str()],
        |row| row.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("user {email}")))
}

/// Registers a custom entity type on first use, choosing a number prefix no other entity has.
fn ensure_entity(conn: &Connection, entity: &EntityName) -> Result<()> {
    let known: bool = query_row_cached(
        conn,
        "SELECT EXISTS (SELECT 1 FROM entities WHERE name = ?1)",
        [entity.as_str()],
        |row| row.get(0),
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
        let taken: bool = query_row_cached(
            conn,
            "SELECT EXISTS (SELECT 1 FROM entities WHERE number_prefix = ?1)",
            [&prefix],
            |row| row.get(0),
        )?;
        if !taken {
            execute_cached(
                conn,
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

fn number_taken(conn: &Connection, number: &RecordNumber) -> Result<Option<RecordRef>> {
    match record_ref_by_number(conn, number) {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The next free automatic number of an entity. Numbers given by hand may have taken some of
/// the sequence; those are skipped.
fn next_number(conn: &Connection, entity: &EntityName) -> Result<RecordNumber> {
    let (prefix, mut next): (String, i64) = query_row_cached(
        conn,
        "SELECT number_prefix, next_number FROM entities WHERE name = ?1",
        [entity.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    loop {
        let candidate = RecordNumber::from_parts(&prefix, next.max(1) as u64)?;
        next += 1;
        if number_taken(conn, &candidate)?.is_none() {
            execute_cached(
                conn,
                "UPDATE entities SET next_number = ?1 WHERE name = ?2",
                params![next, entity.as_str()],
            )?;
            return Ok(candidate);
        }
    }
}

fn check_number_free(conn: &Connection, number: &RecordNumber) -> Result<()> {
    match number_taken(conn, number)? {
        Some(holder) => Err(StoreError::Conflict(format!(
            "record number {number} is already taken by {} {:?}",
            holder.entity, holder.name
        ))),
        None => Ok(()),
    }
}

fn insert_record(
    conn: &Connection,
    entity: &EntityName,
    number: &RecordNumber,
    name: &str,
    parent_id: Option<&str>,
    owner_id: Option<&str>,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    execute_cached(
        conn,
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

fn replace_emails(conn: &Connection, record_id: &str, emails: &[EmailAddress]) -> Result<()> {
    execute_cached(
        conn,
        "DELETE FROM record_emails WHERE record_id = ?1",
        [record_id],
    )?;
    for (position, email) in emails.iter().enumerate() {
        execute_cached(
            conn,
            "INSERT INTO record_emails (record_id, position, address) VALUES (?1, ?2, ?3)",
            params![record_id, position as i64, email.as_str()],
        )?;
    }
    Ok(())
}

fn replace_phones(conn: &Connection, record_id: &str, phones: &[String]) -> Result<()> {
    execute_cached(
        conn,
        "DELETE FROM record_phones WHERE record_id = ?1",
        [record_id],
    )?;
    for (position, phone) in phones.iter().enumerate() {
        execute_cached(
            conn,
            "INSERT INTO record_phones (record_id, position, number) VALUES (?1, ?2, ?3)",
            params![record_id, position as i64, phone],
        )?;
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(InvalidValue("a record name must not be empty".into()).into());
    }
    Ok(())
}

/// Refuses a parent that is the record itself or one of its descendants.
fn check_parent(conn: &Connection, record_id: &str, parent: &RecordRef) -> Result<()> {
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
        current = query_row_cached(
            conn,
            "SELECT parent_id FROM records WHERE id = ?1",
            [&id],
            |row| row.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten();
    }
    Ok(())
}

/// Loads full record rows matching `filter` (an SQL condition on `r`) in three queries.
fn load_records(
    conn: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
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
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query(args)?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        let own = raw_record_ref(row, 0)?.expect("records.id is the primary key");
        let parent = raw_record_ref(row, 4)?.map(record_ref_from).transpose()?;
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
        let mut statement = conn.prepare(&sql)?;
        let mut rows = statement.query(args)?;
        while let Some(row) = rows.next()? {
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

fn load_record(conn: &Connection, number: &RecordNumber) -> Result<RecordRow> {
    load_records(conn, "r.number = ?1", &[&number.as_str()])?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("record {number}")))
}

fn load_user(conn: &Connection, email: &EmailAddress) -> Result<UserRow> {
    load_users(conn, "u.email = ?1", &[&email.as_str()])?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("user {email}")))
}

fn load_users(
    conn: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<UserRow>> {
    let sql = format!(
        "SELECT {RECORD_REF_COLUMNS}, u.email, u.sync FROM users u
         JOIN records r ON r.id = u.record_id WHERE {filter} ORDER BY u.email"
    );
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query(args)?;
    let mut users = Vec::new();
    while let Some(row) = rows.next()? {
        let raw = raw_record_ref(row, 0)?.expect("joined on records.id");
        users.push(UserRow {
            record: record_ref_from(raw)?,
            email: row.get(4)?,
            sync: row.get(5)?,
        });
    }
    Ok(users)
}

fn candidates_for(conn: &Connection, address: &EmailAddress) -> Result<Vec<Candidate>> {
    let mut statement = conn.prepare(
        "SELECT DISTINCT r.id, r.entity FROM record_emails e JOIN records r ON r.id = e.record_id
         WHERE e.address = ?1 COLLATE NOCASE",
    )?;
    let mut rows = statement.query([address.as_str()])?;
    let mut candidates = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let entity: String = row.get(1)?;
        candidates.push(Candidate {
            record: RecordId(parse_uuid("records", &id)?),
            entity: parse_field("records", &id, EntityName::new(&entity))?,
        });
    }
    Ok(candidates)
}

fn load_activity(conn: &Connection, id: ActivityId) -> Result<ActivityRow> {
    let id_text = id.to_string();
    let row = query_row_cached(
        conn,
        "SELECT a.type, u.email, a.regarding_id, a.subject, a.state, a.description,
                    a.message_id, a.direction, a.location, a.start_at, a.end_at, a.all_day,
                    a.due_at, a.priority, a.percent_complete, a.created_by, a.version,
                    a.created, a.modified, a.sent_at, a.received_at
             FROM activities a LEFT JOIN users u ON u.record_id = a.owner_id
             WHERE a.id = ?1",
        [&id_text],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
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
                row.get::<_, String>(4)?,
            ))
        },
    )
    .optional()?;
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

    let mut statement = conn.prepare(
        "SELECT name, content_type, size FROM attachments WHERE activity_id = ?1 ORDER BY position",
    )?;
    activity.attachments = statement
        .query_map([&id_text], |row| {
            Ok(AttachmentInfo {
                name: row.get(0)?,
                content_type: row.get(1)?,
                size: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;

    let mut statement = conn.prepare(
        "SELECT mailbox, item_kind, item_location, state FROM sync_links
         WHERE crm_kind = 'activity' AND crm_id = ?1 ORDER BY mailbox, id",
    )?;
    activity.links = statement
        .query_map([&id_text], |row| {
            Ok(LinkSummary {
                mailbox: row.get(0)?,
                item_kind: row.get(1)?,
                item_location: row.get(2)?,
                state: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(activity)
}

fn load_parties(conn: &Connection, activity_id: &str) -> Result<Vec<PartyRow>> {
    let mut statement = conn.prepare(&format!(
        "SELECT pa.id, pa.role, pa.address, pa.display_name, {RECORD_REF_COLUMNS}
         FROM parties pa LEFT JOIN records r ON r.id = pa.record_id
         WHERE pa.activity_id = ?1 ORDER BY pa.position"
    ))?;
    let mut rows = statement.query([activity_id])?;
    let mut parties = Vec::new();
    let mut party_ids = Vec::new();
    while let Some(row) = rows.next()? {
        let role: String = row.get(1)?;
        party_ids.push(row.get::<_, i64>(0)?);
        parties.push(PartyRow {
            role: parse_field("parties", activity_id, PartyRole::parse(&role))?,
            address: row.get(2)?,
            display_name: row.get(3)?,
            record: raw_record_ref(row, 4)?.map(record_ref_from).transpose()?,
            candidates: Vec::new(),
        });
    }
    let mut statement = conn.prepare(&format!(
        "SELECT {RECORD_REF_COLUMNS} FROM party_candidates c JOIN records r ON r.id = c.record_id
         WHERE c.party_id = ?1 ORDER BY r.number"
    ))?;
    for (party, party_id) in parties.iter_mut().zip(party_ids) {
        let mut rows = statement.query([party_id])?;
        while let Some(row) = rows.next()? {
            if let Some(raw) = raw_record_ref(row, 0)? {
                party.candidates.push(record_ref_from(raw)?);
            }
        }
    }
    Ok(parties)
}

/// A count of rows that point at a record, for a refusal clearer than the trigger's.
fn count(conn: &Connection, sql: &str, id: &str) -> Result<i64> {
    Ok(query_row_cached(conn, sql, [id], |row| row.get(0))?)
}

/// `1 activity`, `2 activities`.
fn how_many(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn link_from_row(row: &rusqlite::Row<'_>) -> Result<SyncLink> {
    let id: i64 = row.get(0)?;
    let row_name = id.to_string();
    let kind_text: String = row.get(2)?;
    let kind = parse_field("sync_links", &row_name, ItemKind::parse(&kind_text))?;
    let identity_text: String = row.get(3)?;
    let location_text: String = row.get(4)?;
    let crm_kind: String = row.get(5)?;
    let crm_id: String = row.get(6)?;
    let crm_uuid = parse_uuid("sync_links", &crm_id)?;
    let base_text: String = row.get(7)?;
    let base_json: serde_json::Value = serde_json::from_str(&base_text)
        .map_err(|e| bad_row("sync_links", &row_name, format!("base is not JSON: {e}")))?;
    let mut base = Snapshot::new();
    let Some(fields) = base_json.as_object() else {
        return Err(bad_row(
            "sync_links",
            &row_name,
            "base is not a JSON object",
        ));
    };
    for (field, value) in fields {
        let Some(value) = value.as_str() else {
            return Err(bad_row(
                "sync_links",
                &row_name,
                format!("base field {field} is not text"),
            ));
        };
        base.set(field, value);
    }
    let created_by: String = row.get(10)?;
    let state: String = row.get(11)?;
    Ok(SyncLink {
        mailbox: row.get(1)?,
        kind,
        identity: parse_field(
            "sync_links",
            &row_name,
            ItemIdentity::from_storage_key(kind, &identity_text),
        )?,
        location: parse_field(
            "sync_links",
            &row_name,
            ItemLocation::from_storage_key(&location_text),
        )?,
        crm: match crm_kind.as_str() {
            "activity" => CrmRef::Activity(ActivityId(crm_uuid)),
            "record" => CrmRef::Record(RecordId(crm_uuid)),
            other => {
                return Err(bad_row(
                    "sync_links",
                    &row_name,
                    format!("bad crm_kind {other:?}"),
                ));
            }
        },
        base,
        item_version: row.get::<_, Option<String>>(8)?.map(VersionMarker),
        crm_version: row.get(9)?,
        created_by: parse_field("sync_links", &row_name, ItemCreator::parse(&created_by))?,
        state: parse_field("sync_links", &row_name, LinkState::parse(&state))?,
    })
}

const LINK_COLUMNS: &str = "id, mailbox, item_kind, item_identity, item_location, crm_kind, crm_id, \
                            base, item_version, crm_version, created_by, state";

fn when_value(when: Option<crate::When>) -> Value {
    match when {
        Some(when) => Value::Text(when.to_storage()),
        None => Value::Null,
    }
}

fn text_value(text: &Option<String>) -> Value {
    match text {
        Some(text) => Value::Text(text.clone()),
        None => Value::Null,
    }
}

impl CrmStore for SqliteStore {
    fn add_user(&mut self, user: &NewUser) -> Result<UserRow> {
        check_name(&user.name)?;
        self.write(|tx| {
            if load_user(tx, &user.email).is_ok() {
                return Err(StoreError::Conflict(format!(
                    "a user with address {} already exists",
                    user.email
                )));
            }
            let entity = EntityName::new(EntityName::SYSTEMUSER)?;
            let number = next_number(tx, &entity)?;
            let id = insert_record(tx, &entity, &number, &user.name, None, None)?;
            replace_emails(tx, &id, std::slice::from_ref(&user.email))?;
            execute_cached(
                tx,
                "INSERT INTO users (record_id, email, sync) VALUES (?1, ?2, ?3)",
                params![id, user.email.as_str(), user.sync],
            )?;
            load_user(tx, &user.email)
        })
    }

    fn users(&self) -> Result<Vec<UserRow>> {
        self.read(|conn| load_users(conn, "1", &[]))
    }

    fn user(&self, email: &EmailAddress) -> Result<UserRow> {
        self.read(|conn| load_user(conn, email))
    }

    fn set_user_sync(&mut self, email: &EmailAddress, sync: bool) -> Result<UserRow> {
        self.write(|tx| {
            // Setting the privilege a user already has writes nothing, so the journal only
            // shows real changes.
            execute_cached(
                tx,
                "UPDATE users SET sync = ?1 WHERE email = ?2 AND sync <> ?1",
                params![sync, email.as_str()],
            )?;
            load_user(tx, email)
        })
    }

    fn add_record(&mut self, record: &NewRecord) -> Result<RecordRow> {
        check_name(&record.name)?;
        if record.entity.as_str() == EntityName::SYSTEMUSER {
            return Err(InvalidValue(
                "a systemuser record is a CRM user: add it with `crmsync user add`".into(),
            )
            .into());
        }
        self.write(|tx| {
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
        })
    }

    fn records(&self, entity: Option<&EntityName>) -> Result<Vec<RecordRow>> {
        self.read(|conn| match entity {
            Some(entity) => load_records(conn, "r.entity = ?1", &[&entity.as_str()]),
            None => load_records(conn, "1", &[]),
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
            let mut columns: Vec<(&str, Value)> = Vec::new();
            for change in changes {
                match change {
                    RecordChange::Name(name) => {
                        check_name(name)?;
                        columns.push(("name", Value::Text(name.trim().to_owned())));
                    }
                    RecordChange::Emails(emails) => replace_emails(tx, &id, emails)?,
                    RecordChange::Phones(phones) => replace_phones(tx, &id, phones)?,
                    RecordChange::Parent(parent) => {
                        let value = match parent {
                            Some(parent) => {
                                let parent = record_ref_by_number(tx, parent)?;
                                check_parent(tx, &id, &parent)?;
                                Value::Text(parent.id.to_string())
                            }
                            None => Value::Null,
                        };
                        columns.push(("parent_id", value));
                    }
                    RecordChange::Owner(owner) => {
                        let value = match owner {
                            Some(owner) => Value::Text(user_id_by_email(tx, owner)?),
                            None => Value::Null,
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
            execute_cached(tx, "DELETE FROM records WHERE id = ?1", [&id])?;
            Ok(())
        })
    }

    fn records_with_email(&self, address: &EmailAddress) -> Result<Vec<Candidate>> {
        self.read(|conn| candidates_for(conn, address))
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
            execute_cached(
                tx,
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
            let mut statement = conn.prepare(
                "SELECT record2_id, role1, role2 FROM connections WHERE record1_id = ?1
                 UNION ALL
                 SELECT record1_id, role2, role1 FROM connections WHERE record2_id = ?1",
            )?;
            let raw = statement
                .query_map([own.id.to_string()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
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

    fn add_activity(&mut self, activity: &NewActivity) -> Result<ActivityRow> {
        let state = activity
            .state
            .unwrap_or_else(|| activity.activity_type.initial_crm_state());
        check_state(activity.activity_type, state)?;
        check_span(activity.start, activity.end)?;
        let id = ActivityId(uuid::Uuid::new_v4());
        self.write(|tx| {
            let owner_id = user_id_by_email(tx, &activity.owner)?;
            let regarding_id = match &activity.regarding {
                Some(number) => Some(record_ref_by_number(tx, number)?.id.to_string()),
                None => None,
            };
            let all_day = activity.start.is_some_and(|w| w.is_day());
            execute_cached(
                tx,
                "INSERT INTO activities (id, type, owner_id, regarding_id, subject, state,
                     description, location, start_at, end_at, all_day, due_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                ],
            )?;
            insert_parties(tx, id, &activity.parties)?;
            load_activity(tx, id)
        })
    }

    fn activities(&self, filter: &ActivityFilter) -> Result<Vec<ActivityRow>> {
        self.read(|conn| {
            let mut sql = String::from("SELECT id FROM activities WHERE 1");
            let mut args: Vec<Value> = Vec::new();
            if let Some(activity_type) = filter.activity_type {
                args.push(Value::Text(activity_type.as_str().to_owned()));
                sql.push_str(&format!(" AND type = ?{}", args.len()));
            }
            if let Some(mailbox) = &filter.mailbox {
                args.push(Value::Text(mailbox.clone()));
                sql.push_str(&format!(
                    " AND id IN (SELECT crm_id FROM sync_links WHERE crm_kind = 'activity' AND mailbox = ?{})",
                    args.len()
                ));
            }
            sql.push_str(" ORDER BY created, id");
            let mut statement = conn.prepare(&sql)?;
            let ids = statement
                .query_map(rusqlite::params_from_iter(args), |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
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
            let mut statement = conn
                .prepare("SELECT id FROM activities WHERE id >= ?1 AND id < ?1 || 'g' LIMIT 2")?;
            let found = statement
                .query_map([&wanted], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
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
            let mut columns: Vec<(&str, Value)> = Vec::new();
            for change in changes {
                match change {
                    ActivityChange::Subject(subject) => {
                        columns.push(("subject", Value::Text(subject.clone())))
                    }
                    ActivityChange::Description(v) => columns.push(("description", text_value(v))),
                    ActivityChange::Location(v) => columns.push(("location", text_value(v))),
                    ActivityChange::Start(when) => {
                        columns.push(("start_at", when_value(*when)));
                        columns.push((
                            "all_day",
                            Value::Integer(when.is_some_and(|w| w.is_day()) as i64),
                        ));
                    }
                    ActivityChange::End(when) => columns.push(("end_at", when_value(*when))),
                    ActivityChange::Due(when) => columns.push(("due_at", when_value(*when))),
                    ActivityChange::State(state) => {
                        check_state(current.activity_type, *state)?;
                        columns.push(("state", Value::Text(state.as_str().to_owned())));
                    }
                    ActivityChange::Priority(priority) => {
                        columns.push(("priority", priority.map_or(Value::Null, Value::Integer)))
                    }
                    ActivityChange::PercentComplete(percent) => {
                        if percent.is_some_and(|p| p > 100) {
                            return Err(InvalidValue(
                                "percent complete must be from 0 to 100".into(),
                            )
                            .into());
                        }
                        columns.push((
                            "percent_complete",
                            percent.map_or(Value::Null, |p| Value::Integer(p.into())),
                        ))
                    }
                    ActivityChange::Regarding(number) => {
                        let value = match number {
                            Some(number) => {
                                Value::Text(record_ref_by_number(tx, number)?.id.to_string())
                            }
                            None => Value::Null,
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
            let deleted =
                execute_cached(tx, "DELETE FROM activities WHERE id = ?1", [id.to_string()])?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("activity {id}")));
            }
            Ok(())
        })
    }

    fn email_activity(&self, message_id: &str, content_hash: &str) -> Result<Option<ActivityId>> {
        self.read(|conn| {
            let id: Option<String> = query_row_cached(
                conn,
                "SELECT id FROM activities WHERE type = 'email' AND message_id = ?1
                     AND content_hash = ?2 ORDER BY created LIMIT 1",
                [message_id, content_hash],
                |row| row.get(0),
            )
            .optional()?;
            id.map(|id| Ok(ActivityId(parse_uuid("activities", &id)?)))
                .transpose()
        })
    }

    fn track_email(
        &mut self,
        email: &NewEmail,
        link: &SyncLink,
    ) -> Result<(ActivityId, Option<String>)> {
        let id = link_activity(link)?;
        self.write(|tx| {
            let owner_id = user_id_by_email(tx, &email.owner)?;
            let (regarding, warning) = regarding_id(tx, email.regarding.as_ref())?;
            // Looked up inside the write transaction: the same message tracked in two
            // mailboxes at the same moment is still one activity.
            let existing: Option<String> = query_row_cached(
                tx,
                "SELECT id FROM activities WHERE message_id = ?1 AND content_hash = ?2 LIMIT 1",
                params![email.message_id, email.content_hash],
                |row| row.get(0),
            )
            .optional()?;
            if let Some(existing) = existing {
                let existing = ActivityId(parse_uuid("activities", &existing)?);
                if email.regarding.is_some() {
                    execute_cached(
                        tx,
                        "UPDATE activities SET regarding_id = ?1 WHERE id = ?2 AND regarding_id IS NOT ?1",
                        params![regarding, existing.to_string()],
                    )?;
                }
                let mut link = link.clone();
                link.crm = CrmRef::Activity(existing);
                upsert_link(tx, &link)?;
                return Ok((existing, warning));
            }
            let (state, direction) = if email.outgoing {
                ("sent", "outgoing")
            } else {
                ("received", "incoming")
            };
            execute_cached(tx,
                "INSERT INTO activities (id, type, owner_id, regarding_id, subject, state,
                     description, html_body, message_id, content_hash, in_reply_to,
                     message_references, direction, sent_at, received_at, created_by)
                 VALUES (?1, 'email', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    id.to_string(),
                    owner_id,
                    regarding,
                    email.subject,
                    state,
                    email.text_body,
                    email.html_body,
                    email.message_id,
                    email.content_hash,
                    email.in_reply_to,
                    email.references,
                    direction,
                    email.date,
                    if email.outgoing { None } else { email.date.clone() },
                    email.mailbox,
                ],
            )?;
            insert_parties(tx, id, &email.parties)?;
            for (position, attachment) in email.attachments.iter().enumerate() {
                execute_cached(tx,
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
            upsert_link(tx, link)?;
            Ok((id, warning))
        })
    }

    fn linked_activities(&self, mailbox: &str) -> Result<HashMap<ActivityId, LinkedActivity>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT a.id, u.email, r.number, a.version FROM sync_links l
                 JOIN activities a ON a.id = l.crm_id
                 LEFT JOIN users u ON u.record_id = a.owner_id
                 LEFT JOIN records r ON r.id = a.regarding_id
                 WHERE l.mailbox = ?1 AND l.crm_kind = 'activity'",
            )?;
            let mut rows = statement.query([mailbox])?;
            let mut found = HashMap::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let regarding: Option<String> = row.get(2)?;
                found.insert(
                    ActivityId(parse_uuid("activities", &id)?),
                    LinkedActivity {
                        owner: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        regarding: regarding
                            .map(|n| parse_field("records", &id, RecordNumber::new(&n)))
                            .transpose()?,
                        version: row.get(3)?,
                    },
                );
            }
            Ok(found)
        })
    }

    fn update_link(
        &mut self,
        link: &SyncLink,
        regarding: Option<Option<&RecordNumber>>,
    ) -> Result<Option<String>> {
        self.write(|tx| {
            let mut warning = None;
            if let Some(number) = regarding {
                let id = link_activity(link)?;
                let (record_id, unknown) = regarding_id(tx, number)?;
                warning = unknown;
                execute_cached(tx,
                    "UPDATE activities SET regarding_id = ?1 WHERE id = ?2 AND regarding_id IS NOT ?1",
                    params![record_id, id.to_string()],
                )?;
            }
            upsert_link(tx, link)?;
            Ok(warning)
        })
    }

    fn untrack_and_delete(&mut self, link: &SyncLink) -> Result<()> {
        let id = link_activity(link)?;
        self.write(|tx| {
            // Drop the link first, then delete the target.
            execute_cached(tx,
                "DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![link.mailbox, link.kind.as_str(), link.identity.storage_key()],
            )?;
            execute_cached(tx, "DELETE FROM activities WHERE id = ?1", [id.to_string()])?;
            Ok(())
        })
    }

    fn linked_items(&self, mailbox: &str) -> Result<HashMap<CrmRef, crate::LinkedItem>> {
        self.read(|conn| items::linked(conn, mailbox))
    }

    fn item_fields(&self, crm: CrmRef) -> Result<Option<Snapshot>> {
        self.read(|conn| items::item_fields(conn, crm))
    }

    fn item_by_uid(
        &self,
        kind: ItemKind,
        uid: &str,
        owner: &EmailAddress,
    ) -> Result<Option<(CrmRef, ItemCreator)>> {
        self.read(|conn| items::by_uid(conn, kind, uid, owner))
    }

    fn track_items(&mut self, items: &[(crate::NewItem, SyncLink)]) -> Result<Vec<crate::Tracked>> {
        self.write(|tx| {
            let mut results = Vec::with_capacity(items.len());
            for (item, link) in items {
                let mut warnings = Vec::new();
                let mut link = link.clone();
                // Looked up inside the write transaction, so two mailboxes tracking the same
                // meeting at the same moment make one row.
                let linked = match items::by_uid(tx, item.kind, &item.uid, &item.owner)? {
                    Some((crm, creator)) => {
                        // Linked without a CRM version, so a merge follows. The base is what
                        // both sides are known to share: for a file crmsync wrote for this
                        // CRM-created row (a crash came before its link), the file as written;
                        // for the same item tracked in another mailbox, nothing, so every
                        // field on which the two differ is a conflict the policy settles.
                        items::set_uid(tx, crm, &item.uid)?;
                        link.crm = crm;
                        link.created_by = creator;
                        link.crm_version = None;
                        // Neither side's version is known: the merge reads both.
                        link.item_version = None;
                        if creator == ItemCreator::Mailbox {
                            link.base = Snapshot::new();
                        }
                        Some(creator)
                    }
                    None => {
                        items::insert_item(tx, link.crm, item, &mut warnings)?;
                        link.crm_version = items::row_version(tx, link.crm)?;
                        // The base is what the CRM holds, which is the item's fields unless
                        // the CRM could not take some (an unknown regarding number, an address
                        // that is none): those stay differences, never taken for CRM edits.
                        if let Some(stored) = items::item_fields(tx, link.crm)? {
                            link.base = stored_base(&link.base, stored);
                        }
                        None
                    }
                };
                upsert_link(tx, &link)?;
                results.push(crate::Tracked { linked, warnings });
            }
            Ok(results)
        })
    }

    fn link_item(&mut self, link: &SyncLink, uid: &str) -> Result<i64> {
        self.write(|tx| {
            let before = items::row_version(tx, link.crm)?
                .ok_or_else(|| StoreError::NotFound("the linked CRM row".into()))?;
            items::set_uid(tx, link.crm, uid)?;
            let version = items::row_version(tx, link.crm)?.unwrap_or(before);
            let mut link = link.clone();
            // Recording the UID bumped the version. A link that knew the row's version still
            // does; one whose version moved since its base was read (an edit came in between)
            // or that never knew it does not, so the next pass merges.
            link.crm_version = match link.crm_version {
                Some(expected) if expected == before => Some(version),
                _ => None,
            };
            upsert_link(tx, &link)?;
            Ok(version)
        })
    }

    fn update_item(
        &mut self,
        link: &SyncLink,
        expected_version: i64,
        writes: &[FieldWrite],
        owner: &EmailAddress,
    ) -> Result<(i64, Vec<String>)> {
        self.write(|tx| {
            let mut warnings = Vec::new();
            let found = items::row_version(tx, link.crm)?
                .ok_or_else(|| StoreError::NotFound("the linked CRM row".into()))?;
            if found != expected_version {
                return Err(StoreError::Conflict(format!(
                    "the CRM row changed while it was merged (version {expected_version} is now {found}); merged again on the next pass"
                )));
            }
            match link.crm {
                CrmRef::Activity(id) => items::write_activity(tx, id, writes, &mut warnings)?,
                CrmRef::Record(id) => items::write_contact(tx, id, owner, writes, &mut warnings)?,
            }
            let version = items::row_version(tx, link.crm)?.unwrap_or(found);
            let mut link = link.clone();
            link.crm_version = Some(version);
            // The CRM's fields as stored become the base (see `track_items`).
            if let Some(stored) = items::item_fields(tx, link.crm)? {
                link.base = stored_base(&link.base, stored);
            }
            upsert_link(tx, &link)?;
            Ok((version, warnings))
        })
    }

    fn delete_item(&mut self, link: &SyncLink) -> Result<()> {
        self.write(|tx| {
            execute_cached(tx,
                "DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![link.mailbox, link.kind.as_str(), link.identity.storage_key()],
            )?;
            match link.crm {
                CrmRef::Activity(id) => {
                    execute_cached(tx, "DELETE FROM activities WHERE id = ?1", [id.to_string()])?;
                }
                CrmRef::Record(id) => {
                    let key = id.to_string();
                    let regarding =
                        count(tx, "SELECT count(*) FROM activities WHERE regarding_id = ?1", &key)?;
                    if regarding > 0 {
                        return Err(StoreError::Refused(format!(
                            "the contact is the regarding record of {}: it is kept",
                            how_many(regarding, "activity", "activities")
                        )));
                    }
                    execute_cached(tx, "DELETE FROM records WHERE id = ?1", [key])?;
                }
            }
            Ok(())
        })
    }

    fn created_items(
        &self,
        mailbox: &str,
        owner: &EmailAddress,
        calendar: bool,
        contacts: bool,
    ) -> Result<Vec<crate::CreatedItem>> {
        self.read(|conn| items::created(conn, mailbox, owner, calendar, contacts))
    }

    fn log_conflict(&mut self, conflict: &ConflictRow) -> Result<()> {
        let (crm_kind, crm_id) = match conflict.crm.as_deref().and_then(|c| c.split_once(':')) {
            Some((kind, id)) => (Some(kind.to_owned()), Some(id.to_owned())),
            None => (None, None),
        };
        self.write(|tx| {
            execute_cached(
                tx,
                "INSERT INTO conflicts (mailbox, item_kind, item_identity, crm_kind, crm_id, field,
                     base_value, mailbox_value, crm_value, winner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    conflict.mailbox,
                    conflict.item_kind,
                    conflict.item,
                    crm_kind,
                    crm_id,
                    conflict.field,
                    conflict.base,
                    conflict.mailbox_value,
                    conflict.crm_value,
                    conflict.winner,
                ],
            )?;
            Ok(())
        })
    }

    fn conflicts(&self, mailbox: Option<&str>, limit: usize) -> Result<Vec<ConflictRow>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT mailbox, item_kind, item_identity, crm_kind, crm_id, field, base_value,
                        mailbox_value, crm_value, winner, at
                 FROM conflicts WHERE ?1 IS NULL OR mailbox = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![mailbox, limit as i64], |row| {
                    let kind: Option<String> = row.get(3)?;
                    let id: Option<String> = row.get(4)?;
                    Ok(ConflictRow {
                        mailbox: row.get(0)?,
                        item_kind: row.get(1)?,
                        item: row.get(2)?,
                        crm: kind.zip(id).map(|(k, i)| format!("{k}:{i}")),
                        field: row.get(5)?,
                        base: row.get(6)?,
                        mailbox_value: row.get(7)?,
                        crm_value: row.get(8)?,
                        winner: row.get(9)?,
                        at: row.get(10)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn put_link(&mut self, link: &SyncLink) -> Result<()> {
        self.write(|tx| upsert_link(tx, link))
    }

    fn link(
        &self,
        mailbox: &str,
        kind: ItemKind,
        identity: &ItemIdentity,
    ) -> Result<Option<SyncLink>> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {LINK_COLUMNS} FROM sync_links
                 WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3"
            ))?;
            let mut rows =
                statement.query(params![mailbox, kind.as_str(), identity.storage_key()])?;
            match rows.next()? {
                Some(row) => Ok(Some(link_from_row(row)?)),
                None => Ok(None),
            }
        })
    }

    fn links(&self, mailbox: &str) -> Result<Vec<SyncLink>> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {LINK_COLUMNS} FROM sync_links WHERE mailbox = ?1 ORDER BY id"
            ))?;
            let mut rows = statement.query([mailbox])?;
            let mut links = Vec::new();
            while let Some(row) = rows.next()? {
                links.push(link_from_row(row)?);
            }
            Ok(links)
        })
    }

    fn links_of(&self, mailbox: &str, kinds: &[ItemKind]) -> Result<Vec<SyncLink>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {LINK_COLUMNS} FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 ORDER BY id"
            ))?;
            let mut links = Vec::new();
            for kind in kinds {
                let mut rows = statement.query(params![mailbox, kind.as_str()])?;
                while let Some(row) = rows.next()? {
                    links.push(link_from_row(row)?);
                }
            }
            Ok(links)
        })
    }

    fn link_count(&self, mailbox: &str, kind: ItemKind) -> Result<u64> {
        self.read(|conn| {
            let count: i64 = query_row_cached(
                conn,
                "SELECT count(*) FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2",
                params![mailbox, kind.as_str()],
                |row| row.get(0),
            )?;
            Ok(count.max(0) as u64)
        })
    }

    fn delete_link(
        &mut self,
        mailbox: &str,
        kind: ItemKind,
        identity: &ItemIdentity,
    ) -> Result<bool> {
        self.write(|tx| {
            let deleted = execute_cached(tx,
                "DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![mailbox, kind.as_str(), identity.storage_key()],
            )?;
            Ok(deleted > 0)
        })
    }

    fn sync_state(&self, mailbox: &str, scope: &str) -> Result<Option<SyncState>> {
        self.read(|conn| {
            Ok(query_row_cached(
                conn,
                "SELECT uid_validity, highest_modseq, sync_token, last_full_scan
                     FROM sync_state WHERE mailbox = ?1 AND scope = ?2",
                [mailbox, scope],
                |row| {
                    Ok(SyncState {
                        uid_validity: row.get(0)?,
                        highest_modseq: row
                            .get::<_, Option<i64>>(1)?
                            .map(|modseq| modseq.max(0) as u64),
                        sync_token: row.get(2)?,
                        last_full_scan: row.get(3)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn put_sync_state(&mut self, mailbox: &str, scope: &str, state: &SyncState) -> Result<()> {
        // RFC 7162 keeps mod-sequences within 63 bits, so they fit SQLite's integer.
        let modseq = state
            .highest_modseq
            .map(|modseq| {
                i64::try_from(modseq)
                    .map_err(|_| InvalidValue(format!("HIGHESTMODSEQ {modseq} exceeds 63 bits")))
            })
            .transpose()?;
        self.write(|tx| {
            execute_cached(tx,
                "INSERT INTO sync_state (mailbox, scope, uid_validity, highest_modseq, sync_token, last_full_scan)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (mailbox, scope) DO UPDATE SET
                     uid_validity = excluded.uid_validity, highest_modseq = excluded.highest_modseq,
                     sync_token = excluded.sync_token, last_full_scan = excluded.last_full_scan,
                     modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![
                    mailbox,
                    scope,
                    state.uid_validity,
                    modseq,
                    state.sync_token,
                    state.last_full_scan
                ],
            )?;
            Ok(())
        })
    }

    fn changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<JournalEntry>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT seq, entity, row_id, op, origin, changed_at FROM change_journal
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut rows = statement.query(params![after_seq, limit as i64])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let entity: String = row.get(1)?;
                let op: String = row.get(3)?;
                let bad = |what: &str| bad_row("change_journal", &seq.to_string(), what);
                entries.push(JournalEntry {
                    seq,
                    entity: match entity.as_str() {
                        "record" => JournalEntity::Record,
                        "user" => JournalEntity::User,
                        "activity" => JournalEntity::Activity,
                        _ => return Err(bad("unknown entity")),
                    },
                    row_id: row.get(2)?,
                    op: match op.as_str() {
                        "insert" => JournalOp::Insert,
                        "update" => JournalOp::Update,
                        "delete" => JournalOp::Delete,
                        _ => return Err(bad("unknown op")),
                    },
                    origin: row.get(4)?,
                    changed_at: row.get(5)?,
                });
            }
            Ok(entries)
        })
    }

    fn journal_head(&self) -> Result<i64> {
        self.read(|conn| {
            Ok(query_row_cached(
                conn,
                "SELECT coalesce(max(seq), 0) FROM change_journal",
                [],
                |row| row.get(0),
            )?)
        })
    }

    fn journal_cursor(&self, consumer: &str) -> Result<i64> {
        self.read(|conn| {
            Ok(query_row_cached(
                conn,
                "SELECT seq FROM journal_cursors WHERE consumer = ?1",
                [consumer],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0))
        })
    }

    fn set_journal_cursor(&mut self, consumer: &str, seq: i64) -> Result<()> {
        self.write(|tx| {
            execute_cached(
                tx,
                "INSERT INTO journal_cursors (consumer, seq) VALUES (?1, ?2)
                 ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
                params![consumer, seq],
            )?;
            Ok(())
        })
    }

    fn prune_journal(&mut self, upto_seq: i64) -> Result<usize> {
        self.write(|tx| {
            execute_cached(tx, "DELETE FROM change_journal WHERE seq <= ?1", [upto_seq])
        })
    }
}

/// Inserts the parties of an activity, each resolved to a record (SPEC section 4).
/// A link's base after a write: what the item holds, and what the CRM stored where that
/// differs (see `crmsync_core::collection::two_sided_base`).
fn stored_base(item: &Snapshot, stored: Snapshot) -> Snapshot {
    crmsync_core::collection::two_sided_base(item, &stored)
}

/// Adds parties after the activity's existing ones.
fn insert_parties(conn: &Connection, id: ActivityId, parties: &[crate::NewParty]) -> Result<()> {
    let first: i64 = query_row_cached(
        conn,
        "SELECT COALESCE(MAX(position) + 1, 0) FROM parties WHERE activity_id = ?1",
        [id.to_string()],
        |row| row.get(0),
    )?;
    for (offset, party) in parties.iter().enumerate() {
        let position = first + offset as i64;
        let resolution = resolve::resolve(&candidates_for(conn, &party.address)?);
        let record_id = match &resolution {
            Resolution::Resolved(record) => Some(record.to_string()),
            _ => None,
        };
        execute_cached(
            conn,
            "INSERT INTO parties (activity_id, position, role, address, display_name, record_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id.to_string(),
                position,
                party.role.as_str(),
                party.address.as_str(),
                party.display_name,
                record_id
            ],
        )?;
        if let Resolution::Ambiguous(candidates) = resolution {
            let party_id = conn.last_insert_rowid();
            for candidate in candidates {
                execute_cached(
                    conn,
                    "INSERT INTO party_candidates (party_id, record_id) VALUES (?1, ?2)",
                    params![party_id, candidate.to_string()],
                )?;
            }
        }
    }
    Ok(())
}

fn upsert_link(conn: &Connection, link: &SyncLink) -> Result<()> {
    let base: serde_json::Map<String, serde_json::Value> = link
        .base
        .fields()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    let base = serde_json::Value::Object(base).to_string();
    let (crm_kind, crm_id) = (link.crm.kind(), link.crm.uuid().to_string());
    execute_cached(
        conn,
        "INSERT INTO sync_links (mailbox, item_kind, item_identity, item_location, crm_kind,
             crm_id, base, item_version, crm_version, created_by, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (mailbox, item_kind, item_identity) DO UPDATE SET
             item_location = excluded.item_location, crm_kind = excluded.crm_kind,
             crm_id = excluded.crm_id, base = excluded.base,
             item_version = excluded.item_version, crm_version = excluded.crm_version,
             created_by = excluded.created_by, state = excluded.state,
             modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![
            link.mailbox,
            link.kind.as_str(),
            link.identity.storage_key(),
            link.location.storage_key(),
            crm_kind,
            crm_id,
            base,
            link.item_version.as_ref().map(|v| v.0.as_str()),
            link.crm_version,
            link.created_by.as_str(),
            link.state.as_str(),
        ],
    )?;
    Ok(())
}

/// The id of a record by number, or a warning when there is none.
fn regarding_id(
    conn: &Connection,
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

fn link_activity(link: &SyncLink) -> Result<ActivityId> {
    match link.crm {
        CrmRef::Activity(id) => Ok(id),
        CrmRef::Record(_) => {
            Err(InvalidValue("this link points at a record, not an activity".into()).into())
        }
    }
}

fn check_state(activity_type: ActivityType, state: ActivityState) -> Result<()> {
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
fn check_span(start: Option<crate::When>, end: Option<crate::When>) -> Result<()> {
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
fn update_columns(
    conn: &Connection,
    table: &str,
    id: &str,
    columns: Vec<(&str, Value)>,
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
    let mut args: Vec<Value> = vec![Value::Text(id.to_owned())];
    args.extend(columns.into_iter().map(|(_, value)| value));
    execute_cached(conn, &sql, rusqlite::params_from_iter(args))?;
    Ok(())
}
