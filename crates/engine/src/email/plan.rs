//! What a dry run says a pass would do: one line per effect, naming the message by where it
//! sits (`FOLDER:UID`) and what would happen, in the words an administrator reads.

use crmsync_core::email::{DropReason, Effect, TrackingRules};

use super::location_text;

pub(super) fn describe(effect: &Effect, rules: &TrackingRules) -> String {
    let regarding = |number: &Option<crmsync_core::model::RecordNumber>| match number {
        Some(number) => format!("regarding {number}"),
        None => "no regarding record".to_owned(),
    };
    match effect {
        Effect::Track {
            observed,
            regarding: number,
            automatic,
            ..
        } => format!(
            "email {}: track{} (<{}>), {}",
            location_text(&observed.location),
            if *automatic { " automatically" } else { "" },
            observed.identity.storage_key(),
            regarding(number)
        ),
        Effect::SetRegarding {
            identity,
            regarding: number,
        } => format!(
            "email <{}>: set the activity's {}",
            identity.storage_key(),
            regarding(number)
        ),
        Effect::BeginRewrite { location, .. } => format!(
            "email {}: record in its link that its keywords are rewritten",
            location_text(location)
        ),
        Effect::WriteKeywords {
            location,
            add,
            remove,
            ..
        } => format!(
            "email {}: keywords: add {add:?}, remove {remove:?}",
            location_text(location)
        ),
        Effect::UpdateLink { location, .. } => {
            format!("email {}: update its link", location_text(location))
        }
        Effect::DeleteActivity { identity } => format!(
            "email <{}>: untracked by its owner: delete the activity",
            identity.storage_key()
        ),
        Effect::DropLink { identity, reason } => {
            let why = match reason {
                DropReason::Gone => "gone from the watched folders",
                DropReason::UntrackedNotOwner => "untracked by a mailbox that does not own it",
                DropReason::CrmDeleted => "its activity was deleted in the CRM",
            };
            format!("email <{}>: drop the link ({why})", identity.storage_key())
        }
        Effect::Conflict { identity, conflict } => format!(
            "email <{}>: conflict on {}, settled for the {}",
            identity.storage_key(),
            conflict.field,
            match conflict.winner {
                crmsync_core::merge::Side::Mailbox => "mailbox",
                crmsync_core::merge::Side::Crm => "CRM",
            }
        ),
        Effect::MassDeleteHeld {
            folder,
            gone,
            links,
            ..
        } => format!(
            "folder {folder:?}: {gone} of its {links} tracked messages are gone or untracked: held by the mass-delete guard, nothing would change for them"
        ),
        Effect::SuspiciousEmptyFolder { folder, links } => format!(
            "folder {folder:?} lists no message while {links} tracked messages were in it: nothing would change for them (keyword {:?})",
            rules.keyword
        ),
    }
}
