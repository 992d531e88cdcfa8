//! The real collection pass (`CollectionPass`) over a real calendar directory and a real
//! SQLite store, over random histories: a person creating, editing, renaming, (un)tracking and
//! deleting event files; the CRM editing, deleting and creating appointments; passes (whole, or
//! over the files the person touched, as the daemon runs after a file event), and passes
//! killed between any two store writes. After clean passes, every tracked file has one row
//! with its fields, every row is linked once, nothing is duplicated or lost that nobody
//! deleted, and a further pass does nothing, under either conflict policy. A pass over the
//! touched files alone leaves a whole pass nothing to do after the person's changes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crmsync_config::{Config, MailboxConfig};
use crmsync_core::item::{ItemIdentity, ItemKind};
use crmsync_core::link::CrmRef;
use crmsync_core::model::{ActivityId, ActivityType, EmailAddress};
use crmsync_engine::collection::{CollectionMemory, CollectionPass, Which};
use crmsync_engine::{PassOptions, PassReport};
use crmsync_store::prelude::*;
use crmsync_store::{ActivityChange, ActivityFilter, NewActivity, SqliteStore};
use proptest::prelude::*;
use support::{CrashSwitch, CrashingStore, assert_idle, fresh_store};

const VALUES: [&str; 3] = ["alpha", "beta", "gamma"];

#[derive(Debug, Clone)]
enum Step {
    PersonCreate(u8, bool),
    PersonEdit(u8, bool, usize),
    PersonToggle(u8),
    PersonRename(u8),
    PersonDelete(u8),
    CrmEdit(u8, bool, usize),
    CrmDelete(u8),
    CrmCreate(u8),
    Sync,
    CrashingSync(u32),
    /// A pass over the files the person touched since the last pass.
    FilesSync,
    CrashingFilesSync(u32),
}

struct World {
    dir: tempfile::TempDir,
    store: CrashingStore<SqliteStore>,
    mailbox: MailboxConfig,
    switch: CrashSwitch,
    memory: CollectionMemory,
    /// The person's items by number: their file name now.
    files: BTreeMap<u8, String>,
    /// Rows created in the CRM by number.
    crm_created: BTreeMap<u8, ActivityId>,
    /// Person's items that may end without a row: untracked, deleted, or deleted in the CRM.
    may_lose: BTreeSet<u8>,
    /// Person's items whose row the CRM deleted since the last complete pass: the next pass
    /// removes their tracking category whatever the person did meanwhile (SPEC section 6).
    crm_deleted: BTreeSet<u8>,
    renames: u32,
    /// The file names the person touched since the last pass: what inotify would name.
    touched: BTreeSet<String>,
}

fn event(n: u8, subject: &str, tracked: bool) -> String {
    let mut text = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crmsync model//EN\r\nBEGIN:VEVENT\r\n\
         UID:u{n}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261201T090000Z\r\n\
         DTEND:20261201T100000Z\r\nSUMMARY:{subject}\r\n"
    );
    if tracked {
        text.push_str("CATEGORIES:CRM\r\n");
    }
    text.push_str("END:VEVENT\r\nEND:VCALENDAR\r\n");
    text
}

/// Writes a file the way calendar clients and vdirsyncer do: a temporary file renamed over it.
fn write_file(path: &Path, text: &str) {
    let temporary = path.with_file_name(".model.tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The value of a property line (`SUMMARY`, `LOCATION`, `UID`), unfolded lines being enough
/// for the short values of this model.
fn property(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (head, value) = line.split_once(':')?;
        let head = head.split(';').next()?;
        head.eq_ignore_ascii_case(name)
            .then(|| value.trim_end().to_owned())
    })
}

fn tracked(text: &str) -> bool {
    property(text, "CATEGORIES")
        .is_some_and(|c| c.split(',').any(|c| c.eq_ignore_ascii_case("CRM")))
}

