//! What crmsync reads from a message: the header summary that gives its identity (read for
//! every message, tracked or not), and the full content of a tracked one.
//!
//! Identity is the Message-ID plus a content hash over the header fields that stay the same
//! when a message is moved, re-flagged or delivered to several people: Message-ID, Date, From,
//! To, Cc, Subject and In-Reply-To. Transport headers (Received, Delivered-To, Return-Path)
//! and the size differ between copies of one message in two mailboxes, so they are left out:
//! the same message tracked by two people must be one activity.

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use crmsync_core::auto::{Automated, MessageMeta};
use crmsync_core::item::{ContentHash, ItemIdentity};

/// The header summary of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSummary {
    pub identity: ItemIdentity,
    /// The Message-ID as the message gives it, without angle brackets; `None` when absent.
    pub message_id: Option<String>,
    /// What automatic tracking reads of it: addresses, subject, threading, automated or not.
    pub meta: MessageMeta,
}

/// Why a message cannot be tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct MalformedMessage(pub String);

/// The addresses of a header, trimmed and in lower case (identity and matching read them so).
fn lower_addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .map(|address| {
            address
                .iter()
                .filter_map(|addr| addr.address())
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(text) => vec![text.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The message without a first line of blanks only (spaces or tabs, some iPhone and Yahoo
/// mails): Dovecot and Python read the header after it, and so does crmsync. An empty first
/// line (the header is empty) is left alone.
fn without_blank_first_line(raw: &[u8]) -> &[u8] {
    let end = raw
        .iter()
        .position(|b| *b == b'\n')
        .map_or(raw.len(), |i| i + 1);
    let line = &raw[..end];
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let content = content.strip_suffix(b"\r").unwrap_or(content);
    if !content.is_empty() && content.iter().all(|b| *b == b' ' || *b == b'\t') {
        &raw[end..]
    } else {
        raw
    }
}

/// Reads the identity of a message from its header block (or from the whole message).
/// The header fields a scan fetches of each changed message, and all that [`summarize`] (and
/// the drafts step) read: the identity's, the threading ones, and those that say a message is
/// automated. A field read here must be added to the scan's query in `session.rs` too
/// (`tests::the_scan_fetches_every_field_summarize_reads` checks they agree). The first eight
/// are those of `ScanFields::Identity`: the identity's and the threading ones.
pub const SCANNED_FIELDS: [&str; 15] = [
    "Message-ID",
    "Date",
    "From",
    "To",
    "Cc",
    "Subject",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "List-Id",
    "List-Unsubscribe",
    "Precedence",
    "Return-Path",
    "Content-Type",
    "X-CRMSync-Draft-Of",
];

pub fn summarize(header: &[u8]) -> Result<HeaderSummary, MalformedMessage> {
    let header = without_blank_first_line(header);
    let neither = || MalformedMessage("it has neither a From address nor a Message-ID".into());
    let message = match MessageParser::default().parse_headers(header) {
        Some(message) => message,
        // None of the fields a scan asked for (`ScanFields::Identity`): the server sent an
        // empty block.
        None if header.iter().all(u8::is_ascii_whitespace) => return Err(neither()),
        None => return Err(MalformedMessage("no header could be read".into())),
    };
    let message_id = message
        .message_id()
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace));
    let from = lower_addresses(message.from());
    let to = lower_addresses(message.to());
    let cc = lower_addresses(message.cc());
    if from.is_empty() && message_id.is_none() {
        return Err(neither());
    }
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &str| {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    };
    field("message-id", message_id.as_deref().unwrap_or(""));
    let date = message.date().map(|d| d.to_timestamp());
    field("date", &date.map(|d| d.to_string()).unwrap_or_default());
    for (name, list) in [("from", &from), ("to", &to), ("cc", &cc)] {
        for address in list {
            field(name, address);
        }
    }
    field("subject", message.subject().unwrap_or("").trim());
    for id in text_list(message.in_reply_to()) {
        field("in-reply-to", &id);
    }
    let digest = hasher.finalize();
    let hex = hex(&digest[..16]);
    let meta = meta(&message, from, to, cc, date);
    let content_hash = ContentHash::new(&hex).expect("hex digits");
    let identity = match &message_id {
        Some(id) => ItemIdentity::Email {
            message_id: id.clone(),
            content_hash,
        },
        None => ItemIdentity::synthetic_email(content_hash),
    };
    Ok(HeaderSummary {
        identity,
        message_id,
        meta,
    })
}

/// Lower-case hexadecimal digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

fn meta(
    message: &mail_parser::Message<'_>,
    from: Vec<String>,
    to: Vec<String>,
    cc: Vec<String>,
    date: Option<i64>,
) -> MessageMeta {
    let mut recipients = to;
    recipients.extend(cc);
    let ids = |value: &HeaderValue<'_>| -> Vec<String> {
        text_list(value)
            .into_iter()
            .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
            .filter(|id| !id.is_empty())
            .collect()
    };
    MessageMeta {
        from,
        recipients,
        subject: message.subject().unwrap_or("").trim().to_owned(),
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        automated: automated(message),
        date,
        size: None,
    }
}

/// Whether the header says the message is automated mail (RFC 3834 `Auto-Submitted`, a list,
/// bulk `Precedence`, a bounce or delivery report).
fn automated(message: &mail_parser::Message<'_>) -> Option<Automated> {
    let raw = |name: &str| {
        message
            .header_raw(name)
            .map(|value| value.trim().to_ascii_lowercase())
    };
    if let Some(value) = raw("Auto-Submitted")
        && !value.is_empty()
        && value != "no"
        && !value.starts_with("no;")
    {
        return Some(Automated::AutoSubmitted(value));
    }
    if raw("List-Id").is_some() || raw("List-Unsubscribe").is_some() {
        return Some(Automated::MailingList);
    }
    if let Some(value) = raw("Precedence")
        && ["bulk", "list", "junk"].contains(&value.as_str())
    {
        return Some(Automated::Bulk(value));
    }
    let null_return_path = raw("Return-Path").is_some_and(|value| value.trim() == "<>");
    let report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|sub| sub.eq_ignore_ascii_case("report"))
    });
    (null_return_path || report).then_some(Automated::Bounce)
}

