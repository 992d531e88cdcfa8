//! One worker per mailbox, in the style of garage's background workers: a loop of
//! [`MailboxWorker::work`] (one pass) and [`MailboxWorker::wait_for_work`] (until a wake
//! source, the poll interval, a retry or shutdown), with consecutive errors and the last error
//! kept for the status file.
//!
//! Failures retry with capped exponential backoff and jitter (backon); permanent ones (bad
//! password, missing folder) retry slowly. Each worker has its own store connection, so one
//! mailbox's trouble never holds another up. A pass runs as a task of its own, so that a bug
//! that panics on some input fails that pass instead of ending the worker.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use crmsync_config::MailboxConfig;
use crmsync_imap::{IdleOutcome, ImapSession};
use crmsync_store::{Database, Store};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::origin::Origin;
use super::wake::Waker;
use super::watchers::{CollectionWatcher, IdleWatchers, watch_collections, watched};
use crate::pass::{Kept, PassOptions, Scope, sync_mailbox_scoped};
use crate::report::{MailboxState, PassReport};

/// How long a pass in hand may go on after shutdown was asked for. Then it is cancelled at its
/// next wait on a server; what waits on no server (a store write, a collection pass) ends
/// first.
const STOP_GRACE: Duration = Duration::from_secs(5);

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

/// How many workers run their first pass (a first scan, maybe a first import) at the same
/// time, counting every pass until one succeeded: a daemon starting with a thousand mailboxes
/// does not open a thousand scans on the server at once. Later passes (one change each) do
/// not wait.
const FIRST_PASSES_AT_ONCE: usize = 8;

/// How long the worker does not IDLE on its own connection after an IDLE there failed.
const OWN_IDLE_RETRY: Duration = Duration::from_secs(30);

/// The permits for first passes, shared by every worker of a daemon.
pub fn first_pass_gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(FIRST_PASSES_AT_ONCE))
}

/// What workers tell the status writer.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// A pass is starting.
    Syncing { mailbox: String },
    /// A pass ended; `consecutive_errors` counts the failed passes in a row, this one included.
    Passed {
        report: Box<PassReport>,
        consecutive_errors: u32,
    },
    /// The worker stopped (shutdown, or its mailbox was removed or changed by a reload).
    Stopped { mailbox: String },
}

/// A running worker, as the supervisor holds it.
pub struct Worker {
    pub mailbox: MailboxConfig,
    wake: Waker,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Wakes the worker for a whole pass now.
    pub fn wake(&self) {
        self.wake.everything();
    }

    /// What wakes this worker, for the journal watcher.
    pub fn waker(&self) -> Waker {
        self.wake.clone()
    }

    /// Asks the worker to stop and waits for it: a pass in hand gets [`STOP_GRACE`] to end,
    /// then is cancelled at its next wait on a server (work that waits on none ends first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

pub fn spawn_worker(
    mailbox: MailboxConfig,
    database: Database,
    settings: WorkerSettings,
    events: mpsc::UnboundedSender<WorkerEvent>,
    first_pass: Arc<Semaphore>,
) -> Worker {
    let (waker, wake_rx) = Waker::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = MailboxWorker {
        _collection_watchers: watch_collections(&mailbox, &waker),
        mailbox: mailbox.clone(),
        database,
        settings,
        events,
        waker: waker.clone(),
        wake_rx,
        stop: stop_rx,
        store: None,
        kept: Kept::default(),
        idle: IdleWatchers::default(),
        idle_supported: false,
        own_idle_failed: None,
        delays: backoff(),
        pass_took: Duration::ZERO,
        consecutive_errors: 0,
        first_pass: Some(first_pass),
    };
    Worker {
        mailbox,
        wake: waker,
        stop: stop_tx,
        task: tokio::spawn(worker.run()),
    }
}

/// Delays between retries after transient failures: 0.5 s doubling up to a minute, jittered.
fn backoff() -> Box<dyn Iterator<Item = Duration> + Send> {
    Box::new(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(60))
            .with_jitter()
            .without_max_times()
            .build(),
    )
}

