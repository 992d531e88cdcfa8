//! The outbound part of a pass (SPEC section 5; docs/outbound.md): the email activities that
//! the CRM created for the mailbox's owner (`pending-send`) go out through the mailbox's SMTP
//! server, and each one's copy goes into the Sent folder as a tracked message, linked to its
//! activity. Read as observe (the owner's outbox) → decide (`core::outbound::step`) → apply,
//! with every phase recorded in the store before the step it names, so that a kill at any
//! point neither sends a message twice nor forgets one.

use std::future::Future;
use std::time::SystemTime;

use crmsync_config::{MailboxConfig, SmtpConfig};
use crmsync_core::email::{TrackingRules, base_for};
use crmsync_core::item::{ItemIdentity, ItemKind, ItemLocation};
use crmsync_core::link::{CrmRef, ItemCreator, LinkState, SyncLink};
use crmsync_core::model::{ActivityState, PartyRole};
use crmsync_core::outbound::{self, Step};
use crmsync_core::token;
use crmsync_imap::{ImapError, message};
use crmsync_smtp::{Committed, Outgoing, SmtpError, SmtpSession};
use crmsync_store::{CrmStore, OutboxItem, SendRecord};

use crate::error::PassError;
use crate::report::PassReport;

/// The submission server, as the outbound pass uses it: everything up to the body, then the
/// body. The SMTP adapter implements it; the engine's model tests use one in memory.
pub trait Submit {
    /// Connects when needed, then MAIL FROM, RCPT TO, DATA.
    fn begin(
        &mut self,
        from: &str,
        recipients: &[String],
        ascii: bool,
    ) -> impl Future<Output = Result<(), SmtpError>> + Send;
    /// The body and its final dot.
    fn commit(&mut self, message: &[u8]) -> impl Future<Output = Committed> + Send;
}

/// Where the sent copies go: the mailbox's IMAP side, as the outbound pass uses it.
pub trait SentFolder {
    /// The folder's UIDVALIDITY and the UID of the message of this identity, if there.
    fn find(
        &mut self,
        folder: &str,
        identity: &ItemIdentity,
    ) -> impl Future<Output = Result<Option<(u32, u32)>, ImapError>> + Send;
    fn append(
        &mut self,
        folder: &str,
        keywords: &[String],
        message: &[u8],
    ) -> impl Future<Output = Result<(), ImapError>> + Send;
}

impl SentFolder for crmsync_imap::ImapSession {
    fn find(
        &mut self,
        folder: &str,
        identity: &ItemIdentity,
    ) -> impl Future<Output = Result<Option<(u32, u32)>, ImapError>> + Send {
        crmsync_imap::ImapSession::find(self, folder, identity)
    }

    fn append(
        &mut self,
        folder: &str,
        keywords: &[String],
        message: &[u8],
    ) -> impl Future<Output = Result<(), ImapError>> + Send {
        crmsync_imap::ImapSession::append(self, folder, keywords, message)
    }
}

/// The mailbox's SMTP server: connected on the first send of a pass, again after a failure.
pub struct SmtpSubmission<'a> {
    config: &'a SmtpConfig,
    session: Option<SmtpSession>,
}

impl<'a> SmtpSubmission<'a> {
    pub fn new(config: &'a SmtpConfig) -> SmtpSubmission<'a> {
        SmtpSubmission {
            config,
            session: None,
        }
    }

    pub async fn finish(self) {
        if let Some(session) = self.session {
            session.quit().await;
        }
    }
}

impl Submit for SmtpSubmission<'_> {
    async fn begin(
        &mut self,
        from: &str,
        recipients: &[String],
        ascii: bool,
    ) -> Result<(), SmtpError> {
        if self.session.is_none() {
            let password = match &self.config.password {
                Some(source) => Some(
                    source
                        .read()
                        .map_err(|e| SmtpError::Permanent(format!("SMTP password: {e}")))?,
                ),
                None => None,
            };
            let session =
                SmtpSession::connect(self.config, password.as_ref().map(|p| p.expose())).await?;
            self.session = Some(session);
        }
        let session = self.session.as_mut().expect("connected above");
        let result = session.begin(from, recipients, ascii).await;
        if result.is_err() {
            // The adapter closed the connection: the next send connects again.
            self.session = None;
        }
        result
    }

