//! iCalendar date and date-time values in the CRM's canonical form, and back.
//!
//! The CRM keeps instants in UTC (`2026-12-01T09:00:00Z`) and whole days as dates
//! (`2026-12-01`); an event keeps its time zone in a field of its own. Reading converts a
//! `TZID` local time to UTC with the IANA database; writing converts back to the same zone, so
//! a person's event keeps being expressed in their zone. A `TZID` that is not an IANA name (a
//! Windows name from a custom VTIMEZONE) and a floating time are read as UTC, and written back
//! the same way, so a round trip never moves the event.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::content::Property;

/// A value as the CRM holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    At(DateTime<Utc>),
    Day(NaiveDate),
}

impl Moment {
    pub fn canonical(self) -> String {
        match self {
            Moment::At(at) => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Moment::Day(day) => day.format("%Y-%m-%d").to_string(),
        }
    }

    /// Parses the canonical form (and RFC 3339 with an offset, for values other programs
    /// wrote to the store).
    pub fn from_canonical(text: &str) -> Option<Moment> {
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Some(Moment::Day(day));
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| Moment::At(at.with_timezone(&Utc)))
    }
}

fn zone(tzid: &str) -> Option<Tz> {
    // Some clients prefix a globally unique TZID with '/'.
    tzid.trim().trim_start_matches('/').parse().ok()
}

/// Reads a DATE or DATE-TIME property. `None` for a value that is neither.
pub fn read(property: &Property) -> Option<Moment> {
    let value = property.value.trim();
    let is_date = property
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || value.len() == 8;
    if is_date {
        return NaiveDate::parse_from_str(value, "%Y%m%d")
            .ok()
            .map(Moment::Day);
    }
    if let Some(utc) = value.strip_suffix('Z').or_else(|| value.strip_suffix('z')) {
        let local = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok()?;
        return Some(Moment::At(Utc.from_utc_datetime(&local)));
    }
    let local = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").ok()?;
    let at = match property.param("TZID").and_then(zone) {
        // A time skipped by a DST change is read as the moment after the gap.
        Some(tz) => tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })?
            .with_timezone(&Utc),
        None => Utc.from_utc_datetime(&local),
    };
    Some(Moment::At(at))
}

/// An RFC 5545 duration (`PT1H30M`, `P1D`, `-P2W`).
pub fn duration(text: &str) -> Option<chrono::Duration> {
    let text = text.trim();
    let (negative, text) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let mut rest = text.strip_prefix(['P', 'p'])?;
    let mut total = chrono::Duration::zero();
    let mut in_time = false;
    let mut any = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(['T', 't']) {
            in_time = true;
            rest = after;
            continue;
        }
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?.to_ascii_uppercase();
        total += match (unit, in_time) {
            ('W', false) => chrono::Duration::try_weeks(n)?,
            ('D', false) => chrono::Duration::try_days(n)?,
            ('H', true) => chrono::Duration::try_hours(n)?,
            ('M', true) => chrono::Duration::try_minutes(n)?,
            ('S', true) => chrono::Duration::try_seconds(n)?,
            _ => return None,
        };
        any = true;
        rest = &rest[digits + 1..];
    }
    any.then_some(if negative { -total } else { total })
}

/// A moment moved by a duration (a whole day stays a day).
pub fn add(moment: Moment, by: chrono::Duration) -> Option<Moment> {
    match moment {
        Moment::At(at) => at.checked_add_signed(by).map(Moment::At),
        Moment::Day(day) => day.checked_add_signed(by).map(Moment::Day),
    }
}

/// The iCalendar form of a moment: the value and the parameters it needs. An instant is written
/// in the zone `tzid` when that is an IANA name (as `TZID` local time), else in UTC.
pub fn write(moment: Moment, tzid: Option<&str>) -> (String, Option<&'static str>, Option<String>) {
    match moment {
        Moment::Day(day) => (day.format("%Y%m%d").to_string(), Some("DATE"), None),
        Moment::At(at) => match tzid.filter(|t| zone(t).is_some()) {
            Some(tzid) => {
                let tz = zone(tzid).expect("checked above");
                let local = at.with_timezone(&tz).naive_local();
                (
                    local.format("%Y%m%dT%H%M%S").to_string(),
                    None,
                    Some(tzid.to_owned()),
                )
            }
            None => (at.format("%Y%m%dT%H%M%SZ").to_string(), None, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Param;

    fn property(params: &[(&str, &str)], value: &str) -> Property {
        let params = params
            .iter()
            .map(|(n, v)| Param {
                name: (*n).to_owned(),
                values: vec![(*v).to_owned()],
            })
            .collect();
        Property::new("DTSTART", params, value)
    }

    #[test]
    fn zones_convert_both_ways() {
        let berlin = property(&[("TZID", "Europe/Berlin")], "20261201T100000");
        let moment = read(&berlin).unwrap();
        assert_eq!(moment.canonical(), "2026-12-01T09:00:00Z");
        assert_eq!(
            write(moment, Some("Europe/Berlin")),
            ("20261201T100000".into(), None, Some("Europe/Berlin".into()))
        );
        // Summer time.
        let summer = property(&[("TZID", "/Europe/Berlin")], "20260701T100000");
        assert_eq!(read(&summer).unwrap().canonical(), "2026-07-01T08:00:00Z");
        let utc = property(&[], "20261201T100000Z");
        assert_eq!(read(&utc).unwrap().canonical(), "2026-12-01T10:00:00Z");
        let day = property(&[("VALUE", "DATE")], "20261201");
        assert_eq!(read(&day).unwrap().canonical(), "2026-12-01");
        assert_eq!(write(read(&day).unwrap(), None).1, Some("DATE"));
        // A zone that is not an IANA name reads and writes as UTC: no drift.
        let windows = property(&[("TZID", "W. Europe Standard Time")], "20261201T100000");
        let moment = read(&windows).unwrap();
        assert_eq!(moment.canonical(), "2026-12-01T10:00:00Z");
        assert_eq!(
            write(moment, Some("W. Europe Standard Time")).0,
            "20261201T100000Z"
        );
        assert_eq!(read(&property(&[], "tomorrow")), None);
        assert_eq!(duration("PT1H30M"), Some(chrono::Duration::minutes(90)));
        assert_eq!(duration("P1D"), Some(chrono::Duration::days(1)));
        assert_eq!(duration("-P2W"), Some(-chrono::Duration::weeks(2)));
        assert_eq!(duration("P1DT2H"), Some(chrono::Duration::hours(26)));
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PH",
            "P1H",
            "PT1D",
            "P99999999999999999999D",
        ] {
            assert_eq!(duration(bad), None, "{bad}");
        }
        assert_eq!(
            Moment::from_canonical("2026-12-01T10:00:00+01:00").map(Moment::canonical),
            Some("2026-12-01T09:00:00Z".into())
        );
    }
}
