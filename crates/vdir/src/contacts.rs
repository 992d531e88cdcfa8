//! What crmsync maps from a vCard (SPEC section 4: a contact record), as a field snapshot for
//! the three-way merge, and how merged fields are written back. REV and PRODID are version
//! markers, not fields.

use crmsync_core::link::Snapshot;
use crmsync_core::merge::FieldWrite;

use crate::content::{Component, Node, Property, escape_text, split_unescaped, unescape_text};

/// Splits a structured value (N, ADR, ORG) on unescaped `;`.
fn components(value: &str) -> Vec<String> {
    split_unescaped(value, ';')
}

fn values(card: &Component, property: &str, normalize: fn(&str) -> String) -> String {
    let mut all: Vec<String> = card
        .properties(property)
        .map(|p| normalize(&p.value))
        .filter(|v| !v.is_empty())
        .collect();
    all.sort();
    all.dedup();
    all.join(",")
}

fn email(value: &str) -> String {
    value
        .trim()
        .trim_start_matches("mailto:")
        .to_ascii_lowercase()
}

fn phone(value: &str) -> String {
    value.trim().trim_start_matches("tel:").to_owned()
}

pub fn contact_fields(card: &Component) -> Snapshot {
    let mut fields = Snapshot::new();
    if let Some(fn_) = card.property("FN") {
        fields.set("name", &unescape_text(&fn_.value));
    }
    if let Some(n) = card.property("N") {
        let parts = components(&n.value);
        fields.set("family_name", parts.first().map_or("", String::as_str));
        fields.set("given_name", parts.get(1).map_or("", String::as_str));
    }
    fields.set("emails", &values(card, "EMAIL", email));
    fields.set("phones", &values(card, "TEL", phone));
    if let Some(org) = card.property("ORG") {
        fields.set(
            "organization",
            components(&org.value).first().map_or("", String::as_str),
        );
    }
    if let Some(title) = card.property("TITLE") {
        fields.set("job_title", &unescape_text(&title.value));
    }
    if let Some(address) = card.property("ADR") {
        let parts: Vec<String> = components(&address.value)
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        fields.set("address", &parts.join(", "));
    }
    if let Some(note) = card.property("NOTE") {
        fields.set("notes", &unescape_text(&note.value));
    }
    fields
}

/// Replaces every property of a list field (EMAIL, TEL) by one per value, keeping the existing
/// properties whose values stay (with their parameters, byte for byte).
fn set_list(
    card: &mut Component,
    property: &str,
    wanted: &[String],
    normalize: fn(&str) -> String,
    prefix: &str,
) {
    let mut kept: Vec<String> = Vec::new();
    card.children.retain(|node| match node {
        Node::Property(p) if p.name.eq_ignore_ascii_case(property) => {
            let value = normalize(&p.value);
            let keep = wanted.contains(&value) && !kept.contains(&value);
            if keep {
                kept.push(value);
            }
            keep
        }
        _ => true,
    });
    for value in wanted {
        if !kept.contains(value) {
            let at = card
                .children
                .iter()
                .position(|n| matches!(n, Node::Component(_)))
                .unwrap_or(card.children.len());
            card.children.insert(
                at,
                Node::Property(Property::new(
                    property,
                    Vec::new(),
                    &format!("{prefix}{value}"),
                )),
            );
        }
    }
}

pub fn apply(card: &mut Component, writes: &[FieldWrite]) {
    for write in writes {
        let value = write.value.as_deref().unwrap_or("");
        let list: Vec<String> = value
            .split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        match write.field.as_str() {
            "name" => card.set("FN", &escape_text(value)),
            "family_name" | "given_name" => {
                let mut parts = card
                    .property("N")
                    .map(|n| components(&n.value))
                    .unwrap_or_default();
                parts.resize(parts.len().max(5), String::new());
                let index = usize::from(write.field == "given_name");
                parts[index] = value.to_owned();
                let text: Vec<String> = parts.iter().map(|p| escape_text(p)).collect();
                card.set("N", &text.join(";"));
            }
            "emails" => set_list(card, "EMAIL", &list, email, ""),
            "phones" => set_list(card, "TEL", &list, phone, ""),
            "organization" => set_or_remove(card, "ORG", value),
            "job_title" => set_or_remove(card, "TITLE", value),
            "notes" => set_or_remove(card, "NOTE", value),
            "address" => {
                // A free-text address goes into the street part of ADR.
                let text = if value.is_empty() {
                    String::new()
                } else {
                    format!(";;{};;;;", escape_text(value))
                };
                set_or_remove_raw(card, "ADR", &text);
            }
            _ => {}
        }
    }
}

