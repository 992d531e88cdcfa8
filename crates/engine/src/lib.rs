//! One sync pass over one mailbox: observe with the adapters, decide with the core, apply.
//!
//! This is the glue the `sync` command runs today and the daemon's workers will run: it reads
//! the mailbox's links and their CRM rows from the store, scans the IMAP folders, hands both to
//! [`crmsync_core::email::reconcile`] and applies the effects in the order the core gives them,
//! which is the order that survives a crash: a CRM copy and its link in one transaction; a
//! keyword written to IMAP before the link records it; a link dropped before its activity is
//! deleted. A folder's sync markers are saved only when every effect in it succeeded, so a
//! failure is retried on the next pass instead of being skipped.
#![forbid(unsafe_code)]

pub mod check;
pub mod collection;
pub mod daemon;
pub mod item;
pub mod lock;

use std::collections::{HashMap, HashSet};

use crmsync_config::{MailboxConfig, Secret};
use crmsync_core::email::{self, CrmState, Effect, FolderView, MailboxView, Observed};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink};
use crmsync_core::model::{ActivityId, EmailAddress, PartyRole, RecordNumber};
use crmsync_imap::message::{self, MessageAddress};
use crmsync_imap::{Counters, FolderMarkers, ImapSession};
use crmsync_store::{CrmStore, NewAttachment, NewEmail, NewParty, StoreError, SyncState};

/// Where a mailbox stands after a pass (the status file's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxState {
    Idle,
    Error,
    Disabled,
    NotPermitted,
}

impl MailboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxState::Idle => "idle",
            MailboxState::Error => "error",
            MailboxState::Disabled => "disabled",
            MailboxState::NotPermitted => "not-permitted",
        }
    }
}

/// What one pass did, for the CLI, the status file and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub mailbox: String,
    pub state: MailboxState,
    /// Activities created for newly tracked messages.
    pub created: u64,
    /// Newly tracked messages linked to an activity another mailbox had already created.
    pub linked: u64,
    /// Activities deleted because their owner untracked the message.
    pub deleted: u64,
    /// Links dropped (message gone, untracked by a non-owner, or activity deleted in the CRM).
    pub unlinked: u64,
    /// Links updated (moved message, regarding changed on either side).
    pub updated: u64,
    /// Messages whose keywords were written back.
    pub keywords_written: u64,
    /// Collection files crmsync wrote, created or deleted.
    pub items_written: u64,
    /// Items that could not be synced (a malformed message, say); retried next pass.
    pub failed: u64,
    /// Email links of the mailbox after the pass.
    pub tracked: u64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub imap: Counters,
    /// The calendar and address book, when the mailbox has them.
    pub collections: Vec<collection::CollectionReport>,
    /// The failure is one that retrying soon will not cure (a bad password, a missing folder,
    /// an untrusted certificate, an owner who is not a CRM user): retry slowly.
    pub permanent: bool,
    /// The IMAP server offers IDLE (known after a pass that reached it).
    pub idle_supported: bool,
}

impl PassReport {
    pub(crate) fn new(mailbox: &str) -> PassReport {
        PassReport {
            mailbox: mailbox.to_owned(),
            state: MailboxState::Idle,
            created: 0,
            linked: 0,
            deleted: 0,
            unlinked: 0,
            updated: 0,
            keywords_written: 0,
            items_written: 0,
            failed: 0,
            tracked: 0,
            errors: Vec::new(),
            warnings: Vec::new(),
            imap: Counters::default(),
            collections: Vec::new(),
            permanent: false,
            idle_supported: false,
        }
    }

    pub(crate) fn fail(&mut self, message: String) {
        tracing::error!(mailbox = %self.mailbox, "{message}");
        self.errors.push(message);
        self.state = MailboxState::Error;
    }

    fn warn(&mut self, message: String) {
        tracing::warn!(mailbox = %self.mailbox, "{message}");
        self.warnings.push(message);
    }
}

/// How a pass runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassOptions {
    /// Believe folders that list no message although tracked messages were in them (an
    /// administrator emptied them on purpose): their links are dropped. Without it such a
    /// listing changes nothing and puts the mailbox in the error state.
    pub accept_empty: bool,
}

/// Runs one pass over a mailbox. Never panics on what the servers or the store hold; every
/// problem ends up in the report.
pub async fn sync_mailbox<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    options: PassOptions,
) -> PassReport {
    sync_mailbox_keeping(store, mailbox, options, &mut Kept::default()).await
}