fn mailbox_config(dir: &Path, crm_wins: bool) -> MailboxConfig {
    let calendar = dir.join("calendar");
    std::fs::create_dir(&calendar).unwrap();
    let policy = if crm_wins { "crm-wins" } else { "mailbox-wins" };
    let text = format!(
        "[crm]\ndatabase = \"crm.sqlite3\"\n[[mailbox]]\nid = \"alice\"\nowner = \"alice@example.com\"\n\
         conflict_policy = \"{policy}\"\n[mailbox.calendar]\npath = \"{}\"\n",
        calendar.display()
    );
    Config::parse(&dir.join("crmsync.toml"), &text)
        .unwrap()
        .mailboxes[0]
        .clone()
}

impl World {
    fn new(crm_wins: bool) -> World {
        let (dir, store) = fresh_store();
        let switch = CrashSwitch::never();
        World {
            mailbox: mailbox_config(dir.path(), crm_wins),
            dir,
            store: CrashingStore {
                inner: store,
                switch: switch.clone(),
            },
            switch,
            memory: CollectionMemory::default(),
            files: BTreeMap::new(),
            crm_created: BTreeMap::new(),
            may_lose: BTreeSet::new(),
            crm_deleted: BTreeSet::new(),
            renames: 0,
            touched: BTreeSet::new(),
        }
    }

    fn calendar(&self) -> PathBuf {
        self.dir.path().join("calendar")
    }

    fn pass(&mut self, crash_after: Option<u32>) -> PassReport {
        self.pass_over(crash_after, false)
    }

