//! One logged-in IMAP connection and the operations a sync pass needs.
//!
//! Every server round trip is bounded by a timeout and counted in [`Counters`], so that tests
//! and the pass summary can show, for instance, that a pass with no change fetched no body.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, Response};
use async_imap::types::{Flag, UnsolicitedResponse};
use async_imap::{Client, Session};
use futures::TryStreamExt;
use tokio::net::TcpStream;

use crmsync_config::{ImapConfig, Secret, Security};

use crate::message;
use crate::stream::{Limits, MAX_LINE, MailStream};
use crate::{ImapError, tls};
use crmsync_core::email::Presence;
use crmsync_core::item::ItemIdentity;

/// The header fields a scan reads ([`message::SCANNED_FIELDS`]: a test holds the two
/// together), not the whole header (a tenth of the bytes, or less, on ordinary mail with its
/// `Received` and DKIM lines). `identity`: the identity's and the threading ones alone.
macro_rules! scanned_fields {
    (identity) => {
        "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO CC SUBJECT IN-REPLY-TO REFERENCES)]"
    };
    (all) => {
        "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO CC SUBJECT IN-REPLY-TO REFERENCES \
         AUTO-SUBMITTED LIST-ID LIST-UNSUBSCRIBE PRECEDENCE RETURN-PATH CONTENT-TYPE \
         X-CRMSYNC-DRAFT-OF)]"
    };
}

/// Which header fields a scan asks of each message it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFields {
    /// The identity's and the threading ones: what a mailbox without automatic tracking reads
    /// (the first eight of [`message::SCANNED_FIELDS`]). The server sends, and the scan parses,
    /// a third less: the field list comes back with every message.
    Identity,
    /// All of [`message::SCANNED_FIELDS`]: also those that say a message is automated (for
    /// automatic tracking) and the drafts step's.
    All,
}

impl ScanFields {
    /// What an incremental scan fetches of each changed message: its flags, its size (which
    /// bounds a batch of body fetches) and the header fields.
    fn changed_query(self) -> &'static str {
        match self {
            ScanFields::Identity => concat!("UID FLAGS RFC822.SIZE ", scanned_fields!(identity)),
            ScanFields::All => concat!("UID FLAGS RFC822.SIZE ", scanned_fields!(all)),
        }
    }

    /// What a full scan fetches of every message: [`ScanFields::changed_query`] without the
    /// size. On maildir Dovecot finds each message's size in its file's name, a lookup that
    /// cost more than the header fields themselves (about 200 ms at 10,000 messages against
    /// 70); the few messages a pass imports have their sizes asked for then
    /// ([`ImapSession::fetch_sizes`]).
    fn full_query(self) -> &'static str {
        match self {
            ScanFields::Identity => concat!("UID FLAGS ", scanned_fields!(identity)),
            ScanFields::All => concat!("UID FLAGS ", scanned_fields!(all)),
        }
    }
}

/// Which messages a full scan reads the header fields of. The others come with their UID and
/// flags alone (one `UID FETCH 1:* (UID FLAGS)` first, then the headers of the wanted ones by
/// UID set): on a first scan of a mailbox where a few messages in a hundred are tracked, the
/// server reads a few headers, not every message's file, and the answer is a tenth the size.
#[derive(Clone, Copy)]
pub enum Wanted<'a> {
    /// Every message's.
    All,
    /// Those for which this says yes, given the folder's UIDVALIDITY, the message's UID and
    /// its keywords.
    Some(&'a (dyn Fn(u32, u32, &[String]) -> bool + Sync)),
}

/// The capacity of async-imap's channel of untagged responses (0.12: `bounded(100)`); when
/// that many came during one command, some may have been dropped.
const UNSOLICITED_CAPACITY: usize = 100;

/// The most vanished UIDs taken one by one; more, and the folder's UID list is read instead.
const MAX_VANISHED: u64 = 100_000;

/// The saved UIDVALIDITY and HIGHESTMODSEQ, when both are known: where a scan that does not
/// select the folder starts from.
fn incremental_markers(saved: Option<FolderMarkers>) -> Option<(u32, u64)> {
    saved.and_then(|saved| Some((saved.uid_validity, saved.highest_modseq?)))
}

/// The UID and keywords of one FETCH answer of a flags fetch.
fn fetched_flags(fetch: &async_imap::types::Fetch) -> Option<(u32, Vec<String>)> {
    Some((fetch.uid?, keywords(fetch.flags())))
}

/// The flags and header fields of one FETCH answer; `None` for a FETCH of flags alone (the
/// server telling of a change meanwhile), which is no answer to a header fetch.
fn fetched_header(fetch: &async_imap::types::Fetch) -> Option<FetchedHeader> {
    Some(FetchedHeader {
        uid: fetch.uid?,
        keywords: keywords(fetch.flags()),
        header: fetch.header()?.to_vec(),
        size: fetch.size,
        modseq: fetch.modseq,
        summary: None,
    })
}

/// A UID set in IMAP's syntax, runs of consecutive UIDs as ranges (`4:9,12,15:16`).
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut set = String::new();
    let mut rest = sorted.iter().copied().peekable();
    while let Some(first) = rest.next() {
        let mut last = first;
        while let Some(next) = rest.next_if(|next| last.checked_add(1) == Some(*next)) {
            last = next;
        }
        if !set.is_empty() {
            set.push(',');
        }
        if last == first {
            set.push_str(&first.to_string());
        } else {
            set.push_str(&format!("{first}:{last}"));
        }
    }
    set
}

/// How long one server operation may take before the connection counts as failed.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// What one session asked of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub select_commands: u64,
    /// `UID FETCH` commands of any kind.
    pub fetch_commands: u64,
    /// Whole messages fetched (`BODY.PEEK[]`): only tracked messages' bodies are ever fetched.
    pub bodies_fetched: u64,
    /// `UID STORE` commands (keywords written back).
    pub store_commands: u64,
}

impl Counters {
    /// What was asked since `earlier` (a session kept between passes keeps counting).
    pub fn since(self, earlier: Counters) -> Counters {
        Counters {
            select_commands: self.select_commands - earlier.select_commands,
            fetch_commands: self.fetch_commands - earlier.fetch_commands,
            bodies_fetched: self.bodies_fetched - earlier.bodies_fetched,
            store_commands: self.store_commands - earlier.store_commands,
        }
    }
}

/// Where a folder's last scan left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderMarkers {
    pub uid_validity: u32,
    pub highest_modseq: Option<u64>,
}

