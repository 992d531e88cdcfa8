//! Tracked email: the activity of a message identity, created with its link in one transaction, and the links of a mailbox with their activities.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crmsync_core::auto::{NeverEntry, TrackedThread};
use crmsync_core::item::ItemIdentity;
use crmsync_core::link::{CrmRef, SyncLink};
use crmsync_core::model::{ActivityId, InvalidValue, RecordNumber};
use crmsync_core::resolve::{Candidate, Resolution};
use crmsync_core::token::TokenKey;

use super::Backend;
use super::activities::{insert_attachments, insert_parties, regarding_id};
use super::links::upsert_link;
use super::users::user_id_by_email;
use super::{IN_CHUNK, bad_row, parse_field, parse_uuid, placeholders};
use crate::EmailStore;
use crate::sql::{Param, Sql, column, optional, params, value};
use crate::{LinkedActivity, NewEmail, Result};

pub(super) fn link_activity(link: &SyncLink) -> Result<ActivityId> {
    match link.crm {
        CrmRef::Activity(id) => Ok(id),
        CrmRef::Record(_) => {
            Err(InvalidValue("this link points at a record, not an activity".into()).into())
        }
    }
}

impl<B: Backend> EmailStore for B {
    fn email_activities(
        &self,
        identities: &[(&str, &str)],
    ) -> Result<HashMap<(String, String), ActivityId>> {
        self.read(|conn| {
            let mut found = HashMap::new();
            for &(message_id, content_hash) in identities {
                let id: Option<String> = optional(
                    conn,
                    "SELECT id FROM activities WHERE type = 'email' AND message_id = ?1
                         AND content_hash = ?2 ORDER BY created LIMIT 1",
                    params![message_id, content_hash],
                )?;
                if let Some(id) = id {
                    found.insert(
                        (message_id.to_owned(), content_hash.to_owned()),
                        ActivityId(parse_uuid("activities", &id)?),
                    );
                }
            }
            Ok(found)
        })
    }

    // Long on purpose: one transaction (identity looked up, activity, parties, attachments,
    // link), read top to bottom.
    fn track_email(
        &mut self,
        email: &NewEmail,
        link: &SyncLink,
    ) -> Result<(ActivityId, Option<String>)> {
        let resolve = self.rules().resolve;
        self.write(|tx| track_one(tx, resolve, email, link))
    }

    fn track_emails(
        &mut self,
        batch: &[(NewEmail, SyncLink)],
    ) -> Result<Vec<(ActivityId, Option<String>)>> {
        let resolve = self.rules().resolve;
        self.write(|tx| {
            batch
                .iter()
                .map(|(email, link)| track_one(tx, resolve, email, link))
                .collect()
        })
    }

