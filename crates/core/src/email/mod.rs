//! Email reconciliation: for one pass over one mailbox, what to do about each message and each
//! sync link (SPEC sections 3, 5 and 6, for email).
//!
//! The adapter scans the folders and hands in a [`MailboxView`]: per folder, the UIDs present
//! and whether the scan completed; and every message that is new or changed since the last
//! pass, with its identity and keywords. It also hands in the links of the mailbox with the
//! state of each link's CRM row. [`reconcile`] returns the [`Effect`]s, which the adapter
//! applies in order.
//!
//! A link's base snapshot holds two fields: `regarding` (the record number both sides agreed
//! on) and `signal` (the keywords that made the message tracked, as the server spells them),
//! so that a message that did not change since the last pass is known without fetching it.
//!
//! `regarding.rs` merges a tracked message's regarding record and rewrites its keywords (new
//! keyword first, a half-done rewrite recognised); `automatic.rs` takes the messages the
//! automatic tracking policy decides for ([`crate::auto`]).

mod automatic;
mod regarding;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automatic::track_automatically;
pub use automatic::{AutoView, LOOP_LIMIT};
use regarding::RegardingMerge;

use crate::auto::MessageMeta;
use crate::item::{ItemIdentity, ItemLocation};
use crate::link::{LinkState, Snapshot, SyncLink};
use crate::merge::Conflict;
use crate::model::{ConflictPolicy, RecordNumber};

/// The tracking signals a mailbox is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingRules {
    /// The tracking keyword (`crm`), matched case-insensitively. `KEYWORD:NUMBER` sets the
    /// regarding record.
    pub keyword: String,
    /// Tracked folders and the record their messages regard.
    pub folders: BTreeMap<String, RecordNumber>,
}

/// What a message's folder and keywords say about tracking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signal {
    pub tracked: bool,
    /// From a `crm:NUMBER` keyword, else from the tracked folder.
    pub regarding: Option<RecordNumber>,
    /// Every record number of a `crm:NUMBER` keyword, once each, in keyword order. More than
    /// one is a rewrite cut short (crmsync adds the new keyword before it removes the old one)
    /// or a person who added a second keyword without removing the first.
    pub numbers: Vec<RecordNumber>,
    /// The keywords that carry the signal (`crm`, `crm:ACC-1001`), as spelled on the server.
    pub keywords: Vec<String>,
    /// `crm:...` keywords whose number is not a valid record number.
    pub invalid_keywords: Vec<String>,
}

impl TrackingRules {
    fn regarding_prefix(&self) -> String {
        format!("{}:", self.keyword.to_ascii_lowercase())
    }

    pub fn regarding_keyword(&self, number: &RecordNumber) -> String {
        format!("{}:{}", self.keyword, number)
    }

    /// The library request on a draft (`crm:template:NAME`, `crm:article:KB-1001`,
    /// `crm:literature:NAME`): its kind and name, when `keyword` is one.
    pub fn library_request(&self, keyword: &str) -> Option<(&'static str, String)> {
        let rest = keyword
            .get(..self.regarding_prefix().len())
            .filter(|head| head.eq_ignore_ascii_case(&self.regarding_prefix()))
            .map(|_| &keyword[self.regarding_prefix().len()..])?;
        LIBRARY_REQUESTS.iter().find_map(|kind| {
            let name = rest
                .get(..kind.len())
                .filter(|head| head.eq_ignore_ascii_case(kind))
                .and_then(|_| rest[kind.len()..].strip_prefix(':'))?;
            (!name.is_empty()).then(|| (*kind, name.to_owned()))
        })
    }

    pub fn signal(&self, folder: &str, keywords: &[String]) -> Signal {
        let prefix = self.regarding_prefix();
        let mut signal = Signal::default();
        for keyword in keywords {
            let lower = keyword.to_ascii_lowercase();
            if lower == self.keyword.to_ascii_lowercase() {
                signal.tracked = true;
                signal.keywords.push(keyword.clone());
            } else if let Some(number) = lower.strip_prefix(&prefix) {
                // `crm:template:NAME` and its kin ask for a draft to be composed: no tracking.
                if LIBRARY_REQUESTS.iter().any(|kind| {
                    number
                        .strip_prefix(kind)
                        .is_some_and(|rest| rest.starts_with(':'))
                }) {
                    continue;
                }
                signal.tracked = true;
                signal.keywords.push(keyword.clone());
                match RecordNumber::new(number) {
                    Ok(number) => {
                        if signal.regarding.is_none() {
                            signal.regarding = Some(number.clone());
                        }
                        if !signal.numbers.contains(&number) {
                            signal.numbers.push(number);
                        }
                    }
                    Err(_) => signal.invalid_keywords.push(keyword.clone()),
                }
            }
        }
        if let Some(number) = self.folders.get(folder) {
            signal.tracked = true;
            if signal.regarding.is_none() {
                signal.regarding = Some(number.clone());
            }
        }
        signal
    }

