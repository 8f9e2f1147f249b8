-- Publisher signing keys; a release names the key that signed it.
CREATE TABLE publisher_keys (
    publisher_id BIGINT NOT NULL REFERENCES publishers (id),
    id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    comment TEXT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    revocation_reason TEXT,
    PRIMARY KEY (publisher_id, id)
);

ALTER TABLE versions ADD COLUMN signer_key TEXT;