/// A new vCard (version 3.0, which every client reads) for a contact record of the CRM, with
/// the given UID, the fields and the tracking category.
pub fn new_card(uid: &str, fields: &Snapshot, category: &str) -> String {
    let mut card = Component::new("VCARD");
    card.set("VERSION", "3.0");
    card.set("PRODID", "-//crmsync//crmsync//EN");
    card.set("UID", &escape_text(uid));
    card.set("FN", "");
    card.set("N", ";;;;");
    let writes: Vec<FieldWrite> = fields
        .fields()
        .map(|(name, value)| FieldWrite {
            field: name.to_owned(),
            value: Some(value.to_owned()),
        })
        .collect();
    apply(&mut card, &writes);
    crate::calendar::add_category(&mut card, category);
    crate::content::Document::new(vec![card]).render()
}

fn set_or_remove(card: &mut Component, property: &str, value: &str) {
    set_or_remove_raw(card, property, &escape_text(value));
}

fn set_or_remove_raw(card: &mut Component, property: &str, value: &str) {
    if value.is_empty() {
        card.remove(property);
    } else {
        card.set(property, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::parse;

    const CARD: &str = "BEGIN:VCARD\r\nVERSION:4.0\r\nPRODID:-//khard//EN\r\nUID:c1\r\nREV:20261129T100000Z\r\n\
FN:Dana Smith\r\nN:Smith;Dana;;;\r\nEMAIL;TYPE=work:Dana@Adventure-Works.com\r\nTEL;TYPE=cell:+1 555 0100\r\n\
ORG:Adventure Works;Sales\r\nTITLE:Buyer\r\nADR;TYPE=work:;;1 Main St;Springfield;;12345;USA\r\n\
NOTE:Met at the fair\\, likes tea\r\nCATEGORIES:CRM\r\nX-KHARD-THING:kept\r\nEND:VCARD\r\n";

    #[test]
    fn contact_fields_are_read() {
        let document = parse(CARD).unwrap();
        let fields = contact_fields(document.first("VCARD").unwrap());
        let got: Vec<(&str, &str)> = fields.fields().collect();
        assert_eq!(
            got,
            [
                ("address", "1 Main St, Springfield, 12345, USA"),
                ("emails", "dana@adventure-works.com"),
                ("family_name", "Smith"),
                ("given_name", "Dana"),
                ("job_title", "Buyer"),
                ("name", "Dana Smith"),
                ("notes", "Met at the fair, likes tea"),
                ("organization", "Adventure Works"),
                ("phones", "+1 555 0100"),
            ]
        );
        let bumped = CARD.replace("REV:20261129T100000Z", "REV:20261201T000000Z");
        let again = contact_fields(parse(&bumped).unwrap().first("VCARD").unwrap());
        assert_eq!(again, fields, "a REV change alone is not a change");
    }

    #[test]
    fn writes_keep_what_stays() {
        let mut document = parse(CARD).unwrap();
        let card = document.first_mut("VCARD").unwrap();
        apply(
            card,
            &[
                FieldWrite {
                    field: "emails".into(),
                    value: Some("dana@adventure-works.com,dana@home.example".into()),
                },
                FieldWrite {
                    field: "given_name".into(),
                    value: Some("Danielle".into()),
                },
                FieldWrite {
                    field: "job_title".into(),
                    value: None,
                },
            ],
        );
        let fields = contact_fields(card);
        assert_eq!(
            fields.get("emails"),
            Some("dana@adventure-works.com,dana@home.example")
        );
        assert_eq!(fields.get("given_name"), Some("Danielle"));
        assert_eq!(fields.get("job_title"), None);
        let rendered = document.render();
        // The existing address keeps its parameters and spelling; unknown properties stay.
        assert!(
            rendered.contains("EMAIL;TYPE=work:Dana@Adventure-Works.com\r\n"),
            "{rendered}"
        );
        assert!(rendered.contains("EMAIL:dana@home.example\r\n"));
        assert!(rendered.contains("X-KHARD-THING:kept\r\n"));
        assert!(rendered.contains("N:Smith;Danielle;;;\r\n"));
        assert!(!rendered.contains("TITLE"));
    }
}