/// One address of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAddress {
    pub name: Option<String>,
    pub address: String,
    /// The group it was written in (`Team` of `To: Team: a@x, b@y;`).
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// The content of a tracked message, as its CRM copy stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEmail {
    pub subject: String,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub from: Vec<MessageAddress>,
    pub to: Vec<MessageAddress>,
    pub cc: Vec<MessageAddress>,
    pub bcc: Vec<MessageAddress>,
    /// The Date header, as UTC RFC 3339.
    pub date: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub attachments: Vec<Attachment>,
    /// How many parts the text is split into (Apple Mail puts a picture between two text
    /// parts): one for an ordinary message.
    pub body_parts: usize,
}

/// Every address of a header with its display name, and the group it was written in.
fn addresses(address: Option<&Address<'_>>) -> Vec<MessageAddress> {
    let one = |addr: &mail_parser::Addr<'_>, group: Option<&str>| {
        let address = addr.address()?.trim();
        (!address.is_empty()).then(|| MessageAddress {
            name: addr
                .name()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty()),
            address: address.to_owned(),
            group: group.map(str::to_owned),
        })
    };
    match address {
        Some(Address::List(list)) => list.iter().filter_map(|a| one(a, None)).collect(),
        Some(Address::Group(groups)) => groups
            .iter()
            .flat_map(|group| {
                let name = group
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty());
                group.addresses.iter().filter_map(move |a| one(a, name))
            })
            .collect(),
        None => Vec::new(),
    }
}

/// More multipart boundaries than any real message has.
const MAX_MIME_NESTING: usize = 64;

/// How often `needle` (lower case ASCII) occurs in `haystack`, in any case.
fn count_ignore_case(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| window.eq_ignore_ascii_case(needle))
        .count()
}

/// The attachments of a MIME part, depth first: every leaf that is not the message's text or
/// HTML body (a file, an inline image, a forwarded message, which is kept whole).
fn collect_attachments(part: &mailparse::ParsedMail<'_>, root: bool, found: &mut Vec<Attachment>) {
    let mimetype = part.ctype.mimetype.to_ascii_lowercase();
    if mimetype.starts_with("multipart/") {
        for sub in &part.subparts {
            collect_attachments(sub, false, found);
        }
        return;
    }
    if root {
        return;
    }
    let disposition = part.get_content_disposition();
    let filename = disposition
        .params
        .get("filename")
        .or_else(|| part.ctype.params.get("name"))
        .cloned();
    let is_attachment = disposition.disposition == mailparse::DispositionType::Attachment;
    if (mimetype == "text/plain" || mimetype == "text/html") && filename.is_none() && !is_attachment
    {
        return;
    }
    let content = part.get_body_raw().unwrap_or_default();
    let name = filename.unwrap_or_else(|| {
        if mimetype == "message/rfc822" {
            let subject = mailparse::parse_headers(&content)
                .ok()
                .and_then(|(headers, _)| {
                    use mailparse::MailHeaderMap;
                    headers.get_first_value("Subject")
                })
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "message".to_owned());
            format!("{}.eml", subject.trim())
        } else {
            "attachment".to_owned()
        }
    });
    found.push(Attachment {
        name,
        content_type: mimetype,
        content,
    });
}