    async fn commit(&mut self, message: &[u8]) -> Committed {
        let Some(session) = self.session.as_mut() else {
            return Committed::Refused(SmtpError::Transient("not connected".into()));
        };
        let committed = session.commit(message).await;
        if committed != Committed::Accepted {
            self.session = None;
        }
        committed
    }
}

/// One pass over a mailbox's outbox.
pub struct OutboundPass<'a, S, T, F> {
    store: &'a mut S,
    mailbox: &'a MailboxConfig,
    smtp: &'a SmtpConfig,
    submit: &'a mut T,
    /// `None` when the IMAP side is not reachable in this pass: sent copies wait.
    sent: Option<&'a mut F>,
    report: &'a mut PassReport,
    dry_run: bool,
}

/// Whether a send's record has stood still longer than anyone could still be working on it.
fn stale(updated: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> bool {
    updated
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .is_none_or(|at| now - at.with_timezone(&chrono::Utc) > chrono::Duration::minutes(5))
}

/// A time as the store writes them.
fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl<'a, S: CrmStore, T: Submit, F: SentFolder> OutboundPass<'a, S, T, F> {
    pub fn new(
        store: &'a mut S,
        mailbox: &'a MailboxConfig,
        smtp: &'a SmtpConfig,
        submit: &'a mut T,
        sent: Option<&'a mut F>,
        report: &'a mut PassReport,
        dry_run: bool,
    ) -> Self {
        OutboundPass {
            store,
            mailbox,
            smtp,
            submit,
            sent,
            report,
            dry_run,
        }
    }

    /// Observe, decide, apply. An `Err` is the store failing; a send's own failure is the
    /// activity's (`send-failed`, a retry), never the mailbox's.
    pub async fn run(mut self) -> Result<(), PassError> {
        let outbox = self.store.outbox(&self.mailbox.id, &self.mailbox.owner)?;
        let now = chrono::Utc::now();
        for item in outbox {
            let due = item
                .next_attempt
                .as_deref()
                .is_none_or(|at| at <= timestamp(now).as_str());
            let mut step = outbound::step(item.activity.state, item.phase, due);
            // A send another mailbox is in the middle of is that mailbox's, unless it has
            // stood still too long for anyone to be behind it.
            let ours = item.mailbox.as_deref() == Some(self.mailbox.id.as_str());
            if step == Step::Uncertain && !ours && !stale(item.updated.as_deref(), now) {
                step = Step::Nothing;
            }
            if self.dry_run {
                if step != Step::Nothing {
                    self.report.planned.push(format!(
                        "email activity {}: {step:?} ({:?})",
                        item.activity.id, item.activity.subject
                    ));
                }
                continue;
            }
            match step {
                Step::Send => self.send(&item).await?,
                Step::Append => self.file_copy(&item).await?,
                Step::Uncertain => {
                    let reason = "crmsync stopped while the server was receiving the message: it may or may not have been sent (crmsync activity resend ID sends it again)";
                    if self.record(&item, &SendRecord::Uncertain { reason })? {
                        self.report.warn(format!(
                            "email activity {} ({:?}): {reason}",
                            item.activity.id, item.activity.subject
                        ));
                    }
                }
                Step::Wait => {
                    self.report.pending += 1;
                    let due = item
                        .next_attempt
                        .as_deref()
                        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                        .map(|at| {
                            (at.with_timezone(&chrono::Utc) - now)
                                .to_std()
                                .unwrap_or_default()
                        });
                    if let Some(due) = due {
                        self.retry_in(due);
                    }
                }
                Step::Nothing => {}
            }
        }
        Ok(())
    }

    /// Asks for a pass after `delay`, or sooner when another send asks for that.
    fn retry_in(&mut self, delay: std::time::Duration) {
        let soonest = self.report.retry_in.map_or(delay, |other| other.min(delay));
        self.report.retry_in = Some(soonest);
    }

    fn record(&mut self, item: &OutboxItem, record: &SendRecord<'_>) -> Result<bool, PassError> {
        Ok(self
            .store
            .record_send(&self.mailbox.id, item.activity.id, record)?)
    }

    /// The message of an activity, as it goes out.
    fn compose(
        &self,
        item: &OutboxItem,
        key: &token::TokenKey,
    ) -> Result<(Outgoing, Vec<u8>), String> {
        let activity = &item.activity;
        let owner = self.mailbox.owner.as_str();
        let domain = owner.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let of = |role: PartyRole| -> Vec<String> {
            activity
                .parties
                .iter()
                .filter(|p| p.role == role)
                .map(|p| p.address.clone())
                .collect()
        };
        let from_name = self
            .store
            .user(&self.mailbox.owner)
            .ok()
            .map(|user| user.record.name);
        let outgoing = Outgoing {
            from: owner.to_owned(),
            from_name,
            to: of(PartyRole::To),
            cc: of(PartyRole::Cc),
            bcc: of(PartyRole::Bcc),
            subject: activity.subject.clone(),
            text: activity.description.clone().unwrap_or_default(),
            html: item.html_body.clone(),
            attachments: item
                .attachments
                .iter()
                .map(|a| (a.name.clone(), a.content_type.clone(), a.content.clone()))
                .collect(),
            message_id: token::message_id(key, activity.id, domain),
            in_reply_to: None,
            references: None,
            keep_bcc: false,
            headers: Vec::new(),
            date: SystemTime::now(),
        };
        let raw = crmsync_smtp::compose(&outgoing).map_err(|e| e.to_string())?;
        Ok((outgoing, raw))
    }

    async fn send(&mut self, item: &OutboxItem) -> Result<(), PassError> {
        // Everything from here on happens under this mailbox's claim.
        if !self.record(item, &SendRecord::Claim)? {
            return Ok(());
        }
        let attempts = item.attempts + 1;
        let key = self.store.tracking_key()?;
        let composed = self.compose(item, &key).and_then(|(outgoing, raw)| {
            let identity = message::summarize(&raw)
                .map_err(|e| format!("the composed message cannot be read back: {e}"))?
                .identity;
            Ok((outgoing, raw, identity))
        });
        let (outgoing, raw, identity) = match composed {
            Ok(composed) => composed,
            Err(reason) => return self.failed(item, &SmtpError::Permanent(reason), attempts),
        };
        let ItemIdentity::Email {
            message_id,
            content_hash,
        } = &identity
        else {
            let reason = SmtpError::Permanent("the composed message has no Message-ID".into());
            return self.failed(item, &reason, attempts);
        };
        let recipients = outgoing.recipients();
        if recipients.is_empty() {
            let reason = SmtpError::Permanent("the email has no recipient".into());
            return self.failed(item, &reason, attempts);
        }
        if let Err(error) = self
            .submit
            .begin(&outgoing.from, &recipients, raw.is_ascii())
            .await
        {
            return self.failed(item, &error, attempts);
        }
        let commit = SendRecord::Commit {
            message_id,
            content_hash: content_hash.as_str(),
            raw: &raw,
        };
        if !self.record(item, &commit)? {
            // Taken over meanwhile: the body does not go out from here.
            return Ok(());
        }
        match self.submit.commit(&raw).await {
            Committed::Accepted => {
                let sent_at = timestamp(chrono::Utc::now());
                self.record_accepted(item, &sent_at).await?;
                self.report.sent += 1;
                tracing::info!(mailbox = %self.mailbox.id, activity = %item.activity.id, "email sent");
                let mut sent = item.clone();
                sent.activity.state = ActivityState::Sent;
                sent.activity.message_id = Some(message_id.clone());
                sent.raw = Some(raw);
                self.file_copy(&sent).await
            }
            Committed::Refused(error) => self.failed(item, &error, attempts),
            Committed::Unknown(reason) => {
                let reason = format!(
                    "{reason}: it may or may not have been sent (crmsync activity resend ID sends it again)"
                );
                self.record(item, &SendRecord::Uncertain { reason: &reason })?;
                self.report.warn(format!(
                    "email activity {} ({:?}): {reason}",
                    item.activity.id, item.activity.subject
                ));
                Ok(())
            }
        }
    }

    /// Records that the server has the message. The store may be busy for a moment (another
    /// program's long write): the record is tried again for a while, since a send left
    /// `committing` becomes `send-uncertain`.
    async fn record_accepted(&mut self, item: &OutboxItem, sent_at: &str) -> Result<(), PassError> {
        let mut tries = 0;
        loop {
            let accepted = SendRecord::Accepted { sent_at };
            match self
                .store
                .record_send(&self.mailbox.id, item.activity.id, &accepted)
            {
                Ok(_) => return Ok(()),
                Err(error) if tries < 10 => {
                    tries += 1;
                    tracing::warn!(mailbox = %self.mailbox.id, activity = %item.activity.id, "recording the sent email: CRM store: {error}; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// A send that did not get the message into the server's queue: again later when the
    /// reason may pass and attempts are left, else `send-failed`.
    fn failed(
        &mut self,
        item: &OutboxItem,
        error: &SmtpError,
        attempts: u32,
    ) -> Result<(), PassError> {
        let what = format!(
            "email activity {} ({:?})",
            item.activity.id, item.activity.subject
        );
        match error {
            SmtpError::Transient(reason) => {
                if let Some(seconds) = outbound::retry_after(attempts, self.smtp.retry_delay) {
                    let at = chrono::Utc::now() + chrono::Duration::seconds(seconds as i64);
                    let next_attempt = timestamp(at);
                    self.record(
                        item,
                        &SendRecord::Retry {
                            reason,
                            next_attempt: &next_attempt,
                        },
                    )?;
                    self.report.pending += 1;
                    self.retry_in(std::time::Duration::from_secs(seconds));
                    self.report
                        .warn(format!("{what}: {reason}; trying again in {seconds} s"));
                    return Ok(());
                }
                let reason = format!("{reason} (after {attempts} attempts)");
                self.record(item, &SendRecord::Failed { reason: &reason })?;
                self.report.warn(format!("{what}: not sent: {reason}"));
            }
            SmtpError::Permanent(reason) => {
                self.record(item, &SendRecord::Failed { reason })?;
                self.report.warn(format!("{what}: not sent: {reason}"));
            }
        }
        Ok(())
    }

    /// The sent copy into the Sent folder, with the tracking keyword, and its link; found
    /// there first, so a kill between the append and the link does not make two copies.
    async fn file_copy(&mut self, item: &OutboxItem) -> Result<(), PassError> {
        let Some(sent) = self.sent.as_deref_mut() else {
            self.report.pending += 1;
            return Ok(());
        };
        let Some(raw) = &item.raw else {
            self.report.warn(format!(
                "email activity {}: sent, but its message is not kept: no copy in {}",
                item.activity.id, self.smtp.sent_folder
            ));
            return Ok(());
        };
        let folder = &self.smtp.sent_folder;
        let rules = TrackingRules {
            keyword: self.mailbox.tracking.keyword.clone(),
            folders: self.mailbox.tracking.folders.clone(),
        };
        let regarding = item.activity.regarding.as_ref().map(|r| r.number.clone());
        let keyword = match &regarding {
            Some(number) => rules.regarding_keyword(number),
            None => rules.keyword.clone(),
        };
        let identity = match message::summarize(raw) {
            Ok(summary) => summary.identity,
            Err(error) => {
                self.report.warn(format!(
                    "email activity {}: sent; its kept message cannot be read: {error}",
                    item.activity.id
                ));
                return Ok(());
            }
        };
        let located = match sent.find(folder, &identity).await {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                let appended = sent
                    .append(folder, std::slice::from_ref(&keyword), raw)
                    .await;
                match appended {
                    Ok(()) => sent.find(folder, &identity).await.ok().flatten(),
                    Err(error) => {
                        self.report.warn(format!("email activity {}: sent; its copy could not be put into {folder}: {error}", item.activity.id));
                        None
                    }
                }
            }
            Err(error) => {
                self.report.warn(format!(
                    "email activity {}: sent; {folder}: {error}",
                    item.activity.id
                ));
                None
            }
        };
        let Some((uid_validity, uid)) = located else {
            self.report.pending += 1;
            return Ok(());
        };
        let signal = rules.signal(folder, std::slice::from_ref(&keyword));
        let link = SyncLink {
            mailbox: self.mailbox.id.clone(),
            kind: ItemKind::Email,
            identity,
            location: ItemLocation::Imap {
                folder: folder.clone(),
                uid_validity,
                uid,
            },
            crm: CrmRef::Activity(item.activity.id),
            base: base_for(signal.regarding.as_ref(), &signal.keywords),
            item_version: None,
            crm_version: None,
            created_by: ItemCreator::Crm,
            state: LinkState::Synced,
        };
        self.record(item, &SendRecord::Done { link: &link })?;
        Ok(())
    }
}
