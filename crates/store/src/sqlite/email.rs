//! Tracked email: the activity of a message identity, created with its link in one transaction, and the links of a mailbox with their activities.

use std::collections::{BTreeSet, HashMap};

use crmsync_core::auto::{NeverEntry, TrackedThread};
use crmsync_core::item::ItemIdentity;
use crmsync_core::link::{CrmRef, SyncLink};
use crmsync_core::model::{ActivityId, InvalidValue, RecordNumber};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::activities::{insert_parties, regarding_id};
use super::links::upsert_link;
use super::users::user_id_by_email;
use super::{bad_row, execute_cached, parse_field, parse_uuid, query_row_cached};
use crate::EmailStore;
use crate::{LinkedActivity, NewEmail, Result};

pub(super) fn link_activity(link: &SyncLink) -> Result<ActivityId> {
    match link.crm {
        CrmRef::Activity(id) => Ok(id),
        CrmRef::Record(_) => {
            Err(InvalidValue("this link points at a record, not an activity".into()).into())
        }
    }
}

impl EmailStore for SqliteStore {
    fn email_activity(&self, message_id: &str, content_hash: &str) -> Result<Option<ActivityId>> {
        self.read(|conn| {
            let id: Option<String> = query_row_cached(
                conn,
                "SELECT id FROM activities WHERE type = 'email' AND message_id = ?1
                     AND content_hash = ?2 ORDER BY created LIMIT 1",
                [message_id, content_hash],
                |row| row.get(0),
            )
            .optional()?;
            id.map(|id| Ok(ActivityId(parse_uuid("activities", &id)?)))
                .transpose()
        })
    }

