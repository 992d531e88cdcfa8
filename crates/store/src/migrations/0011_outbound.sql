-- crmsync store schema, migration 11: where the sending of each email activity stands
-- (SPEC section 5; docs/outbound.md). One row per email activity a mailbox took to send;
-- `phase` is written before the step it names, so that after a kill the next pass knows
-- whether the server can have the message: `claimed` (taken, before connecting),
-- `committing` (the body and its final dot are going out), `accepted` (the server took it;
-- the activity is `sent`), `done` (its copy is in the Sent folder and linked), `retry` (a
-- transient failure; `next_attempt` says when), `failed`, `uncertain`.
CREATE TABLE outbound (
    activity_id  TEXT PRIMARY KEY REFERENCES activities (id) ON DELETE CASCADE,
    mailbox      TEXT NOT NULL,
    phase        TEXT NOT NULL CHECK (phase IN ('claimed', 'committing', 'accepted', 'done',
                                                'retry', 'failed', 'uncertain')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt TEXT,
    last_error   TEXT,
    -- The message as it went out, from `committing` until its copy is in Sent: the copy must
    -- be the same bytes (its identity is the Message-ID and a hash of its content).
    raw          BLOB,
    updated      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Goes with its activity, whoever deletes it.
CREATE TRIGGER outbound_activity_deleted AFTER DELETE ON activities
BEGIN
    DELETE FROM outbound WHERE activity_id = OLD.id;
END;
