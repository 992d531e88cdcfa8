//! Apply: the core's effects for one mailbox, each on its own, in the order given. One item's
//! failure is counted and the pass goes on, unless the connection is gone: then the pass ends
//! (the remaining items would only fail the same way) and the mailbox reports the error.

use std::collections::{BTreeMap, HashMap, HashSet};

use crmsync_core::email::{CrmState, DropReason, Effect, Observed};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink};
use crmsync_core::model::{ActivityId, EmailAddress, PartyRole, RecordNumber};
use crmsync_imap::message::{self, MessageAddress};
use crmsync_imap::{FetchedMessage, ImapError};
use crmsync_store::{CrmStore, NewAttachment, NewEmail, NewParty, StoreError};

use super::{EmailPass, Mark, imap_location, location_text};
use crate::conflict;
use crate::error::PassError;
use crate::mail::MailStore;

/// What applying carries from one effect to the next.
struct Applying {
    /// The links as loaded, by identity.
    links: HashMap<ItemIdentity, SyncLink>,
    /// Messages whose keyword write (or the link's record of a rewrite about to begin) failed
    /// in this pass: nothing more is done about them until the next pass, so that a link never
    /// records what the message does not hold and no link is dropped whose keywords stayed.
    failed: HashSet<ItemIdentity>,
    /// Links whose activity is gone from the CRM: kept as tombstones when updated.
    crm_deleted: HashSet<ItemIdentity>,
    /// A regarding change for the CRM, written with the link's update (one transaction).
    regarding: HashMap<ItemIdentity, Option<RecordNumber>>,
}

/// A message a batched keyword write goes to: its UID, identity and place.
type KeywordTarget = (u32, ItemIdentity, ItemLocation);

/// How many new activities one store transaction takes at most on a first import.
const TRACK_BATCH: usize = 200;
/// How much content (bodies and attachments) one batch holds at most.
const TRACK_BATCH_BYTES: usize = 32 << 20;

/// A message to track, as the core decided.
struct Track {
    observed: Observed,
    regarding: Option<RecordNumber>,
    base: Snapshot,
    automatic: bool,
}

/// How many messages one `UID FETCH` of bodies asks for at most.
const FETCH_BATCH: usize = 100;
/// How many bytes one such fetch brings at most, by the sizes the scan gave: within the 60 s
/// a server operation may take even at half a megabit per second.
const FETCH_BATCH_BYTES: u64 = 4 << 20;

/// A message waiting for its body: what tracking it needs besides.
struct Pending {
    track: Track,
    link: SyncLink,
    regarding: Option<RecordNumber>,
    warnings: Vec<String>,
}

/// Where [`EmailPass::begin_track`] left a message.
enum Begun {
    /// Its activity is to be created from its body.
    Waiting(Pending),
    /// Its activity exists: a link to it is to be stored.
    Linking(Linking),
    /// Settled already (failed).
    Settled,
}

/// A message whose activity exists (another mailbox tracked it): the link to store.
struct Linking {
    track: Track,
    link: SyncLink,
    regarding: Option<RecordNumber>,
    warning: Option<String>,
}

/// A message parsed on a blocking thread: the email, or why it could not be read; its size
/// and whether it was cut at `max_message_size`.
type ParsedBody = (Result<message::ParsedEmail, String>, u64, bool);

/// A fetched lot being parsed, and the messages it came from, in the same order.
struct Parsing {
    pendings: Vec<Pending>,
    task: tokio::task::JoinHandle<Vec<ParsedBody>>,
}

/// The batch being filled and the bytes of content it holds.
#[derive(Default)]
struct Stored {
    batch: Batch,
    bytes: usize,
}

/// New activities waiting for their store transaction, and what each came from.
#[derive(Default)]
struct Batch {
    rows: Vec<(NewEmail, SyncLink)>,
    tracked: Vec<(Observed, Vec<String>)>,
}

/// The content a new activity holds, for the batch's bound.
fn email_bytes(email: &NewEmail) -> usize {
    email.text_body.as_ref().map_or(0, String::len)
        + email.html_body.as_ref().map_or(0, String::len)
        + email
            .attachments
            .iter()
            .map(|a| a.content.len())
            .sum::<usize>()
}

/// Why tracking one message failed.
enum TrackFailure {
    /// The store cannot serve at all: the pass ends.
    Store(StoreError),
    Other(String),
}

