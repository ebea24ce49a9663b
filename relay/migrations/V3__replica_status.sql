-- Each replica's coordination status (docs/operations.md, "Running several relays"): what `GET /v1/coordination`
-- on any replica lists for the replicas connected to the database. Written by each replica when its status
-- changes; not part of the audited state, and outside the write turn.
-- `application_name` is the writing session's, as the server keeps it (truncated to 63 bytes, non-ASCII replaced):
-- what `pg_stat_activity` shows for that replica while it is connected.
CREATE TABLE replica_status (
    replica text PRIMARY KEY,
    application_name text NOT NULL,
    status jsonb NOT NULL
);
