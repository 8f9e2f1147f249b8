-- Where each key's registration and revocation sit in the transparency log, so clients
-- can check a key against the log's order rather than the server's clock.
ALTER TABLE publisher_keys ADD COLUMN log_index BIGINT;
ALTER TABLE publisher_keys ADD COLUMN revoked_log_index BIGINT;
