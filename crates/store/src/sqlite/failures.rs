//! The failed-items list (SPEC section 8).

use rusqlite::params;

use super::SqliteStore;
use super::execute_cached;
use crate::FailureStore;
use crate::{FailedItem, ItemFailure, Result};

impl FailureStore for SqliteStore {
    fn record_failures(
        &mut self,
        mailbox: &str,
        failed: &[ItemFailure],
        resolved: &[(String, String)],
        forget_before: &str,
    ) -> Result<()> {
        self.write(|tx| {
            for (scope, item) in resolved {
                execute_cached(
                    tx,
                    "DELETE FROM failed_items WHERE mailbox = ?1 AND scope = ?2 AND item = ?3",
                    params![mailbox, scope, item],
                )?;
            }
            for failure in failed {
                execute_cached(
                    tx,
                    "INSERT INTO failed_items (mailbox, scope, item, reason) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (mailbox, scope, item) DO UPDATE SET
                         reason = excluded.reason,
                         last_failed = excluded.last_failed,
                         attempts = attempts + 1",
                    params![mailbox, failure.scope, failure.item, failure.reason],
                )?;
            }
            execute_cached(
                tx,
                "DELETE FROM failed_items WHERE last_failed < ?1",
                params![forget_before],
            )?;
            Ok(())
        })
    }

    fn failed_items(&self, mailbox: Option<&str>, since: &str) -> Result<Vec<FailedItem>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT mailbox, scope, item, reason, first_failed, last_failed, attempts
                 FROM failed_items
                 WHERE (?1 IS NULL OR mailbox = ?1) AND last_failed >= ?2
                 ORDER BY last_failed DESC, mailbox, scope, item",
            )?;
            let rows = statement
                .query_map(params![mailbox, since], |row| {
                    Ok(FailedItem {
                        mailbox: row.get(0)?,
                        failure: ItemFailure {
                            scope: row.get(1)?,
                            item: row.get(2)?,
                            reason: row.get(3)?,
                        },
                        first_failed: row.get(4)?,
                        last_failed: row.get(5)?,
                        attempts: row.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
