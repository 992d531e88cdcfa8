//! The pane of a message: from its link and activity when tracked, else from the server
//! (headers and flags only), with its addresses resolved the way tracking would.

use crmsync_config::{ImapConfig, MailboxConfig};
use crmsync_core::auto::{AutoContext, AutoDecision, AutoPolicy, decide};
use crmsync_core::email::TrackingRules;
use crmsync_core::item::{ItemIdentity, ItemKind};
use crmsync_core::link::{CrmRef, SyncLink};
use crmsync_core::model::PartyRole;
use crmsync_imap::{FetchedHeader, ImapSession, message};
use crmsync_store::{CrmStore, StoreError};

use super::{
    AddressResolution, ItemPane, Locator, PaneAddress, add_addresses, describe_activity,
    location_text, matches, store_error,
};

pub(super) async fn pane<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    locator: &Locator,
    pane: ItemPane,
) -> Result<ItemPane, String> {
    let link = store
        .links_of(&mailbox.id, &[ItemKind::Email])
        .map_err(store_error)?
        .into_iter()
        .find(|link| matches(link, locator));
    if let Some(link) = link {
        return tracked(store, mailbox, &link, pane);
    }
    let Some(imap) = &mailbox.imap else {
        let mut pane = pane;
        pane.notes.push("not tracked".into());
        return Ok(pane);
    };
    let Some((folder, header)) = find_on_server(imap, locator).await? else {
        return Err(format!("no such message in mailbox {}", mailbox.id));
    };
    untracked(store, mailbox, &folder, &header, pane)
}

fn tracked<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    link: &SyncLink,
    mut pane: ItemPane,
) -> Result<ItemPane, String> {
    pane.tracked = true;
    pane.location = Some(location_text(&link.location));
    pane.link_state = Some(link.state.as_str().to_owned());
    if let ItemIdentity::Email { message_id, .. } = &link.identity {
        pane.message_id = Some(message_id.clone());
    }
    pane.keywords = link
        .base
        .get("signal")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if let CrmRef::Activity(id) = link.crm {
        match store.activity(id) {
            Ok(activity) => {
                describe_activity(store, &mut pane, &activity, &mailbox.tracking.keyword)?;
                pane.activity = Some(activity);
            }
            Err(StoreError::NotFound(_)) => pane.notes.push(
                "the activity was deleted in the CRM; the tracking keyword goes on the next pass"
                    .into(),
            ),
            Err(error) => return Err(store_error(error)),
        }
    }
    Ok(pane)
}

/// The message a locator names, its headers and flags only, with the folder it sits in.
async fn find_on_server(
    imap: &ImapConfig,
    locator: &Locator,
) -> Result<Option<(String, FetchedHeader)>, String> {
    let imap_error = |error: crmsync_imap::ImapError| error.to_string();
    let password = imap
        .password
        .read()
        .map_err(|e| format!("IMAP password: {e}"))?;
    let mut session = ImapSession::connect(imap, &password)
        .await
        .map_err(imap_error)?;
    let mut found = None;
    match locator {
        Locator::Uid { folder, uid } => {
            let header = session
                .fetch_header(folder, *uid)
                .await
                .map_err(imap_error)?;
            found = header.map(|h| (folder.clone(), h));
        }
        Locator::Href(_) => unreachable!("answered from the collection"),
        Locator::MessageId(message_id) => {
            for folder in &imap.folders {
                let uids = session
                    .search_message_id(folder, message_id)
                    .await
                    .map_err(imap_error)?;
                if let Some(uid) = uids.first() {
                    let header = session
                        .fetch_header(folder, *uid)
                        .await
                        .map_err(imap_error)?;
                    found = header.map(|h| (folder.clone(), h));
                    break;
                }
            }
        }
    }
    session.logout().await;
    Ok(found)
}

/// An untracked message: what tracking it would do.
fn untracked<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    folder: &str,
    header: &FetchedHeader,
    mut pane: ItemPane,
) -> Result<ItemPane, String> {
    pane.location = Some(format!("{folder}:{}", header.uid));
    pane.keywords = header.keywords.clone();
    let rules = TrackingRules {
        keyword: mailbox.tracking.keyword.clone(),
        folders: mailbox.tracking.folders.clone(),
    };
    let signal = rules.signal(folder, &header.keywords);
    pane.notes.push(if signal.tracked {
        "not tracked yet: it carries a tracking signal, so the next pass tracks it".into()
    } else {
        format!(
            "not tracked: give it the keyword {:?} to track it",
            rules.keyword
        )
    });
    let summary = message::summarize(&header.header).map_err(|e| e.to_string())?;
    if !signal.tracked && mailbox.tracking.auto != AutoPolicy::None {
        let why =
            explain_automatic(store, mailbox, folder, header.uid, &summary).map_err(store_error)?;
        pane.notes.push(why);
    }
    pane.message_id = summary.message_id;
    let parsed = message::parse(&header.header).map_err(|e| e.to_string())?;
    let addresses = [
        (PartyRole::From, &parsed.from),
        (PartyRole::To, &parsed.to),
        (PartyRole::Cc, &parsed.cc),
    ]
    .into_iter()
    .flat_map(|(role, addresses)| {
        addresses.iter().map(move |a| PaneAddress {
            role,
            address: a.address.clone(),
            name: a.name.clone(),
            group: a.group.clone(),
            resolution: AddressResolution::Unresolved,
        })
    })
    .collect();
    add_addresses(store, &mut pane, addresses, &mut None)?;
    Ok(pane)
}

/// What automatic tracking does with an untracked message, and why: the rules of
/// `core::auto::decide`, with what the CRM knows, as a pass would apply them.
fn explain_automatic<S: CrmStore>(
    store: &S,
    mailbox: &MailboxConfig,
    folder: &str,
    uid: u32,
    summary: &message::HeaderSummary,
) -> Result<String, StoreError> {
    let policy = mailbox.tracking.auto;
    let head = format!("automatic tracking ({})", policy.as_str());
    if store
        .tombstones(&mailbox.id)?
        .contains(&summary.identity.storage_key())
    {
        return Ok(format!(
            "{head} does not take it: it was untracked before (or deleted in the CRM)"
        ));
    }
    let from_uid = store
        .sync_state(&mailbox.id, folder)?
        .filter(|state| state.auto_policy.as_deref() == Some(policy.as_str()))
        .and_then(|state| state.auto_from_uid);
    if from_uid.is_none_or(|from| uid < from) {
        return Ok(format!(
            "{head} does not take it: it arrived before the policy was switched on (crmsync sync --backfill SINCE takes older mail)"
        ));
    }
    let mut never = mailbox.tracking.never.clone();
    never.extend(
        store
            .never_entries(Some(&mailbox.id))?
            .into_iter()
            .map(|(_, e)| e),
    );
    let meta = &summary.meta;
    let crm_addresses = crate::email::crm_addresses(store, meta.addresses(), &never)?;
    let replied_to: Vec<String> = meta
        .in_reply_to
        .iter()
        .chain(&meta.references)
        .cloned()
        .collect();
    let threads = crate::email::threads(store, &replied_to)?;
    let context = AutoContext {
        owner: &mailbox.owner.key(),
        crm_addresses: &crm_addresses,
        threads: &threads,
    };
    Ok(match decide(policy, &never, meta, context) {
        AutoDecision::Track { reason, .. } => {
            format!("{head} takes it on the next pass: {}", reason.describe())
        }
        AutoDecision::Skip(skip) => format!("{head} does not take it: {}", skip.describe()),
    })
}
