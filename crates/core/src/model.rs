//! Validated names and closed enums of the CRM side.
//!
//! Everything that arrives from outside (a CLI argument, a config value, a row another program
//! wrote) passes through one of these constructors before the rest of crmsync trusts it, so a
//! bad value is refused once, at the edge, with a message that says what is wrong.

use std::fmt;

use thiserror::Error;

/// Why a value was refused. The message is lowercase and names the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(message: impl Into<String>) -> InvalidValue {
    InvalidValue(message.into())
}

/// The uuid of a CRM record (any entity, users included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub uuid::Uuid);

/// The uuid of a CRM activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivityId(pub uuid::Uuid);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of an entity type: one of the built-in ones or a custom one.
///
/// A name is 1 to 64 characters of lowercase ASCII letters, digits and `_`, starting with a
/// letter, so that it is safe in a file name, a log field and an SQL literal alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityName(String);

/// The entity types every CRM store has, with the prefix of their record numbers.
pub const BUILTIN_ENTITIES: &[(&str, &str)] = &[
    ("systemuser", "USR"),
    ("account", "ACC"),
    ("contact", "CON"),
    ("lead", "LEA"),
    ("opportunity", "OPP"),
    ("incident", "CAS"),
];

impl EntityName {
    pub const SYSTEMUSER: &'static str = "systemuser";
    pub const ACCOUNT: &'static str = "account";
    pub const CONTACT: &'static str = "contact";
    pub const LEAD: &'static str = "lead";

