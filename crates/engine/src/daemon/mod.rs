//! The daemon's moving parts: one worker per mailbox, the IDLE watchers that wake it, and the
//! change-journal watcher that wakes workers when the CRM changes.
//!
//! A worker is a loop of `work` (one [`sync_mailbox`] pass) and `wait_for_work`: it sleeps
//! until an IDLE watcher or the journal watcher wakes it, the fallback poll interval passes,
//! or a retry is due, and leaves the loop when shutdown is signalled, never in the middle of a
//! pass. Failures retry with capped exponential backoff and jitter (backon); permanent ones
//! (bad password, missing folder) retry slowly. Each worker has its own store connection, so
//! one mailbox's trouble never holds another up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use crmsync_config::{ImapConfig, MailboxConfig, WatchMode};
use crmsync_imap::{IdleOutcome, ImapSession};
use crmsync_store::{CrmStore, SqliteStore};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::{Kept, MailboxState, PassOptions, PassReport, sync_mailbox_keeping};

/// How often the journal watcher reads the journal's new rows: one indexed range query, cheap
/// enough to run twenty times a second.
const JOURNAL_INTERVAL: Duration = Duration::from_millis(50);

/// The least time between two starts of a mailbox's IDLE watchers.
const WATCH_RESTART: Duration = Duration::from_secs(30);

/// The origin of the daemon's writes in the change journal. A worker's writes carry
/// `crmsync-daemon:MAILBOX` ([`worker_origin`]): the journal watcher wakes every other worker
/// for them (another mailbox may link the same row) but not the one that wrote.
pub const DAEMON_ORIGIN: &str = "crmsync-daemon";

/// The journal origin of one worker's writes.
pub fn worker_origin(mailbox: &str) -> String {
    format!("{DAEMON_ORIGIN}:{mailbox}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// The fallback poll when nothing wakes the worker (folders beyond the IDLE limit, servers
    /// without IDLE, a dead IDLE connection).
    pub poll_interval: Duration,
    /// How long one IDLE lasts before it is re-issued (well inside the 29 minutes of RFC 2177).
    pub idle_renew: Duration,
    /// How many folders of a mailbox get their own IDLE connection; the rest are polled.
    pub idle_folders: usize,
    /// The slow retry after a permanent failure.
    pub permanent_retry: Duration,
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            poll_interval: Duration::from_secs(300),
            idle_renew: Duration::from_secs(25 * 60),
            idle_folders: 5,
            permanent_retry: Duration::from_secs(300),
        }
    }
}

/// What workers tell the status writer.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// A pass is starting.
    Syncing { mailbox: String },
    /// A pass ended.
    Passed { report: PassReport },
    /// The worker stopped (shutdown, or its mailbox was removed or changed by a reload).
    Stopped { mailbox: String },
}

