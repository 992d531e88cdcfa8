//! The collection reconciler as a model checked against random histories.
//!
//! The model plays both sides: a calendar of files (UID, tracking category, fields, etag) and a
//! CRM of rows (UID, fields, version, created in the CRM or not), with the sync links between
//! them, and applies the reconciler's effects the way the engine does: a merge writes the file,
//! then the CRM row and the link together; a CRM-created row is written as a file, then linked.
//! A crash can fall between any two of those steps. Random histories of edits on both sides,
//! renames, (un)tracking, deletes on both sides and rows created in the CRM, with passes and
//! crashes in between, must end, after two clean passes, in a state where every tracked file
//! has exactly one row with the same fields, no UID has two rows, every row is in the calendar,
//! and a further pass does nothing.

use std::collections::{BTreeMap, BTreeSet};

use crmsync_core::collection::{
    CollectionView, CrmCreated, CrmItem, Effect, ObservedItem, reconcile, two_sided_base,
};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::merge::apply;
use crmsync_core::model::{ActivityId, ConflictPolicy};
use proptest::prelude::*;

const FIELDS: [&str; 2] = ["subject", "location"];
const VALUES: [&str; 3] = ["", "a", "b"];

#[derive(Debug, Clone)]
struct File {
    uid: String,
    tracked: bool,
    fields: Snapshot,
    etag: u64,
}

#[derive(Debug, Clone)]
struct Row {
    uid: Option<String>,
    fields: Snapshot,
    version: i64,
    created_in_crm: bool,
}

#[derive(Debug, Clone, Default)]
struct World {
    files: BTreeMap<String, File>,
    rows: BTreeMap<u128, Row>,
    links: BTreeMap<String, SyncLink>,
    next_etag: u64,
    next_row: u128,
}

fn row_ref(id: u128) -> CrmRef {
    CrmRef::Activity(ActivityId(uuid::Uuid::from_u128(id)))
}

fn row_id(crm: CrmRef) -> u128 {
    match crm {
        CrmRef::Activity(id) => id.0.as_u128(),
        CrmRef::Record(id) => id.0.as_u128(),
    }
}

fn location(href: &str) -> ItemLocation {
    ItemLocation::Collection {
        collection: "calendar".into(),
        href: href.into(),
    }
}

fn href_of(location: &ItemLocation) -> String {
    crmsync_core::collection::href(location).to_owned()
}

fn identity(uid: &str) -> ItemIdentity {
    ItemIdentity::Calendar { uid: uid.into() }
}

/// The UID a CRM-created row's file gets: its id.
fn crm_uid(id: u128) -> String {
    format!("row{id}")
}

#[derive(Debug, Clone)]
enum Step {
    PersonCreate {
        n: u8,
        tracked: bool,
    },
    PersonEdit {
        n: u8,
        field: usize,
        value: usize,
    },
    PersonToggle {
        n: u8,
    },
    PersonRename {
        n: u8,
    },
    PersonDelete {
        n: u8,
    },
    CrmEdit {
        n: u8,
        field: usize,
        value: usize,
    },
    CrmDelete {
        n: u8,
    },
    CrmCreate,
    /// A pass that crashes after this many steps of applying (`None`: runs to the end).
    Pass {
        crash_after: Option<usize>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, any::<bool>()).prop_map(|(n, tracked)| Step::PersonCreate { n, tracked }),
        (0u8..8, 0..2usize, 0..3usize).prop_map(|(n, field, value)| Step::PersonEdit {
            n,
            field,
            value
        }),
        (0u8..8).prop_map(|n| Step::PersonToggle { n }),
        (0u8..8).prop_map(|n| Step::PersonRename { n }),
        (0u8..8).prop_map(|n| Step::PersonDelete { n }),
        (0u8..8, 0..2usize, 0..3usize).prop_map(|(n, field, value)| Step::CrmEdit {
            n,
            field,
            value
        }),
        (0u8..8).prop_map(|n| Step::CrmDelete { n }),
        Just(Step::CrmCreate),
        prop::option::of(0usize..6).prop_map(|crash_after| Step::Pass { crash_after }),
    ]
}

impl World {
    fn etag(&mut self) -> u64 {
        self.next_etag += 1;
        self.next_etag
    }

    fn nth_file(&self, n: u8) -> Option<String> {
        let hrefs: Vec<&String> = self.files.keys().collect();
        (!hrefs.is_empty()).then(|| hrefs[n as usize % hrefs.len()].clone())
    }

