//! The sending of email activities the CRM created (docs/outbound.md): the outbox of an owner
//! and the record of each send's phase, written in one transaction with what it does to the
//! activity.

use crmsync_core::model::{ActivityId, ActivityState, ActivityType, EmailAddress, InvalidValue};
use crmsync_core::outbound::Phase;

use super::Backend;
use super::activities::{load_activity, load_contents};
use super::links::upsert_link;
use super::users::user_id_by_email;
use super::{bad_row, parse_uuid};
use crate::sql::{Sql, optional, params, utc_text, value};
use crate::{ActivityRow, OutboundStore, OutboxItem, Result, SendRecord, StoreError};

/// How long a send may stand still in another mailbox's hands before this one takes it over
/// (far beyond the 60 s a server gets for any step).
const STALE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl<B: Backend> OutboundStore for B {
    fn outbox(&self, mailbox: &str, owner: &EmailAddress) -> Result<Vec<OutboxItem>> {
        self.read(|conn| {
            let owner_id = match user_id_by_email(conn, owner) {
                Ok(id) => id,
                Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
                Err(error) => return Err(error),
            };
            type Outboxed = (
                String,
                Option<String>,
                Option<String>,
                Option<u32>,
                Option<String>,
                Option<String>,
                Option<Vec<u8>>,
                Option<String>,
            );
            let rows: Vec<Outboxed> = conn
                .query(
                    "SELECT a.id, o.phase, o.mailbox, o.attempts, o.next_attempt, o.last_error, o.raw,
                        o.updated
                 FROM activities a LEFT JOIN outbound o ON o.activity_id = a.id
                 WHERE a.type = 'email' AND a.owner_id = ?1
                   AND (a.state = 'pending-send' OR (o.phase = 'accepted' AND o.mailbox = ?2))
                 ORDER BY a.created, a.id",
                    params![owner_id, mailbox],
                )?
                .iter()
                .map(|row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                    ))
                })
                .collect::<Result<_>>()?;
            rows.into_iter()
                .map(
                    |(id, phase, mailbox, attempts, next_attempt, last_error, raw, updated)| {
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
                            updated,
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
            // Every step after the claim is a compare-and-set: it happens only while this
            // mailbox holds the send in the phase the step follows.
            let step = |tx: &mut dyn Sql,
                        to: Phase,
                        from: &[Phase],
                        error: Option<&str>,
                        next: Option<&str>| {
                let from: Vec<&str> = from.iter().map(|p| p.as_str()).collect();
                tx.execute("UPDATE outbound SET phase = ?3, last_error = coalesce(?4, last_error),
                         next_attempt = ?5, mailbox = ?2,
                         updated = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE activity_id = ?1 AND ?6 LIKE '% ' || phase || ' %'
                       AND (mailbox = ?2 OR ?7)",
                    params![
                        id,
                        mailbox,
                        to.as_str(),
                        error,
                        next,
                        format!(" {} ", from.join(" ")),
                        // Only an uncertain send is settled by another mailbox: the one
                        // that left it `committing` is gone (docs/outbound.md).
                        to == Phase::Uncertain
                    ],
                )
                .map(|changed| changed > 0)
            };
            let set_state = |tx: &mut dyn Sql, state: ActivityState| {
                tx.execute("UPDATE activities SET state = ?2 WHERE id = ?1",
                    params![id, state.as_str()],
                )
            };
            let done = match record {
                SendRecord::Claim => {
                    let state: Option<String> = optional(tx, "SELECT state FROM activities WHERE id = ?1 AND type = 'email'", params![&id])?;
                    // Another mailbox holds it while its send runs or its retry waits; one
                    // that has not moved for STALE is gone (removed from the config, disabled)
                    // and the send is taken over.
                    let held_elsewhere: bool = value(tx, "SELECT count(*) > 0 FROM outbound WHERE activity_id = ?1 AND mailbox <> ?2
                           AND ((phase IN ('claimed', 'committing', 'accepted')
                                 AND updated > ?3)
                             OR (phase = 'retry'
                                 AND coalesce(next_attempt, '') > ?3))",
                        params![id, mailbox, utc_text(chrono::Utc::now() - STALE)],
                    )?;
                    if state.as_deref() != Some(ActivityState::PendingSend.as_str())
                        || held_elsewhere
                    {
                        return Ok(false);
                    }
                    tx.execute("INSERT INTO outbound (activity_id, mailbox, phase, attempts)
                         VALUES (?1, ?2, 'claimed', 1)
                         ON CONFLICT (activity_id) DO UPDATE SET mailbox = excluded.mailbox,
                             phase = 'claimed', attempts = outbound.attempts + 1, next_attempt = NULL,
                             updated = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                        params![id, mailbox],
                    )?;
                    true
                }
                SendRecord::Commit {
                    message_id,
                    content_hash,
                    raw,
                } => {
                    let done = step(tx, Phase::Committing, &[Phase::Claimed], None, None)?;
                    if done {
                        tx.execute("UPDATE outbound SET raw = ?2 WHERE activity_id = ?1",
                            params![id, raw],
                        )?;
                        tx.execute("UPDATE activities SET message_id = ?2, content_hash = ?3,
                                 direction = 'outgoing'
                             WHERE id = ?1",
                            params![id, message_id, content_hash],
                        )?;
                    }
                    done
                }
                SendRecord::Accepted { sent_at } => {
                    let done = step(tx, Phase::Accepted, &[Phase::Committing], None, None)?;
                    if done {
                        tx.execute("UPDATE activities SET state = 'sent', sent_at = ?2 WHERE id = ?1",
                            params![id, sent_at],
                        )?;
                    }
                    done
                }
                SendRecord::Done { link } => {
                    let done = step(tx, Phase::Done, &[Phase::Accepted], None, None)?;
                    if done {
                        upsert_link(tx, link)?;
                        tx.execute("UPDATE outbound SET raw = NULL WHERE activity_id = ?1", params![&id])?;
                    }
                    done
                }
                SendRecord::Retry {
                    reason,
                    next_attempt,
                } => step(tx, Phase::Retry,
                    &[Phase::Claimed, Phase::Committing],
                    Some(reason),
                    Some(next_attempt),
                )?,
                SendRecord::Failed { reason } => {
                    let done = step(tx, Phase::Failed,
                        &[Phase::Claimed, Phase::Committing],
                        Some(reason),
                        None,
                    )?;
                    if done {
                        set_state(tx, ActivityState::SendFailed)?;
                    }
                    done
                }
                SendRecord::Uncertain { reason } => {
                    let done = step(tx, Phase::Uncertain, &[Phase::Committing], Some(reason), None)?;
                    if done {
                        set_state(tx, ActivityState::SendUncertain)?;
                    }
                    done
                }
            };
            Ok(done)
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
            tx.execute("DELETE FROM outbound WHERE activity_id = ?1", params![activity.to_string()])?;
            tx.execute("UPDATE activities SET state = 'pending-send' WHERE id = ?1", params![activity.to_string()])?;
            load_activity(tx, activity)
        })
    }
}
