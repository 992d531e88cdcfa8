-- crmsync store schema, migration 12: what a CRM user puts into outgoing email: templates
-- (with placeholders, core::template), knowledge-base articles (KB-1001...), and sales
-- literature (named sets of files, attached as they are).
CREATE TABLE templates (
    name     TEXT PRIMARY KEY,
    subject  TEXT NOT NULL,
    -- A plain-text body, an HTML body, or both.
    body     TEXT,
    html     TEXT,
    created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (body IS NOT NULL OR html IS NOT NULL)
);

CREATE TABLE articles (
    number   TEXT PRIMARY KEY,
    title    TEXT NOT NULL,
    body     TEXT NOT NULL,
    created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE literature (
    name     TEXT PRIMARY KEY,
    created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE literature_files (
    literature   TEXT NOT NULL REFERENCES literature (name) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content      BLOB NOT NULL,
    PRIMARY KEY (literature, position)
);

CREATE TRIGGER literature_deleted AFTER DELETE ON literature
BEGIN
    DELETE FROM literature_files WHERE literature = OLD.name;
END;