    /// The regarding record the mailbox side holds, given the link's base. With several
    /// `crm:NUMBER` keywords the one added since the base is the newer one: after a rewrite
    /// cut short between its two steps that is the CRM's new value, and after a person added a
    /// keyword without removing the old one it is their choice. With none added since, the
    /// base's record stands (a message tracked with two keywords from the start).
    fn mailbox_regarding(&self, signal: &Signal, base: &Snapshot) -> Option<RecordNumber> {
        let base_regarding = number(base.get(REGARDING));
        if signal.numbers.len() < 2 {
            return signal.regarding.clone();
        }
        let before = self.signal("", &base_keywords(base)).numbers;
        signal
            .numbers
            .iter()
            .find(|number| !before.contains(number))
            .or_else(|| {
                signal
                    .numbers
                    .iter()
                    .find(|number| Some(*number) == base_regarding.as_ref())
            })
            .or(signal.numbers.first())
            .cloned()
    }

    /// The keyword changes that leave `keywords` with at most one regarding keyword, for
    /// `wanted`. No keyword is added for the record a tracked `folder` implies, and the plain
    /// tracking keyword is added when nothing else would keep the message tracked. The new
    /// keyword is listed to be added before the old ones are removed, and the engine writes
    /// them in that order, so a rewrite cut short leaves the message tracked (with both
    /// keywords) and never untracked.
    fn rewrite_regarding(
        &self,
        keywords: &[String],
        wanted: Option<&RecordNumber>,
        folder: &str,
    ) -> (Vec<String>, Vec<String>) {
        let prefix = self.regarding_prefix();
        let number_of = |keyword: &str| {
            let lower = keyword.to_ascii_lowercase();
            lower
                .strip_prefix(&prefix)
                .map(|number| RecordNumber::new(number).ok())
        };
        let implied = self.folders.get(folder);
        let mut kept_wanted = false;
        let mut remove = Vec::new();
        for keyword in keywords {
            match number_of(keyword) {
                None => {}
                Some(Some(number)) if Some(&number) == wanted && !kept_wanted => kept_wanted = true,
                // Another record's keyword, or a malformed `crm:...`.
                Some(_) => remove.push(keyword.clone()),
            }
        }
        // A message the person tracked with a keyword stays tracked by a keyword (moved out of
        // a tracked folder later, it must still be tracked); one that only its tracked folder
        // tracks gets no keyword for the record the folder implies.
        let keyword_tracked = !keywords.is_empty();
        let left = keywords.len() - remove.len();
        let add = match wanted {
            Some(_) if kept_wanted => Vec::new(),
            Some(number) if keyword_tracked || Some(number) != implied => {
                vec![self.regarding_keyword(number)]
            }
            None if left == 0 && (keyword_tracked || implied.is_none()) => {
                vec![self.keyword.clone()]
            }
            _ => Vec::new(),
        };
        (add, remove)
    }
}

/// A message that is new or changed since the last pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub identity: ItemIdentity,
    pub location: ItemLocation,
    pub keywords: Vec<String>,
    /// What automatic tracking reads of it (its header; never its body).
    pub meta: MessageMeta,
}

impl Observed {
    fn folder(&self) -> &str {
        match &self.location {
            ItemLocation::Imap { folder, .. } => folder,
            ItemLocation::Collection { .. } => "",
        }
    }

    fn uid(&self) -> u32 {
        match &self.location {
            ItemLocation::Imap { uid, .. } => *uid,
            ItemLocation::Collection { .. } => 0,
        }
    }
}

/// One folder as this pass saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderView {
    pub folder: String,
    pub uid_validity: u32,
    pub present: Presence,
}