struct MailboxWorker {
    mailbox: MailboxConfig,
    database: Database,
    settings: WorkerSettings,
    events: mpsc::UnboundedSender<WorkerEvent>,
    waker: Waker,
    wake_rx: mpsc::Receiver<()>,
    stop: watch::Receiver<bool>,
    /// The worker's own store connection, opened (again) when missing.
    store: Option<Store>,
    kept: Kept,
    idle: IdleWatchers,
    /// Whether the server offers IDLE, as the last pass that reached it said.
    idle_supported: bool,
    /// When IDLE on the worker's own connection last failed: not tried again for
    /// [`OWN_IDLE_RETRY`], so a server that ends every IDLE cannot spin the worker.
    own_idle_failed: Option<Instant>,
    /// Kept alive as long as the worker: they wake it when a collection's files change.
    _collection_watchers: Vec<CollectionWatcher>,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    /// How long the last pass took (for the log).
    pass_took: Duration,
    consecutive_errors: u32,
    /// Until a pass succeeded: the daemon's gate of first passes.
    first_pass: Option<Arc<Semaphore>>,
}

impl MailboxWorker {
    async fn run(mut self) {
        let mut scope = Scope::Everything;
        while !*self.stop.borrow() {
            // `None`: the pass was cancelled for shutdown, which is no failure of the mailbox.
            let Some(report) = self.work(scope).await else {
                break;
            };
            let (delay, own_idle) = self.after(report);
            scope = self.wait_for_work(delay, own_idle).await;
        }
        self.idle.stop();
        if let Some(session) = self.kept.connection.take() {
            session.logout().await;
        }
        let _ = self.events.send(WorkerEvent::Stopped {
            mailbox: self.mailbox.id.clone(),
        });
    }

    /// One pass over `scope`, under the mailbox lock, as a task of its own. Its store and
    /// kept state go with a panic and are made afresh. Until a pass succeeded, and after a
    /// failed one, the pass is whole whatever woke the worker.
    async fn work(&mut self, scope: Scope) -> Option<PassReport> {
        let id = self.mailbox.id.clone();
        let scope = if self.first_pass.is_some() || self.consecutive_errors > 0 {
            Scope::Everything
        } else {
            scope
        };
        // Until a pass succeeded, each waits its turn (or for shutdown): a daemon started while
        // the server is down does not send every mailbox at it at once when it comes back.
        // The permit goes with the pass.
        let _permit = match self.first_pass.clone() {
            Some(gate) => tokio::select! {
                permit = gate.acquire_owned() => permit.ok(),
                _ = self.stop.changed() => return None,
            },
            None => None,
        };
        let _ = self.events.send(WorkerEvent::Syncing {
            mailbox: id.clone(),
        });
        // An IDLE connection that ended is a hint that the server went away: do not trust the
        // kept connection either, so this pass finds out for certain.
        if self.idle.any_ended() {
            self.kept.connection = None;
        }
        let mut store = match self.store.take() {
            Some(store) => store,
            None => {
                match self
                    .database
                    .store(&Origin::Worker(id.clone()).to_string(), crate::STORE_RULES)
                {
                    Ok(store) => store,
                    Err(error) => return Some(failed(&id, format!("CRM store: {error}"))),
                }
            }
        };
        let _lock = match crate::lock::lock_mailbox(&self.database, &id).await {
            Ok(lock) => lock,
            Err(error) => {
                self.store = Some(store);
                return Some(failed(
                    &id,
                    format!("cannot take the mailbox lock: {error}"),
                ));
            }
        };
        let mailbox = self.mailbox.clone();
        let mut kept = std::mem::take(&mut self.kept);
        let started = Instant::now();
        let mut pass = tokio::spawn(async move {
            let options = PassOptions::default();
            let report =
                sync_mailbox_scoped(&mut store, &mailbox, options, &scope, &mut kept).await;
            (store, kept, report)
        });
        let finished = tokio::select! {
            finished = &mut pass => finished,
            _ = self.stop.changed() => match tokio::time::timeout(STOP_GRACE, &mut pass).await {
                Ok(finished) => finished,
                Err(_) => {
                    // Cancelled at its next wait on a server. Work that waits on nothing (a
                    // store write, a collection pass) ends first: the lock is held until the
                    // task is over, so no other process starts on this mailbox meanwhile.
                    pass.abort();
                    let _ = pass.await;
                    tracing::info!(mailbox = %id, "shutdown: the pass in hand was cancelled");
                    return None;
                }
            },
        };
        self.pass_took = started.elapsed();
        Some(match finished {
            Ok((store, kept, report)) => {
                self.store = Some(store);
                self.kept = kept;
                report
            }
            Err(error) => failed(
                &id,
                format!("internal error, the pass was abandoned (please report it): {error}"),
            ),
        })
    }

