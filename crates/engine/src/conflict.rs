//! One builder for the conflict log's rows and the pass's warning about them, for every kind
//! of item (SPEC section 5: a field changed on both sides is settled by the policy and logged).

use crmsync_core::item::{ItemIdentity, ItemKind};
use crmsync_core::link::CrmRef;
use crmsync_core::merge::{Conflict, Side};
use crmsync_store::{ConflictRow, CrmStore};

use crate::report::PassReport;

/// Logs one settled conflict: a warning in the report that names the item, and a row in the
/// conflict log (a failure to write the row is a warning too, never the end of the pass).
pub(crate) fn log<S: CrmStore>(
    store: &mut S,
    report: &mut PassReport,
    item: (ItemKind, &ItemIdentity, &str),
    crm: Option<CrmRef>,
    conflict: Conflict,
) {
    let (kind, identity, where_) = item;
    let winner = match conflict.winner {
        Side::Mailbox => "mailbox",
        Side::Crm => "crm",
    };
    // The values stay out of the log (a description or a note may hold anything); the
    // conflict log has them. A regarding record's number is no secret and says the most.
    let values = if conflict.field == "regarding" {
        format!(
            " (mailbox {:?}, CRM {:?})",
            conflict.mailbox.as_deref().unwrap_or_default(),
            conflict.crm.as_deref().unwrap_or_default()
        )
    } else {
        String::new()
    };
    report.warn(format!(
        "conflict on {} of {where_}: changed on both sides{values}; the {} value was kept (crmsync conflicts)",
        conflict.field,
        if winner == "crm" { "CRM" } else { "mailbox" }
    ));
    let row = ConflictRow {
        mailbox: report.mailbox.clone(),
        item_kind: kind.as_str().to_owned(),
        item: identity.storage_key(),
        crm: crm.map(|crm| crm.to_string()),
        field: conflict.field,
        base: conflict.base,
        mailbox_value: conflict.mailbox,
        crm_value: conflict.crm,
        winner: winner.to_owned(),
        at: String::new(),
    };
    if let Err(error) = store.log_conflict(&row) {
        report.warn(format!("the conflict could not be logged: {error}"));
    }
}