/// What a worker keeps between passes.
#[derive(Default)]
pub struct Kept {
    /// The IMAP connection of the last pass, reused while it answers.
    pub connection: Option<ImapSession>,
    /// The untracked files of the collections, so an unchanged one is not read again.
    pub collections: collection::CollectionMemory,
}

/// [`sync_mailbox`] with state kept between passes: the daemon's workers reuse the IMAP
/// connection of their last pass when it still answers, and keep this pass's for the next.
/// A pass that fails drops its connection, so the next one starts afresh.
pub async fn sync_mailbox_keeping<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    options: PassOptions,
    kept: &mut Kept,
) -> PassReport {
    let connection = &mut kept.connection;
    let mut report = PassReport::new(&mailbox.id);
    if !mailbox.enabled {
        report.state = MailboxState::Disabled;
        return report;
    }
    match store.user(&mailbox.owner) {
        Ok(user) if !user.sync => {
            report.state = MailboxState::NotPermitted;
            report.warn(format!(
                "owner {} lacks the sync privilege: mailbox skipped (crmsync user set {} --sync yes)",
                mailbox.owner, mailbox.owner
            ));
            return report;
        }
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            report.fail(format!(
                "owner {} is not a CRM user (crmsync user add {} --name NAME)",
                mailbox.owner, mailbox.owner
            ));
            report.permanent = true;
            return report;
        }
        Err(error) => {
            report.fail(format!("CRM store: {error}"));
            return report;
        }
    }
    if let Some(imap) = &mailbox.imap {
        let password = match imap.password.read() {
            Ok(password) => password,
            Err(error) => {
                report.permanent = true;
                report.fail(format!("IMAP password: {error}"));
                return report;
            }
        };
        if let Err(message) =
            email_pass(store, mailbox, &password, options, connection, &mut report).await
        {
            *connection = None;
            report.fail(message);
        }
    }
    for which in collection::Which::ALL {
        if let Some(config) = which.config(mailbox) {
            let status = collection::collection_pass(
                store,
                mailbox,
                which,
                config,
                options.accept_empty,
                &mut kept.collections,
                &mut report,
            );
            report.collections.push(status);
        }
    }
    report.tracked = ItemKind::ALL
        .iter()
        .filter_map(|kind| store.link_count(&mailbox.id, *kind).ok())
        .sum();
    report
}

fn imap_location(location: &ItemLocation) -> (&str, u32) {
    match location {
        ItemLocation::Imap { folder, uid, .. } => (folder, *uid),
        ItemLocation::Collection { href, .. } => (href, 0),
    }
}

