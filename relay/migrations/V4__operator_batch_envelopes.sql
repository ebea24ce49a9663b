-- Batch envelopes an operator sealed for an agent (`POST /v1/credentials/batch`, docs/protocol.md, "Operator
-- batches"): one envelope carrying several credentials' payloads, kept once; each credential's row in `envelopes`
-- names its batch.
CREATE TABLE batch_envelopes (
    batch text COLLATE "C" NOT NULL,
    agent text COLLATE "C" NOT NULL,
    rec jsonb NOT NULL,
    PRIMARY KEY (batch, agent)
);
