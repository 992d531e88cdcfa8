//! What automatic tracking (SPEC section 3) decides from, for a message nobody tracked by hand:
//! its metadata only (addresses, subject, threading headers, whether it is automated mail),
//! never its body; and the never-track list, which no automatic rule crosses.
//!
//! The adapter reads [`MessageMeta`] from a message's header block; [`decide`] makes the
//! decision for one message from it and from what the CRM knows ([`AutoContext`]), so it can be
//! tested as data.
//!
//! The rules, in order:
//! 1. the never-track list wins over every automatic rule (a person's own keyword still tracks);
//! 2. automated mail ([`Automated`]) is never tracked automatically;
//! 3. a reply to tracked email is tracked under every policy but `none` (the policies are
//!    cumulative: `replies` ⊂ `crm-records` ⊂ `all`), inheriting the thread's regarding record.
//!    It is a reply when its In-Reply-To, or else one of its References, names a tracked email,
//!    **and** it shares an address other than the owner's with that email: a forward to new
//!    people, or a thread that drifted to others, shares none and is not correlated;
//! 4. under `crm-records`, a message whose sender or a recipient resolves to a CRM contact, lead
//!    or account (a CRM user alone does not count) is tracked;
//! 5. under `all`, every other message is.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::RecordNumber;

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
    /// The Date header, in UNIX seconds.
    pub date: Option<i64>,
    /// The message's size in bytes (RFC822.SIZE), when the scan learned it: what fetching
    /// its body will bring.
    pub size: Option<u32>,
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

impl std::fmt::Display for NeverEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NeverEntry::Address(address) => f.write_str(address),
            NeverEntry::Domain(domain) => write!(f, "@{domain}"),
        }
    }
}

/// The entry of `never` that an address of the message matches, if any.
pub fn never_match<'a>(never: &'a [NeverEntry], meta: &MessageMeta) -> Option<&'a NeverEntry> {
    meta.addresses()
        .find_map(|address| never.iter().find(|entry| entry.matches(address)))
}

/// The automatic tracking policy of a mailbox (`[mailbox.tracking] auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPolicy {
    None,
    Replies,
    CrmRecords,
    All,
}

impl AutoPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoPolicy::None => "none",
            AutoPolicy::Replies => "replies",
            AutoPolicy::CrmRecords => "crm-records",
            AutoPolicy::All => "all",
        }
    }
}

/// A tracked email, as correlation sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedThread {
    pub regarding: Option<RecordNumber>,
    /// Its senders and recipients, lower case.
    pub participants: BTreeSet<String>,
}

/// What the CRM knows that automatic tracking decides with.
#[derive(Debug, Clone, Copy)]
pub struct AutoContext<'a> {
    /// The mailbox owner's address, lower case: shared with every thread, so it never counts.
    pub owner: &'a str,
    /// Addresses that resolve to a CRM contact, lead or account.
    pub crm_addresses: &'a BTreeSet<String>,
    /// Tracked email by Message-ID.
    pub threads: &'a BTreeMap<String, TrackedThread>,
}

/// Why a message is tracked automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoReason {
    /// A reply to the tracked email with this Message-ID.
    Reply { parent: String },
    /// This address resolves to a CRM contact, lead or account.
    CrmRecord { address: String },
    /// `auto = "all"`.
    All,
}

impl AutoReason {
    /// In words, for `item show`.
    pub fn describe(&self) -> String {
        match self {
            AutoReason::Reply { parent } => format!("a reply to the tracked email <{parent}>"),
            AutoReason::CrmRecord { address } => {
                format!("{address} is a CRM contact, lead or account")
            }
            AutoReason::All => "the policy takes all mail".into(),
        }
    }
}

/// Why a message is not tracked automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoSkip {
    PolicyNone,
    Never(NeverEntry),
    Automated(Automated),
    /// No rule of the policy applies.
    NoRule,
}

