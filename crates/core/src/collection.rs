//! Collection reconciliation: for one pass over one calendar or address-book collection, what
//! to do about each item and each sync link (SPEC sections 3 to 6, for events, tasks and
//! contacts).
//!
//! The adapter lists the collection and hands in a [`CollectionView`]: every file name listed,
//! the files it could not read, and every item that is new or changed since its link last saw
//! it, with its fields and whether it carries the tracking category. It also hands in the
//! collection's links with the state of each link's CRM row, and the CRM rows that should
//! appear in the collection and have no link yet. [`reconcile`] returns the [`Effect`]s, which
//! the adapter applies in order.
//!
//! A link's base snapshot holds every mapped field as both sides agreed on it; fields are
//! settled one by one by [`crate::merge::three_way`].

use std::collections::{BTreeMap, BTreeSet};

use crate::item::{ItemIdentity, ItemKind, ItemLocation};
use crate::link::{CrmRef, ItemCreator, Snapshot, SyncLink};
use crate::merge::{self, MergeOutcome};
use crate::model::ConflictPolicy;

/// Fields that flow from the person's store to the CRM only: the organizer and attendees of an
/// event come from the person's calendar (the organizer's client sends the invitations), and
/// its time zone is the person's own (the same meeting in two calendars may be kept in two
/// zones); a CRM-side change of these is not written into the file.
pub const ONE_WAY_FIELDS: &[&str] = &["organizer", "attendees", "time_zone"];

/// An item that is new or changed since its link last saw it (or has no link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedItem {
    pub kind: ItemKind,
    pub identity: ItemIdentity,
    pub location: ItemLocation,
    /// The file's etag when it was read.
    pub etag: String,
    /// Whether it carries the tracking category.
    pub tracked: bool,
    pub fields: Snapshot,
}

impl ObservedItem {
    pub fn href(&self) -> &str {
        href(&self.location)
    }
}

/// The file name of a collection location.
pub fn href(location: &ItemLocation) -> &str {
    match location {
        ItemLocation::Collection { href, .. } => href,
        ItemLocation::Imap { .. } => "",
    }
}

/// A collection as this pass saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionView {
    /// Every item file listed, readable or not.
    pub hrefs: BTreeSet<String>,
    /// Files listed but not readable (malformed, no UID): their links are left alone.
    pub unreadable: BTreeSet<String>,
    pub changed: Vec<ObservedItem>,
    /// An administrator confirmed that a collection listing no item really is empty
    /// (`crmsync sync --accept-empty`).
    pub accept_empty: bool,
    /// An administrator confirmed that the items gone in this pass really went
    /// (`crmsync sync --accept-deletes`): the mass-delete guard stands aside.
    pub accept_deletes: bool,
    /// Links of the collection that went in the last passes (a daemon's recent window): a
    /// tool that deletes files one by one, passes apart, is still one mass delete.
    pub recently_gone: usize,
    /// Links of the collection this pass was not given, because it looked only at the files a
    /// watcher named and these point elsewhere: unchanged by what it saw, but counted by the
    /// empty-listing and mass-delete guards, which judge the whole collection.
    pub other_links: usize,
    /// Files listed that `hrefs` leaves out for the same reason (the links given point at
    /// none of them): the listing is empty only when this is 0 too.
    pub other_files: usize,
}

/// The CRM side of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmItem {
    Present {
        fields: Snapshot,
        version: i64,
        /// Whether the mailbox's owner owns the CRM copy (and may delete it).
        owned_by_mailbox_owner: bool,
    },
    Deleted,
}

/// A CRM row that belongs in the collection (created in the CRM for the mailbox's owner) and
/// has no link from this mailbox yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmCreated {
    pub kind: ItemKind,
    pub crm: CrmRef,
    /// The UID the new item gets.
    pub identity: ItemIdentity,
    pub fields: Snapshot,
    pub version: i64,
}