    /// A whole pass, or one over the touched files (`files`).
    fn pass_over(&mut self, crash_after: Option<u32>, files: bool) -> PassReport {
        let mut report = PassReport::new("alice");
        if let Some(writes) = crash_after {
            self.switch.after(writes);
        }
        let config = self.mailbox.calendar.clone().unwrap();
        let touched = std::mem::take(&mut self.touched);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pass = CollectionPass::new(
                &mut self.store,
                &self.mailbox,
                Which::Calendar,
                &config,
                PassOptions {
                    accept_empty: true,
                    accept_deletes: true,
                    ..PassOptions::default()
                },
                &mut self.memory,
            )
            .await;
            let pass = if files { pass.only(&touched) } else { pass };
            pass.run(&mut report).await;
        });
        if self.switch.crashed() {
            // The process died: what it remembered goes with it.
            self.memory = CollectionMemory::default();
        } else if report.errors.is_empty() {
            // The CRM's deletes are carried out: tracking again is the person's new decision.
            self.may_lose.append(&mut self.crm_deleted);
        }
        self.switch.disarm();
        report
    }

    fn path_of(&self, n: u8) -> Option<PathBuf> {
        self.files.get(&n).map(|name| self.calendar().join(name))
    }

    fn edit_file(&mut self, n: u8, change: impl FnOnce(Vec<String>) -> Vec<String>) {
        let Some(path) = self.path_of(n) else { return };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut text = change(lines).join("\r\n");
        text.push_str("\r\n");
        write_file(&path, &text);
        self.touched.insert(self.files[&n].clone());
    }

    fn row_of(&self, n: u8) -> Option<ActivityId> {
        let owner = EmailAddress::new("alice@example.com").unwrap();
        match self
            .store
            .inner
            .item_by_uid(ItemKind::Event, &format!("u{n}"), &owner)
        {
            Ok(Some((CrmRef::Activity(id), _))) => Some(id),
            _ => None,
        }
    }

    // Long on purpose: one arm per kind of step.
    fn run(&mut self, step: &Step) {
        match step {
            Step::PersonCreate(n, tracked) => {
                if !self.files.contains_key(n) {
                    let name = format!("item{n}.ics");
                    write_file(&self.calendar().join(&name), &event(*n, "alpha", *tracked));
                    self.touched.insert(name.clone());
                    self.files.insert(*n, name);
                    if *tracked {
                        self.may_lose.remove(n);
                    } else {
                        self.may_lose.insert(*n);
                    }
                }
            }
            Step::PersonEdit(n, summary, value) => {
                let (name, value) = (
                    if *summary { "SUMMARY" } else { "LOCATION" },
                    VALUES[*value],
                );
                self.edit_file(*n, |mut lines| {
                    lines.retain(|l| !l.to_ascii_uppercase().starts_with(name));
                    let end = lines
                        .iter()
                        .position(|l| l == "END:VEVENT")
                        .unwrap_or(lines.len());
                    lines.insert(end, format!("{name}:{value}"));
                    lines
                });
            }
            Step::PersonToggle(n) => {
                let Some(path) = self.path_of(*n) else { return };
                let Ok(text) = std::fs::read_to_string(&path) else {
                    return;
                };
                if tracked(&text) {
                    self.may_lose.insert(*n);
                } else {
                    self.may_lose.remove(n);
                }
                let was = tracked(&text);
                self.edit_file(*n, |mut lines| {
                    lines.retain(|l| !l.to_ascii_uppercase().starts_with("CATEGORIES"));
                    if !was {
                        let end = lines
                            .iter()
                            .position(|l| l == "END:VEVENT")
                            .unwrap_or(lines.len());
                        lines.insert(end, "CATEGORIES:CRM".into());
                    }
                    lines
                });
            }
            Step::PersonRename(n) => {
                if let Some(path) = self.path_of(*n) {
                    self.renames += 1;
                    let name = format!("item{n}-{}.ics", self.renames);
                    if std::fs::rename(&path, self.calendar().join(&name)).is_ok() {
                        self.touched.insert(self.files[n].clone());
                        self.touched.insert(name.clone());
                        self.files.insert(*n, name);
                    }
                }
            }
            Step::PersonDelete(n) => {
                if let Some(path) = self.path_of(*n) {
                    let _ = std::fs::remove_file(path);
                    self.touched.extend(self.files.remove(n));
                    self.may_lose.insert(*n);
                }
            }
            Step::CrmEdit(n, subject, value) => {
                let id = self.row_of(*n).or_else(|| self.crm_created.get(n).copied());
                if let Some(id) = id {
                    let value = VALUES[*value].to_owned();
                    let change = if *subject {
                        ActivityChange::Subject(value)
                    } else {
                        ActivityChange::Location(Some(value))
                    };
                    let _ = self.store.inner.update_activity(id, &[change]);
                }
            }
            Step::CrmDelete(n) => {
                if let Some(id) = self.row_of(*n) {
                    self.crm_deleted.insert(*n);
                    let _ = self.store.inner.delete_activity(id);
                }
                if let Some(id) = self.crm_created.remove(n) {
                    let _ = self.store.inner.delete_activity(id);
                }
            }
            Step::CrmCreate(n) => {
                if !self.crm_created.contains_key(n) {
                    let row = self
                        .store
                        .inner
                        .add_activity(&NewActivity {
                            activity_type: ActivityType::Appointment,
                            owner: EmailAddress::new("alice@example.com").unwrap(),
                            subject: format!("from the CRM {n}"),
                            state: None,
                            description: None,
                            regarding: None,
                            location: None,
                            start: None,
                            end: None,
                            due: None,
                            parties: Vec::new(),
                            html_body: None,
                            attachments: Vec::new(),
                            created_by: "crm".into(),
                        })
                        .unwrap();
                    self.crm_created.insert(*n, row.id);
                }
            }
            Step::Sync => {
                self.pass(None);
            }
            Step::CrashingSync(writes) => {
                self.pass(Some(*writes));
            }
            Step::FilesSync => {
                self.pass_over(None, true);
            }
            Step::CrashingFilesSync(writes) => {
                self.pass_over(Some(*writes), true);
            }
        }
    }

    /// Every item file of the calendar: (file name, UID, tracked, SUMMARY, LOCATION).
    fn listing(&self) -> Vec<(String, String, bool, String, String)> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(self.calendar()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".ics") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            files.push((
                name,
                property(&text, "UID").unwrap_or_default(),
                tracked(&text),
                property(&text, "SUMMARY").unwrap_or_default(),
                property(&text, "LOCATION").unwrap_or_default(),
            ));
        }
        files
    }

    // Long on purpose: the invariants, one after another.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let files = self.listing();
        let uids: BTreeSet<&String> = files.iter().map(|f| &f.1).collect();
        prop_assert_eq!(
            uids.len(),
            files.len(),
            "two files share a UID: {:?}",
            files
        );
        let links = self
            .store
            .inner
            .links_of("alice", &[ItemKind::Event])
            .unwrap();
        let appointments = self
            .store
            .inner
            .activities(&ActivityFilter {
                activity_type: Some(ActivityType::Appointment),
                mailbox: None,
            })
            .unwrap();
        for (name, uid, tracked, subject, location) in &files {
            let link = links
                .iter()
                .find(|l| l.identity == ItemIdentity::Calendar { uid: uid.clone() });
            if !tracked {
                prop_assert!(link.is_none(), "{} is untracked but linked", name);
                continue;
            }
            let Some(link) = link else {
                return Err(TestCaseError::fail(format!(
                    "{name} is tracked but not linked"
                )));
            };
            let row = appointments
                .iter()
                .find(|a| CrmRef::Activity(a.id) == link.crm);
            let Some(row) = row else {
                return Err(TestCaseError::fail(format!("{name} is linked to no row")));
            };
            prop_assert_eq!(&row.subject, subject, "{} and its row disagree", name);
            prop_assert_eq!(row.location.clone().unwrap_or_default(), location.clone());
        }
        for row in &appointments {
            let linked = links
                .iter()
                .filter(|l| l.crm == CrmRef::Activity(row.id))
                .count();
            prop_assert_eq!(
                linked,
                1,
                "row {} ({}) has {} links",
                row.id,
                row.subject,
                linked
            );
        }
        for n in self.files.keys() {
            if !self.may_lose.contains(n) && !self.crm_deleted.contains(n) {
                let name = &self.files[n];
                let file = files.iter().find(|f| &f.0 == name);
                prop_assert!(
                    file.is_some_and(|f| f.2),
                    "item {} lost its tracking though nobody untracked it: {:?}",
                    n,
                    file
                );
            }
        }
        let quiet = self.pass(None);
        assert_idle(&quiet)
    }
}

