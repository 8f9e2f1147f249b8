-- Security model: tokens know which token minted them (a child never outlives its parent,
-- and revoking a token revokes what it minted); who proved possession of a blob's bytes
-- (a release may only name blobs its publisher uploaded or can already read); each
-- publisher's key history is a hash chain whose head releases name; private log entries
-- are sealed, their openings kept beside them; owners invite members instead of adding
-- them.
ALTER TABLE tokens ADD COLUMN parent_id BIGINT REFERENCES tokens (id);
CREATE INDEX tokens_parent ON tokens (parent_id);

CREATE TABLE blob_uploaders (
    digest TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (digest, user_id)
);
INSERT INTO blob_uploaders (digest, user_id, created_at)
    SELECT digest, uploaded_by, created_at FROM blobs WHERE uploaded_by IS NOT NULL;

-- The newest key event of the publisher in the transparency log: its index and leaf hash.
ALTER TABLE publishers ADD COLUMN key_head_index BIGINT;
ALTER TABLE publishers ADD COLUMN key_head_leaf TEXT;

-- A sealed entry's opening (the entry in clear and its nonce), shown only to readers who
-- may see the plugin it belongs to.
ALTER TABLE log_entries ADD COLUMN opening TEXT;
ALTER TABLE log_entries ADD COLUMN plugin_id BIGINT REFERENCES plugins (id);

CREATE TABLE publisher_invitations (
    publisher_id BIGINT NOT NULL REFERENCES publishers (id),
    username TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (publisher_id, username)
);
CREATE INDEX publisher_invitations_user ON publisher_invitations (username);