impl<S: CrmStore, M: MailStore> EmailPass<'_, S, M> {
    // Long on purpose: one arm per kind of effect, in the order the core gives them.
    pub(super) async fn apply(
        &mut self,
        effects: Vec<Effect>,
        linked: Vec<(SyncLink, CrmState)>,
        changed: &[Observed],
    ) -> Result<(), PassError> {
        // Where the messages this pass saw sit, with their keywords: for the sync-state marks.
        let seen: HashMap<&ItemIdentity, &Observed> =
            changed.iter().map(|o| (&o.identity, o)).collect();
        let mut state = Applying {
            crm_deleted: linked
                .iter()
                .filter(|(_, crm)| *crm == CrmState::Deleted)
                .map(|(link, _)| link.identity.clone())
                .collect(),
            links: linked
                .into_iter()
                .map(|(link, _)| (link.identity.clone(), link))
                .collect(),
            regarding: HashMap::new(),
            failed: HashSet::new(),
        };
        // Every message to track is pending until its activity and link are committed.
        self.report.pending += effects
            .iter()
            .filter(|e| matches!(e, Effect::Track { .. }))
            .count() as u64;
        let effects = self.write_automatic_keywords(effects, &mut state).await?;
        let mut effects = effects.into_iter().peekable();
        while let Some(effect) = effects.next() {
            // A store that cannot serve fails every item after it the same way (each after
            // the busy timeout): the pass stops.
            if let Some(error) = self.store_down.take() {
                return Err(PassError::Store(StoreError::Unavailable(error)));
            }
            if effect_identity(&effect).is_some_and(|identity| state.failed.contains(identity)) {
                continue;
            }
            match effect {
                Effect::Track {
                    observed,
                    regarding,
                    base,
                    automatic,
                } => {
                    // The core gives the messages to track one after another: as one run,
                    // stored in batches.
                    let mut run = vec![Track {
                        observed,
                        regarding,
                        base,
                        automatic,
                    }];
                    while let Some(Effect::Track { observed, .. }) = effects.peek() {
                        if state.failed.contains(&observed.identity) {
                            effects.next();
                            continue;
                        }
                        let Some(Effect::Track {
                            observed,
                            regarding,
                            base,
                            automatic,
                        }) = effects.next()
                        else {
                            unreachable!("peeked");
                        };
                        run.push(Track {
                            observed,
                            regarding,
                            base,
                            automatic,
                        });
                    }
                    self.track_run(run).await?;
                }
                Effect::SetRegarding {
                    identity,
                    regarding,
                } => {
                    state.regarding.insert(identity, regarding);
                }
                Effect::BeginRewrite {
                    identity,
                    location,
                    base,
                } => self.begin_rewrite(&mut state, &identity, location, base),
                Effect::WriteKeywords {
                    identity,
                    location,
                    add,
                    remove,
                } => {
                    let keywords = (add.as_slice(), remove.as_slice());
                    self.write_keywords(&mut state, &identity, &location, keywords)
                        .await?
                }
                Effect::UpdateLink {
                    identity,
                    location,
                    base,
                } => self.update_link(&mut state, &identity, location, base),
                Effect::DeleteActivity { identity } => {
                    if self.delete_activity(&state, &identity) {
                        self.clear_mark(seen.get(&identity));
                    }
                }
                Effect::DropLink { identity, reason } => {
                    if self.drop_link(&state, &identity, reason) && reason != DropReason::Gone {
                        self.clear_mark(seen.get(&identity));
                    }
                }
                Effect::Conflict { identity, conflict } => {
                    let crm = state.links.get(&identity).map(|link| link.crm);
                    let item = identity.storage_key();
                    conflict::log(
                        self.store,
                        self.report,
                        (ItemKind::Email, &identity, &item),
                        crm,
                        conflict,
                    );
                }
                Effect::MassDeleteHeld {
                    folder,
                    gone,
                    links,
                    seen_in,
                } => {
                    self.failed_folders.extend(seen_in);
                    self.report.fail(format!(
                        "folder {folder:?}: {gone} of its {links} tracked messages are gone or untracked in this pass: nothing was deleted or unlinked for them (if that was meant, run crmsync sync --accept-deletes)"
                    ));
                    self.failed_folders.insert(folder);
                }
                Effect::SuspiciousEmptyFolder { folder, links } => {
                    self.report.fail(format!(
                        "folder {folder:?} lists no message while {links} tracked messages were in it: nothing was changed for them (if it was emptied on purpose, run crmsync sync --accept-empty)"
                    ));
                    self.failed_folders.insert(folder);
                }
            }
        }
        match self.store_down.take() {
            Some(error) => Err(PassError::Store(StoreError::Unavailable(error))),
            None => Ok(()),
        }
    }

    /// One item failed on the IMAP side: counted, and its folder's markers are not saved. When
    /// the connection is gone the pass ends here.
    async fn imap_item_failed(
        &mut self,
        location: &ItemLocation,
        message: String,
    ) -> Result<(), PassError> {
        self.report.item_failed(location_text(location), message);
        self.failed_folders
            .insert(imap_location(location).0.to_owned());
        if self.mail.is_alive().await {
            Ok(())
        } else {
            Err(PassError::ConnectionLost)
        }
    }

    /// Tracks a run of messages: each is linked to the activity of its identity when one
    /// exists (one store read for the whole run), else fetched and parsed, and the new
    /// activities are stored in batches of up to [`TRACK_BATCH`] messages or
    /// [`TRACK_BATCH_BYTES`] of content, one transaction each (one commit, one fsync). Bodies
    /// come [`FETCH_BATCH`] to a command, and each lot is parsed on a blocking thread while
    /// the next one arrives. A batch the store refuses is stored again one message at a time,
    /// so a message that cannot be stored fails alone.
    async fn track_run(&mut self, run: Vec<Track>) -> Result<(), PassError> {
        let identities: Vec<(&str, &str)> = run
            .iter()
            .filter_map(|track| match &track.observed.identity {
                ItemIdentity::Email {
                    message_id,
                    content_hash,
                } => Some((message_id.as_str(), content_hash.as_str())),
                _ => None,
            })
            .collect();
        let known = match self.store.email_activities(&identities) {
            Ok(known) => known,
            Err(error) if error.is_unavailable() => return Err(PassError::Store(error)),
            Err(error) => {
                for track in &run {
                    let failure = TrackFailure::Other(format!("CRM store: {error}"));
                    self.settle(&track.observed, Err(failure))?;
                }
                return Ok(());
            }
        };
        let mut waiting = Vec::new();
        let mut linking = Vec::new();
        for track in run {
            match self.begin_track(track, &known)? {
                Begun::Waiting(pending) => waiting.push(pending),
                Begun::Linking(link) => linking.push(link),
                Begun::Settled => {}
            }
        }
        self.store_links(linking)?;
        self.learn_sizes(&mut waiting).await;
        let mut stored = Stored::default();
        let mut parsing: Option<Parsing> = None;
        for lot in self.fetch_lots(waiting) {
            let (folder, uids) = {
                let (folder, _) = imap_location(&lot[0].track.observed.location);
                let uids: Vec<u32> = lot
                    .iter()
                    .map(|pending| imap_location(&pending.track.observed.location).1)
                    .collect();
                (folder.to_owned(), uids)
            };
            let fetched = self.mail.fetch_messages(&folder, &uids).await;
            // The lot before this one was parsed meanwhile.
            if let Some(previous) = parsing.take() {
                self.take_parsed(previous, &mut stored).await?;
            }
            let several = lot.len() > 1;
            let lost = match fetched {
                Ok(messages) => {
                    let (lot, missing) = self.parse_lot(lot, messages);
                    parsing = Some(lot);
                    // The library takes a NO for the whole command as an empty answer: what
                    // is missing from a lot is asked for again, one message at a time.
                    if missing.is_empty() {
                        None
                    } else if several {
                        self.fetch_one_by_one(&folder, missing, &mut stored)
                            .await
                            .err()
                    } else {
                        self.bodies_missing(missing).await.err()
                    }
                }
                Err(_) if !self.mail.is_alive().await => Some(PassError::ConnectionLost),
                // One message may be what the server refuses: each on its own, so that only
                // that one fails.
                Err(error) if several => {
                    let bodies = lot.len();
                    tracing::debug!(%folder, "a fetch of {bodies} bodies failed ({error}): one at a time");
                    self.fetch_one_by_one(&folder, lot, &mut stored).await.err()
                }
                // A lot of one.
                Err(error) => self.fetch_failed(&lot[0], &error).await.err(),
            };
            if let Some(lost) = lost {
                // The connection is gone: what was fetched before is whole, and is stored
                // before the pass ends (or a flaky link would never let a large first import
                // get anywhere).
                self.store_batch(stored.batch)?;
                return Err(lost);
            }
        }
        if let Some(previous) = parsing.take() {
            self.take_parsed(previous, &mut stored).await?;
        }
        self.store_batch(stored.batch)
    }

    /// The messages of a lot whose fetch failed, fetched and parsed one at a time.
    async fn fetch_one_by_one(
        &mut self,
        folder: &str,
        lot: Vec<Pending>,
        stored: &mut Stored,
    ) -> Result<(), PassError> {
        for pending in lot {
            let uid = imap_location(&pending.track.observed.location).1;
            match self.mail.fetch_messages(folder, &[uid]).await {
                Ok(message) => {
                    let (parsing, missing) = self.parse_lot(vec![pending], message);
                    self.bodies_missing(missing).await?;
                    self.take_parsed(parsing, stored).await?;
                }
                Err(error) => self.fetch_failed(&pending, &error).await?,
            }
        }
        Ok(())
    }

    /// A message whose body could not be fetched fails alone; when the connection is gone the
    /// pass ends (the message named as the one it ended on).
    async fn fetch_failed(
        &mut self,
        pending: &Pending,
        error: &ImapError,
    ) -> Result<(), PassError> {
        let observed = &pending.track.observed;
        self.imap_item_failed(&observed.location, format!("fetching the message: {error}"))
            .await?;
        self.mark(&observed.location, &observed.keywords, Mark::Failed);
        Ok(())
    }

    /// Asks the server for the sizes a full scan left out (it does not fetch them: see
    /// `crmsync_imap::session`), one request per folder, for the messages waiting for their
    /// bodies only. A size still unknown afterwards (the request failed: the body fetch will
    /// say why) counts as `max_message_size` in [`Self::fetch_lots`].
    async fn learn_sizes(&mut self, waiting: &mut [Pending]) {
        let mut unknown: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for pending in waiting.iter() {
            let observed = &pending.track.observed;
            if observed.meta.size.is_none() {
                let (folder, uid) = imap_location(&observed.location);
                unknown.entry(folder.to_owned()).or_default().push(uid);
            }
        }
        for (folder, uids) in unknown {
            match self.mail.fetch_sizes(&folder, &uids).await {
                Ok(sizes) => {
                    for pending in waiting.iter_mut() {
                        let observed = &mut pending.track.observed;
                        let (at, uid) = imap_location(&observed.location);
                        if at == folder && observed.meta.size.is_none() {
                            observed.meta.size = sizes.get(&uid).copied();
                        }
                    }
                }
                Err(error) => tracing::debug!(
                    mailbox = %self.mailbox.id,
                    folder = %folder,
                    "the sizes of the messages to fetch: {error}"
                ),
            }
        }
    }

    /// The messages waiting for their bodies, in lots of one folder each, of at most
    /// [`FETCH_BATCH`] messages and [`FETCH_BATCH_BYTES`] by the sizes the scan gave (a
    /// message of unknown size counts as `max_message_size`).
    fn fetch_lots(&self, waiting: Vec<Pending>) -> Vec<Vec<Pending>> {
        let limit = self.max_message_size();
        let mut lots: Vec<Vec<Pending>> = Vec::new();
        let mut bytes = 0;
        for pending in waiting {
            let size = pending
                .track
                .observed
                .meta
                .size
                .map_or(limit, u64::from)
                .min(limit);
            let folder = imap_location(&pending.track.observed.location).0;
            let joins = lots.last().is_some_and(|lot| {
                lot.len() < FETCH_BATCH
                    && bytes + size <= FETCH_BATCH_BYTES
                    && imap_location(&lot[0].track.observed.location).0 == folder
            });
            if joins {
                bytes += size;
                lots.last_mut().expect("checked").push(pending);
            } else {
                bytes = size;
                lots.push(vec![pending]);
            }
        }
        lots
    }

    /// Hands a fetched lot to a blocking thread to parse; returns with it the messages the
    /// server sent no body for.
    fn parse_lot(
        &mut self,
        lot: Vec<Pending>,
        messages: Vec<(u32, FetchedMessage)>,
    ) -> (Parsing, Vec<Pending>) {
        let mut messages: HashMap<u32, FetchedMessage> = messages.into_iter().collect();
        let mut pendings = Vec::with_capacity(lot.len());
        let mut bodies = Vec::with_capacity(lot.len());
        let mut missing = Vec::new();
        for pending in lot {
            match messages.remove(&imap_location(&pending.track.observed.location).1) {
                Some(message) => {
                    bodies.push(message);
                    pendings.push(pending);
                }
                None => missing.push(pending),
            }
        }
        let task = tokio::task::spawn_blocking(move || {
            bodies
                .into_iter()
                .map(|fetched| {
                    // A message the parser panics on fails alone, not its whole lot.
                    let parsed = std::panic::catch_unwind(|| message::parse(&fetched.raw))
                        .unwrap_or_else(|_| {
                            Err(message::MalformedMessage(
                                "the message parser failed on it".into(),
                            ))
                        })
                        .map_err(|e| e.to_string());
                    (parsed, fetched.size, fetched.is_cut())
                })
                .collect()
        });
        (Parsing { pendings, task }, missing)
    }

    /// Messages the server sent no body for, asked for one at a time: deleted since the scan,
    /// or refused. Each fails alone; when the connection is gone the pass ends.
    async fn bodies_missing(&mut self, missing: Vec<Pending>) -> Result<(), PassError> {
        for pending in missing {
            let observed = &pending.track.observed;
            self.imap_item_failed(
                &observed.location,
                "fetching the message: the server sent no body for it (deleted meanwhile, or refused)"
                    .into(),
            )
            .await?;
            self.mark(&observed.location, &observed.keywords, Mark::Failed);
        }
        Ok(())
    }

    /// Turns a parsed lot into new activities for the batch, storing each batch as it fills.
    async fn take_parsed(
        &mut self,
        parsing: Parsing,
        stored: &mut Stored,
    ) -> Result<(), PassError> {
        let Parsing { pendings, task } = parsing;
        let parsed = match task.await {
            Ok(parsed) => parsed,
            Err(error) => {
                for pending in &pendings {
                    let failure = TrackFailure::Other(format!("parsing the message: {error}"));
                    self.settle(&pending.track.observed, Err(failure))?;
                }
                return Ok(());
            }
        };
        for (pending, (parsed, size, cut)) in pendings.into_iter().zip(parsed) {
            let Pending {
                track,
                link,
                regarding,
                mut warnings,
            } = pending;
            let mut parsed = match parsed {
                Ok(parsed) => parsed,
                Err(error) => {
                    self.settle(&track.observed, Err(TrackFailure::Other(error)))?;
                    continue;
                }
            };
            if cut {
                let note = self.cut_note(size);
                warnings.push(format!(
                    "{}: {note}",
                    location_text(&track.observed.location)
                ));
                keep_without_attachments(&mut parsed, &note);
            }
            let mut email = self.new_email(&track.observed, parsed, regarding, &mut warnings);
            email.automatic = track.automatic;
            stored.bytes += email_bytes(&email);
            stored.batch.rows.push((email, link));
            stored.batch.tracked.push((track.observed, warnings));
            if stored.batch.rows.len() >= TRACK_BATCH || stored.bytes >= TRACK_BATCH_BYTES {
                self.store_batch(std::mem::take(&mut stored.batch))?;
                stored.bytes = 0;
            }
        }
        Ok(())
    }

    /// Stores a batch of new activities in one transaction; on a refusal, one at a time.
    fn store_batch(&mut self, batch: Batch) -> Result<(), PassError> {
        let Batch { rows, tracked } = batch;
        if rows.is_empty() {
            return Ok(());
        }
        let stored = match self.store.track_emails(&rows) {
            Ok(stored) => stored,
            Err(error) if error.is_unavailable() => return Err(PassError::Store(error)),
            // One of them cannot be stored: each on its own, so only that one fails.
            Err(_) => {
                for ((observed, warnings), (email, link)) in tracked.into_iter().zip(&rows) {
                    let result = self.store.track_email(email, link);
                    self.settle_stored(&observed, link, warnings, result)?;
                }
                return Ok(());
            }
        };
        for (((observed, warnings), (_, link)), result) in
            tracked.into_iter().zip(&rows).zip(stored)
        {
            self.settle_stored(&observed, link, warnings, Ok(result))?;
        }
        Ok(())
    }

    /// Settles a message whose activity the store was asked to keep.
    fn settle_stored(
        &mut self,
        observed: &Observed,
        link: &SyncLink,
        mut warnings: Vec<String>,
        result: Result<(ActivityId, Option<String>), StoreError>,
    ) -> Result<(), PassError> {
        let outcome = match result {
            Ok((id, warning)) => {
                warnings.extend(warning);
                let created = link.crm == CrmRef::Activity(id);
                Ok((created, (!warnings.is_empty()).then(|| warnings.join("; "))))
            }
            Err(error) if error.is_unavailable() => Err(TrackFailure::Store(error)),
            Err(error) => Err(TrackFailure::Other(format!("CRM store: {error}"))),
        };
        self.settle(observed, outcome)
    }

    /// Counts and marks a message whose tracking ended (an IMAP failure is handled where it
    /// happens: it may end the pass).
    fn settle(
        &mut self,
        observed: &Observed,
        outcome: Result<(bool, Option<String>), TrackFailure>,
    ) -> Result<(), PassError> {
        match outcome {
            Ok((created, warning)) => {
                self.report.pending -= 1;
                self.mark(&observed.location, &observed.keywords, Mark::Synced);
                if created {
                    self.report.created += 1;
                } else {
                    self.report.linked += 1;
                }
                if let Some(warning) = warning {
                    self.report
                        .warn(format!("{}: {warning}", location_text(&observed.location)));
                }
                Ok(())
            }
            Err(TrackFailure::Store(error)) => Err(PassError::Store(error)),
            Err(TrackFailure::Other(message)) => {
                self.mark(&observed.location, &observed.keywords, Mark::Failed);
                self.report
                    .item_failed(location_text(&observed.location), message);
                self.failed_folders
                    .insert(imap_location(&observed.location).0.to_owned());
                Ok(())
            }
        }
    }

    /// The first step of tracking one message: linked to the activity of the same identity
    /// when the CRM holds one (the links of a run are stored together, [`Self::store_links`]),
    /// else waiting for its body.
    fn begin_track(
        &mut self,
        track: Track,
        known: &HashMap<(String, String), ActivityId>,
    ) -> Result<Begun, PassError> {
        let ItemIdentity::Email {
            message_id,
            content_hash,
        } = &track.observed.identity
        else {
            let failure = TrackFailure::Other("not an email identity".into());
            self.settle(&track.observed, Err(failure))?;
            return Ok(Begun::Settled);
        };
        let mut link = SyncLink {
            mailbox: self.mailbox.id.clone(),
            kind: ItemKind::Email,
            identity: track.observed.identity.clone(),
            location: track.observed.location.clone(),
            crm: CrmRef::Activity(ActivityId(uuid::Uuid::new_v4())),
            base: track.base.clone(),
            item_version: None,
            crm_version: None,
            created_by: ItemCreator::Mailbox,
            state: LinkState::Synced,
        };
        let (regarding, warning) = known_regarding(self.store, track.regarding.clone());
        if warning.is_some() {
            // The base records what both sides hold: the CRM holds no regarding record. The
            // keyword stays on the message untouched.
            link.base.set("regarding", "");
        }
        let key = (message_id.clone(), content_hash.as_str().to_owned());
        let Some(existing) = known.get(&key) else {
            return Ok(Begun::Waiting(Pending {
                track,
                link,
                regarding,
                warnings: warning.into_iter().collect(),
            }));
        };
        // Tracked in another mailbox already: one activity, one more link. A regarding
        // keyword here is this mailbox's change to the shared activity.
        link.crm = CrmRef::Activity(*existing);
        Ok(Begun::Linking(Linking {
            track,
            link,
            regarding,
            warning,
        }))
    }

    /// Stores the links of messages whose activity exists (another mailbox tracked them) in
    /// one transaction; on a refusal, one at a time, so only that one fails.
    fn store_links(&mut self, linking: Vec<Linking>) -> Result<(), PassError> {
        if linking.is_empty() {
            return Ok(());
        }
        let rows: Vec<(SyncLink, Option<Option<&RecordNumber>>)> = linking
            .iter()
            .map(|l| (l.link.clone(), l.regarding.as_ref().map(Some)))
            .collect();
        let stored: Vec<Result<Option<String>, StoreError>> = match self.store.update_links(&rows) {
            Ok(stored) => stored.into_iter().map(Ok).collect(),
            Err(error) if error.is_unavailable() => return Err(PassError::Store(error)),
            Err(_) => rows
                .iter()
                .map(|(link, change)| self.store.update_link(link, *change))
                .collect(),
        };
        for (one, result) in linking.iter().zip(stored) {
            let outcome = match result {
                Ok(_) => Ok((false, one.warning.clone())),
                Err(error) if error.is_unavailable() => Err(TrackFailure::Store(error)),
                Err(error) => Err(TrackFailure::Other(format!("CRM store: {error}"))),
            };
            self.settle(&one.track.observed, outcome)?;
        }
        Ok(())
    }

    /// The mailbox's `max_message_size`: a fetched message is cut there.
    fn max_message_size(&self) -> u64 {
        self.mailbox
            .imap
            .as_ref()
            .map_or(crmsync_config::DEFAULT_MESSAGE_SIZE, |imap| {
                imap.max_message_size
            })
    }

    /// The note a message larger than `max_message_size` is kept with.
    fn cut_note(&self, size: u64) -> String {
        let limit = self.max_message_size();
        format!(
            "the message is {}, more than max_message_size ({}): its attachments were not copied to the CRM",
            crmsync_config::size_words(size.div_ceil(100_000) * 100_000),
            crmsync_config::size_words(limit)
        )
    }

    fn new_email(
        &self,
        observed: &Observed,
        parsed: message::ParsedEmail,
        regarding: Option<RecordNumber>,
        warnings: &mut Vec<String>,
    ) -> NewEmail {
        let ItemIdentity::Email {
            message_id,
            content_hash,
        } = &observed.identity
        else {
            unreachable!("checked by the caller");
        };
        let owner = self.mailbox.owner.key();
        NewEmail {
            owner: self.mailbox.owner.clone(),
            mailbox: self.mailbox.id.clone(),
            parties: parties(&parsed, warnings),
            outgoing: parsed
                .from
                .iter()
                .any(|from| from.address.eq_ignore_ascii_case(&owner)),
            subject: parsed.subject,
            text_body: parsed.text_body,
            html_body: parsed.html_body,
            message_id: message_id.clone(),
            content_hash: content_hash.as_str().to_owned(),
            in_reply_to: parsed.in_reply_to,
            references: parsed.references,
            date: parsed.date,
            attachments: parsed
                .attachments
                .into_iter()
                .map(|a| NewAttachment {
                    name: a.name,
                    content_type: a.content_type,
                    content: a.content,
                })
                .collect(),
            regarding,
            automatic: false,
        }
    }

    /// The tracking keywords of the messages automatic tracking takes, written before
    /// anything else in one `UID STORE` per folder and keyword (a backfill with `all` takes
    /// thousands), so each still comes before its message's activity. Returns the other
    /// effects; a message whose keyword could not be written is not tracked in this pass.
    async fn write_automatic_keywords(
        &mut self,
        effects: Vec<Effect>,
        state: &mut Applying,
    ) -> Result<Vec<Effect>, PassError> {
        let automatic: HashSet<ItemIdentity> = effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Track {
                    observed,
                    automatic: true,
                    ..
                } => Some(observed.identity.clone()),
                _ => None,
            })
            .collect();
        if automatic.is_empty() {
            return Ok(effects);
        }
        // (folder, keywords) → the messages, by UID.
        let mut batches: BTreeMap<(String, Vec<String>), Vec<KeywordTarget>> = BTreeMap::new();
        let mut rest = Vec::with_capacity(effects.len());
        for effect in effects {
            match effect {
                Effect::WriteKeywords {
                    identity,
                    location,
                    add,
                    remove,
                } if remove.is_empty() && automatic.contains(&identity) => {
                    let (folder, uid) = imap_location(&location);
                    batches
                        .entry((folder.to_owned(), add))
                        .or_default()
                        .push((uid, identity, location));
                }
                other => rest.push(other),
            }
        }
        for ((folder, add), messages) in batches {
            let uids: Vec<u32> = messages.iter().map(|(uid, _, _)| *uid).collect();
            match self.mail.store_keywords(&folder, &uids, &add, &[]).await {
                Ok(()) => self.report.keywords_written += uids.len() as u64,
                Err(error) => {
                    for (_, identity, location) in messages {
                        state.failed.insert(identity);
                        self.imap_item_failed(&location, format!("writing keywords: {error}"))
                            .await?;
                    }
                }
            }
        }
        Ok(rest)
    }

    async fn write_keywords(
        &mut self,
        state: &mut Applying,
        identity: &ItemIdentity,
        location: &ItemLocation,
        (add, remove): (&[String], &[String]),
    ) -> Result<(), PassError> {
        let (folder, uid) = imap_location(location);
        match self.mail.store_keywords(folder, &[uid], add, remove).await {
            Ok(()) => {
                self.report.keywords_written += 1;
                Ok(())
            }
            Err(error) => {
                state.failed.insert(identity.clone());
                self.imap_item_failed(location, format!("writing keywords: {error}"))
                    .await
            }
        }
    }

    /// Records in the link that a keyword rewrite of two steps begins. If the store refuses,
    /// the rewrite does not run: a later pass could not tell crmsync's keyword from a person's.
    fn begin_rewrite(
        &mut self,
        state: &mut Applying,
        identity: &ItemIdentity,
        location: ItemLocation,
        base: Snapshot,
    ) {
        let Some(link) = state.links.get(identity) else {
            return;
        };
        let link = SyncLink {
            location,
            base,
            ..link.clone()
        };
        if let Err(error) = self.store.update_link(&link, None) {
            state.failed.insert(identity.clone());
            self.store_item_failed(&link.location, "recording the keyword rewrite", &error);
        }
    }

    /// One item failed on the store side: counted, and its folder's markers are not saved, so
    /// that the next pass sees the message again.
    fn store_item_failed(&mut self, location: &ItemLocation, what: &str, error: &StoreError) {
        if error.is_unavailable() && self.store_down.is_none() {
            self.store_down = Some(error.to_string());
        }
        self.report.item_failed(
            location_text(location),
            format!("{what}: CRM store: {error}"),
        );
        self.failed_folders
            .insert(imap_location(location).0.to_owned());
    }

    fn update_link(
        &mut self,
        state: &mut Applying,
        identity: &ItemIdentity,
        location: ItemLocation,
        base: Snapshot,
    ) {
        let Some(link) = state.links.get(identity) else {
            return;
        };
        let mut link = SyncLink {
            location,
            base,
            state: if state.crm_deleted.contains(identity) {
                LinkState::CrmDeleted
            } else {
                LinkState::Synced
            },
            ..link.clone()
        };
        let mut regarding = state.regarding.remove(identity);
        if let Some(wanted) = regarding.take() {
            let (known, warning) = known_regarding(self.store, wanted);
            if let Some(warning) = warning {
                self.report
                    .warn(format!("{}: {warning}", location_text(&link.location)));
                link.base.set("regarding", "");
            }
            regarding = Some(known);
        }
        match self
            .store
            .update_link(&link, regarding.as_ref().map(Option::as_ref))
        {
            Ok(warning) => {
                self.report.updated += 1;
                if let Some(warning) = warning {
                    self.report.warn(warning);
                }
            }
            Err(error) => self.store_item_failed(&link.location, "updating the link", &error),
        }
    }

    /// Whether the activity went.
    fn delete_activity(&mut self, state: &Applying, identity: &ItemIdentity) -> bool {
        let Some(link) = state.links.get(identity) else {
            return false;
        };
        match self.store.untrack_and_delete(link) {
            Ok(()) => {
                self.report.deleted += 1;
                true
            }
            Err(error) => {
                let location = link.location.clone();
                self.store_item_failed(&location, "deleting the activity", &error);
                false
            }
        }
    }

    /// The message is no longer tracked: its sync-state keywords go too.
    fn clear_mark(&mut self, observed: Option<&&Observed>) {
        if let Some(observed) = observed {
            self.mark(&observed.location, &observed.keywords, Mark::Cleared);
        }
    }

    /// Drops a link. One whose message was untracked, or whose activity the CRM deleted, also
    /// leaves a tombstone: automatic tracking never takes that message again.
    /// Whether the link went.
    fn drop_link(&mut self, state: &Applying, identity: &ItemIdentity, reason: DropReason) -> bool {
        let dropped = match reason {
            DropReason::Gone => self
                .store
                .delete_link(&self.mailbox.id, ItemKind::Email, identity),
            DropReason::UntrackedNotOwner | DropReason::CrmDeleted => {
                self.store.untrack_link(&self.mailbox.id, identity)
            }
        };
        match dropped {
            Ok(_) => {
                self.report.unlinked += 1;
                tracing::info!(mailbox = %self.mailbox.id, ?reason, "link dropped");
                true
            }
            Err(error) => {
                match state.links.get(identity) {
                    Some(link) => {
                        let location = link.location.clone();
                        self.store_item_failed(&location, "dropping the link", &error);
                    }
                    None => self.report.item_failed(
                        identity.storage_key(),
                        format!("dropping the link: CRM store: {error}"),
                    ),
                }
                false
            }
        }
    }
}