/// Which messages of a folder are there now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Every UID, as listed (`UID SEARCH ALL`).
    Listed(BTreeSet<u32>),
    /// The UIDs that vanished since the folder's saved markers (QRESYNC's `VANISHED
    /// (EARLIER)`, RFC 7162); every other UID a pass knows of is still there. `exists` is the
    /// number of messages in the folder.
    Vanished {
        vanished: BTreeSet<u32>,
        exists: u32,
    },
}

impl Presence {
    /// Whether the message with this UID is there (for a UID the pass knew of before).
    pub fn contains(&self, uid: u32) -> bool {
        match self {
            Presence::Listed(uids) => uids.contains(&uid),
            Presence::Vanished { vanished, .. } => !vanished.contains(&uid),
        }
    }

    /// Whether the folder holds no message at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Presence::Listed(uids) => uids.is_empty(),
            Presence::Vanished { exists, .. } => *exists == 0,
        }
    }

    /// The highest UID listed, when every UID was.
    pub fn last_listed(&self) -> Option<u32> {
        match self {
            Presence::Listed(uids) => uids.last().copied(),
            Presence::Vanished { .. } => None,
        }
    }
}

impl Default for Presence {
    fn default() -> Presence {
        Presence::Listed(BTreeSet::new())
    }
}

/// A mailbox as this pass saw it. Folders that could not be scanned are absent: links into
/// them are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxView {
    pub folders: Vec<FolderView>,
    pub changed: Vec<Observed>,
    /// An administrator confirmed that folders listing no message really are empty
    /// (`crmsync sync --accept-empty`); otherwise such a listing is not believed while links
    /// point into the folder.
    pub accept_empty: bool,
    /// An administrator confirmed that the messages gone in this pass really went
    /// (`crmsync sync --accept-deletes`): the mass-delete guard stands aside.
    pub accept_deletes: bool,
    /// Automatic tracking, when the mailbox has a policy other than `none`.
    pub auto: Option<AutoView>,
}