/// Parses a whole message.
pub fn parse(raw: &[u8]) -> Result<ParsedEmail, MalformedMessage> {
    let raw = without_blank_first_line(raw);
    let summary = summarize(raw)?;
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| MalformedMessage("the message could not be parsed".into()))?;
    // The attachments from the MIME structure as mailparse sees it: mail-parser 0.11 loses
    // the parts after a forwarded message whose inner multipart is never closed (issue 12),
    // while mailparse, like Dovecot and Python, keeps the forwarded message whole.
    // mailparse recurses once per nested part: a message nested deeper than real mail ever
    // is (a hostile one, thousands of levels) would exhaust the stack, so such a message's
    // attachments come from mail-parser, which keeps its own depth limit.
    let nesting = count_ignore_case(raw, b"boundary=");
    let parsed = (nesting <= MAX_MIME_NESTING)
        .then(|| mailparse::parse_mail(raw).ok())
        .flatten();
    let attachments = match parsed {
        Some(mail) => {
            let mut found = Vec::new();
            collect_attachments(&mail, true, &mut found);
            found
        }
        None => message
            .attachments()
            .map(|part| Attachment {
                name: part.attachment_name().unwrap_or("attachment").to_owned(),
                content_type: part
                    .content_type()
                    .map(|ct| match ct.subtype() {
                        Some(sub) => format!("{}/{}", ct.ctype(), sub),
                        None => ct.ctype().to_owned(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                content: part.contents().to_vec(),
            })
            .collect(),
    };
    let join = |ids: Vec<String>| (!ids.is_empty()).then(|| ids.join(" "));
    let body_parts = message.text_body.len().max(message.html_body.len());
    Ok(ParsedEmail {
        body_parts,
        subject: message.subject().unwrap_or("").trim().to_owned(),
        text_body: message.body_text(0).map(|t| t.into_owned()),
        // Only a real text/html part: mail-parser would otherwise render the text part as HTML.
        html_body: message
            .html_bodies()
            .find(|part| part.is_text_html())
            .and_then(|part| part.text_contents())
            .map(str::to_owned),
        from: addresses(message.from()),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        bcc: addresses(message.bcc()),
        date: message
            .date()
            .and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0))
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        message_id: summary.message_id,
        in_reply_to: join(text_list(message.in_reply_to())),
        references: join(text_list(message.references())),
        attachments,
    })
}

