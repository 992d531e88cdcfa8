//! The wake sources of a worker on the mailbox side: an IDLE connection per watched folder
//! (RFC 2177), and inotify (or a polling watcher) on each collection directory.

use std::collections::HashMap;
use std::time::Duration;

use crmsync_config::{ImapConfig, MailboxConfig, WatchMode};
use crmsync_imap::{IdleOutcome, ImapError, ImapSession};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::wake::Waker;
use super::worker::WorkerSettings;
use crate::collection::Which;

/// The least time between two starts of a mailbox's IDLE watchers.
const WATCH_RESTART: Duration = Duration::from_secs(30);

/// How often the polling fallback looks at a collection when inotify watches have run out.
const COLLECTION_POLL: Duration = Duration::from_secs(2);

/// A mailbox's IDLE watchers, one per folder, restarted when they end (each at most twice a
/// minute).
#[derive(Default)]
pub(super) struct IdleWatchers {
    watchers: HashMap<String, JoinHandle<()>>,
    /// When each folder's watcher last started.
    started: HashMap<String, Instant>,
}

impl IdleWatchers {
    /// Whether a watcher ended since the last look: a hint that the server went away.
    pub(super) fn any_ended(&self) -> bool {
        self.watchers.values().any(JoinHandle::is_finished)
    }

    /// Keeps a watcher on each of the mailbox's first `idle_folders` folders but `own` (the
    /// one the worker watches on its own connection), and returns how long the worker may
    /// sleep before it must look again. A folder's watcher that died is restarted
    /// at most twice a minute, so a server that refuses IDLE connections (too many per user,
    /// say) cannot spin the worker; until then the worker comes back when the restart is due,
    /// since nothing else may wake it.
    pub(super) fn keep(
        &mut self,
        mailbox: &MailboxConfig,
        idle_supported: bool,
        settings: &WorkerSettings,
        wake: &Waker,
        own: Option<&str>,
    ) -> Duration {
        self.watchers.retain(|_, watcher| !watcher.is_finished());
        let Some(imap) = mailbox.imap.as_ref().filter(|_| idle_supported) else {
            return settings.poll_interval;
        };
        let missing: Vec<&String> = watched(imap, settings)
            .filter(|folder| Some(folder.as_str()) != own && !self.watchers.contains_key(*folder))
            .collect();
        let mut wait = settings.poll_interval;
        for folder in missing {
            if let Some(elapsed) = self.started.get(folder).map(Instant::elapsed)
                && elapsed < WATCH_RESTART
            {
                wait = wait.min(WATCH_RESTART - elapsed);
                continue;
            }
            self.started.insert(folder.clone(), Instant::now());
            let watcher = tokio::spawn(idle_watcher(
                mailbox.id.clone(),
                imap.clone(),
                folder.clone(),
                settings.idle_renew,
                wake.clone(),
            ));
            self.watchers.insert(folder.clone(), watcher);
        }
        wait
    }

    /// Whether a watcher of its own watches `folder`.
    pub(super) fn watches(&self, folder: &str) -> bool {
        self.watchers.contains_key(folder)
    }

    pub(super) fn stop(&mut self) {
        for (_, watcher) in self.watchers.drain() {
            watcher.abort();
        }
    }
}

/// The folders a mailbox watches with IDLE: its first `idle_folders`; the rest are polled.
pub(super) fn watched<'a>(
    imap: &'a ImapConfig,
    settings: &WorkerSettings,
) -> impl Iterator<Item = &'a String> {
    imap.folders.iter().take(settings.idle_folders)
}

/// Keeps one IDLE connection on a folder and wakes the worker on every change. It ends on the
/// first error, waking the worker so that its next pass finds out what is wrong.
async fn idle_watcher(
    mailbox: String,
    imap: ImapConfig,
    folder: String,
    renew: Duration,
    wake: Waker,
) {
    let result: Result<(), ImapError> = async {
        let password = imap
            .password
            .read()
            .map_err(|e| ImapError::Protocol(e.to_string()))?;
        let mut session = ImapSession::connect(&imap, &password).await?;
        let mut first = true;
        loop {
            // Once the first IDLE is in place, the worker makes one pass: a change that came
            // between its last pass and this moment was reported to no one.
            let announce = std::mem::take(&mut first).then(|| wake.clone());
            let ready = move || {
                if let Some(wake) = announce {
                    wake.everything();
                }
            };
            let (next, outcome) = session
                .idle(&folder, renew, ready, std::future::pending())
                .await?;
            session = next;
            if outcome == IdleOutcome::Changed {
                tracing::debug!(mailbox = %mailbox, folder = %folder, "IDLE: change");
                wake.everything();
            }
        }
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(mailbox = %mailbox, folder = %folder, "IDLE ended: {error}");
    }
    wake.everything();
}

/// A boxed filesystem watcher: dropping it stops the watch.
pub(super) type CollectionWatcher = Box<dyn notify::Watcher + Send>;

/// Watches the mailbox's calendar and address book directories with inotify, or with a
/// polling watcher when inotify cannot (its watch limit reached, say, or `watch = "poll"` for
/// a network file system), and wakes the worker for the files that appeared, changed or went.
/// Temporary files (names starting with `.`, as vdir writers make them) do not wake it; the
/// rename that follows does. A watcher that lost events (the kernel's queue overflowed), an
/// error, or a change to the directory itself asks for a whole pass.
pub(super) fn watch_collections(mailbox: &MailboxConfig, wake: &Waker) -> Vec<CollectionWatcher> {
    Which::ALL
        .into_iter()
        .filter_map(|which| {
            let config = which.config(mailbox)?;
            // A server collection is polled by the worker instead.
            watch_collection(&mailbox.id, which, config.path()?, config.watch, wake)
        })
        .collect()
}

fn watch_collection(
    mailbox: &str,
    which: Which,
    path: &std::path::Path,
    mode: WatchMode,
    wake: &Waker,
) -> Option<CollectionWatcher> {
    use notify::Watcher;
    let handler = {
        let wake = wake.clone();
        let directory = path.to_path_buf();
        move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.kind.is_access() => {}
            Ok(event) if !event.need_rescan() && !event.paths.contains(&directory) => {
                let names: Vec<String> = event
                    .paths
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str())
                    .filter(|name| !name.starts_with('.'))
                    .map(str::to_owned)
                    .collect();
                if !names.is_empty() {
                    wake.files(which, names);
                }
            }
            _ => wake.everything(),
        }
    };
    let inotify = match mode {
        WatchMode::Inotify => notify::recommended_watcher(handler.clone())
            .and_then(|mut watcher| {
                watcher.watch(path, notify::RecursiveMode::NonRecursive)?;
                Ok(watcher)
            })
            .map_err(|error| error.to_string()),
        WatchMode::Poll => Err("the config asks for polling (watch = \"poll\")".to_owned()),
    };
    let error = match inotify {
        Ok(watcher) => return Some(Box::new(watcher)),
        Err(error) => error,
    };
    let config = notify::Config::default().with_poll_interval(COLLECTION_POLL);
    let polled = notify::PollWatcher::new(handler, config).and_then(|mut watcher| {
        watcher.watch(path, notify::RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match polled {
        Ok(watcher) => {
            tracing::info!(
                mailbox = %mailbox,
                "not watching {} with inotify ({error}): polling it every {} s",
                path.display(),
                COLLECTION_POLL.as_secs()
            );
            Some(Box::new(watcher))
        }
        Err(poll_error) => {
            tracing::warn!(
                mailbox = %mailbox,
                "cannot watch {} ({poll_error}): it is synchronized on the poll interval",
                path.display()
            );
            None
        }
    }
}