impl AutoSkip {
    /// In words, for `item show`.
    pub fn describe(&self) -> String {
        match self {
            AutoSkip::PolicyNone => "automatic tracking is off".into(),
            AutoSkip::Never(entry) => format!("{entry} is on the never-track list"),
            AutoSkip::Automated(automated) => automated.describe(),
            AutoSkip::NoRule => "no rule of the policy applies".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoDecision {
    Track {
        regarding: Option<RecordNumber>,
        reason: AutoReason,
    },
    Skip(AutoSkip),
}

/// The decision for one message nobody tracked by hand (see the module's rules).
pub fn decide(
    policy: AutoPolicy,
    never: &[NeverEntry],
    meta: &MessageMeta,
    context: AutoContext<'_>,
) -> AutoDecision {
    if policy == AutoPolicy::None {
        return AutoDecision::Skip(AutoSkip::PolicyNone);
    }
    if let Some(entry) = never_match(never, meta) {
        return AutoDecision::Skip(AutoSkip::Never(entry.clone()));
    }
    if let Some(automated) = &meta.automated {
        return AutoDecision::Skip(AutoSkip::Automated(automated.clone()));
    }
    if let Some((parent, thread)) = parent_thread(meta, context) {
        return AutoDecision::Track {
            regarding: thread.regarding.clone(),
            reason: AutoReason::Reply {
                parent: parent.to_owned(),
            },
        };
    }
    if matches!(policy, AutoPolicy::CrmRecords | AutoPolicy::All)
        && let Some(address) = meta
            .addresses()
            .find(|address| context.crm_addresses.contains(*address))
    {
        return AutoDecision::Track {
            regarding: None,
            reason: AutoReason::CrmRecord {
                address: address.to_owned(),
            },
        };
    }
    if policy == AutoPolicy::All {
        return AutoDecision::Track {
            regarding: None,
            reason: AutoReason::All,
        };
    }
    AutoDecision::Skip(AutoSkip::NoRule)
}

/// The tracked email this message replies to: the one its In-Reply-To names, else the newest
/// of its References that is tracked, provided the two share an address besides the owner's.
fn parent_thread<'a>(
    meta: &MessageMeta,
    context: AutoContext<'a>,
) -> Option<(&'a str, &'a TrackedThread)> {
    let candidates = meta.in_reply_to.iter().chain(meta.references.iter().rev());
    let (parent, thread) = candidates
        .filter_map(|id| context.threads.get_key_value(id.as_str()))
        .next()?;
    let shares = meta
        .addresses()
        .filter(|address| *address != context.owner)
        .any(|address| thread.participants.contains(address));
    shares.then_some((parent.as_str(), thread))
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

    fn number(n: &str) -> RecordNumber {
        RecordNumber::new(n).unwrap()
    }

    struct Case {
        policy: AutoPolicy,
        meta: MessageMeta,
        expected: AutoDecision,
    }

    fn message(from: &str, to: &[&str]) -> MessageMeta {
        MessageMeta {
            from: vec![from.into()],
            recipients: to.iter().map(|a| (*a).to_owned()).collect(),
            subject: "Offer".into(),
            ..MessageMeta::default()
        }
    }

    fn reply(mut meta: MessageMeta, in_reply_to: &[&str], references: &[&str]) -> MessageMeta {
        meta.in_reply_to = in_reply_to.iter().map(|a| (*a).to_owned()).collect();
        meta.references = references.iter().map(|a| (*a).to_owned()).collect();
        meta
    }

    fn track(regarding: Option<&str>, reason: AutoReason) -> AutoDecision {
        AutoDecision::Track {
            regarding: regarding.map(number),
            reason,
        }
    }

    fn reply_to(parent: &str) -> AutoReason {
        AutoReason::Reply {
            parent: parent.into(),
        }
    }

    // Long on purpose: the rules as a table of cases.
    #[test]
    fn the_rules_in_order() {
        let owner = "alice@example.com";
        let crm_addresses = BTreeSet::from(["dana@adventure-works.com".to_owned()]);
        let threads = BTreeMap::from([(
            "t1@x.example".to_owned(),
            TrackedThread {
                regarding: Some(number("ACC-1001")),
                participants: BTreeSet::from([
                    "alice@example.com".to_owned(),
                    "erin@customer.example".to_owned(),
                ]),
            },
        )]);
        let context = AutoContext {
            owner,
            crm_addresses: &crm_addresses,
            threads: &threads,
        };
        let never = [NeverEntry::parse("@family.example").unwrap()];
        let stranger = message("sam@elsewhere.example", &[owner]);
        let from_crm = message("dana@adventure-works.com", &[owner]);
        let erin_replies = reply(
            message("erin@customer.example", &[owner]),
            &["t1@x.example"],
            &[],
        );
        let only_references = reply(
            message("erin@customer.example", &[owner]),
            &[],
            &["t0@x.example", "t1@x.example"],
        );
        // Forwarded by the owner to people the thread never had.
        let forward = reply(
            message(owner, &["new@other.example"]),
            &["t1@x.example"],
            &[],
        );
        let mut automated = from_crm.clone();
        automated.automated = Some(Automated::MailingList);
        let mut family = from_crm.clone();
        family.recipients.push("mum@family.example".into());
        let cases = [
            Case {
                policy: AutoPolicy::None,
                meta: from_crm.clone(),
                expected: AutoDecision::Skip(AutoSkip::PolicyNone),
            },
            Case {
                policy: AutoPolicy::All,
                meta: family,
                expected: AutoDecision::Skip(AutoSkip::Never(never[0].clone())),
            },
            Case {
                policy: AutoPolicy::All,
                meta: automated,
                expected: AutoDecision::Skip(AutoSkip::Automated(Automated::MailingList)),
            },
            Case {
                policy: AutoPolicy::Replies,
                meta: erin_replies.clone(),
                expected: track(Some("ACC-1001"), reply_to("t1@x.example")),
            },
            Case {
                policy: AutoPolicy::All,
                meta: erin_replies,
                expected: track(Some("ACC-1001"), reply_to("t1@x.example")),
            },
            Case {
                policy: AutoPolicy::Replies,
                meta: only_references,
                expected: track(Some("ACC-1001"), reply_to("t1@x.example")),
            },
            Case {
                policy: AutoPolicy::Replies,
                meta: forward.clone(),
                expected: AutoDecision::Skip(AutoSkip::NoRule),
            },
            Case {
                policy: AutoPolicy::All,
                meta: forward,
                expected: track(None, AutoReason::All),
            },
            Case {
                policy: AutoPolicy::Replies,
                meta: from_crm.clone(),
                expected: AutoDecision::Skip(AutoSkip::NoRule),
            },
            Case {
                policy: AutoPolicy::CrmRecords,
                meta: from_crm,
                expected: track(
                    None,
                    AutoReason::CrmRecord {
                        address: "dana@adventure-works.com".into(),
                    },
                ),
            },
            Case {
                policy: AutoPolicy::CrmRecords,
                meta: stranger.clone(),
                expected: AutoDecision::Skip(AutoSkip::NoRule),
            },
            Case {
                policy: AutoPolicy::All,
                meta: stranger,
                expected: track(None, AutoReason::All),
            },
        ];
        for (index, case) in cases.iter().enumerate() {
            assert_eq!(
                decide(case.policy, &never, &case.meta, context),
                case.expected,
                "case {index}: {:?}",
                case.meta
            );
        }
    }
}
