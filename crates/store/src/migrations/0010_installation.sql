-- crmsync store schema, migration 10: values of the installation, made once.
-- `tracking_key`: 32 random bytes (SQLite's randomblob, seeded from the operating system)
-- that sign the tracking tokens in the Message-IDs of mail crmsync sends (`core::token`).
-- Every node of an installation shares it through the store. Whoever can read it can make a
-- message correlate with an activity of their choosing; it never leaves the store.
CREATE TABLE installation (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
INSERT INTO installation (name, value) VALUES ('tracking_key', randomblob(32));
