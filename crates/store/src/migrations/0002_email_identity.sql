-- crmsync store schema, migration 2: the identity of an email activity.
-- An email is identified by its Message-ID plus a hash of the header fields that do not change
-- when it is moved or delivered to several people; the same message tracked in two mailboxes
-- is one activity. content_hash holds that hash (lowercase hex); NULL for activities that are
-- not copies of a message.
ALTER TABLE activities ADD COLUMN content_hash TEXT;
CREATE INDEX activities_email_identity ON activities (message_id, content_hash);
