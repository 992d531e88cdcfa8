-- crmsync store schema, migration 4: the identity of calendar and address-book items.
-- An event, task or contact is identified by its iCalendar or vCard UID. The CRM row that
-- copies one keeps that UID, so the same meeting tracked in two people's calendars is one
-- appointment, and an item crmsync wrote into a collection for a CRM-created row (with the
-- row's id as its UID) is never tracked as a second row. NULL for rows that copy no such item.
ALTER TABLE activities ADD COLUMN uid TEXT;
CREATE INDEX activities_uid ON activities (uid);
ALTER TABLE records ADD COLUMN uid TEXT;
CREATE INDEX records_uid ON records (uid);
