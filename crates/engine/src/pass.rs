//! One sync pass over one mailbox: the owner's privilege, then the email part
//! ([`crate::email::EmailPass`]) and each collection ([`crate::collection::CollectionPass`]).
//! This is what `crmsync sync` runs once and the daemon's workers run on every wake.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_config::{ImapConfig, MailboxConfig, SmtpConfig};
use crmsync_core::auto::AutoPolicy;
use crmsync_core::item::{ItemKind, ItemLocation};
use crmsync_core::link::CrmRef;
use crmsync_imap::{ImapSession, ScanFields};
use crmsync_store::{CrmStore, StoreError};

use crate::collection::{CollectionMemory, CollectionPass, Which};
use crate::drafts;
use crate::email::EmailPass;
use crate::error::PassError;
use crate::outbound::{OutboundPass, SmtpSubmission};
use crate::report::{MailboxState, PassReport};

/// How a pass runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassOptions {
    /// Believe folders and collections that list no item although tracked items were in them
    /// (an administrator emptied them on purpose): their links are dropped. Without it such a
    /// listing changes nothing and puts the mailbox in the error state.
    pub accept_empty: bool,
    /// Carry out deletes the mass-delete guard holds (more than half of a folder's or a
    /// collection's links, and more than 10, gone in one pass): the administrator confirmed
    /// them (`sync --accept-deletes`).
    pub accept_deletes: bool,
    /// Apply the automatic tracking policy to mail dated from this time on (UNIX seconds),
    /// not only to mail that arrived after the policy was switched on (`sync --backfill`).
    /// Every folder is then scanned in full.
    pub backfill_since: Option<i64>,
    /// Observe and decide, then report what the pass would do (`PassReport::planned`) and
    /// write nothing: not to the store, not to a folder (opened read-only), not to a file.
    pub dry_run: bool,
}

/// What a pass looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// The mail folders, the outbox and every collection, whole.
    #[default]
    Everything,
    /// Only these files of these collections (file names, as a watcher named them): no
    /// server is asked, no other collection looked at. A collection the worker has not seen
    /// whole yet gets a whole pass all the same.
    Files(BTreeMap<Which, BTreeSet<String>>),
    /// Everything, after a change on the CRM side: a collection on a server is judged by the
    /// listing its last pass or poll saw (at most a poll interval old) rather than asked for
    /// anew, so the CRM's change reaches the server sooner. Safe because every write there is
    /// conditional: an item changed on the server since is refused (412), read again and
    /// merged by the next poll.
    ///
    /// With the rows that changed, while known and few, a collection looks only at the items
    /// linked to them when every one of them has a link in the mailbox (a row with none, a
    /// new appointment the CRM made for the owner say, makes the collection's pass whole).
    CrmChanged(Option<BTreeSet<CrmRef>>),
    /// The collections on servers whose poll is due: each asks its server what changed since
    /// its sync token, and runs a pass only when something did. No mail server is asked.
    Poll,
}

/// What a worker keeps between passes.
#[derive(Default)]
pub struct Kept {
    /// The IMAP connection of the last pass, reused while it answers.
    pub connection: Option<ImapSession>,
    /// The connection answered a moment ago (it just left IDLE): the next pass need not ask
    /// it with a NOOP whether it still does.
    pub answered: bool,
    /// The untracked files of the collections, so an unchanged one is not read again.
    pub collections: CollectionMemory,
    /// Since when the drafts folder is known to be missing (checked again after
    /// [`DRAFTS_RECHECK`]).
    pub drafts_missing_since: Option<std::time::Instant>,
}

/// How long a missing drafts folder is not looked for again by a worker.
pub const DRAFTS_RECHECK: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs one pass over a mailbox. Never panics on what the servers or the store hold; every
/// problem ends up in the report.
pub async fn sync_mailbox<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    options: PassOptions,
) -> PassReport {
    sync_mailbox_keeping(store, mailbox, options, &mut Kept::default()).await
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
    sync_mailbox_scoped(store, mailbox, options, &Scope::Everything, kept).await
}