/// The CRM side of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmState {
    Present {
        regarding: Option<RecordNumber>,
        /// Whether the mailbox's owner owns the activity (and may delete it by untracking).
        owned_by_mailbox_owner: bool,
    },
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Track a message: link it to the activity of the same identity if one exists (tracked in
    /// another mailbox), else fetch it and create its activity. Activity and link in one
    /// transaction.
    Track {
        observed: Observed,
        regarding: Option<RecordNumber>,
        base: Snapshot,
        /// Taken by the automatic tracking policy, not by a person's signal (a never-list
        /// `--purge` deletes only such copies).
        automatic: bool,
    },
    /// Set the activity's regarding record (a mailbox-side change).
    SetRegarding {
        identity: ItemIdentity,
        regarding: Option<RecordNumber>,
    },
    /// Add and remove keywords of a message (a CRM-side change reaching the mailbox).
    WriteKeywords {
        identity: ItemIdentity,
        location: ItemLocation,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Record in the link that a keyword rewrite of two steps begins (its base carries the
    /// keyword being added), before the first step. When this fails, the rewrite must not run.
    BeginRewrite {
        identity: ItemIdentity,
        location: ItemLocation,
        base: Snapshot,
    },
    /// Save the link's new location and base.
    UpdateLink {
        identity: ItemIdentity,
        location: ItemLocation,
        base: Snapshot,
    },
    /// The owner untracked the message: drop the link, then delete the activity.
    DeleteActivity { identity: ItemIdentity },
    /// Drop only this mailbox's link; the activity stays.
    DropLink {
        identity: ItemIdentity,
        reason: DropReason,
    },
    /// A field changed on both sides; settled by the policy, to be logged.
    Conflict {
        identity: ItemIdentity,
        conflict: Conflict,
    },
    /// Folders whose listing came back empty while links point into them: nothing is done
    /// about those links, and the mailbox reports an error.
    SuspiciousEmptyFolder { folder: String, links: usize },
    /// More than half of a folder's links (and more than
    /// [`crate::collection::MASS_DELETE_MIN`]) would go in this pass (messages untracked or
    /// gone): none of them is carried out, and the mailbox reports an error until an
    /// administrator confirms (`--accept-deletes`).
    MassDeleteHeld {
        folder: String,
        gone: usize,
        links: usize,
        /// The folders where held messages were seen in this pass (moved there without
        /// their keyword, say): their markers must not be saved either, or the next pass
        /// would not see those messages again.
        seen_in: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The message is no longer in any watched folder (expunged, or moved out of sight).
    Gone,
    /// The signal was removed, and another user owns the activity.
    UntrackedNotOwner,
    /// The activity was deleted in the CRM and the tracking keywords are removed.
    CrmDeleted,
}

const REGARDING: &str = "regarding";
const SIGNAL: &str = "signal";

/// What a draft's keyword may ask crmsync to insert (`crm:template:NAME`...).
pub const LIBRARY_REQUESTS: [&str; 3] = ["template", "article", "literature"];
/// The regarding keyword crmsync is about to add in a rewrite of two steps (`+FLAGS` new,
/// then `-FLAGS` old), recorded in the link before the first step. A pass that finds it on
/// the message knows the keyword as crmsync's own write of the CRM's value, not a person's
/// edit, even when the rewrite was cut short and the link still holds the older base.
const WRITING: &str = "writing";

/// The base of the link of a message tracked with these keywords (its signal's) and regarding
/// record. Keywords are kept sorted: servers list flags in no fixed order.
pub fn base_for(regarding: Option<&RecordNumber>, keywords: &[String]) -> Snapshot {
    let mut keywords = keywords.to_vec();
    keywords.sort_unstable();
    keywords.dedup();
    let mut base = Snapshot::new();
    base.set(REGARDING, regarding.map_or("", RecordNumber::as_str));
    base.set(SIGNAL, &keywords.join(" "));
    base
}

fn base_keywords(base: &Snapshot) -> Vec<String> {
    base.get(SIGNAL)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn number(value: Option<&str>) -> Option<RecordNumber> {
    value.and_then(|v| RecordNumber::new(v).ok())
}

/// Where a link's message stands in this pass.
enum Seen<'a> {
    Changed(&'a Observed),
    Unchanged,
    Gone,
    Unknown,
}

/// What to do about every message that changed and every link of the mailbox.
pub fn reconcile(
    rules: &TrackingRules,
    policy: ConflictPolicy,
    view: &MailboxView,
    links: &[(SyncLink, CrmState)],
) -> Vec<Effect> {
    let mut effects = Vec::new();
    // The first observation of each identity; a second copy of the same message in this
    // mailbox is the same item and is not tracked twice.
    let mut by_identity: BTreeMap<&ItemIdentity, &Observed> = BTreeMap::new();
    for observed in &view.changed {
        by_identity.entry(&observed.identity).or_insert(observed);
    }
    let distrusted = distrusted_folders(view, links, &by_identity, &mut effects);
    track_new(rules, view, links, &by_identity, &mut effects);
    let folders: BTreeMap<&str, &FolderView> = view
        .folders
        .iter()
        .map(|f| (f.folder.as_str(), f))
        .collect();
    for (link, crm) in links {
        let seen = seen(link, &by_identity, &folders, &distrusted);
        reconcile_link(rules, policy, link, crm, seen, &mut effects);
    }
    if !view.accept_deletes {
        hold_mass_deletes(&by_identity, links, &mut effects);
    }
    effects
}

/// The message an effect of the mass-delete guard's kind is about: an untrack, or a message
/// gone.
fn gone_identity(effect: &Effect) -> Option<&ItemIdentity> {
    match effect {
        Effect::DeleteActivity { identity }
        | Effect::DropLink {
            identity,
            reason: DropReason::Gone | DropReason::UntrackedNotOwner,
        } => Some(identity),
        _ => None,
    }
}

/// The mass-delete guard, per folder: when more than half of a folder's links (and more than
/// [`crate::collection::MASS_DELETE_MIN`]) would go in one pass (untracked, or gone from
/// every watched folder), none of them goes; [`Effect::MassDeleteHeld`] says so. A message
/// the CRM deleted is not counted: that delete was made in the CRM.
fn hold_mass_deletes(
    by_identity: &BTreeMap<&ItemIdentity, &Observed>,
    links: &[(SyncLink, CrmState)],
    effects: &mut Vec<Effect>,
) {
    let folder_of: HashMap<&ItemIdentity, &str> = links
        .iter()
        .filter_map(|(link, _)| match &link.location {
            ItemLocation::Imap { folder, .. } => Some((&link.identity, folder.as_str())),
            _ => None,
        })
        .collect();
    let mut per_folder: BTreeMap<&str, usize> = BTreeMap::new();
    for folder in folder_of.values() {
        *per_folder.entry(folder).or_default() += 1;
    }
    let gone_from = |effect: &Effect| -> Option<&str> {
        gone_identity(effect).and_then(|identity| folder_of.get(identity).copied())
    };
    let mut gone: BTreeMap<&str, usize> = BTreeMap::new();
    for effect in effects.iter() {
        if let Some(folder) = gone_from(effect) {
            *gone.entry(folder).or_default() += 1;
        }
    }
    let held: BTreeMap<String, (usize, usize)> = gone
        .into_iter()
        .filter(|(folder, gone)| crate::collection::is_mass_delete(*gone, per_folder[folder]))
        .map(|(folder, gone)| (folder.to_owned(), (gone, per_folder[folder])))
        .collect();
    if held.is_empty() {
        return;
    }
    let mut seen_in: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for effect in effects.iter() {
        if let (Some(identity), Some(folder)) = (gone_identity(effect), gone_from(effect))
            && held.contains_key(folder)
            && let Some(observed) = by_identity.get(identity)
            && observed.folder() != folder
        {
            seen_in
                .entry(folder)
                .or_default()
                .insert(observed.folder().to_owned());
        }
    }
    let seen_in: BTreeMap<String, Vec<String>> = seen_in
        .into_iter()
        .map(|(folder, others)| (folder.to_owned(), others.into_iter().collect()))
        .collect();
    effects.retain(|effect| gone_from(effect).is_none_or(|folder| !held.contains_key(folder)));
    for (folder, (gone, links)) in held {
        effects.push(Effect::MassDeleteHeld {
            seen_in: seen_in.get(&folder).cloned().unwrap_or_default(),
            folder,
            gone,
            links,
        });
    }
}

/// A folder listed empty while links point into it is not believed, unless every one of those
/// messages was seen elsewhere in this pass (they were all moved out), or an administrator
/// said so.
fn distrusted_folders<'a>(
    view: &'a MailboxView,
    links: &[(SyncLink, CrmState)],
    by_identity: &BTreeMap<&ItemIdentity, &Observed>,
    effects: &mut Vec<Effect>,
) -> HashSet<&'a str> {
    let mut distrusted = HashSet::new();
    for folder in &view.folders {
        if !folder.present.is_empty() || view.accept_empty {
            continue;
        }
        let linked = links
            .iter()
            .filter(|(link, _)| {
                matches!(&link.location, ItemLocation::Imap { folder: f, .. } if *f == folder.folder)
                    && !by_identity.contains_key(&link.identity)
            })
            .count();
        if linked > 0 {
            distrusted.insert(folder.folder.as_str());
            effects.push(Effect::SuspiciousEmptyFolder {
                folder: folder.folder.clone(),
                links: linked,
            });
        }
    }
    distrusted
}

/// Messages with a tracking signal and no link: tracked; those without a signal, by the
/// mailbox's automatic tracking policy, if any.
fn track_new(
    rules: &TrackingRules,
    view: &MailboxView,
    links: &[(SyncLink, CrmState)],
    by_identity: &BTreeMap<&ItemIdentity, &Observed>,
    effects: &mut Vec<Effect>,
) {
    let linked: HashSet<&ItemIdentity> = links.iter().map(|(link, _)| &link.identity).collect();
    // Messages tracked in this pass are threads as much as mail tracked before: a reply that
    // arrives together with its thread (after a downtime, on a first scan) follows it.
    let mut auto = view.auto.clone();
    let mut unsignalled = Vec::new();
    for observed in by_identity.values() {
        if linked.contains(&observed.identity) {
            continue;
        }
        let signal = rules.signal(observed.folder(), &observed.keywords);
        if signal.tracked {
            track(rules, observed, &signal, effects);
            if let Some(auto) = &mut auto {
                auto.add_thread(observed, signal.regarding.clone());
            }
        } else {
            unsignalled.push(*observed);
        }
    }
    let Some(mut auto) = auto else {
        return;
    };
    // In the order the messages arrived, so a reply to a reply taken in this pass follows.
    unsignalled.sort_by(|a, b| (a.folder(), a.uid()).cmp(&(b.folder(), b.uid())));
    // The loop guard counts this pass's automatic tracks on top of the last hour's.
    let mut taken = auto.recent.clone();
    for observed in unsignalled {
        let key = AutoView::loop_key(&observed.meta);
        let count = key
            .as_ref()
            .and_then(|key| taken.get(key))
            .copied()
            .unwrap_or(0);
        if count >= LOOP_LIMIT {
            continue;
        }
        if let Some(regarding) = track_automatically(rules, &auto, observed, effects) {
            auto.add_thread(observed, regarding);
            if let Some(key) = key {
                *taken.entry(key).or_default() += 1;
            }
        }
    }
}

/// Tracks a message. One tracked with several regarding keywords keeps the first; the others
/// go.
fn track(rules: &TrackingRules, observed: &Observed, signal: &Signal, effects: &mut Vec<Effect>) {
    effects.push(Effect::Track {
        observed: observed.clone(),
        regarding: signal.regarding.clone(),
        base: base_for(signal.regarding.as_ref(), &signal.keywords),
        automatic: false,
    });
    if signal.numbers.len() > 1 {
        let (add, remove) = rules.rewrite_regarding(
            &signal.keywords,
            signal.regarding.as_ref(),
            observed.folder(),
        );
        effects.push(Effect::WriteKeywords {
            identity: observed.identity.clone(),
            location: observed.location.clone(),
            add,
            remove,
        });
    }
}

/// Whether some link's message is neither among the messages of the view nor where the link
/// says, in a folder scanned (moved, or its folder's UIDs renumbered). The adapter then reads
/// the headers a full scan withheld: only a header tells which message it is.
pub fn links_astray(view: &MailboxView, links: &[(SyncLink, CrmState)]) -> bool {
    let by_identity: BTreeMap<&ItemIdentity, &Observed> =
        view.changed.iter().map(|o| (&o.identity, o)).collect();
    let folders: BTreeMap<&str, &FolderView> = view
        .folders
        .iter()
        .map(|f| (f.folder.as_str(), f))
        .collect();
    let trusted = HashSet::new();
    links
        .iter()
        .any(|(link, _)| matches!(seen(link, &by_identity, &folders, &trusted), Seen::Gone))
}

/// Where a link's message stands: seen changed in this pass, still at its UID, gone from a
/// folder that was scanned, or unknown (its folder not scanned, or distrusted).
fn seen<'a>(
    link: &SyncLink,
    by_identity: &BTreeMap<&ItemIdentity, &'a Observed>,
    folders: &BTreeMap<&str, &FolderView>,
    distrusted: &HashSet<&str>,
) -> Seen<'a> {
    if let Some(observed) = by_identity.get(&link.identity) {
        return Seen::Changed(observed);
    }
    let ItemLocation::Imap {
        folder,
        uid_validity,
        uid,
    } = &link.location
    else {
        return Seen::Unknown;
    };
    match folders.get(folder.as_str()) {
        None => Seen::Unknown,
        Some(_) if distrusted.contains(folder.as_str()) => Seen::Unknown,
        Some(view) if view.uid_validity == *uid_validity && view.present.contains(*uid) => {
            Seen::Unchanged
        }
        Some(_) => Seen::Gone,
    }
}

