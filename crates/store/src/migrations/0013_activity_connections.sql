-- crmsync store schema, migration 13: connections between an activity and a record (the
-- seed's "add a connection to any record" of a tracked item; `crmsync connection add`,
-- `crmsync activity convert`). Record-to-record connections stay in `connections`.
CREATE TABLE activity_connections (
    id            INTEGER PRIMARY KEY,
    activity_id   TEXT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    activity_role TEXT,
    record_id     TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    record_role   TEXT,
    created       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX activity_connections_activity ON activity_connections (activity_id);
CREATE INDEX activity_connections_record ON activity_connections (record_id);

-- They go with either end, whoever deletes it.
CREATE TRIGGER activity_connections_activity_deleted AFTER DELETE ON activities
BEGIN
    DELETE FROM activity_connections WHERE activity_id = OLD.id;
END;
CREATE TRIGGER activity_connections_record_deleted AFTER DELETE ON records
BEGIN
    DELETE FROM activity_connections WHERE record_id = OLD.id;
END;
