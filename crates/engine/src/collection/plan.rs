//! What a dry run says a collection pass would do: one line per effect, naming the file.

use crmsync_core::collection::{self, Effect};

use super::Which;

pub(super) fn describe(effect: &Effect, which: Which) -> String {
    let name = which.as_str();
    match effect {
        Effect::Track { observed } => format!(
            "{name} {}: track (UID {})",
            collection::href(&observed.location),
            observed.identity.storage_key()
        ),
        Effect::Update(update) => {
            let fields = |writes: &[crmsync_core::merge::FieldWrite]| -> String {
                let names: Vec<&str> = writes.iter().map(|w| w.field.as_str()).collect();
                if names.is_empty() {
                    "nothing".to_owned()
                } else {
                    names.join(", ")
                }
            };
            format!(
                "{name} {}: merge: into the file {}; into the CRM {}; {} conflicts",
                collection::href(&update.location),
                fields(&update.outcome.mailbox_writes),
                fields(&update.outcome.crm_writes),
                update.outcome.conflicts.len()
            )
        }
        Effect::Untrack { link, delete_crm } | Effect::ItemDeleted { link, delete_crm } => {
            format!(
                "{name} {}: untracked or deleted: {}",
                collection::href(&link.location),
                if *delete_crm {
                    "delete the CRM copy"
                } else {
                    "drop only this mailbox's link"
                }
            )
        }
        Effect::CrmDeleted {
            location,
            delete_item,
            ..
        } => format!(
            "{name} {}: deleted in the CRM: {}",
            collection::href(location),
            if *delete_item {
                "delete the file the CRM created"
            } else {
                "remove its tracking category"
            }
        ),
        Effect::CreateItem { created } => format!(
            "{name}: write a new file for the CRM's {} {}",
            created.kind, created.crm
        ),
        Effect::MassDeleteHeld { gone, links } => format!(
            "{name}: {gone} of its {links} tracked items are deleted or untracked: held by the mass-delete guard, nothing would be deleted"
        ),
        Effect::SuspiciousEmpty { links } => format!(
            "{name}: lists no item while {links} tracked items were in it: nothing would be deleted"
        ),
    }
}
