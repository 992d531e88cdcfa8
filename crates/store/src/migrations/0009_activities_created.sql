-- crmsync store schema, migration 9: activities by creation time, for the loop guard of
-- automatic tracking (the emails of the last hour by sender and subject) without reading
-- every activity.
CREATE INDEX activities_created ON activities (created);