/// The message an effect is about, when it is about one.
fn effect_identity(effect: &Effect) -> Option<&ItemIdentity> {
    match effect {
        Effect::Track { observed, .. } => Some(&observed.identity),
        Effect::SetRegarding { identity, .. }
        | Effect::BeginRewrite { identity, .. }
        | Effect::WriteKeywords { identity, .. }
        | Effect::UpdateLink { identity, .. }
        | Effect::DeleteActivity { identity }
        | Effect::DropLink { identity, .. } => Some(identity),
        Effect::Conflict { .. }
        | Effect::SuspiciousEmptyFolder { .. }
        | Effect::MassDeleteHeld { .. } => None,
    }
}

/// A regarding number as the CRM can take it: `None` with a warning when no record has it.
fn known_regarding<S: CrmStore>(
    store: &S,
    number: Option<RecordNumber>,
) -> (Option<RecordNumber>, Option<String>) {
    match number {
        Some(number) => match store.record(&number) {
            Ok(_) => (Some(number), None),
            Err(StoreError::NotFound(_)) => (
                None,
                Some(format!(
                    "regarding record {number} does not exist; the activity has no regarding record"
                )),
            ),
            Err(error) => (None, Some(format!("regarding record {number}: {error}"))),
        },
        None => (None, None),
    }
}

