//! The failed-items list (SPEC section 8).

use super::Backend;
use crate::FailureStore;
use crate::sql::params;
use crate::{FailedItem, ItemFailure, Result};

impl<B: Backend> FailureStore for B {
    fn record_failures(
        &mut self,
        mailbox: &str,
        failed: &[ItemFailure],
        resolved: &[(String, String)],
        forget_before: &str,
    ) -> Result<()> {
        self.write(|tx| {
            for (scope, item) in resolved {
                tx.execute("DELETE FROM failed_items WHERE mailbox = ?1 AND scope = ?2 AND item = ?3",
                    params![mailbox, scope, item],
                )?;
            }
            for failure in failed {
                tx.execute("INSERT INTO failed_items (mailbox, scope, item, reason) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (mailbox, scope, item) DO UPDATE SET
                         reason = excluded.reason,
                         last_failed = excluded.last_failed,
                         attempts = failed_items.attempts + 1",
                    params![mailbox, failure.scope, failure.item, failure.reason],
                )?;
            }
            tx.execute("DELETE FROM failed_items WHERE last_failed < ?1",
                params![forget_before],
            )?;
            Ok(())
        })
    }

    fn failed_items(&self, mailbox: Option<&str>, since: &str) -> Result<Vec<FailedItem>> {
        self.read(|conn| {
            let rows = conn
                .query(
                    "SELECT mailbox, scope, item, reason, first_failed, last_failed, attempts
                 FROM failed_items
                 WHERE (CAST(?1 AS TEXT) IS NULL OR mailbox = ?1) AND last_failed >= ?2
                 ORDER BY last_failed DESC, mailbox, scope, item",
                    params![mailbox, since],
                )?
                .iter()
                .map(|row| {
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
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