/// A running worker.
pub struct Worker {
    pub mailbox: MailboxConfig,
    wake: mpsc::Sender<()>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Wakes the worker for a pass now (a no-op when a wake is already pending).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// Asks the worker to stop after the pass in hand, and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

pub fn spawn_worker(
    mailbox: MailboxConfig,
    database: PathBuf,
    settings: WorkerSettings,
    events: mpsc::UnboundedSender<WorkerEvent>,
) -> Worker {
    let (wake_tx, wake_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run_worker(
        mailbox.clone(),
        database,
        settings,
        events,
        wake_tx.clone(),
        wake_rx,
        stop_rx,
    ));
    Worker {
        mailbox,
        wake: wake_tx,
        stop: stop_tx,
        task,
    }
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn run_worker(
    mailbox: MailboxConfig,
    database: PathBuf,
    settings: WorkerSettings,
    events: mpsc::UnboundedSender<WorkerEvent>,
    wake_tx: mpsc::Sender<()>,
    mut wake_rx: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let id = mailbox.id.clone();
    let mut delays = backoff();
    let mut watchers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut store: Option<SqliteStore> = None;
    let mut last_watch: Option<tokio::time::Instant> = None;
    let mut kept = Kept::default();
    // Kept alive as long as the worker: they wake it when a collection's files change.
    let _collection_watchers = watch_collections(&mailbox, &wake_tx);
    loop {
        if *stop.borrow() {
            break;
        }
        // Work.
        let _ = events.send(WorkerEvent::Syncing {
            mailbox: id.clone(),
        });
        // An IDLE connection that ended is a hint that the server went away: do not trust
        // the kept connection either, so this pass finds out for certain.
        if watchers.values().any(JoinHandle::is_finished) {
            kept.connection = None;
        }
        if store.is_none() {
            match SqliteStore::open(&database, &worker_origin(&id)) {
                Ok(opened) => store = Some(opened),
                Err(error) => tracing::error!(mailbox = %id, "CRM store: {error}"),
            }
        }
        let report = match store.take() {
            Some(mut owned) => match crate::lock::lock_mailbox(&database, &id).await {
                Ok(_lock) => {
                    // The pass runs as a task of its own, so that a bug that panics on some
                    // input fails this pass (reported, retried with backoff) instead of
                    // silently ending the worker. Its store and kept state go with a panic
                    // and are made afresh.
                    let for_pass = mailbox.clone();
                    let mut for_kept = std::mem::take(&mut kept);
                    let pass = tokio::spawn(async move {
                        let report = sync_mailbox_keeping(
                            &mut owned,
                            &for_pass,
                            PassOptions::default(),
                            &mut for_kept,
                        )
                        .await;
                        (owned, for_kept, report)
                    });
                    match pass.await {
                        Ok((owned, returned, report)) => {
                            store = Some(owned);
                            kept = returned;
                            report
                        }
                        Err(error) => {
                            let mut report = crate::PassReport::new(&id);
                            report.fail(format!(
                                "internal error, the pass was abandoned (please report it): {error}"
                            ));
                            report
                        }
                    }
                }
                Err(error) => {
                    store = Some(owned);
                    let mut report = crate::PassReport::new(&id);
                    report.fail(format!("cannot take the mailbox lock: {error}"));
                    report
                }
            },
            None => {
                let mut report = crate::PassReport::new(&id);
                report.fail("the CRM store cannot be opened".into());
                report
            }
        };
        let state = report.state;
        let permanent = report.permanent;
        let idle_supported = report.idle_supported;
        tracing::info!(
            mailbox = %id,
            state = state.as_str(),
            created = report.created,
            deleted = report.deleted,
            updated = report.updated,
            failed = report.failed,
            "pass done"
        );
        let _ = events.send(WorkerEvent::Passed { report });

        // Keep an IDLE watcher on the first folders while the mailbox is healthy.
        let delay = match state {
            MailboxState::Idle => {
                delays = backoff();
                watchers.retain(|_, watcher| !watcher.is_finished());
                let wanted: Vec<String> = match &mailbox.imap {
                    Some(imap) if idle_supported => imap
                        .folders
                        .iter()
                        .take(settings.idle_folders)
                        .cloned()
                        .collect(),
                    _ => Vec::new(),
                };
                let missing: Vec<String> = wanted
                    .into_iter()
                    .filter(|folder| !watchers.contains_key(folder))
                    .collect();
                // Watchers that died are restarted at most twice a minute, so a server that
                // refuses IDLE connections (too many per user, say) cannot spin the worker;
                // until then the worker comes back when the restart is due, since nothing
                // else may wake it.
                let since_start = last_watch.map(|at: tokio::time::Instant| at.elapsed());
                match (missing.is_empty(), since_start) {
                    (true, _) => settings.poll_interval,
                    (false, Some(elapsed)) if elapsed < WATCH_RESTART => {
                        (WATCH_RESTART - elapsed).min(settings.poll_interval)
                    }
                    (false, _) => {
                        last_watch = Some(tokio::time::Instant::now());
                        let imap = mailbox.imap.as_ref().expect("folders come from imap");
                        for folder in missing {
                            let watcher = tokio::spawn(idle_watcher(
                                id.clone(),
                                imap.clone(),
                                folder.clone(),
                                settings.idle_renew,
                                wake_tx.clone(),
                            ));
                            watchers.insert(folder, watcher);
                        }
                        settings.poll_interval
                    }
                }
            }
            MailboxState::Error if permanent => settings.permanent_retry,
            MailboxState::Error => delays.next().unwrap_or(Duration::from_secs(60)),
            // Waiting for the privilege or for a reload: the journal watcher wakes the worker
            // when the user's privilege changes.
            MailboxState::NotPermitted | MailboxState::Disabled => settings.poll_interval,
        };

        // Wait for work.
        tokio::select! {
            _ = wake_rx.recv() => {}
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
    }
    for watcher in watchers.values() {
        watcher.abort();
    }
    if let Some(session) = kept.connection {
        session.logout().await;
    }
    let _ = events.send(WorkerEvent::Stopped { mailbox: id });
}

/// How often the polling fallback looks at a collection when inotify watches have run out.
const COLLECTION_POLL: Duration = Duration::from_secs(2);

/// Watches the mailbox's calendar and address book directories with inotify, or with a
/// polling watcher when inotify cannot (its watch limit reached, say), and wakes the worker
/// when an item file appears, changes or goes. Temporary files (names starting with `.`, as
/// vdir writers make them) do not wake it; the rename that follows does.
fn watch_collections(
    mailbox: &MailboxConfig,
    wake: &mpsc::Sender<()>,
) -> Vec<Box<dyn notify::Watcher + Send>> {
    use notify::Watcher;
    let mut watchers: Vec<Box<dyn notify::Watcher + Send>> = Vec::new();
    let collections = [&mailbox.calendar, &mailbox.contacts]
        .into_iter()
        .flatten()
        .map(|c| (c.path.clone(), c.watch));
    for (path, mode) in collections {
        let handler = {
            let wake = wake.clone();
            move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(event) => {
                        !event.kind.is_access()
                            && event.paths.iter().any(|p| {
                                p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| !n.starts_with('.'))
                            })
                    }
                    Err(_) => true,
                };
                if relevant {
                    let _ = wake.try_send(());
                }
            }
        };
        let inotify = match mode {
            WatchMode::Inotify => notify::recommended_watcher(handler.clone())
                .and_then(|mut watcher| {
                    watcher.watch(&path, notify::RecursiveMode::NonRecursive)?;
                    Ok(watcher)
                })
                .map_err(|error| error.to_string()),
            WatchMode::Poll => Err("the config asks for polling (watch = \"poll\")".to_owned()),
        };
        match inotify {
            Ok(watcher) => watchers.push(Box::new(watcher)),
            Err(error) => {
                let config = notify::Config::default().with_poll_interval(COLLECTION_POLL);
                let polled = notify::PollWatcher::new(handler, config).and_then(|mut watcher| {
                    watcher.watch(&path, notify::RecursiveMode::NonRecursive)?;
                    Ok(watcher)
                });
                match polled {
                    Ok(watcher) => {
                        tracing::info!(
                            mailbox = %mailbox.id,
                            "not watching {} with inotify ({error}): polling it every {} s",
                            path.display(),
                            COLLECTION_POLL.as_secs()
                        );
                        watchers.push(Box::new(watcher));
                    }
                    Err(poll_error) => tracing::warn!(
                        mailbox = %mailbox.id,
                        "cannot watch {} ({poll_error}): it is synchronized on the poll interval",
                        path.display()
                    ),
                }
            }
        }
    }
    watchers
}

