//! Drafts in the person's mail client (the seed's "insert template", "insert article",
//! "attach sales literature" buttons): a draft in the mailbox's drafts folder that carries
//! `crm:template:NAME`, `crm:article:KB-1001` or `crm:literature:NAME` is replaced by the same
//! draft (its recipients, subject, threading, text and attachments kept) with the template or
//! article inserted after the person's text and the literature attached, without the keyword.
//!
//! The person's text is never lost: the new draft is appended before the old one is deleted,
//! and it carries the header `X-CRMSync-Draft-Of` naming the old one, so a pass killed between
//! the two finds the new draft and only deletes the old one (no second copy).

use crmsync_config::MailboxConfig;
use crmsync_core::email::TrackingRules;
use crmsync_imap::{
    FetchedHeader, FolderMarkers, ImapError, ImapSession, ScanFields, Wanted, message,
};
use crmsync_smtp::Outgoing;
use crmsync_store::{CrmStore, SyncState};

use crate::compose::{Library, compose, escape_html};
use crate::error::PassError;
use crate::report::PassReport;

/// The header of a rewritten draft that names the draft it replaces.
pub const DRAFT_OF: &str = "X-CRMSync-Draft-Of";

/// The value of a header field (the first), unfolded and trimmed.
fn header_value(header: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        match (&mut value, line.starts_with([' ', '\t'])) {
            (Some(value), true) => value.push_str(line.trim_start()),
            (Some(_), false) => break,
            (None, _) => {
                if let Some((field, rest)) = line.split_once(':')
                    && field.trim().eq_ignore_ascii_case(name)
                {
                    value = Some(rest.trim().to_owned());
                }
            }
        }
    }
    value.map(|v| v.trim().to_owned())
}