/// A merge of one linked item: write `outcome.mailbox_writes` into the file (refused if its
/// etag is no longer `etag`), then `outcome.crm_writes` into the CRM row and the item's fields
/// after the writes as the link's new base, in one transaction (refused if the row's version
/// moved since `crm_version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUpdate {
    pub link: SyncLink,
    pub location: ItemLocation,
    pub etag: String,
    /// The item's fields as read (or as the link last saw them): with
    /// `outcome.mailbox_writes` applied, what the item holds afterwards.
    pub item: Snapshot,
    pub outcome: MergeOutcome,
    pub crm_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Track an item: link it to the CRM row with its UID if one exists (the same meeting in
    /// another person's calendar, or an item this mailbox wrote before a crash), else create
    /// the CRM copy. Row and link in one transaction.
    Track { observed: ObservedItem },
    /// Carry changes both ways (see [`ItemUpdate`]).
    Update(ItemUpdate),
    /// The tracking category was removed: the owner's CRM copy is deleted, another user's is
    /// kept; the link goes either way.
    Untrack { link: SyncLink, delete_crm: bool },
    /// The file was deleted: as [`Effect::Untrack`].
    ItemDeleted { link: SyncLink, delete_crm: bool },
    /// The CRM row was deleted: an item the CRM created is deleted from the collection, one the
    /// person created loses its tracking category; the link goes.
    CrmDeleted {
        link: SyncLink,
        location: ItemLocation,
        etag: String,
        delete_item: bool,
    },
    /// Write a CRM-created row into the collection and link it.
    CreateItem { created: CrmCreated },
    /// The collection lists no item while links point into it: nothing is deleted, and the
    /// mailbox goes to the error state until the collection answers again or an administrator
    /// forces it.
    SuspiciousEmpty { links: usize },
    /// More than half of the collection's links (and more than [`MASS_DELETE_MIN`]) would go
    /// in this pass (files deleted or untracked): none of them is carried out, and the mailbox
    /// goes to the error state until an administrator confirms (`--accept-deletes`).
    MassDeleteHeld { gone: usize, links: usize },
}

/// The mass-delete guard's floor: more links than this, and more than half of a collection's
/// or folder's, gone in one pass are held for an administrator to confirm.
pub const MASS_DELETE_MIN: usize = 10;

/// Whether `gone` of `links` is a mass delete.
pub fn is_mass_delete(gone: usize, links: usize) -> bool {
    gone > MASS_DELETE_MIN && gone * 2 > links
}

/// The prefix of a base field that records what the CRM holds where it differs from the item
/// (a value the CRM cannot hold: a regarding number that names no record, an address that is
/// none). `crm:regarding` = [`ABSENT`] says the CRM holds no regarding while the item has one.
pub const CRM_PREFIX: &str = "crm:";

/// The value of a `crm:` base field for "the CRM holds nothing here".
pub const ABSENT: &str = "\u{0}";

/// The item's side of a link's base: what the item held when both were last in step.
pub fn item_side(base: &Snapshot) -> Snapshot {
    let mut side = Snapshot::new();
    for (field, value) in base.fields() {
        if !field.starts_with(CRM_PREFIX) {
            side.set(field, value);
        }
    }
    side
}

/// The CRM's side of a link's base: the item's side, except where the CRM stored something else.
pub fn crm_side(base: &Snapshot) -> Snapshot {
    let mut side = item_side(base);
    for (field, value) in base.fields() {
        if let Some(field) = field.strip_prefix(CRM_PREFIX) {
            side.set(field, if value == ABSENT { "" } else { value });
        }
    }
    side
}

/// A base from both sides as they now are: the item's fields, and `crm:` fields where the CRM
/// stored something else. The one-way fields are the item's only.
pub fn two_sided_base(item: &Snapshot, crm: &Snapshot) -> Snapshot {
    let mut base = item_side(item);
    let names: Vec<String> = item
        .field_names()
        .chain(crm.field_names())
        .filter(|f| !f.starts_with(CRM_PREFIX) && !ONE_WAY_FIELDS.contains(f))
        .map(str::to_owned)
        .collect();
    for field in names {
        let (i, c) = (item.get(&field), crm.get(&field));
        if i != c {
            base.set(&format!("{CRM_PREFIX}{field}"), c.unwrap_or(ABSENT));
        }
    }
    base
}