/// [`sync_mailbox_keeping`] over what `scope` names: a worker woken for a few collection
/// files looks at those alone.
pub async fn sync_mailbox_scoped<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    options: PassOptions,
    scope: &Scope,
    kept: &mut Kept,
) -> PassReport {
    let mut report = PassReport::new(&mailbox.id);
    let (files, poll) = match scope {
        Scope::Everything | Scope::CrmChanged(_) => (None, false),
        Scope::Files(files) => (Some(files), false),
        Scope::Poll => (None, true),
    };
    report.partial = files.is_some() || poll;
    // A pass that does not reach the collections leaves no poll due: the next whole pass
    // schedules them again.
    if !mailbox.enabled {
        report.state = MailboxState::Disabled;
        kept.collections.clear_polls();
        return report;
    }
    if let Err(error) = owner_may_sync(store, mailbox, &mut report) {
        report.permanent = error.is_permanent();
        report.fail(error.to_string());
        kept.collections.clear_polls();
        return report;
    }
    if report.state == MailboxState::NotPermitted {
        kept.collections.clear_polls();
        return report;
    }
    if let Some(imap) = mailbox.imap.as_ref().filter(|_| !report.partial)
        && let Err(error) = email_part(store, mailbox, imap, options, kept, &mut report).await
    {
        kept.connection = None;
        report.permanent |= error.is_permanent();
        report.fail(error.to_string());
    }
    if let Some(smtp) = mailbox.smtp.as_ref().filter(|_| !report.partial) {
        outbound_part(store, mailbox, smtp, options, kept, &mut report).await;
    }
    // After a CRM change, the items linked to the changed rows, by collection; `None` when a
    // changed row has no link in the mailbox (or the rows are not known): whole passes.
    let crm_named = match scope {
        Scope::CrmChanged(Some(rows)) => linked_items(store, mailbox, rows, &mut report),
        _ => None,
    };
    for which in Which::ALL {
        let named = files
            .map(|files| files.get(&which))
            .or_else(|| crm_named.as_ref().map(|named| named.get(&which)));
        let Some(config) = which.config(mailbox) else {
            continue;
        };
        let polled = poll && config.path().is_none() && kept.collections.poll_due(which);
        if named == Some(None) || (poll && !polled) {
            continue;
        }
        let pass = CollectionPass::new(
            store,
            mailbox,
            which,
            config,
            options,
            &mut kept.collections,
        )
        .await;
        let pass = if matches!(scope, Scope::CrmChanged(_)) {
            pass.as_listed()
        } else {
            pass
        };
        let pass = match named.flatten() {
            Some(names) => pass.only(names),
            None => pass,
        };
        let collection = if polled {
            pass.poll(&mut report).await
        } else {
            Some(pass.run(&mut report).await)
        };
        report.collections.extend(collection);
    }
    if !options.dry_run {
        record_failures(store, &mut report);
    }
    report.tracked = 0;
    for kind in ItemKind::ALL {
        match store.link_count(&mailbox.id, *kind) {
            Ok(count) => report.tracked += count,
            Err(error) => report.warn(format!("counting the {kind} links: CRM store: {error}")),
        }
    }
    report
}

/// The hrefs of the mailbox's collection items linked to these CRM rows, by collection; `None`
/// when a row has no link in the mailbox at all (it may be new to the mailbox: a whole pass
/// finds what to do with it) or the links cannot be read.
fn linked_items<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    rows: &BTreeSet<CrmRef>,
    report: &mut PassReport,
) -> Option<BTreeMap<Which, BTreeSet<String>>> {
    let rows: Vec<CrmRef> = rows.iter().copied().collect();
    let links = match store.links_to(&mailbox.id, &rows) {
        Ok(links) => links,
        Err(error) => {
            report.warn(format!(
                "the links of the changed CRM rows: CRM store: {error}"
            ));
            return None;
        }
    };
    if rows.iter().any(|row| !links.iter().any(|l| l.crm == *row)) {
        return None;
    }
    // Every collection gets its set, empty when no changed row is in it: its pass then looks
    // at no item but still reports the collection as the worker knows it.
    let mut named: BTreeMap<Which, BTreeSet<String>> = Which::ALL
        .into_iter()
        .map(|w| (w, BTreeSet::new()))
        .collect();
    for link in &links {
        if let ItemLocation::Collection { collection, href } = &link.location
            && let Some(which) = Which::parse(collection)
        {
            named.entry(which).or_default().insert(href.clone());
        }
    }
    Some(named)
}

/// How long the failed-items list keeps an item after its last failure, as the CRM
/// products this one replaces do.
pub const FAILED_ITEMS_KEPT: chrono::Duration = chrono::Duration::days(3);

