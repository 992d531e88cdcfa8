//! What crmsync maps from a VEVENT or VTODO (SPEC section 4), as a field snapshot for the
//! three-way merge, and how merged fields are written back into the component.
//!
//! Fields are canonical text: a date-time is its value with its time zone in a field of its
//! own, text is unescaped, lists are sorted. Version markers (DTSTAMP, LAST-MODIFIED,
//! SEQUENCE, PRODID) are not fields, so a change of a marker alone compares equal. Writing back
//! touches only the properties of changed fields; everything else stays byte for byte.

use crmsync_core::link::Snapshot;
use crmsync_core::merge::FieldWrite;

use crate::content::{Component, Property, escape_text, split_list, unescape_text};

/// A date-time property (DTSTART, DTEND, DUE, COMPLETED) as `VALUE` plus its `TZID` and whether
/// it is a whole day.
fn date_fields(component: &Component, property: &str, field: &str, snapshot: &mut Snapshot) {
    if let Some(p) = component.property(property) {
        snapshot.set(field, &p.value);
        if let Some(tz) = p.param("TZID") {
            snapshot.set(&format!("{field}_tz"), tz);
        }
        if p.param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        {
            snapshot.set("all_day", "yes");
        }
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

/// The fields of a VEVENT (an appointment).
pub fn event_fields(event: &Component) -> Snapshot {
    let mut fields = Snapshot::new();
    text_field(event, "SUMMARY", "subject", &mut fields);
    text_field(event, "LOCATION", "location", &mut fields);
    text_field(event, "DESCRIPTION", "description", &mut fields);
    date_fields(event, "DTSTART", "start", &mut fields);
    date_fields(event, "DTEND", "end", &mut fields);
    if let Some(rule) = event.property("RRULE") {
        fields.set("recurrence", &rule.value);
    }
    let mut exceptions: Vec<String> = event
        .properties("EXDATE")
        .flat_map(|p| p.value.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    exceptions.sort();
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
    fields.set("attendees", &attendees.join(","));
    if let Some(regarding) = event.property("X-CRM-REGARDING") {
        fields.set("regarding", regarding.value.trim());
    }
    fields
}

/// The fields of a VTODO (a task).
pub fn task_fields(task: &Component) -> Snapshot {
    let mut fields = Snapshot::new();
    text_field(task, "SUMMARY", "subject", &mut fields);
    text_field(task, "DESCRIPTION", "description", &mut fields);
    date_fields(task, "DUE", "due", &mut fields);
    date_fields(task, "DTSTART", "start", &mut fields);
    date_fields(task, "COMPLETED", "completed", &mut fields);
    if let Some(priority) = task.property("PRIORITY") {
        fields.set("priority", priority.value.trim());
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
        fields.set("regarding", regarding.value.trim());
    }
    fields
}

/// Writes merged fields back into a VEVENT or VTODO: only the properties of the fields in
/// `writes` change. Fields crmsync cannot write back (organizer, attendees) are left alone.
pub fn apply(component: &mut Component, writes: &[FieldWrite]) {
    let is_task = component.name.eq_ignore_ascii_case("VTODO");
    for write in writes {
        let value = write.value.as_deref();
        match write.field.as_str() {
            "subject" => set_text(component, "SUMMARY", value),
            "location" => set_text(component, "LOCATION", value),
            "description" => set_text(component, "DESCRIPTION", value),
            "start" => set_raw(component, "DTSTART", value),
            "end" => set_raw(component, "DTEND", value),
            "due" => set_raw(component, "DUE", value),
            "completed" => set_raw(component, "COMPLETED", value),
            "start_tz" => set_tz(component, "DTSTART", value),
            "end_tz" => set_tz(component, "DTEND", value),
            "due_tz" => set_tz(component, "DUE", value),
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

fn set_raw(component: &mut Component, property: &str, value: Option<&str>) {
    match value {
        Some(value) => component.set(property, value),
        None => {
            component.remove(property);
        }
    }
}

fn set_tz(component: &mut Component, property: &str, value: Option<&str>) {
    if let Some(p) = component.property_mut(property) {
        p.set_param("TZID", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::parse;
    use crmsync_core::merge::three_way;
    use crmsync_core::model::ConflictPolicy;

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
            ("end", "20261201T110000"),
            ("end_tz", "Europe/Berlin"),
            ("exceptions", "20261215T100000"),
            ("organizer", "alice@example.com"),
            ("recurrence", "FREQ=WEEKLY;COUNT=4"),
            ("regarding", "ACC-1001"),
            ("start", "20261201T100000"),
            ("start_tz", "Europe/Berlin"),
            ("status", "busy"),
            ("subject", "Kickoff, round 1"),
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
        apply(target, &outcome.mailbox_writes);
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
        assert_eq!(fields.get("due"), Some("20261203"));
        assert_eq!(fields.get("all_day"), Some("yes"));
        assert_eq!(fields.get("status"), Some("open"));
        assert_eq!(fields.get("percent"), Some("40"));
        assert!(is_tracked(task, "CRM"));
        apply(
            task,
            &[
                FieldWrite {
                    field: "status".into(),
                    value: Some("completed".into()),
                },
                FieldWrite {
                    field: "percent".into(),
                    value: Some("100".into()),
                },
            ],
        );
        let after = task_fields(task);
        assert_eq!(after.get("status"), Some("completed"));
        assert_eq!(after.get("percent"), Some("100"));
        assert!(document.render().contains("STATUS:COMPLETED\r\n"));
    }
}
