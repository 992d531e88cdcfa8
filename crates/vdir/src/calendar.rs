//! What crmsync maps from a VEVENT or VTODO (SPEC section 4), as a field snapshot for the
//! three-way merge, and how merged fields are written back into the component.
//!
//! Fields are canonical text, the same on both sides: a moment is a UTC instant
//! (`2026-12-01T09:00:00Z`) or a date for whole days, with the event's time zone in a field of
//! its own (see [`crate::time`]); text is unescaped; lists are sorted. Version markers (DTSTAMP,
//! LAST-MODIFIED, SEQUENCE, PRODID) are not fields, so a change of a marker alone compares
//! equal. Writing back touches only the properties of changed fields; everything else stays
//! byte for byte, recurrence exceptions (other VEVENTs with a RECURRENCE-ID) included.

use crmsync_core::link::Snapshot;
use crmsync_core::merge::FieldWrite;

use crate::content::{Component, Node, Param, Property, escape_text, split_list, unescape_text};
use crate::time::{self, Moment};

/// The fields that hold moments, and their properties.
const MOMENTS: &[(&str, &str)] = &[
    ("start", "DTSTART"),
    ("end", "DTEND"),
    ("due", "DUE"),
    ("completed", "COMPLETED"),
];

use crmsync_core::collection::ONE_WAY_FIELDS;

fn moment_field(component: &Component, property: &str, field: &str, snapshot: &mut Snapshot) {
    if let Some(moment) = component.property(property).and_then(time::read) {
        snapshot.set(field, &moment.canonical());
    }
}

fn text_field(component: &Component, property: &str, field: &str, snapshot: &mut Snapshot) {
    if let Some(p) = component.property(property) {
        snapshot.set(field, &unescape_text(&p.value));
    }
}

fn address(property: &Property) -> String {
    let value = property.value.trim();
    let address = value
        .strip_prefix("mailto:")
        .or_else(|| value.strip_prefix("MAILTO:"))
        .unwrap_or(value);
    address.to_ascii_lowercase()
}

/// The categories of a component, across all its CATEGORIES properties.
pub fn categories(component: &Component) -> Vec<String> {
    component
        .properties("CATEGORIES")
        .flat_map(|p| split_list(&p.value))
        .collect()
}

/// Whether the component carries the tracking category (matched case-insensitively).
pub fn is_tracked(component: &Component, category: &str) -> bool {
    categories(component)
        .iter()
        .any(|c| c.eq_ignore_ascii_case(category))
}

/// Adds the tracking category (to the first CATEGORIES property, or a new one).
pub fn add_category(component: &mut Component, category: &str) {
    if is_tracked(component, category) {
        return;
    }
    match component.property_mut("CATEGORIES") {
        Some(p) => {
            let value = format!("{},{}", p.value, escape_text(category));
            p.set_value(&value);
        }
        None => component.set("CATEGORIES", &escape_text(category)),
    }
}

/// Removes the tracking category from every CATEGORIES property, dropping properties left
/// empty; the other categories stay as written.
pub fn remove_category(component: &mut Component, category: &str) {
    for node in &mut component.children {
        if let Node::Property(p) = node
            && p.name.eq_ignore_ascii_case("CATEGORIES")
        {
            let kept: Vec<String> = split_list(&p.value)
                .into_iter()
                .filter(|c| !c.eq_ignore_ascii_case(category))
                .map(|c| escape_text(&c))
                .collect();
            if kept.len() != split_list(&p.value).len() {
                p.set_value(&kept.join(","));
            }
        }
    }
    component.children.retain(|n| {
        !matches!(n, Node::Property(p) if p.name.eq_ignore_ascii_case("CATEGORIES") && p.value.is_empty())
    });
}

/// Whether a component is the master of a calendar object: a VEVENT or VTODO without a
/// RECURRENCE-ID (the others are exceptions of its recurrence and are kept as they are).
fn is_master(component: &Component) -> bool {
    (component.name.eq_ignore_ascii_case("VEVENT") || component.name.eq_ignore_ascii_case("VTODO"))
        && component.property("RECURRENCE-ID").is_none()
}

