//! The engine: one sync pass over one mailbox, and the daemon's workers that run passes.
//!
//! Every pass reads as observe → decide → apply: the adapters observe (IMAP through
//! [`mail::MailStore`], collections through `crmsync_vdir`, the CRM through
//! `crmsync_store`), the pure core decides (`crmsync_core::email::reconcile`,
//! `crmsync_core::collection::reconcile`), and the engine applies the effects in the order that
//! survives a crash.
//!
//! - [`pass`]: [`sync_mailbox`], what `crmsync sync` runs once and a worker on every wake: the
//!   owner's privilege, then the email part and each collection.
//! - [`email`]: [`email::EmailPass`], the IMAP folders of a mailbox.
//! - [`collection`]: [`collection::CollectionPass`], one calendar or address book.
//! - [`report`]: what a pass did ([`PassReport`]); [`error`]: why a pass failed
//!   ([`PassError`]); `conflict`: the conflict log's rows for every kind.
//! - [`daemon`]: workers (one per mailbox), their wake sources (IDLE, inotify, the CRM's
//!   change journal), backoff, and the journal's pruning.
//! - [`item`]: the tracking pane (`crmsync item show`); [`check`]: `crmsync check`;
//!   [`lock`]: the per-mailbox lock that keeps `sync` and the daemon apart.
#![forbid(unsafe_code)]

pub mod check;
pub mod collection;
pub mod compose;
mod conflict;
pub mod daemon;
pub mod drafts;
pub mod email;
pub mod error;
pub mod item;
pub mod lock;
pub mod mail;
pub mod outbound;
pub mod pass;
pub mod report;
pub mod store;

pub use error::PassError;

/// The core's decisions, as every store crmsync opens applies them inside its transactions:
/// a collection link's base remembers both sides, and an address resolves by rank (SPEC
/// section 4).
pub const STORE_RULES: crmsync_store::Rules = crmsync_store::Rules {
    base: crmsync_core::collection::two_sided_base,
    resolve: crmsync_core::resolve::resolve,
};
pub use pass::{Kept, PassOptions, Scope, sync_mailbox, sync_mailbox_keeping, sync_mailbox_scoped};
pub use report::{CollectionReport, CollectionState, MailboxState, PassReport};