/// The flags and header of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedHeader {
    pub uid: u32,
    /// Keywords (user flags) only, as the server spells them; system flags are left out.
    pub keywords: Vec<String>,
    pub header: Vec<u8>,
    /// The message's size (RFC822.SIZE), when the server gave it.
    pub size: Option<u32>,
    /// The message's MODSEQ (CONDSTORE), when the server gave it.
    pub modseq: Option<u64>,
    /// The header read ([`message::summarize`]), when the scan read it as the answers came
    /// in (a large scan does, on blocking threads); otherwise whoever needs it reads it.
    pub summary: Option<Summarized>,
}

/// A message's header read: its identity and what tracking reads, or why not.
pub type Summarized = Result<message::HeaderSummary, message::MalformedMessage>;

/// Headers read together on one blocking thread while the rest of a scan's answers arrive: a
/// scan of fewer reads none of them (the caller reads them, on its own thread).
const SUMMARIZE_CHUNK: usize = 1_000;

/// Reads the headers of `chunk` (on a blocking thread).
fn summarize_chunk(mut chunk: Vec<FetchedHeader>) -> Vec<FetchedHeader> {
    for fetched in &mut chunk {
        fetched.summary = Some(message::summarize(&fetched.header));
    }
    chunk
}

/// How an IDLE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleOutcome {
    /// The server reported a change in the folder.
    Changed,
    /// Nothing happened within the time given.
    Timeout,
    /// The caller asked the IDLE to end (`until` finished) before anything happened.
    Interrupted,
}

/// What a scan of one folder saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderScan {
    pub folder: String,
    pub uid_validity: u32,
    pub highest_modseq: Option<u64>,
    /// The messages in the folder now: every UID, or what vanished since `saved` (QRESYNC).
    pub present: Presence,
    /// The UID the next message delivered will get (UIDNEXT), when the server says.
    pub uid_next: Option<u32>,
    /// Messages new or changed since the markers given (all of them on a full scan).
    pub changed: Vec<FetchedHeader>,
    /// Whether this was a full scan (first scan, UIDVALIDITY changed, or no CONDSTORE).
    pub full: bool,
    /// Messages a full scan read the flags of alone (their headers were not [`Wanted`]), by
    /// UID; [`ImapSession::fetch_headers_of`] reads them when the caller finds it needs them.
    pub withheld: Vec<u32>,
}

/// The folder a connection holds selected, as the server has described it since.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selected {
    folder: String,
    uid_validity: Option<u32>,
    /// The number of messages in the folder (EXISTS), followed through the EXISTS, EXPUNGE
    /// and VANISHED the server sent since the SELECT; `None` once some may have been missed.
    exists: Option<u32>,
    uid_next: Option<u32>,
}

impl Selected {
    /// Follows one thing the server said on its own about the selected folder.
    fn follow(&mut self, response: &Response<'_>) {
        match response {
            Response::MailboxData(MailboxDatum::Exists(count)) => self.exists = Some(*count),
            Response::Expunge(_) => self.exists = self.exists.and_then(|n| n.checked_sub(1)),
            // VANISHED (EARLIER) answers a command and counts nothing (RFC 7162 section 3.2.10).
            Response::Vanished {
                earlier: false,
                uids,
            } => {
                let gone: u64 = uids
                    .iter()
                    .map(|range| u64::from(range.start().abs_diff(*range.end())) + 1)
                    .sum();
                self.exists = self
                    .exists
                    .and_then(|n| u32::try_from(u64::from(n).checked_sub(gone)?).ok());
            }
            _ => {}
        }
    }
}

/// What the server said on its own since the library's channel was last emptied.
#[derive(Debug, Default)]
struct Heard {
    /// A new or expunged message, a flag change or a vanished UID.
    changed: bool,
    /// The UIDs reported vanished, as ranges.
    vanished: Vec<std::ops::RangeInclusive<u32>>,
    /// The channel was full: some responses may have been dropped.
    overflowed: bool,
}

/// Empties the library's channel of untagged responses, following the selected folder's
/// message count through it.
fn hear(
    channel: &async_channel::Receiver<UnsolicitedResponse>,
    selected: &mut Option<Selected>,
) -> Heard {
    let mut heard = Heard::default();
    let mut received = 0;
    while let Ok(response) = channel.try_recv() {
        received += 1;
        let (changed, vanished) = match &response {
            UnsolicitedResponse::Exists(count) => {
                if let Some(selected) = selected.as_mut() {
                    selected.exists = Some(*count);
                }
                (true, None)
            }
            UnsolicitedResponse::Expunge(seq) => {
                if let Some(selected) = selected.as_mut() {
                    selected.follow(&Response::Expunge(*seq));
                }
                (true, None)
            }
            UnsolicitedResponse::Recent(_) => (true, None),
            UnsolicitedResponse::Other(data) => {
                if let Some(selected) = selected.as_mut() {
                    selected.follow(data.parsed());
                }
                match data.parsed() {
                    Response::Fetch(_, attributes) => (!is_own_silent_store(attributes), None),
                    Response::Vanished { uids, .. } => (true, Some(uids.clone())),
                    _ => (false, None),
                }
            }
            _ => (false, None),
        };
        heard.changed |= changed;
        // RFC 3501 allows a range written high to low.
        heard.vanished.extend(
            vanished.into_iter().flatten().map(|range| {
                (*range.start()).min(*range.end())..=(*range.start()).max(*range.end())
            }),
        );
    }
    if received >= UNSOLICITED_CAPACITY {
        heard.overflowed = true;
        if let Some(selected) = selected.as_mut() {
            selected.exists = None;
        }
    }
    heard
}

/// Whether an unsolicited FETCH carries a mod-sequence and nothing else to tell (its UID at
/// most): the server's word on this session's own `STORE .SILENT` (RFC 7162 section 3.1.3
/// has it sent all the same, with the new MODSEQ). A change made elsewhere comes with the
/// message's FLAGS. Not a change to wake for: the crm-synced marks a pass stores would
/// otherwise set off a pass that reads them back.
fn is_own_silent_store(attributes: &[async_imap::imap_proto::AttributeValue<'_>]) -> bool {
    use async_imap::imap_proto::AttributeValue;
    attributes
        .iter()
        .any(|attribute| matches!(attribute, AttributeValue::ModSeq(_)))
        && attributes.iter().all(|attribute| {
            matches!(
                attribute,
                AttributeValue::ModSeq(_) | AttributeValue::Uid(_)
            )
        })
}

pub struct ImapSession {
    session: Session<MailStream>,
    selected: Option<Selected>,
    /// Folders are opened with EXAMINE, which changes nothing on the server (not even the
    /// \Recent flags): for a pass that only says what it would do.
    read_only: bool,
    condstore: bool,
    /// QRESYNC is enabled (RFC 7162): a scan learns what vanished since its saved markers
    /// instead of listing every UID.
    qresync: bool,
    idle: bool,
    /// A message fetched is cut at this many bytes (`max_message_size`).
    max_message_size: u64,
    /// The header fields scans ask for.
    scan_fields: ScanFields,
    pub counters: Counters,
}

/// A message as fetched: whole, or its first `max_message_size` bytes when it is larger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub raw: Vec<u8>,
    /// The message's whole size as the server gave it (RFC822.SIZE), at least what came.
    pub size: u64,
    cut: bool,
}