    fn nth_row(&self, n: u8) -> Option<u128> {
        let ids: Vec<&u128> = self.rows.keys().collect();
        (!ids.is_empty()).then(|| *ids[n as usize % ids.len()])
    }

    fn play(&mut self, step: &Step, policy: ConflictPolicy) {
        match *step {
            Step::PersonCreate { n, tracked } => {
                let uid = format!("p{n}");
                if self.files.values().any(|f| f.uid == uid) {
                    return;
                }
                let etag = self.etag();
                let fields = Snapshot::new().with("subject", "new");
                self.files.insert(
                    format!("{uid}.ics"),
                    File {
                        uid,
                        tracked,
                        fields,
                        etag,
                    },
                );
            }
            Step::PersonEdit { n, field, value } => {
                if let Some(href) = self.nth_file(n) {
                    let etag = self.etag();
                    let file = self.files.get_mut(&href).unwrap();
                    file.fields.set(FIELDS[field], VALUES[value]);
                    file.etag = etag;
                }
            }
            Step::PersonToggle { n } => {
                if let Some(href) = self.nth_file(n) {
                    let etag = self.etag();
                    let file = self.files.get_mut(&href).unwrap();
                    file.tracked = !file.tracked;
                    file.etag = etag;
                }
            }
            Step::PersonRename { n } => {
                if let Some(href) = self.nth_file(n) {
                    let file = self.files.remove(&href).unwrap();
                    self.files.insert(format!("moved-{href}"), file);
                }
            }
            Step::PersonDelete { n } => {
                if let Some(href) = self.nth_file(n) {
                    self.files.remove(&href);
                }
            }
            Step::CrmEdit { n, field, value } => {
                if let Some(id) = self.nth_row(n) {
                    let row = self.rows.get_mut(&id).unwrap();
                    row.fields.set(FIELDS[field], VALUES[value]);
                    row.version += 1;
                }
            }
            Step::CrmDelete { n } => {
                if let Some(id) = self.nth_row(n) {
                    self.rows.remove(&id);
                }
            }
            Step::CrmCreate => {
                self.next_row += 1;
                self.rows.insert(
                    1000 + self.next_row,
                    Row {
                        uid: None,
                        fields: Snapshot::new().with("subject", "from crm"),
                        version: 1,
                        created_in_crm: true,
                    },
                );
            }
            Step::Pass { crash_after } => {
                self.pass(policy, crash_after);
            }
        }
    }

    fn effects(&self, policy: ConflictPolicy) -> Vec<Effect> {
        let unchanged: BTreeSet<(String, String)> = self
            .links
            .values()
            .filter_map(|l| Some((href_of(&l.location), l.item_version.as_ref()?.0.clone())))
            .collect();
        let mut view = CollectionView {
            accept_empty: true,
            ..CollectionView::default()
        };
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for (href, file) in &self.files {
            view.hrefs.insert(href.clone());
            if !seen.insert(&file.uid) {
                view.unreadable.insert(href.clone());
                continue;
            }
            if unchanged.contains(&(href.clone(), file.etag.to_string())) {
                continue;
            }
            view.changed.push(ObservedItem {
                kind: ItemKind::Event,
                identity: identity(&file.uid),
                location: location(href),
                etag: file.etag.to_string(),
                tracked: file.tracked,
                fields: file.fields.clone(),
            });
        }
        let crm: BTreeMap<CrmRef, CrmItem> = self
            .rows
            .iter()
            .map(|(id, row)| {
                (
                    row_ref(*id),
                    CrmItem::Present {
                        fields: row.fields.clone(),
                        version: row.version,
                        owned_by_mailbox_owner: true,
                    },
                )
            })
            .collect();
        let present: BTreeSet<&str> = self
            .files
            .values()
            .map(|f| f.uid.as_str())
            .chain(self.links.keys().map(String::as_str))
            .collect();
        let linked_rows: BTreeSet<u128> = self.links.values().map(|l| row_id(l.crm)).collect();
        let created: Vec<CrmCreated> = self
            .rows
            .iter()
            .filter(|(id, row)| row.created_in_crm && !linked_rows.contains(id))
            .map(|(id, row)| (id, row, row.uid.clone().unwrap_or_else(|| crm_uid(*id))))
            .filter(|(_, _, uid)| !present.contains(uid.as_str()))
            .map(|(id, row, uid)| CrmCreated {
                kind: ItemKind::Event,
                crm: row_ref(*id),
                identity: identity(&uid),
                fields: row.fields.clone(),
                version: row.version,
            })
            .collect();
        let links: Vec<SyncLink> = self.links.values().cloned().collect();
        reconcile(&view, &links, &crm, &created, policy)
    }

