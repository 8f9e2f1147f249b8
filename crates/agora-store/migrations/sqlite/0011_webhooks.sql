-- Webhooks: signed HTTP callbacks on registry events, per publisher (publisher_id set)
-- or registry-wide (NULL). The secret signs each delivery (Standard Webhooks), so it is
-- kept as given, not hashed. Each event a hook subscribes to becomes a delivery, sent by
-- a `webhook` job of the job queue; each attempt is recorded, the newest kept per hook.
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    publisher_id BIGINT REFERENCES publishers (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhooks_publisher ON webhooks (publisher_id);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    webhook_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_hook ON webhook_attempts (webhook_id, id);