    // Long on purpose: one transaction (identity looked up, activity, parties, attachments,
    // link), read top to bottom.
    fn track_email(
        &mut self,
        email: &NewEmail,
        link: &SyncLink,
    ) -> Result<(ActivityId, Option<String>)> {
        let id = link_activity(link)?;
        let resolve = self.rules.resolve;
        self.write(|tx| {
            let owner_id = user_id_by_email(tx, &email.owner)?;
            let (regarding, warning) = regarding_id(tx, email.regarding.as_ref())?;
            // Looked up inside the write transaction: the same message tracked in two
            // mailboxes at the same moment is still one activity.
            let existing: Option<String> = query_row_cached(
                tx,
                "SELECT id FROM activities WHERE message_id = ?1 AND content_hash = ?2 LIMIT 1",
                params![email.message_id, email.content_hash],
                |row| row.get(0),
            )
            .optional()?;
            if let Some(existing) = existing {
                let existing = ActivityId(parse_uuid("activities", &existing)?);
                if email.regarding.is_some() {
                    execute_cached(
                        tx,
                        "UPDATE activities SET regarding_id = ?1 WHERE id = ?2 AND regarding_id IS NOT ?1",
                        params![regarding, existing.to_string()],
                    )?;
                }
                let mut link = link.clone();
                link.crm = CrmRef::Activity(existing);
                upsert_link(tx, &link)?;
                return Ok((existing, warning));
            }
            let (state, direction) = if email.outgoing {
                ("sent", "outgoing")
            } else {
                ("received", "incoming")
            };
            execute_cached(tx,
                "INSERT INTO activities (id, type, owner_id, regarding_id, subject, state,
                     description, html_body, message_id, content_hash, in_reply_to,
                     message_references, direction, sent_at, received_at, created_by,
                     auto_tracked)
                 VALUES (?1, 'email', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                         ?16)",
                params![
                    id.to_string(),
                    owner_id,
                    regarding,
                    email.subject,
                    state,
                    email.text_body,
                    email.html_body,
                    email.message_id,
                    email.content_hash,
                    email.in_reply_to,
                    email.references,
                    direction,
                    email.date,
                    if email.outgoing { None } else { email.date.clone() },
                    email.mailbox,
                    email.automatic,
                ],
            )?;
            insert_parties(tx, id, &email.parties, resolve)?;
            for (position, attachment) in email.attachments.iter().enumerate() {
                execute_cached(tx,
                    "INSERT INTO attachments (activity_id, position, name, content_type, size, content)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id.to_string(),
                        position as i64,
                        attachment.name,
                        attachment.content_type,
                        attachment.content.len() as i64,
                        attachment.content
                    ],
                )?;
            }
            upsert_link(tx, link)?;
            Ok((id, warning))
        })
    }

    fn linked_activities(&self, mailbox: &str) -> Result<HashMap<ActivityId, LinkedActivity>> {
        self.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT a.id, u.email, r.number, a.version FROM sync_links l
                 JOIN activities a ON a.id = l.crm_id
                 LEFT JOIN users u ON u.record_id = a.owner_id
                 LEFT JOIN records r ON r.id = a.regarding_id
                 WHERE l.mailbox = ?1 AND l.crm_kind = 'activity'",
            )?;
            let mut rows = statement.query([mailbox])?;
            let mut found = HashMap::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let regarding: Option<String> = row.get(2)?;
                found.insert(
                    ActivityId(parse_uuid("activities", &id)?),
                    LinkedActivity {
                        owner: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        regarding: regarding
                            .map(|n| parse_field("records", &id, RecordNumber::new(&n)))
                            .transpose()?,
                        version: row.get(3)?,
                    },
                );
            }
            Ok(found)
        })
    }

    fn update_link(
        &mut self,
        link: &SyncLink,
        regarding: Option<Option<&RecordNumber>>,
    ) -> Result<Option<String>> {
        self.write(|tx| {
            let mut warning = None;
            if let Some(number) = regarding {
                let id = link_activity(link)?;
                let (record_id, unknown) = regarding_id(tx, number)?;
                warning = unknown;
                execute_cached(tx,
                    "UPDATE activities SET regarding_id = ?1 WHERE id = ?2 AND regarding_id IS NOT ?1",
                    params![record_id, id.to_string()],
                )?;
            }
            upsert_link(tx, link)?;
            Ok(warning)
        })
    }

    fn untrack_and_delete(&mut self, link: &SyncLink) -> Result<()> {
        let id = link_activity(link)?;
        self.write(|tx| {
            // Drop the link first, then delete the target.
            execute_cached(tx,
                "DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![link.mailbox, link.kind.as_str(), link.identity.storage_key()],
            )?;
            execute_cached(tx, "DELETE FROM activities WHERE id = ?1", [id.to_string()])?;
            tombstone(tx, &link.mailbox, &link.identity)
        })
    }

    fn untrack_link(&mut self, mailbox: &str, identity: &ItemIdentity) -> Result<bool> {
        self.write(|tx| {
            let deleted = execute_cached(
                tx,
                "DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = 'email' AND item_identity = ?2",
                params![mailbox, identity.storage_key()],
            )?;
            tombstone(tx, mailbox, identity)?;
            Ok(deleted > 0)
        })
    }

    fn tombstones(&self, mailbox: &str) -> Result<BTreeSet<String>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT identity FROM email_tombstones WHERE mailbox = ?1")?;
            let keys = statement
                .query_map([mailbox], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(keys)
        })
    }

    fn never_entries(&self, mailbox: Option<&str>) -> Result<Vec<(Option<String>, NeverEntry)>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT mailbox, entry FROM never_track
                 WHERE ?1 IS NULL OR mailbox = '' OR mailbox = ?1 ORDER BY mailbox, entry",
            )?;
            let rows = statement
                .query_map([mailbox], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(mailbox, entry)| {
                    let parsed = NeverEntry::parse(&entry).ok_or_else(|| {
                        bad_row("never_track", &entry, "not an address or @domain")
                    })?;
                    Ok(((!mailbox.is_empty()).then_some(mailbox), parsed))
                })
                .collect()
        })
    }

    fn add_never(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<bool> {
        self.write(|tx| {
            let added = execute_cached(
                tx,
                "INSERT OR IGNORE INTO never_track (mailbox, entry) VALUES (?1, ?2)",
                params![mailbox.unwrap_or(""), entry.to_string()],
            )?;
            Ok(added > 0)
        })
    }

    fn remove_never(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<bool> {
        self.write(|tx| {
            let removed = execute_cached(
                tx,
                "DELETE FROM never_track WHERE mailbox = ?1 AND entry = ?2",
                params![mailbox.unwrap_or(""), entry.to_string()],
            )?;
            Ok(removed > 0)
        })
    }

    fn purge_automatic(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<u64> {
        let (address, domain) = match entry {
            NeverEntry::Address(address) => (Some(address.clone()), None),
            NeverEntry::Domain(domain) => (None, Some(format!("@{domain}"))),
        };
        self.write(|tx| {
            let deleted = execute_cached(
                tx,
                "DELETE FROM activities WHERE type = 'email' AND auto_tracked = 1
                   AND id IN (SELECT activity_id FROM parties
                              WHERE lower(address) = ?1
                                 OR (?2 IS NOT NULL
                                     AND substr(lower(address), -length(?2)) = ?2))
                   AND (?3 IS NULL OR id IN (SELECT crm_id FROM sync_links
                                             WHERE crm_kind = 'activity' AND mailbox = ?3))",
                params![address, domain, mailbox],
            )?;
            Ok(deleted as u64)
        })
    }

    fn recent_emails(&self, sender: &str, subject: &str, since: &str) -> Result<u32> {
        self.read(|conn| {
            let count: i64 = query_row_cached(
                conn,
                "SELECT count(*) FROM activities a
                 WHERE a.type = 'email' AND a.subject = ?2 AND a.created >= ?3
                   AND EXISTS (SELECT 1 FROM parties p WHERE p.activity_id = a.id
                                 AND p.role = 'from' AND lower(p.address) = ?1)",
                params![sender, subject, since],
                |row| row.get(0),
            )?;
            Ok(u32::try_from(count).unwrap_or(u32::MAX))
        })
    }

    fn email_thread(&self, message_id: &str) -> Result<Option<TrackedThread>> {
        self.read(|conn| {
            let found: Option<(String, Option<String>)> = query_row_cached(
                conn,
                "SELECT a.id, (SELECT number FROM records WHERE id = a.regarding_id)
                 FROM activities a WHERE a.type = 'email' AND a.message_id = ?1
                 ORDER BY a.created LIMIT 1",
                [message_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
            let Some((id, regarding)) = found else {
                return Ok(None);
            };
            let mut statement =
                conn.prepare_cached("SELECT lower(address) FROM parties WHERE activity_id = ?1")?;
            let participants = statement
                .query_map([&id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(TrackedThread {
                regarding: regarding.and_then(|n| RecordNumber::new(&n).ok()),
                participants,
            }))
        })
    }
}

/// Records a message as one automatic tracking never takes again.
fn tombstone(conn: &Connection, mailbox: &str, identity: &ItemIdentity) -> Result<()> {
    execute_cached(
        conn,
        "INSERT OR IGNORE INTO email_tombstones (mailbox, identity) VALUES (?1, ?2)",
        params![mailbox, identity.storage_key()],
    )?;
    Ok(())
}