/// Merges one item against a link's base, which may differ per side (see [`two_sided_base`]):
/// the item changed a field when it differs from the item's side of the base, the CRM when it
/// differs from the CRM's side. The one-way fields are kept to the person's side. Writes are
/// what each side must change; `merged` is in the CRM's terms.
pub fn merge_item(
    base: &Snapshot,
    mailbox: &Snapshot,
    crm: &Snapshot,
    policy: ConflictPolicy,
) -> MergeOutcome {
    let item_base = item_side(base);
    let crm_base = crm_side(base);
    let mailbox = item_side(mailbox);
    // A field the person did not change counts as holding what the CRM's base holds, so a
    // value the CRM could not take is neither pushed again nor lost.
    let mut effective = Snapshot::new();
    let names: Vec<&str> = mailbox
        .field_names()
        .chain(item_base.field_names())
        .chain(crm_base.field_names())
        .collect();
    for field in names {
        let value = if mailbox.get(field) == item_base.get(field) {
            crm_base.get(field)
        } else {
            mailbox.get(field)
        };
        effective.set(field, value.unwrap_or(""));
    }
    let mut crm = crm.clone();
    for field in ONE_WAY_FIELDS {
        crm.set(field, crm_base.get(field).unwrap_or(""));
    }
    merge::three_way(&crm_base, &effective, &crm, policy)
}

/// What to do about every changed file, every link and every row the CRM created.
pub fn reconcile(
    view: &CollectionView,
    links: &[SyncLink],
    crm: &BTreeMap<CrmRef, CrmItem>,
    created: &[CrmCreated],
    policy: ConflictPolicy,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    let observed: BTreeMap<(ItemKind, &ItemIdentity), &ObservedItem> = view
        .changed
        .iter()
        .map(|item| ((item.kind, &item.identity), item))
        .collect();
    let linked: BTreeSet<(ItemKind, &ItemIdentity)> =
        links.iter().map(|l| (l.kind, &l.identity)).collect();

    let all_links = links.len() + view.other_links;
    let listing_empty = view.hrefs.is_empty() && view.other_files == 0;
    let suspicious = listing_empty && all_links > 0 && !view.accept_empty;
    if suspicious {
        effects.push(Effect::SuspiciousEmpty { links: all_links });
    }
    for link in links {
        let state = crm.get(&link.crm).unwrap_or(&CrmItem::Deleted);
        let effect = match observed.get(&(link.kind, &link.identity)) {
            Some(item) => changed_item(link, item, state, policy),
            None => unchanged_item(view, link, state, suspicious, policy),
        };
        effects.extend(effect);
    }
    for item in &view.changed {
        if item.tracked && !linked.contains(&(item.kind, &item.identity)) {
            effects.push(Effect::Track {
                observed: item.clone(),
            });
        }
    }
    for row in created {
        let seen = observed.contains_key(&(row.kind, &row.identity))
            || linked.contains(&(row.kind, &row.identity));
        if !seen {
            effects.push(Effect::CreateItem {
                created: row.clone(),
            });
        }
    }
    if !view.accept_deletes {
        hold_mass_delete(&mut effects, all_links, view.recently_gone);
    }
    effects
}

/// Whether an effect takes a link away (the mass-delete guard's kind).
pub fn takes_a_link(effect: &Effect) -> bool {
    matches!(effect, Effect::Untrack { .. } | Effect::ItemDeleted { .. })
}

/// The mass-delete guard: when more than half of the links (and more than
/// [`MASS_DELETE_MIN`]) would go, in this pass and the recent ones, none of this pass's goes;
/// [`Effect::MassDeleteHeld`] says so.
fn hold_mass_delete(effects: &mut Vec<Effect>, links: usize, recently_gone: usize) {
    let now = effects.iter().filter(|e| takes_a_link(e)).count();
    let (gone, links) = (now + recently_gone, links + recently_gone);
    if now > 0 && is_mass_delete(gone, links) {
        effects.retain(|e| !takes_a_link(e));
        effects.push(Effect::MassDeleteHeld { gone, links });
    }
}

fn owned(state: &CrmItem) -> bool {
    matches!(
        state,
        CrmItem::Present {
            owned_by_mailbox_owner: true,
            ..
        }
    )
}