impl FetchedMessage {
    /// A message fetched whole.
    pub fn whole(raw: Vec<u8>) -> FetchedMessage {
        let size = raw.len() as u64;
        FetchedMessage {
            raw,
            size,
            cut: false,
        }
    }

    /// Whether only the first part of the message was fetched: as many bytes came as were
    /// asked for, and the server does not say that was all of it. (Its RFC822.SIZE alone
    /// decides nothing: some servers give it larger than the message.)
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

/// A NO to a command naming `folder` is a missing folder, unless it carries a response code
/// other than NONEXISTENT (SERVERBUG, UNAVAILABLE, INUSE, ...): that is the server's trouble,
/// said in its words, retried.
fn missing(folder: &str, error: ImapError) -> ImapError {
    match error {
        ImapError::No(text) if !text.starts_with('[') || text.starts_with("[NONEXISTENT]") => {
            ImapError::FolderMissing(folder.to_owned())
        }
        other => other,
    }
}

async fn bounded<T, E: Into<ImapError>>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(OPERATION_TIMEOUT, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ImapError::Timeout(format!(
            "{what}: no answer within {} s",
            OPERATION_TIMEOUT.as_secs()
        ))),
    }
}

/// What a session takes from its server: lines up to [`MAX_LINE`], literals up to the
/// mailbox's `max_message_size` (a message fetched is cut there) and a little more.
fn limits(imap: &ImapConfig) -> Limits {
    Limits {
        line: MAX_LINE,
        literal: imap.max_message_size + (1 << 20),
    }
}

async fn tls_handshake(tcp: TcpStream, imap: &ImapConfig) -> Result<MailStream, ImapError> {
    let config = tls::client_config(&imap.tls)?;
    let name = tls::server_name(&imap.host)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = bounded("TLS handshake", async {
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| ImapError::from_tls_io(&imap.host, e))
    })
    .await?;
    Ok(MailStream::tls(stream, limits(imap)))
}

async fn read_greeting(client: &mut Client<MailStream>) -> Result<(), ImapError> {
    match bounded("greeting", async { client.read_response().await }).await? {
        Some(_) => Ok(()),
        None => Err(ImapError::Protocol(
            "the server closed the connection before its greeting".into(),
        )),
    }
}

fn keywords<'a>(flags: impl Iterator<Item = Flag<'a>>) -> Vec<String> {
    flags
        .filter_map(|flag| match flag {
            Flag::Custom(keyword) if !keyword.starts_with('\\') => Some(keyword.into_owned()),
            _ => None,
        })
        .collect()
}

impl ImapSession {
    /// Connects with the mailbox's security, verifies the certificate, and logs in.
    pub async fn connect(imap: &ImapConfig, password: &Secret) -> Result<ImapSession, ImapError> {
        let host = imap.host.trim_start_matches('[').trim_end_matches(']');
        let address = format!("{}:{}", imap.host, imap.port);
        let tcp = bounded("connect", async {
            TcpStream::connect((host, imap.port))
                .await
                .map_err(|e| ImapError::Connect {
                    address: address.clone(),
                    message: e.to_string(),
                })
        })
        .await?;
        // A command goes out in several writes (tag, text, literal): without this, Nagle's
        // algorithm holds the later ones for the server's delayed ACK on a real network.
        let _ = tcp.set_nodelay(true);
        let client = match imap.security {
            Security::Tls => {
                let mut client = Client::new(tls_handshake(tcp, imap).await?);
                read_greeting(&mut client).await?;
                client
            }
            Security::Starttls => {
                let mut plain = Client::new(MailStream::plain(tcp, limits(imap)));
                read_greeting(&mut plain).await?;
                bounded("STARTTLS", async {
                    plain.run_command_and_check_ok("STARTTLS", None).await
                })
                .await?;
                let tcp = plain
                    .into_inner()
                    .into_plain()
                    .map_err(ImapError::Protocol)?;
                // No second greeting after STARTTLS (RFC 3501 section 6.2.1).
                Client::new(tls_handshake(tcp, imap).await?)
            }
            Security::None => {
                let mut client = Client::new(MailStream::plain(tcp, limits(imap)));
                read_greeting(&mut client).await?;
                client
            }
        };
        let login = tokio::time::timeout(
            OPERATION_TIMEOUT,
            client.login(&imap.username, password.expose()),
        )
        .await
        .map_err(|_| ImapError::Timeout("login: no answer".into()))?;
        let mut session = login.map_err(|(error, _)| match error {
            async_imap::error::Error::No(message) | async_imap::error::Error::Bad(message) => {
                ImapError::Authentication {
                    user: imap.username.clone(),
                    host: imap.host.clone(),
                    message,
                }
            }
            other => other.into(),
        })?;
        let capabilities = bounded("CAPABILITY", session.capabilities()).await?;
        let condstore = capabilities.has_str("CONDSTORE");
        // RFC 5161: an extension that changes what the server sends is asked for. A server
        // that refuses it is scanned the CONDSTORE way.
        let qresync = condstore
            && capabilities.has_str("QRESYNC")
            && capabilities.has_str("ENABLE")
            && bounded("ENABLE", session.run_command_and_check_ok("ENABLE QRESYNC"))
                .await
                .is_ok();
        Ok(ImapSession {
            session,
            selected: None,
            read_only: false,
            condstore,
            qresync,
            idle: capabilities.has_str("IDLE"),
            max_message_size: imap.max_message_size,
            scan_fields: ScanFields::All,
            counters: Counters::default(),
        })
    }

    /// Whether the connection still answers (a cached session may have been dropped by the
    /// server while it waited). Also the check that a `FETCH` before it ran to its end: the
    /// library ends a fetch's stream quietly when the connection drops mid-answer.
    pub async fn is_alive(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(10), self.session.noop())
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Opens folders read-only (EXAMINE) from now on, or read-write again.
    pub fn set_read_only(&mut self, read_only: bool) {
        if self.read_only != read_only {
            self.read_only = read_only;
            self.selected = None;
        }
    }