/// Why a calendar object holds nothing crmsync tracks (no event or task series), in words;
/// `None` when it holds one (or is no calendar object at all, which is an error elsewhere).
pub fn not_an_item(calendar: &Component) -> Option<String> {
    if master(calendar).is_some() {
        return None;
    }
    let kinds: std::collections::BTreeSet<String> = calendar
        .children
        .iter()
        .filter_map(|node| match node {
            Node::Component(c) => Some(c.name.to_ascii_uppercase()),
            Node::Property(_) | Node::Unreadable { .. } => None,
        })
        .collect();
    let overrides = kinds.contains("VEVENT") || kinds.contains("VTODO");
    Some(if overrides {
        "only changed occurrences (RECURRENCE-ID) of a recurring event or task whose series is not in this file".to_owned()
    } else if kinds.is_empty() {
        "an empty calendar object".to_owned()
    } else {
        format!(
            "{}: not an event or task",
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

/// The master component of a calendar object (see [`is_master`]).
pub fn master(calendar: &Component) -> Option<&Component> {
    calendar.children.iter().find_map(|node| match node {
        Node::Component(c) if is_master(c) => Some(c),
        _ => None,
    })
}

pub fn master_mut(calendar: &mut Component) -> Option<&mut Component> {
    calendar.children.iter_mut().find_map(|node| match node {
        Node::Component(c) if is_master(c) => Some(c),
        _ => None,
    })
}

/// The time zone of a component: the TZID of its DTSTART (or DUE).
fn time_zone(component: &Component) -> Option<&str> {
    component
        .property("DTSTART")
        .or_else(|| component.property("DUE"))
        .and_then(|p| p.param("TZID"))
}

/// The fields of a VEVENT (an appointment).
pub fn event_fields(event: &Component) -> Snapshot {
    let mut fields = Snapshot::new();
    text_field(event, "SUMMARY", "subject", &mut fields);
    text_field(event, "LOCATION", "location", &mut fields);
    text_field(event, "DESCRIPTION", "description", &mut fields);
    moment_field(event, "DTSTART", "start", &mut fields);
    moment_field(event, "DTEND", "end", &mut fields);
    // An event may give its length instead of its end.
    if event.property("DTEND").is_none()
        && let Some(start) = event.property("DTSTART").and_then(time::read)
        && let Some(length) = event
            .property("DURATION")
            .and_then(|p| time::duration(&p.value))
        && let Some(end) = time::add(start, length)
    {
        fields.set("end", &end.canonical());
    }
    if let Some(tz) = time_zone(event) {
        fields.set("time_zone", tz);
    }
    if let Some(rule) = event.property("RRULE") {
        fields.set("recurrence", &rule.value);
    }
    let mut exceptions: Vec<String> = event
        .properties("EXDATE")
        .flat_map(|p| {
            p.value
                .split(',')
                .filter_map(|v| {
                    let one = Property::new("EXDATE", p.params.clone(), v.trim());
                    time::read(&one).map(Moment::canonical)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    exceptions.sort();
    exceptions.dedup();
    fields.set("exceptions", &exceptions.join(","));
    let status = match (
        event
            .property("STATUS")
            .map(|p| p.value.to_ascii_uppercase()),
        event
            .property("TRANSP")
            .map(|p| p.value.to_ascii_uppercase()),
    ) {
        (Some(s), _) if s == "CANCELLED" => "cancelled",
        (Some(s), _) if s == "TENTATIVE" => "tentative",
        (_, Some(t)) if t == "TRANSPARENT" => "free",
        _ => "busy",
    };
    fields.set("status", status);
    if let Some(organizer) = event.property("ORGANIZER") {
        fields.set("organizer", &address(organizer));
    }
    let mut attendees: Vec<String> = event.properties("ATTENDEE").map(address).collect();
    attendees.sort();
    attendees.dedup();
    fields.set("attendees", &attendees.join(","));
    if let Some(regarding) = event.property("X-CRM-REGARDING") {
        fields.set("regarding", &regarding.value.trim().to_ascii_uppercase());
    }
    fields
}

/// The fields of a VTODO (a task).
pub fn task_fields(task: &Component) -> Snapshot {
    let mut fields = Snapshot::new();
    text_field(task, "SUMMARY", "subject", &mut fields);
    text_field(task, "DESCRIPTION", "description", &mut fields);
    moment_field(task, "DUE", "due", &mut fields);
    moment_field(task, "DTSTART", "start", &mut fields);
    moment_field(task, "COMPLETED", "completed", &mut fields);
    if let Some(tz) = time_zone(task) {
        fields.set("time_zone", tz);
    }
    if let Some(priority) = task.property("PRIORITY") {
        let priority = priority.value.trim();
        if priority != "0" {
            fields.set("priority", priority);
        }
    }
    if let Some(percent) = task.property("PERCENT-COMPLETE") {
        fields.set("percent", percent.value.trim());
    }
    let status = match task
        .property("STATUS")
        .map(|p| p.value.to_ascii_uppercase())
        .as_deref()
    {
        Some("COMPLETED") => "completed",
        Some("CANCELLED") => "cancelled",
        _ => "open",
    };
    fields.set("status", status);
    if let Some(regarding) = task.property("X-CRM-REGARDING") {
        fields.set("regarding", &regarding.value.trim().to_ascii_uppercase());
    }
    fields
}

/// Writes one moment property from the merged fields, in the merged time zone.
fn write_moment(component: &mut Component, property: &str, value: Option<&str>, tz: Option<&str>) {
    // An end written where the length was: DTEND replaces DURATION (they exclude each other).
    if property == "DTEND" && component.property("DURATION").is_some() {
        if value.is_none() || component.property("DTSTART").is_none() {
            return;
        }
        component.remove("DURATION");
    }
    let moment = match value.map(Moment::from_canonical) {
        None => {
            component.remove(property);
            return;
        }
        // A value that is not a moment (written by another program in some other form) is not
        // written: the property stays as it is rather than being lost.
        Some(None) => return,
        Some(Some(moment)) => moment,
    };
    // COMPLETED is always UTC (RFC 5545 3.8.2.1).
    let tz = if property == "COMPLETED" { None } else { tz };
    let (text, value_param, tzid) = time::write(moment, tz);
    component.set(property, &text);
    let p = component.property_mut(property).expect("just set");
    p.set_param("VALUE", value_param);
    p.set_param("TZID", tzid.as_deref());
}

fn write_exceptions(component: &mut Component, value: Option<&str>, tz: Option<&str>) {
    let moments: Vec<Moment> = value
        .unwrap_or("")
        .split(',')
        .filter_map(Moment::from_canonical)
        .collect();
    component.remove("EXDATE");
    if moments.is_empty() {
        return;
    }
    let written: Vec<_> = moments.iter().map(|m| time::write(*m, tz)).collect();
    let text: Vec<&str> = written.iter().map(|(t, _, _)| t.as_str()).collect();
    let mut params = Vec::new();
    if let Some((_, Some(value), _)) = written.first() {
        params.push(Param {
            bare: false,
            name: "VALUE".into(),
            values: vec![(*value).to_owned()],
        });
    }
    if let Some((_, _, Some(tzid))) = written.first() {
        params.push(Param {
            bare: false,
            name: "TZID".into(),
            values: vec![tzid.clone()],
        });
    }
    let at = component
        .children
        .iter()
        .position(|n| matches!(n, Node::Component(_)))
        .unwrap_or(component.children.len());
    component.children.insert(
        at,
        Node::Property(Property::new("EXDATE", params, &text.join(","))),
    );
}

/// Writes merged fields back into a VEVENT or VTODO: only the properties of the fields in
/// `writes` change (a change of the time zone rewrites the moments in the new zone). Fields
/// that flow one way only ([`ONE_WAY_FIELDS`]) are left alone.
pub fn apply(component: &mut Component, merged: &Snapshot, writes: &[FieldWrite]) {
    let is_task = component.name.eq_ignore_ascii_case("VTODO");
    let tz = merged.get("time_zone").map(str::to_owned);
    let tz = tz.as_deref();
    let zone_changed = writes.iter().any(|w| w.field == "time_zone");
    for (field, property) in MOMENTS {
        let wanted = zone_changed || writes.iter().any(|w| w.field == *field);
        if wanted && (merged.get(field).is_some() || component.property(property).is_some()) {
            write_moment(component, property, merged.get(field), tz);
        }
    }
    if !is_task && (zone_changed || writes.iter().any(|w| w.field == "exceptions")) {
        write_exceptions(component, merged.get("exceptions"), tz);
    }
    for write in writes {
        let value = write.value.as_deref();
        match write.field.as_str() {
            "subject" => set_text(component, "SUMMARY", value),
            "location" => set_text(component, "LOCATION", value),
            "description" => set_text(component, "DESCRIPTION", value),
            "recurrence" => set_raw(component, "RRULE", value),
            "priority" => set_raw(component, "PRIORITY", value),
            "percent" => set_raw(component, "PERCENT-COMPLETE", value),
            "regarding" => set_raw(component, "X-CRM-REGARDING", value),
            "status" if is_task => {
                let status = match value {
                    Some("completed") => Some("COMPLETED"),
                    Some("cancelled") => Some("CANCELLED"),
                    _ => Some("NEEDS-ACTION"),
                };
                set_raw(component, "STATUS", status);
            }
            "status" => match value {
                Some("cancelled") => set_raw(component, "STATUS", Some("CANCELLED")),
                Some("tentative") => set_raw(component, "STATUS", Some("TENTATIVE")),
                Some("free") => {
                    set_raw(component, "TRANSP", Some("TRANSPARENT"));
                    drop_status(component);
                }
                _ => {
                    if component.property("TRANSP").is_some() {
                        set_raw(component, "TRANSP", Some("OPAQUE"));
                    }
                    drop_status(component);
                }
            },
            _ => {}
        }
    }
}

/// A new calendar object for an appointment or task the CRM created: a VEVENT or VTODO with
/// the given UID, the fields, the attendees and the tracking category.
pub fn new_object(task: bool, uid: &str, fields: &Snapshot, category: &str, stamp: &str) -> String {
    let mut component = Component::new(if task { "VTODO" } else { "VEVENT" });
    component.set("UID", &escape_text(uid));
    component.set("DTSTAMP", stamp);
    let writes: Vec<FieldWrite> = fields
        .fields()
        .filter(|(name, _)| !ONE_WAY_FIELDS.contains(name))
        .map(|(name, value)| FieldWrite {
            field: name.to_owned(),
            value: Some(value.to_owned()),
        })
        .collect();
    apply(&mut component, fields, &writes);
    if let Some(organizer) = fields.get("organizer") {
        component.set("ORGANIZER", &format!("mailto:{organizer}"));
    }
    for attendee in fields.get("attendees").unwrap_or("").split(',') {
        if !attendee.is_empty() {
            component.children.push(Node::Property(Property::new(
                "ATTENDEE",
                Vec::new(),
                &format!("mailto:{attendee}"),
            )));
        }
    }
    add_category(&mut component, category);
    let mut calendar = Component::new("VCALENDAR");
    calendar.set("VERSION", "2.0");
    calendar.set("PRODID", "-//crmsync//crmsync//EN");
    calendar.children.push(Node::Component(component));
    crate::content::Document::new(vec![calendar]).render()
}

fn drop_status(component: &mut Component) {
    if component.property("STATUS").is_some_and(|p| {
        matches!(
            p.value.to_ascii_uppercase().as_str(),
            "CANCELLED" | "TENTATIVE"
        )
    }) {
        component.set("STATUS", "CONFIRMED");
    }
}

fn set_text(component: &mut Component, property: &str, value: Option<&str>) {
    set_raw(component, property, value.map(escape_text).as_deref());
}

/// The fields whose change is significant in RFC 5546's sense (§2.1.4): the event moved or
/// its recurrence changed. Each such write-back raises `SEQUENCE`.
const SIGNIFICANT: [&str; 6] = [
    "start",
    "end",
    "due",
    "time_zone",
    "recurrence",
    "exceptions",
];

/// After a write-back of `writes`: `DTSTAMP` and `LAST-MODIFIED` become `now` (UTC,
/// `20261202T100000Z`), and `SEQUENCE` goes up by one when the change is significant, so that
/// calendar clients and servers see that the item changed (RFC 5545 §3.8.7, RFC 5546 §2.1.4).
/// Nothing happens without writes.
pub fn mark_changed(component: &mut Component, writes: &[FieldWrite], now: &str) {
    if writes.is_empty() {
        return;
    }
    component.set("DTSTAMP", now);
    component.set("LAST-MODIFIED", now);
    if writes
        .iter()
        .any(|w| SIGNIFICANT.contains(&w.field.as_str()))
    {
        let sequence = component
            .property("SEQUENCE")
            .and_then(|p| p.value.trim().parse::<u64>().ok())
            .unwrap_or(0);
        component.set("SEQUENCE", &(sequence + 1).to_string());
    }
}

fn set_raw(component: &mut Component, property: &str, value: Option<&str>) {
    match value {
        Some(value) => component.set(property, value),
        None => {
            component.remove(property);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::parse;
    use crmsync_core::merge::three_way;
    use crmsync_core::model::ConflictPolicy;

    #[test]
    fn a_changed_event_gets_a_new_stamp_and_a_moved_one_a_higher_sequence() {
        let mut document = parse(EVENT).unwrap();
        let write = |field: &str, value: &str| FieldWrite {
            field: field.to_owned(),
            value: Some(value.to_owned()),
        };
        let event = target_event(&mut document);
        mark_changed(event, &[], "20261202T100000Z");
        assert_eq!(document.render(), EVENT, "no change, no stamp");
        let event = target_event(&mut document);
        mark_changed(event, &[write("subject", "Renamed")], "20261202T100000Z");
        assert_eq!(event.property("DTSTAMP").unwrap().value, "20261202T100000Z");
        assert_eq!(
            event.property("LAST-MODIFIED").unwrap().value,
            "20261202T100000Z"
        );
        assert_eq!(
            event.property("SEQUENCE").unwrap().value,
            "0",
            "a title is not significant"
        );
        mark_changed(
            event,
            &[write("start", "2026-12-02T09:00:00Z")],
            "20261202T110000Z",
        );
        assert_eq!(event.property("SEQUENCE").unwrap().value, "1");
        assert_eq!(event.property("DTSTAMP").unwrap().value, "20261202T110000Z");
    }

    fn target_event(document: &mut crate::content::Document) -> &mut Component {
        document
            .first_mut("VCALENDAR")
            .unwrap()
            .components_mut("VEVENT")
            .next()
            .unwrap()
    }

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//khal//EN\r\nBEGIN:VEVENT\r\n\
UID:e1@example.com\r\nDTSTAMP:20261129T100000Z\r\nSEQUENCE:0\r\nSUMMARY:Kickoff\\, round 1\r\n\
DTSTART;TZID=Europe/Berlin:20261201T100000\r\nDTEND;TZID=Europe/Berlin:20261201T110000\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20261215T100000\r\n\
ORGANIZER:mailto:alice@example.com\r\nATTENDEE;CN=Dana:MAILTO:Dana@Adventure-Works.com\r\n\
CATEGORIES:CRM,Work\r\nX-CRM-REGARDING:ACC-1001\r\nX-UNKNOWN:kept\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn event(text: &str) -> Component {
        parse(text)
            .unwrap()
            .first("VCALENDAR")
            .unwrap()
            .components("VEVENT")
            .next()
            .unwrap()
            .clone()
    }

    #[test]
    fn event_fields_are_read() {
        let fields = event_fields(&event(EVENT));
        let expected = [
            ("attendees", "dana@adventure-works.com"),
            ("end", "2026-12-01T10:00:00Z"),
            ("exceptions", "2026-12-15T09:00:00Z"),
            ("organizer", "alice@example.com"),
            ("recurrence", "FREQ=WEEKLY;COUNT=4"),
            ("regarding", "ACC-1001"),
            ("start", "2026-12-01T09:00:00Z"),
            ("status", "busy"),
            ("subject", "Kickoff, round 1"),
            ("time_zone", "Europe/Berlin"),
        ];
        let got: Vec<(&str, &str)> = fields.fields().collect();
        assert_eq!(got, expected);
        assert!(is_tracked(&event(EVENT), "crm"));
        assert!(!is_tracked(&event(EVENT), "private"));
    }

    #[test]
    fn a_version_marker_alone_is_not_a_change() {
        let bumped = EVENT
            .replace("DTSTAMP:20261129T100000Z", "DTSTAMP:20261130T080000Z")
            .replace("SEQUENCE:0", "SEQUENCE:3\r\nLAST-MODIFIED:20261130T080000Z")
            .replace("PRODID:-//khal//EN", "PRODID:-//Other//EN");
        assert_eq!(event_fields(&event(&bumped)), event_fields(&event(EVENT)));
    }

    #[test]
    fn merged_writes_touch_only_their_properties() {
        // The person added a location; the CRM changed the subject and the regarding.
        let edited = EVENT.replace(
            "SUMMARY:Kickoff\\, round 1\r\n",
            "SUMMARY:Kickoff\\, round 1\r\nLOCATION:Room 2\r\n",
        );
        let base = event_fields(&event(EVENT));
        let mailbox = event_fields(&event(&edited));
        assert_eq!(mailbox.get("location"), Some("Room 2"));
        let mut crm = base.clone();
        crm.set("subject", "Kickoff (moved)");
        crm.set("regarding", "OPP-1001");
        let outcome = three_way(&base, &mailbox, &crm, ConflictPolicy::MailboxWins);
        assert!(outcome.conflicts.is_empty());

        let mut document = parse(&edited).unwrap();
        let calendar = document.first_mut("VCALENDAR").unwrap();
        let target = calendar.components_mut("VEVENT").next().unwrap();
        apply(target, &outcome.merged, &outcome.mailbox_writes);
        assert_eq!(event_fields(target), outcome.merged);
        let rendered = document.render();
        assert!(
            rendered.contains("SUMMARY:Kickoff (moved)\r\n"),
            "{rendered}"
        );
        assert!(rendered.contains("X-CRM-REGARDING:OPP-1001\r\n"));
        // Everything crmsync does not map is untouched, byte for byte.
        for kept in [
            "X-UNKNOWN:kept\r\n",
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n",
            "EXDATE;TZID=Europe/Berlin:20261215T100000\r\n",
            "ATTENDEE;CN=Dana:MAILTO:Dana@Adventure-Works.com\r\n",
            "LOCATION:Room 2\r\n",
        ] {
            assert!(rendered.contains(kept), "lost {kept:?}");
        }
        assert_eq!(
            rendered.len(),
            edited.len() - "Kickoff\\, round 1ACC-1001".len() + "Kickoff (moved)OPP-1001".len()
        );
    }

    #[test]
    fn an_event_with_a_duration_has_an_end_and_gets_dtend_when_it_moves() {
        let text = EVENT.replace(
            "DTEND;TZID=Europe/Berlin:20261201T110000\r\n",
            "DURATION:PT90M\r\n",
        );
        let mut document = parse(&text).unwrap();
        let component = calendar_master(&mut document);
        let fields = event_fields(component);
        assert_eq!(fields.get("end"), Some("2026-12-01T10:30:00Z"));
        let writes = [FieldWrite {
            field: "end".into(),
            value: Some("2026-12-01T11:00:00Z".into()),
        }];
        let merged = crmsync_core::merge::apply(&fields, &writes);
        apply(component, &merged, &writes);
        assert_eq!(
            event_fields(component).get("end"),
            Some("2026-12-01T11:00:00Z")
        );
        let rendered = document.render();
        assert!(!rendered.contains("DURATION"), "{rendered}");
        assert!(rendered.contains("DTEND;TZID=Europe/Berlin:20261201T120000\r\n"));
    }

    fn calendar_master(document: &mut crate::content::Document) -> &mut Component {
        master_mut(document.first_mut("VCALENDAR").unwrap()).unwrap()
    }

    #[test]
    fn task_fields_and_status() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t1\r\nSUMMARY:Call back\r\nDUE;VALUE=DATE:20261203\r\n\
PRIORITY:1\r\nPERCENT-COMPLETE:40\r\nSTATUS:IN-PROCESS\r\nCATEGORIES:crm\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        let mut document = parse(text).unwrap();
        let task = document
            .first_mut("VCALENDAR")
            .unwrap()
            .components_mut("VTODO")
            .next()
            .unwrap();
        let fields = task_fields(task);
        assert_eq!(fields.get("due"), Some("2026-12-03"));
        assert_eq!(fields.get("status"), Some("open"));
        assert_eq!(fields.get("percent"), Some("40"));
        assert!(is_tracked(task, "CRM"));
        let writes = [
            FieldWrite {
                field: "status".into(),
                value: Some("completed".into()),
            },
            FieldWrite {
                field: "percent".into(),
                value: Some("100".into()),
            },
        ];
        let merged = crmsync_core::merge::apply(&fields, &writes);
        apply(task, &merged, &writes);
        let after = task_fields(task);
        assert_eq!(after.get("status"), Some("completed"));
        assert_eq!(after.get("percent"), Some("100"));
        assert!(document.render().contains("STATUS:COMPLETED\r\n"));
    }
}