/// A linked item whose file was read in this pass: untracked, deleted in the CRM, or merged.
fn changed_item(
    link: &SyncLink,
    item: &ObservedItem,
    state: &CrmItem,
    policy: ConflictPolicy,
) -> Option<Effect> {
    if !item.tracked {
        return Some(Effect::Untrack {
            link: link.clone(),
            delete_crm: owned(state),
        });
    }
    Some(match state {
        CrmItem::Deleted => Effect::CrmDeleted {
            link: link.clone(),
            location: item.location.clone(),
            etag: item.etag.clone(),
            delete_item: link.created_by == ItemCreator::Crm,
        },
        CrmItem::Present {
            fields, version, ..
        } => Effect::Update(ItemUpdate {
            link: link.clone(),
            location: item.location.clone(),
            etag: item.etag.clone(),
            item: item.fields.clone(),
            outcome: merge_item(&link.base, &item.fields, fields, policy),
            crm_version: *version,
        }),
    })
}

/// A linked item whose file was not read: unreadable (left alone), gone (deleted in the
/// collection, unless the listing is suspicious), or as the link last saw it (the CRM side
/// may have changed or gone).
fn unchanged_item(
    view: &CollectionView,
    link: &SyncLink,
    state: &CrmItem,
    suspicious: bool,
    policy: ConflictPolicy,
) -> Option<Effect> {
    let at = href(&link.location);
    if view.unreadable.contains(at) {
        return None;
    }
    if !view.hrefs.contains(at) {
        return (!suspicious).then(|| Effect::ItemDeleted {
            link: link.clone(),
            delete_crm: owned(state),
        });
    }
    let etag = link
        .item_version
        .as_ref()
        .map(|v| v.0.clone())
        .unwrap_or_default();
    match state {
        CrmItem::Deleted => Some(Effect::CrmDeleted {
            link: link.clone(),
            location: link.location.clone(),
            etag,
            delete_item: link.created_by == ItemCreator::Crm,
        }),
        CrmItem::Present {
            fields, version, ..
        } if Some(*version) != link.crm_version => Some(Effect::Update(ItemUpdate {
            link: link.clone(),
            location: link.location.clone(),
            etag,
            item: item_side(&link.base),
            outcome: merge_item(&link.base, &item_side(&link.base), fields, policy),
            crm_version: *version,
        })),
        CrmItem::Present { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LinkState, VersionMarker};
    use crate::model::ActivityId;

    fn uid(u: &str) -> ItemIdentity {
        ItemIdentity::Calendar { uid: u.into() }
    }

    fn at(href: &str) -> ItemLocation {
        ItemLocation::Collection {
            collection: "calendar".into(),
            href: href.into(),
        }
    }

    fn fields(subject: &str) -> Snapshot {
        Snapshot::new().with("subject", subject)
    }

    fn activity(n: u128) -> CrmRef {
        CrmRef::Activity(ActivityId(uuid::Uuid::from_u128(n)))
    }

    fn link(u: &str, href: &str, crm: CrmRef, created_by: ItemCreator) -> SyncLink {
        SyncLink {
            mailbox: "alice".into(),
            kind: ItemKind::Event,
            identity: uid(u),
            location: at(href),
            crm,
            base: fields("Call"),
            item_version: Some(VersionMarker("e1".into())),
            crm_version: Some(1),
            created_by,
            state: LinkState::Synced,
        }
    }

    fn observed(u: &str, href: &str, tracked: bool, subject: &str) -> ObservedItem {
        ObservedItem {
            kind: ItemKind::Event,
            identity: uid(u),
            location: at(href),
            etag: "e2".into(),
            tracked,
            fields: fields(subject),
        }
    }

    fn view(hrefs: &[&str], changed: Vec<ObservedItem>) -> CollectionView {
        CollectionView {
            hrefs: hrefs.iter().map(|h| (*h).to_owned()).collect(),
            unreadable: BTreeSet::new(),
            changed,
            accept_empty: false,
            accept_deletes: false,
            recently_gone: 0,
            other_links: 0,
            other_files: 0,
        }
    }

    fn present(subject: &str, version: i64, owned: bool) -> CrmItem {
        CrmItem::Present {
            fields: fields(subject),
            version,
            owned_by_mailbox_owner: owned,
        }
    }

    #[test]
    fn unchanged_on_both_sides_is_quiet() {
        let l = link("u1", "u1.ics", activity(1), ItemCreator::Mailbox);
        let crm = BTreeMap::from([(activity(1), present("Call", 1, true))]);
        let effects = reconcile(
            &view(&["u1.ics"], vec![]),
            &[l],
            &crm,
            &[],
            ConflictPolicy::MailboxWins,
        );
        assert_eq!(effects, []);
    }

    #[test]
    fn more_than_half_and_more_than_ten_gone_in_one_pass_are_held() {
        let links: Vec<SyncLink> = (0..24)
            .map(|n| {
                let name = format!("u{n}");
                link(
                    &name,
                    &format!("{name}.ics"),
                    activity(n),
                    ItemCreator::Mailbox,
                )
            })
            .collect();
        let crm: BTreeMap<CrmRef, CrmItem> = (0..24)
            .map(|n| (activity(n), present("Call", 1, true)))
            .collect();
        // 13 of 24 files gone: held, nothing deleted.
        let remaining: Vec<String> = (13..24).map(|n| format!("u{n}.ics")).collect();
        let remaining: Vec<&str> = remaining.iter().map(String::as_str).collect();
        let mut seen = view(&remaining, vec![]);
        let effects = reconcile(&seen, &links, &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(
            effects,
            [Effect::MassDeleteHeld {
                gone: 13,
                links: 24
            }]
        );
        // Confirmed by an administrator: carried out.
        seen.accept_deletes = true;
        let effects = reconcile(&seen, &links, &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(effects.len(), 13);
        assert!(
            effects
                .iter()
                .all(|e| matches!(e, Effect::ItemDeleted { .. }))
        );
        // 8 files gone now after 5 in the recent passes: 13 of 24 again, held.
        let remaining: Vec<String> = (13..24).map(|n| format!("u{n}.ics")).collect();
        let remaining: Vec<&str> = remaining.iter().map(String::as_str).collect();
        let mut seen = view(&remaining, vec![]);
        seen.recently_gone = 5;
        let effects = reconcile(&seen, &links[5..], &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(
            effects,
            [Effect::MassDeleteHeld {
                gone: 13,
                links: 24
            }]
        );
        // Half of them (12 of 24), or 10 of 12: not a mass delete.
        for (gone, of) in [(12, 24), (10, 12)] {
            let remaining: Vec<String> = (gone..of).map(|n| format!("u{n}.ics")).collect();
            let remaining: Vec<&str> = remaining.iter().map(String::as_str).collect();
            let effects = reconcile(
                &view(&remaining, vec![]),
                &links[..of as usize],
                &crm,
                &[],
                ConflictPolicy::MailboxWins,
            );
            assert_eq!(effects.len(), gone as usize, "{gone} of {of}");
        }
    }

    // Long on purpose: the delete matrix of SPEC section 6, one case after another.
    #[test]
    fn the_delete_matrix() {
        let mine = link("u1", "u1.ics", activity(1), ItemCreator::Mailbox);
        let from_crm = link("u2", "u2.ics", activity(2), ItemCreator::Crm);
        let theirs = link("u3", "u3.ics", activity(3), ItemCreator::Mailbox);
        let links = [mine.clone(), from_crm.clone(), theirs.clone()];
        let crm = BTreeMap::from([
            (activity(1), present("Call", 1, true)),
            (activity(2), present("Call", 1, true)),
            (activity(3), present("Call", 1, false)),
        ]);
        // Files deleted: the owner's copies go, another user's stays.
        let effects = reconcile(
            &view(&["other.ics"], vec![]),
            &links,
            &crm,
            &[],
            ConflictPolicy::MailboxWins,
        );
        assert_eq!(
            effects,
            [
                Effect::ItemDeleted {
                    link: mine.clone(),
                    delete_crm: true
                },
                Effect::ItemDeleted {
                    link: from_crm.clone(),
                    delete_crm: true
                },
                Effect::ItemDeleted {
                    link: theirs.clone(),
                    delete_crm: false
                },
            ]
        );
        // Category removed: the same rule.
        let effects = reconcile(
            &view(
                &["u1.ics", "u3.ics"],
                vec![
                    observed("u1", "u1.ics", false, "Call"),
                    observed("u3", "u3.ics", false, "Call"),
                ],
            ),
            &[mine.clone(), theirs.clone()],
            &crm,
            &[],
            ConflictPolicy::MailboxWins,
        );
        assert!(matches!(
            &effects[..],
            [
                Effect::Untrack {
                    delete_crm: true,
                    ..
                },
                Effect::Untrack {
                    delete_crm: false,
                    ..
                }
            ]
        ));
        // Deleted in the CRM: the item the CRM created goes; the person's loses its category.
        let effects = reconcile(
            &view(&["u1.ics", "u2.ics"], vec![]),
            &[mine.clone(), from_crm.clone()],
            &BTreeMap::new(),
            &[],
            ConflictPolicy::MailboxWins,
        );
        assert!(matches!(
            &effects[..],
            [
                Effect::CrmDeleted {
                    delete_item: false,
                    ..
                },
                Effect::CrmDeleted {
                    delete_item: true,
                    ..
                }
            ]
        ));
    }

    #[test]
    fn an_empty_listing_deletes_nothing_unless_accepted() {
        let l = link("u1", "u1.ics", activity(1), ItemCreator::Mailbox);
        let crm = BTreeMap::from([(activity(1), present("Call", 1, true))]);
        let effects = reconcile(
            &view(&[], vec![]),
            std::slice::from_ref(&l),
            &crm,
            &[],
            ConflictPolicy::MailboxWins,
        );
        assert_eq!(effects, [Effect::SuspiciousEmpty { links: 1 }]);
        let mut accepted = view(&[], vec![]);
        accepted.accept_empty = true;
        let effects = reconcile(&accepted, &[l], &crm, &[], ConflictPolicy::MailboxWins);
        assert!(matches!(&effects[..], [Effect::ItemDeleted { .. }]));
    }

    #[test]
    fn a_pass_over_some_files_judges_deletes_against_the_whole_collection() {
        let links: Vec<SyncLink> = (0..12)
            .map(|n| {
                let name = format!("u{n}");
                link(
                    &name,
                    &format!("{name}.ics"),
                    activity(n),
                    ItemCreator::Mailbox,
                )
            })
            .collect();
        let crm: BTreeMap<CrmRef, CrmItem> = (0..12)
            .map(|n| (activity(n), present("Call", 1, true)))
            .collect();
        // A watcher named 12 deleted files of a collection of 30 links: 12 of 30 is no mass
        // delete, but 12 of the 12 given would be.
        let remaining: Vec<String> = (12..30).map(|n| format!("u{n}.ics")).collect();
        let remaining: Vec<&str> = remaining.iter().map(String::as_str).collect();
        let mut seen = view(&remaining, vec![]);
        seen.other_links = 18;
        let effects = reconcile(&seen, &links, &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(effects.len(), 12);
        assert!(
            effects
                .iter()
                .all(|e| matches!(e, Effect::ItemDeleted { .. }))
        );
        // Of a collection of 20 links, the same 12 are a mass delete.
        seen.other_links = 8;
        let effects = reconcile(&seen, &links, &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(
            effects,
            [Effect::MassDeleteHeld {
                gone: 12,
                links: 20
            }]
        );
        // The last file of the collection named gone while the links it was not given point
        // into it: the listing is empty, nothing is deleted.
        let mut empty = view(&[], vec![]);
        empty.other_links = 3;
        let effects = reconcile(&empty, &links[..1], &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(effects, [Effect::SuspiciousEmpty { links: 4 }]);
        // Other files are still there: one file deleted, no empty listing.
        empty.other_files = 2;
        let effects = reconcile(&empty, &links[..1], &crm, &[], ConflictPolicy::MailboxWins);
        assert!(
            matches!(&effects[..], [Effect::ItemDeleted { .. }]),
            "{effects:?}"
        );
    }

    #[test]
    fn edits_renames_and_unreadable_files() {
        let l = link("u1", "u1.ics", activity(1), ItemCreator::Mailbox);
        // Renamed and edited by the person; the CRM unchanged.
        let crm = BTreeMap::from([(activity(1), present("Call", 1, true))]);
        let effects = reconcile(
            &view(
                &["new.ics"],
                vec![observed("u1", "new.ics", true, "Call 2")],
            ),
            std::slice::from_ref(&l),
            &crm,
            &[],
            ConflictPolicy::MailboxWins,
        );
        let [Effect::Update(update)] = &effects[..] else {
            panic!("{effects:?}")
        };
        assert_eq!(update.location, at("new.ics"));
        assert_eq!(update.outcome.crm_writes.len(), 1);
        assert!(update.outcome.mailbox_writes.is_empty());
        // Changed in the CRM only: written to the file as the link last saw it.
        let crm = BTreeMap::from([(activity(1), present("Call 3", 2, true))]);
        let effects = reconcile(
            &view(&["u1.ics"], vec![]),
            std::slice::from_ref(&l),
            &crm,
            &[],
            ConflictPolicy::MailboxWins,
        );
        let [Effect::Update(update)] = &effects[..] else {
            panic!("{effects:?}")
        };
        assert_eq!(update.etag, "e1");
        assert_eq!(update.outcome.mailbox_writes.len(), 1);
        // A file that cannot be read is left alone, not taken for deleted.
        let mut unreadable = view(&["u1.ics"], vec![]);
        unreadable.unreadable.insert("u1.ics".into());
        let effects = reconcile(&unreadable, &[l], &crm, &[], ConflictPolicy::MailboxWins);
        assert_eq!(effects, []);
    }

    #[test]
    fn new_items_on_either_side() {
        let crm = BTreeMap::new();
        let created = CrmCreated {
            kind: ItemKind::Event,
            crm: activity(9),
            identity: uid("a9"),
            fields: fields("From the CRM"),
            version: 1,
        };
        let effects = reconcile(
            &view(
                &["n.ics", "p.ics"],
                vec![
                    observed("n", "n.ics", true, "New"),
                    observed("p", "p.ics", false, "Private"),
                ],
            ),
            &[],
            &crm,
            std::slice::from_ref(&created),
            ConflictPolicy::MailboxWins,
        );
        assert!(
            matches!(&effects[..], [Effect::Track { observed }, Effect::CreateItem { .. }] if observed.href() == "n.ics")
        );
        // A CRM-created item already written (a crash before its link) is tracked, not
        // written twice.
        let effects = reconcile(
            &view(
                &["a9.ics"],
                vec![observed("a9", "a9.ics", true, "From the CRM")],
            ),
            &[],
            &crm,
            &[created],
            ConflictPolicy::MailboxWins,
        );
        assert!(matches!(&effects[..], [Effect::Track { .. }]));
    }

    #[test]
    fn a_value_the_crm_cannot_hold_is_neither_pushed_again_nor_lost() {
        // The file says OPP-4242, which names no record: the CRM holds none.
        let file = Snapshot::new()
            .with("regarding", "OPP-4242")
            .with("subject", "Call");
        let stored = Snapshot::new().with("subject", "Call");
        let base = two_sided_base(&file, &stored);
        assert_eq!(crm_side(&base), stored);
        assert_eq!(item_side(&base), file);
        // The person edits the subject; the CRM is unchanged: only the subject goes across.
        let edited = file.clone().with("subject", "Call back");
        let outcome = merge_item(&base, &edited, &stored, ConflictPolicy::MailboxWins);
        assert!(outcome.conflicts.is_empty());
        assert!(outcome.mailbox_writes.is_empty(), "{outcome:?}");
        assert_eq!(outcome.crm_writes.len(), 1);
        assert_eq!(outcome.crm_writes[0].field, "subject");
        // The CRM sets a regarding while the file still says OPP-4242: the CRM's edit wins,
        // no conflict.
        let crm = stored.clone().with("regarding", "ACC-1");
        let outcome = merge_item(&base, &file, &crm, ConflictPolicy::MailboxWins);
        assert!(outcome.conflicts.is_empty());
        assert_eq!(outcome.merged.get("regarding"), Some("ACC-1"));
        assert_eq!(outcome.mailbox_writes.len(), 1);
        // Nothing changed anywhere: nothing to write.
        let outcome = merge_item(&base, &file, &stored, ConflictPolicy::CrmWins);
        assert!(outcome.is_noop());
    }

    #[test]
    fn parties_flow_one_way() {
        let base = Snapshot::new().with("attendees", "a@x.example");
        let crm = Snapshot::new().with("attendees", "b@x.example");
        let outcome = merge_item(&base, &base, &crm, ConflictPolicy::CrmWins);
        assert!(outcome.is_noop());
        let mailbox = Snapshot::new().with("attendees", "c@x.example");
        let outcome = merge_item(&base, &mailbox, &crm, ConflictPolicy::CrmWins);
        assert!(outcome.conflicts.is_empty());
        assert_eq!(outcome.merged, mailbox);
    }
}