fn reconcile_link(
    rules: &TrackingRules,
    policy: ConflictPolicy,
    link: &SyncLink,
    crm: &CrmState,
    seen: Seen<'_>,
    effects: &mut Vec<Effect>,
) {
    let Some((location, signal)) = link_signal(rules, link, crm, seen, effects) else {
        return;
    };
    if !signal.tracked {
        untracked(link, crm, effects);
        return;
    }
    match crm {
        CrmState::Deleted => deleted_in_crm(rules, link, location, &signal, effects),
        CrmState::Present { regarding, .. } => {
            let merge = RegardingMerge {
                rules,
                policy,
                link,
                location,
                signal: &signal,
                crm_regarding: regarding.as_ref(),
            };
            merge.effects(effects);
        }
    }
}

/// The message's location and signal in this pass (from the base when it did not change), or
/// `None` when the link is settled here: its message gone or unknown, or a tombstone tracked
/// anew.
fn link_signal(
    rules: &TrackingRules,
    link: &SyncLink,
    crm: &CrmState,
    seen: Seen<'_>,
    effects: &mut Vec<Effect>,
) -> Option<(ItemLocation, Signal)> {
    match seen {
        Seen::Unknown => None,
        Seen::Gone => {
            effects.push(Effect::DropLink {
                identity: link.identity.clone(),
                reason: DropReason::Gone,
            });
            None
        }
        Seen::Unchanged => {
            let regarding = number(link.base.get(REGARDING));
            let signal = Signal {
                tracked: true,
                numbers: regarding.iter().cloned().collect(),
                regarding,
                keywords: base_keywords(&link.base),
                invalid_keywords: Vec::new(),
            };
            Some((link.location.clone(), signal))
        }
        Seen::Changed(observed) => {
            let signal = rules.signal(observed.folder(), &observed.keywords);
            // A tombstone (deleted in the CRM, the message still in a tracked folder) whose
            // message the person gave a tracking keyword since: tracked anew, with a new
            // activity. The tombstone only keeps the folder from tracking it again.
            if *crm == CrmState::Deleted
                && link.base == base_for(None, &[])
                && !signal.keywords.is_empty()
            {
                track(rules, observed, &signal, effects);
                return None;
            }
            Some((observed.location.clone(), signal))
        }
    }
}

