//! iCalendar date and date-time values in the CRM's canonical form, and back.
//!
//! The CRM keeps instants in UTC (`2026-12-01T09:00:00Z`) and whole days as dates
//! (`2026-12-01`); an event keeps its time zone in a field of its own. Reading converts a
//! `TZID` local time to UTC with the IANA database; writing converts back to the same zone, so
//! a person's event keeps being expressed in their zone. Windows zone names (Outlook, Exchange)
//! are mapped to their IANA zones. A `TZID` that is neither, and a floating time, are read as if
//! they were UTC and written back the same way (the same `TZID`, the UTC digits), so a change
//! made in the CRM moves the event by exactly that change and a round trip never moves it.

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

/// The IANA zone of a TZID: an IANA name (some clients prefix it with '/'), or one of the
/// Windows names that Outlook and Exchange write, mapped as CLDR's windowsZones maps them (the
/// zone of the territory "001").
fn zone(tzid: &str) -> Option<Tz> {
    let name = tzid.trim().trim_matches('"').trim_start_matches('/');
    if let Ok(tz) = name.parse() {
        return Some(tz);
    }
    WINDOWS_ZONES
        .iter()
        .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
        .and_then(|(_, iana)| iana.parse().ok())
}

/// Windows time zone names and their IANA zones (CLDR windowsZones.xml, territory 001).
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time", "America/New_York"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("US Eastern Standard Time", "America/Indianapolis"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Greenland Standard Time", "America/Godthab"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Central Asia Standard Time", "Asia/Almaty"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Myanmar Standard Time", "Asia/Rangoon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Cuba Standard Time", "America/Havana"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Mauritius Standard Time", "Indian/Mauritius"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("Easter Island Standard Time", "Pacific/Easter"),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Bahia Standard Time", "America/Bahia"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    ("West Bank Standard Time", "Asia/Hebron"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("Yukon Standard Time", "America/Whitehorse"),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("Astrakhan Standard Time", "Europe/Astrakhan"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Russia Time Zone 11", "Asia/Kamchatka"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("UTC-08", "Etc/GMT+8"),
    ("UTC-09", "Etc/GMT+9"),
    ("UTC+13", "Etc/GMT-13"),
    ("Mid-Atlantic Standard Time", "Etc/GMT+2"),
    ("Kamchatka Standard Time", "Asia/Kamchatka"),
];

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
        let part = match (unit, in_time) {
            ('W', false) => chrono::Duration::try_weeks(n)?,
            ('D', false) => chrono::Duration::try_days(n)?,
            ('H', true) => chrono::Duration::try_hours(n)?,
            ('M', true) => chrono::Duration::try_minutes(n)?,
            ('S', true) => chrono::Duration::try_seconds(n)?,
            _ => return None,
        };
        total = total.checked_add(&part)?;
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

/// The iCalendar form of a moment: the value, its `VALUE` parameter and its `TZID` parameter.
/// An instant is written as local time in `tzid` (kept as spelled), or in UTC without one.
pub fn write(moment: Moment, tzid: Option<&str>) -> (String, Option<&'static str>, Option<String>) {
    match moment {
        Moment::Day(day) => (day.format("%Y%m%d").to_string(), Some("DATE"), None),
        Moment::At(at) => match tzid {
            Some(tzid) => {
                let local = match zone(tzid) {
                    Some(tz) => at.with_timezone(&tz).naive_local(),
                    // Read as UTC: written as UTC digits, so the two stay each other's inverse.
                    None => at.naive_utc(),
                };
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
                bare: false,
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
        // A Windows name is its IANA zone, and stays spelled as it was.
        let windows = property(&[("TZID", "W. Europe Standard Time")], "20261201T100000");
        let moment = read(&windows).unwrap();
        assert_eq!(moment.canonical(), "2026-12-01T09:00:00Z");
        assert_eq!(
            write(moment, Some("W. Europe Standard Time")),
            (
                "20261201T100000".into(),
                None,
                Some("W. Europe Standard Time".into())
            )
        );
        for (windows, iana) in WINDOWS_ZONES {
            assert!(zone(windows).is_some(), "{windows} -> {iana}");
        }
        // A zone that is neither reads and writes as UTC digits under its own TZID: no drift.
        let custom = property(&[("TZID", "My Office")], "20261201T100000");
        let moment = read(&custom).unwrap();
        assert_eq!(moment.canonical(), "2026-12-01T10:00:00Z");
        assert_eq!(
            write(moment, Some("My Office")),
            ("20261201T100000".into(), None, Some("My Office".into()))
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