/// `<a> <b>` from ids without angle brackets (`a b`), as In-Reply-To and References hold them.
fn bracketed(ids: &Option<String>) -> Option<String> {
    ids.as_ref().map(|ids| {
        ids.split_whitespace()
            .map(|id| format!("<{}>", id.trim_matches(['<', '>'])))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Rewrites the drafts that ask for library content, in the drafts folder (when it exists).
/// Only what changed since the last pass is read. A draft whose request cannot be met (no
/// such template, say) is left as it is and counted failed, with the reason. Returns whether
/// the folder exists.
pub async fn rewrite_drafts<S: CrmStore>(
    store: &mut S,
    mailbox: &MailboxConfig,
    folder: &str,
    session: &mut ImapSession,
    report: &mut PassReport,
) -> Result<bool, PassError> {
    let scope = format!("drafts:{folder}");
    let saved = store.sync_state(&mailbox.id, &scope)?;
    let markers = saved.as_ref().and_then(|state| {
        state.uid_validity.map(|uid_validity| FolderMarkers {
            uid_validity,
            highest_modseq: state.highest_modseq,
        })
    });
    // Never found before: looked for with a STATUS, which keeps the mail folder the pass
    // holds selected when there is no drafts folder (a SELECT that fails leaves none).
    if markers.is_none() && !session.folder_exists(folder).await? {
        return Ok(false);
    }
    // A rewritten draft's own header names the draft it replaced.
    session.set_scan_fields(ScanFields::All);
    let scan = match session.scan_folder(folder, markers, Wanted::All).await {
        Ok(scan) => scan,
        Err(ImapError::FolderMissing(_)) => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    let rules = TrackingRules {
        keyword: mailbox.tracking.keyword.clone(),
        folders: mailbox.tracking.folders.clone(),
    };
    for draft in &scan.changed {
        let requests: Vec<(&'static str, String, String)> = draft
            .keywords
            .iter()
            .filter_map(|k| {
                rules
                    .library_request(k)
                    .map(|(kind, name)| (kind, name, k.clone()))
            })
            .collect();
        if requests.is_empty() {
            continue;
        }
        let place = format!("{folder}:{}", draft.uid);
        match rewrite(
            store,
            mailbox,
            &rules,
            folder,
            scan.uid_validity,
            draft,
            &requests,
            session,
        )
        .await
        {
            Ok(()) => {
                report.drafts_rewritten += 1;
                tracing::info!(mailbox = %mailbox.id, draft = %place, "draft rewritten");
            }
            Err(Rewrite::Refused(reason)) => report.item_failed(place, reason),
            Err(Rewrite::Pass(error)) => return Err(error),
        }
    }
    let state = SyncState {
        uid_validity: Some(scan.uid_validity),
        highest_modseq: scan.highest_modseq,
        ..SyncState::default()
    };
    // Nothing moved: no write (a transaction and its fsync on every pass of every mailbox).
    if saved.as_ref() != Some(&state) {
        store.put_sync_state(&mailbox.id, &scope, &state)?;
    }
    Ok(true)
}

/// Why one draft was not rewritten.
enum Rewrite {
    /// The request cannot be met: the draft stays as it is.
    Refused(String),
    Pass(PassError),
}

impl From<ImapError> for Rewrite {
    fn from(error: ImapError) -> Rewrite {
        Rewrite::Pass(error.into())
    }
}

// Long on purpose: read the draft, find an earlier rewrite, compose, append, delete.
#[allow(clippy::too_many_arguments)]
async fn rewrite<S: CrmStore>(
    // Mutable although only read: a shared reference held across an await would need the
    // store to be Sync.
    store: &mut S,
    mailbox: &MailboxConfig,
    rules: &TrackingRules,
    folder: &str,
    uid_validity: u32,
    draft: &FetchedHeader,
    requests: &[(&'static str, String, String)],
    session: &mut ImapSession,
) -> Result<(), Rewrite> {
    let fetched = session.fetch_message(folder, draft.uid).await?;
    if fetched.is_cut() {
        return Err(Rewrite::Refused(format!(
            "the draft is larger than max_message_size ({}): not rewritten, so that none of it is lost",
            crmsync_config::size_words(mailbox.imap.as_ref().map_or(0, |i| i.max_message_size))
        )));
    }
    let parsed = message::parse(&fetched.raw).map_err(|e| Rewrite::Refused(e.to_string()))?;
    if parsed.body_parts > 1 {
        return Err(Rewrite::Refused(
            "the draft's text is in several parts (a picture between them, say): not rewritten, so that none of it is lost".into(),
        ));
    }
    // Names the old draft exactly, in ASCII an IMAP search takes: its Message-ID (other
    // characters as `_`), its folder's UIDVALIDITY and its UID, between `<` and `>`.
    let message_id: String = parsed
        .message_id
        .as_deref()
        .unwrap_or("-")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"\"\\<>".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let draft_of = format!("<{message_id}/{uid_validity}/{}>", draft.uid);
    // A pass killed after the append: the new draft is there, only the old one goes. IMAP's
    // header search matches parts of values, so each hit is checked for the whole value.
    for hit in session.search_header(folder, DRAFT_OF, &draft_of).await? {
        let Some(header) = session.fetch_header(folder, hit).await? else {
            continue;
        };
        if header_value(&header.header, DRAFT_OF).as_deref() == Some(draft_of.as_str()) {
            session.delete(folder, draft.uid).await?;
            return Ok(());
        }
    }
    let pick = |kind: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, name, _)| name.clone())
            .collect()
    };
    let (templates, articles, literature) = (pick("template"), pick("article"), pick("literature"));
    let library = Library {
        template: templates.first().map(String::as_str),
        article: articles.first().map(String::as_str),
        literature: &literature,
    };
    let to = parsed
        .to
        .first()
        .and_then(|a| crmsync_core::model::EmailAddress::new(&a.address).ok());
    let regarding = rules.signal(folder, &draft.keywords).regarding;
    let subject = (!parsed.subject.trim().is_empty()).then_some(parsed.subject.as_str());
    let inserted = compose(
        &*store,
        &mailbox.owner,
        to.as_ref(),
        regarding.as_ref(),
        (subject, None),
        &library,
    )
    .map_err(Rewrite::Refused)?;
    // The person's text first, then what was asked for.
    let text: Vec<&str> = parsed
        .text_body
        .as_deref()
        .into_iter()
        .chain(inserted.text.as_deref())
        .collect();
    let html = match (&parsed.html_body, &inserted.html) {
        (None, None) => None,
        (own, added) => Some(format!(
            "{}\n{}",
            own.clone().unwrap_or_else(|| format!(
                "<p>{}</p>",
                escape_html(parsed.text_body.as_deref().unwrap_or("")).replace('\n', "<br>\n")
            )),
            added.clone().unwrap_or_else(|| format!(
                "<p>{}</p>",
                escape_html(inserted.text.as_deref().unwrap_or("")).replace('\n', "<br>\n")
            ))
        )),
    };
    let addresses = |list: &[message::MessageAddress]| -> Vec<String> {
        list.iter().map(|a| a.address.clone()).collect()
    };
    let from = parsed.from.first();
    let owner = mailbox.owner.as_str();
    let domain = owner.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut attachments: Vec<(String, String, Vec<u8>)> = parsed
        .attachments
        .iter()
        .map(|a| (a.name.clone(), a.content_type.clone(), a.content.clone()))
        .collect();
    attachments.extend(
        inserted
            .attachments
            .into_iter()
            .map(|a| (a.name, a.content_type, a.content)),
    );
    let outgoing = Outgoing {
        from: from.map_or(owner.to_owned(), |f| f.address.clone()),
        from_name: from.and_then(|f| f.name.clone()),
        to: addresses(&parsed.to),
        cc: addresses(&parsed.cc),
        bcc: addresses(&parsed.bcc),
        subject: inserted.subject,
        text: text.join("\n\n"),
        html,
        attachments,
        message_id: format!("draft.{}@{domain}", uuid::Uuid::new_v4().simple()),
        date: std::time::SystemTime::now(),
        in_reply_to: bracketed(&parsed.in_reply_to),
        references: bracketed(&parsed.references),
        keep_bcc: true,
        headers: vec![(DRAFT_OF.to_owned(), draft_of)],
    };
    let bytes = crmsync_smtp::compose(&outgoing).map_err(|e| Rewrite::Refused(e.to_string()))?;
    let asked: Vec<&String> = requests.iter().map(|(_, _, keyword)| keyword).collect();
    let mut flags = vec!["\\Draft".to_owned(), "\\Seen".to_owned()];
    flags.extend(
        draft
            .keywords
            .iter()
            .filter(|k| !asked.contains(k))
            .cloned(),
    );
    session.append_flagged(folder, &flags, &bytes).await?;
    session.delete(folder, draft.uid).await?;
    Ok(())
}
