-- crmsync store schema, migration 3: the conflict log.
-- One row per field that changed on both sides to different values, with what each side held
-- and which side won under the mailbox's policy. `crmsync conflicts` shows it.
CREATE TABLE conflicts (
    id            INTEGER PRIMARY KEY,
    mailbox       TEXT NOT NULL,
    item_kind     TEXT NOT NULL,
    item_identity TEXT NOT NULL,
    crm_kind      TEXT,
    crm_id        TEXT,
    field         TEXT NOT NULL,
    base_value    TEXT,
    mailbox_value TEXT,
    crm_value     TEXT,
    winner        TEXT NOT NULL CHECK (winner IN ('mailbox', 'crm')),
    at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX conflicts_mailbox ON conflicts (mailbox, id);
