//! Sync links and per-folder sync state.

use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, Snapshot, SyncLink, VersionMarker};
use crmsync_core::model::{ActivityId, InvalidValue, RecordId};

use super::Backend;
use super::{bad_row, parse_field, parse_uuid};
use crate::LinkStore;
use crate::sql::{Row, Sql, optional, params};
use crate::{Result, SavedListing, SyncState};

pub(super) fn link_from_row(row: &Row) -> Result<SyncLink> {
    let id: i64 = row.get(0)?;
    let row_name = id.to_string();
    let kind_text: String = row.get(2)?;
    let kind = parse_field("sync_links", &row_name, ItemKind::parse(&kind_text))?;
    let identity_text: String = row.get(3)?;
    let location_text: String = row.get(4)?;
    let crm_kind: String = row.get(5)?;
    let crm_id: String = row.get(6)?;
    let crm_uuid = parse_uuid("sync_links", &crm_id)?;
    let base_text: String = row.get(7)?;
    let base_json: serde_json::Value = serde_json::from_str(&base_text)
        .map_err(|e| bad_row("sync_links", &row_name, format!("base is not JSON: {e}")))?;
    let mut base = Snapshot::new();
    let Some(fields) = base_json.as_object() else {
        return Err(bad_row(
            "sync_links",
            &row_name,
            "base is not a JSON object",
        ));
    };
    for (field, value) in fields {
        let Some(value) = value.as_str() else {
            return Err(bad_row(
                "sync_links",
                &row_name,
                format!("base field {field} is not text"),
            ));
        };
        base.set(field, value);
    }
    let created_by: String = row.get(10)?;
    let state: String = row.get(11)?;
    Ok(SyncLink {
        mailbox: row.get(1)?,
        kind,
        identity: parse_field(
            "sync_links",
            &row_name,
            ItemIdentity::from_storage_key(kind, &identity_text),
        )?,
        location: parse_field(
            "sync_links",
            &row_name,
            ItemLocation::from_storage_key(&location_text),
        )?,
        crm: match crm_kind.as_str() {
            "activity" => CrmRef::Activity(ActivityId(crm_uuid)),
            "record" => CrmRef::Record(RecordId(crm_uuid)),
            other => {
                return Err(bad_row(
                    "sync_links",
                    &row_name,
                    format!("bad crm_kind {other:?}"),
                ));
            }
        },
        base,
        item_version: row.get::<Option<String>>(8)?.map(VersionMarker),
        crm_version: row.get(9)?,
        created_by: parse_field("sync_links", &row_name, ItemCreator::parse(&created_by))?,
        state: parse_field("sync_links", &row_name, LinkState::parse(&state))?,
    })
}

pub(super) const LINK_COLUMNS: &str = "id, mailbox, item_kind, item_identity, item_location, crm_kind, crm_id, \
                            base, item_version, crm_version, created_by, state";

pub(super) fn upsert_link(conn: &mut dyn Sql, link: &SyncLink) -> Result<()> {
    let base: serde_json::Map<String, serde_json::Value> = link
        .base
        .fields()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    let base = serde_json::Value::Object(base).to_string();
    let (crm_kind, crm_id) = (link.crm.kind(), link.crm.uuid().to_string());
    conn.execute(
        "INSERT INTO sync_links (mailbox, item_kind, item_identity, item_location, crm_kind,
             crm_id, base, item_version, crm_version, created_by, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (mailbox, item_kind, item_identity) DO UPDATE SET
             item_location = excluded.item_location, crm_kind = excluded.crm_kind,
             crm_id = excluded.crm_id, base = excluded.base,
             item_version = excluded.item_version, crm_version = excluded.crm_version,
             created_by = excluded.created_by, state = excluded.state,
             modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        params![
            link.mailbox,
            link.kind.as_str(),
            link.identity.storage_key(),
            link.location.storage_key(),
            crm_kind,
            crm_id,
            base,
            link.item_version.as_ref().map(|v| v.0.as_str()),
            link.crm_version,
            link.created_by.as_str(),
            link.state.as_str(),
        ],
    )?;
    Ok(())
}

impl<B: Backend> LinkStore for B {
    fn put_link(&mut self, link: &SyncLink) -> Result<()> {
        self.write(|tx| upsert_link(tx, link))
    }

    fn link(
        &self,
        mailbox: &str,
        kind: ItemKind,
        identity: &ItemIdentity,
    ) -> Result<Option<SyncLink>> {
        self.read(|conn| {
            let row = conn.query_opt(
                &format!(
                    "SELECT {LINK_COLUMNS} FROM sync_links
                     WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3"
                ),
                params![mailbox, kind.as_str(), identity.storage_key()],
            )?;
            row.as_ref().map(link_from_row).transpose()
        })
    }

    fn links(&self, mailbox: &str) -> Result<Vec<SyncLink>> {
        self.read(|conn| {
            let mut links = Vec::new();
            for row in conn.query(
                &format!("SELECT {LINK_COLUMNS} FROM sync_links WHERE mailbox = ?1 ORDER BY id"),
                params![mailbox],
            )? {
                links.push(link_from_row(&row)?);
            }
            Ok(links)
        })
    }

