//! The change journal: reading it after a cursor, readers' cursors, and pruning.

use super::Backend;
use super::bad_row;
use crate::JournalStore;
use crate::sql::{column, optional, params, value};
use std::collections::BTreeSet;

use crate::{Concerned, JournalEntity, JournalEntry, JournalOp, Result};

impl<B: Backend> JournalStore for B {
    fn changes_since(&self, after_seq: i64, limit: usize) -> Result<Vec<JournalEntry>> {
        self.read(|conn| {
            let mut entries = Vec::new();
            for row in conn.query(
                "SELECT seq, entity, row_id, op, origin, changed_at FROM change_journal
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after_seq, limit as i64],
            )? {
                let seq: i64 = row.get(0)?;
                let entity: String = row.get(1)?;
                let op: String = row.get(3)?;
                let bad = |what: &str| bad_row("change_journal", &seq.to_string(), what);
                entries.push(JournalEntry {
                    seq,
                    entity: match entity.as_str() {
                        "record" => JournalEntity::Record,
                        "user" => JournalEntity::User,
                        "activity" => JournalEntity::Activity,
                        _ => return Err(bad("unknown entity")),
                    },
                    row_id: row.get(2)?,
                    op: match op.as_str() {
                        "insert" => JournalOp::Insert,
                        "update" => JournalOp::Update,
                        "delete" => JournalOp::Delete,
                        _ => return Err(bad("unknown op")),
                    },
                    origin: row.get(4)?,
                    changed_at: row.get(5)?,
                });
            }
            Ok(entries)
        })
    }

    fn journal_head(&self) -> Result<i64> {
        self.read(|conn| {
            value(
                conn,
                "SELECT coalesce(max(seq), 0) FROM change_journal",
                &[],
            )
        })
    }

    fn journal_cursor(&self, consumer: &str) -> Result<i64> {
        self.read(|conn| {
            Ok(optional(
                conn,
                "SELECT seq FROM journal_cursors WHERE consumer = ?1",
                params![consumer],
            )?
            .unwrap_or(0))
        })
    }

    fn set_journal_cursor(&mut self, consumer: &str, seq: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO journal_cursors (consumer, seq) VALUES (?1, ?2)
                 ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq",
                params![consumer, seq],
            )?;
            Ok(())
        })
    }

    fn prune_journal(&mut self, changed_before: &str) -> Result<usize> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM change_journal
                 WHERE changed_at < ?1
                   AND seq <= COALESCE((SELECT min(seq) FROM journal_cursors), seq)",
                params![changed_before],
            )
        })
    }

    fn concerned(&self, changes: &[JournalEntry]) -> Result<Concerned> {
        let rows: BTreeSet<(JournalEntity, &str)> = changes
            .iter()
            .map(|change| (change.entity, change.row_id.as_str()))
            .collect();
        self.read(|conn| {
            let mut concerned = Concerned::default();
            let mut collect = |sql: &str, id: &str, into_owners: bool| -> Result<()> {
                let found: Vec<String> = column(conn, sql, params![id])?;
                for value in found {
                    if into_owners {
                        concerned.owners.insert(value.to_ascii_lowercase());
                    } else {
                        concerned.mailboxes.insert(value);
                    }
                }
                Ok(())
            };
            for (entity, id) in rows {
                match entity {
                    JournalEntity::Activity => {
                        collect(
                            "SELECT mailbox FROM sync_links WHERE crm_kind = 'activity' AND crm_id = ?1",
                            id,
                            false,
                        )?;
                        collect(
                            "SELECT u.email FROM activities a JOIN users u ON u.record_id = a.owner_id
                             WHERE a.id = ?1",
                            id,
                            true,
                        )?;
                    }
                    JournalEntity::Record => {
                        collect(
                            "SELECT mailbox FROM sync_links WHERE crm_kind = 'record' AND crm_id = ?1",
                            id,
                            false,
                        )?;
                        // A regarding number written as a keyword on the linked messages.
                        collect(
                            "SELECT DISTINCT l.mailbox FROM activities a
                             JOIN sync_links l ON l.crm_kind = 'activity' AND l.crm_id = a.id
                             WHERE a.regarding_id = ?1",
                            id,
                            false,
                        )?;
                        collect(
                            "SELECT u.email FROM records r JOIN users u ON u.record_id = r.owner_id
                             WHERE r.id = ?1",
                            id,
                            true,
                        )?;
                    }
                    JournalEntity::User => {
                        collect("SELECT email FROM users WHERE record_id = ?1", id, true)?;
                    }
                }
            }
            Ok(concerned)
        })
    }
}
