//! The email reconciler, as scenarios and as a model checked against random histories.
//!
//! The model plays both sides: a mailbox of messages (folder, keywords) and a CRM of activities
//! (regarding), with the sync links between them, and applies the reconciler's effects the way
//! the engine does, each effect on its own (so a crash can fall between any two). Random
//! histories of tracking, untracking, moving, expunging, CRM-side deletes and regarding changes
//! on both sides, with passes and crashes in between, must end, after two clean passes, in a
//! state where every tracked message has exactly one activity, both sides agree, nothing is
//! duplicated, and a further pass does nothing.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_core::email::{
    CrmState, Effect, FolderView, MailboxView, Observed, Presence, TrackingRules, links_astray,
    reconcile,
};
use crmsync_core::item::{ContentHash, ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, SyncLink};
use crmsync_core::model::{ActivityId, ConflictPolicy, RecordNumber};
use proptest::prelude::*;

const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Clients"];

fn rules() -> TrackingRules {
    TrackingRules {
        keyword: "crm".into(),
        folders: [("Clients".to_owned(), RecordNumber::new("ACC-1").unwrap())].into(),
    }
}

fn identity(n: u8) -> ItemIdentity {
    ItemIdentity::Email {
        message_id: format!("m{n}@example.com"),
        content_hash: ContentHash::new("abcd").unwrap(),
    }
}

fn number_of(identity: &ItemIdentity) -> u8 {
    match identity {
        ItemIdentity::Email { message_id, .. } => message_id[1..message_id.find('@').unwrap()]
            .parse()
            .unwrap(),
        _ => unreachable!(),
    }
}

#[derive(Debug, Clone)]
struct Message {
    folder: &'static str,
    uid: u32,
    keywords: BTreeSet<String>,
    /// Changed since the last completed pass (what the engine's CHANGEDSINCE returns).
    dirty: bool,
}

#[derive(Debug, Clone)]
struct World {
    messages: BTreeMap<u8, Message>,
    /// Activities by message number: their regarding record.
    activities: BTreeMap<u8, Option<String>>,
    links: BTreeMap<u8, SyncLink>,
    next_uid: u32,
    /// Track effects for a message that already had a link, or two in one pass: duplicates.
    duplicate_tracks: u32,
    /// Messages whose keywords the engine wrote during the current pass.
    written: Vec<u8>,
    /// Whether passes believe empty folder listings (`sync --accept-empty`).
    accept_empty: bool,
    /// Messages the person untracked (or moved, which may untrack a folder-tracked one) since
    /// they last tracked them: the only messages whose activity a pass may delete.
    untracked_by_person: BTreeSet<u8>,
    /// Activities deleted although the person never untracked their message: losses.
    lost_activities: u32,
}