/// The email part of a pass. An `Err` is a failure of the whole pass (connection lost, store
/// unusable); a failure of one item is counted in the report and the pass goes on.
async fn email_pass<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    password: &Secret,
    options: PassOptions,
    connection: &mut Option<ImapSession>,
    report: &mut PassReport,
) -> Result<(), String> {
    let imap = mailbox.imap.as_ref().expect("checked by the caller");
    let rules = email::TrackingRules {
        keyword: mailbox.tracking.keyword.clone(),
        folders: mailbox.tracking.folders.clone(),
    };
    let store_error = |error: StoreError| format!("CRM store: {error}");

    let mut cached = connection.take();
    if let Some(session) = cached.as_mut()
        && !session.is_alive().await
    {
        cached = None;
    }
    let mut session = match cached {
        Some(session) => session,
        None => match ImapSession::connect(imap, password).await {
            Ok(session) => session,
            Err(error) => {
                report.permanent = error.is_permanent();
                return Err(format!("IMAP: {error}"));
            }
        },
    };
    let counters_before = session.counters;
    report.idle_supported = session.has_idle();
    if !imap.tls.verify_certificates {
        report.warn(format!(
            "certificate verification is off for {} (verify_certificates = false)",
            imap.host
        ));
    }

    let links: Vec<SyncLink> = store
        .links(&mailbox.id)
        .map_err(store_error)?
        .into_iter()
        .filter(|link| link.kind == ItemKind::Email)
        .collect();
    let activities = store.linked_activities(&mailbox.id).map_err(store_error)?;
    let owner = mailbox.owner.key();
    let linked: Vec<(SyncLink, CrmState)> = links
        .iter()
        .map(|link| {
            let crm = match link.crm {
                CrmRef::Activity(id) => match activities.get(&id) {
                    Some(activity) => CrmState::Present {
                        regarding: activity.regarding.clone(),
                        owned_by_mailbox_owner: activity.owner.eq_ignore_ascii_case(&owner),
                    },
                    None => CrmState::Deleted,
                },
                CrmRef::Record(_) => CrmState::Deleted,
            };
            (link.clone(), crm)
        })
        .collect();

    // Observe.
    let mut view = MailboxView {
        accept_empty: options.accept_empty,
        ..MailboxView::default()
    };
    let mut markers: Vec<(String, FolderMarkers)> = Vec::new();
    let mut failed_folders: HashSet<String> = HashSet::new();
    for folder in &imap.folders {
        let saved = store
            .sync_state(&mailbox.id, folder)
            .map_err(store_error)?
            .and_then(|state| {
                state.uid_validity.map(|uid_validity| FolderMarkers {
                    uid_validity,
                    highest_modseq: state.highest_modseq,
                })
            });
        let scan = match session.scan_folder(folder, saved).await {
            Ok(scan) => scan,
            Err(error @ crmsync_imap::ImapError::FolderMissing(_)) => {
                report.permanent = true;
                report.fail(error.to_string());
                continue;
            }
            Err(error) => return Err(format!("IMAP: {error}")),
        };
        for fetched in &scan.changed {
            match message::summarize(&fetched.header) {
                Ok(summary) => view.changed.push(Observed {
                    identity: summary.identity,
                    location: ItemLocation::Imap {
                        folder: folder.clone(),
                        uid_validity: scan.uid_validity,
                        uid: fetched.uid,
                    },
                    keywords: fetched.keywords.clone(),
                }),
                // Untracked garbage is none of crmsync's business; tracked garbage fails.
                Err(error) if rules.signal(folder, &fetched.keywords).tracked => {
                    report.failed += 1;
                    report
                        .errors
                        .push(format!("{folder}:{}: {error}", fetched.uid));
                    failed_folders.insert(folder.clone());
                }
                Err(_) => {}
            }
        }
        view.folders.push(FolderView {
            folder: folder.clone(),
            uid_validity: scan.uid_validity,
            present: scan.present.clone(),
        });
        markers.push((
            folder.clone(),
            FolderMarkers {
                uid_validity: scan.uid_validity,
                highest_modseq: scan.highest_modseq,
            },
        ));
    }

    // Decide.
    let effects = email::reconcile(&rules, mailbox.conflict_policy, &view, &linked);

    // Apply.
    let mut links_by_identity: HashMap<ItemIdentity, SyncLink> = links
        .into_iter()
        .map(|link| (link.identity.clone(), link))
        .collect();
    let crm_deleted: HashSet<ItemIdentity> = linked
        .iter()
        .filter(|(_, crm)| *crm == CrmState::Deleted)
        .map(|(link, _)| link.identity.clone())
        .collect();
    let mut pending_regarding: HashMap<ItemIdentity, Option<RecordNumber>> = HashMap::new();
    for effect in effects {
        let folder_of = |location: &ItemLocation| imap_location(location).0.to_owned();
        match effect {
            Effect::Track {
                observed,
                regarding,
                base,
            } => {
                let folder = folder_of(&observed.location);
                match track(store, &mut session, mailbox, &observed, regarding, base).await {
                    Ok((created, warning)) => {
                        if created {
                            report.created += 1;
                        } else {
                            report.linked += 1;
                        }
                        if let Some(warning) = warning {
                            report.warn(format!(
                                "{folder}:{}: {warning}",
                                imap_location(&observed.location).1
                            ));
                        }
                    }
                    Err(error) => {
                        report.failed += 1;
                        report.errors.push(format!(
                            "{folder}:{}: {error}",
                            imap_location(&observed.location).1
                        ));
                        failed_folders.insert(folder);
                    }
                }
            }
            Effect::SetRegarding {
                identity,
                regarding,
            } => {
                pending_regarding.insert(identity, regarding);
            }
            Effect::WriteKeywords {
                location,
                add,
                remove,
            } => {
                let (folder, uid) = imap_location(&location);
                match session.store_keywords(folder, uid, &add, &remove).await {
                    Ok(()) => report.keywords_written += 1,
                    Err(error) => {
                        report.failed += 1;
                        report
                            .errors
                            .push(format!("{folder}:{uid}: writing keywords: {error}"));
                        failed_folders.insert(folder.to_owned());
                        // The link must not record what the message does not hold.
                        links_by_identity.retain(|_, link| link.location != location);
                    }
                }
            }
            Effect::UpdateLink {
                identity,
                location,
                base,
            } => {
                let Some(link) = links_by_identity.get(&identity) else {
                    continue;
                };
                let mut link = link.clone();
                link.location = location;
                link.base = base;
                link.state = if crm_deleted.contains(&identity) {
                    LinkState::CrmDeleted
                } else {
                    LinkState::Synced
                };
                let mut regarding = pending_regarding.remove(&identity);
                if let Some(wanted) = regarding.take() {
                    let (known, warning) = known_regarding(store, wanted);
                    if let Some(warning) = warning {
                        report.warn(format!("{}: {warning}", location_text(&link.location)));
                        link.base.set("regarding", "");
                    }
                    regarding = Some(known);
                }
                match store.update_link(&link, regarding.as_ref().map(Option::as_ref)) {
                    Ok(warning) => {
                        report.updated += 1;
                        if let Some(warning) = warning {
                            report.warn(warning);
                        }
                    }
                    Err(error) => {
                        report.failed += 1;
                        report.errors.push(format!("updating link: {error}"));
                    }
                }
            }
            Effect::DeleteActivity { identity } => {
                if let Some(link) = links_by_identity.get(&identity) {
                    match store.untrack_and_delete(link) {
                        Ok(()) => report.deleted += 1,
                        Err(error) => {
                            report.failed += 1;
                            report
                                .errors
                                .push(format!("deleting the activity: {error}"));
                        }
                    }
                }
            }
            Effect::DropLink { identity, reason } => {
                match store.delete_link(&mailbox.id, ItemKind::Email, &identity) {
                    Ok(_) => {
                        report.unlinked += 1;
                        tracing::info!(mailbox = %mailbox.id, ?reason, "link dropped");
                    }
                    Err(error) => {
                        report.failed += 1;
                        report.errors.push(format!("dropping a link: {error}"));
                    }
                }
            }
            Effect::Conflict { identity, conflict } => {
                let winner = match conflict.winner {
                    crmsync_core::merge::Side::Mailbox => "mailbox",
                    crmsync_core::merge::Side::Crm => "crm",
                };
                report.warn(format!(
                    "conflict on {} of {}: mailbox {:?}, CRM {:?}; the {} wins",
                    conflict.field,
                    identity.storage_key(),
                    conflict.mailbox.clone().unwrap_or_default(),
                    conflict.crm.clone().unwrap_or_default(),
                    if winner == "crm" { "CRM" } else { "mailbox" }
                ));
                let crm = links_by_identity
                    .get(&identity)
                    .map(|link| link.crm.to_string());
                let row = crmsync_store::ConflictRow {
                    mailbox: mailbox.id.clone(),
                    item_kind: ItemKind::Email.as_str().to_owned(),
                    item: identity.storage_key(),
                    crm,
                    field: conflict.field,
                    base: conflict.base,
                    mailbox_value: conflict.mailbox,
                    crm_value: conflict.crm,
                    winner: winner.to_owned(),
                    at: String::new(),
                };
                if let Err(error) = store.log_conflict(&row) {
                    report.warn(format!("the conflict could not be logged: {error}"));
                }
            }
            Effect::SuspiciousEmptyFolder { folder, links } => {
                report.fail(format!(
                    "folder {folder:?} lists no message while {links} tracked messages were in it: nothing was changed for them (if it was emptied on purpose, run crmsync sync --accept-empty)"
                ));
                failed_folders.insert(folder);
            }
        }
    }

    // The folder markers say "everything up to here was seen". A FETCH that the connection
    // cut short ends like a complete one in the IMAP library, so they are saved only when the
    // connection still answers after the pass's last command.
    if !session.is_alive().await {
        return Err("IMAP: the connection was lost during the pass".to_owned());
    }
    for (folder, marker) in markers {
        if failed_folders.contains(&folder) {
            continue;
        }
        let state = SyncState {
            uid_validity: Some(marker.uid_validity),
            highest_modseq: marker.highest_modseq,
            sync_token: None,
            last_full_scan: None,
        };
        store
            .put_sync_state(&mailbox.id, &folder, &state)
            .map_err(store_error)?;
    }
    report.imap = session.counters.since(counters_before);
    *connection = Some(session);
    Ok(())
}

