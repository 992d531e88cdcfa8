//! Content lines and components (RFC 5545 section 3.1, RFC 6350 section 3.3), lossless.
//!
//! A document is parsed into components (`BEGIN:X` ... `END:X`) holding properties and
//! sub-components in file order. Every property keeps the exact text it was read from
//! (folded lines and line endings included) until it is changed; [`Document::render`] writes
//! unchanged properties back from that text and only re-serializes (and folds at 75 octets)
//! what was changed or added. So `render(parse(text)) == text` for any text that parses.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// One parameter: a name (upper case) and its values, unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub values: Vec<String>,
    /// Written without a name, as vCard 2.1 writes types (`TEL;WORK;VOICE:`): `name` is
    /// `TYPE` and the one value is the bare word. Written back the same way.
    pub bare: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The group of a grouped vCard property (`item1` of `item1.EMAIL`, RFC 6350 §3.3).
    pub group: Option<String>,
    /// Upper case (names are case-insensitive); the original spelling stays in `raw`.
    pub name: String,
    pub params: Vec<Param>,
    /// The value as written, escapes included (see [`unescape_text`]).
    pub value: String,
    /// The original text, folded, with its line ending; `None` once changed.
    raw: Option<String>,
}

impl Property {
    pub fn new(name: &str, params: Vec<Param>, value: &str) -> Property {
        Property {
            group: None,
            name: name.to_ascii_uppercase(),
            params,
            value: value.to_owned(),
            raw: None,
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .and_then(|p| p.values.first())
            .map(String::as_str)
    }

    /// Sets a parameter (replacing its values), or removes it with `None`.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        let before = self.params.clone();
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.params.push(Param {
                bare: false,
                name: name.to_ascii_uppercase(),
                values: vec![value.to_owned()],
            });
        }
        if self.params != before {
            self.raw = None;
        }
    }

    /// Changes the value; the property is then written anew. A vCard 2.1 value that was
    /// quoted-printable is written plain (with `CHARSET=UTF-8` when it is not ASCII).
    pub fn set_value(&mut self, value: &str) {
        if self.value != value {
            self.value = value.to_owned();
            self.raw = None;
            if self.is_quoted_printable() {
                self.params.retain(|p| {
                    !(p.name.eq_ignore_ascii_case("ENCODING")
                        || (p.bare && p.values.iter().any(|v| v.eq_ignore_ascii_case(QP)))
                        || p.name.eq_ignore_ascii_case("CHARSET"))
                });
                if !value.is_ascii() {
                    self.params.push(Param {
                        name: "CHARSET".into(),
                        values: vec!["UTF-8".into()],
                        bare: false,
                    });
                }
            }
        }
    }

    /// Whether the value was written quoted-printable (vCard 2.1: `ENCODING=QUOTED-PRINTABLE`,
    /// or the bare `QUOTED-PRINTABLE`).
    fn is_quoted_printable(&self) -> bool {
        self.params.iter().any(|p| {
            (p.name.eq_ignore_ascii_case("ENCODING") || p.bare)
                && p.values.iter().any(|v| v.eq_ignore_ascii_case(QP))
        })
    }

    fn render(&self, out: &mut String, newline: &str) {
        if let Some(raw) = &self.raw {
            out.push_str(raw);
            return;
        }
        let mut line = match &self.group {
            Some(group) => format!("{group}.{}", self.name),
            None => self.name.clone(),
        };
        for param in &self.params {
            line.push(';');
            if param.bare {
                line.push_str(&param.values.join(";"));
                continue;
            }
            line.push_str(&param.name);
            line.push('=');
            // A quoted-printable value is written again in UTF-8.
            if param.name.eq_ignore_ascii_case("CHARSET") && self.is_quoted_printable() {
                line.push_str("UTF-8");
                continue;
            }
            let values: Vec<String> = param
                .values
                .iter()
                .map(|v| {
                    if v.contains([':', ';', ',']) {
                        format!("\"{v}\"")
                    } else {
                        v.clone()
                    }
                })
                .collect();
            line.push_str(&values.join(","));
        }
        line.push(':');
        if self.is_quoted_printable() {
            // Only a parameter changed (the value is as read, decoded): encoded again.
            line.push_str(&encode_quoted_printable(&self.value));
        } else {
            // A value never holds a line break: written as the TEXT escape.
            line.push_str(
                &self
                    .value
                    .replace("\r\n", "\\n")
                    .replace(['\r', '\n'], "\\n"),
            );
        }
        fold(&line, out, newline);
    }
}