    /// Reports the pass and decides how long to wait: the poll interval while healthy (with
    /// IDLE watchers kept on the first folders), backoff after a transient failure, the slow
    /// retry after a permanent one. While healthy, also the folder to wait in IDLE on with
    /// the worker's own connection ([`MailboxWorker::own_idle_folder`]).
    fn after(&mut self, report: PassReport) -> (Duration, Option<String>) {
        // A poll that found nothing changed is no news.
        let quiet = report.partial && report.collections.is_empty() && report.errors.is_empty();
        if quiet {
            tracing::debug!(
                mailbox = %self.mailbox.id,
                took_ms = self.pass_took.as_secs_f64() * 1000.0,
                "poll: nothing changed"
            );
        } else {
            tracing::info!(
            mailbox = %self.mailbox.id,
            state = report.state.as_str(),
            created = report.created,
            deleted = report.deleted,
            updated = report.updated,
            failed = report.failed,
            pending = report.pending,
                partial = report.partial,
                took_ms = self.pass_took.as_secs_f64() * 1000.0,
                "pass done"
            );
        }
        if !report.partial {
            self.idle_supported = report.idle_supported;
        }
        let mut own_idle = None;
        let delay = match report.state {
            MailboxState::Idle => {
                self.first_pass = None;
                self.consecutive_errors = 0;
                self.delays = backoff();
                own_idle = self.own_idle_folder();
                self.idle.keep(
                    &self.mailbox,
                    self.idle_supported,
                    &self.settings,
                    &self.waker,
                    own_idle.as_deref(),
                )
            }
            MailboxState::Error => {
                self.consecutive_errors += 1;
                if report.permanent {
                    self.settings.permanent_retry
                } else {
                    self.delays.next().unwrap_or(Duration::from_secs(60))
                }
            }
            // Waiting for the privilege or for a reload: the journal watcher wakes the worker
            // when the user's privilege changes.
            MailboxState::NotPermitted | MailboxState::Disabled => self.settings.poll_interval,
        };
        // A send that failed for a passing reason is tried again when its backoff ends.
        let delay = report.retry_in.map_or(delay, |retry| delay.min(retry));
        let _ = self.events.send(WorkerEvent::Passed {
            report: Box::new(report),
            consecutive_errors: self.consecutive_errors,
        });
        (delay, own_idle)
    }

    /// The folder to watch in IDLE on the worker's own connection: the one it holds selected
    /// after the pass, when that is a watched folder no watcher of its own covers. A change
    /// made after the pass read the folder is reported when that IDLE begins (the connection
    /// has not heard of it yet), so no pass is needed to close a gap, and the mailbox costs
    /// one login and one SELECT instead of two of each. The other watched folders get
    /// connections of their own.
    fn own_idle_folder(&self) -> Option<String> {
        let imap = self.mailbox.imap.as_ref()?;
        let session = self.kept.connection.as_ref()?;
        let recently_failed = self
            .own_idle_failed
            .is_some_and(|at| at.elapsed() < OWN_IDLE_RETRY);
        if !self.idle_supported || !session.has_idle() || recently_failed {
            return None;
        }
        let held = session.selected_folder()?;
        watched(imap, &self.settings)
            .find(|folder| folder.as_str() == held && !self.idle.watches(folder))
            .cloned()
    }