/// The time before which the failed-items list forgets, as the store writes times.
pub fn failed_items_since() -> String {
    (chrono::Utc::now() - FAILED_ITEMS_KEPT)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The pass's failed items into the failed-items list, and the ones it settled out.
fn record_failures<S: CrmStore>(store: &mut S, report: &mut PassReport) {
    if report.failures.is_empty() && report.resolved.is_empty() {
        return;
    }
    if let Err(error) = store.record_failures(
        &report.mailbox,
        &report.failures,
        &report.resolved,
        &failed_items_since(),
    ) {
        report.warn(format!("recording the failed items: CRM store: {error}"));
    }
}

/// The privilege gate (SPEC section 7): a mailbox whose owner lacks `sync` is skipped with
/// state `not-permitted`; an owner who is not a CRM user is a permanent failure.
fn owner_may_sync<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    report: &mut PassReport,
) -> Result<(), PassError> {
    match store.user(&mailbox.owner) {
        Ok(user) if !user.sync => {
            report.state = MailboxState::NotPermitted;
            report.warn(format!(
                "owner {} lacks the sync privilege: mailbox skipped (crmsync user set {} --sync yes)",
                mailbox.owner, mailbox.owner
            ));
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(PassError::UnknownOwner(mailbox.owner.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// The email part: a connection (the kept one while it answers, else a new one), then the
/// [`EmailPass`]. The connection is kept for the next pass when this one succeeded.
/// The owner's email activities that wait to be sent, through the mailbox's SMTP server; their
/// copies into Sent over the pass's IMAP connection (later, when it is not there).
async fn outbound_part<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    smtp: &SmtpConfig,
    options: PassOptions,
    kept: &mut Kept,
    report: &mut PassReport,
) {
    let mut submit = SmtpSubmission::new(smtp);
    let pass = OutboundPass::new(
        store,
        mailbox,
        smtp,
        &mut submit,
        kept.connection.as_mut(),
        report,
        options.dry_run,
    );
    if let Err(error) = pass.run().await {
        report.fail(format!("sending: {error}"));
    }
    submit.finish().await;
}

/// When the drafts step selected the drafts folder (a draft changed), selects again the mail
/// folder the pass ended on, where the worker waits in IDLE between passes. A change there
/// that this SELECT hears of and the pass did not read would not be reported by that IDLE:
/// its HIGHESTMODSEQ above the one the pass saved asks for another pass at once.
async fn back_to_held<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    folder: &str,
    session: &mut ImapSession,
    report: &mut PassReport,
) -> Result<(), PassError> {
    if session.selected_folder() == Some(folder) {
        return Ok(());
    }
    let now = session.reselect(folder).await?;
    let saved = store
        .sync_state(&mailbox.id, folder)?
        .and_then(|state| state.highest_modseq);
    if now.is_none() || now != saved {
        report.retry_in = Some(std::time::Duration::ZERO);
    }
    Ok(())
}

async fn email_part<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    imap: &ImapConfig,
    options: PassOptions,
    kept: &mut Kept,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let password = imap
        .password
        .read()
        .map_err(|error| PassError::Password(error.to_string()))?;
    let mut cached = kept.connection.take();
    let answered = std::mem::take(&mut kept.answered);
    if let Some(session) = cached.as_mut()
        && !answered
        && !session.is_alive().await
    {
        cached = None;
    }
    let mut session = match cached {
        Some(session) => session,
        None => ImapSession::connect(imap, &password).await?,
    };
    report.idle_supported = session.has_idle();
    session.set_read_only(options.dry_run);
    if !imap.tls.verify_certificates {
        report.warn(format!(
            "certificate verification is off for {} (verify_certificates = false)",
            imap.host
        ));
    }
    // Without automatic tracking nothing reads whether a message is automated mail: the
    // identity's header fields are enough (the server sends, and the scan parses, a third
    // less). A backfill is automatic tracking reaching back.
    session.set_scan_fields(if mailbox.tracking.auto == AutoPolicy::None {
        ScanFields::Identity
    } else {
        ScanFields::All
    });
    EmailPass::new(store, &mut session, mailbox, options, report)
        .run()
        .await?;
    // The drafts after the mail: on maildir, Dovecot rereads a folder's whole UID list
    // (`dovecot-uidlist`, about 20 us a message) the next time it opens or syncs a mail
    // folder after a session looked at another one (a STATUS, a LIST, a SELECT), so the
    // drafts first would cost that on every pass, on the way from a change to its activity.
    // After the mail it is paid when the worker's IDLE begins. A mailbox without a drafts
    // folder is not asked again for a while: a SELECT answered NO on every pass of every
    // mailbox adds up.
    let drafts_due = kept
        .drafts_missing_since
        .is_none_or(|since| since.elapsed() >= DRAFTS_RECHECK);
    if !options.dry_run && drafts_due {
        let held = session.selected_folder().map(str::to_owned);
        let exists =
            drafts::rewrite_drafts(store, mailbox, &imap.drafts_folder, &mut session, report)
                .await?;
        kept.drafts_missing_since = (!exists).then(std::time::Instant::now);
        if let Some(folder) = held {
            back_to_held(store, mailbox, &folder, &mut session, report).await?;
        }
    }
    kept.connection = Some(session);
    Ok(())
}