/// Folds a logical line at 75 octets, never inside a UTF-8 character.
fn fold(line: &str, out: &mut String, newline: &str) {
    let mut width = 0;
    for c in line.chars() {
        let size = c.len_utf8();
        if width + size > 75 {
            out.push_str(newline);
            out.push(' ');
            width = 1;
        }
        out.push(c);
        width += size;
    }
    out.push_str(newline);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Property(Property),
    Component(Component),
    /// A line no property can be read from (`DTSTART;;VALUE=...`, `REFRESH - INTERVAL;
    /// VALUE = DURATION:PT48H`): kept as it is and written back byte for byte; readers skip it.
    Unreadable {
        raw: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Upper case: `VCALENDAR`, `VEVENT`, `VTODO`, `VALARM`, `VCARD`, ...
    pub name: String,
    pub children: Vec<Node>,
    begin_raw: Option<String>,
    end_raw: Option<String>,
}

impl Component {
    pub fn new(name: &str) -> Component {
        Component {
            name: name.to_ascii_uppercase(),
            children: Vec::new(),
            begin_raw: None,
            end_raw: None,
        }
    }

    pub fn properties<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.children.iter().filter_map(move |node| match node {
            Node::Property(p) if p.name.eq_ignore_ascii_case(name) => Some(p),
            _ => None,
        })
    }

    pub fn property(&self, name: &str) -> Option<&Property> {
        self.children.iter().find_map(|node| match node {
            Node::Property(p) if p.name.eq_ignore_ascii_case(name) => Some(p),
            _ => None,
        })
    }

    pub fn components<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.children.iter().filter_map(move |node| match node {
            Node::Component(c) if c.name.eq_ignore_ascii_case(name) => Some(c),
            _ => None,
        })
    }

    pub fn components_mut<'a>(
        &'a mut self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a mut Component> + 'a {
        self.children.iter_mut().filter_map(move |node| match node {
            Node::Component(c) if c.name.eq_ignore_ascii_case(name) => Some(c),
            _ => None,
        })
    }

    /// Sets the value of the first property of that name, or adds the property at the end of
    /// the properties. Its parameters are kept when it exists.
    pub fn set(&mut self, name: &str, value: &str) {
        for node in &mut self.children {
            if let Node::Property(p) = node
                && p.name.eq_ignore_ascii_case(name)
            {
                p.set_value(value);
                return;
            }
        }
        let at = self
            .children
            .iter()
            .position(|n| matches!(n, Node::Component(_)))
            .unwrap_or(self.children.len());
        self.children
            .insert(at, Node::Property(Property::new(name, Vec::new(), value)));
    }

    pub fn property_mut(&mut self, name: &str) -> Option<&mut Property> {
        self.children.iter_mut().find_map(|node| match node {
            Node::Property(p) if p.name.eq_ignore_ascii_case(name) => Some(p),
            _ => None,
        })
    }

    /// Removes every property of that name; returns how many went.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.children.len();
        self.children
            .retain(|n| !matches!(n, Node::Property(p) if p.name.eq_ignore_ascii_case(name)));
        before - self.children.len()
    }

    fn render(&self, out: &mut String, newline: &str) {
        match &self.begin_raw {
            Some(raw) => out.push_str(raw),
            None => {
                let _ = write!(out, "BEGIN:{}{newline}", self.name);
            }
        }
        for child in &self.children {
            match child {
                Node::Property(p) => p.render(out, newline),
                Node::Component(c) => c.render(out, newline),
                Node::Unreadable { raw, .. } => out.push_str(raw),
            }
        }
        match &self.end_raw {
            Some(raw) => out.push_str(raw),
            None => {
                let _ = write!(out, "END:{}{newline}", self.name);
            }
        }
    }
}