    /// Waits for a wake that asks for something, a change in the folder watched on the
    /// worker's own connection, the end of `delay` (a whole pass), or shutdown; returns what
    /// the next pass looks at.
    async fn wait_for_work(&mut self, delay: Duration, own_idle: Option<String>) -> Scope {
        let deadline = Instant::now() + delay;
        // A stop that came during the pass was seen there already.
        while !*self.stop.borrow() {
            // What came during the pass (its signal emptied first: a wake after this look
            // leaves one, and ends the wait at once).
            while self.wake_rx.try_recv().is_ok() {}
            if let Some(scope) = self.waker.take() {
                return scope;
            }
            if Instant::now() >= deadline {
                break;
            }
            // The next poll of a collection on a server, when it comes before the deadline.
            // Not while the mailbox is failing: its retry's whole pass looks at the
            // collections too (a poll would retry, say, a wrong IMAP password every 30 s).
            let healthy = self.first_pass.is_none() && self.consecutive_errors == 0;
            let poll = self
                .kept
                .collections
                .next_poll()
                .filter(|_| healthy)
                .map(Instant::from_std)
                .filter(|at| *at < deadline);
            if poll.is_some_and(|at| at <= Instant::now()) {
                return Scope::Poll;
            }
            // An IDLE there that failed dropped the connection: no IDLE again until a pass.
            if let Some(folder) = own_idle.as_deref()
                && let Some(session) = self.kept.connection.take()
            {
                match self
                    .idle_on_own(session, folder, poll.unwrap_or(deadline))
                    .await
                {
                    IdleOutcome::Changed => return Scope::Everything,
                    IdleOutcome::Timeout if Instant::now() >= deadline => break,
                    IdleOutcome::Timeout | IdleOutcome::Interrupted => continue,
                }
            }
            tokio::select! {
                _ = self.wake_rx.recv() => {
                    if let Some(scope) = self.waker.take() {
                        return scope;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tokio::time::sleep_until(poll.unwrap_or(deadline)), if poll.is_some() => {
                    return Scope::Poll;
                }
                _ = self.stop.changed() => break,
            }
        }
        // A whole pass takes whatever was asked for meanwhile.
        self.waker.take();
        Scope::Everything
    }

    /// One IDLE on the worker's own connection, until a change, a wake, the deadline or
    /// shutdown. The connection is kept for the next pass, which then needs no NOOP to know
    /// it answers. An IDLE that fails drops it and asks for a pass (which connects again and
    /// finds out what is wrong); the worker's own IDLE then rests for [`OWN_IDLE_RETRY`].
    async fn idle_on_own(
        &mut self,
        session: ImapSession,
        folder: &str,
        deadline: Instant,
    ) -> IdleOutcome {
        let max = self
            .settings
            .idle_renew
            .min(deadline.saturating_duration_since(Instant::now()));
        let wake = &mut self.wake_rx;
        let stop = &mut self.stop;
        let until = async {
            tokio::select! {
                _ = wake.recv() => {}
                _ = stop.changed() => {}
            }
        };
        match session.idle(folder, max, || {}, until).await {
            Ok((session, outcome)) => {
                if outcome == IdleOutcome::Changed {
                    tracing::debug!(mailbox = %self.mailbox.id, folder, "IDLE: change");
                }
                self.kept.connection = Some(session);
                self.kept.answered = true;
                // The wake that ended it is taken at the top of the wait.
                outcome
            }
            Err(error) => {
                tracing::warn!(mailbox = %self.mailbox.id, folder, "IDLE ended: {error}");
                self.own_idle_failed = Some(Instant::now());
                self.waker.everything();
                IdleOutcome::Interrupted
            }
        }
    }
}

fn failed(mailbox: &str, message: String) -> PassReport {
    let mut report = PassReport::new(mailbox);
    report.fail(message);
    report
}