#[derive(Debug, Clone)]
enum Step {
    Deliver(u8, &'static str, bool),
    Track(u8),
    Untrack(u8),
    SetRegardingKeyword(u8, &'static str),
    /// A second regarding keyword added without removing the first.
    AddRegardingKeyword(u8, &'static str),
    Move(u8, &'static str),
    Expunge(u8),
    CrmDelete(u8),
    CrmRegarding(u8, Option<&'static str>),
    Sync,
    CrashingSync(usize),
}

impl World {
    fn new() -> World {
        World {
            messages: BTreeMap::new(),
            activities: BTreeMap::new(),
            links: BTreeMap::new(),
            next_uid: 1,
            duplicate_tracks: 0,
            written: Vec::new(),
            accept_empty: false,
            untracked_by_person: BTreeSet::new(),
            lost_activities: 0,
        }
    }

    fn location(message: &Message) -> ItemLocation {
        ItemLocation::Imap {
            folder: message.folder.into(),
            uid_validity: 1,
            uid: message.uid,
        }
    }

    fn view(&self) -> MailboxView {
        let folders = FOLDERS
            .iter()
            .map(|folder| FolderView {
                folder: (*folder).into(),
                uid_validity: 1,
                present: Presence::Listed(
                    self.messages
                        .values()
                        .filter(|m| m.folder == *folder)
                        .map(|m| m.uid)
                        .collect(),
                ),
            })
            .collect();
        let changed = self
            .messages
            .iter()
            .filter(|(_, m)| m.dirty)
            .map(|(n, m)| Observed {
                identity: identity(*n),
                location: World::location(m),
                keywords: m.keywords.iter().cloned().collect(),
                meta: Default::default(),
            })
            .collect();
        MailboxView {
            folders,
            changed,
            accept_empty: self.accept_empty,
            // The model's histories delete as many messages at once as they like; the
            // mass-delete guard has its own tests.
            accept_deletes: true,
            auto: None,
        }
    }

    fn links_with_crm(&self) -> Vec<(SyncLink, CrmState)> {
        self.links
            .iter()
            .map(|(n, link)| {
                let crm = match self.activities.get(n) {
                    Some(regarding) => CrmState::Present {
                        regarding: regarding.as_deref().map(|r| RecordNumber::new(r).unwrap()),
                        owned_by_mailbox_owner: true,
                    },
                    None => CrmState::Deleted,
                };
                (link.clone(), crm)
            })
            .collect()
    }

    fn effects(&self, policy: ConflictPolicy) -> Vec<Effect> {
        reconcile(&rules(), policy, &self.view(), &self.links_with_crm())
    }

    /// One pass; `crash_after` stops after that many writes, as a kill would. A keyword
    /// rewrite is two writes, as the engine sends it: the new keywords first (`+FLAGS`), then
    /// the old ones away (`-FLAGS`), so a crash can fall between the two.
    fn pass(&mut self, crash_after: Option<usize>) {
        let effects = self.effects(ConflictPolicy::MailboxWins);
        let mut pending: BTreeMap<u8, Option<RecordNumber>> = BTreeMap::new();
        let mut writes = 0;
        for effect in effects {
            let halves = match effect {
                Effect::WriteKeywords {
                    identity,
                    location,
                    add,
                    remove,
                } => vec![
                    Effect::WriteKeywords {
                        identity: identity.clone(),
                        location: location.clone(),
                        add,
                        remove: Vec::new(),
                    },
                    Effect::WriteKeywords {
                        identity,
                        location,
                        add: Vec::new(),
                        remove,
                    },
                ],
                other => vec![other],
            };
            for write in halves {
                if crash_after == Some(writes) {
                    self.after_pass(false);
                    return;
                }
                writes += 1;
                self.apply(write, &mut pending);
            }
        }
        self.after_pass(true);
    }

    fn after_pass(&mut self, completed: bool) {
        if completed {
            // A completed pass saves the folder markers: what it saw is no longer "changed".
            for message in self.messages.values_mut() {
                message.dirty = false;
            }
        }
        // The engine's own keyword writes bump the mod-sequences after the markers were
        // read, so the next pass sees those messages again.
        for n in std::mem::take(&mut self.written) {
            if let Some(message) = self.messages.get_mut(&n) {
                message.dirty = true;
            }
        }
    }

    // Long on purpose: one arm per kind of effect.
    fn apply(&mut self, effect: Effect, pending: &mut BTreeMap<u8, Option<RecordNumber>>) {
        match effect {
            Effect::Track {
                observed,
                regarding,
                base,
                ..
            } => {
                let n = number_of(&observed.identity);
                // Tracking again over a tombstone (the person re-tracked a message whose
                // activity the CRM deleted) replaces it; any other linked message is a duplicate.
                let tombstone = self.links.get(&n).is_some_and(|link| {
                    link.state == LinkState::CrmDeleted && !self.activities.contains_key(&n)
                });
                if self.links.contains_key(&n) && !tombstone {
                    self.duplicate_tracks += 1;
                }
                // As the engine does: an activity with this identity (tracked before, its link
                // since dropped) is linked to, and the keyword's regarding, if any, set on it;
                // otherwise the activity is created. Either with its link in one transaction.
                match self.activities.get_mut(&n) {
                    Some(existing) => {
                        if let Some(regarding) = regarding {
                            *existing = Some(regarding.to_string());
                        }
                    }
                    None => {
                        self.activities.insert(n, regarding.map(|r| r.to_string()));
                    }
                }
                self.links.insert(
                    n,
                    SyncLink {
                        mailbox: "alice".into(),
                        kind: ItemKind::Email,
                        identity: observed.identity,
                        location: observed.location,
                        crm: CrmRef::Activity(ActivityId(uuid::Uuid::from_u128(n.into()))),
                        base,
                        item_version: None,
                        crm_version: None,
                        created_by: ItemCreator::Mailbox,
                        state: LinkState::Synced,
                    },
                );
            }
            Effect::SetRegarding {
                identity,
                regarding,
            } => {
                pending.insert(number_of(&identity), regarding);
            }
            Effect::WriteKeywords {
                location,
                add,
                remove,
                ..
            } => {
                let ItemLocation::Imap { uid, .. } = location else {
                    unreachable!()
                };
                if let Some((n, message)) = self.messages.iter_mut().find(|(_, m)| m.uid == uid) {
                    message.keywords.extend(add);
                    for keyword in remove {
                        message.keywords.remove(&keyword);
                    }
                    self.written.push(*n);
                }
            }
            Effect::BeginRewrite { identity, base, .. } => {
                if let Some(link) = self.links.get_mut(&number_of(&identity)) {
                    link.base = base;
                }
            }
            Effect::UpdateLink {
                identity,
                location,
                base,
            } => {
                let n = number_of(&identity);
                // The regarding change and the link in one transaction.
                if let Some(regarding) = pending.remove(&n)
                    && let Some(activity) = self.activities.get_mut(&n)
                {
                    *activity = regarding.map(|r| r.to_string());
                }
                let deleted = !self.activities.contains_key(&n);
                if let Some(link) = self.links.get_mut(&n) {
                    link.location = location;
                    link.base = base;
                    link.state = if deleted {
                        LinkState::CrmDeleted
                    } else {
                        LinkState::Synced
                    };
                }
            }
            Effect::DeleteActivity { identity } => {
                let n = number_of(&identity);
                if !self.untracked_by_person.contains(&n) {
                    self.lost_activities += 1;
                }
                self.links.remove(&n);
                self.activities.remove(&n);
            }
            Effect::DropLink { identity, .. } => {
                self.links.remove(&number_of(&identity));
            }
            Effect::Conflict { .. }
            | Effect::SuspiciousEmptyFolder { .. }
            | Effect::MassDeleteHeld { .. } => {}
        }
    }

    fn edit(&mut self, n: u8, change: impl FnOnce(&mut Message)) {
        if let Some(message) = self.messages.get_mut(&n) {
            change(message);
            message.dirty = true;
        }
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Deliver(n, folder, tracked) => {
                if !self.messages.contains_key(n) {
                    // A copy of an expunged message delivered again without the keyword is
                    // the mailbox saying "untracked", as a person removing the keyword would.
                    if *tracked {
                        self.untracked_by_person.remove(n);
                    } else {
                        self.untracked_by_person.insert(*n);
                    }
                    let keywords = if *tracked {
                        ["crm".to_owned()].into()
                    } else {
                        BTreeSet::new()
                    };
                    let uid = self.next_uid;
                    self.next_uid += 1;
                    self.messages.insert(
                        *n,
                        Message {
                            folder,
                            uid,
                            keywords,
                            dirty: true,
                        },
                    );
                }
            }
            Step::Track(n) => {
                self.untracked_by_person.remove(n);
                self.edit(*n, |m| {
                    m.keywords.insert("crm".into());
                })
            }
            Step::Untrack(n) => {
                self.untracked_by_person.insert(*n);
                self.edit(*n, |m| m.keywords.retain(|k| !k.starts_with("crm")))
            }
            Step::SetRegardingKeyword(n, number) => {
                self.untracked_by_person.remove(n);
                self.edit(*n, |m| {
                    m.keywords.retain(|k| !k.starts_with("crm:"));
                    m.keywords.insert(format!("crm:{number}"));
                })
            }
            Step::AddRegardingKeyword(n, number) => {
                self.untracked_by_person.remove(n);
                self.edit(*n, |m| {
                    m.keywords.insert(format!("crm:{number}"));
                })
            }
            Step::Move(n, folder) => {
                // Moving out of a tracked folder untracks a message with no keyword.
                self.untracked_by_person.insert(*n);
                let uid = self.next_uid;
                if let Some(message) = self.messages.get_mut(n) {
                    message.folder = folder;
                    message.uid = uid;
                    message.dirty = true;
                    self.next_uid += 1;
                }
            }
            Step::Expunge(n) => {
                self.messages.remove(n);
            }
            Step::CrmDelete(n) => {
                self.activities.remove(n);
            }
            Step::CrmRegarding(n, number) => {
                if let Some(activity) = self.activities.get_mut(n) {
                    *activity = number.map(str::to_owned);
                }
            }
            Step::Sync => self.pass(None),
            Step::CrashingSync(after) => self.pass(Some(*after)),
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    let message = 0u8..4;
    let folder = prop::sample::select(FOLDERS.to_vec());
    let number = prop::sample::select(vec!["ACC-1", "ACC-2", "CON-7"]);
    prop_oneof![
        (message.clone(), folder.clone(), any::<bool>())
            .prop_map(|(n, f, t)| Step::Deliver(n, f, t)),
        message.clone().prop_map(Step::Track),
        message.clone().prop_map(Step::Untrack),
        (message.clone(), number.clone()).prop_map(|(n, r)| Step::SetRegardingKeyword(n, r)),
        (message.clone(), number.clone()).prop_map(|(n, r)| Step::AddRegardingKeyword(n, r)),
        (message.clone(), folder).prop_map(|(n, f)| Step::Move(n, f)),
        message.clone().prop_map(Step::Expunge),
        message.clone().prop_map(Step::CrmDelete),
        (message, prop::option::of(number)).prop_map(|(n, r)| Step::CrmRegarding(n, r)),
        Just(Step::Sync),
        (0usize..8).prop_map(Step::CrashingSync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn histories_converge_without_duplicates(steps in prop::collection::vec(step(), 1..30)) {
        let mut world = World::new();
        for step in &steps {
            world.run(step);
        }
        world.pass(None);
        world.pass(None);
        // Links into folders that list empty are kept, and the pass says why, until an
        // administrator accepts the empty listing.
        prop_assert_eq!(world.duplicate_tracks, 0, "a message was tracked twice");
        prop_assert_eq!(world.lost_activities, 0, "an activity was deleted that nobody untracked");
        let effects = world.effects(ConflictPolicy::MailboxWins);
        prop_assert!(
            effects.iter().all(|e| matches!(e, Effect::SuspiciousEmptyFolder { .. })),
            "a further pass is not idle: {:?}\n{:#?}", effects, world
        );
        for link in world.links.values() {
            let ItemLocation::Imap { folder, .. } = &link.location else { unreachable!() };
            let folder_empty = !world.messages.values().any(|m| m.folder == folder);
            let message_present = world.messages.contains_key(&number_of(&link.identity));
            prop_assert!(message_present || folder_empty, "a link outlived its message: {:#?}", world);
        }
        world.accept_empty = true;
        world.pass(None);
        world.pass(None);
        let effects = world.effects(ConflictPolicy::MailboxWins);
        prop_assert!(effects.is_empty(), "a further pass is not idle: {:?}\n{:#?}", effects, world);

        let rules = rules();
        for (n, message) in &world.messages {
            let keywords: Vec<String> = message.keywords.iter().cloned().collect();
            let signal = rules.signal(message.folder, &keywords);
            match (world.links.get(n), world.activities.get(n)) {
                (Some(link), Some(regarding)) => {
                    prop_assert!(signal.tracked, "message {} is untracked but linked", n);
                    prop_assert_eq!(&link.location, &World::location(message));
                    let mailbox_regarding = signal.regarding.map(|r| r.to_string());
                    prop_assert_eq!(regarding, &mailbox_regarding, "the sides disagree on {}", n);
                    prop_assert!(signal.numbers.len() <= 1, "message {} keeps two regarding keywords", n);
                }
                (Some(link), None) => {
                    // A tombstone: deleted in the CRM while the message sits in a tracked
                    // folder; its keywords are gone and it is not tracked again.
                    prop_assert_eq!(link.state, LinkState::CrmDeleted);
                    prop_assert!(rules.folders.contains_key(message.folder));
                    prop_assert!(signal.keywords.is_empty(), "{:?}", signal);
                }
                (None, _) => prop_assert!(
                    !signal.tracked,
                    "message {} is tracked but not linked: {:#?}", n, world
                ),
            }
        }
        for n in world.links.keys() {
            prop_assert!(world.messages.contains_key(n), "a link outlived message {}", n);
        }
    }
}

#[test]
fn a_crm_regarding_change_rewrites_only_the_regarding_keyword() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", true));
    world.run(&Step::SetRegardingKeyword(1, "ACC-1"));
    world.pass(None);
    world.run(&Step::CrmRegarding(1, Some("ACC-2")));
    let effects = world.effects(ConflictPolicy::MailboxWins);
    let writes: Vec<&Effect> = effects
        .iter()
        .filter(|e| matches!(e, Effect::WriteKeywords { .. }))
        .collect();
    assert_eq!(writes.len(), 1, "{effects:?}");
    let Effect::WriteKeywords { add, remove, .. } = writes[0] else {
        unreachable!()
    };
    assert_eq!(add, &["crm:ACC-2".to_owned()]);
    assert_eq!(remove, &["crm:ACC-1".to_owned()]);
}

#[test]
fn a_keyword_rewrite_cut_between_its_two_stores_loses_nothing() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", false));
    world.run(&Step::SetRegardingKeyword(1, "ACC-1"));
    world.pass(None);
    world.run(&Step::CrmRegarding(1, Some("ACC-2")));
    // Killed after `+FLAGS (crm:ACC-2)`, before `-FLAGS (crm:ACC-1)` (the first write records
    // the rewrite in the link).
    world.pass(Some(2));
    let keywords =
        |world: &World| -> Vec<String> { world.messages[&1].keywords.iter().cloned().collect() };
    assert_eq!(keywords(&world), ["crm:ACC-1", "crm:ACC-2"]);
    // The next pass recognises the half-done rewrite: the CRM's value stays, the old keyword goes.
    let effects = world.effects(ConflictPolicy::MailboxWins);
    assert!(
        !effects.iter().any(|e| matches!(
            e,
            Effect::DeleteActivity { .. } | Effect::Conflict { .. } | Effect::SetRegarding { .. }
        )),
        "{effects:?}"
    );
    world.pass(None);
    assert_eq!(keywords(&world), ["crm:ACC-2"]);
    assert_eq!(world.activities[&1].as_deref(), Some("ACC-2"));
    assert_eq!(world.lost_activities, 0);
    world.pass(None);
    assert!(world.effects(ConflictPolicy::MailboxWins).is_empty());
}

#[test]
fn a_crm_edit_after_a_cut_rewrite_is_not_mistaken_for_a_conflict() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", false));
    world.run(&Step::SetRegardingKeyword(1, "ACC-1"));
    world.pass(None);
    world.run(&Step::CrmRegarding(1, Some("ACC-2")));
    world.pass(Some(2));
    // The CRM moves on before the next pass: crm:ACC-2 on the message is crmsync's own write
    // (the link recorded it), so the CRM's newer value is a one-sided change, not a conflict.
    world.run(&Step::CrmRegarding(1, Some("CON-7")));
    let effects = world.effects(ConflictPolicy::MailboxWins);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Conflict { .. } | Effect::SetRegarding { .. })),
        "{effects:?}"
    );
    world.pass(None);
    world.pass(None);
    let keywords: Vec<String> = world.messages[&1].keywords.iter().cloned().collect();
    assert_eq!(keywords, ["crm:CON-7"]);
    assert_eq!(world.activities[&1].as_deref(), Some("CON-7"));
}

#[test]
fn a_keyword_in_a_tracked_folder_survives_a_crm_change_to_the_folders_record() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "Clients", false));
    world.run(&Step::SetRegardingKeyword(1, "ACC-2"));
    world.pass(None);
    // The CRM sets the record the folder implies: the person's keyword becomes crm:ACC-1,
    // never none, so the message stays tracked when it leaves the folder.
    world.run(&Step::CrmRegarding(1, Some("ACC-1")));
    world.pass(None);
    world.pass(None);
    let keywords: Vec<String> = world.messages[&1].keywords.iter().cloned().collect();
    assert_eq!(keywords, ["crm:ACC-1"]);
    world.run(&Step::Move(1, "INBOX"));
    world.pass(None);
    world.pass(None);
    assert_eq!(world.activities[&1].as_deref(), Some("ACC-1"));
    assert!(world.effects(ConflictPolicy::MailboxWins).is_empty());
}

