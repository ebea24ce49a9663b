-- The relay's state (docs/operations.md, "State backends"). Records are the same JSON the sled backend keeps;
-- key columns are collated "C" so lists come back in the same byte order on both backends.

CREATE TABLE agents (
    id text COLLATE "C" PRIMARY KEY,
    rec jsonb NOT NULL
);

CREATE TABLE credentials (
    id text COLLATE "C" PRIMARY KEY,
    rec jsonb NOT NULL
);

-- The live credential holding each name.
CREATE TABLE credential_names (
    name text COLLATE "C" PRIMARY KEY,
    id text COLLATE "C" NOT NULL
);

CREATE TABLE deliveries (
    credential text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    rec jsonb NOT NULL,
    PRIMARY KEY (credential, agent)
);
CREATE INDEX deliveries_of_agent ON deliveries (agent);

CREATE TABLE envelopes (
    credential text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    agent text COLLATE "C" NOT NULL,
    rec jsonb NOT NULL,
    PRIMARY KEY (credential, version, agent)
);

CREATE TABLE in_flight (
    request_id uuid PRIMARY KEY,
    target text COLLATE "C" NOT NULL,
    rec jsonb NOT NULL
);
CREATE INDEX in_flight_of_target ON in_flight (target);

CREATE TABLE blocklist (
    credential text COLLATE "C" NOT NULL,
    peer text COLLATE "C" NOT NULL,
    until_ms bigint NOT NULL,
    PRIMARY KEY (credential, peer)
);

CREATE TABLE alerts (
    key text COLLATE "C" PRIMARY KEY,
    rec jsonb NOT NULL
);

CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    rec jsonb NOT NULL
);

CREATE TABLE receipts (
    credential text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    rec jsonb NOT NULL,
    PRIMARY KEY (credential, agent, kind)
);

CREATE TABLE renewals (
    agent text COLLATE "C" PRIMARY KEY,
    rec jsonb NOT NULL
);

CREATE TABLE meta (
    key text COLLATE "C" PRIMARY KEY,
    rec jsonb NOT NULL
);

-- The hash-chained audit trail: append-only. Each entry carries the hash of the one before (verified by
-- `tessera audit verify`); one relay writes (it holds a session advisory lock and checks it in every transaction)
-- and the primary key refuses a second entry at a sequence number. UPDATE, DELETE and TRUNCATE are refused here,
-- whoever asks.
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    entry jsonb NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