    /// One pass; `crash_after` stops it after that many atomic steps.
    fn pass(&mut self, policy: ConflictPolicy, crash_after: Option<usize>) -> usize {
        let mut budget = crash_after.unwrap_or(usize::MAX);
        let mut steps = 0;
        let mut take = |budget: &mut usize| {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            steps += 1;
            true
        };
        for effect in self.effects(policy) {
            match effect {
                Effect::SuspiciousEmpty { .. } => {}
                Effect::Track { observed } => {
                    if !take(&mut budget) {
                        break;
                    }
                    let uid = observed.identity.storage_key();
                    let existing = self.rows.iter().find(|(id, row)| {
                        row.uid.as_deref() == Some(uid.as_str()) || crm_uid(**id) == uid
                    });
                    let link = |crm, base, version, created_by| SyncLink {
                        mailbox: "alice".into(),
                        kind: ItemKind::Event,
                        identity: observed.identity.clone(),
                        location: observed.location.clone(),
                        crm,
                        base,
                        item_version: Some(VersionMarker(observed.etag.clone())),
                        crm_version: Some(version),
                        created_by,
                        state: LinkState::Synced,
                    };
                    match existing {
                        Some((id, _)) => {
                            // As the engine links an item to an existing row: no CRM version
                            // (a merge follows); the base is the file crmsync wrote for a
                            // CRM-created row, else nothing.
                            let (creator, base) = if crm_uid(*id) == uid {
                                (ItemCreator::Crm, observed.fields.clone())
                            } else {
                                (ItemCreator::Mailbox, Snapshot::new())
                            };
                            let mut l = link(row_ref(*id), base, 0, creator);
                            l.crm_version = None;
                            l.item_version = None;
                            let id = *id;
                            self.rows
                                .get_mut(&id)
                                .unwrap()
                                .uid
                                .get_or_insert(uid.clone());
                            self.links.insert(uid, l);
                        }
                        None => {
                            self.next_row += 1;
                            let id = self.next_row;
                            self.rows.insert(
                                id,
                                Row {
                                    uid: Some(uid.clone()),
                                    fields: observed.fields.clone(),
                                    version: 1,
                                    created_in_crm: false,
                                },
                            );
                            let l = link(
                                row_ref(id),
                                observed.fields.clone(),
                                1,
                                ItemCreator::Mailbox,
                            );
                            self.links.insert(uid, l);
                        }
                    }
                }
                Effect::Update {
                    link,
                    location,
                    etag,
                    item,
                    outcome,
                    crm_version,
                } => {
                    let href = href_of(&location);
                    let mut new_etag = etag.clone();
                    if !outcome.mailbox_writes.is_empty() {
                        if !take(&mut budget) {
                            break;
                        }
                        let next = self.etag();
                        let Some(file) = self.files.get_mut(&href) else {
                            continue;
                        };
                        if file.etag.to_string() != etag {
                            continue;
                        }
                        file.fields = apply(&file.fields, &outcome.mailbox_writes);
                        file.etag = next;
                        new_etag = next.to_string();
                    }
                    if !take(&mut budget) {
                        break;
                    }
                    let id = row_id(link.crm);
                    let Some(row) = self.rows.get_mut(&id) else {
                        continue;
                    };
                    if row.version != crm_version {
                        continue;
                    }
                    if !outcome.crm_writes.is_empty() {
                        row.fields = apply(&row.fields, &outcome.crm_writes);
                        row.version += 1;
                    }
                    let uid = link.identity.storage_key();
                    // As the engine and the store do: what the file holds now, and what the
                    // row holds where it differs.
                    let base = two_sided_base(&apply(&item, &outcome.mailbox_writes), &row.fields);
                    self.links.insert(
                        uid,
                        SyncLink {
                            location,
                            base,
                            item_version: Some(VersionMarker(new_etag)),
                            crm_version: Some(row.version),
                            ..link
                        },
                    );
                }
                Effect::Untrack { link, delete_crm } | Effect::ItemDeleted { link, delete_crm } => {
                    if !take(&mut budget) {
                        break;
                    }
                    self.links.remove(&link.identity.storage_key());
                    if delete_crm {
                        self.rows.remove(&row_id(link.crm));
                    }
                }
                Effect::CrmDeleted {
                    link,
                    location,
                    etag,
                    delete_item,
                } => {
                    if !take(&mut budget) {
                        break;
                    }
                    let href = href_of(&location);
                    let next = self.etag();
                    match self.files.get_mut(&href) {
                        Some(file) if file.etag.to_string() != etag => continue,
                        Some(_) if delete_item => {
                            self.files.remove(&href);
                        }
                        Some(file) => {
                            file.tracked = false;
                            file.etag = next;
                        }
                        None => {}
                    }
                    if !take(&mut budget) {
                        break;
                    }
                    self.links.remove(&link.identity.storage_key());
                }
                Effect::CreateItem { created } => {
                    if !take(&mut budget) {
                        break;
                    }
                    let uid = created.identity.storage_key();
                    let href = format!("{uid}.ics");
                    let etag = self.etag();
                    self.files.insert(
                        href.clone(),
                        File {
                            uid: uid.clone(),
                            tracked: true,
                            fields: created.fields.clone(),
                            etag,
                        },
                    );
                    if !take(&mut budget) {
                        break;
                    }
                    let id = row_id(created.crm);
                    let row = self.rows.get_mut(&id).unwrap();
                    row.uid.get_or_insert(uid.clone());
                    self.links.insert(
                        uid,
                        SyncLink {
                            mailbox: "alice".into(),
                            kind: ItemKind::Event,
                            identity: created.identity.clone(),
                            location: location(&href),
                            crm: created.crm,
                            base: created.fields,
                            item_version: Some(VersionMarker(etag.to_string())),
                            crm_version: Some(row.version),
                            created_by: ItemCreator::Crm,
                            state: LinkState::Synced,
                        },
                    );
                }
            }
        }
        steps
    }

