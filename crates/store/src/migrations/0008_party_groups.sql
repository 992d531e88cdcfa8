-- crmsync store schema, migration 8: the group an email party was addressed through.
-- `To: Team: a@x, b@y;` (RFC 5322 group syntax, SPEC's distribution lists) gives two parties
-- with group_name 'Team'; NULL for an address written on its own.
ALTER TABLE parties ADD COLUMN group_name TEXT;
