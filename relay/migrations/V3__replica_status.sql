-- Each replica's coordination status (docs/operations.md, "Running several relays"): what `GET /v1/coordination`
-- on any replica lists for the replicas connected to the database. Written by each replica when its status
-- changes; not part of the audited state, and outside the write turn.
CREATE TABLE replica_status (
    replica text PRIMARY KEY,
    status jsonb NOT NULL
);