    fn check_settled(&self, policy: ConflictPolicy) -> Result<(), TestCaseError> {
        // No UID has two rows.
        let mut uids = BTreeSet::new();
        for row in self.rows.values() {
            if let Some(uid) = &row.uid {
                prop_assert!(uids.insert(uid.clone()), "two rows for UID {}", uid);
            }
        }
        // Every tracked, readable file has one link, to a row with its fields.
        let mut seen = BTreeSet::new();
        for file in self.files.values() {
            if !seen.insert(file.uid.clone()) {
                continue;
            }
            let link = self.links.get(&file.uid);
            if file.tracked {
                let link =
                    link.ok_or_else(|| TestCaseError::fail(format!("{} unlinked", file.uid)))?;
                let row = self.rows.get(&row_id(link.crm));
                let row =
                    row.ok_or_else(|| TestCaseError::fail(format!("{} has no row", file.uid)))?;
                prop_assert_eq!(&row.fields, &file.fields, "fields of {}", file.uid);
            } else {
                prop_assert!(link.is_none(), "untracked {} still linked", file.uid);
            }
        }
        // Every link points at a file and a row; every row is in the calendar.
        for (uid, link) in &self.links {
            prop_assert!(
                self.files.contains_key(&href_of(&link.location)),
                "link {} to a missing file",
                uid
            );
            prop_assert!(
                self.rows.contains_key(&row_id(link.crm)),
                "link {} to a missing row",
                uid
            );
        }
        // Every row is in the calendar, tracked, or untracked by the person: a file with its
        // UID without the category (they removed it in the moment between crmsync writing the
        // file and recording its link; the row stays, as nothing tells it was untracked).
        let linked: BTreeSet<u128> = self.links.values().map(|l| row_id(l.crm)).collect();
        for (id, row) in &self.rows {
            let uid = row.uid.clone().unwrap_or_else(|| crm_uid(*id));
            let untracked_file = self.files.values().any(|f| f.uid == uid && !f.tracked);
            prop_assert!(
                linked.contains(id) || untracked_file,
                "row {} is in no calendar",
                id
            );
        }
        // And a further pass does nothing.
        for effect in self.effects(policy) {
            if let Effect::Update {
                link,
                location,
                etag,
                outcome,
                crm_version,
                ..
            } = &effect
            {
                let quiet = outcome.is_noop()
                    && *location == link.location
                    && link.item_version.as_ref().map(|v| &v.0) == Some(etag)
                    && Some(*crm_version) == link.crm_version;
                prop_assert!(quiet, "a settled pass still updates: {:?}", effect);
            } else {
                prop_assert!(false, "a settled pass still acts: {:?}", effect);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn histories_converge_without_duplicates_or_lost_rows(
        steps in prop::collection::vec(step(), 1..40),
        policy in prop::sample::select(ConflictPolicy::ALL.to_vec()),
    ) {
        let mut world = World::default();
        for step in &steps {
            world.play(step, policy);
        }
        // Two clean passes: the first may write files whose edits the second carries.
        world.pass(policy, None);
        world.pass(policy, None);
        world.check_settled(policy)?;
    }
}