/// A parsed file: its top-level components (one `VCALENDAR` or one `VCARD`, as vdir wants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// A byte-order mark the file started with (some Windows exports), written back.
    bom: &'static str,
    pub components: Vec<Component>,
    /// The line ending new lines get: the file's own (`\r\n` as the RFCs say, or `\n`).
    newline: &'static str,
    /// Text after the last component (blank lines), kept as is.
    trailer: String,
}

impl Document {
    /// A new document of these components, with the line ending the RFCs ask for.
    pub fn new(components: Vec<Component>) -> Document {
        Document {
            bom: "",
            components,
            newline: "\r\n",
            trailer: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::from(self.bom);
        for component in &self.components {
            component.render(&mut out, self.newline);
        }
        out.push_str(&self.trailer);
        out
    }

    pub fn first(&self, name: &str) -> Option<&Component> {
        self.components
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn first_mut(&mut self, name: &str) -> Option<&mut Component> {
        self.components
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// The name vCard 2.1 gives quoted-printable values.
const QP: &str = "QUOTED-PRINTABLE";

/// Whether a logical line is a quoted-printable value cut by a soft line break (`=` at the
/// end): vCard 2.1 continues it on the next line, which does not start with a blank. Only a
/// line with the encoding among its parameters (`ENCODING=QUOTED-PRINTABLE`, or the bare
/// `QUOTED-PRINTABLE`) continues.
fn qp_continues(line: &str) -> bool {
    line.ends_with('=')
        && line.split_once(':').is_some_and(|(head, _)| {
            head.split(';').skip(1).any(|param| {
                let param = param.trim();
                param.eq_ignore_ascii_case(QP)
                    || param.split_once('=').is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case("ENCODING")
                            && value.trim().trim_matches('"').eq_ignore_ascii_case(QP)
                    })
            })
        })
}

/// Whether a line begins or ends a component: never the continuation of a value.
fn is_begin_or_end(line: &str) -> bool {
    let head = line.get(..6).unwrap_or(line).to_ascii_uppercase();
    head.starts_with("BEGIN:") || head.starts_with("END:")
}

/// Splits `text` into logical lines: (first physical line number, unfolded text, raw text).
fn logical_lines(text: &str) -> Vec<(usize, String, String)> {
    let mut lines: Vec<(usize, String, String)> = Vec::new();
    let mut number = 0;
    let mut rest = text;
    while !rest.is_empty() {
        number += 1;
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let (physical, after) = rest.split_at(end);
        rest = after;
        let content = physical.trim_end_matches(['\r', '\n']);
        let continuation = content.starts_with([' ', '\t']);
        match lines.last_mut() {
            // A quoted-printable soft line break: the `=` goes, the line goes on.
            Some(last) if qp_continues(&last.1) && !is_begin_or_end(content) => {
                last.1.pop();
                last.1.push_str(content);
                last.2.push_str(physical);
            }
            Some(last) if continuation => {
                last.1.push_str(&content[1..]);
                last.2.push_str(physical);
            }
            _ => lines.push((number, content.to_owned(), physical.to_owned())),
        }
    }
    lines
}

/// A property line's group, name, parameters and the byte offset of its value.
type Head = (Option<String>, String, Vec<Param>, usize);

fn parse_params(text: &str, line: usize) -> Result<Head, ParseError> {
    let bad = |message: &str| ParseError {
        line,
        message: message.to_owned(),
    };
    let mut chars = text.char_indices().peekable();
    let mut name = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if c == ';' || c == ':' {
            break;
        }
        name.push(c);
        chars.next();
    }
    let token = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    // A grouped vCard property: `item1.EMAIL` (RFC 6350 §3.3; Apple, iCloud, Google).
    let (group, bare_name) = match name.split_once('.') {
        Some((group, rest)) if token(group) => (Some(group.to_owned()), rest.to_owned()),
        _ => (None, name.clone()),
    };
    if !token(&bare_name) {
        return Err(bad(&format!("invalid property name {name:?}")));
    }
    let name = bare_name;
    let mut params = Vec::new();
    loop {
        match chars.next() {
            Some((i, ':')) => return Ok((group, name, params, i + 1)),
            Some((_, ';')) => {
                let mut param_name = String::new();
                let mut bare = false;
                while let Some(&(_, c)) = chars.peek() {
                    if c == '=' {
                        break;
                    }
                    if c == ':' || c == ';' {
                        bare = true;
                        break;
                    }
                    param_name.push(c);
                    chars.next();
                }
                if bare {
                    // vCard 2.1 writes a type without its name: `TEL;WORK;VOICE:`.
                    if !token(&param_name) {
                        return Err(bad(&format!("parameter {param_name:?} has no value")));
                    }
                    params.push(Param {
                        name: "TYPE".into(),
                        values: vec![param_name],
                        bare: true,
                    });
                    continue;
                }
                chars.next(); // '=
                let mut values = Vec::new();
                loop {
                    let mut value = String::new();
                    if chars.peek().map(|&(_, c)| c) == Some('"') {
                        chars.next();
                        loop {
                            match chars.next() {
                                Some((_, '"')) => break,
                                Some((_, c)) => value.push(c),
                                None => return Err(bad("unterminated quoted parameter value")),
                            }
                        }
                    } else {
                        while let Some(&(_, c)) = chars.peek() {
                            if c == ',' || c == ';' || c == ':' {
                                break;
                            }
                            value.push(c);
                            chars.next();
                        }
                    }
                    values.push(value);
                    if chars.peek().map(|&(_, c)| c) == Some(',') {
                        chars.next();
                        continue;
                    }
                    break;
                }
                params.push(Param {
                    name: param_name.to_ascii_uppercase(),
                    values,
                    bare: false,
                });
            }
            _ => return Err(bad("no ':' between the property name and its value")),
        }
    }
}

/// How deep components may nest.
pub const MAX_DEPTH: usize = 16;

/// Parses a document. Blank lines between components are kept in place only at the end; a
/// document whose components do not nest properly is an error naming the line.
// Long on purpose: one pass over the lines, each case of the nesting in one place.
pub fn parse(text: &str) -> Result<Document, ParseError> {
    let (bom, text) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    let newline = if text.contains("\r\n") || !text.contains('\n') {
        "\r\n"
    } else {
        "\n"
    };
    let mut stack: Vec<Component> = Vec::new();
    let mut done: Vec<Component> = Vec::new();
    // Blank lines (which the RFCs do not allow, but files have) are kept with the line that
    // follows them, or at the end.
    let mut pending = String::new();
    for (line, logical, raw) in logical_lines(text) {
        if logical.trim().is_empty() {
            pending.push_str(&raw);
            continue;
        }
        let raw = std::mem::take(&mut pending) + &raw;
        let upper = logical.to_ascii_uppercase();
        if let Some(name) = upper.strip_prefix("BEGIN:") {
            // Real files nest three or four deep (VCALENDAR, VEVENT, VALARM); a deeper one is
            // refused before its recursion could exhaust the stack.
            if stack.len() >= MAX_DEPTH {
                return Err(ParseError {
                    line,
                    message: format!("components nested deeper than {MAX_DEPTH}"),
                });
            }
            let mut component = Component::new(name.trim());
            component.begin_raw = Some(raw);
            stack.push(component);
            continue;
        }
        if let Some(name) = upper.strip_prefix("END:") {
            let Some(mut component) = stack.pop() else {
                return Err(ParseError {
                    line,
                    message: format!("END:{} without BEGIN", name.trim()),
                });
            };
            if !component.name.eq_ignore_ascii_case(name.trim()) {
                return Err(ParseError {
                    line,
                    message: format!("END:{} closes BEGIN:{}", name.trim(), component.name),
                });
            }
            component.end_raw = Some(raw);
            match stack.last_mut() {
                Some(parent) => parent.children.push(Node::Component(component)),
                None => done.push(component),
            }
            continue;
        }
        let Some(current) = stack.last_mut() else {
            return Err(ParseError {
                line,
                message: "a property outside of any BEGIN/END".into(),
            });
        };
        // A line that holds no readable property is kept as it is: the rest of the file
        // still counts (a lenient reader; a strict writer never writes one).
        let (group, name, params, value_at) = match parse_params(&logical, line) {
            Ok(head) => head,
            Err(error) => {
                current.children.push(Node::Unreadable {
                    raw,
                    reason: error.to_string(),
                });
                continue;
            }
        };
        let mut property = Property {
            group,
            name: name.to_ascii_uppercase(),
            params,
            value: logical[value_at..].to_owned(),
            raw: Some(raw),
        };
        if property.is_quoted_printable() {
            property.value = decode_quoted_printable(&property.value, property.param("CHARSET"));
        }
        current.children.push(Node::Property(property));
    }
    if let Some(open) = stack.last() {
        return Err(ParseError {
            line: text.lines().count(),
            message: format!("BEGIN:{} is never closed", open.name),
        });
    }
    if done.is_empty() {
        return Err(ParseError {
            line: 1,
            message: "no BEGIN/END component".into(),
        });
    }
    Ok(Document {
        bom,
        components: done,
        newline,
        trailer: pending,
    })
}

/// A TEXT value as written (`\,` `\;` `\\` `\n`) to the text it means.
pub fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') | Some('N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Text as a quoted-printable value in UTF-8 (without soft line breaks: the line is folded
/// as any other), for a quoted-printable property written anew.
pub fn encode_quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'=' || byte == b' ' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

/// A vCard 2.1 quoted-printable value (soft breaks already joined) as text: `=XX` bytes, in
/// the `CHARSET` given (UTF-8 when none; ISO-8859-1 and Windows-1252 as Latin-1).
pub fn decode_quoted_printable(value: &str, charset: Option<&str>) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'=', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    let latin1 = charset.is_some_and(|c| {
        [
            "ISO-8859-1",
            "ISO-8859-15",
            "LATIN1",
            "WINDOWS-1252",
            "CP1252",
        ]
        .iter()
        .any(|name| c.eq_ignore_ascii_case(name))
    });
    if latin1 {
        out.iter().map(|b| *b as char).collect()
    } else {
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Text to a TEXT value.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            other => out.push(other),
        }
    }
    out
}

