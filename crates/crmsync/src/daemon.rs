//! `crmsync run`: the daemon (SPEC sections 7 and 8).
//!
//! It loads and validates the config, opens the store, writes the status file, starts one
//! worker per enabled mailbox (see `crmsync_engine::daemon`) and the change-journal watcher,
//! then tells systemd it is ready. From then on it writes the status file after every state
//! change, feeds the watchdog, reloads the config on SIGHUP and when the file changes (a config
//! that does not validate is refused and the running one kept), and on SIGTERM or SIGINT lets
//! every worker finish the pass in hand, writes the final status and exits 0.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use crmsync_config::{Config, DatabaseConfig, LogFormat, MailboxConfig};
use crmsync_engine::STORE_RULES;
use crmsync_engine::collection::Which;
use crmsync_engine::daemon::{
    Origin, Wakers, Worker, WorkerEvent, WorkerSettings, WorkerWaker, first_pass_gate,
    spawn_worker, watch_journal,
};
use crmsync_engine::pass::failed_items_since;
use crmsync_engine::{CollectionReport, CollectionState, MailboxState, PassReport};
use crmsync_store::{Database, FailureStore, LinkStore, Store};
use notify::Watcher;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::commands::load_config;
use crate::status::{
    CollectionStatus, DaemonStatus, FAILED_ITEMS_LISTED, FailedItemStatus, FolderStatus,
    MailboxStatus, STATUS_SCHEMA, StatusFile,
};
use crate::{logging, sd_notify};

/// How long shutdown waits for the workers, well inside systemd's `TimeoutStopSec` (30 s).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn run(config_path: &Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    logging::init(&config.log, log_format);
    // The allocator's background thread gives freed pages back to the system a few seconds
    // after a large pass freed them, whether or not the daemon allocates again.
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("the allocator's background thread did not start: {error}");
    }
    // The store must open (and be migrated) before the daemon says it is ready.
    let database = crmsync_engine::store::open_database(&config.crm.database)?;
    database.store(&Origin::Daemon.to_string(), STORE_RULES)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(daemon(config_path.to_owned(), config, database))
}

fn settings(config: &Config) -> WorkerSettings {
    WorkerSettings {
        poll_interval: Duration::from_secs(config.daemon.poll_interval),
        idle_folders: config.daemon.idle_folders,
        ..WorkerSettings::default()
    }
}

/// The running workers, kept in step with the config.
struct Supervisor {
    workers: HashMap<String, Worker>,
    wakers: Wakers,
    events: mpsc::UnboundedSender<WorkerEvent>,
    /// The store the workers use, and the config it was opened from.
    database: Database,
    database_config: DatabaseConfig,
    settings: WorkerSettings,
    /// Shared by the workers: how many first passes run at once.
    first_passes: Arc<tokio::sync::Semaphore>,
}

impl Supervisor {
    /// Starts, stops and restarts workers so that exactly the enabled mailboxes of `config`
    /// run, each with its current settings. Untouched mailboxes keep running.
    async fn apply(&mut self, config: &Config) {
        let mut store_changed = false;
        if self.database_config != config.crm.database {
            // A store that does not open keeps the workers on the one they have.
            match crmsync_engine::store::open_database(&config.crm.database) {
                Ok(database) => {
                    self.database = database;
                    self.database_config = config.crm.database.clone();
                    store_changed = true;
                }
                Err(error) => tracing::error!("the new CRM store does not open: {error}"),
            }
        }
        let settings_changed = self.settings != settings(config);
        self.settings = settings(config);
        let wanted: HashMap<&str, &MailboxConfig> = if config.connection.enabled {
            config
                .mailboxes
                .iter()
                .filter(|m| m.enabled)
                .map(|m| (m.id.as_str(), m))
                .collect()
        } else {
            HashMap::new()
        };
        let running: Vec<String> = self.workers.keys().cloned().collect();
        for id in running {
            let keep = wanted
                .get(id.as_str())
                .is_some_and(|m| **m == self.workers[&id].mailbox)
                && !store_changed
                && !settings_changed;
            if !keep {
                let worker = self.workers.remove(&id).expect("listed");
                tracing::info!(mailbox = %id, "stopping worker");
                worker.stop().await;
            }
        }
        for (id, mailbox) in wanted {
            if !self.workers.contains_key(id) {
                tracing::info!(mailbox = %id, "starting worker");
                let worker = spawn_worker(
                    mailbox.clone(),
                    self.database.clone(),
                    self.settings,
                    self.events.clone(),
                    self.first_passes.clone(),
                );
                self.workers.insert(id.to_owned(), worker);
            }
        }
        *self.wakers.lock().expect("not poisoned") = self
            .workers
            .iter()
            .map(|(id, worker)| WorkerWaker {
                mailbox: id.clone(),
                owner: worker.mailbox.owner.key(),
                waker: worker.waker(),
            })
            .collect();
    }