/// A regarding number as the CRM can take it: `None` with a warning when no record has it.
fn known_regarding<S: CrmStore>(
    store: &S,
    number: Option<RecordNumber>,
) -> (Option<RecordNumber>, Option<String>) {
    match number {
        Some(number) => match store.record(&number) {
            Ok(_) => (Some(number), None),
            Err(StoreError::NotFound(_)) => (
                None,
                Some(format!(
                    "regarding record {number} does not exist; the activity has no regarding record"
                )),
            ),
            Err(error) => (None, Some(format!("regarding record {number}: {error}"))),
        },
        None => (None, None),
    }
}

fn location_text(location: &ItemLocation) -> String {
    let (folder, uid) = imap_location(location);
    format!("{folder}:{uid}")
}

fn parties(parsed: &message::ParsedEmail, report_warning: &mut Vec<String>) -> Vec<NewParty> {
    let mut parties = Vec::new();
    let roles: [(PartyRole, &Vec<MessageAddress>); 4] = [
        (PartyRole::From, &parsed.from),
        (PartyRole::To, &parsed.to),
        (PartyRole::Cc, &parsed.cc),
        (PartyRole::Bcc, &parsed.bcc),
    ];
    for (role, addresses) in roles {
        for address in addresses {
            match EmailAddress::new(&address.address) {
                Ok(valid) => parties.push(NewParty {
                    role,
                    address: valid,
                    display_name: address.name.clone(),
                }),
                Err(error) => report_warning.push(format!("{role} party skipped: {error}")),
            }
        }
    }
    parties
}