/// The parts of a value split on an unescaped `separator` (`,` in lists such as CATEGORIES,
/// `;` in structured values such as N and ADR), each unescaped. Empty parts are kept.
pub fn split_unescaped(value: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(unescape_text(&current));
            current.clear();
        } else {
            current.push(c);
        }
    }
    if escaped {
        current.push('\\');
    }
    parts.push(unescape_text(&current));
    parts
}

/// The items of a list value such as CATEGORIES; empty items are dropped.
pub fn split_list(value: &str) -> Vec<String> {
    let mut items = split_unescaped(value, ',');
    items.retain(|item| !item.is_empty());
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//khal//NONSGML v1.0//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n\
TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:abc-123@example.com\r\nSUMMARY:Kickoff with Adventure Works\\, Inc.\r\n\
DTSTART;TZID=Europe/Berlin:20261201T100000\r\nDTEND;TZID=Europe/Berlin:20261201T110000\r\n\
ATTENDEE;CN=\"Smith, Dana\";ROLE=REQ-PARTICIPANT:mailto:dana@adventure-works.com\r\n\
DESCRIPTION:A long description that goes on and on and on and on and on and o\r\n n and is folded.\r\n\
CATEGORIES:CRM,Work\r\nX-CRM-REGARDING:ACC-1001\r\nx-vendor-thing;x-param=1:kept as is\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    /// Real producers' files (issue 12): a byte-order mark (Windows exports), grouped vCard
    /// properties (Apple, iCloud, Google), vCard 2.1's bare types (Outlook, Android). Read,
    /// and written back byte for byte; a changed property keeps its group and bare types.
    #[test]
    fn boms_groups_and_bare_types_are_read_and_kept() {
        let card = "\u{feff}BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dana Smith\r\n\
item1.EMAIL;type=INTERNET:dana@adventure-works.com\r\nitem1.X-ABLabel:_$!<Work>!$_\r\n\
TEL;WORK;VOICE:+1 555 0100\r\nEND:VCARD\r\n";
        let mut document = parse(card).unwrap();
        assert_eq!(document.render(), card, "byte for byte, the mark included");
        let vcard = document.first("VCARD").unwrap();
        let email = vcard.property("EMAIL").unwrap();
        assert_eq!(email.group.as_deref(), Some("item1"));
        assert_eq!(email.value, "dana@adventure-works.com");
        let tel = vcard.property("TEL").unwrap();
        assert_eq!(tel.params.len(), 2);
        assert!(tel.params.iter().all(|p| p.bare && p.name == "TYPE"));
        assert_eq!(tel.param("type"), Some("WORK"));
        // Changed: written again with its group and its bare types.
        let vcard = document.first_mut("VCARD").unwrap();
        for node in vcard.children.iter_mut() {
            if let Node::Property(p) = node
                && (p.name == "EMAIL" || p.name == "TEL")
            {
                let value = p.value.replace("dana@", "d.smith@").replace("0100", "0199");
                p.set_value(&value);
            }
        }
        let written = document.render();
        assert!(written.starts_with('\u{feff}'));
        assert!(
            written.contains("\r\nitem1.EMAIL;TYPE=INTERNET:d.smith@adventure-works.com\r\n"),
            "{written}"
        );
        assert!(
            written.contains("\r\nTEL;WORK;VOICE:+1 555 0199\r\n"),
            "{written}"
        );
        assert!(
            written.contains("item1.X-ABLabel:_$!<Work>!$_"),
            "{written}"
        );
    }

    /// vCard 2.1 as Outlook and Android write it: quoted-printable values with soft line
    /// breaks, in UTF-8 or Latin-1. Read decoded, written back byte for byte; a changed value
    /// is written plain.
    #[test]
    fn vcard_21_quoted_printable_is_decoded_and_kept() {
        let card = "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:M=FCller;Ren=E9\r\n\
FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Ren=C3=A9 M=C3=BCller\r\n\
NOTE;ENCODING=QUOTED-PRINTABLE:First line=0D=0A=\r\nsecond line, caf=\r\n=C3=A9\r\n\
TEL;WORK;VOICE:+1 555 0100\r\nEND:VCARD\r\n";
        let mut document = parse(card).unwrap();
        assert_eq!(document.render(), card);
        let vcard = document.first("VCARD").unwrap();
        assert_eq!(vcard.property("N").unwrap().value, "Müller;René");
        assert_eq!(vcard.property("FN").unwrap().value, "René Müller");
        assert_eq!(
            vcard.property("NOTE").unwrap().value,
            "First line\r\nsecond line, café"
        );
        let vcard = document.first_mut("VCARD").unwrap();
        vcard
            .property_mut("FN")
            .unwrap()
            .set_value("René Müller Jr");
        vcard.property_mut("NOTE").unwrap().set_value("plain");
        let written = document.render();
        assert!(
            written.contains("\r\nFN;CHARSET=UTF-8:René Müller Jr\r\n"),
            "{written}"
        );
        assert!(
            written.contains("\r\nNOTE:plain\r\nTEL;WORK;VOICE:"),
            "{written}"
        );
        assert!(
            written.contains("N;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:M=FCller;Ren=E9\r\n")
        );
    }

    /// Review of issue 12: a `=` at the end of a value joins the next line only for a real
    /// quoted-printable property, and never an END or BEGIN line; a quoted-printable property
    /// whose parameter changes is written encoded again, never with a raw line break.
    #[test]
    fn quoted_printable_never_swallows_lines_or_writes_raw_breaks() {
        let card =
            "BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE:abc=\r\nEND:VCARD\r\n";
        let document = parse(card).unwrap();
        assert_eq!(document.render(), card);
        let card = "BEGIN:VCARD\r\nX-NOTE;X-WAS=QUOTED-PRINTABLE:a=\r\nUID:1\r\nEND:VCARD\r\n";
        let document = parse(card).unwrap();
        let vcard = document.first("VCARD").unwrap();
        assert_eq!(vcard.property("UID").unwrap().value, "1", "not swallowed");
        let card = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:e\r\n\
DESCRIPTION;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:a=0D=0AEND:VEVENT=0D=0Ab=E9\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";
        let mut document = parse(card).unwrap();
        let event = document
            .first_mut("VCALENDAR")
            .unwrap()
            .components_mut("VEVENT")
            .next()
            .unwrap();
        event
            .property_mut("DESCRIPTION")
            .unwrap()
            .set_param("X-TOUCHED", Some("1"));
        let written = document.render();
        let again = parse(&written).unwrap();
        let event = again
            .first("VCALENDAR")
            .unwrap()
            .components("VEVENT")
            .next()
            .unwrap();
        assert_eq!(
            event.property("DESCRIPTION").unwrap().value,
            "a\r\nEND:VEVENT\r\nbé",
            "{written}"
        );
        assert!(
            written.contains("CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE"),
            "{written}"
        );
        // A plain value with a break in it is written as the TEXT escape.
        let mut plain = Property::new("NOTE", Vec::new(), "x");
        plain.set_value("one\r\ntwo");
        let mut out = String::new();
        plain.render(&mut out, "\r\n");
        assert_eq!(out, "NOTE:one\\ntwo\r\n");
    }

    #[test]
    fn parse_and_render_is_lossless() {
        let document = parse(EVENT).unwrap();
        assert_eq!(document.render(), EVENT);
        let calendar = document.first("VCALENDAR").unwrap();
        let event = calendar.components("VEVENT").next().unwrap();
        assert_eq!(event.property("uid").unwrap().value, "abc-123@example.com");
        assert_eq!(
            unescape_text(&event.property("SUMMARY").unwrap().value),
            "Kickoff with Adventure Works, Inc."
        );
        let attendee = event.property("ATTENDEE").unwrap();
        assert_eq!(attendee.param("cn"), Some("Smith, Dana"));
        assert_eq!(attendee.value, "mailto:dana@adventure-works.com");
        assert_eq!(
            event.property("DESCRIPTION").unwrap().value,
            "A long description that goes on and on and on and on and on and on and is folded."
        );
        assert_eq!(
            split_list(&event.property("CATEGORIES").unwrap().value),
            ["CRM", "Work"]
        );
        assert_eq!(event.components("VALARM").count(), 1);
    }

    #[test]
    fn a_change_rewrites_only_the_changed_property() {
        let mut document = parse(EVENT).unwrap();
        let event = document
            .first_mut("VCALENDAR")
            .unwrap()
            .components_mut("VEVENT")
            .next()
            .unwrap();
        event.set("SUMMARY", &escape_text("Kickoff (moved)"));
        event.set("LOCATION", "Room 2");
        assert_eq!(event.remove("X-CRM-REGARDING"), 1);
        let rendered = document.render();
        let expected = EVENT
            .replace(
                "SUMMARY:Kickoff with Adventure Works\\, Inc.\r\n",
                "SUMMARY:Kickoff (moved)\r\n",
            )
            .replace("X-CRM-REGARDING:ACC-1001\r\n", "")
            .replace(
                "x-vendor-thing;x-param=1:kept as is\r\n",
                "x-vendor-thing;x-param=1:kept as is\r\nLOCATION:Room 2\r\n",
            );
        assert_eq!(rendered, expected);
    }

    #[test]
    fn blank_lines_are_kept_where_they_were() {
        let text = "\nBEGIN:VCARD\n\nFN:x\n\nEND:VCARD\n\n";
        assert_eq!(parse(text).unwrap().render(), text);
    }

    #[test]
    fn long_values_are_folded_at_75_octets_and_unfold_again() {
        let mut document = parse("BEGIN:VCARD\nVERSION:4.0\nFN:x\nEND:VCARD\n").unwrap();
        let long = "é".repeat(100);
        document.first_mut("VCARD").unwrap().set("NOTE", &long);
        let rendered = document.render();
        assert!(rendered.lines().all(|l| l.len() <= 75), "{rendered}");
        assert!(
            !rendered.contains('\r'),
            "the file's own line ending is kept"
        );
        let again = parse(&rendered).unwrap();
        assert_eq!(
            again
                .first("VCARD")
                .unwrap()
                .property("NOTE")
                .unwrap()
                .value,
            long
        );
    }

    #[test]
    fn malformed_documents_name_the_line() {
        let cases = [
            (
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
                3,
                "END:VCALENDAR closes BEGIN:VEVENT",
            ),
            ("SUMMARY:x\r\n", 1, "outside"),
            ("BEGIN:VCARD\r\nFN:x\r\n", 2, "never closed"),
            ("", 1, "no BEGIN/END"),
        ];
        for (text, line, fragment) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(fragment), "{text:?}: {error}");
        }
        // A line that holds no readable property is kept, not fatal (issue 12: python
        // icalendar's broken_ical.ics, issue_351): the rest of the file still counts.
        for text in [
            "BEGIN:VCARD\r\nFN\r\nUID:u\r\nEND:VCARD\r\n",
            "BEGIN:VCALENDAR\r\nREFRESH - INTERVAL; VALUE = DURATION:PT48H\r\nBEGIN:VEVENT\r\nDTSTART;;VALUE=DATE-TIME:20140409T093000\r\nUID:abc\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        ] {
            let document = parse(text).unwrap();
            assert_eq!(document.render(), text);
        }
    }

    #[test]
    fn text_escapes_round_trip() {
        for text in ["a,b;c\\d\ne", "", "plain"] {
            assert_eq!(unescape_text(&escape_text(text)), text);
        }
        assert_eq!(split_list("CRM,Work\\,Life,"), ["CRM", "Work,Life"]);
    }

    proptest::proptest! {
        /// Whatever parses renders back to itself, byte for byte.
        #[test]
        fn any_parsed_text_renders_back(
            lines in proptest::collection::vec("[A-Z]{1,6}(;[A-Z]{1,3}=[a-z\"]{0,4})?:[ -~é]{0,90}", 0..8),
            crlf in proptest::bool::ANY,
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut text = format!("BEGIN:VCALENDAR{newline}");
            for line in &lines {
                let mut folded = String::new();
                fold(line, &mut folded, newline);
                text.push_str(&folded);
            }
            text.push_str(&format!("END:VCALENDAR{newline}"));
            if let Ok(document) = parse(&text) {
                proptest::prop_assert_eq!(document.render(), text);
            }
        }
    }
}
