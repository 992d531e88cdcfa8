//! The conflict log (SPEC section 5).

use super::Backend;
use crate::ConflictStore;
use crate::sql::params;
use crate::{ConflictRow, Result};

impl<B: Backend> ConflictStore for B {
    fn log_conflict(&mut self, conflict: &ConflictRow) -> Result<()> {
        let (crm_kind, crm_id) = match conflict.crm.as_deref().and_then(|c| c.split_once(':')) {
            Some((kind, id)) => (Some(kind.to_owned()), Some(id.to_owned())),
            None => (None, None),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO conflicts (mailbox, item_kind, item_identity, crm_kind, crm_id, field,
                     base_value, mailbox_value, crm_value, winner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    conflict.mailbox,
                    conflict.item_kind,
                    conflict.item,
                    crm_kind,
                    crm_id,
                    conflict.field,
                    conflict.base,
                    conflict.mailbox_value,
                    conflict.crm_value,
                    conflict.winner,
                ],
            )?;
            Ok(())
        })
    }

    fn conflicts(&self, mailbox: Option<&str>, limit: usize) -> Result<Vec<ConflictRow>> {
        self.read(|conn| {
            let rows = conn
                .query(
                    "SELECT mailbox, item_kind, item_identity, crm_kind, crm_id, field, base_value,
                        mailbox_value, crm_value, winner, at
                 FROM conflicts WHERE CAST(?1 AS TEXT) IS NULL OR mailbox = ?1 ORDER BY id DESC LIMIT ?2",
                    params![mailbox, limit as i64],
                )?
                .iter()
                .map(|row| {
                    let kind: Option<String> = row.get(3)?;
                    let id: Option<String> = row.get(4)?;
                    Ok(ConflictRow {
                        mailbox: row.get(0)?,
                        item_kind: row.get(1)?,
                        item: row.get(2)?,
                        crm: kind.zip(id).map(|(k, i)| format!("{k}:{i}")),
                        field: row.get(5)?,
                        base: row.get(6)?,
                        mailbox_value: row.get(7)?,
                        crm_value: row.get(8)?,
                        winner: row.get(9)?,
                        at: row.get(10)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