    fn linked_activities(&self, mailbox: &str) -> Result<HashMap<ActivityId, LinkedActivity>> {
        self.read(|conn| {
            let rows = conn.query(
                "SELECT a.id, u.email, r.number, a.version FROM sync_links l
                 JOIN activities a ON a.id = l.crm_id
                 LEFT JOIN users u ON u.record_id = a.owner_id
                 LEFT JOIN records r ON r.id = a.regarding_id
                 WHERE l.mailbox = ?1 AND l.crm_kind = 'activity'",
                params![mailbox],
            )?;
            let mut found = HashMap::new();
            for row in rows {
                let id: String = row.get(0)?;
                let regarding: Option<String> = row.get(2)?;
                found.insert(
                    ActivityId(parse_uuid("activities", &id)?),
                    LinkedActivity {
                        owner: row.get::<Option<String>>(1)?.unwrap_or_default(),
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
        self.write(|tx| update_one_link(tx, link, regarding))
    }

    fn update_links(
        &mut self,
        links: &[(SyncLink, Option<Option<&RecordNumber>>)],
    ) -> Result<Vec<Option<String>>> {
        self.write(|tx| {
            links
                .iter()
                .map(|(link, regarding)| update_one_link(tx, link, *regarding))
                .collect()
        })
    }

    fn untrack_and_delete(&mut self, link: &SyncLink) -> Result<()> {
        let id = link_activity(link)?;
        self.write(|tx| {
            // Drop the link first, then delete the target.
            tx.execute("DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = ?2 AND item_identity = ?3",
                params![link.mailbox, link.kind.as_str(), link.identity.storage_key()],
            )?;
            tx.execute("DELETE FROM activities WHERE id = ?1", params![id.to_string()])?;
            tombstone(tx, &link.mailbox, &link.identity)
        })
    }

    fn untrack_link(&mut self, mailbox: &str, identity: &ItemIdentity) -> Result<bool> {
        self.write(|tx| {
            let deleted = tx.execute("DELETE FROM sync_links WHERE mailbox = ?1 AND item_kind = 'email' AND item_identity = ?2",
                params![mailbox, identity.storage_key()],
            )?;
            tombstone(tx, mailbox, identity)?;
            Ok(deleted > 0)
        })
    }

    fn tombstones(&self, mailbox: &str) -> Result<BTreeSet<String>> {
        self.read(|conn| {
            let keys: Vec<String> = column(
                conn,
                "SELECT identity FROM email_tombstones WHERE mailbox = ?1",
                params![mailbox],
            )?;
            Ok(keys.into_iter().collect())
        })
    }

    fn never_entries(&self, mailbox: Option<&str>) -> Result<Vec<(Option<String>, NeverEntry)>> {
        self.read(|conn| {
            let rows = conn
                .query(
                    "SELECT mailbox, entry FROM never_track
                 WHERE CAST(?1 AS TEXT) IS NULL OR mailbox = '' OR mailbox = ?1 ORDER BY mailbox, entry",
                    params![mailbox],
                )?
                .iter()
                .map(|row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)))
                .collect::<Result<Vec<_>>>()?;
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
            let added = tx.execute(
                "INSERT INTO never_track (mailbox, entry) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![mailbox.unwrap_or(""), entry.to_string()],
            )?;
            Ok(added > 0)
        })
    }

    fn remove_never(&mut self, mailbox: Option<&str>, entry: &NeverEntry) -> Result<bool> {
        self.write(|tx| {
            let removed = tx.execute(
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
            let deleted = tx.execute("DELETE FROM activities WHERE type = 'email' AND auto_tracked = 1
                   AND id IN (SELECT activity_id FROM parties
                              WHERE lower(address) = ?1
                                 OR (CAST(?2 AS TEXT) IS NOT NULL
                                     AND substr(lower(address), length(address) - length(?2) + 1) = ?2))
                   AND (CAST(?3 AS TEXT) IS NULL OR id IN (SELECT crm_id FROM sync_links
                                             WHERE crm_kind = 'activity' AND mailbox = ?3))",
                params![address, domain, mailbox],
            )?;
            Ok(deleted as u64)
        })
    }

    fn recent_emails(
        &self,
        keys: &[(String, String)],
        since: &str,
    ) -> Result<BTreeMap<(String, String), u32>> {
        let mut counts: BTreeMap<(String, String), u32> =
            keys.iter().map(|key| (key.clone(), 0)).collect();
        let subjects: Vec<&str> = keys
            .iter()
            .map(|(_, subject)| subject.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.read(|conn| {
            for chunk in subjects.chunks(IN_CHUNK) {
                // The emails of the last hour (`activities_created`), of those subjects.
                let sql = format!(
                    "SELECT lower(p.address), a.subject, count(DISTINCT a.id)
                     FROM activities a JOIN parties p ON p.activity_id = a.id AND p.role = 'from'
                     WHERE a.type = 'email' AND a.created >= ?1 AND a.subject IN ({})
                     GROUP BY lower(p.address), a.subject",
                    placeholders(2, chunk.len())
                );
                let values: Vec<Param<'_>> = std::iter::once(since)
                    .chain(chunk.iter().copied())
                    .map(Param::from)
                    .collect();
                for row in conn.query(&sql, &values)? {
                    let key = (row.get::<String>(0)?, row.get::<String>(1)?);
                    if let Some(count) = counts.get_mut(&key) {
                        *count = u32::try_from(row.get::<i64>(2)?).unwrap_or(u32::MAX);
                    }
                }
            }
            Ok(counts)
        })
    }

    fn email_threads(&self, message_ids: &[String]) -> Result<BTreeMap<String, TrackedThread>> {
        let mut threads = BTreeMap::new();
        self.read(|conn| {
            for chunk in message_ids.chunks(IN_CHUNK) {
                // The first activity of each Message-ID (one per message and content; the
                // oldest stands for the thread).
                let sql = format!(
                    "SELECT a.message_id, a.id, (SELECT number FROM records WHERE id = a.regarding_id)
                     FROM activities a WHERE a.type = 'email' AND a.message_id IN ({})
                     ORDER BY a.created DESC",
                    placeholders(1, chunk.len())
                );
                let values: Vec<Param<'_>> = chunk.iter().map(Param::from).collect();
                let mut found: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
                for row in conn.query(&sql, &values)? {
                    found.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
                }
                for (message_id, (id, regarding)) in found {
                    threads.insert(message_id, thread(conn, &id, regarding)?);
                }
            }
            Ok(())
        })?;
        Ok(threads)
    }

    fn activity_threads(
        &self,
        activities: &[ActivityId],
    ) -> Result<BTreeMap<ActivityId, TrackedThread>> {
        let ids: Vec<String> = activities.iter().map(ToString::to_string).collect();
        let mut threads = BTreeMap::new();
        self.read(|conn| {
            for chunk in ids.chunks(IN_CHUNK) {
                let sql = format!(
                    "SELECT a.id, (SELECT number FROM records WHERE id = a.regarding_id)
                     FROM activities a WHERE a.type = 'email' AND a.id IN ({})",
                    placeholders(1, chunk.len())
                );
                let found: Vec<(String, Option<String>)> = conn
                    .query(&sql, &chunk.iter().map(Param::from).collect::<Vec<_>>())?
                    .iter()
                    .map(|row| Ok((row.get(0)?, row.get(1)?)))
                    .collect::<Result<_>>()?;
                for (id, regarding) in found {
                    let activity = ActivityId(parse_uuid("activities", &id)?);
                    threads.insert(activity, thread(conn, &id, regarding)?);
                }
            }
            Ok(())
        })?;
        Ok(threads)
    }

    fn tracking_key(&self) -> Result<TokenKey> {
        self.read(|conn| {
            let bytes: Vec<u8> = value(
                conn,
                "SELECT value FROM installation WHERE name = 'tracking_key'",
                &[],
            )?;
            TokenKey::new(bytes).ok_or_else(|| {
                bad_row(
                    "installation",
                    "tracking_key",
                    "the key is shorter than 16 bytes",
                )
            })
        })
    }
}

/// An email activity as a thread replies follow: its regarding record and its parties.
fn thread(conn: &mut dyn Sql, id: &str, regarding: Option<String>) -> Result<TrackedThread> {
    let participants: Vec<String> = column(
        conn,
        "SELECT lower(address) FROM parties WHERE activity_id = ?1",
        params![id],
    )?;
    let participants = participants.into_iter().collect();
    Ok(TrackedThread {
        regarding: regarding.and_then(|n| RecordNumber::new(&n).ok()),
        participants,
    })
}

/// Records a message as one automatic tracking never takes again.
fn tombstone(conn: &mut dyn Sql, mailbox: &str, identity: &ItemIdentity) -> Result<()> {
    conn.execute(
        "INSERT INTO email_tombstones (mailbox, identity) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![mailbox, identity.storage_key()],
    )?;
    Ok(())
}

/// One tracked message in the write transaction `tx`: see [`EmailStore::track_email`].
fn track_one(
    tx: &mut dyn Sql,
    resolve: fn(&[Candidate]) -> Resolution,
    email: &NewEmail,
    link: &SyncLink,
) -> Result<(ActivityId, Option<String>)> {
    let id = link_activity(link)?;
    let owner_id = user_id_by_email(tx, &email.owner)?;
    let (regarding, warning) = regarding_id(tx, email.regarding.as_ref())?;
    // Looked up inside the write transaction: the same message tracked in two
    // mailboxes at the same moment is still one activity.
    let existing: Option<String> = optional(
        tx,
        "SELECT id FROM activities WHERE message_id = ?1 AND content_hash = ?2 LIMIT 1",
        params![email.message_id, email.content_hash],
    )?;
    if let Some(existing) = existing {
        let existing = ActivityId(parse_uuid("activities", &existing)?);
        if email.regarding.is_some() {
            tx.execute("UPDATE activities SET regarding_id = ?1 WHERE id = ?2 AND regarding_id IS DISTINCT FROM ?1",
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
    tx.execute(
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
            if email.outgoing {
                None
            } else {
                email.date.clone()
            },
            email.mailbox,
            email.automatic,
        ],
    )?;
    insert_parties(tx, id, &email.parties, resolve)?;
    insert_attachments(tx, id, &email.attachments)?;
    upsert_link(tx, link)?;
    Ok((id, warning))
}

/// A link saved and, when given, its activity's new regarding record (an unknown number
/// clears it; the warning says so).
fn update_one_link(
    tx: &mut dyn Sql,
    link: &SyncLink,
    regarding: Option<Option<&RecordNumber>>,
) -> Result<Option<String>> {
    let mut warning = None;
    if let Some(number) = regarding {
        let id = link_activity(link)?;
        let (record_id, unknown) = regarding_id(tx, number)?;
        warning = unknown;
        tx.execute("UPDATE activities SET regarding_id = ?1 WHERE id = ?2 AND regarding_id IS DISTINCT FROM ?1",
            params![record_id, id.to_string()],
        )?;
    }
    upsert_link(tx, link)?;
    Ok(warning)
}
