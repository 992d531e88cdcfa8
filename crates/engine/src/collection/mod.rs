//! The collection part of a pass: one calendar or address book (a vdir), as a
//! [`CollectionPass`] that reads observe (`observe.rs`: the listing, the changed files, the
//! CRM rows) → [`crmsync_core::collection::reconcile`] → apply (`apply.rs`).
//!
//! The order of writes survives a crash at any point:
//! - a newly tracked item's CRM row and its link are one transaction;
//! - a merge writes the file first (refused if its etag moved since it was read), then the CRM
//!   row and the link in one transaction (refused if the row's version moved): a crash between
//!   the two leaves a file whose new etag sends it through the merge again, which converges;
//! - an item written for a CRM-created row carries the row's id as its UID, so a crash before
//!   its link is recorded is healed by tracking the file, which finds the row by that UID;
//! - a link is dropped in the transaction that deletes its CRM row.
//!
//! Only files whose etag differs from their link's (or that have no link) are read; the
//! untracked ones are remembered between passes by etag, so a pass over an unchanged
//! collection of 10,000 items reads no file.
//!
//! A daemon's worker that a watcher woke for a few files runs a pass over just those
//! ([`Extent::Files`]): it looks at each named file, the links at those files (and at the
//! UIDs read from them, so a rename or a copy is told apart as in a whole pass) and their CRM
//! rows, and keeps the rest of the collection as the last pass saw it ([`CollectionMemory`]).
//! Its cost does not grow with the collection. The empty-listing and mass-delete guards still
//! judge the whole collection; what a files pass cannot judge on its own (a listing that went
//! empty, a collection not yet seen whole by this worker) it hands to a whole pass.
//!
//! A newly tracked item whose UID a CRM row already has (a meeting another mailbox tracked, a
//! file crmsync wrote before a crash) is linked without a merge; a second round right after
//! the first merges just those items, so their differences are settled in the same pass.

mod apply;
mod observe;
mod plan;
mod read;
mod source;

use std::collections::{BTreeSet, HashMap};

use crmsync_config::{CollectionConfig, MailboxConfig};
use crmsync_core::collection;
use crmsync_core::item::{ItemIdentity, ItemKind};
use crmsync_core::readable::{MAX_MESSAGE, one_line};
use crmsync_dav::DavCollection;
use crmsync_store::{CrmStore, ItemFailure};
use crmsync_vdir::collection::{Collection, CollectionError};

pub use source::Source;

use crate::error::PassError;
use crate::pass::PassOptions;
use crate::report::{CollectionReport, CollectionState, PassReport};

/// Which collection of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Which {
    Calendar,
    Contacts,
}

impl Which {
    pub const ALL: [Which; 2] = [Which::Calendar, Which::Contacts];