#[test]
fn a_cleared_regarding_cut_between_its_stores_is_not_reverted() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", false));
    world.run(&Step::SetRegardingKeyword(1, "ACC-1"));
    world.pass(None);
    world.run(&Step::CrmRegarding(1, None));
    // Write 1 records the rewrite, write 2 adds `crm`; killed before `crm:ACC-1` goes.
    world.pass(Some(2));
    let keywords =
        |world: &World| -> Vec<String> { world.messages[&1].keywords.iter().cloned().collect() };
    assert_eq!(keywords(&world), ["crm", "crm:ACC-1"]);
    world.pass(None);
    world.pass(None);
    assert_eq!(keywords(&world), ["crm"]);
    assert_eq!(world.activities[&1], None);
    assert!(world.effects(ConflictPolicy::MailboxWins).is_empty());
}

#[test]
fn a_second_regarding_keyword_replaces_the_first() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", false));
    world.run(&Step::SetRegardingKeyword(1, "ACC-1"));
    world.pass(None);
    world.run(&Step::AddRegardingKeyword(1, "ACC-2"));
    world.pass(None);
    world.pass(None);
    let keywords: Vec<String> = world.messages[&1].keywords.iter().cloned().collect();
    assert_eq!(keywords, ["crm:ACC-2"]);
    assert_eq!(world.activities[&1].as_deref(), Some("ACC-2"));
    assert!(world.effects(ConflictPolicy::MailboxWins).is_empty());
}