#[cfg(test)]
mod tests {
    /// Review of issue 12: a message nested thousands of levels deep (hostile) is read
    /// without exhausting the stack of a 2 MB thread, as the daemon's runtime threads have.
    #[test]
    fn a_deeply_nested_message_does_not_exhaust_the_stack() {
        let mut raw =
            String::from("Message-ID: <deep@x.example>\r\nFrom: a@x.example\r\nSubject: deep\r\n");
        for level in 0..6000 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || super::parse(raw.as_bytes()).map(|p| p.subject))
            .unwrap();
        let subject = handle.join().expect("no stack overflow");
        assert_eq!(subject.unwrap(), "deep");
    }

    #[test]
    fn a_first_line_of_blanks_does_not_hide_the_header() {
        let raw = b" \r\nMessage-ID: <ws@x.example>\r\nFrom: Dana <dana@x.example>\r\nSubject: Hi\r\n\r\nBody\r\n";
        let summary = super::summarize(raw).unwrap();
        assert_eq!(summary.message_id.as_deref(), Some("ws@x.example"));
        assert_eq!(summary.meta.from, ["dana@x.example"]);
        let parsed = super::parse(raw).unwrap();
        assert_eq!(parsed.subject, "Hi");
        // An empty first line: no header at all, as before.
        assert!(super::summarize(b"\r\nFrom: dana@x.example\r\n\r\nBody\r\n").is_err());
        // A scan's block of none of the fields it asked for.
        let empty = super::summarize(b"\r\n").unwrap_err();
        assert!(
            empty.0.contains("neither a From address nor a Message-ID"),
            "{empty:?}"
        );
    }

    use super::*;

    const MESSAGE: &str = "Message-ID: <m1@example.com>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0100\r\n\
        From: Dana Smith <dana@adventure-works.com>\r\nTo: alice@example.com\r\nCc: Bob <bob@example.com>\r\n\
        Subject: Proposal\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello Alice.\r\n";

    /// The content hash is stored in every sync link: a change to how it is computed would
    /// make every tracked message a stranger to its own link (and a duplicate). Pinned.
    #[test]
    fn the_content_hash_does_not_change() {
        let message = MESSAGE.replace(
            "Cc: Bob <bob@example.com>",
            "Cc: Bob <Bob@Example.com>, Team: c@x.example, D@x.example;\r\nIn-Reply-To: <r@x.example>",
        );
        let summary = summarize(message.as_bytes()).unwrap();
        let hash = match summary.identity {
            ItemIdentity::Email { content_hash, .. } => content_hash,
            other => panic!("{other:?}"),
        };
        assert_eq!(hash.as_str(), "3ef4cec687c67a0ce7fdf6a77abcaea4");
    }

    #[test]
    fn identity_ignores_transport_headers() {
        let one = summarize(MESSAGE.as_bytes()).unwrap();
        let delivered = format!(
            "Received: from x by y; Sun, 29 Nov 2026 10:00:01 +0100\r\nDelivered-To: bob@example.com\r\n{MESSAGE}"
        );
        let two = summarize(delivered.as_bytes()).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.message_id.as_deref(), Some("m1@example.com"));
        let edited = MESSAGE.replace("Subject: Proposal", "Subject: Proposal v2");
        assert_ne!(summarize(edited.as_bytes()).unwrap().identity, one.identity);
    }

    #[test]
    fn a_message_without_message_id_gets_a_stable_synthetic_identity() {
        let without = MESSAGE.replace("Message-ID: <m1@example.com>\r\n", "");
        let one = summarize(without.as_bytes()).unwrap();
        let two = summarize(without.as_bytes()).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.message_id, None);
        match one.identity {
            ItemIdentity::Email { message_id, .. } => assert!(message_id.starts_with("synthetic-")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_header_gives_what_automatic_tracking_reads() {
        let reply = MESSAGE.replace(
            "Subject: Proposal",
            "Subject: Re: Proposal\r\nIn-Reply-To: <p1@x.example>\r\nReferences: <p0@x.example> <p1@x.example>",
        );
        let meta = summarize(reply.as_bytes()).unwrap().meta;
        assert_eq!(meta.from, ["dana@adventure-works.com"]);
        assert_eq!(meta.recipients, ["alice@example.com", "bob@example.com"]);
        assert_eq!(meta.subject, "Re: Proposal");
        assert_eq!(meta.in_reply_to, ["p1@x.example"]);
        assert_eq!(meta.references, ["p0@x.example", "p1@x.example"]);
        assert_eq!(meta.automated, None);
    }

    #[test]
    fn automated_mail_is_recognised_by_its_headers() {
        let with = |header: &str| {
            let text = format!("{header}\r\n{MESSAGE}");
            summarize(text.as_bytes()).unwrap().meta.automated
        };
        assert_eq!(
            with("Auto-Submitted: auto-replied"),
            Some(Automated::AutoSubmitted("auto-replied".into()))
        );
        assert_eq!(with("Auto-Submitted: no"), None);
        assert_eq!(
            with("List-Id: <news.example.com>"),
            Some(Automated::MailingList)
        );
        assert_eq!(
            with("List-Unsubscribe: <mailto:leave@example.com>"),
            Some(Automated::MailingList)
        );
        assert_eq!(
            with("Precedence: Bulk"),
            Some(Automated::Bulk("bulk".into()))
        );
        assert_eq!(with("Precedence: first-class"), None);
        assert_eq!(with("Return-Path: <>"), Some(Automated::Bounce));
        assert_eq!(with("Return-Path: <dana@adventure-works.com>"), None);
        let report = MESSAGE.replace(
            "Content-Type: text/plain",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b",
        );
        assert_eq!(
            summarize(report.as_bytes()).unwrap().meta.automated,
            Some(Automated::Bounce)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in [
            "",
            "no headers at all\r\n\r\nbody",
            "X-Only: header\r\n\r\n",
        ] {
            assert!(summarize(garbage.as_bytes()).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn parse_reads_parties_bodies_and_date() {
        let email = parse(MESSAGE.as_bytes()).unwrap();
        assert_eq!(email.subject, "Proposal");
        assert_eq!(
            email.text_body.as_deref().map(str::trim),
            Some("Hello Alice.")
        );
        assert_eq!(email.html_body, None);
        assert_eq!(email.from[0].address, "dana@adventure-works.com");
        assert_eq!(email.from[0].name.as_deref(), Some("Dana Smith"));
        assert_eq!(email.to[0].address, "alice@example.com");
        assert_eq!(email.cc[0].address, "bob@example.com");
        assert_eq!(email.date.as_deref(), Some("2026-11-29T09:00:00Z"));
    }
}