    fn links_of(&self, mailbox: &str, kinds: &[ItemKind]) -> Result<Vec<SyncLink>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {LINK_COLUMNS} FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 ORDER BY id"
            );
            let mut links = Vec::new();
            for kind in kinds {
                for row in conn.query(&sql, params![mailbox, kind.as_str()])? {
                    links.push(link_from_row(&row)?);
                }
            }
            Ok(links)
        })
    }

    fn links_at(&self, mailbox: &str, locations: &[ItemLocation]) -> Result<Vec<SyncLink>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {LINK_COLUMNS} FROM sync_links WHERE mailbox = ?1 AND item_location = ?2"
            );
            let mut links = Vec::new();
            for location in locations {
                for row in conn.query(&sql, params![mailbox, location.storage_key()])? {
                    links.push(link_from_row(&row)?);
                }
            }
            Ok(links)
        })
    }

    fn links_to(&self, mailbox: &str, rows: &[CrmRef]) -> Result<Vec<SyncLink>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {LINK_COLUMNS} FROM sync_links
                 WHERE crm_kind = ?1 AND crm_id = ?2 AND mailbox = ?3"
            );
            let mut links = Vec::new();
            for row in rows {
                let id = row.uuid().to_string();
                for found in conn.query(&sql, params![row.kind(), id, mailbox])? {
                    links.push(link_from_row(&found)?);
                }
            }
            Ok(links)
        })
    }

    fn link_count(&self, mailbox: &str, kind: ItemKind) -> Result<u64> {
        self.read(|conn| {
            // Kept by triggers (migration 16): no count of the index on every pass.
            let count: i64 = optional(
                conn,
                "SELECT links FROM sync_link_counts WHERE mailbox = ?1 AND item_kind = ?2",
                params![mailbox, kind.as_str()],
            )?
            .unwrap_or(0);
            Ok(count.max(0) as u64)
        })
    }

    fn delete_link(
        &mut self,
        mailbox: &str,
        kind: ItemKind,
        identity: &ItemIdentity,
    ) -> Result<bool> {
        self.write(|tx| {
            let deleted = tx.execute("DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![mailbox, kind.as_str(), identity.storage_key()],
            )?;
            Ok(deleted > 0)
        })
    }

    fn sync_state(&self, mailbox: &str, scope: &str) -> Result<Option<SyncState>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT uid_validity, highest_modseq, sync_token, last_full_scan, auto_from_uid,
                        auto_policy
                     FROM sync_state WHERE mailbox = ?1 AND scope = ?2",
                params![mailbox, scope],
            )?
            .map(|row| -> Result<_> {
                Ok(SyncState {
                    uid_validity: row.get(0)?,
                    highest_modseq: row
                        .get::<Option<i64>>(1)?
                        .map(|modseq| modseq.max(0) as u64),
                    sync_token: row.get(2)?,
                    last_full_scan: row.get(3)?,
                    auto_from_uid: row.get(4)?,
                    auto_policy: row.get(5)?,
                })
            })
            .transpose()
        })
    }

    fn put_sync_state(&mut self, mailbox: &str, scope: &str, state: &SyncState) -> Result<()> {
        // RFC 7162 keeps mod-sequences within 63 bits, so they fit SQLite's integer.
        let modseq = state
            .highest_modseq
            .map(|modseq| {
                i64::try_from(modseq)
                    .map_err(|_| InvalidValue(format!("HIGHESTMODSEQ {modseq} exceeds 63 bits")))
            })
            .transpose()?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sync_state (mailbox, scope, uid_validity, highest_modseq, sync_token,
                                         last_full_scan, auto_from_uid, auto_policy)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (mailbox, scope) DO UPDATE SET
                     uid_validity = excluded.uid_validity, highest_modseq = excluded.highest_modseq,
                     sync_token = excluded.sync_token, last_full_scan = excluded.last_full_scan,
                     auto_from_uid = excluded.auto_from_uid, auto_policy = excluded.auto_policy,
                     modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![
                    mailbox,
                    scope,
                    state.uid_validity,
                    modseq,
                    state.sync_token,
                    state.last_full_scan,
                    state.auto_from_uid,
                    state.auto_policy
                ],
            )?;
            Ok(())
        })
    }

    fn collection_listing(&self, mailbox: &str, scope: &str) -> Result<Option<SavedListing>> {
        self.read(|conn| {
            let token: Option<String> = optional(
                conn,
                "SELECT sync_token FROM sync_state WHERE mailbox = ?1 AND scope = ?2",
                params![mailbox, scope],
            )?
            .flatten();
            let Some(token) = token else {
                return Ok(None);
            };
            let entries = conn
                .query(
                    "SELECT href, etag FROM collection_listings WHERE mailbox = ?1 AND scope = ?2",
                    params![mailbox, scope],
                )?
                .iter()
                .map(|row| Ok((row.get(0)?, row.get(1)?)))
                .collect::<Result<Vec<(String, String)>>>()?;
            Ok(Some(SavedListing { token, entries }))
        })
    }

    fn save_collection_listing(
        &mut self,
        mailbox: &str,
        scope: &str,
        token: &str,
        whole: bool,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        self.write(|tx| {
            if whole {
                tx.execute(
                    "DELETE FROM collection_listings WHERE mailbox = ?1 AND scope = ?2",
                    params![mailbox, scope],
                )?;
            }
            for (href, etag) in changes {
                match etag {
                    Some(etag) => tx.execute(
                        "INSERT INTO collection_listings (mailbox, scope, href, etag)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (mailbox, scope, href) DO UPDATE SET etag = excluded.etag",
                        params![mailbox, scope, href, etag],
                    )?,
                    None => tx.execute(
                        "DELETE FROM collection_listings
                         WHERE mailbox = ?1 AND scope = ?2 AND href = ?3",
                        params![mailbox, scope, href],
                    )?,
                };
            }
            tx.execute(
                "INSERT INTO sync_state (mailbox, scope, sync_token) VALUES (?1, ?2, ?3)
                 ON CONFLICT (mailbox, scope) DO UPDATE SET sync_token = excluded.sync_token,
                     modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![mailbox, scope, token],
            )?;
            Ok(())
        })
    }
}
