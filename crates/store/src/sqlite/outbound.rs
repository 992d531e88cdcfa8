//! The sending of email activities the CRM created (docs/outbound.md): the outbox of an owner
//! and the record of each send's phase, written in one transaction with what it does to the
//! activity.

use crmsync_core::model::{ActivityId, ActivityState, ActivityType, EmailAddress, InvalidValue};
use crmsync_core::outbound::Phase;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::activities::{load_activity, load_contents};
use super::links::upsert_link;
use super::users::user_id_by_email;
use super::{bad_row, execute_cached, parse_uuid, query_row_cached};
use crate::{ActivityRow, OutboundStore, OutboxItem, Result, SendRecord, StoreError};

impl OutboundStore for SqliteStore {
    fn outbox(&self, mailbox: &str, owner: &EmailAddress) -> Result<Vec<OutboxItem>> {
        self.read(|conn| {
            let owner_id = match user_id_by_email(conn, owner) {
                Ok(id) => id,
                Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
                Err(error) => return Err(error),
            };
            let mut statement = conn.prepare_cached(
                "SELECT a.id, o.phase, o.mailbox, o.attempts, o.next_attempt, o.last_error, o.raw
                 FROM activities a LEFT JOIN outbound o ON o.activity_id = a.id
                 WHERE a.type = 'email' AND a.owner_id = ?1
                   AND (a.state = 'pending-send' OR (o.phase = 'accepted' AND o.mailbox = ?2))
                 ORDER BY a.created, a.id",
            )?;
            type Row = (
                String,
                Option<String>,
                Option<String>,
                Option<u32>,
                Option<String>,
                Option<String>,
                Option<Vec<u8>>,
            );
            let rows: Vec<Row> = statement
                .query_map(params![owner_id, mailbox], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            rows.into_iter()
                .map(
                    |(id, phase, mailbox, attempts, next_attempt, last_error, raw)| {
                        let phase = phase
                            .map(|text| {
                                Phase::parse(&text).ok_or_else(|| {
                                    bad_row("outbound", &id, format!("phase {text:?}"))
                                })
                            })
                            .transpose()?;
                        let id = ActivityId(parse_uuid("activities", &id)?);
                        let activity = load_activity(conn, id)?;
                        let (html_body, attachments) = load_contents(conn, id)?;
                        Ok(OutboxItem {
                            activity,
                            phase,
                            mailbox,
                            attempts: attempts.unwrap_or(0),
                            next_attempt,
                            last_error,
                            raw,
                            html_body,
                            attachments,
                        })
                    },
                )
                .collect()
        })
    }

    fn record_send(
        &mut self,
        mailbox: &str,
        activity: ActivityId,
        record: &SendRecord<'_>,
    ) -> Result<bool> {
        let id = activity.to_string();
        self.write(|tx| {
            let set_phase = |phase: Phase, error: Option<&str>, next: Option<&str>| {
                execute_cached(
                    tx,
                    "UPDATE outbound SET phase = ?2, last_error = coalesce(?3, last_error),
                         next_attempt = ?4, updated = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE activity_id = ?1",
                    params![id, phase.as_str(), error, next],
                )
            };
            let set_state = |state: ActivityState| {
                execute_cached(
                    tx,
                    "UPDATE activities SET state = ?2 WHERE id = ?1",
                    params![id, state.as_str()],
                )
            };
            match record {
                SendRecord::Claim => {
                    let state: Option<String> = query_row_cached(
                        tx,
                        "SELECT state FROM activities WHERE id = ?1 AND type = 'email'",
                        [&id],
                        |row| row.get(0),
                    )
                    .optional()?;
                    let holder: Option<(String, String)> = query_row_cached(
                        tx,
                        "SELECT mailbox, phase FROM outbound WHERE activity_id = ?1",
                        [&id],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                    let held_elsewhere = holder.is_some_and(|(other, phase)| {
                        other != mailbox && !matches!(phase.as_str(), "failed" | "uncertain")
                    });
                    if state.as_deref() != Some(ActivityState::PendingSend.as_str())
                        || held_elsewhere
                    {
                        return Ok(false);
                    }
                    execute_cached(
                        tx,
                        "INSERT INTO outbound (activity_id, mailbox, phase, attempts)
                         VALUES (?1, ?2, 'claimed', 1)
                         ON CONFLICT (activity_id) DO UPDATE SET mailbox = excluded.mailbox,
                             phase = 'claimed', attempts = attempts + 1, next_attempt = NULL,
                             updated = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                        params![id, mailbox],
                    )?;
                }
                SendRecord::Commit {
                    message_id,
                    content_hash,
                    raw,
                } => {
                    set_phase(Phase::Committing, None, None)?;
                    execute_cached(
                        tx,
                        "UPDATE outbound SET raw = ?2 WHERE activity_id = ?1",
                        params![id, raw],
                    )?;
                    execute_cached(
                        tx,
                        "UPDATE activities SET message_id = ?2, content_hash = ?3,
                             direction = 'outgoing'
                         WHERE id = ?1",
                        params![id, message_id, content_hash],
                    )?;
                }
                SendRecord::Accepted { sent_at } => {
                    set_phase(Phase::Accepted, None, None)?;
                    execute_cached(
                        tx,
                        "UPDATE activities SET state = 'sent', sent_at = ?2 WHERE id = ?1",
                        params![id, sent_at],
                    )?;
                }
                SendRecord::Done { link } => {
                    upsert_link(tx, link)?;
                    set_phase(Phase::Done, None, None)?;
                    execute_cached(
                        tx,
                        "UPDATE outbound SET raw = NULL WHERE activity_id = ?1",
                        [&id],
                    )?;
                }
                SendRecord::Retry {
                    reason,
                    next_attempt,
                } => {
                    set_phase(Phase::Retry, Some(reason), Some(next_attempt))?;
                }
                SendRecord::Failed { reason } => {
                    set_phase(Phase::Failed, Some(reason), None)?;
                    set_state(ActivityState::SendFailed)?;
                }
                SendRecord::Uncertain { reason } => {
                    set_phase(Phase::Uncertain, Some(reason), None)?;
                    set_state(ActivityState::SendUncertain)?;
                }
            }
            Ok(true)
        })
    }

    fn resend(&mut self, activity: ActivityId) -> Result<ActivityRow> {
        self.write(|tx| {
            let row = load_activity(tx, activity)?;
            let resendable = row.activity_type == ActivityType::Email
                && matches!(
                    row.state,
                    ActivityState::SendFailed | ActivityState::SendUncertain
                );
            if !resendable {
                return Err(InvalidValue(format!(
                    "activity {activity} is {} {}: only an email that is send-failed or send-uncertain is sent again",
                    row.activity_type, row.state
                ))
                .into());
            }
            execute_cached(
                tx,
                "DELETE FROM outbound WHERE activity_id = ?1",
                [activity.to_string()],
            )?;
            execute_cached(
                tx,
                "UPDATE activities SET state = 'pending-send' WHERE id = ?1",
                [activity.to_string()],
            )?;
            load_activity(tx, activity)
        })
    }
}