/// Tracks one message: links it to the activity of the same identity, or fetches it and
/// creates the activity. Returns whether an activity was created, and a warning.
async fn track<S: CrmStore>(
    store: &mut S,
    session: &mut ImapSession,
    mailbox: &MailboxConfig,
    observed: &Observed,
    regarding: Option<RecordNumber>,
    base: Snapshot,
) -> Result<(bool, Option<String>), String> {
    let ItemIdentity::Email {
        message_id,
        content_hash,
    } = &observed.identity
    else {
        return Err("not an email identity".into());
    };
    let mut link = SyncLink {
        mailbox: mailbox.id.clone(),
        kind: ItemKind::Email,
        identity: observed.identity.clone(),
        location: observed.location.clone(),
        crm: CrmRef::Activity(ActivityId(uuid::Uuid::new_v4())),
        base,
        item_version: None,
        crm_version: None,
        created_by: ItemCreator::Mailbox,
        state: LinkState::Synced,
    };
    let store_error = |error: StoreError| format!("CRM store: {error}");
    let (regarding, mut warning) = known_regarding(store, regarding);
    if warning.is_some() {
        // The base records what both sides hold: the CRM holds no regarding record. The
        // keyword stays on the message untouched.
        link.base.set("regarding", "");
    }
    if let Some(existing) = store
        .email_activity(message_id, content_hash.as_str())
        .map_err(store_error)?
    {
        // Tracked in another mailbox already: one activity, one more link. A regarding keyword
        // here is this mailbox's change to the shared activity.
        link.crm = CrmRef::Activity(existing);
        let change = regarding.as_ref().map(Some);
        store.update_link(&link, change).map_err(store_error)?;
        return Ok((false, warning));
    }
    let (folder, uid) = imap_location(&observed.location);
    let raw = session
        .fetch_message(folder, uid)
        .await
        .map_err(|error| format!("fetching the message: {error}"))?;
    let parsed = message::parse(&raw).map_err(|error| error.to_string())?;
    let mut warnings = Vec::new();
    let parties = parties(&parsed, &mut warnings);
    let owner = mailbox.owner.key();
    let email = NewEmail {
        owner: mailbox.owner.clone(),
        mailbox: mailbox.id.clone(),
        subject: parsed.subject,
        text_body: parsed.text_body,
        html_body: parsed.html_body,
        message_id: message_id.clone(),
        content_hash: content_hash.as_str().to_owned(),
        in_reply_to: parsed.in_reply_to,
        references: parsed.references,
        outgoing: parsed
            .from
            .iter()
            .any(|from| from.address.eq_ignore_ascii_case(&owner)),
        date: parsed.date,
        parties,
        attachments: parsed
            .attachments
            .into_iter()
            .map(|a| NewAttachment {
                name: a.name,
                content_type: a.content_type,
                content: a.content,
            })
            .collect(),
        regarding,
    };
    let (id, _) = store.track_email(&email, &link).map_err(store_error)?;
    let created = link.crm == CrmRef::Activity(id);
    warnings.extend(warning.take());
    Ok((created, (!warnings.is_empty()).then(|| warnings.join("; "))))
}
