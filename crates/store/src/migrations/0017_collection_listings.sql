-- crmsync store schema, migration 17: the listing of each collection on a CalDAV/CardDAV
-- server as of its sync token (sync_state.sync_token of the same mailbox and scope), so that
-- a restarted daemon, or a one-shot `crmsync sync`, asks the server only for what changed
-- since (RFC 6578) instead of listing the collection whole. crmsync's own: written in one
-- transaction with the token, never by another program.
CREATE TABLE collection_listings (
    mailbox TEXT NOT NULL,
    scope   TEXT NOT NULL,
    href    TEXT NOT NULL,
    etag    TEXT NOT NULL,
    PRIMARY KEY (mailbox, scope, href)
) WITHOUT ROWID;
