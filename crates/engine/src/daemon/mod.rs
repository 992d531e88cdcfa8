//! The daemon's moving parts: one worker per mailbox ([`worker`]), the wake sources on the
//! mailbox side ([`watchers`]: IDLE, inotify) and on the CRM side ([`journal`]: the change
//! journal), and who wrote a change ([`origin`]). The supervisor that starts and stops
//! workers as the config changes, the status file and the signals live in the binary.
//!
//! A worker sleeps until a wake source wakes it ([`Waker`]: for a whole pass, or for a pass
//! over the collection files a watcher named), the fallback poll interval passes, or a
//! retry is due; it leaves its loop when shutdown is signalled, letting the pass in hand end
//! (store writes never wait) but not waiting on a server that does not answer.

mod journal;
mod origin;
mod wake;
mod watchers;
mod worker;

pub use journal::{DAEMON_CURSOR, Wakers, WorkerWaker, watch_journal};
pub use origin::Origin;
pub use wake::Waker;
pub use worker::{Worker, WorkerEvent, WorkerSettings, first_pass_gate, spawn_worker};