    /// Wakes every worker for a pass now: one waiting out a retry (a password fixed, a server
    /// back) tries again at once.
    fn wake_all(&self) {
        for worker in self.workers.values() {
            worker.wake();
        }
    }

    /// Stops every worker at once (each lets its pass in hand end, but waits on no server),
    /// within [`SHUTDOWN_DEADLINE`]: a worker still running then is left to the exit.
    async fn stop_all(&mut self) {
        let mut stopping = tokio::task::JoinSet::new();
        for (id, worker) in self.workers.drain() {
            tracing::info!(mailbox = %id, "stopping worker");
            stopping.spawn(worker.stop());
        }
        let drained = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
            while stopping.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                workers = stopping.len(),
                "workers still running after {} s: exiting without them",
                SHUTDOWN_DEADLINE.as_secs()
            );
        }
    }
}

/// The status file and what goes into it.
struct StatusWriter {
    path: PathBuf,
    file: StatusFile,
    store: Option<Store>,
    folders: HashMap<String, Vec<String>>,
    /// The mailboxes the config has workers run: only their events are taken.
    running: HashSet<String>,
}

impl StatusWriter {
    fn new(config: &Config, config_path: &Path, database: &Database) -> StatusWriter {
        let mut writer = StatusWriter {
            path: config.status.file.clone(),
            file: StatusFile {
                schema: STATUS_SCHEMA,
                updated: now(),
                daemon: DaemonStatus {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    pid: std::process::id(),
                    started: now(),
                    connection_enabled: config.connection.enabled,
                    config: config_path.display().to_string(),
                },
                mailboxes: Vec::new(),
            },
            // The folders' sync markers come from the store; without it the status file
            // still says everything else, and the log says why the markers are missing.
            store: match database.store(&Origin::Daemon.to_string(), STORE_RULES) {
                Ok(store) => Some(store),
                Err(error) => {
                    tracing::warn!("status file: no folder markers: CRM store: {error}");
                    None
                }
            },
            folders: HashMap::new(),
            running: HashSet::new(),
        };
        writer.set_config(config);
        writer.remove_stale_temporaries();
        writer
    }

