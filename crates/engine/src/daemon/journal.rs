//! The CRM side's wake source: the change journal. The watcher reads the journal's new rows
//! every [`JOURNAL_INTERVAL`] and wakes the workers a change concerns (their links point at
//! the changed row, or their owner owns it; never the worker that wrote it, see [`Origin`]); it keeps its cursor in `journal_cursors`, and prunes the journal of what
//! every registered reader has read, once it is older than the retention.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crmsync_core::link::CrmRef;
use crmsync_core::model::{ActivityId, RecordId};
use crmsync_store::{Database, JournalEntity, JournalEntry, JournalStore, Store};
use tokio::sync::watch;
use tokio::time::Instant;

use super::origin::Origin;
use super::wake::Waker;

/// How often the journal watcher reads the journal's new rows: one indexed range query, cheap
/// enough to run twenty times a second.
const JOURNAL_INTERVAL: Duration = Duration::from_millis(50);

/// The longest time between two prunings of the journal.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The daemon's row in `journal_cursors`.
pub const DAEMON_CURSOR: &str = "crmsync-daemon";

/// What wakes one worker, and whom it works for.
#[derive(Debug, Clone)]
pub struct WorkerWaker {
    pub mailbox: String,
    /// The mailbox owner's address, in lower case.
    pub owner: String,
    pub waker: Waker,
}

/// The workers' wakers, shared between the supervisor and the journal watcher.
pub type Wakers = Arc<Mutex<Vec<WorkerWaker>>>;

/// Follows the journal until `stop`: wakes the workers a change concerns, saves the cursor,
/// prunes what is older than `retention` and read by every registered reader.
pub async fn watch_journal(
    database: Database,
    workers: Wakers,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut store = loop {
        match database.store(&Origin::Daemon.to_string(), crate::STORE_RULES) {
            Ok(store) => break store,
            Err(error) => {
                tracing::error!("journal watcher: CRM store: {error}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    // The workers' first passes see everything that changed while the daemon was down, so
    // the watcher starts at the journal's head (its saved cursor only holds back pruning).
    let mut cursor = store.journal_head().unwrap_or_else(|error| {
        tracing::warn!("journal watcher: reading the journal's head: CRM store: {error}");
        0
    });
    let prune_every = retention.clamp(Duration::from_secs(1), PRUNE_INTERVAL);
    let mut last_prune: Option<Instant> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(JOURNAL_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        cursor = match wake_for_changes(&store, cursor, &workers) {
            Ok(cursor) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("journal watcher: the CRM store answers again");
                }
                cursor
            }
            // Logged when it starts failing, not twenty times a second while it does.
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(
                        "journal watcher: CRM store: {error} (CRM changes reach the mailboxes at their next pass until it answers again)"
                    );
                }
                cursor
            }
        };
        if last_prune.is_none_or(|at| at.elapsed() >= prune_every) {
            last_prune = Some(Instant::now());
            // The cursor is saved only here: it is what keeps pruning from removing rows the
            // daemon has not read, and one write a prune is cheaper than one every 50 ms.
            match store.set_journal_cursor(DAEMON_CURSOR, cursor) {
                Ok(()) => prune(&mut store, retention),
                Err(error) => tracing::warn!("journal watcher: saving the cursor: {error}"),
            }
        }
    }
}

/// Reads the changes after `cursor` and wakes the workers they concern: a worker whose links
/// point at a changed row (or at an activity regarding a changed record), or whose owner owns
/// a changed activity or record or is the changed user; never the worker that wrote the
/// change itself, and nobody for the daemon's own bookkeeping. So one mailbox's change wakes
/// the mailboxes that share its rows, not every mailbox. Returns the new cursor.
fn wake_for_changes(
    store: &Store,
    cursor: i64,
    workers: &Wakers,
) -> Result<i64, crmsync_store::StoreError> {
    let changes = store.changes_since(cursor, 1000)?;
    let Some(last) = changes.last() else {
        return Ok(cursor);
    };
    // The changes by writer: one question to the store per writer (whom a change concerns
    // is asked per writer, since a worker is never woken by its own writes).
    let mut by_writer: BTreeMap<Option<&str>, Vec<JournalEntry>> = BTreeMap::new();
    for change in &changes {
        if Origin::parse(change.origin.as_deref()) != Origin::Daemon {
            by_writer
                .entry(change.origin.as_deref())
                .or_default()
                .push(change.clone());
        }
    }
    // Each worker concerned is told which rows changed (`None` when one is no activity or
    // record: a user's privilege, say); its waker gathers them until its next pass.
    let mut woken: HashSet<String> = HashSet::new();
    let workers = workers.lock().expect("not poisoned").clone();
    for (writer, changes) in by_writer {
        let origin = Origin::parse(writer);
        let concerned = store.concerned(&changes)?;
        let rows: Option<BTreeSet<CrmRef>> = changes.iter().map(crm_ref).collect();
        for worker in &workers {
            if origin.wakes(&worker.mailbox)
                && (concerned.mailboxes.contains(&worker.mailbox)
                    || concerned.owners.contains(&worker.owner))
            {
                worker.waker.crm_changed(rows.clone());
                woken.insert(worker.mailbox.clone());
            }
        }
    }
    let woken = woken.len();
    if woken > 0 {
        tracing::debug!(
            changes = changes.len(),
            woken,
            "CRM changed: waking workers"
        );
    }
    Ok(last.seq)
}

/// The CRM row a journal entry names, when it is an activity or a record.
fn crm_ref(change: &JournalEntry) -> Option<CrmRef> {
    let id = uuid::Uuid::parse_str(&change.row_id).ok()?;
    match change.entity {
        JournalEntity::Activity => Some(CrmRef::Activity(ActivityId(id))),
        JournalEntity::Record => Some(CrmRef::Record(RecordId(id))),
        JournalEntity::User => None,
    }
}

/// Removes the journal entries that every registered reader (a row in `journal_cursors`, the
/// daemon's among them) has read and that are older than `retention`.
fn prune(store: &mut Store, retention: Duration) {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(7));
    let cutoff = cutoff.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    match store.prune_journal(&cutoff) {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "journal pruned"),
        Err(error) => tracing::warn!("journal watcher: pruning: {error}"),
    }
}
