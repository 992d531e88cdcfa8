//! The real email pass (`EmailPass`) against a mailbox in memory and a real SQLite store, over
//! random histories of a person's edits in the mail client, CRM edits, passes, and passes
//! killed between any two writes (to the store or the mailbox). After clean passes, both
//! sides must agree: every tracked message has one activity and one link, regarding records
//! match their keywords, nothing is duplicated, no activity is lost that its person did not
//! untrack, and a further pass does nothing. The same histories run under `auto = "all"`,
//! where new mail must also end up tracked (unless a person or the CRM settled it before).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use crmsync_config::{Config, MailboxConfig};
use crmsync_core::auto::AutoPolicy;
use crmsync_core::item::ItemKind;
use crmsync_engine::email::EmailPass;
use crmsync_engine::{PassOptions, PassReport};
use crmsync_store::prelude::*;
use crmsync_store::{ActivityChange, ActivityFilter, ActivityRow, SqliteStore};
use proptest::prelude::*;
use support::memory_mail::MemoryMail;
use support::{CrashSwitch, CrashingStore, assert_idle, fresh_store};

const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Clients"];
const NUMBERS: [&str; 3] = ["ACC-1001", "ACC-1002", "ACC-1003"];

#[derive(Debug, Clone)]
enum Step {
    Deliver(u8, &'static str, bool),
    Track(u8),
    Untrack(u8),
    SetRegardingKeyword(u8, &'static str),
    AddRegardingKeyword(u8, &'static str),
    Move(u8, &'static str),
    Expunge(u8),
    CrmDelete(u8),
    CrmRegarding(u8, Option<&'static str>),
    Sync,
    CrashingSync(u32),
}

struct World {
    _dir: tempfile::TempDir,
    store: CrashingStore<SqliteStore>,
    mail: MemoryMail,
    mailbox: MailboxConfig,
    switch: CrashSwitch,
    runtime: tokio::runtime::Runtime,
    /// Where each message sits.
    messages: BTreeMap<u8, (&'static str, u32)>,
    /// Messages the person untracked (or moved, which may untrack a folder-tracked one) since
    /// they last tracked them, and messages whose activity the CRM deleted: the only ones
    /// that may end without their activity.
    may_lose: BTreeSet<u8>,
    /// Messages whose activity the CRM deleted since the last complete pass: their tracking
    /// signal is removed by the next one, whatever the person did to the keywords (or a new
    /// copy of the message) in between (SPEC section 6).
    crm_deleted: BTreeSet<u8>,
    /// Whether a pass has completed since the world began: from then on the automatic
    /// tracking policy holds for newly delivered mail.
    policy_seen: bool,
    /// Messages delivered after that, untracked, that nobody untracked, moved or deleted
    /// since: under `auto = "all"` they must end up tracked.
    auto_expected: BTreeSet<u8>,
    /// Messages a person untracked or moved, or whose activity the CRM deleted, ever: a
    /// tombstone may keep automatic tracking from taking them (or a copy delivered again).
    settled: BTreeSet<u8>,
}

fn raw(n: u8) -> String {
    format!(
        "Message-ID: <m{n}@example.com>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\
         From: dana@example.com\nTo: alice@example.com\nSubject: Message {n}\n\nBody {n}.\n"
    )
}

/// The sync-state marks are off here: they never change what is tracked, and the Dovecot tests
/// cover them; the model's keyword checks stay exact.
fn mailbox_config(dir: &std::path::Path, auto: &str) -> MailboxConfig {
    let password = dir.join("alice.imap");
    std::fs::write(&password, "secret").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let text = format!(
        "[crm]\ndatabase = \"crm.sqlite3\"\n[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
         [mailbox.imap]\nhost = \"127.0.0.1\"\nport = 143\nsecurity = \"none\"\nusername = \"alice\"\n\
         password_file = \"{}\"\nfolders = [\"INBOX\", \"Archive\", \"Clients\"]\n\
         [mailbox.tracking]\nfolders = {{ \"Clients\" = \"ACC-1001\" }}\n\
         synced_keyword = \"\"\nfailed_keyword = \"\"\nauto = \"{auto}\"\n",
        password.display()
    );
    let config = Config::parse(&dir.join("crmsync.toml"), &text).unwrap();
    config.mailboxes[0].clone()
}

impl World {
    fn new() -> World {
        World::with_policy("none")
    }

    fn with_policy(auto: &str) -> World {
        let (dir, store) = fresh_store();
        let switch = CrashSwitch::never();
        World {
            mailbox: mailbox_config(dir.path(), auto),
            _dir: dir,
            store: CrashingStore {
                inner: store,
                switch: switch.clone(),
            },
            mail: MemoryMail::new(&FOLDERS, switch.clone()),
            switch,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            messages: BTreeMap::new(),
            may_lose: BTreeSet::new(),
            crm_deleted: BTreeSet::new(),
            policy_seen: false,
            auto_expected: BTreeSet::new(),
            settled: BTreeSet::new(),
        }
    }

    fn pass(&mut self, crash_after: Option<u32>, accept_empty: bool) -> PassReport {
        let mut report = PassReport::new("alice");
        if let Some(writes) = crash_after {
            self.switch.after(writes);
        }
        let options = PassOptions {
            accept_empty,
            // Histories delete as much at once as they like; the guard has its own tests.
            accept_deletes: true,
            ..PassOptions::default()
        };
        let pass = EmailPass::new(
            &mut self.store,
            &mut self.mail,
            &self.mailbox,
            options,
            &mut report,
        );
        let result = self.runtime.block_on(pass.run());
        let crashed = self.switch.crashed();
        self.switch.disarm();
        if !crashed && result.is_ok() && report.errors.is_empty() {
            // The CRM's deletes are carried out: from now on, tracking the message again is
            // the person's new decision.
            self.may_lose.append(&mut self.crm_deleted);
            self.policy_seen = self.mailbox.tracking.auto != AutoPolicy::None;
        }
        if let Err(error) = result {
            report.fail(error.to_string());
        }
        report
    }

    /// What a history came to: each activity's message and regarding record, each link's
    /// message, place and state, and every message's keywords.
    fn outcome(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let mut activities: Vec<String> = self
            .activities()
            .iter()
            .map(|a| {
                let regarding = a.regarding.as_ref().map(|r| r.number.to_string());
                format!("{:?} {regarding:?}", a.message_id)
            })
            .collect();
        activities.sort();
        let mut links: Vec<String> = self
            .store
            .inner
            .links_of("alice", &[ItemKind::Email])
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "{} {:?} {:?}",
                    l.identity.storage_key(),
                    l.location,
                    l.state
                )
            })
            .collect();
        links.sort();
        let keywords = self
            .mail
            .folders
            .iter()
            .flat_map(|(name, folder)| {
                folder
                    .messages
                    .iter()
                    .map(move |(uid, m)| format!("{name}:{uid} {:?}", m.keywords))
            })
            .collect();
        (activities, links, keywords)
    }

    fn activities(&self) -> Vec<ActivityRow> {
        self.store
            .inner
            .activities(&ActivityFilter::default())
            .unwrap()
    }

    fn activity_of(&self, n: u8) -> Option<ActivityRow> {
        let message_id = format!("m{n}@example.com");
        self.activities()
            .into_iter()
            .find(|a| a.message_id.as_deref() == Some(message_id.as_str()))
    }

    fn edit(&mut self, n: u8, change: impl FnOnce(&mut BTreeSet<String>)) {
        if let Some((folder, uid)) = self.messages.get(&n) {
            self.mail.edit(folder, *uid, change);
        }
    }

    fn run(&mut self, step: &Step) {
        match step {
            Step::Deliver(n, folder, tracked) => {
                if !self.messages.contains_key(n) {
                    let keywords: &[&str] = if *tracked { &["crm"] } else { &[] };
                    let uid = self.mail.deliver(folder, &raw(*n), keywords);
                    self.messages.insert(*n, (folder, uid));
                    // A copy of an expunged message delivered again without the keyword is
                    // the mailbox saying "untracked".
                    if *tracked {
                        self.may_lose.remove(n);
                    } else {
                        self.may_lose.insert(*n);
                        if self.policy_seen && !self.settled.contains(n) {
                            self.auto_expected.insert(*n);
                        }
                    }
                }
            }
            Step::Track(n) => {
                self.may_lose.remove(n);
                self.edit(*n, |k| {
                    k.insert("crm".into());
                });
            }
            Step::Untrack(n) => {
                self.may_lose.insert(*n);
                self.auto_expected.remove(n);
                self.settled.insert(*n);
                self.edit(*n, |k| k.retain(|k| !k.starts_with("crm")));
            }
            Step::SetRegardingKeyword(n, number) => {
                self.may_lose.remove(n);
                self.edit(*n, |k| {
                    k.retain(|k| !k.starts_with("crm:"));
                    k.insert(format!("crm:{number}"));
                });
            }
            Step::AddRegardingKeyword(n, number) => {
                self.may_lose.remove(n);
                self.edit(*n, |k| {
                    k.insert(format!("crm:{number}"));
                });
            }
            Step::Move(n, to) => {
                if let Some((from, uid)) = self.messages.get(n).copied()
                    && let Some(uid) = self.mail.move_message(from, uid, to)
                {
                    self.may_lose.insert(*n);
                    self.auto_expected.remove(n);
                    self.settled.insert(*n);
                    self.messages.insert(*n, (to, uid));
                }
            }
            Step::Expunge(n) => {
                if let Some((folder, uid)) = self.messages.remove(n) {
                    self.mail.expunge(folder, uid);
                }
                self.auto_expected.remove(n);
                // The same message delivered again without the keyword reads as the person
                // untracking it (a move that lost the keyword): a tombstone may follow.
                self.settled.insert(*n);
            }
            Step::CrmDelete(n) => {
                if let Some(activity) = self.activity_of(*n) {
                    self.crm_deleted.insert(*n);
                    self.auto_expected.remove(n);
                    self.settled.insert(*n);
                    self.store.inner.delete_activity(activity.id).unwrap();
                }
            }
            Step::CrmRegarding(n, number) => {
                if let Some(activity) = self.activity_of(*n) {
                    let number = number.map(|n| crmsync_core::model::RecordNumber::new(n).unwrap());
                    self.store
                        .inner
                        .update_activity(activity.id, &[ActivityChange::Regarding(number)])
                        .unwrap();
                }
            }
            Step::Sync => {
                self.pass(None, false);
            }
            Step::CrashingSync(writes) => {
                self.pass(Some(*writes), false);
            }
        }
    }

    /// The keywords and folder of message `n`: whether it is tracked, and the regarding
    /// record its keywords (else its folder) name.
    fn signal(&self, n: u8) -> Option<(bool, Vec<String>)> {
        let (folder, uid) = self.messages.get(&n)?;
        let message = self.mail.message(folder, *uid)?;
        let numbers: Vec<String> = message
            .keywords
            .iter()
            .filter_map(|k| k.strip_prefix("crm:").map(str::to_owned))
            .collect();
        let tracked = message.keywords.iter().any(|k| k.starts_with("crm")) || *folder == "Clients";
        let numbers = if numbers.is_empty() && *folder == "Clients" {
            vec!["ACC-1001".to_owned()]
        } else {
            numbers
        };
        Some((tracked, numbers))
    }

    // Long on purpose: the invariants, one after another.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let links = self
            .store
            .inner
            .links_of("alice", &[ItemKind::Email])
            .unwrap();
        let activities = self.activities();
        let mut ids: Vec<&str> = activities
            .iter()
            .filter_map(|a| a.message_id.as_deref())
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), count, "a message has two activities");
        prop_assert_eq!(
            links.len(),
            links
                .iter()
                .map(|l| &l.identity)
                .collect::<BTreeSet<_>>()
                .len(),
            "a message has two links"
        );
        for n in self.messages.keys().copied().collect::<Vec<_>>() {
            let (tracked, numbers) = self.signal(n).unwrap();
            let activity = self.activity_of(n);
            let message_id = format!("m{n}@example.com");
            let link = links
                .iter()
                .find(|l| l.identity.storage_key().contains(&message_id));
            let tombstone =
                link.is_some_and(|l| l.state == crmsync_core::link::LinkState::CrmDeleted);
            if tracked && activity.is_none() {
                // Deleted in the CRM while it sits in a tracked folder: its keywords are gone,
                // and the link stays as a tombstone so that it is not tracked again.
                prop_assert!(tombstone, "message {} is tracked without an activity", n);
                prop_assert!(self.may_lose.contains(&n));
                prop_assert_eq!(self.messages[&n].0, "Clients");
            } else if let Some(activity) = activity.filter(|_| tracked) {
                prop_assert!(link.is_some(), "message {} is tracked without a link", n);
                prop_assert!(
                    numbers.len() <= 1,
                    "message {} keeps regarding keywords {:?}",
                    n,
                    numbers
                );
                let regarding = activity.regarding.map(|r| r.number.to_string());
                prop_assert_eq!(
                    regarding,
                    numbers.first().cloned(),
                    "the sides disagree on {}",
                    n
                );
            } else {
                prop_assert!(link.is_none(), "message {} is untracked but linked", n);
                prop_assert!(
                    self.may_lose.contains(&n) || self.crm_deleted.contains(&n),
                    "message {} lost its tracking though nobody untracked it",
                    n
                );
            }
        }
        for n in &self.auto_expected {
            prop_assert!(
                self.signal(*n).is_some_and(|(tracked, _)| tracked)
                    && self.activity_of(*n).is_some(),
                "message {} arrived under auto = all and was not taken",
                n
            );
        }
        let quiet = self.pass(None, true);
        assert_idle(&quiet)
    }
}

