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
//! A newly tracked item whose UID a CRM row already has (a meeting another mailbox tracked, a
//! file crmsync wrote before a crash) is linked without a merge; a second round right after
//! the first merges just those items, so their differences are settled in the same pass.

mod apply;
mod observe;
mod plan;
mod read;

use std::collections::HashMap;

use crmsync_config::{CollectionConfig, MailboxConfig};
use crmsync_core::collection;
use crmsync_core::item::{ItemIdentity, ItemKind};
use crmsync_core::readable::{MAX_MESSAGE, one_line};
use crmsync_store::{CrmStore, ItemFailure};
use crmsync_vdir::vdir::Vdir;

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

    pub fn vdir(self, config: &CollectionConfig) -> Vdir {
        match self {
            Which::Calendar => Vdir::calendar(&config.path),
            Which::Contacts => Vdir::contacts(&config.path),
        }
    }
}

/// What a worker remembers of its collections between passes: the untracked files by etag,
/// with their kind and UID, so they are not read again until they change.
#[derive(Debug, Default)]
pub struct CollectionMemory {
    untracked: HashMap<(Which, String), (String, ItemKind, ItemIdentity)>,
    /// Links each collection lost in recent passes, with when: the mass-delete guard's window.
    gone: HashMap<Which, Vec<(std::time::Instant, usize)>>,
}

/// How long links a collection lost count toward the mass-delete guard.
pub const MASS_DELETE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

impl CollectionMemory {
    /// Links the collection lost within [`MASS_DELETE_WINDOW`].
    fn recently_gone(&mut self, which: Which) -> usize {
        let recent = self.gone.entry(which).or_default();
        recent.retain(|(at, _)| at.elapsed() < MASS_DELETE_WINDOW);
        recent.iter().map(|(_, count)| count).sum()
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
    vdir: Vdir,
    status: CollectionReport,
}

impl<'a, S: CrmStore> CollectionPass<'a, S> {
    pub fn new(
        store: &'a mut S,
        mailbox: &'a MailboxConfig,
        which: Which,
        config: &'a CollectionConfig,
        options: PassOptions,
        memory: &'a mut CollectionMemory,
    ) -> CollectionPass<'a, S> {
        CollectionPass {
            store,
            mailbox,
            which,
            config,
            options,
            memory,
            vdir: which.vdir(config),
            status: CollectionReport {
                name: which.as_str(),
                path: config.path.display().to_string(),
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

    /// Observe, decide, apply; then merge the items just linked to existing rows. A failure
    /// of the whole collection puts it (and the mailbox) in the error state; one item's
    /// failure is counted and the pass goes on.
    pub fn run(mut self, report: &mut PassReport) -> CollectionReport {
        if let Err(error) = self.observe_decide_apply(report) {
            let message = one_line(&error.to_string(), MAX_MESSAGE);
            report.fail(format!("{}: {message}", self.which.as_str()));
            self.status.state = CollectionState::Error;
            self.status.last_error = Some(message);
        }
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

    fn observe_decide_apply(&mut self, report: &mut PassReport) -> Result<(), PassError> {
        let mut observed = self.observe(report)?;
        observed.view.recently_gone = self.memory.recently_gone(self.which);
        let hrefs = observed.view.hrefs.clone();
        let effects = collection::reconcile(
            &observed.view,
            &observed.links,
            &observed.crm,
            &observed.created,
            self.mailbox.conflict_policy,
        );
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
        let just_linked = self.apply(effects, report);
        if !just_linked.is_empty() {
            let observed = self.observe_linked(&just_linked, hrefs, report)?;
            let effects = collection::reconcile(
                &observed.view,
                &observed.links,
                &observed.crm,
                &[],
                self.mailbox.conflict_policy,
            );
            self.apply(effects, report);
        }
        match (&self.status.state, &self.status.last_error) {
            (CollectionState::Error, Some(message)) => Err(PassError::Collection(message.clone())),
            _ => self.resolve_failures(report),
        }
    }

    /// The entries of the failed-items list this pass settled. Every pass lists the whole
    /// collection and reads again each file that failed, so an entry that did not fail now
    /// is an item that is fine or gone.
    fn resolve_failures(&mut self, report: &mut PassReport) -> Result<(), PassError> {
        let scope = self.which.as_str();
        for entry in self.store.failed_items(Some(&self.mailbox.id), "")? {
            let failure = entry.failure;
            let failing_now = report
                .failures
                .iter()
                .any(|f| f.scope == scope && f.item == failure.item);
            if failure.scope == scope && !failing_now {
                report.resolved.push((failure.scope, failure.item));
            }
        }
        Ok(())
    }

    /// A failure of one item of this collection: counted in both reports, logged with where it
    /// came from.
    fn item_failed(&mut self, report: &mut PassReport, href: String, reason: String) {
        let reason = one_line(&reason, MAX_MESSAGE);
        self.status.failed += 1;
        report.failed += 1;
        report.warn(format!("{} {href}: {reason}", self.which.as_str()));
        report.failures.push(ItemFailure {
            scope: self.which.as_str().to_owned(),
            item: href,
            reason,
        });
    }
}
