//! What woke a worker, gathered until its next pass takes it: "look at everything" (an IDLE
//! notification, a change in the CRM's journal, a watcher that lost track) or the collection
//! files a watcher named. A pass over named files costs what changed, not what the
//! collection holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crmsync_core::link::CrmRef;

use crate::collection::Which;
use crate::pass::Scope;

/// More files named in one collection than this make the next pass whole: past a few hundred
/// (a tool rewriting the whole collection), one listing costs less than as many lookups.
const FILES_AT_MOST: usize = 256;

/// More CRM rows changed than this make the next CRM-side pass look at every link.
const ROWS_AT_MOST: usize = 256;

/// The CRM rows a change on the CRM side concerns: known (and few), or not.
#[derive(Debug)]
enum CrmRows {
    Known(BTreeSet<CrmRef>),
    Unknown,
}

impl CrmRows {
    /// These rows, while few enough that a pass over their items costs less than a whole one.
    fn of(rows: BTreeSet<CrmRef>) -> CrmRows {
        if rows.len() <= ROWS_AT_MOST {
            CrmRows::Known(rows)
        } else {
            CrmRows::Unknown
        }
    }
}

/// Wakes one worker, saying what for. Cheap to clone; every wake source holds one.
#[derive(Debug, Clone)]
pub struct Waker {
    signal: mpsc::Sender<()>,
    pending: Arc<Mutex<Pending>>,
}

#[derive(Debug, Default)]
struct Pending {
    everything: bool,
    /// A change on the CRM side, with the rows that changed when they are known.
    crm: Option<CrmRows>,
    files: BTreeMap<Which, BTreeSet<String>>,
}

impl Waker {
    /// A waker and the receiver its worker waits on.
    pub(super) fn new() -> (Waker, mpsc::Receiver<()>) {
        let (signal, receiver) = mpsc::channel(1);
        let waker = Waker {
            signal,
            pending: Arc::default(),
        };
        (waker, receiver)
    }

    /// Wakes the worker for a whole pass.
    pub fn everything(&self) {
        self.pending().everything = true;
        let _ = self.signal.try_send(());
    }

    /// Wakes the worker for a pass after a change on the CRM side ([`Scope::CrmChanged`]):
    /// `rows` are the rows that changed, `None` when that is not known (a user's privilege,
    /// say).
    pub fn crm_changed(&self, rows: Option<BTreeSet<CrmRef>>) {
        {
            let mut pending = self.pending();
            pending.crm = Some(match (pending.crm.take(), rows) {
                (None, Some(rows)) => CrmRows::of(rows),
                (Some(CrmRows::Known(mut all)), Some(rows)) => {
                    all.extend(rows);
                    CrmRows::of(all)
                }
                _ => CrmRows::Unknown,
            });
        }
        let _ = self.signal.try_send(());
    }

    /// Wakes the worker for a pass over these files of a collection (file names, not paths).
    pub fn files(&self, which: Which, names: impl IntoIterator<Item = String>) {
        {
            let mut pending = self.pending();
            let files = pending.files.entry(which).or_default();
            files.extend(names);
            if files.len() > FILES_AT_MOST {
                pending.everything = true;
            }
        }
        let _ = self.signal.try_send(());
    }

    /// What the wakes since the last call ask for; `None` when nothing (the wake of a change
    /// an earlier pass already took).
    pub(super) fn take(&self) -> Option<Scope> {
        let pending = std::mem::take(&mut *self.pending());
        if pending.everything || (pending.crm.is_some() && !pending.files.is_empty()) {
            Some(Scope::Everything)
        } else if let Some(crm) = pending.crm {
            Some(Scope::CrmChanged(match crm {
                CrmRows::Known(rows) => Some(rows),
                CrmRows::Unknown => None,
            }))
        } else if pending.files.is_empty() {
            None
        } else {
            Some(Scope::Files(pending.files))
        }
    }

    /// The lock holds plain data that no panic leaves half-written.
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_gather_until_taken() {
        let (waker, mut signal) = Waker::new();
        assert_eq!(waker.take(), None);
        waker.files(Which::Calendar, ["a.ics".to_owned()]);
        waker.files(Which::Calendar, ["b.ics".to_owned()]);
        waker.files(Which::Contacts, ["c.vcf".to_owned()]);
        assert!(signal.try_recv().is_ok());
        let Some(Scope::Files(files)) = waker.take() else {
            panic!("files expected")
        };
        assert_eq!(files[&Which::Calendar].len(), 2);
        assert_eq!(files[&Which::Contacts].len(), 1);
        assert_eq!(waker.take(), None, "taken once");
        // Anything asking for everything wins over named files.
        waker.files(Which::Calendar, ["a.ics".to_owned()]);
        waker.everything();
        assert_eq!(waker.take(), Some(Scope::Everything));
        // So do too many files at once.
        waker.files(
            Which::Contacts,
            (0..=FILES_AT_MOST).map(|n| format!("{n}.vcf")),
        );
        assert_eq!(waker.take(), Some(Scope::Everything));
    }
}
