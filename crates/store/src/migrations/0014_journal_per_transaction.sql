-- crmsync store schema, migration 14: one change-journal row per changed row per crmsync
-- transaction. Adding an activity's parties and attachments used to bump the activity once
-- each, and each bump journaled it again (3 to 7 rows per imported email). crmsync now notes
-- where the journal stood when its transaction began (`journal_writer.since`); inside that
-- transaction a change to the row the newest journal row already names is not journaled
-- again (nobody can have read the row in between), and a change of its child rows (parties,
-- attachments, emails, phones) does not bump its version again; an UPDATE of the row itself
-- still does. Other programs leave `since` NULL and journal every change as before.
ALTER TABLE journal_writer ADD COLUMN since INTEGER;

-- The newest journal row, when the running crmsync transaction wrote it (none otherwise):
-- the row a change inside that transaction need not journal or version again.
CREATE VIEW journal_newest_in_transaction AS
SELECT j.entity, j.row_id
FROM change_journal j, journal_writer w
WHERE w.id = 1 AND j.seq > w.since
  AND j.seq = (SELECT seq FROM sqlite_sequence WHERE name = 'change_journal');

DROP TRIGGER records_after_update;
CREATE TRIGGER records_after_update AFTER UPDATE ON records
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    SELECT 'record', NEW.id, 'update', (SELECT origin FROM journal_writer WHERE id = 1)
    WHERE NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = NEW.id);
    UPDATE records SET version = OLD.version + 1,
                       modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id AND NEW.version IS OLD.version;
END;

DROP TRIGGER activities_after_update;
CREATE TRIGGER activities_after_update AFTER UPDATE ON activities
BEGIN
    INSERT INTO change_journal (entity, row_id, op, origin)
    SELECT 'activity', NEW.id, 'update', (SELECT origin FROM journal_writer WHERE id = 1)
    WHERE NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'activity' AND row_id = NEW.id);
    UPDATE activities SET version = OLD.version + 1,
                          modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id AND NEW.version IS OLD.version;
END;

-- A change to a record's emails or phones is a change of the record: bumped and journaled,
-- unless this transaction journaled the record just before (its insert or update).
DROP TRIGGER record_emails_after_insert;
DROP TRIGGER record_emails_after_update;
DROP TRIGGER record_emails_after_delete;
DROP TRIGGER record_phones_after_insert;
DROP TRIGGER record_phones_after_update;
DROP TRIGGER record_phones_after_delete;
CREATE TRIGGER record_emails_after_insert AFTER INSERT ON record_emails
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.record_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = NEW.record_id);
END;
CREATE TRIGGER record_emails_after_update AFTER UPDATE ON record_emails
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.record_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = NEW.record_id);
END;
CREATE TRIGGER record_emails_after_delete AFTER DELETE ON record_emails
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = OLD.record_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = OLD.record_id);
END;
CREATE TRIGGER record_phones_after_insert AFTER INSERT ON record_phones
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.record_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = NEW.record_id);
END;
CREATE TRIGGER record_phones_after_update AFTER UPDATE ON record_phones
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.record_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = NEW.record_id);
END;
CREATE TRIGGER record_phones_after_delete AFTER DELETE ON record_phones
BEGIN
    UPDATE records SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = OLD.record_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'record' AND row_id = OLD.record_id);
END;

-- The same for an activity's parties and attachments.
DROP TRIGGER parties_after_insert;
DROP TRIGGER parties_after_update;
DROP TRIGGER parties_after_delete;
DROP TRIGGER attachments_after_insert;
DROP TRIGGER attachments_after_delete;
CREATE TRIGGER parties_after_insert AFTER INSERT ON parties
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.activity_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'activity' AND row_id = NEW.activity_id);
END;
CREATE TRIGGER parties_after_update AFTER UPDATE ON parties
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.activity_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'activity' AND row_id = NEW.activity_id);
END;
CREATE TRIGGER parties_after_delete AFTER DELETE ON parties
BEGIN
    DELETE FROM party_candidates WHERE party_id = OLD.id;
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = OLD.activity_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'activity' AND row_id = OLD.activity_id);
END;
CREATE TRIGGER attachments_after_insert AFTER INSERT ON attachments
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.activity_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'activity' AND row_id = NEW.activity_id);
END;
CREATE TRIGGER attachments_after_delete AFTER DELETE ON attachments
BEGIN
    UPDATE activities SET version = version + 1, modified = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = OLD.activity_id
      AND NOT EXISTS (SELECT 1 FROM journal_newest_in_transaction
                      WHERE entity = 'activity' AND row_id = OLD.activity_id);
END;