#[test]
fn a_conflict_is_settled_by_the_policy_and_reported() {
    for (policy, winner) in [
        (ConflictPolicy::MailboxWins, "ACC-1"),
        (ConflictPolicy::CrmWins, "ACC-2"),
    ] {
        let mut world = World::new();
        world.run(&Step::Deliver(1, "INBOX", true));
        world.pass(None);
        world.run(&Step::SetRegardingKeyword(1, "ACC-1"));
        world.run(&Step::CrmRegarding(1, Some("ACC-2")));
        let effects = world.effects(policy);
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Conflict { .. })),
            "{effects:?}"
        );
        let base = effects
            .iter()
            .rev()
            .find_map(|e| match e {
                Effect::UpdateLink { base, .. } => Some(base.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(base.get("regarding"), Some(winner));
        assert_eq!(base.get("writing"), None);
    }
}

#[test]
fn an_untouched_mailbox_gives_no_effect() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", true));
    world.run(&Step::Deliver(2, "Clients", false));
    world.run(&Step::Deliver(3, "Archive", false));
    world.pass(None);
    world.pass(None);
    assert_eq!(
        world.effects(ConflictPolicy::MailboxWins),
        Vec::<Effect>::new()
    );
    assert_eq!(world.links.len(), 2, "INBOX by keyword, Clients by folder");
}

