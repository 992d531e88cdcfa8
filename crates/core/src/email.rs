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

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::item::{ItemIdentity, ItemLocation};
use crate::link::{LinkState, Snapshot, SyncLink};
use crate::merge::{self, Conflict};
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

    pub fn signal(&self, folder: &str, keywords: &[String]) -> Signal {
        let prefix = self.regarding_prefix();
        let mut signal = Signal::default();
        for keyword in keywords {
            let lower = keyword.to_ascii_lowercase();
            if lower == self.keyword.to_ascii_lowercase() {
                signal.tracked = true;
                signal.keywords.push(keyword.clone());
            } else if let Some(number) = lower.strip_prefix(&prefix) {
                signal.tracked = true;
                signal.keywords.push(keyword.clone());
                match RecordNumber::new(number) {
                    Ok(number) if signal.regarding.is_none() => signal.regarding = Some(number),
                    Ok(_) => {}
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
}

/// A message that is new or changed since the last pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub identity: ItemIdentity,
    pub location: ItemLocation,
    pub keywords: Vec<String>,
}

impl Observed {
    fn folder(&self) -> &str {
        match &self.location {
            ItemLocation::Imap { folder, .. } => folder,
            ItemLocation::Collection { .. } => "",
        }
    }
}

/// One folder as this pass saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderView {
    pub folder: String,
    pub uid_validity: u32,
    pub present: BTreeSet<u32>,
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
    },
    /// Set the activity's regarding record (a mailbox-side change).
    SetRegarding {
        identity: ItemIdentity,
        regarding: Option<RecordNumber>,
    },
    /// Add and remove keywords of a message (a CRM-side change reaching the mailbox).
    WriteKeywords {
        location: ItemLocation,
        add: Vec<String>,
        remove: Vec<String>,
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

/// The base of a link. Keywords are kept sorted: servers list flags in no fixed order.
fn base_for(regarding: Option<&RecordNumber>, keywords: &[String]) -> Snapshot {
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

pub fn reconcile(
    rules: &TrackingRules,
    policy: ConflictPolicy,
    view: &MailboxView,
    links: &[(SyncLink, CrmState)],
) -> Vec<Effect> {
    let mut effects = Vec::new();
    let folders: BTreeMap<&str, &FolderView> = view
        .folders
        .iter()
        .map(|f| (f.folder.as_str(), f))
        .collect();

    // The first observation of each identity; a second copy of the same message in this
    // mailbox is the same item and is not tracked twice.
    let mut by_identity: BTreeMap<&ItemIdentity, &Observed> = BTreeMap::new();
    for observed in &view.changed {
        by_identity.entry(&observed.identity).or_insert(observed);
    }

    // A folder listed empty while links point into it is not believed, unless every one of
    // those messages was seen elsewhere in this pass (they were all moved out).
    let mut distrusted: HashSet<&str> = HashSet::new();
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

    let linked: HashSet<&ItemIdentity> = links.iter().map(|(link, _)| &link.identity).collect();
    for observed in by_identity.values() {
        if linked.contains(&observed.identity) {
            continue;
        }
        let signal = rules.signal(observed.folder(), &observed.keywords);
        if signal.tracked {
            effects.push(Effect::Track {
                observed: (*observed).clone(),
                regarding: signal.regarding.clone(),
                base: base_for(signal.regarding.as_ref(), &signal.keywords),
            });
        }
    }

    for (link, crm) in links {
        let seen = match by_identity.get(&link.identity) {
            Some(observed) => Seen::Changed(observed),
            None => match &link.location {
                ItemLocation::Imap {
                    folder,
                    uid_validity,
                    uid,
                } => match folders.get(folder.as_str()) {
                    None => Seen::Unknown,
                    Some(_) if distrusted.contains(folder.as_str()) => Seen::Unknown,
                    Some(view)
                        if view.uid_validity == *uid_validity && view.present.contains(uid) =>
                    {
                        Seen::Unchanged
                    }
                    Some(_) => Seen::Gone,
                },
                ItemLocation::Collection { .. } => Seen::Unknown,
            },
        };
        reconcile_link(rules, policy, link, crm, seen, &mut effects);
    }
    effects
}

fn reconcile_link(
    rules: &TrackingRules,
    policy: ConflictPolicy,
    link: &SyncLink,
    crm: &CrmState,
    seen: Seen<'_>,
    effects: &mut Vec<Effect>,
) {
    let identity = link.identity.clone();
    let (location, signal) = match seen {
        Seen::Unknown => return,
        Seen::Gone => {
            effects.push(Effect::DropLink {
                identity,
                reason: DropReason::Gone,
            });
            return;
        }
        Seen::Unchanged => {
            let keywords = base_keywords(&link.base);
            let signal = Signal {
                tracked: true,
                regarding: number(link.base.get(REGARDING)),
                keywords,
                invalid_keywords: Vec::new(),
            };
            (link.location.clone(), signal)
        }
        Seen::Changed(observed) => (
            observed.location.clone(),
            rules.signal(observed.folder(), &observed.keywords),
        ),
    };

    if !signal.tracked {
        match crm {
            CrmState::Present {
                owned_by_mailbox_owner: true,
                ..
            } => effects.push(Effect::DeleteActivity { identity }),
            CrmState::Present { .. } => effects.push(Effect::DropLink {
                identity,
                reason: DropReason::UntrackedNotOwner,
            }),
            CrmState::Deleted => effects.push(Effect::DropLink {
                identity,
                reason: DropReason::CrmDeleted,
            }),
        }
        return;
    }

    let crm_regarding = match crm {
        CrmState::Deleted => {
            if !signal.keywords.is_empty() {
                effects.push(Effect::WriteKeywords {
                    location: location.clone(),
                    add: Vec::new(),
                    remove: signal.keywords.clone(),
                });
            }
            let folder_tracked = matches!(&location, ItemLocation::Imap { folder, .. } if rules.folders.contains_key(folder));
            if folder_tracked {
                // The message stays in a tracked folder: keep the link as a tombstone, so the
                // message is not tracked again while it sits there.
                if link.state != LinkState::CrmDeleted || location != link.location {
                    effects.push(Effect::UpdateLink {
                        identity,
                        location,
                        base: base_for(None, &[]),
                    });
                }
            } else {
                effects.push(Effect::DropLink {
                    identity,
                    reason: DropReason::CrmDeleted,
                });
            }
            return;
        }
        CrmState::Present { regarding, .. } => regarding.clone(),
    };

    let single = |value: Option<&RecordNumber>| {
        Snapshot::new().with(REGARDING, value.map_or("", RecordNumber::as_str))
    };
    let outcome = merge::three_way(
        &single(number(link.base.get(REGARDING)).as_ref()),
        &single(signal.regarding.as_ref()),
        &single(crm_regarding.as_ref()),
        policy,
    );
    let merged = number(outcome.merged.get(REGARDING));
    for conflict in outcome.conflicts {
        effects.push(Effect::Conflict {
            identity: identity.clone(),
            conflict,
        });
    }
    if !outcome.crm_writes.is_empty() {
        effects.push(Effect::SetRegarding {
            identity: identity.clone(),
            regarding: merged.clone(),
        });
    }
    let mut keywords = signal.keywords.clone();
    if !outcome.mailbox_writes.is_empty() {
        // Replace the regarding keywords with the merged one; keep the plain tracking keyword
        // (or add it, so the message stays tracked without a regarding keyword).
        let prefix = rules.regarding_prefix();
        let remove: Vec<String> = keywords
            .iter()
            .filter(|k| k.to_ascii_lowercase().starts_with(&prefix))
            .cloned()
            .collect();
        keywords.retain(|k| !remove.contains(k));
        let mut add = Vec::new();
        match &merged {
            Some(number) => add.push(rules.regarding_keyword(number)),
            None if keywords.is_empty() => add.push(rules.keyword.clone()),
            None => {}
        }
        keywords.extend(add.iter().cloned());
        effects.push(Effect::WriteKeywords {
            location: location.clone(),
            add,
            remove,
        });
    }
    let base = base_for(merged.as_ref(), &keywords);
    if base != link.base || location != link.location || link.state != LinkState::Synced {
        effects.push(Effect::UpdateLink {
            identity,
            location,
            base,
        });
    }
}
