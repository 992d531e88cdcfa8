-- crmsync store schema, migration 1: the initial schema.
-- docs/schema.md describes every table for programs other than crmsync that read or write it.
-- Times are UTC text in RFC 3339 form with a 'Z' (2026-11-29T15:38:00.000Z); all-day dates are
-- plain dates (2026-11-29). Uuids are lowercase hyphenated text.

-- Entity types: the built-in ones and every custom one, with the prefix of their record numbers
-- and the next sequence number to try when a record of that type gets an automatic number.
CREATE TABLE entities (
    name          TEXT PRIMARY KEY
                  CHECK (length(name) BETWEEN 1 AND 64
                         AND name GLOB '[a-z]*' AND name NOT GLOB '*[^a-z0-9_]*'),
    number_prefix TEXT NOT NULL UNIQUE,
    next_number   INTEGER NOT NULL DEFAULT 1001,
    builtin       INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1))
);
INSERT INTO entities (name, number_prefix, builtin) VALUES
    ('systemuser', 'USR', 1),
    ('account', 'ACC', 1),
    ('contact', 'CON', 1),
    ('lead', 'LEA', 1),
    ('opportunity', 'OPP', 1),
    ('incident', 'CAS', 1);

-- CRM records of every entity type. CRM users are records of type 'systemuser' with a row in
-- users.
CREATE TABLE records (
    id             TEXT PRIMARY KEY,
    entity         TEXT NOT NULL REFERENCES entities (name),
    number         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name           TEXT NOT NULL,
    parent_id      TEXT REFERENCES records (id) ON DELETE SET NULL,
    owner_id       TEXT REFERENCES users (record_id),
    given_name     TEXT,
    family_name    TEXT,
    job_title      TEXT,
    postal_address TEXT,
    notes          TEXT,
    version        INTEGER NOT NULL DEFAULT 1,
    created        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    modified       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX records_entity ON records (entity);
CREATE INDEX records_parent ON records (parent_id);
CREATE INDEX records_owner ON records (owner_id);

CREATE TABLE record_emails (
    record_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    address   TEXT NOT NULL,
    PRIMARY KEY (record_id, position)
);
CREATE INDEX record_emails_address ON record_emails (address COLLATE NOCASE);

CREATE TABLE record_phones (
    record_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    number    TEXT NOT NULL,
    kind      TEXT,
    PRIMARY KEY (record_id, position)
);

-- CRM users: the systemuser record, the address they log in with, and the 'sync' privilege that
-- decides whether their mailbox is synchronized.
CREATE TABLE users (
    record_id TEXT PRIMARY KEY REFERENCES records (id) ON DELETE CASCADE,
    email     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    sync      INTEGER NOT NULL DEFAULT 1 CHECK (sync IN (0, 1))
);

-- Activities: emails, appointments and tasks. Columns that do not apply to a type stay NULL.
CREATE TABLE activities (
    id                    TEXT PRIMARY KEY,
    type                  TEXT NOT NULL CHECK (type IN ('email', 'appointment', 'task')),
    owner_id              TEXT NOT NULL REFERENCES users (record_id),
    regarding_id          TEXT REFERENCES records (id),
    subject               TEXT NOT NULL DEFAULT '',
    state                 TEXT NOT NULL,
    description           TEXT,
    html_body             TEXT,
    -- email
    message_id            TEXT,
    in_reply_to           TEXT,
    message_references    TEXT,
    direction             TEXT CHECK (direction IN ('incoming', 'outgoing')),
    sent_at               TEXT,
    received_at           TEXT,
    -- appointment
    location              TEXT,
    start_at              TEXT,
    end_at                TEXT,
    all_day               INTEGER NOT NULL DEFAULT 0 CHECK (all_day IN (0, 1)),
    time_zone             TEXT,
    recurrence_rule       TEXT,
    recurrence_exceptions TEXT,
    show_as               TEXT CHECK (show_as IN ('busy', 'tentative', 'free')),
    -- task
    due_at                TEXT,
    priority              INTEGER,
    percent_complete      INTEGER CHECK (percent_complete BETWEEN 0 AND 100),
    completed_at          TEXT,
    -- 'crm' when created in the CRM, else the id of the mailbox that first tracked it
    created_by            TEXT NOT NULL DEFAULT 'crm',
    version               INTEGER NOT NULL DEFAULT 1,
    created               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    modified              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX activities_owner ON activities (owner_id);
CREATE INDEX activities_regarding ON activities (regarding_id);
CREATE INDEX activities_message_id ON activities (message_id);

-- One participant of an activity: the address used, and the record it resolved to (NULL when
-- none or several matched; several leave their candidates in party_candidates).
CREATE TABLE parties (
    id           INTEGER PRIMARY KEY,
    activity_id  TEXT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    role         TEXT NOT NULL
                 CHECK (role IN ('from', 'to', 'cc', 'bcc', 'organizer', 'required', 'optional')),
    address      TEXT NOT NULL,
    display_name TEXT,
    record_id    TEXT REFERENCES records (id) ON DELETE SET NULL,
    UNIQUE (activity_id, position)
);
CREATE INDEX parties_record ON parties (record_id);

CREATE TABLE party_candidates (
    party_id  INTEGER NOT NULL REFERENCES parties (id) ON DELETE CASCADE,
    record_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    PRIMARY KEY (party_id, record_id)
);
CREATE INDEX party_candidates_record ON party_candidates (record_id);

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    activity_id  TEXT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content      BLOB NOT NULL,
    UNIQUE (activity_id, position)
);

-- A connection between two records, with the role each plays ('colleague', 'partner', ...).
CREATE TABLE connections (
    id         INTEGER PRIMARY KEY,
    record1_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    role1      TEXT,
    record2_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    role2      TEXT,
    created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (record1_id <> record2_id)
);
CREATE INDEX connections_record1 ON connections (record1_id);
CREATE INDEX connections_record2 ON connections (record2_id);

-- The sync link: one item of one mailbox paired with one CRM row. crm_kind says which table
-- crm_id points into. When that row is deleted, the link is kept with state 'crm-deleted' until
-- the daemon has removed the item's tracking signal.
CREATE TABLE sync_links (
    id            INTEGER PRIMARY KEY,
    mailbox       TEXT NOT NULL,
    item_kind     TEXT NOT NULL CHECK (item_kind IN ('email', 'event', 'task', 'contact')),
    item_identity TEXT NOT NULL,
    item_location TEXT NOT NULL,
    crm_kind      TEXT NOT NULL CHECK (crm_kind IN ('activity', 'record')),
    crm_id        TEXT NOT NULL,
    base          TEXT NOT NULL DEFAULT '{}',
    item_version  TEXT,
    crm_version   INTEGER,
    created_by    TEXT NOT NULL CHECK (created_by IN ('mailbox', 'crm')),
    state         TEXT NOT NULL DEFAULT 'synced'
                  CHECK (state IN ('synced', 'pending', 'failed', 'crm-deleted')),
    last_error    TEXT,
    created       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    modified      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (mailbox, item_kind, item_identity)
);
CREATE INDEX sync_links_crm ON sync_links (crm_kind, crm_id);

-- Per mailbox and per IMAP folder or collection: where the last pass left off.
CREATE TABLE sync_state (
    mailbox        TEXT NOT NULL,
    scope          TEXT NOT NULL,
    uid_validity   INTEGER,
    highest_modseq INTEGER,
    sync_token     TEXT,
    last_full_scan TEXT,
    modified       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (mailbox, scope)
);

-- The change journal: one row per change to a record, user or activity, written by triggers
-- so that a change made by any program is seen. seq only grows (AUTOINCREMENT), so a reader's
-- cursor stays valid when old rows are pruned.
CREATE TABLE change_journal (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    entity     TEXT NOT NULL CHECK (entity IN ('record', 'user', 'activity')),
    row_id     TEXT NOT NULL,
    op         TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    origin     TEXT,
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Who is writing: crmsync sets origin at the start of each of its write transactions and
-- clears it before commit, so journal rows written by other programs carry NULL.
CREATE TABLE journal_writer (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT
);
INSERT INTO journal_writer (id, origin) VALUES (1, NULL);

-- How far each reader of the journal has read.
CREATE TABLE journal_cursors (
    consumer TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL
);

-- Triggers. They hold whether or not a connection turned foreign keys on, so a program that
-- writes plain SQL cannot leave a dangling row behind.

CREATE TRIGGER records_before_delete BEFORE DELETE ON records
BEGIN
    SELECT RAISE(ABORT, 'record is the regarding record of an activity')
    WHERE EXISTS (SELECT 1 FROM activities WHERE regarding_id = OLD.id);
    SELECT RAISE(ABORT, 'record is a user who owns activities')
    WHERE EXISTS (SELECT 1 FROM activities WHERE owner_id = OLD.id);
    SELECT RAISE(ABORT, 'record is a user who owns records')
    WHERE EXISTS (SELECT 1 FROM records WHERE owner_id = OLD.id);
END;

CREATE TRIGGER records_after_insert AFTER INSERT ON records
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('record', NEW.id, 'insert', (SELECT origin FROM journal_writer WHERE id = 1));
END;

-- Journals the change and bumps version and modified, unless the writer set version itself.
-- The inner UPDATE does not fire this trigger again (recursive triggers are off by default,
-- and when on, the WHERE stops the second round).
CREATE TRIGGER records_after_update AFTER UPDATE ON records
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('record', NEW.id, 'update', (SELECT origin FROM journal_writer WHERE id = 1));
    UPDATE records SET version = OLD.version + 1,
                       modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id AND NEW.version IS OLD.version;
END;

CREATE TRIGGER records_after_delete AFTER DELETE ON records
BEGIN
    DELETE FROM record_emails WHERE record_id = OLD.id;
    DELETE FROM record_phones WHERE record_id = OLD.id;
    DELETE FROM users WHERE record_id = OLD.id;
    DELETE FROM party_candidates WHERE record_id = OLD.id;
    DELETE FROM connections WHERE record1_id = OLD.id OR record2_id = OLD.id;
    UPDATE parties SET record_id = NULL WHERE record_id = OLD.id;
    UPDATE records SET parent_id = NULL WHERE parent_id = OLD.id;
    UPDATE sync_links SET state = 'crm-deleted', crm_version = NULL,
                          modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE crm_kind = 'record' AND crm_id = OLD.id;
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('record', OLD.id, 'delete', (SELECT origin FROM journal_writer WHERE id = 1));
END;

-- A change to a record's emails or phones is a change of the record.
CREATE TRIGGER record_emails_after_insert AFTER INSERT ON record_emails
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.record_id;
END;
CREATE TRIGGER record_emails_after_update AFTER UPDATE ON record_emails
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.record_id;
END;
CREATE TRIGGER record_emails_after_delete AFTER DELETE ON record_emails
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = OLD.record_id;
END;
CREATE TRIGGER record_phones_after_insert AFTER INSERT ON record_phones
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.record_id;
END;
CREATE TRIGGER record_phones_after_update AFTER UPDATE ON record_phones
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.record_id;
END;
CREATE TRIGGER record_phones_after_delete AFTER DELETE ON record_phones
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = OLD.record_id;
END;

CREATE TRIGGER users_after_insert AFTER INSERT ON users
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('user', NEW.record_id, 'insert', (SELECT origin FROM journal_writer WHERE id = 1));
END;
CREATE TRIGGER users_after_update AFTER UPDATE ON users
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('user', NEW.record_id, 'update', (SELECT origin FROM journal_writer WHERE id = 1));
END;
CREATE TRIGGER users_before_delete BEFORE DELETE ON users
BEGIN
    SELECT RAISE(ABORT, 'user owns activities')
    WHERE EXISTS (SELECT 1 FROM activities WHERE owner_id = OLD.record_id);
    SELECT RAISE(ABORT, 'user owns records')
    WHERE EXISTS (SELECT 1 FROM records WHERE owner_id = OLD.record_id);
END;
CREATE TRIGGER users_after_delete AFTER DELETE ON users
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('user', OLD.record_id, 'delete', (SELECT origin FROM journal_writer WHERE id = 1));
END;

CREATE TRIGGER activities_after_insert AFTER INSERT ON activities
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('activity', NEW.id, 'insert', (SELECT origin FROM journal_writer WHERE id = 1));
END;

CREATE TRIGGER activities_after_update AFTER UPDATE ON activities
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('activity', NEW.id, 'update', (SELECT origin FROM journal_writer WHERE id = 1));
    UPDATE activities SET version = OLD.version + 1,
                          modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id AND NEW.version IS OLD.version;
END;

CREATE TRIGGER activities_after_delete AFTER DELETE ON activities
BEGIN
    DELETE FROM party_candidates
    WHERE party_id IN (SELECT id FROM parties WHERE activity_id = OLD.id);
    DELETE FROM parties WHERE activity_id = OLD.id;
    DELETE FROM attachments WHERE activity_id = OLD.id;
    UPDATE sync_links SET state = 'crm-deleted', crm_version = NULL,
                          modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE crm_kind = 'activity' AND crm_id = OLD.id;
    INSERT INTO change_journal (entity, row_id, op, origin)
    VALUES ('activity', OLD.id, 'delete', (SELECT origin FROM journal_writer WHERE id = 1));
END;

-- A change to an activity's parties or attachments is a change of the activity.
CREATE TRIGGER parties_after_insert AFTER INSERT ON parties
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.activity_id;
END;
CREATE TRIGGER parties_after_update AFTER UPDATE ON parties
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.activity_id;
END;
CREATE TRIGGER parties_after_delete AFTER DELETE ON parties
BEGIN
    DELETE FROM party_candidates WHERE party_id = OLD.id;
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = OLD.activity_id;
END;
CREATE TRIGGER attachments_after_insert AFTER INSERT ON attachments
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.activity_id;
END;
CREATE TRIGGER attachments_after_delete AFTER DELETE ON attachments
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = OLD.activity_id;
END;
