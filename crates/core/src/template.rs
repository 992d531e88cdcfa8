//! CRM email templates: text with placeholders such as `{{recipient.name}}`, filled from the
//! recipient's record, the regarding record and the owner when an email is composed.

use std::collections::BTreeMap;

/// Every placeholder a template may use, with what it stands for.
pub const PLACEHOLDERS: [(&str, &str); 10] = [
    (
        "recipient.name",
        "the first recipient's record name (else the address)",
    ),
    ("recipient.email", "the first recipient's address"),
    (
        "recipient.number",
        "the first recipient's record number (ACC-1001, CON-1001...)",
    ),
    (
        "recipient.entity",
        "the first recipient's record type (contact, account, lead...)",
    ),
    ("regarding.name", "the regarding record's name"),
    ("regarding.number", "the regarding record's number"),
    ("regarding.entity", "the regarding record's type"),
    ("owner.name", "the sending user's name"),
    ("owner.email", "the sending user's address"),
    ("date", "today's date (YYYY-MM-DD)"),
];

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{{{0}}}}} at line {1} (known: {known})",
        known = known_list()
    )]
    Unknown(String, usize),
    #[error("a placeholder opened with {{{{ at line {0} is not closed with }}}}")]
    Unclosed(usize),
}

fn known_list() -> String {
    PLACEHOLDERS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One placeholder of a text: where it is (with its braces), its name, its line.
type Placeholder<'a> = (std::ops::Range<usize>, &'a str, usize);

/// The placeholders of `text`, or why they cannot be read.
fn placeholders(text: &str) -> Result<Vec<Placeholder<'_>>, TemplateError> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| from + i) {
        let line = text[..open].matches('\n').count() + 1;
        let close = text[open..]
            .find("}}")
            .map(|i| open + i)
            .ok_or(TemplateError::Unclosed(line))?;
        let name = text[open + 2..close].trim();
        if !PLACEHOLDERS.iter().any(|(known, _)| *known == name) {
            return Err(TemplateError::Unknown(name.to_owned(), line));
        }
        found.push((open..close + 2, name, line));
        from = close + 2;
    }
    Ok(found)
}

/// Checks a template's text (every placeholder known and closed), as it is saved.
pub fn check(text: &str) -> Result<(), TemplateError> {
    placeholders(text).map(|_| ())
}

/// The text with each placeholder replaced by its value in `values` (an empty string for a
/// known placeholder without one: an email without a regarding record, say).
pub fn render(text: &str, values: &BTreeMap<&str, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, name, _) in placeholders(text)? {
        out.push_str(&text[last..range.start]);
        out.push_str(values.get(name).map_or("", String::as_str));
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_kind_is_filled() {
        let values: BTreeMap<&str, String> = PLACEHOLDERS
            .iter()
            .map(|(name, _)| (*name, format!("<{name}>")))
            .collect();
        let text: String = PLACEHOLDERS
            .iter()
            .map(|(name, _)| format!("{name}={{{{ {name} }}}};"))
            .collect();
        let rendered = render(&text, &values).unwrap();
        for (name, _) in PLACEHOLDERS {
            assert!(
                rendered.contains(&format!("{name}=<{name}>;")),
                "{rendered}"
            );
        }
        assert_eq!(
            render("no placeholders", &values).unwrap(),
            "no placeholders"
        );
        assert_eq!(
            render("Hi {{recipient.name}}!", &BTreeMap::new()).unwrap(),
            "Hi !",
            "a known placeholder without a value is empty"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused_with_their_line() {
        let error = check("Dear {{recipient.name}},\nyour {{account.balance}} is due").unwrap_err();
        assert_eq!(error, TemplateError::Unknown("account.balance".into(), 2));
        let text = error.to_string();
        assert!(
            text.contains("{{account.balance}}") && text.contains("recipient.name"),
            "{text}"
        );
        assert_eq!(
            check("a\nb {{owner.name").unwrap_err(),
            TemplateError::Unclosed(2)
        );
        assert!(check("single { braces } are text").is_ok());
    }
}
