-- crmsync store schema, migration 5: automatic tracking.
-- Automatic tracking takes only mail that arrives after a policy is switched on: per folder,
-- the first UID that counts (the folder's UIDNEXT when the policy was first seen) and the policy
-- it was recorded for, so that a change of policy starts afresh.
ALTER TABLE sync_state ADD COLUMN auto_from_uid INTEGER;
ALTER TABLE sync_state ADD COLUMN auto_policy TEXT;

-- A message whose tracking the person undid, or whose CRM copy the CRM deleted, is never
-- tracked automatically again (a person's own keyword still tracks it). One row per mailbox
-- and message identity (`sync_links.item_identity`'s form).
CREATE TABLE email_tombstones (
    mailbox  TEXT NOT NULL,
    identity TEXT NOT NULL,
    created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (mailbox, identity)
);
