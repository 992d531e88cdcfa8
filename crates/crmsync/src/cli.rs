//! The command line, as clap parses it. Every command and option says what it does in
//! `--help`; the commands themselves live in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// crmsync keeps people's mail, calendars, tasks and contacts in step with a CRM activity store.
///
/// Exit codes: 0 success, 1 something failed, 2 bad usage or bad config.
#[derive(Debug, Parser)]
#[command(
    name = "crmsync",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The config file.
    #[arg(
        short,
        long,
        global = true,
        env = "CRMSYNC_CONFIG",
        default_value = crmsync_config::DEFAULT_CONFIG_PATH,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// CRM users and their `sync` privilege.
    #[command(subcommand)]
    User(UserCommand),
    /// CRM records: accounts, contacts, leads, opportunities, cases and custom entities.
    #[command(subcommand)]
    Record(RecordCommand),
    /// CRM activities: emails, appointments and tasks.
    #[command(subcommand)]
    Activity(ActivityCommand),
    /// Run the daemon in the foreground: push sync of every enabled mailbox until SIGTERM.
    ///
    /// Under systemd it is Type=notify (ready once the config is loaded and the store opened)
    /// and feeds the watchdog. SIGHUP, or a change to the config file, reloads the config.
    Run {
        /// Log as text (default) or as JSON lines; overrides [log] format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<LogFormatArg>,
    },
    /// Validate the config and test each mailbox: the owner's privilege, the connection, the
    /// certificate, the login, the folders, and push (IDLE) and CONDSTORE support.
    ///
    /// Exits 1 when a mailbox fails a check.
    Check {
        /// Only this mailbox (its `id` in the config).
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Items of people's stores (messages today).
    #[command(subcommand)]
    Item(ItemCommand),
    /// The tracked items of a mailbox (or every mailbox), or with --failed the items that
    /// could not be synced in the last 3 days, with why.
    Items {
        /// Only this mailbox (its `id` in the config).
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        /// The failed-items list: each item a pass could not sync in the last 3 days and has
        /// not synced since, the latest first, with its reason and how often it failed.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Run one sync pass over every enabled mailbox (or one), then exit.
    ///
    /// Exits 1 when a mailbox failed or an item could not be synced; the summary says which.
    Sync {
        /// Only this mailbox (its `id` in the config).
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        /// Believe folders that list no message although tracked messages were in them:
        /// drop those links (the activities stay). Without it, such a listing changes
        /// nothing and the mailbox reports an error.
        #[arg(long)]
        accept_empty: bool,
        /// Carry out what the mass-delete guard held: more than half of a folder's or a
        /// collection's tracked items (and more than 10) deleted or untracked in one pass.
        /// Implies --accept-empty.
        #[arg(long)]
        accept_deletes: bool,
        /// Apply the mailbox's automatic tracking policy to mail dated from this time on
        /// (2026-11-01, or RFC 3339), not only to mail that arrived after the policy was
        /// switched on. Every folder is scanned in full, headers and flags only.
        #[arg(long, value_name = "SINCE")]
        backfill: Option<String>,
        /// Say what the pass would do, one line per change, and change nothing: folders are
        /// opened read-only, nothing is written to the store or to a collection.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// The never-track list: addresses and domains that automatic tracking never takes.
    #[command(subcommand)]
    Never(NeverCommand),
    /// Connections between records, and between an activity and a record (related records).
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Email templates with placeholders, for `activity add email --template`.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Knowledge-base articles, for `activity add email --article`.
    #[command(subcommand)]
    Article(ArticleCommand),
    /// Sales literature (named sets of files), for `activity add email --literature`.
    #[command(subcommand)]
    Literature(LiteratureCommand),
    /// The conflict log: fields changed on both sides to different values, newest first, with
    /// what each side held and which side won under the mailbox's policy.
    Conflicts {
        /// Only this mailbox's conflicts.
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Show the daemon's status file.
    Status(JsonFlag),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum YesNo {
    Yes,
    No,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a CRM user (a `systemuser` record). Users have the `sync` privilege unless --no-sync.
    Add {
        /// The user's email address: the owner address of their mailbox in the config.
        email: String,
        /// The user's display name.
        #[arg(long)]
        name: String,
        /// Add the user without the `sync` privilege: their mailbox is not synchronized.
        #[arg(long)]
        no_sync: bool,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// List CRM users.
    List(JsonFlag),
    /// Grant or withdraw a user's `sync` privilege.
    Set {
        email: String,
        /// Whether the user's mailbox is synchronized.
        #[arg(long, value_enum)]
        sync: YesNo,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Add a record. Its number is assigned (ACC-1001, CON-1001, ...) unless --number gives one.
    Add {
        /// The entity type: systemuser, account, contact, lead, opportunity, incident, or a
        /// custom one (lowercase letters, digits and '_').
        entity: String,
        /// The record's display name.
        #[arg(long)]
        name: String,
        /// An email address of the record (repeat for several).
        #[arg(long = "email", value_name = "ADDR")]
        emails: Vec<String>,
        /// The record's number, instead of the next automatic one.
        #[arg(long, value_name = "NUM")]
        number: Option<String>,
        /// The parent record's number (the account of a contact, say).
        #[arg(long, value_name = "NUM")]
        parent: Option<String>,
        /// The owning CRM user's email address.
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// List records, of one entity type or of all.
    List {
        entity: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Show one record, with its connections.
    Show {
        number: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Change a record's fields, as a CRM user would.
    ///
    /// Keys: name, email (comma-separated list), phone (comma-separated list), parent (a record
    /// number), owner (a user's email), given_name, family_name, job_title, address, notes.
    /// An empty value clears the field.
    Set {
        number: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        changes: Vec<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Delete a record. Refused while activities regard it or while it is a user who owns
    /// activities or records; its emails, phones and connections go with it, and records and
    /// parties that pointed at it keep their data without the pointer.
    Delete { number: String },
}

#[derive(Debug, Subcommand)]
pub enum ActivityCommand {
    /// Create an activity in the CRM: an appointment or task for a person's calendar, or an
    /// email in state pending-send, to be sent through the owner's SMTP account.
    Add(Box<NewActivityArgs>),
    /// List activities.
    List {
        /// Only activities of this type: email, appointment or task.
        #[arg(long = "type", value_name = "TYPE")]
        activity_type: Option<String>,
        /// Only activities linked to an item of this mailbox.
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Show one activity, with its parties and sync links.
    Show {
        /// The activity's id, or a unique prefix of it (at least 4 characters).
        id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Change an activity's fields, as a CRM user would.
    ///
    /// Keys: subject, body, location, start, end, due, state, priority, percent, regarding.
    /// An empty value clears the field.
    Set {
        id: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        changes: Vec<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Delete an activity. The items it was synced with stay in people's stores and lose their
    /// tracking signal on the next pass.
    Delete { id: String },
    /// Make a record from an activity: a lead (the sender's address as its email), an
    /// opportunity (under the sender's account) or a case (for the sender's contact), named
    /// after the subject; the activity then regards it and is connected to it.
    Convert {
        id: String,
        /// lead, opportunity or case.
        #[arg(value_name = "KIND")]
        kind: String,
        /// The new record's name, instead of the activity's subject.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Send again an email that is send-failed, or send-uncertain (crmsync stopped while the
    /// server was receiving it, so it may have gone out): a person's decision, since the
    /// recipients may get it twice. It goes out on the mailbox's next pass.
    Resend {
        id: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Set the record an activity is about, or `none` to clear it.
    Regarding {
        id: String,
        /// A record number, or `none`.
        number: String,
        #[command(flatten)]
        output: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum ItemCommand {
    /// The tracking pane of one message, event, task or contact: tracked or not, its regarding record and that record's
    /// parent, each address and the record it resolved to, and its sync state.
    Show {
        /// The mailbox's `id` in the config.
        #[arg(long, value_name = "ID")]
        mailbox: String,
        /// The message's Message-ID (angle brackets optional).
        #[arg(
            long,
            value_name = "MID",
            conflicts_with_all = ["uid", "href"],
            required_unless_present_any = ["uid", "href"]
        )]
        message_id: Option<String>,
        /// The message's folder and UID, as FOLDER:UID.
        #[arg(long, value_name = "FOLDER:UID", conflicts_with = "href")]
        uid: Option<String>,
        /// A calendar or address-book item's file name (`e1.ics`, or `calendar/e1.ics`).
        #[arg(long, value_name = "HREF")]
        href: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
}

/// `crmsync activity add`.
#[derive(Debug, Args)]
pub struct NewActivityArgs {
    /// email, appointment or task.
    pub activity_type: String,
    /// The owning CRM user's email address.
    #[arg(long, value_name = "EMAIL")]
    pub owner: String,
    /// The subject (an email with --template may leave it to the template's).
    #[arg(long, required_unless_present = "template")]
    pub subject: Option<String>,
    /// Start: 2026-12-01 (all day), 2026-12-01T10:00 (local time) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// End, in the same forms as --start.
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Due time of a task, in the same forms as --start.
    #[arg(long, value_name = "TIME")]
    pub due: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    /// The regarding record's number.
    #[arg(long, value_name = "NUM")]
    pub regarding: Option<String>,
    /// A recipient of an email, or a required attendee of an appointment (repeat for
    /// several).
    #[arg(long = "to", value_name = "ADDR")]
    pub to: Vec<String>,
    /// The text body of an email, or the description of an appointment or task.
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,
    /// An email: insert this CRM template (placeholders filled from the first recipient's
    /// record, the regarding record and the owner) after --body.
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// An email: insert this knowledge-base article (KB-1001) at the end.
    #[arg(long, value_name = "NUM")]
    pub article: Option<String>,
    /// An email: attach this sales literature's files (repeat for several).
    #[arg(long, value_name = "NAME")]
    pub literature: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// `crmsync connection ...`. An end is a record number (ACC-1001) or an activity id (or a
/// unique prefix of at least 4 characters).
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Connect two records, or an activity and a record.
    Add {
        from: String,
        to: String,
        /// FROM's role in the connection ("decision maker", say).
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// TO's role.
        #[arg(long, value_name = "ROLE")]
        other_role: Option<String>,
    },
    /// The connections of a record or an activity.
    List {
        end: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Remove the connections between two ends.
    Delete { from: String, to: String },
}

/// `crmsync template ...`.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Add an email template. Placeholders: {{recipient.name}}, {{recipient.email}},
    /// {{recipient.number}}, {{recipient.entity}}, {{regarding.name}}, {{regarding.number}},
    /// {{regarding.entity}}, {{owner.name}}, {{owner.email}}, {{date}}.
    Add {
        name: String,
        #[arg(long)]
        subject: String,
        /// A file with the plain-text body.
        #[arg(long, value_name = "FILE", required_unless_present = "html_file")]
        body_file: Option<std::path::PathBuf>,
        /// A file with the HTML body.
        #[arg(long, value_name = "FILE")]
        html_file: Option<std::path::PathBuf>,
    },
    List(JsonFlag),
    Show {
        name: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    Delete {
        name: String,
    },
}

/// `crmsync article ...`.
#[derive(Debug, Subcommand)]
pub enum ArticleCommand {
    /// Add a knowledge-base article; it gets the next number (KB-1001 first).
    Add {
        #[arg(long)]
        title: String,
        #[arg(
            long,
            value_name = "TEXT",
            required_unless_present = "body_file",
            conflicts_with = "body_file"
        )]
        body: Option<String>,
        #[arg(long, value_name = "FILE")]
        body_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        output: JsonFlag,
    },
    List(JsonFlag),
    Show {
        number: String,
        #[command(flatten)]
        output: JsonFlag,
    },
}

/// `crmsync literature ...`.
#[derive(Debug, Subcommand)]
pub enum LiteratureCommand {
    /// Add sales literature: a named set of files, stored in the CRM store (at most 25 MB
    /// each), attached as they are to the emails that name it.
    Add {
        name: String,
        #[arg(long = "file", value_name = "PATH", required = true)]
        files: Vec<std::path::PathBuf>,
    },
    List(JsonFlag),
    Show {
        name: String,
        #[command(flatten)]
        output: JsonFlag,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NeverCommand {
    /// Never track mail from or to this address (or `@domain`) automatically. Kept in the CRM
    /// store: it holds from the next pass on, without a config reload.
    Add {
        /// An address (`doctor@example.org`) or a whole domain (`@family.example`).
        entry: String,
        /// Only for this mailbox (default: every mailbox).
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        /// Also delete the CRM copies that automatic tracking made of mail with that address
        /// (never one a person tracked by hand); the messages lose the tracking keyword on the
        /// next pass and are not tracked again.
        #[arg(long)]
        purge: bool,
    },
    /// The never-track list: the config's entries and the store's.
    List {
        /// Only the entries that hold for this mailbox.
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
        #[command(flatten)]
        output: JsonFlag,
    },
    /// Remove an entry that `never add` made.
    Remove {
        entry: String,
        #[arg(long, value_name = "ID")]
        mailbox: Option<String>,
    },
}