    /// The collection a location names (`calendar`, `contacts`).
    pub fn parse(name: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// The mailbox's config of this collection, if it has one.
    pub fn config(self, mailbox: &MailboxConfig) -> Option<&CollectionConfig> {
        match self {
            Which::Calendar => mailbox.calendar.as_ref(),
            Which::Contacts => mailbox.contacts.as_ref(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Which::Calendar => "calendar",
            Which::Contacts => "contacts",
        }
    }

    fn kinds(self) -> &'static [ItemKind] {
        match self {
            Which::Calendar => &[ItemKind::Event, ItemKind::Task],
            Which::Contacts => &[ItemKind::Contact],
        }
    }
}

/// Which files of a collection a pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent<'f> {
    /// Every file: the listing, each file whose etag moved, the CRM rows of every link, the
    /// rows the CRM created for the owner.
    Whole,
    /// Only these file names, as a watcher named them (the daemon's pass after a file event):
    /// the rest of the collection is as the last pass saw it. Rows the CRM created wait for a
    /// whole pass (the journal wakes one).
    Files(&'f BTreeSet<String>),
}

/// What a worker remembers of its collections between passes: the untracked files by etag,
/// with their kind and UID, so they are not read again until they change; and what the last
/// passes saw of each collection, for a pass over a few files.
#[derive(Debug, Default)]
pub struct CollectionMemory {
    untracked: HashMap<(Which, String), (String, ItemKind, ItemIdentity)>,
    /// Links each collection lost in recent passes, with when: the mass-delete guard's window.
    gone: HashMap<Which, Vec<(std::time::Instant, usize)>>,
    seen: HashMap<Which, Seen>,
    /// The connections to the collections on servers, kept between passes (with the listing
    /// as of their last sync token).
    servers: HashMap<Which, Box<DavCollection>>,
    /// When each server collection is to be polled next, and how many polls in a row failed.
    polls: HashMap<Which, (std::time::Instant, u32)>,
}

/// One collection as the passes since its last whole pass saw it, file by file.
#[derive(Debug, Default)]
struct Seen {
    /// Every item file listed.
    listed: BTreeSet<String>,
    /// Files that could not be read or whose change could not be carried out.
    failed: BTreeSet<String>,
    /// Files that hold nothing crmsync tracks.
    skipped: BTreeSet<String>,
    /// Tracked files with no link yet.
    pending: BTreeSet<String>,
}

/// What one pass found file by file: the counts of its collection's report, and what updates
/// [`Seen`].
#[derive(Debug, Default)]
struct Found {
    failed: BTreeSet<String>,
    skipped: BTreeSet<String>,
    pending: BTreeSet<String>,
    /// Files this pass created (`true`) or deleted (`false`).
    written: Vec<(String, bool)>,
    /// Every file the pass looked at (a files pass: the named ones and those of their links).
    looked_at: BTreeSet<String>,
}

/// The sync state a server collection's listing is saved under: its kind and URL, so that a
/// config naming another collection starts afresh.
fn listing_scope(which: Which, server: &DavCollection) -> String {
    format!("collection:{}:{}", which.as_str(), server.url())
}

/// The least time between two tries of a server collection that refused the login.
const DENIED_RETRY: std::time::Duration = std::time::Duration::from_secs(300);

/// How long links a collection lost count toward the mass-delete guard.
pub const MASS_DELETE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

impl CollectionMemory {
    /// Links the collection lost within [`MASS_DELETE_WINDOW`].
    fn recently_gone(&mut self, which: Which) -> usize {
        let recent = self.gone.entry(which).or_default();
        recent.retain(|(at, _)| at.elapsed() < MASS_DELETE_WINDOW);
        recent.iter().map(|(_, count)| count).sum()
    }

    /// Whether a pass over a few files of this collection can stand on what earlier passes
    /// saw: only after a whole pass by this worker.
    pub fn has_seen(&self, which: Which) -> bool {
        self.seen.contains_key(&which)
    }

    /// Forgets the polls' schedule: a mailbox whose pass did not reach its collections (the
    /// owner may not sync, the mailbox is disabled) is not polled until a pass does.
    pub fn clear_polls(&mut self) {
        self.polls.clear();
    }

    /// Whether a server collection's poll is due (or it was never polled).
    pub fn poll_due(&self, which: Which) -> bool {
        self.polls
            .get(&which)
            .is_none_or(|(at, _)| *at <= std::time::Instant::now())
    }

    /// The earliest time a server collection is to be polled.
    pub fn next_poll(&self) -> Option<std::time::Instant> {
        self.polls.values().map(|(at, _)| *at).min()
    }

    /// Schedules a server collection's next poll: `poll_interval` after a pass that reached
    /// it; after a failure, 1 s doubling up to `poll_interval` (at least five minutes after a
    /// refused login, which no retry cures soon).
    fn schedule_poll(&mut self, which: Which, interval: u64, failed: Option<&CollectionError>) {
        let interval = std::time::Duration::from_secs(interval);
        let failures = match failed {
            Some(_) => self.polls.get(&which).map_or(0, |(_, n)| *n) + 1,
            None => 0,
        };
        let delay = match failed {
            None => interval,
            Some(error) if error.is_permanent() => interval.max(DENIED_RETRY),
            Some(_) => std::time::Duration::from_secs(1u64 << failures.min(16) >> 1).min(interval),
        };
        self.polls
            .insert(which, (std::time::Instant::now() + delay, failures));
    }