    /// Which header fields scans ask for from now on.
    pub fn set_scan_fields(&mut self, fields: ScanFields) {
        self.scan_fields = fields;
    }

    pub fn has_condstore(&self) -> bool {
        self.condstore
    }

    pub fn has_idle(&self) -> bool {
        self.idle
    }

    /// The folder this connection holds selected, if any.
    pub fn selected_folder(&self) -> Option<&str> {
        self.selected
            .as_ref()
            .map(|selected| selected.folder.as_str())
    }

    /// Selects `folder` again (after another was selected) and returns its HIGHESTMODSEQ, so
    /// the caller can tell whether it changed since it was last read.
    pub async fn reselect(&mut self, folder: &str) -> Result<Option<u64>, ImapError> {
        Ok(self.select(folder).await?.highest_modseq)
    }

    async fn select(&mut self, folder: &str) -> Result<async_imap::types::Mailbox, ImapError> {
        self.counters.select_commands += 1;
        // What the server said of the folder selected before is not this one's.
        hear(&self.session.unsolicited_responses, &mut None);
        let result = if self.read_only {
            bounded("EXAMINE", self.session.examine(folder)).await
        } else if self.condstore {
            bounded("SELECT", self.session.select_condstore(folder)).await
        } else {
            bounded("SELECT", self.session.select(folder)).await
        };
        match result {
            Ok(mailbox) => {
                self.selected = Some(Selected {
                    folder: folder.to_owned(),
                    uid_validity: mailbox.uid_validity,
                    exists: Some(mailbox.exists),
                    uid_next: mailbox.uid_next,
                });
                Ok(mailbox)
            }
            Err(error) => {
                self.selected = None;
                Err(missing(folder, error))
            }
        }
    }

