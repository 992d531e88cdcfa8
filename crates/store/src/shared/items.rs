//! Tracked events, tasks and contacts: rows created, linked, merged and deleted with their links (the row helpers are in `item_rows`).

use std::collections::HashMap;

use crmsync_core::item::ItemKind;
use crmsync_core::link::{CrmRef, ItemCreator, Snapshot, SyncLink};
use crmsync_core::merge::FieldWrite;
use crmsync_core::model::EmailAddress;

use super::activities::{count, how_many};
use super::links::upsert_link;
use super::{Backend, item_rows};
use crate::ItemStore;
use crate::sql::params;
use crate::{Result, StoreError};

impl<B: Backend> ItemStore for B {
    fn linked_items(&self, mailbox: &str) -> Result<HashMap<CrmRef, crate::LinkedItem>> {
        self.read(|conn| item_rows::linked(conn, mailbox))
    }

    fn linked_item(&self, crm: CrmRef) -> Result<Option<crate::LinkedItem>> {
        self.read(|conn| item_rows::linked_one(conn, crm))
    }

    fn item_fields(&self, crm: CrmRef) -> Result<Option<Snapshot>> {
        self.read(|conn| item_rows::item_fields(conn, crm))
    }

    fn item_by_uid(
        &self,
        kind: ItemKind,
        uid: &str,
        owner: &EmailAddress,
    ) -> Result<Option<(CrmRef, ItemCreator)>> {
        self.read(|conn| item_rows::by_uid(conn, kind, uid, owner))
    }

    fn track_items(&mut self, items: &[(crate::NewItem, SyncLink)]) -> Result<Vec<crate::Tracked>> {
        let crate::Rules { base, resolve } = self.rules();
        self.write(|tx| {
            let mut results = Vec::with_capacity(items.len());
            for (item, link) in items {
                let mut warnings = Vec::new();
                let mut link = link.clone();
                // Looked up inside the write transaction, so two mailboxes tracking the same
                // meeting at the same moment make one row.
                let linked = match item_rows::by_uid(tx, item.kind, &item.uid, &item.owner)? {
                    Some((crm, creator)) => {
                        // Linked without a CRM version, so a merge follows. The base is what
                        // both sides are known to share: for a file crmsync wrote for this
                        // CRM-created row (a crash came before its link), the file as written;
                        // for the same item tracked in another mailbox, nothing, so every
                        // field on which the two differ is a conflict the policy settles.
                        item_rows::set_uid(tx, crm, &item.uid)?;
                        link.crm = crm;
                        link.created_by = creator;
                        link.crm_version = None;
                        // Neither side's version is known: the merge reads both.
                        link.item_version = None;
                        if creator == ItemCreator::Mailbox {
                            link.base = Snapshot::new();
                        }
                        Some(creator)
                    }
                    None => {
                        item_rows::insert_item(tx, link.crm, item, &mut warnings, resolve)?;
                        link.crm_version = item_rows::row_version(tx, link.crm)?;
                        // The base is what the CRM holds, which is the item's fields unless
                        // the CRM could not take some (an unknown regarding number, an address
                        // that is none): those stay differences, never taken for CRM edits.
                        if let Some(stored) = item_rows::item_fields(tx, link.crm)? {
                            link.base = base(&link.base, &stored);
                        }
                        None
                    }
                };
                upsert_link(tx, &link)?;
                results.push(crate::Tracked { linked, warnings });
            }
            Ok(results)
        })
    }

    fn link_item(&mut self, link: &SyncLink, uid: &str) -> Result<i64> {
        self.write(|tx| {
            let before = item_rows::row_version(tx, link.crm)?
                .ok_or_else(|| StoreError::NotFound("the linked CRM row".into()))?;
            item_rows::set_uid(tx, link.crm, uid)?;
            let version = item_rows::row_version(tx, link.crm)?.unwrap_or(before);
            let mut link = link.clone();
            // Recording the UID bumped the version. A link that knew the row's version still
            // does; one whose version moved since its base was read (an edit came in between)
            // or that never knew it does not, so the next pass merges.
            link.crm_version = match link.crm_version {
                Some(expected) if expected == before => Some(version),
                _ => None,
            };
            upsert_link(tx, &link)?;
            Ok(version)
        })
    }

    fn update_item(
        &mut self,
        link: &SyncLink,
        expected_version: i64,
        writes: &[FieldWrite],
        owner: &EmailAddress,
    ) -> Result<(i64, Vec<String>)> {
        let crate::Rules { base, resolve } = self.rules();
        self.write(|tx| {
            let mut warnings = Vec::new();
            let found = item_rows::row_version(tx, link.crm)?
                .ok_or_else(|| StoreError::NotFound("the linked CRM row".into()))?;
            if found != expected_version {
                return Err(StoreError::Conflict(format!(
                    "the CRM row changed while it was merged (version {expected_version} is now {found}); merged again on the next pass"
                )));
            }
            match link.crm {
                CrmRef::Activity(id) => {
                    item_rows::write_activity(tx, id, writes, &mut warnings, resolve)?
                }
                CrmRef::Record(id) => item_rows::write_contact(tx, id, owner, writes, &mut warnings)?,
            }
            let version = item_rows::row_version(tx, link.crm)?.unwrap_or(found);
            let mut link = link.clone();
            link.crm_version = Some(version);
            // The CRM's fields as stored become the base (see `track_items`).
            if let Some(stored) = item_rows::item_fields(tx, link.crm)? {
                link.base = base(&link.base, &stored);
            }
            upsert_link(tx, &link)?;
            Ok((version, warnings))
        })
    }

    fn delete_item(&mut self, link: &SyncLink) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![link.mailbox, link.kind.as_str(), link.identity.storage_key()],
            )?;
            match link.crm {
                CrmRef::Activity(id) => {
                    tx.execute("DELETE FROM activities WHERE id = ?1", params![id.to_string()])?;
                }
                CrmRef::Record(id) => {
                    let key = id.to_string();
                    let regarding =
                        count(tx, "SELECT count(*) FROM activities WHERE regarding_id = ?1", &key)?;
                    if regarding > 0 {
                        return Err(StoreError::Refused(format!(
                            "the contact is the regarding record of {}: it is kept",
                            how_many(regarding, "activity", "activities")
                        )));
                    }
                    tx.execute("DELETE FROM records WHERE id = ?1", params![key])?;
                }
            }
            Ok(())
        })
    }

    fn created_items(
        &self,
        mailbox: &str,
        owner: &EmailAddress,
        calendar: bool,
        contacts: bool,
    ) -> Result<Vec<crate::CreatedItem>> {
        self.read(|conn| item_rows::created(conn, mailbox, owner, calendar, contacts))
    }
}