    /// Removes the temporary status files (`.NAME.PID.tmp`) of daemons killed between writing
    /// one and renaming it; a running daemon's own is left alone.
    fn remove_stale_temporaries(&self) {
        let (Some(directory), Some(name)) = (
            self.path.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            }),
            self.path.file_name().and_then(|n| n.to_str()),
        ) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        let prefix = format!(".{name}.");
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(pid) = file
                .to_str()
                .and_then(|f| f.strip_prefix(&prefix))
                .and_then(|f| f.strip_suffix(".tmp"))
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let alive = Path::new(&format!("/proc/{pid}")).exists();
            if !alive && std::fs::remove_file(entry.path()).is_ok() {
                tracing::info!(
                    "removed {}, a status file left by a daemon that was killed",
                    entry.path().display()
                );
            }
        }
    }

    /// Lists the config's mailboxes, keeping what is known of those that stay.
    fn set_config(&mut self, config: &Config) {
        self.file.daemon.connection_enabled = config.connection.enabled;
        self.path = config.status.file.clone();
        let old: HashMap<String, MailboxStatus> = self
            .file
            .mailboxes
            .drain(..)
            .map(|m| (m.id.clone(), m))
            .collect();
        self.folders.clear();
        self.running.clear();
        for mailbox in &config.mailboxes {
            let running = config.connection.enabled && mailbox.enabled;
            if running {
                self.running.insert(mailbox.id.clone());
            }
            let mut status = old.get(&mailbox.id).cloned().unwrap_or(MailboxStatus {
                id: mailbox.id.clone(),
                owner: mailbox.owner.to_string(),
                state: "starting".into(),
                last_success: None,
                last_error: None,
                tracked: 0,
                pending: 0,
                failed: 0,
                consecutive_errors: 0,
                folders: Vec::new(),
                collections: Vec::new(),
                failed_items: Vec::new(),
            });
            status.owner = mailbox.owner.to_string();
            if !running {
                status.state = MailboxState::Disabled.as_str().into();
            } else if status.state == MailboxState::Disabled.as_str() {
                status.state = "starting".into();
            }
            self.folders.insert(
                mailbox.id.clone(),
                mailbox
                    .imap
                    .as_ref()
                    .map(|i| i.folders.clone())
                    .unwrap_or_default(),
            );
            self.file.mailboxes.push(status);
        }
    }

    fn mailbox(&mut self, id: &str) -> Option<&mut MailboxStatus> {
        self.file.mailboxes.iter_mut().find(|m| m.id == id)
    }

    fn apply(&mut self, event: WorkerEvent) {
        // A worker stopped by a reload may still have had an event in the channel: the
        // mailbox's state is the config's (disabled) now, not that worker's last word.
        let mailbox = match &event {
            WorkerEvent::Syncing { mailbox } | WorkerEvent::Stopped { mailbox } => mailbox,
            WorkerEvent::Passed { report, .. } => &report.mailbox,
        };
        if !self.running.contains(mailbox) {
            return;
        }
        match event {
            WorkerEvent::Syncing { mailbox } => {
                if let Some(status) = self.mailbox(&mailbox) {
                    status.state = "syncing".into();
                }
            }
            WorkerEvent::Passed {
                report,
                consecutive_errors,
            } => self.passed(*report, consecutive_errors),
            WorkerEvent::Stopped { .. } => {}
        }
    }

    fn passed(&mut self, report: PassReport, consecutive_errors: u32) {
        let folders = self.folder_statuses(&report.mailbox);
        let failed_items = self.failed_items(&report.mailbox);
        let Some(status) = self.mailbox(&report.mailbox) else {
            return;
        };
        status.state = report.state.as_str().into();
        status.tracked = report.tracked;
        status.consecutive_errors = consecutive_errors;
        if report.partial {
            // A pass over some collection files: the rest of the mailbox is as the last whole
            // pass left it, so only the counts of the collections it looked at change.
            for (failed, pending, c) in collection_counts(&report, &status.collections) {
                status.failed = status.failed.saturating_sub(failed) + c.failed;
                status.pending = status.pending.saturating_sub(pending) + c.pending;
            }
        } else {
            status.pending = report.pending;
            status.failed = report.failed;
        }
        status.collections = collection_statuses(&report, &status.collections);
        if let Some(failed_items) = failed_items {
            status.failed_items = failed_items;
        }
        match report.state {
            MailboxState::Idle => {
                let at = now();
                status.last_success = Some(at.clone());
                status.last_error = report.errors.first().cloned();
                if !report.partial {
                    status.folders = folders
                        .into_iter()
                        .map(|mut f| {
                            f.last_success = Some(at.clone());
                            f
                        })
                        .collect();
                }
            }
            MailboxState::Error => {
                status.last_error = report.errors.first().cloned();
            }
            MailboxState::NotPermitted | MailboxState::Disabled => {
                status.last_error = report.warnings.first().cloned();
            }
        }
    }

    /// The mailbox's latest failed items, from the store (`None` when it cannot say).
    fn failed_items(&self, mailbox: &str) -> Option<Vec<FailedItemStatus>> {
        let store = self.store.as_ref()?;
        match store.failed_items(Some(mailbox), &failed_items_since()) {
            Ok(rows) => Some(
                rows.into_iter()
                    .take(FAILED_ITEMS_LISTED)
                    .map(FailedItemStatus::from)
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(mailbox = %mailbox, "status file: the failed items: CRM store: {error}");
                None
            }
        }
    }

    /// Each IMAP folder of a mailbox with the sync markers its last pass saved.
    fn folder_statuses(&self, mailbox: &str) -> Vec<FolderStatus> {
        let folders = self.folders.get(mailbox).cloned().unwrap_or_default();
        folders
            .into_iter()
            .map(|folder| {
                let state = self.store.as_ref().and_then(|store| {
                    store.sync_state(mailbox, &folder).unwrap_or_else(|error| {
                        tracing::warn!(
                            mailbox = %mailbox,
                            folder = %folder,
                            "status file: the folder's markers: CRM store: {error}"
                        );
                        None
                    })
                });
                FolderStatus {
                    kind: "imap".into(),
                    uid_validity: state.as_ref().and_then(|s| s.uid_validity),
                    highest_modseq: state.as_ref().and_then(|s| s.highest_modseq),
                    sync_token: None,
                    last_full_scan: state.as_ref().and_then(|s| s.last_full_scan.clone()),
                    last_success: None,
                    name: folder,
                }
            })
            .collect()
    }

    /// Replaces the file atomically: a temporary file in the same directory, written and
    /// synced, then renamed over the old one. A reader sees the old file or the new one.
    fn write(&mut self) -> anyhow::Result<()> {
        self.file.updated = now();
        let directory = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temporary = directory.join(format!(
            ".{}.{}.tmp",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("status"),
            std::process::id()
        ));
        let text = serde_json::to_string_pretty(&self.file)?;
        let mut file = std::fs::File::create(&temporary)
            .with_context(|| format!("cannot write the status file {}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        // Readable by everyone, whatever the umask: it holds no secret, and `crmsync status`
        // is for any administrator.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("cannot replace the status file {}", self.path.display()))?;
        Ok(())
    }

    fn write_or_log(&mut self) {
        if let Err(error) = self.write() {
            tracing::error!("{error:#}");
        }
    }
}

/// Each collection a pass over some files looked at, with the failed and pending counts the
/// status had for it before.
fn collection_counts<'r>(
    report: &'r PassReport,
    previous: &[CollectionStatus],
) -> Vec<(u64, u64, &'r CollectionReport)> {
    report
        .collections
        .iter()
        .map(|c| {
            let before = previous.iter().find(|p| p.name == c.name);
            let failed = before.map_or(0, |p| p.failed);
            let pending = before.map_or(0, |p| p.pending);
            (failed, pending, c)
        })
        .collect()
}

