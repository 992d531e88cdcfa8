-- crmsync store schema, migration 7: the failed-items list (SPEC section 8; issue 10).
-- One row per item a pass could not sync, kept while it keeps failing and for 3 days after
-- its last failure (`crmsync items --failed`, the status file). A pass that handles the
-- item, or finds it gone, removes its row. Not part of the change journal: it is crmsync's
-- own bookkeeping, not CRM data.
CREATE TABLE failed_items (
    mailbox      TEXT NOT NULL,
    -- `email`, `calendar` or `contacts`.
    scope        TEXT NOT NULL,
    -- `FOLDER:UID` for a message, the file name for a calendar or address-book item.
    item         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    first_failed TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_failed  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Passes it failed in.
    attempts     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (mailbox, scope, item)
);
CREATE INDEX failed_items_last ON failed_items (last_failed);
