-- PostgreSQL: who may do what with the nasindex index, so that the audit trail is
-- append-only for everyone but the database owner. Run as the owner of the nasindex
-- tables (the role that ran `nasindex init`), in the nasindex database, after every
-- `nasindex init` that adds tables. Create the two login roles first, e.g.
--   CREATE ROLE nasindex_sync LOGIN PASSWORD '...';  -- flows, workers, the CLI
--   CREATE ROLE nasindex_web LOGIN PASSWORD '...';   -- the dashboard (and the API)
-- and give each its own [index] url.

GRANT USAGE ON SCHEMA public TO nasindex_sync, nasindex_web;

-- Indexing writes the index; everyone may add audit records (a CLI search is audited).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO nasindex_sync;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO nasindex_sync;

-- The dashboard reads the index and adds audit records, nothing else.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO nasindex_web;
GRANT INSERT ON audit_event TO nasindex_web;
GRANT USAGE ON SEQUENCE audit_event_id_seq TO nasindex_web;

-- Nobody but the owner may change or remove an audit record. (The triggers of
-- migration 0004 refuse UPDATE, DELETE and TRUNCATE of audit_event even to the owner;
-- only a deliberate DROP TRIGGER by the owner could lift that.)
REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM nasindex_sync, nasindex_web;