fn step() -> impl Strategy<Value = Step> {
    let message = 0u8..4;
    let folder = prop::sample::select(FOLDERS.to_vec());
    let number = prop::sample::select(NUMBERS.to_vec());
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
        (0u32..8).prop_map(Step::CrashingSync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn histories_with_crashes_converge_and_lose_nothing(
        steps in prop::collection::vec(step(), 1..24),
        qresync in any::<bool>(),
        condstore in any::<bool>(),
    ) {
        let mut world = World::new();
        world.mail.qresync = qresync;
        world.mail.condstore = condstore;
        for step in &steps {
            world.run(step);
        }
        world.pass(None, true);
        world.pass(None, true);
        world.check()?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The same histories under `auto = "all"`: what the policy takes is written as the
    /// keyword before its activity, so a kill in between leaves a message the next pass
    /// tracks by its keyword; nothing is taken twice, and what a person untracked stays so.
    #[test]
    fn histories_under_auto_all_converge_and_take_new_mail(
        steps in prop::collection::vec(step(), 1..24),
        qresync in any::<bool>(),
    ) {
        let mut world = World::with_policy("all");
        world.mail.qresync = qresync;
        for step in &steps {
            world.run(step);
        }
        world.pass(None, true);
        world.pass(None, true);
        world.check()?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Full scans that read only the headers a pass may act on (tracked, marked, linked)
    /// come to what reading every header came to: the same history, side by side, ends with
    /// the same activities, links and keywords. Without CONDSTORE every scan is a full one.
    #[test]
    fn withholding_untracked_headers_changes_no_outcome(
        steps in prop::collection::vec(step(), 1..24),
        qresync in any::<bool>(),
        condstore in any::<bool>(),
    ) {
        let mut lean = World::new();
        let mut every = World::new();
        for world in [&mut lean, &mut every] {
            world.mail.qresync = qresync;
            world.mail.condstore = condstore;
        }
        every.mail.withhold = false;
        for step in &steps {
            lean.run(step);
            every.run(step);
        }
        for world in [&mut lean, &mut every] {
            world.pass(None, true);
        }
        prop_assert_eq!(lean.outcome(), every.outcome());
        prop_assert!(lean.mail.headers_read <= every.mail.headers_read);
    }
}

#[test]
fn a_first_scan_reads_the_headers_of_tracked_messages_alone() {
    let mut world = World::new();
    world.mail.condstore = false;
    for n in 0..20 {
        world.run(&Step::Deliver(n, "INBOX", n % 10 == 0));
    }
    world.run(&Step::Deliver(30, "Clients", false));
    world.run(&Step::Sync);
    // Two tracked by keyword, one by its folder; the other 18 were read by their flags.
    assert_eq!(world.mail.headers_read, 3);
    assert!(world.activity_of(0).is_some() && world.activity_of(10).is_some());
    assert!(world.activity_of(30).is_some());
    // Without CONDSTORE the next scan is a full one again: the linked messages only.
    world.run(&Step::Sync);
    assert_eq!(world.mail.headers_read, 6);
    // Moved out of its tracked folder, without a keyword: the link's message is gone from
    // where it was, so the pass reads the withheld headers, finds it untracked in INBOX, and
    // deletes its activity (its owner untracked it), as a pass reading everything would.
    world.run(&Step::Move(30, "INBOX"));
    let report = world.pass(None, false);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(world.activity_of(30).is_none());
    assert_eq!(world.mail.headers_read, 6 + 2 + 19);
    assert!(world.activity_of(0).is_some() && world.activity_of(10).is_some());
}

#[test]
fn a_regarding_rewrite_killed_between_its_stores_keeps_the_activity() {
    let mut world = World::new();
    world.run(&Step::Deliver(1, "INBOX", false));
    world.run(&Step::SetRegardingKeyword(1, "ACC-1001"));
    world.run(&Step::Sync);
    world.run(&Step::CrmRegarding(1, Some("ACC-1002")));
    // Write 1 records the rewrite in the link, write 2 adds crm:ACC-1002; the kill comes
    // before the old keyword is removed.
    world.run(&Step::CrashingSync(2));
    let (folder, uid) = world.messages[&1];
    let keywords: Vec<String> = world
        .mail
        .message(folder, uid)
        .unwrap()
        .keywords
        .iter()
        .cloned()
        .collect();
    assert_eq!(keywords, ["crm:ACC-1001", "crm:ACC-1002"]);
    world.pass(None, false);
    world.check().unwrap();
    let activity = world.activity_of(1).unwrap();
    assert_eq!(activity.regarding.unwrap().number.as_str(), "ACC-1002");
    assert!(world.store.inner.conflicts(None, 10).unwrap().is_empty());
}

#[test]
fn a_pass_killed_between_the_automatic_keyword_and_the_activity_tracks_once() {
    let mut world = World::with_policy("all");
    world.run(&Step::Sync);
    world.run(&Step::Deliver(1, "INBOX", false));
    world.run(&Step::Deliver(2, "INBOX", false));
    // Writes 1 and 2 are the keywords (one `UID STORE` for both; the model counts a write
    // per message); the kill comes before any activity.
    world.run(&Step::CrashingSync(2));
    for n in [1, 2] {
        assert_eq!(world.signal(n), Some((true, Vec::new())), "message {n}");
        assert!(world.activity_of(n).is_none());
    }
    world.pass(None, false);
    world.check().unwrap();
    assert_eq!(world.activities().len(), 2);
}
