//! Connections between records and activities, and converting an activity into a record.

use crmsync_core::model::{ActivityId, ActivityType, InvalidValue};

use super::Backend;
use super::records::{add_record_in, record_ref_by_id, record_ref_by_number};
use super::{parse_field, parse_uuid};
use crate::sql::{Sql, optional, params};
use crate::{
    Connectable, ConnectedTo, Connection, ConnectionStore, NewRecord, RecordRow, Result, StoreError,
};

/// The activity's id, if it exists.
fn activity_exists(conn: &mut dyn Sql, id: ActivityId) -> Result<String> {
    optional(
        conn,
        "SELECT id FROM activities WHERE id = ?1",
        params![id.to_string()],
    )?
    .ok_or_else(|| StoreError::NotFound(format!("activity {id}")))
}

fn connect_activity(
    tx: &mut dyn Sql,
    activity: ActivityId,
    activity_role: Option<&str>,
    record: &crmsync_core::model::RecordNumber,
    record_role: Option<&str>,
) -> Result<()> {
    let activity = activity_exists(tx, activity)?;
    let record = record_ref_by_number(tx, record)?;
    tx.execute(
        "INSERT INTO activity_connections (activity_id, activity_role, record_id, record_role)
         VALUES (?1, ?2, ?3, ?4)",
        params![activity, activity_role, record.id.to_string(), record_role],
    )?;
    Ok(())
}

impl<B: Backend> ConnectionStore for B {
    fn connect(
        &mut self,
        one: &Connectable,
        one_role: Option<&str>,
        two: &Connectable,
        two_role: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| match (one, two) {
            (Connectable::Record(a), Connectable::Record(b)) => {
                let (a, b) = (record_ref_by_number(tx, a)?, record_ref_by_number(tx, b)?);
                if a.id == b.id {
                    return Err(InvalidValue(format!(
                        "a record cannot be connected to itself ({})",
                        a.number
                    ))
                    .into());
                }
                tx.execute(
                    "INSERT INTO connections (record1_id, role1, record2_id, role2)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![a.id.to_string(), one_role, b.id.to_string(), two_role],
                )?;
                Ok(())
            }
            (Connectable::Activity(activity), Connectable::Record(record)) => {
                connect_activity(tx, *activity, one_role, record, two_role)
            }
            (Connectable::Record(record), Connectable::Activity(activity)) => {
                connect_activity(tx, *activity, two_role, record, one_role)
            }
            (Connectable::Activity(_), Connectable::Activity(_)) => Err(InvalidValue(
                "two activities are not connected; connect each to a record".into(),
            )
            .into()),
        })
    }

    fn connections_of(&self, end: &Connectable) -> Result<Vec<Connection>> {
        self.read(|conn| {
            let mut found = Vec::new();
            match end {
                Connectable::Record(number) => {
                    let own = record_ref_by_number(conn, number)?.id.to_string();
                    let rows: Vec<(String, Option<String>, Option<String>)> = conn
                        .query(
                            "SELECT record2_id, role1, role2 FROM connections WHERE record1_id = ?1
                         UNION ALL
                         SELECT record1_id, role2, role1 FROM connections WHERE record2_id = ?1",
                            params![&own],
                        )?
                        .iter()
                        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .collect::<Result<_>>()?;
                    for (other, own_role, other_role) in rows {
                        found.push(Connection {
                            other: ConnectedTo::Record(record_ref_by_id(conn, &other)?),
                            own_role,
                            other_role,
                        });
                    }
                    type Connected = (String, String, String, Option<String>, Option<String>);
                    let rows: Vec<Connected> = conn
                        .query(
                            "SELECT a.id, a.type, a.subject, c.record_role, c.activity_role
                             FROM activity_connections c JOIN activities a ON a.id = c.activity_id
                             WHERE c.record_id = ?1 ORDER BY c.id",
                            params![&own],
                        )?
                        .iter()
                        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                        .collect::<Result<_>>()?;
                    for (id, activity_type, subject, own_role, other_role) in rows {
                        found.push(Connection {
                            other: ConnectedTo::Activity {
                                activity_type: parse_field(
                                    "activities",
                                    &id,
                                    ActivityType::parse(&activity_type),
                                )?,
                                id: ActivityId(parse_uuid("activities", &id)?),
                                subject,
                            },
                            own_role,
                            other_role,
                        });
                    }
                }
                Connectable::Activity(activity) => {
                    let own = activity_exists(conn, *activity)?;
                    let rows: Vec<(String, Option<String>, Option<String>)> = conn
                        .query(
                            "SELECT record_id, activity_role, record_role FROM activity_connections
                         WHERE activity_id = ?1 ORDER BY id",
                            params![&own],
                        )?
                        .iter()
                        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .collect::<Result<_>>()?;
                    for (record, own_role, other_role) in rows {
                        found.push(Connection {
                            other: ConnectedTo::Record(record_ref_by_id(conn, &record)?),
                            own_role,
                            other_role,
                        });
                    }
                }
            }
            Ok(found)
        })
    }

    fn disconnect(&mut self, one: &Connectable, two: &Connectable) -> Result<u64> {
        self.write(|tx| {
            let removed = match (one, two) {
                (Connectable::Record(a), Connectable::Record(b)) => {
                    let (a, b) = (
                        record_ref_by_number(tx, a)?.id.to_string(),
                        record_ref_by_number(tx, b)?.id.to_string(),
                    );
                    tx.execute("DELETE FROM connections WHERE (record1_id = ?1 AND record2_id = ?2)
                                                    OR (record1_id = ?2 AND record2_id = ?1)",
                        params![a, b],
                    )?
                }
                (Connectable::Activity(activity), Connectable::Record(record))
                | (Connectable::Record(record), Connectable::Activity(activity)) => {
                    let record = record_ref_by_number(tx, record)?.id.to_string();
                    tx.execute("DELETE FROM activity_connections WHERE activity_id = ?1 AND record_id = ?2",
                        params![activity.to_string(), record],
                    )?
                }
                (Connectable::Activity(_), Connectable::Activity(_)) => 0,
            };
            Ok(removed as u64)
        })
    }

    fn convert_activity(&mut self, activity: ActivityId, record: &NewRecord) -> Result<RecordRow> {
        self.write(|tx| {
            let id = activity_exists(tx, activity)?;
            let row = add_record_in(tx, record)?;
            tx.execute(
                "UPDATE activities SET regarding_id = ?2 WHERE id = ?1",
                params![id, row.record.id.to_string()],
            )?;
            connect_activity(
                tx,
                activity,
                Some("converted to"),
                &row.record.number,
                Some("converted from"),
            )?;
            Ok(row)
        })
    }
}