fn step() -> impl Strategy<Value = Step> {
    let item = 0u8..4;
    let value = 0usize..VALUES.len();
    prop_oneof![
        (item.clone(), any::<bool>()).prop_map(|(n, t)| Step::PersonCreate(n, t)),
        (item.clone(), any::<bool>(), value.clone())
            .prop_map(|(n, s, v)| Step::PersonEdit(n, s, v)),
        item.clone().prop_map(Step::PersonToggle),
        item.clone().prop_map(Step::PersonRename),
        item.clone().prop_map(Step::PersonDelete),
        (item.clone(), any::<bool>(), value).prop_map(|(n, s, v)| Step::CrmEdit(n, s, v)),
        item.clone().prop_map(Step::CrmDelete),
        item.prop_map(Step::CrmCreate),
        Just(Step::Sync),
        (0u32..6).prop_map(Step::CrashingSync),
        Just(Step::FilesSync),
        (0u32..6).prop_map(Step::CrashingFilesSync),
    ]
}

/// What the person does, and passes over the files touched.
fn person_step() -> impl Strategy<Value = Step> {
    let item = 0u8..4;
    let value = 0usize..VALUES.len();
    prop_oneof![
        (item.clone(), any::<bool>()).prop_map(|(n, t)| Step::PersonCreate(n, t)),
        (item.clone(), any::<bool>(), value).prop_map(|(n, s, v)| Step::PersonEdit(n, s, v)),
        item.clone().prop_map(Step::PersonToggle),
        item.clone().prop_map(Step::PersonRename),
        item.prop_map(Step::PersonDelete),
        Just(Step::FilesSync),
        (0u32..6).prop_map(Step::CrashingFilesSync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn histories_with_crashes_converge_and_lose_nothing(
        steps in prop::collection::vec(step(), 1..20),
        crm_wins in any::<bool>(),
    ) {
        let mut world = World::new(crm_wins);
        for step in &steps {
            world.run(step);
        }
        world.pass(None);
        world.pass(None);
        world.check()?;
    }

    #[test]
    fn a_pass_over_the_touched_files_leaves_a_whole_pass_nothing_to_do(
        steps in prop::collection::vec(person_step(), 1..20),
        crm_wins in any::<bool>(),
    ) {
        let mut world = World::new(crm_wins);
        world.pass(None);
        for step in &steps {
            world.run(step);
        }
        // Once more as the daemon would after the last event; a crash before it made the next
        // pass whole.
        world.pass_over(None, true);
        world.check()?;
    }
}