    /// Whether a folder exists (and can be opened), asked with a STATUS: unlike a SELECT that
    /// fails, it leaves the folder held selected.
    pub async fn folder_exists(&mut self, folder: &str) -> Result<bool, ImapError> {
        match bounded("STATUS", self.session.status(folder, "(MESSAGES)")).await {
            Ok(_) => Ok(true),
            Err(error) => match missing(folder, error) {
                ImapError::FolderMissing(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn ensure_selected(&mut self, folder: &str) -> Result<(), ImapError> {
        if self.selected.as_ref().map(|s| s.folder.as_str()) != Some(folder) {
            self.select(folder).await?;
        }
        Ok(())
    }

    /// Scans a folder: only what changed since `saved` when the server has CONDSTORE and the
    /// folder's UIDVALIDITY is unchanged; otherwise every message's flags, and the header of
    /// those `wanted` (the others are listed in [`FolderScan::withheld`]). Bodies are never
    /// fetched here. With QRESYNC, what vanished comes with the changes (one `UID
    /// FETCH ... (CHANGEDSINCE m VANISHED)`) and a folder whose HIGHESTMODSEQ is unchanged
    /// costs its SELECT only; without it, the UID list is read on every scan to see expunges.
    /// A full scan lists the folder by the UIDs its FETCH of every message brings. A folder
    /// this connection already holds selected is not selected again when QRESYNC can say what
    /// changed ([`ImapSession::scan_selected`]).
    pub async fn scan_folder(
        &mut self,
        folder: &str,
        saved: Option<FolderMarkers>,
        wanted: Wanted<'_>,
    ) -> Result<FolderScan, ImapError> {
        if let Some(scan) = self.scan_selected(folder, saved).await? {
            return Ok(scan);
        }
        if let Some(scan) = self.scan_unchanged(folder, saved).await? {
            return Ok(scan);
        }
        let mailbox = self.select(folder).await?;
        let uid_validity = mailbox.uid_validity.ok_or_else(|| {
            ImapError::Protocol(format!("the server gave no UIDVALIDITY for {folder:?}"))
        })?;
        let highest_modseq = mailbox.highest_modseq.filter(|_| self.condstore);
        // A HIGHESTMODSEQ lower than the saved one (an index rebuilt, a restore) says nothing
        // about what changed since: a full scan.
        let incremental_from = match saved {
            Some(saved) if saved.uid_validity == uid_validity => saved
                .highest_modseq
                .zip(highest_modseq)
                .filter(|(saved, now)| saved <= now),
            _ => None,
        };
        let quick = match incremental_from {
            // An empty folder: everything that was there is gone, nothing to fetch.
            Some(_) if self.qresync && mailbox.exists == 0 => {
                Some((Presence::Listed(BTreeSet::new()), Vec::new(), Vec::new()))
            }
            Some((saved_modseq, now_modseq)) if self.qresync => {
                let (vanished, changed) = if saved_modseq == now_modseq {
                    (Some(BTreeSet::new()), Vec::new())
                } else {
                    self.fetch_changes_and_vanished(saved_modseq).await?
                };
                // Unsure what vanished (see `fetch_changes_and_vanished`): the UID list says.
                vanished.map(|vanished| {
                    let present = Presence::Vanished {
                        vanished,
                        exists: mailbox.exists,
                    };
                    (present, changed, Vec::new())
                })
            }
            // A full scan fetches every message, so the answer lists the folder: no UID SEARCH
            // (whose answer for a large folder costs more to parse than the headers). Trusted
            // only when it holds exactly the messages SELECT counted: none delivered since
            // (every UID below UIDNEXT) and as many as EXISTS. A server that left a message out
            // (its FETCH refused with a NO, which the library does not report) while another
            // arrived would otherwise have it listed as gone.
            None => {
                let (present, changed, withheld) = if mailbox.exists == 0 {
                    Default::default()
                } else {
                    self.fetch_all(uid_validity, wanted).await?
                };
                let known = mailbox
                    .uid_next
                    .is_some_and(|next| present.last().is_none_or(|last| *last < next));
                (known && present.len() == mailbox.exists as usize).then_some((
                    Presence::Listed(present),
                    changed,
                    withheld,
                ))
            }
            _ => None,
        };
        let (present, changed, withheld) = match quick {
            Some(scanned) => scanned,
            None if incremental_from.is_none() => {
                let present: BTreeSet<u32> = bounded("UID SEARCH", self.session.uid_search("ALL"))
                    .await?
                    .into_iter()
                    .collect();
                let (_, changed, withheld) = if present.is_empty() {
                    Default::default()
                } else {
                    self.fetch_all(uid_validity, wanted).await?
                };
                (Presence::Listed(present), changed, withheld)
            }
            None => {
                let present: BTreeSet<u32> = bounded("UID SEARCH", self.session.uid_search("ALL"))
                    .await?
                    .into_iter()
                    .collect();
                let query = match incremental_from {
                    Some((saved_modseq, now_modseq)) if saved_modseq != now_modseq => {
                        Some(format!(
                            "({}) (CHANGEDSINCE {saved_modseq})",
                            self.scan_fields.changed_query()
                        ))
                    }
                    _ => None,
                };
                let changed = match query {
                    Some(query) if !present.is_empty() => self.fetch_headers("1:*", &query).await?,
                    _ => Vec::new(),
                };
                (Presence::Listed(present), changed, Vec::new())
            }
        };
        Ok(FolderScan {
            folder: folder.to_owned(),
            uid_validity,
            highest_modseq,
            uid_next: mailbox.uid_next,
            present,
            changed,
            full: incremental_from.is_none(),
            withheld,
        })
    }

    /// A full scan's fetch: every message's UID and flags, and the header fields of those
    /// `wanted` (all, in one FETCH; some, in a second one by UID set). Returns the UIDs the
    /// answers listed, the headers, and the UIDs whose header was not wanted.
    async fn fetch_all(
        &mut self,
        uid_validity: u32,
        wanted: Wanted<'_>,
    ) -> Result<(BTreeSet<u32>, Vec<FetchedHeader>, Vec<u32>), ImapError> {
        let query = format!("({})", self.scan_fields.full_query());
        let want = match wanted {
            Wanted::All => {
                let changed = self.fetch_headers("1:*", &query).await?;
                let present = changed.iter().map(|m| m.uid).collect();
                return Ok((present, changed, Vec::new()));
            }
            Wanted::Some(want) => want,
        };
        let flags = self.fetch_flags("1:*").await?;
        let present: BTreeSet<u32> = flags.keys().copied().collect();
        let (wanted, withheld): (Vec<u32>, Vec<u32>) = present
            .iter()
            .partition(|uid| want(uid_validity, **uid, &flags[uid]));
        let changed = if wanted.is_empty() {
            Vec::new()
        } else {
            self.fetch_headers(&uid_set(&wanted), &query).await?
        };
        Ok((present, changed, withheld))
    }

    /// The UID and keywords of every message of `uids` in the selected folder: one FETCH of
    /// a few dozen bytes a message.
    async fn fetch_flags(&mut self, uids: &str) -> Result<BTreeMap<u32, Vec<String>>, ImapError> {
        self.counters.fetch_commands += 1;
        bounded("UID FETCH flags", async {
            let mut answers = self.session.uid_fetch(uids, "(UID FLAGS)").await?;
            let mut flags = BTreeMap::new();
            // A later answer for the same UID (a change the server told of meanwhile) is
            // the newer one.
            while let Some(fetch) = answers.try_next().await? {
                flags.extend(fetched_flags(&fetch));
            }
            Ok::<_, async_imap::error::Error>(flags)
        })
        .await
    }

    /// The flags and header fields (a scan's) of `uids` in `folder`, sorted by UID: the
    /// messages a full scan withheld ([`FolderScan::withheld`]), when the caller needs their
    /// identities after all. A UID the folder no longer holds is left out; a folder whose
    /// UIDVALIDITY is no longer `uid_validity` (its UIDs name other messages now) is an error.
    pub async fn fetch_headers_of(
        &mut self,
        folder: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> Result<Vec<FetchedHeader>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_selected(folder).await?;
        if self.selected.as_ref().and_then(|s| s.uid_validity) != Some(uid_validity) {
            return Err(ImapError::Protocol(format!(
                "the UIDVALIDITY of {folder:?} changed during the pass"
            )));
        }
        let query = format!("({})", self.scan_fields.full_query());
        self.fetch_headers(&uid_set(uids), &query).await
    }

    /// The flags and headers of the messages changed since `modseq`, and the UIDs that
    /// vanished since then (QRESYNC): one `UID FETCH` over every possible UID (`1:*` would
    /// end at the highest UID there now, and miss a vanished higher one). The vanished UIDs are
    /// `None` when they cannot be trusted: the library's channel of untagged responses may
    /// have dropped some (it holds [`UNSOLICITED_CAPACITY`]), or there are more than
    /// [`MAX_VANISHED`] (a server reporting every UID it does not know); the caller then lists
    /// the folder.
    async fn fetch_changes_and_vanished(
        &mut self,
        modseq: u64,
    ) -> Result<(Option<BTreeSet<u32>>, Vec<FetchedHeader>), ImapError> {
        // What the server said before this command (EXISTS, FETCH of flags, an earlier
        // VANISHED) is not this answer's, but counts; VANISHED (EARLIER) reports every UID
        // gone since `modseq` again.
        hear(&self.session.unsolicited_responses, &mut self.selected);
        let changed = self
            .fetch_headers(
                "1:4294967295",
                &format!(
                    "({}) (CHANGEDSINCE {modseq} VANISHED)",
                    self.scan_fields.changed_query()
                ),
            )
            .await?;
        let heard = hear(&self.session.unsolicited_responses, &mut self.selected);
        let count: u64 = heard
            .vanished
            .iter()
            .map(|range| u64::from(range.end() - range.start()) + 1)
            .sum();
        if heard.overflowed || count > MAX_VANISHED {
            return Ok((None, changed));
        }
        let vanished = heard.vanished.into_iter().flatten().collect();
        Ok((Some(vanished), changed))
    }

    /// A scan of a folder other than the one held, when its STATUS says it did not change
    /// since the saved markers (the same UIDVALIDITY and HIGHESTMODSEQ): nothing changed,
    /// nothing vanished, and the connection keeps the folder it holds (the one that changes,
    /// as a rule) selected. `None` when the folder must be selected: no CONDSTORE, no saved
    /// HIGHESTMODSEQ, the folder held already, a change, or a STATUS refused (a missing
    /// folder is reported by its SELECT).
    async fn scan_unchanged(
        &mut self,
        folder: &str,
        saved: Option<FolderMarkers>,
    ) -> Result<Option<FolderScan>, ImapError> {
        let Some((uid_validity, saved_modseq)) = incremental_markers(saved) else {
            return Ok(None);
        };
        let held = self
            .selected
            .as_ref()
            .is_some_and(|selected| selected.folder == folder);
        if !self.condstore || held {
            return Ok(None);
        }
        let status = match bounded(
            "STATUS",
            self.session
                .status(folder, "(UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"),
        )
        .await
        {
            Ok(status) => status,
            Err(ImapError::No(_)) => return Ok(None),
            Err(other) => return Err(other),
        };
        if status.uid_validity != Some(uid_validity) || status.highest_modseq != Some(saved_modseq)
        {
            return Ok(None);
        }
        Ok(Some(FolderScan {
            folder: folder.to_owned(),
            uid_validity,
            highest_modseq: Some(saved_modseq),
            present: if status.exists == 0 {
                Presence::Listed(BTreeSet::new())
            } else {
                Presence::Vanished {
                    vanished: BTreeSet::new(),
                    exists: status.exists,
                }
            },
            uid_next: status.uid_next,
            changed: Vec::new(),
            full: false,
            withheld: Vec::new(),
        }))
    }

    /// A scan of the folder this connection holds selected, without selecting it again: what
    /// changed and what vanished since the saved markers (one `UID FETCH ... (CHANGEDSINCE m
    /// VANISHED)`), the message count as the server's EXISTS, EXPUNGE and VANISHED responses
    /// since the SELECT left it. A SELECT makes Dovecot reread a large maildir folder (a
    /// second at 100,000 messages): a pass after each change would cost that. `None` when
    /// the folder must be selected: no QRESYNC, another folder held, a UIDVALIDITY other than
    /// the saved one, no saved HIGHESTMODSEQ, a count lost (the library dropped responses) or
    /// vanished UIDs not to be trusted.
    ///
    /// The HIGHESTMODSEQ returned is the highest MODSEQ among the changes (or the saved one):
    /// below the folder's own when its last change was an expunge, so the next scan hears of
    /// those UIDs again, which changes nothing.
    async fn scan_selected(
        &mut self,
        folder: &str,
        saved: Option<FolderMarkers>,
    ) -> Result<Option<FolderScan>, ImapError> {
        let Some((uid_validity, saved_modseq)) = incremental_markers(saved) else {
            return Ok(None);
        };
        let held = self.selected.as_ref().is_some_and(|selected| {
            selected.folder == folder
                && selected.uid_validity == Some(uid_validity)
                && selected.exists.is_some()
        });
        if !self.qresync || !held {
            return Ok(None);
        }
        let (Some(vanished), changed) = self.fetch_changes_and_vanished(saved_modseq).await? else {
            return Ok(None);
        };
        let Some(selected) = self.selected.as_mut() else {
            return Ok(None);
        };
        let Some(exists) = selected.exists else {
            return Ok(None);
        };
        let after_last = changed.last().and_then(|m| m.uid.checked_add(1));
        selected.uid_next = selected.uid_next.max(after_last);
        let highest_modseq = changed
            .iter()
            .filter_map(|m| m.modseq)
            .fold(saved_modseq, u64::max);
        Ok(Some(FolderScan {
            folder: folder.to_owned(),
            uid_validity,
            highest_modseq: Some(highest_modseq),
            present: if exists == 0 {
                Presence::Listed(BTreeSet::new())
            } else {
                Presence::Vanished { vanished, exists }
            },
            uid_next: selected.uid_next,
            changed,
            full: false,
            withheld: Vec::new(),
        }))
    }

    /// The flags and headers of `uids`, sorted by UID.
    async fn fetch_headers(
        &mut self,
        uids: &str,
        query: &str,
    ) -> Result<Vec<FetchedHeader>, ImapError> {
        self.counters.fetch_commands += 1;
        // Each answer is taken apart as it arrives, so that the library's buffer of it is
        // freed at once: a full scan of 100,000 messages held every answer twice before. The
        // headers of a large scan are read meanwhile, a chunk at a time on blocking threads,
        // while the server is still sending the rest (read after the last answer, a first
        // scan of 10,000 messages waited about 20 ms more).
        let (mut changed, reading) = bounded("UID FETCH", async {
            let mut answers = self.session.uid_fetch(uids, query).await?;
            let mut chunk = Vec::new();
            let mut reading = Vec::new();
            while let Some(fetch) = answers.try_next().await? {
                chunk.extend(fetched_header(&fetch));
                if chunk.len() == SUMMARIZE_CHUNK {
                    let full = std::mem::take(&mut chunk);
                    reading.push(tokio::task::spawn_blocking(move || summarize_chunk(full)));
                }
            }
            Ok::<_, async_imap::error::Error>((chunk, reading))
        })
        .await?;
        for part in reading {
            match part.await {
                Ok(part) => changed.extend(part),
                // A panic in the parser fails the pass, as it would have on the pass's thread.
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => panic!("reading headers: {error}"),
            }
        }
        changed.sort_by_key(|message| message.uid);
        Ok(changed)
    }

    /// The flags and header of one message, or `None` when the folder has no such UID.
    pub async fn fetch_header(
        &mut self,
        folder: &str,
        uid: u32,
    ) -> Result<Option<FetchedHeader>, ImapError> {
        self.ensure_selected(folder).await?;
        self.counters.fetch_commands += 1;
        let fetches: Vec<_> = bounded("UID FETCH header", async {
            self.session
                .uid_fetch(uid.to_string(), "(UID FLAGS BODY.PEEK[HEADER])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        // A FETCH of this message's flags alone (a change the server told of meanwhile) is
        // not the answer.
        Ok(fetches
            .iter()
            .filter(|fetch| fetch.uid == Some(uid))
            .find_map(fetched_header))
    }

    /// The UIDs of the messages in `folder` with this Message-ID (without angle brackets).
    pub async fn search_message_id(
        &mut self,
        folder: &str,
        message_id: &str,
    ) -> Result<Vec<u32>, ImapError> {
        self.search_header(folder, "Message-ID", message_id).await
    }

    /// Where the message of this identity (Message-ID and content hash) sits in `folder`: the
    /// folder's UIDVALIDITY and the message's UID; `None` when it is not there. Another
    /// message with the same Message-ID (a copy the server filed itself, an earlier version)
    /// is not it.
    pub async fn find(
        &mut self,
        folder: &str,
        identity: &ItemIdentity,
    ) -> Result<Option<(u32, u32)>, ImapError> {
        let ItemIdentity::Email { message_id, .. } = identity else {
            return Ok(None);
        };
        let mailbox = self.select(folder).await?;
        let uid_validity = mailbox.uid_validity.ok_or_else(|| {
            ImapError::Protocol(format!("the server gave no UIDVALIDITY for {folder:?}"))
        })?;
        for uid in self.search_message_id(folder, message_id).await? {
            let Some(header) = self.fetch_header(folder, uid).await? else {
                continue;
            };
            if message::summarize(&header.header).is_ok_and(|s| &s.identity == identity) {
                return Ok(Some((uid_validity, uid)));
            }
        }
        Ok(None)
    }

    /// Appends a message to `folder` with these keywords and `\Seen`.
    pub async fn append(
        &mut self,
        folder: &str,
        keywords: &[String],
        message: &[u8],
    ) -> Result<(), ImapError> {
        let mut flags = vec!["\\Seen".to_owned()];
        flags.extend(keywords.iter().cloned());
        self.append_flagged(folder, &flags, message).await
    }

    /// Appends a message to `folder` with exactly these flags (system flags and keywords).
    pub async fn append_flagged(
        &mut self,
        folder: &str,
        flags: &[String],
        message: &[u8],
    ) -> Result<(), ImapError> {
        let flags = format!("({})", flags.join(" "));
        bounded(
            "APPEND",
            self.session.append(folder, Some(&flags), None, message),
        )
        .await?;
        // The folder's view changed under a selected folder: select it again when needed.
        self.selected = None;
        Ok(())
    }

    /// The UIDs of the messages in `folder` whose header `name` holds `value`.
    pub async fn search_header(
        &mut self,
        folder: &str,
        name: &str,
        value: &str,
    ) -> Result<Vec<u32>, ImapError> {
        self.ensure_selected(folder).await?;
        let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
        let query = format!("HEADER {name} \"{quoted}\"");
        let mut uids: Vec<u32> = bounded("UID SEARCH", self.session.uid_search(&query))
            .await?
            .into_iter()
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Deletes one message: `\Deleted`, then `UID EXPUNGE` of that UID alone (UIDPLUS), so
    /// messages another client marked deleted stay.
    pub async fn delete(&mut self, folder: &str, uid: u32) -> Result<(), ImapError> {
        self.ensure_selected(folder).await?;
        let store = format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)");
        bounded("UID STORE", self.session.run_command_and_check_ok(&store)).await?;
        let expunge = format!("UID EXPUNGE {uid}");
        bounded(
            "UID EXPUNGE",
            self.session.run_command_and_check_ok(&expunge),
        )
        .await?;
        Ok(())
    }

    /// Fetches a message, without setting `\Seen`: whole, or its first `max_message_size`
    /// bytes when it is larger (one round trip either way; the size says which).
    pub async fn fetch_message(
        &mut self,
        folder: &str,
        uid: u32,
    ) -> Result<FetchedMessage, ImapError> {
        self.fetch_messages(folder, &[uid])
            .await?
            .pop()
            .map(|(_, message)| message)
            .ok_or_else(|| ImapError::Protocol(format!("message {folder}:{uid} has no body")))
    }

    /// Fetches messages of one folder in one command (`UID FETCH` of a UID set), each as
    /// [`ImapSession::fetch_message`] does: one round trip for the lot, so a first import
    /// runs at the server's speed, not at one round trip per message. The caller bounds how
    /// many bytes that brings (the scan gave each message's size). A UID the server has no
    /// message for (expunged meanwhile) is left out of the answer.
    pub async fn fetch_messages(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<(u32, FetchedMessage)>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_selected(folder).await?;
        self.counters.fetch_commands += 1;
        let query = format!("(UID RFC822.SIZE BODY.PEEK[]<0.{}>)", self.max_message_size);
        let set = uid_set(uids);
        let fetches: Vec<_> = bounded("UID FETCH body", async {
            self.session
                .uid_fetch(&set, &query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let wanted: BTreeSet<u32> = uids.iter().copied().collect();
        let mut messages = Vec::with_capacity(uids.len());
        for fetch in &fetches {
            let Some(uid) = fetch.uid.filter(|uid| wanted.contains(uid)) else {
                continue;
            };
            // A FETCH with flags alone (the server telling of a change meanwhile) is no body.
            let Some(raw) = fetch.body() else {
                continue;
            };
            let came = raw.len() as u64;
            let cut = came >= self.max_message_size
                && fetch.size.is_none_or(|size| u64::from(size) > came);
            let size = fetch.size.map_or(came, u64::from).max(came);
            messages.push((
                uid,
                FetchedMessage {
                    raw: raw.to_vec(),
                    size,
                    cut,
                },
            ));
        }
        self.counters.bodies_fetched += messages.len() as u64;
        messages.sort_by_key(|(uid, _)| *uid);
        messages.dedup_by_key(|(uid, _)| *uid);
        Ok(messages)
    }

    /// The sizes (RFC822.SIZE) of messages of one folder, in one `UID FETCH`: what their
    /// bodies will bring, for messages a full scan gave no size. A UID the folder no longer
    /// holds is left out.
    pub async fn fetch_sizes(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> Result<BTreeMap<u32, u32>, ImapError> {
        if uids.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.ensure_selected(folder).await?;
        self.counters.fetch_commands += 1;
        let set = uid_set(uids);
        let fetches: Vec<_> = bounded("UID FETCH sizes", async {
            self.session
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let wanted: BTreeSet<u32> = uids.iter().copied().collect();
        Ok(fetches
            .iter()
            .filter_map(|fetch| Some((fetch.uid?, fetch.size?)))
            .filter(|(uid, _)| wanted.contains(uid))
            .collect())
    }

    /// Adds and removes keywords of messages (one, or a batch: a UID set in one command,
    /// 500 UIDs at a time): first the new ones, then the old ones away (two `UID STORE`s). In that order a connection lost or a process killed between the
    /// two leaves the message with both keywords, which the next pass recognises, and never
    /// with none, which would read as the person untracking it. One `STORE FLAGS` replacing
    /// every flag would be atomic, but would also undo a flag the person set in between.
    pub async fn store_keywords(
        &mut self,
        folder: &str,
        uids: &[u32],
        add: &[String],
        remove: &[String],
    ) -> Result<(), ImapError> {
        self.ensure_selected(folder).await?;
        for batch in uids.chunks(500) {
            let set: Vec<String> = batch.iter().map(u32::to_string).collect();
            let set = set.join(",");
            for (sign, keywords) in [('+', add), ('-', remove)] {
                if keywords.is_empty() {
                    continue;
                }
                self.counters.store_commands += 1;
                // Run as a command whose tagged answer is checked: the library's `uid_store`
                // stream ends quietly when the connection drops and ignores a NO, so a STORE
                // the server never carried out would count as done.
                let command = format!(
                    "UID STORE {set} {sign}FLAGS.SILENT ({})",
                    keywords.join(" ")
                );
                bounded("UID STORE", self.session.run_command_and_check_ok(&command)).await?;
            }
        }
        Ok(())
    }

    /// Waits in IDLE (RFC 2177) on `folder` until the server reports something (a new
    /// message, a flag change, an expunge), `max` passes or `until` finishes. `on_ready` runs
    /// once the server has accepted the IDLE: from then on every change is reported. A folder
    /// the connection holds already is not selected again: what changed since this
    /// connection last heard from the server is reported when the IDLE begins (or was heard
    /// already, and counts). Callers re-issue it well inside the 29 minutes after which a
    /// server may drop an idle client.
    pub async fn idle(
        mut self,
        folder: &str,
        max: Duration,
        on_ready: impl FnOnce(),
        until: impl std::future::Future<Output = ()>,
    ) -> Result<(ImapSession, IdleOutcome), ImapError> {
        // Selected once: a new SELECT would take a change made since the last IDLE ended as the
        // folder's state and never report it (lost until the fallback poll if the worker's scan
        // came before it), and costs a reread of a large maildir folder on every change.
        self.ensure_selected(folder).await?;
        // What the server reports outside the IDLE itself (before its `+ idling`, or while
        // DONE is answered) goes to this channel, which nobody else reads on this connection:
        // a change there is a change too.
        let reported = self.session.unsolicited_responses.clone();
        let ImapSession {
            session,
            mut selected,
            read_only,
            condstore,
            qresync,
            idle,
            max_message_size,
            scan_fields,
            counters,
        } = self;
        let mut handle = session.idle();
        bounded("IDLE", handle.init()).await?;
        on_ready();
        // Whether the channel told of a new or expunged message, a flag change or a vanished
        // UID (not of an answer to an earlier command, such as ENABLED).
        let outcome = if hear(&reported, &mut selected).changed {
            IdleOutcome::Changed
        } else {
            let (wait, interrupt) = handle.wait_with_timeout(max);
            let mut interrupt = Some(interrupt);
            let mut wait = std::pin::pin!(wait);
            let mut until = std::pin::pin!(until);
            // Interrupted through the library (dropping its stop source), so that a response
            // half read when `until` finishes is read whole, not cut.
            let response = loop {
                tokio::select! {
                    response = &mut wait => break response?,
                    () = &mut until, if interrupt.is_some() => drop(interrupt.take()),
                }
            };
            match response {
                async_imap::extensions::idle::IdleResponse::NewData(data) => {
                    if let Some(selected) = selected.as_mut() {
                        selected.follow(data.parsed());
                    }
                    IdleOutcome::Changed
                }
                async_imap::extensions::idle::IdleResponse::Timeout => IdleOutcome::Timeout,
                async_imap::extensions::idle::IdleResponse::ManualInterrupt => {
                    IdleOutcome::Interrupted
                }
            }
        };
        let session = bounded("DONE", handle.done()).await?;
        let outcome = if hear(&reported, &mut selected).changed {
            IdleOutcome::Changed
        } else {
            outcome
        };
        Ok((
            ImapSession {
                session,
                selected,
                read_only,
                condstore,
                qresync,
                idle,
                max_message_size,
                scan_fields,
                counters,
            },
            outcome,
        ))
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;

    use super::{MailboxDatum, Response, ScanFields, Selected, is_own_silent_store, uid_set};
    use crate::message::SCANNED_FIELDS;

    #[test]
    fn a_fetch_of_a_new_modseq_alone_is_a_silent_store_of_this_session() {
        let parse = |line: &[u8]| {
            let (_, response) = Response::parse(line).unwrap();
            let Response::Fetch(_, attributes) = response else {
                panic!("a FETCH expected")
            };
            is_own_silent_store(&attributes)
        };
        assert!(parse(b"* 3 FETCH (UID 7 MODSEQ (12))\r\n"));
        assert!(parse(b"* 3 FETCH (MODSEQ (12))\r\n"));
        assert!(!parse(b"* 3 FETCH (UID 7 FLAGS (crm) MODSEQ (12))\r\n"));
        assert!(!parse(b"* 3 FETCH (FLAGS (\\Seen))\r\n"));
        assert!(!parse(b"* 3 FETCH (UID 7)\r\n"));
    }

    #[test]
    fn a_uid_set_writes_runs_as_ranges() {
        assert_eq!(uid_set(&[7]), "7");
        assert_eq!(uid_set(&[9, 4, 5, 6, 7, 8, 12, 15, 16, 16]), "4:9,12,15:16");
        assert_eq!(
            uid_set(&[u32::MAX, 1, u32::MAX - 1]),
            "1,4294967294:4294967295"
        );
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn the_selected_folder_is_counted_through_what_the_server_says() {
        let mut selected = Selected {
            folder: "INBOX".into(),
            uid_validity: Some(7),
            exists: Some(10),
            uid_next: Some(11),
        };
        selected.follow(&Response::MailboxData(MailboxDatum::Exists(12)));
        assert_eq!(selected.exists, Some(12));
        selected.follow(&Response::Expunge(3));
        assert_eq!(selected.exists, Some(11));
        selected.follow(&Response::Vanished {
            earlier: false,
            uids: vec![2..=4, RangeInclusive::new(9, 8)],
        });
        assert_eq!(selected.exists, Some(6), "a range may run high to low");
        // An answer to a command about UIDs gone before: not counted again.
        selected.follow(&Response::Vanished {
            earlier: true,
            uids: vec![1..=5],
        });
        assert_eq!(selected.exists, Some(6));
        // More gone than there were: the count is lost, not wrapped.
        selected.follow(&Response::Vanished {
            earlier: false,
            uids: vec![1..=7],
        });
        assert_eq!(selected.exists, None);
        selected.follow(&Response::MailboxData(MailboxDatum::Exists(4)));
        assert_eq!(selected.exists, Some(4));
    }

    #[test]
    fn the_scan_fetches_every_field_summarize_reads() {
        let fields = |query: &str| -> Vec<String> {
            query
                .split_once("HEADER.FIELDS (")
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(list, _)| list.split_whitespace().map(str::to_owned).collect())
                .unwrap()
        };
        let wanted: Vec<String> = SCANNED_FIELDS.iter().map(|f| f.to_uppercase()).collect();
        for query in [
            ScanFields::All.changed_query(),
            ScanFields::All.full_query(),
        ] {
            assert_eq!(fields(query), wanted);
        }
        for query in [
            ScanFields::Identity.changed_query(),
            ScanFields::Identity.full_query(),
        ] {
            assert_eq!(fields(query), wanted[..8]);
        }
    }
}
