-- crmsync store schema, migration 16: how many links each mailbox has of each kind, kept by
-- triggers for every writer. A daemon's pass over a few collection files needs the count of
-- the collection's links (its delete guards judge the whole collection); counting 100,000
-- index entries on every such pass cost more than the rest of the pass.
CREATE TABLE sync_link_counts (
    mailbox   TEXT NOT NULL,
    item_kind TEXT NOT NULL,
    links     INTEGER NOT NULL,
    PRIMARY KEY (mailbox, item_kind)
) WITHOUT ROWID;

INSERT INTO sync_link_counts (mailbox, item_kind, links)
SELECT mailbox, item_kind, count(*) FROM sync_links GROUP BY mailbox, item_kind;

CREATE TRIGGER sync_links_counted_insert AFTER INSERT ON sync_links
BEGIN
    INSERT INTO sync_link_counts (mailbox, item_kind, links) VALUES (NEW.mailbox, NEW.item_kind, 1)
    ON CONFLICT (mailbox, item_kind) DO UPDATE SET links = links + 1;
END;

CREATE TRIGGER sync_links_counted_delete AFTER DELETE ON sync_links
BEGIN
    UPDATE sync_link_counts SET links = links - 1
    WHERE mailbox = OLD.mailbox AND item_kind = OLD.item_kind;
END;

CREATE TRIGGER sync_links_counted_update AFTER UPDATE OF mailbox, item_kind ON sync_links
WHEN OLD.mailbox IS NOT NEW.mailbox OR OLD.item_kind IS NOT NEW.item_kind
BEGIN
    UPDATE sync_link_counts SET links = links - 1
    WHERE mailbox = OLD.mailbox AND item_kind = OLD.item_kind;
    INSERT INTO sync_link_counts (mailbox, item_kind, links) VALUES (NEW.mailbox, NEW.item_kind, 1)
    ON CONFLICT (mailbox, item_kind) DO UPDATE SET links = links + 1;
END;