/// Each collection as the pass saw it; one that failed keeps its last success. A pass over
/// some files keeps the collections it did not look at as they were.
fn collection_statuses(
    report: &PassReport,
    previous: &[CollectionStatus],
) -> Vec<CollectionStatus> {
    let at = now();
    let untouched = previous
        .iter()
        .filter(|p| report.partial && !report.collections.iter().any(|c| c.name == p.name))
        .cloned();
    let mut statuses: Vec<CollectionStatus> = report
        .collections
        .iter()
        .map(|c| CollectionStatus {
            name: c.name.to_owned(),
            path: c.path.clone(),
            state: c.state.as_str().to_owned(),
            items: c.items,
            tracked: c.tracked,
            failed: c.failed,
            pending: c.pending,
            skipped: c.skipped,
            last_error: c.last_error.clone(),
            last_success: if c.state == CollectionState::Idle {
                Some(at.clone())
            } else {
                previous
                    .iter()
                    .find(|p| p.name == c.name)
                    .and_then(|p| p.last_success.clone())
            },
        })
        .collect();
    statuses.extend(untouched);
    statuses.sort_by_key(|s| Which::parse(&s.name));
    statuses
}

/// Watches the config file's directory (editors replace files by renaming) and signals when
/// the config file itself changed.
fn watch_config(path: &Path) -> anyhow::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(4);
    let target = path.file_name().map(|n| n.to_owned());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && (event.kind.is_modify() || event.kind.is_create())
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == target.as_deref())
        {
            let _ = tx.try_send(());
        }
    })?;
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    watcher.watch(directory, notify::RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

/// How often, at most, the status file is written.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

async fn daemon(
    config_path: PathBuf,
    mut config: Config,
    database: Database,
) -> anyhow::Result<()> {
    // First: once the status file names this process, `crmsync sync` may send it SIGUSR1,
    // whose default action would end it.
    let mut sync_now = signal(SignalKind::user_defined1())?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut status = StatusWriter::new(&config, &config_path, &database);
    status.write()?;

    let mut supervisor = Supervisor {
        workers: HashMap::new(),
        wakers: Arc::new(Mutex::new(Vec::new())),
        events: events_tx,
        database: database.clone(),
        database_config: config.crm.database.clone(),
        settings: settings(&config),
        first_passes: first_pass_gate(),
    };
    supervisor.apply(&config).await;
    let (stop_journal, journal_stop) = watch::channel(false);
    let journal = tokio::spawn(watch_journal(
        database,
        supervisor.wakers.clone(),
        Duration::from_secs(config.daemon.journal_retention),
        journal_stop,
    ));

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let (_config_watcher, mut config_changed) = watch_config(&config_path)?;
    let mut watchdog = sd_notify::watchdog_interval().map(tokio::time::interval);

    sd_notify::notify("READY=1");
    tracing::info!(
        config = %config_path.display(),
        mailboxes = config.mailboxes.len(),
        connection_enabled = config.connection.enabled,
        "crmsync daemon ready"
    );

    // The status file is written at most once a second, and only when something changed:
    // with many mailboxes, a write per pass would grow with the square of their number. A
    // change after a quiet second is written at once; one within the second, when it ends.
    let mut status_tick = tokio::time::interval(STATUS_INTERVAL / 4);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_changed = false;
    let mut status_written = tokio::time::Instant::now();
    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                status.apply(event);
                status_changed = true;
                if status_written.elapsed() >= STATUS_INTERVAL {
                    status.write_or_log();
                    status_changed = false;
                    status_written = tokio::time::Instant::now();
                }
            }
            // Enabled while a change waits; it is written once its second is over.
            _ = status_tick.tick(), if status_changed => {
                if status_written.elapsed() >= STATUS_INTERVAL {
                    status.write_or_log();
                    status_changed = false;
                    status_written = tokio::time::Instant::now();
                }
            }
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                reload(&config_path, &mut config, &mut supervisor, &mut status).await;
            }
            _ = sync_now.recv() => {
                tracing::info!("SIGUSR1: every mailbox syncs now");
                supervisor.wake_all();
            }
            Some(()) = config_changed.recv() => {
                // An editor may write in several steps: let it finish.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while config_changed.try_recv().is_ok() {}
                tracing::info!("the config file changed: reloading");
                reload(&config_path, &mut config, &mut supervisor, &mut status).await;
            }
            _ = async { watchdog.as_mut().expect("guarded").tick().await }, if watchdog.is_some() => {
                sd_notify::notify("WATCHDOG=1");
            }
        }
    }

    sd_notify::notify("STOPPING=1");
    supervisor.stop_all().await;
    let _ = stop_journal.send(true);
    let _ = journal.await;
    while let Ok(event) = events.try_recv() {
        status.apply(event);
    }
    status.write_or_log();
    tracing::info!("crmsync daemon stopped");
    Ok(())
}

async fn reload(
    config_path: &Path,
    config: &mut Config,
    supervisor: &mut Supervisor,
    status: &mut StatusWriter,
) {
    match Config::load(config_path) {
        Ok(new) => {
            // A reload is also the administrator's "try again now": after fixing a password
            // file, say, a mailbox does not wait out its slow retry.
            supervisor.wake_all();
            if new == *config {
                tracing::info!("config unchanged");
                return;
            }
            supervisor.apply(&new).await;
            status.set_config(&new);
            status.write_or_log();
            tracing::info!(
                mailboxes = new.mailboxes.len(),
                connection_enabled = new.connection.enabled,
                "config reloaded"
            );
            *config = new;
        }
        Err(errors) => {
            for line in errors.to_string().lines() {
                tracing::error!("config reload refused, the running config is kept: {line}");
            }
        }
    }
}