/// A full scan withholds untracked headers; a link whose message is neither seen nor where the
/// link says sends the engine back for them.
#[test]
fn a_link_whose_message_is_not_where_it_says_is_astray() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", true));
    world.pass(None);
    let links = world.links_with_crm();
    let mut view = world.view();
    assert!(!links_astray(&view, &links), "at its place");
    for folder in &mut view.folders {
        folder.present = Presence::Listed(BTreeSet::new());
    }
    assert!(
        links_astray(&view, &links),
        "gone from its folder, seen nowhere"
    );
    view.changed.push(Observed {
        identity: identity(1),
        location: ItemLocation::Imap {
            folder: "Archive".into(),
            uid_validity: 1,
            uid: 99,
        },
        keywords: Vec::new(),
        meta: Default::default(),
    });
    assert!(!links_astray(&view, &links), "its header read elsewhere");
    view.changed.clear();
    view.folders.retain(|folder| folder.folder != "INBOX");
    assert!(
        !links_astray(&view, &links),
        "its folder not scanned: unknown"
    );
}

#[test]
fn untracking_in_a_shared_activity_drops_only_the_link() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", true));
    world.pass(None);
    world.run(&Step::Untrack(1));
    let mut links = world.links_with_crm();
    if let CrmState::Present {
        owned_by_mailbox_owner,
        ..
    } = &mut links[0].1
    {
        *owned_by_mailbox_owner = false;
    }
    let effects = reconcile(&rules(), ConflictPolicy::MailboxWins, &world.view(), &links);
    assert!(
        matches!(effects.as_slice(), [Effect::DropLink { .. }]),
        "{effects:?}"
    );
}
