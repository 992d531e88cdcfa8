-- crmsync store schema, migration 15: links found by where their item is. A daemon's pass
-- over the few collection files a watcher named loads the links at those files, not every
-- link of the mailbox.
CREATE INDEX sync_links_location ON sync_links (mailbox, item_location);