    pub fn new(name: &str) -> Result<EntityName, InvalidValue> {
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if name.is_empty() || name.len() > 64 || !valid_chars || !starts_with_letter {
            return Err(invalid(format!(
                "invalid entity name {name:?}: use 1 to 64 lowercase letters, digits or '_', starting with a letter"
            )));
        }
        Ok(EntityName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_builtin(&self) -> bool {
        BUILTIN_ENTITIES.iter().any(|(name, _)| *name == self.0)
    }

    /// The prefix of automatically assigned record numbers: the built-in one, or for a custom
    /// entity the first three characters of its name in upper case (`project` gives `PRO`).
    /// The store makes the final choice, since two custom entities may share a start.
    pub fn default_number_prefix(&self) -> String {
        if let Some((_, prefix)) = BUILTIN_ENTITIES.iter().find(|(name, _)| *name == self.0) {
            return (*prefix).to_owned();
        }
        self.0
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(3)
            .collect::<String>()
            .to_ascii_uppercase()
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The short human number of a record, such as `ACC-1001`: unique across the whole store.
///
/// Numbers are compared and stored in upper case, because they travel in IMAP keywords
/// (`crm:acc-1001`), which clients and servers treat case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordNumber(String);

impl RecordNumber {
    /// Accepts 1 to 32 ASCII letters, digits and `-`, starting with a letter or digit and not
    /// ending with `-`: a value that is a valid IMAP keyword atom after `crm:`.
    pub fn new(number: &str) -> Result<RecordNumber, InvalidValue> {
        let trimmed = number.trim();
        let valid_chars = trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if trimmed.is_empty()
            || trimmed.len() > 32
            || !valid_chars
            || trimmed.starts_with('-')
            || trimmed.ends_with('-')
        {
            return Err(invalid(format!(
                "invalid record number {number:?}: use 1 to 32 letters, digits or '-', such as ACC-1001"
            )));
        }
        Ok(RecordNumber(trimmed.to_ascii_uppercase()))
    }

    /// The number assigned automatically: `PREFIX-SEQUENCE`.
    pub fn from_parts(prefix: &str, sequence: u64) -> Result<RecordNumber, InvalidValue> {
        RecordNumber::new(&format!("{prefix}-{sequence}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address as a person typed it, checked for a plausible shape.
///
/// The address keeps its spelling for display; [`EmailAddress::key`] is the form used to match
/// addresses (ASCII lower case), since mail systems treat addresses case-insensitively in practice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn new(address: &str) -> Result<EmailAddress, InvalidValue> {
        let trimmed = address.trim();
        let shape_ok = match trimmed.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        };
        let chars_ok = trimmed
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | ',' | ';'));
        if !shape_ok || !chars_ok || trimmed.len() > 254 {
            return Err(invalid(format!(
                "invalid email address {address:?}: expected the form name@example.com"
            )));
        }
        Ok(EmailAddress(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form addresses are matched by: ASCII case folded, as the store's `COLLATE NOCASE`
    /// folds it, so that matching in Rust and in SQL agree.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a closed enum whose variants travel as fixed lowercase words (in the store, the
/// CLI and JSON), with parsing that lists the accepted words when it refuses one.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            pub fn parse(word: &str) -> Result<$name, InvalidValue> {
                match word {
                    $($word => Ok($name::$variant),)+
                    _ => Err(invalid(format!(
                        concat!("invalid ", $what, " {:?}: expected one of {}"),
                        word,
                        [$($word),+].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// The three kinds of CRM activity (SPEC section 4).
    ActivityType, "activity type" {
        Email => "email",
        Appointment => "appointment",
        Task => "task",
    }
);

word_enum!(
    /// The life-cycle state of an activity. Which states a type may take is
    /// [`ActivityType::allows_state`].
    ActivityState, "activity state" {
        Open => "open",
        Completed => "completed",
        Cancelled => "cancelled",
        Received => "received",
        Sent => "sent",
        PendingSend => "pending-send",
        SendFailed => "send-failed",
        SendUncertain => "send-uncertain",
        Draft => "draft",
    }
);

impl ActivityType {
    /// The state a new activity of this type starts in, when created in the CRM. An email created
    /// in the CRM is one to be sent (SPEC section 5).
    pub fn initial_crm_state(self) -> ActivityState {
        match self {
            ActivityType::Email => ActivityState::PendingSend,
            ActivityType::Appointment | ActivityType::Task => ActivityState::Open,
        }
    }

    pub fn allows_state(self, state: ActivityState) -> bool {
        use ActivityState::*;
        match self {
            ActivityType::Email => {
                matches!(
                    state,
                    Received | Sent | PendingSend | SendFailed | SendUncertain | Draft | Cancelled
                )
            }
            ActivityType::Appointment | ActivityType::Task => {
                matches!(state, Open | Completed | Cancelled)
            }
        }
    }

    /// The states this type may take, for error messages.
    pub fn allowed_states(self) -> Vec<ActivityState> {
        ActivityState::ALL
            .iter()
            .copied()
            .filter(|state| self.allows_state(*state))
            .collect()
    }
}

word_enum!(
    /// The role of one participant of an activity.
    PartyRole, "party role" {
        From => "from",
        To => "to",
        Cc => "cc",
        Bcc => "bcc",
        Organizer => "organizer",
        Required => "required",
        Optional => "optional",
    }
);

word_enum!(
    /// How a conflict (one field changed on both sides to different values) is settled.
    ConflictPolicy, "conflict policy" {
        MailboxWins => "mailbox-wins",
        CrmWins => "crm-wins",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names() {
        for good in ["account", "new_project", "x1"] {
            assert_eq!(EntityName::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Account",
            "1abc",
            "my-entity",
            "a b",
            "acc;drop",
            &"a".repeat(65),
        ] {
            let error = EntityName::new(bad).unwrap_err();
            assert!(error.0.contains("invalid entity name"), "{error}");
        }
    }

    #[test]
    fn number_prefixes() {
        let prefix = |name: &str| EntityName::new(name).unwrap().default_number_prefix();
        assert_eq!(prefix("account"), "ACC");
        assert_eq!(prefix("incident"), "CAS");
        assert_eq!(prefix("project"), "PRO");
        assert_eq!(prefix("p_x"), "PX");
    }

    #[test]
    fn record_numbers_are_upper_case_and_checked() {
        assert_eq!(
            RecordNumber::new(" acc-1001 ").unwrap().as_str(),
            "ACC-1001"
        );
        for bad in ["", "-1", "ACC-", "ACC 1", "ACC:1", "ACC_1", &"A".repeat(33)] {
            assert!(RecordNumber::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn email_addresses() {
        let address = EmailAddress::new("Alice@Example.COM").unwrap();
        assert_eq!(address.as_str(), "Alice@Example.COM");
        assert_eq!(address.key(), "alice@example.com");
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "<a@b.c>",
            "a@.b",
        ] {
            assert!(EmailAddress::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn word_enums_round_trip_and_list_choices() {
        for state in ActivityState::ALL {
            assert_eq!(ActivityState::parse(state.as_str()).unwrap(), *state);
        }
        let error = ActivityType::parse("meeting").unwrap_err();
        assert_eq!(
            error.0,
            "invalid activity type \"meeting\": expected one of email, appointment, task"
        );
    }

    #[test]
    fn states_per_type() {
        assert!(ActivityType::Email.allows_state(ActivityState::PendingSend));
        assert!(!ActivityType::Task.allows_state(ActivityState::Sent));
        assert!(!ActivityType::Email.allows_state(ActivityState::Open));
        for kind in ActivityType::ALL {
            assert!(kind.allows_state(kind.initial_crm_state()));
        }
    }
}