    fn record_gone(&mut self, which: Which, count: usize) {
        if count > 0 {
            self.gone
                .entry(which)
                .or_default()
                .push((std::time::Instant::now(), count));
        }
    }
}

/// One pass over one collection, holding what every phase needs.
pub struct CollectionPass<'a, S> {
    store: &'a mut S,
    mailbox: &'a MailboxConfig,
    which: Which,
    config: &'a CollectionConfig,
    options: PassOptions,
    memory: &'a mut CollectionMemory,
    extent: Extent<'a>,
    source: Source,
    /// The error that ended the pass, when it came from the collection.
    failure: Option<CollectionError>,
    /// Judge a server collection by its kept listing, without asking the server first.
    as_listed: bool,
    /// The pass asked the server what the collection holds (its poll is then rescheduled).
    asked_server: bool,
    status: CollectionReport,
    /// Every item file of the collection as this pass knows it: listed by a whole pass, the
    /// named files looked at again by a files pass.
    listed: BTreeSet<String>,
    found: Found,
}

impl<'a, S: CrmStore> CollectionPass<'a, S> {
    /// A pass over the collection: its directory, or its server (the connection kept from the
    /// last pass, or a new one).
    pub async fn new(
        store: &'a mut S,
        mailbox: &'a MailboxConfig,
        which: Which,
        config: &'a CollectionConfig,
        options: PassOptions,
        memory: &'a mut CollectionMemory,
    ) -> CollectionPass<'a, S> {
        let kept = memory.servers.remove(&which);
        let fresh = kept.is_none();
        let source = Source::open(which, config, kept).await;
        // A new connection starts from the listing saved by the last pass of any process.
        if fresh && let Source::Server(server) = &source {
            match store.collection_listing(&mailbox.id, &listing_scope(which, server)) {
                Ok(Some(saved)) => server.resume(saved.token, saved.entries),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    mailbox = %mailbox.id,
                    collection = which.as_str(),
                    "the saved listing cannot be read, the collection is listed whole: {error}"
                ),
            }
        }
        // A server collection is shown at the URL discovery found.
        let path = match &source {
            Source::Server(server) => server.location(),
            _ => config.shown(),
        };
        CollectionPass {
            store,
            mailbox,
            which,
            config,
            options,
            memory,
            extent: Extent::Whole,
            source,
            failure: None,
            as_listed: false,
            asked_server: false,
            found: Found::default(),
            listed: BTreeSet::new(),
            status: CollectionReport {
                name: which.as_str(),
                path,
                state: CollectionState::Idle,
                items: 0,
                tracked: 0,
                pending: 0,
                failed: 0,
                skipped: 0,
                last_error: None,
            },
        }
    }

    /// Makes this a pass over only these files ([`Extent::Files`]); a worker that has not seen
    /// the collection whole yet makes a whole pass all the same.
    pub fn only(mut self, names: &'a BTreeSet<String>) -> CollectionPass<'a, S> {
        if self.memory.has_seen(self.which) {
            self.extent = Extent::Files(names);
        }
        self
    }

    /// Makes this pass judge a server collection by the listing kept from the last look at it
    /// ([`crate::Scope::CrmChanged`]); a directory is listed as always.
    pub fn as_listed(mut self) -> CollectionPass<'a, S> {
        self.as_listed = true;
        self
    }

    /// Observe, decide, apply; then merge the items just linked to existing rows. A failure
    /// of the whole collection puts it in the error state; one item's failure is counted and
    /// the pass goes on. A directory's failure fails the mailbox's pass too; a server's does
    /// not (the mail goes on): the collection is polled again after a backoff.
    pub async fn run(mut self, report: &mut PassReport) -> CollectionReport {
        if let Err(error) = self.observe_decide_apply(report).await {
            let message = one_line(&error.to_string(), MAX_MESSAGE);
            if self.source.is_server() {
                report.warn(format!("{}: {message}", self.which.as_str()));
            } else {
                report.fail(format!("{}: {message}", self.which.as_str()));
            }
            self.status.state = CollectionState::Error;
            self.status.last_error = Some(message);
        }
        self.remember();
        self.settle_server(report);
        self.status.tracked = 0;
        for kind in self.which.kinds() {
            match self.store.link_count(&self.mailbox.id, *kind) {
                Ok(count) => self.status.tracked += count,
                Err(error) => report.warn(format!("counting the {kind} links: CRM store: {error}")),
            }
        }
        report.pending += self.status.pending;
        self.status
    }

    /// A poll of a server collection: a pass when its server says something changed since
    /// the last look (or cannot say), else nothing but the next poll's time (`None`).
    pub async fn poll(mut self, report: &mut PassReport) -> Option<CollectionReport> {
        self.asked_server = true;
        match self.source.changed().await {
            // Just brought up to date: the pass takes that listing as it is.
            Ok(true) => Some(self.as_listed().run(report).await),
            Err(_) => Some(self.run(report).await),
            Ok(false) => {
                self.settle_server(report);
                None
            }
        }
    }

    /// The end of a pass (or poll) over a server collection: its next poll, when this pass
    /// asked the server, failed, or none is due yet (a pass that judged the kept listing after
    /// a CRM change leaves the poll as it was, so CRM changes cannot put it off); its listing
    /// saved; its connection kept for the next pass, unless the login was refused (the
    /// password is read again).
    fn settle_server(&mut self, report: &mut PassReport) {
        let crmsync_config::Place::Server(server) = &self.config.place else {
            return;
        };
        let due = !self.memory.polls.contains_key(&self.which);
        if self.asked_server || self.failure.is_some() || due {
            self.memory
                .schedule_poll(self.which, server.poll_interval, self.failure.as_ref());
        }
        self.save_listing(report);
        let refused = self.failure.as_ref().is_some_and(|e| e.is_permanent());
        let source = std::mem::replace(
            &mut self.source,
            Source::Unreachable(CollectionError::Other(String::new())),
        );
        if let Some(server) = source.into_server().filter(|_| !refused) {
            self.memory.servers.insert(self.which, server);
        }
    }

    /// Saves a server collection's listing as of its newest token, so that the next process
    /// asks only for what changed since. Whatever the pass decided: the listing is what the
    /// server holds, and the links say what was done about it.
    fn save_listing(&mut self, report: &mut PassReport) {
        let Source::Server(server) = &self.source else {
            return;
        };
        let Some(unsaved) = server.unsaved().filter(|_| !self.options.dry_run) else {
            return;
        };
        let scope = listing_scope(self.which, server);
        match self.store.save_collection_listing(
            &self.mailbox.id,
            &scope,
            &unsaved.token,
            unsaved.whole,
            &unsaved.changes,
        ) {
            Ok(()) => server.saved(&unsaved.token),
            Err(error) => report.warn(format!(
                "{}: saving the listing: CRM store: {error}",
                self.which.as_str()
            )),
        }
    }

    /// A failure of the collection as a whole, kept to judge the retry.
    fn collection_error(&mut self, error: CollectionError) -> PassError {
        let message = error.to_string();
        self.failure = Some(error);
        PassError::Collection(message)
    }

    async fn observe_decide_apply(&mut self, report: &mut PassReport) -> Result<(), PassError> {
        let mut observed = match self.extent {
            Extent::Whole => self.observe(report).await?,
            Extent::Files(names) => self.observe_files(names, report).await?,
        };
        observed.view.recently_gone = self.memory.recently_gone(self.which);
        let mut effects = collection::reconcile(
            &observed.view,
            &observed.links,
            &observed.crm,
            &observed.created,
            self.mailbox.conflict_policy,
        );
        // The files named leave no item in the collection as the worker knew it: whether it
        // really is empty is for a listing to say.
        let empty = |effects: &[collection::Effect]| {
            effects
                .iter()
                .any(|e| matches!(e, collection::Effect::SuspiciousEmpty { .. }))
        };
        if self.extent != Extent::Whole && empty(&effects) {
            self.extent = Extent::Whole;
            self.found = Found::default();
            observed = self.observe(report).await?;
            observed.view.recently_gone = self.memory.recently_gone(self.which);
            effects = collection::reconcile(
                &observed.view,
                &observed.links,
                &observed.crm,
                &observed.created,
                self.mailbox.conflict_policy,
            );
        }
        let hrefs = (observed.view.hrefs.clone(), observed.view.other_files);
        if self.options.dry_run {
            let which = self.which;
            report
                .planned
                .extend(effects.iter().map(|effect| plan::describe(effect, which)));
            return Ok(());
        }
        let gone = effects
            .iter()
            .filter(|e| collection::takes_a_link(e))
            .count();
        self.memory.record_gone(self.which, gone);
        let just_linked = self.apply(effects, report).await;
        if !just_linked.is_empty() {
            let observed = self.observe_linked(&just_linked, hrefs, report).await?;
            let effects = collection::reconcile(
                &observed.view,
                &observed.links,
                &observed.crm,
                &[],
                self.mailbox.conflict_policy,
            );
            self.apply(effects, report).await;
        }
        match (&self.status.state, &self.status.last_error) {
            (CollectionState::Error, Some(message)) => Err(PassError::Collection(message.clone())),
            _ => self.resolve_failures(report),
        }
    }

    /// The entries of the failed-items list this pass settled. A whole pass lists the
    /// collection and reads again each file that failed, so an entry that did not fail now
    /// is an item that is fine or gone; a files pass settles the files it looked at.
    fn resolve_failures(&mut self, report: &mut PassReport) -> Result<(), PassError> {
        let scope = self.which.as_str();
        for entry in self.store.failed_items(Some(&self.mailbox.id), "")? {
            let failure = entry.failure;
            let failing_now = report
                .failures
                .iter()
                .any(|f| f.scope == scope && f.item == failure.item);
            let looked_at =
                self.extent == Extent::Whole || self.found.looked_at.contains(&failure.item);
            if failure.scope == scope && looked_at && !failing_now {
                report.resolved.push((failure.scope, failure.item));
            }
        }
        Ok(())
    }

    /// A failure of one item of this collection: counted in both reports, logged with where it
    /// came from.
    fn item_failed(&mut self, report: &mut PassReport, href: String, reason: String) {
        let reason = one_line(&reason, MAX_MESSAGE);
        self.found.failed.insert(href.clone());
        report.failed += 1;
        report.warn(format!("{} {href}: {reason}", self.which.as_str()));
        report.failures.push(ItemFailure {
            scope: self.which.as_str().to_owned(),
            item: href,
            reason,
        });
    }

    /// What this pass saw, into the worker's memory of the collection, and the collection's
    /// counts from it: a whole pass replaces what was seen, a files pass replaces what it
    /// looked at. A collection in error is forgotten, so the next pass over it is whole.
    fn remember(&mut self) {
        let found = std::mem::take(&mut self.found);
        if self.status.state == CollectionState::Error {
            self.memory.seen.remove(&self.which);
            self.status.items = self.listed.len() as u64;
            self.status.failed = found.failed.len() as u64;
            self.status.skipped = found.skipped.len() as u64;
            self.status.pending = found.pending.len() as u64;
            return;
        }
        let seen = self.memory.seen.entry(self.which).or_default();
        seen.listed = std::mem::take(&mut self.listed);
        if self.extent == Extent::Whole {
            seen.failed.clear();
            seen.skipped.clear();
            seen.pending.clear();
        } else {
            for set in [&mut seen.failed, &mut seen.skipped, &mut seen.pending] {
                set.retain(|href| !found.looked_at.contains(href));
            }
        }
        seen.failed.extend(found.failed);
        seen.skipped.extend(found.skipped);
        seen.pending.extend(found.pending);
        for (href, exists) in found.written {
            if exists {
                seen.listed.insert(href);
            } else {
                seen.listed.remove(&href);
            }
        }
        self.status.items = seen.listed.len() as u64;
        self.status.failed = seen.failed.len() as u64;
        self.status.skipped = seen.skipped.len() as u64;
        self.status.pending = seen.pending.len() as u64;
    }
}
