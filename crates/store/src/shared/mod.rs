//! The store traits, implemented once for both backends over [`Sql`](crate::sql::Sql): each
//! module holds one concern's statements (users, records, activities, links...). A backend
//! supplies only [`Backend`]: a write transaction marked with its origin, a read transaction
//! with a consistent snapshot, and the rules chosen by whoever opened it.

use crmsync_core::model::InvalidValue;

use crate::sql::Sql;
use crate::{Result, Rules, StoreError};

mod activities;
mod conflicts;
mod connections;
mod email;
mod failures;
mod item_rows;
mod items;
mod journal;
mod library;
mod links;
mod outbound;
mod records;
mod users;

/// What a backend gives the shared implementation. Every store method is one call of
/// [`Backend::write`] or [`Backend::read`]; their bodies may run on another thread (the
/// PostgreSQL client cannot block inside an async runtime's thread), so they are `Send`.
pub(crate) trait Backend {
    fn rules(&self) -> Rules;
    /// Runs `body` in one write transaction whose journal rows carry this store's origin.
    fn write<T: Send>(&mut self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T>;
    /// Runs `body` in one read transaction: a consistent snapshot across its queries.
    fn read<T: Send>(&self, body: impl FnOnce(&mut dyn Sql) -> Result<T> + Send) -> Result<T>;
}

/// How many values one `IN (...)` list takes: well under SQLite's limit of bound parameters,
/// and few enough distinct statement shapes for the statement cache.
pub(crate) const IN_CHUNK: usize = 200;

/// `?FIRST, ?FIRST+1, ...`: `count` numbered parameters for an `IN (...)` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// Reading rows that any program may have written: a value that does not follow the schema is
// a `BadRow`, naming the table and the row, never a panic.

pub(crate) fn bad_row(table: &'static str, row: &str, message: impl ToString) -> StoreError {
    StoreError::BadRow {
        table,
        row: row.to_owned(),
        message: message.to_string(),
    }
}

pub(crate) fn parse_uuid(table: &'static str, text: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|e| bad_row(table, text, format!("bad uuid: {e}")))
}

pub(crate) fn parse_field<T>(
    table: &'static str,
    row: &str,
    parsed: Result<T, InvalidValue>,
) -> Result<T> {
    parsed.map_err(|e| bad_row(table, row, e))
}