/// Keeps one IDLE connection on a folder and wakes the worker on every change. It ends on the
/// first error, waking the worker so that its next pass finds out what is wrong.
async fn idle_watcher(
    mailbox: String,
    imap: ImapConfig,
    folder: String,
    renew: Duration,
    wake: mpsc::Sender<()>,
) {
    let result = async {
        let password = imap
            .password
            .read()
            .map_err(|e| crmsync_imap::ImapError::Protocol(e.to_string()))?;
        let mut session = ImapSession::connect(&imap, &password).await?;
        loop {
            let (next, outcome) = session.idle(&folder, renew).await?;
            session = next;
            if outcome == IdleOutcome::Changed {
                tracing::debug!(mailbox = %mailbox, folder = %folder, "IDLE: change");
                let _ = wake.try_send(());
            }
        }
    }
    .await;
    let result: Result<(), crmsync_imap::ImapError> = result;
    if let Err(error) = result {
        tracing::warn!(mailbox = %mailbox, folder = %folder, "IDLE ended: {error}");
    }
    let _ = wake.try_send(());
}

/// Follows the CRM store's change journal and wakes every worker when another program (the
/// CLI, any writer of the schema) changed something. It reads only the journal's new rows,
/// every [`JOURNAL_INTERVAL`]; the daemon's own writes are skipped.
/// The workers' wakers by mailbox, shared between the supervisor and the journal watcher.
pub type Wakers = Arc<Mutex<Vec<(String, mpsc::Sender<()>)>>>;

pub async fn watch_journal(database: PathBuf, workers: Wakers, mut stop: watch::Receiver<bool>) {
    let store = loop {
        match SqliteStore::open(&database, DAEMON_ORIGIN) {
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
    let mut cursor = store.journal_head().unwrap_or(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(JOURNAL_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let changes = match store.changes_since(cursor, 1000) {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!("journal watcher: {error}");
                continue;
            }
        };
        let Some(last) = changes.last() else { continue };
        cursor = last.seq;
        // Who wrote: another program or the CLI wakes every worker; a worker wakes the others;
        // the daemon's own bookkeeping wakes none.
        let worker_prefix = format!("{DAEMON_ORIGIN}:");
        let mut everyone = false;
        let mut writers: Vec<&str> = Vec::new();
        for change in &changes {
            match change.origin.as_deref() {
                Some(DAEMON_ORIGIN) => {}
                Some(origin) if origin.starts_with(&worker_prefix) => {
                    writers.push(&origin[worker_prefix.len()..]);
                }
                _ => everyone = true,
            }
        }
        if !everyone && writers.is_empty() {
            continue;
        }
        tracing::debug!(changes = changes.len(), "CRM changed: waking workers");
        for (mailbox, waker) in workers.lock().expect("not poisoned").iter() {
            let only_own = writers.iter().all(|w| w == mailbox);
            if everyone || !only_own {
                let _ = waker.try_send(());
            }
        }
    }
}

impl Worker {
    /// A sender that wakes this worker, for the journal watcher.
    pub fn waker(&self) -> mpsc::Sender<()> {
        self.wake.clone()
    }
}
