//! What automatic tracking (SPEC section 3) decides from, for a message nobody tracked by hand:
//! its metadata only (addresses, subject, threading headers, whether it is automated mail),
//! never its body; and the never-track list, which no automatic rule crosses.
//!
//! The adapter reads [`MessageMeta`] from a message's header block; the decisions that use it
//! live here so they can be tested as data.

/// Why a message counts as automated mail, which automatic tracking never takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Automated {
    /// `Auto-Submitted` other than `no` (RFC 3834): vacation replies, notifications.
    AutoSubmitted(String),
    /// `List-Id` or `List-Unsubscribe`: a mailing list or a newsletter.
    MailingList,
    /// `Precedence: bulk`, `list` or `junk`.
    Bulk(String),
    /// A null return path (`Return-Path: <>`) or a `multipart/report`: a bounce or a receipt.
    Bounce,
}

impl Automated {
    /// In words, for logs and `item show`.
    pub fn describe(&self) -> String {
        match self {
            Automated::AutoSubmitted(value) => format!("automated mail (Auto-Submitted: {value})"),
            Automated::MailingList => "mailing-list mail (List-Id or List-Unsubscribe)".into(),
            Automated::Bulk(value) => format!("bulk mail (Precedence: {value})"),
            Automated::Bounce => "a bounce or delivery report".into(),
        }
    }
}

/// What the header block of a message says, as automatic tracking reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// The From addresses, lower case.
    pub from: Vec<String>,
    /// The To and Cc addresses, lower case.
    pub recipients: Vec<String>,
    pub subject: String,
    /// Message-IDs without angle brackets.
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub automated: Option<Automated>,
}

impl MessageMeta {
    /// Every address of the message: senders first, then recipients.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.from
            .iter()
            .chain(self.recipients.iter())
            .map(String::as_str)
    }
}

/// One entry of the never-track list: an address, or every address of a domain (`@domain`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NeverEntry {
    Address(String),
    Domain(String),
}

impl NeverEntry {
    /// `doctor@example.org` or `@family.example`, case-insensitively; `None` for anything else.
    pub fn parse(text: &str) -> Option<NeverEntry> {
        let text = text.trim().to_ascii_lowercase();
        match text.strip_prefix('@') {
            Some(domain) if !domain.is_empty() && !domain.contains('@') => {
                Some(NeverEntry::Domain(domain.to_owned()))
            }
            Some(_) => None,
            None => {
                let (local, domain) = text.split_once('@')?;
                (!local.is_empty() && !domain.is_empty() && !domain.contains('@'))
                    .then_some(NeverEntry::Address(text))
            }
        }
    }

    /// Whether an address (any case) is this entry, or of this entry's domain.
    pub fn matches(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        match self {
            NeverEntry::Address(never) => address == *never,
            NeverEntry::Domain(domain) => address
                .rsplit_once('@')
                .is_some_and(|(_, address_domain)| address_domain == domain),
        }
    }
}

/// The entry of `never` that an address of the message matches, if any.
pub fn never_match<'a>(never: &'a [NeverEntry], meta: &MessageMeta) -> Option<&'a NeverEntry> {
    meta.addresses()
        .find_map(|address| never.iter().find(|entry| entry.matches(address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_entries_parse_and_match_case_insensitively() {
        let doctor = NeverEntry::parse(" Doctor@Example.org ").unwrap();
        let family = NeverEntry::parse("@Family.Example").unwrap();
        assert!(doctor.matches("doctor@EXAMPLE.org"));
        assert!(!doctor.matches("nurse@example.org"));
        assert!(family.matches("mum@family.example"));
        assert!(!family.matches("mum@family.example.com"));
        assert!(!family.matches("family.example@other.example"));
        for bad in ["", "@", "nobody", "a@b@c", "@a@b", "@"] {
            assert_eq!(NeverEntry::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_never_list_covers_senders_and_recipients() {
        let never = [NeverEntry::parse("@family.example").unwrap()];
        let mut meta = MessageMeta {
            from: vec!["dana@adventure-works.com".into()],
            recipients: vec!["alice@example.com".into()],
            ..MessageMeta::default()
        };
        assert_eq!(never_match(&never, &meta), None);
        meta.recipients.push("mum@family.example".into());
        assert_eq!(never_match(&never, &meta), Some(&never[0]));
    }
}