fn parties(parsed: &message::ParsedEmail, warnings: &mut Vec<String>) -> Vec<NewParty> {
    let mut parties = Vec::new();
    let roles: [(PartyRole, &Vec<MessageAddress>); 4] = [
        (PartyRole::From, &parsed.from),
        (PartyRole::To, &parsed.to),
        (PartyRole::Cc, &parsed.cc),
        (PartyRole::Bcc, &parsed.bcc),
    ];
    for (role, addresses) in roles {
        for address in addresses {
            match EmailAddress::new(&address.address) {
                Ok(valid) => parties.push(NewParty {
                    role,
                    address: valid,
                    display_name: address.name.clone(),
                    group: address.group.clone(),
                }),
                Err(error) => warnings.push(format!("{role} party skipped: {error}")),
            }
        }
    }
    parties
}

/// A message of which only the first `max_message_size` bytes were fetched: its text as far as
/// it came, no attachments (the last of them is cut, the rest would be a partial list), and the
/// note at the end of the text.
fn keep_without_attachments(parsed: &mut message::ParsedEmail, note: &str) {
    parsed.attachments.clear();
    let note = format!("[crmsync: {note}.]");
    parsed.text_body = Some(match parsed.text_body.take() {
        Some(text) => format!("{}\n\n{note}", text.trim_end()),
        None => note,
    });
}
