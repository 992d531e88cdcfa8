-- crmsync store schema, migration 6: the never-track list in the store, and which email
-- activities automatic tracking made.
-- The list can change without a config reload (`crmsync never add/remove`); a row with an
-- empty mailbox holds for every mailbox. An entry is an address (`doctor@example.org`) or a
-- whole domain (`@family.example`), lower case.
CREATE TABLE never_track (
    mailbox TEXT NOT NULL DEFAULT '',
    entry   TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (mailbox, entry)
);

-- 1 for an email activity that automatic tracking made (a `never add --purge` deletes only
-- those), 0 for one a person tracked.
ALTER TABLE activities ADD COLUMN auto_tracked INTEGER NOT NULL DEFAULT 0;