/// The signal is gone: the owner's untrack deletes the activity; anyone else's drops the link.
fn untracked(link: &SyncLink, crm: &CrmState, effects: &mut Vec<Effect>) {
    let identity = link.identity.clone();
    effects.push(match crm {
        CrmState::Present {
            owned_by_mailbox_owner: true,
            ..
        } => Effect::DeleteActivity { identity },
        CrmState::Present { .. } => Effect::DropLink {
            identity,
            reason: DropReason::UntrackedNotOwner,
        },
        CrmState::Deleted => Effect::DropLink {
            identity,
            reason: DropReason::CrmDeleted,
        },
    });
}

/// The activity was deleted in the CRM: the tracking keywords go, and the link too, except in
/// a tracked folder, where it stays as a tombstone so that the folder does not track the
/// message again while it sits there.
fn deleted_in_crm(
    rules: &TrackingRules,
    link: &SyncLink,
    location: ItemLocation,
    signal: &Signal,
    effects: &mut Vec<Effect>,
) {
    let identity = link.identity.clone();
    if !signal.keywords.is_empty() {
        effects.push(Effect::WriteKeywords {
            identity: identity.clone(),
            location: location.clone(),
            add: Vec::new(),
            remove: signal.keywords.clone(),
        });
    }
    let folder_tracked = matches!(&location, ItemLocation::Imap { folder, .. } if rules.folders.contains_key(folder));
    if !folder_tracked {
        effects.push(Effect::DropLink {
            identity,
            reason: DropReason::CrmDeleted,
        });
        return;
    }
    // The store marks a deleted row's links `crm-deleted` itself, so the state alone does not
    // say whether the tombstone's base was written yet.
    let tombstone = base_for(None, &[]);
    if link.state != LinkState::CrmDeleted || location != link.location || link.base != tombstone {
        effects.push(Effect::UpdateLink {
            identity,
            location,
            base: tombstone,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_keyword_asks_for_library_content_and_tracks_nothing() {
        let rules = TrackingRules {
            keyword: "crm".into(),
            folders: BTreeMap::new(),
        };
        assert_eq!(
            rules.library_request("crm:template:quote"),
            Some(("template", "quote".to_owned()))
        );
        assert_eq!(
            rules.library_request("CRM:Article:KB-1001"),
            Some(("article", "KB-1001".to_owned()))
        );
        assert_eq!(
            rules.library_request("crm:literature:brochure"),
            Some(("literature", "brochure".to_owned()))
        );
        for not_one in [
            "crm",
            "crm:ACC-1001",
            "crm:template:",
            "crm:templates:x",
            "other:template:x",
        ] {
            assert_eq!(rules.library_request(not_one), None, "{not_one}");
        }
        let keywords = vec!["crm:template:quote".to_owned(), "$Forwarded".to_owned()];
        let signal = rules.signal("Drafts", &keywords);
        assert!(!signal.tracked, "{signal:?}");
        assert!(signal.invalid_keywords.is_empty());
        let with_regarding = vec!["crm:template:quote".to_owned(), "crm:ACC-1001".to_owned()];
        let signal = rules.signal("Drafts", &with_regarding);
        assert!(signal.tracked);
        assert_eq!(signal.regarding.unwrap().as_str(), "ACC-1001");
    }
}
