//! The pure reconcile core of crmsync.
//!
//! This crate holds the vocabulary every other part of crmsync speaks (what an item is, what a
//! CRM record and an activity are, what a sync link remembers) and the decisions that need no
//! outside world: which record an address resolves to, and how two edited copies of one item
//! merge against their common base.
//!
//! It does no IO. It depends on no async runtime, no database and no network crate, and reads
//! no clock: every observation and every `now` comes in as an argument, and decisions go out as
//! plain values. The adapters (IMAP, SMTP, collections, the store) and the binary do the acting.
//! A test at the top of the repository (`tests/core_is_pure.rs`) keeps it that way.
//!
//! Module map:
//! - [`model`]: validated names and enums of the CRM side (entity names, record numbers, email
//!   addresses, activity types and states, party roles).
//! - [`item`]: what an item of a person's store is (its kind, its identity, its location).
//! - [`link`]: the sync link between one item and one CRM row, with its base snapshot.
//! - [`resolve`]: address resolution (SPEC section 4).
//! - [`merge`]: the per-field three-way merge (SPEC section 5).
//! - [`email`]: what one pass over a mailbox does about each message and link.
//! - [`auto`]: what automatic tracking reads of a message (its metadata, whether it is
//!   automated mail) and the never-track list.
//! - [`collection`]: what one pass over a calendar or address book does about each file, link
//!   and CRM-created row (the per-field merge, the delete matrix of SPEC section 6).
#![forbid(unsafe_code)]

pub mod auto;
pub mod collection;
pub mod email;
pub mod item;
pub mod link;
pub mod merge;
pub mod model;
pub mod outbound;
pub mod readable;
pub mod resolve;
pub mod template;
pub mod token;
