//! Times as people type them on the command line.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use crmsync_store::When;

use crate::{UsageError, usage};

/// Parses `2026-12-01` (a whole day), `2026-12-01T10:00[:00]` or `2026-12-01 10:00` (local
/// time) and RFC 3339 (`2026-12-01T10:00:00Z`, `...+01:00`). An empty text is `None`.
pub fn parse(text: &str, what: &str) -> anyhow::Result<Option<When>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        usage(format!(
            "invalid time {text:?} for {what}: use 2026-12-01 (all day), 2026-12-01T10:00 (local time) or 2026-12-01T10:00:00Z"
        ))
    };
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Some(When::Day(date)));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(When::At(instant.with_timezone(&Utc))));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .ok_or_else(bad)?;
    match Local.from_local_datetime(&local).earliest() {
        Some(instant) => Ok(Some(When::At(instant.with_timezone(&Utc)))),
        None => Err(UsageError(format!(
            "{text:?} for {what} does not exist in the local time zone (a daylight-saving gap)"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse("2026-12-01", "--start")
                .unwrap()
                .unwrap()
                .to_storage(),
            "2026-12-01"
        );
        assert_eq!(
            parse("2026-12-01T10:00:00+01:00", "--start")
                .unwrap()
                .unwrap()
                .to_storage(),
            "2026-12-01T09:00:00Z"
        );
        assert!(matches!(
            parse("2026-12-01 10:00", "--start").unwrap(),
            Some(When::At(_))
        ));
        assert_eq!(parse("  ", "--start").unwrap(), None);
        let error = parse("tomorrow", "--due").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid time \"tomorrow\" for --due"),
            "{error}"
        );
    }
}
