//! The SQL both backends run: one implementation of the store traits over a small [`Sql`]
//! trait, which SQLite and PostgreSQL each implement for one open transaction.
//!
//! The statements are written once, in the part of SQL the two databases read alike:
//! `?N` parameters, `ON CONFLICT` upserts, `RETURNING`, `IS [NOT] DISTINCT FROM`, `coalesce`,
//! `substr` with positive positions. Where PostgreSQL reads a statement differently, its
//! backend rewrites three things before preparing it, and nothing else:
//! - `?N` becomes `$N`;
//! - `COLLATE NOCASE` goes: the columns SQLite compares without case are `citext` there;
//! - SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` becomes `crmsync_now()`, a function of
//!   the PostgreSQL schema that writes the same text.
//!
//! Values cross as [`Param`] (bound) and [`Cell`] (read); booleans are integers 0 and 1 in
//! both schemas, and PostgreSQL's `boolean` results (`EXISTS`) read as those integers.

use std::borrow::Cow;

use crate::{Result, StoreError};

/// A value bound to a statement's parameter.
#[derive(Debug, Clone)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

impl Param<'_> {
    /// Owned text, for a parameter list built up (`update_columns`).
    pub(crate) fn owned_text(text: impl Into<String>) -> Param<'static> {
        Param::Text(Cow::Owned(text.into()))
    }
}

/// A Rust value bound as a [`Param`], borrowed where it can be.
pub(crate) trait ToParam {
    fn to_param(&self) -> Param<'_>;
}

macro_rules! to_param_int {
    ($($int:ty),*) => {$(
        impl ToParam for $int {
            fn to_param(&self) -> Param<'_> {
                Param::Int(i64::from(*self))
            }
        }
    )*};
}
to_param_int!(i64, i32, u32, u16, u8, bool);

impl ToParam for str {
    fn to_param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}

impl ToParam for String {
    fn to_param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}

impl ToParam for [u8] {
    fn to_param(&self) -> Param<'_> {
        Param::Blob(Cow::Borrowed(self))
    }
}

impl ToParam for Vec<u8> {
    fn to_param(&self) -> Param<'_> {
        Param::Blob(Cow::Borrowed(self))
    }
}

impl ToParam for Param<'_> {
    fn to_param(&self) -> Param<'_> {
        self.clone()
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param<'_> {
        (**self).to_param()
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::to_param)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(Cow::Borrowed(value))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(Cow::Borrowed(value))
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Int(i64::from(value))
    }
}

impl<'a, T: ToParam> From<&'a Option<T>> for Param<'a> {
    fn from(value: &'a Option<T>) -> Self {
        value.to_param()
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Param::Null, Param::Int)
    }
}

impl From<Option<u8>> for Param<'_> {
    fn from(value: Option<u8>) -> Self {
        value.map_or(Param::Null, |value| Param::Int(i64::from(value)))
    }
}

/// The parameters of a statement: `params![a, b]` is `&[a.to_param(), b.to_param()]`, each
/// borrowed (a temporary, `id.to_string()`, lives to the end of the statement).
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::ToParam::to_param(&$value)),*][..]
    };
}
pub(crate) use params;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Int(_) => "an integer",
            Cell::Real(_) => "a real",
            Cell::Text(_) => "text",
            Cell::Blob(_) => "a blob",
        }
    }
}

/// One row of a result, its cells in the order the statement names its columns.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) cells: Vec<Cell>,
}

impl Row {
    /// Column `index` as a `T`; a cell of another type is a backend error naming the column.
    pub(crate) fn get<T: FromCell>(&self, index: usize) -> Result<T> {
        let cell = self.cells.get(index).unwrap_or(&Cell::Null);
        T::from_cell(cell).ok_or_else(|| {
            StoreError::Backend(format!(
                "column {index} holds {}, not {}",
                cell.kind(),
                T::EXPECTED
            ))
        })
    }
}

/// A Rust type a [`Cell`] converts to.
pub(crate) trait FromCell: Sized {
    const EXPECTED: &'static str;
    fn from_cell(cell: &Cell) -> Option<Self>;
}

