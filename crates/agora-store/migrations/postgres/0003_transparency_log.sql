-- The transparency log: every accepted release and key change, in order. Entry idx is
-- the Merkle leaf index; entries are only ever appended.
CREATE TABLE log_entries (
    idx BIGINT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The log's signing key (one row), created at first start and shared by all replicas.
CREATE TABLE log_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT NOT NULL,
    signer_key TEXT NOT NULL,
    verifier_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

ALTER TABLE versions ADD COLUMN log_index BIGINT;
