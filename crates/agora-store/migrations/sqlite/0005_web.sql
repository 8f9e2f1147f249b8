-- The web UI: passwords and browser sessions, publisher verification and contacts,
-- ratings and reviews, and the listing columns search filters and ranks on.
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- A browser session; only the sha256 of its cookie value is stored.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE publishers ADD COLUMN verified_at BIGINT;
ALTER TABLE publishers ADD COLUMN email TEXT;
ALTER TABLE publishers ADD COLUMN url TEXT;

-- Copied from the publisher (1 when verified) so search can filter without a join.
ALTER TABLE plugins ADD COLUMN verified BIGINT NOT NULL DEFAULT 0;
-- Visible reviews only: their count and the sum of their ratings.
ALTER TABLE plugins ADD COLUMN rating_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE plugins ADD COLUMN rating_sum BIGINT NOT NULL DEFAULT 0;
-- Bayesian average x 1000 (prior: 5 ratings of 3), what "top rated" sorts on.
ALTER TABLE plugins ADD COLUMN rating_rank BIGINT NOT NULL DEFAULT 3000;
-- The latest version's compatibility.min_core as a sortable key (NULL: any host).
ALTER TABLE plugins ADD COLUMN min_core_key TEXT;
CREATE INDEX plugins_rating ON plugins (rating_rank DESC, id);
CREATE INDEX plugins_verified ON plugins (verified, downloads DESC, id);

CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    plugin_id BIGINT NOT NULL REFERENCES plugins (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    version TEXT NOT NULL,
    rating BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    hidden_at BIGINT,
    hidden_by TEXT,
    hidden_reason TEXT,
    UNIQUE (plugin_id, user_id)
);
CREATE INDEX reviews_plugin ON reviews (plugin_id, updated_at DESC, id);