impl FromCell for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Int(value) => Some(*value),
            _ => None,
        }
    }
}

impl FromCell for u32 {
    const EXPECTED: &'static str = "a small integer";
    fn from_cell(cell: &Cell) -> Option<Self> {
        i64::from_cell(cell).and_then(|value| u32::try_from(value).ok())
    }
}

macro_rules! from_cell_int {
    ($($int:ty),*) => {$(
        impl FromCell for $int {
            const EXPECTED: &'static str = concat!("an integer that fits ", stringify!($int));
            fn from_cell(cell: &Cell) -> Option<Self> {
                i64::from_cell(cell).and_then(|value| <$int>::try_from(value).ok())
            }
        }
    )*};
}
from_cell_int!(u8, u16, i32, u64, usize);

impl FromCell for bool {
    const EXPECTED: &'static str = "0 or 1";
    fn from_cell(cell: &Cell) -> Option<Self> {
        i64::from_cell(cell).map(|value| value != 0)
    }
}

impl FromCell for String {
    const EXPECTED: &'static str = "text";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl FromCell for Vec<u8> {
    const EXPECTED: &'static str = "a blob";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Blob(bytes) => Some(bytes.clone()),
            // SQLite lets another program store text in a blob column.
            Cell::Text(text) => Some(text.clone().into_bytes()),
            _ => None,
        }
    }
}

impl FromCell for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Real(value) => Some(*value),
            Cell::Int(value) => Some(*value as f64),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// One open transaction of either backend. Every statement goes through the connection's
/// statement cache: a sync pass runs the same few statements thousands of times.
pub(crate) trait Sql {
    /// Runs a statement; how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize>;
    /// Runs a query; every row of its result.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>>;

    /// The first row of a query's result, if any.
    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// The first column of the first row, which the query always has (`count(*)`).
pub(crate) fn value<T: FromCell>(db: &mut dyn Sql, sql: &str, params: &[Param<'_>]) -> Result<T> {
    match db.query_opt(sql, params)? {
        Some(row) => row.get(0),
        None => Err(StoreError::Backend(format!("no row from: {sql}"))),
    }
}

/// The first column of the first row, `None` when there is no row.
pub(crate) fn optional<T: FromCell>(
    db: &mut dyn Sql,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<T>> {
    db.query_opt(sql, params)?.map(|row| row.get(0)).transpose()
}

/// The first column of every row.
pub(crate) fn column<T: FromCell>(
    db: &mut dyn Sql,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<T>> {
    db.query(sql, params)?
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A UTC time as the store writes them (`2026-12-01T10:00:00.000Z`, SQLite's
/// `strftime('%Y-%m-%dT%H:%M:%fZ')`), for a time computed in Rust.
pub(crate) fn utc_text(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A statement in SQLite's dialect, rewritten for PostgreSQL (see the module's notes).
pub(crate) fn to_postgres(sql: &str) -> String {
    let sql = sql
        .replace(" COLLATE NOCASE", "")
        .replace("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", "crmsync_now()");
    let mut out = String::with_capacity(sql.len() + 8);
    let mut in_quote = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                out.push(c);
            }
            '?' if !in_quote && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_rewritten_for_postgres_outside_quotes_only() {
        assert_eq!(
            to_postgres("SELECT '?1', x FROM t WHERE a = ?1 COLLATE NOCASE AND b IN (?2, ?10)"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b IN ($2, $10)"
        );
        assert_eq!(
            to_postgres("UPDATE t SET m = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE c = '?'"),
            "UPDATE t SET m = crmsync_now() WHERE c = '?'"
        );
    }

    #[test]
    fn cells_convert_or_name_the_column() {
        let row = Row {
            cells: vec![Cell::Int(1), Cell::Null, Cell::Text("x".into())],
        };
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        let error = row.get::<i64>(2).unwrap_err().to_string();
        assert!(error.contains("column 2 holds text"), "{error}");
    }
}
