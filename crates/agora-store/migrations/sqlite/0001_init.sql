-- Agora schema v1 for SQLite. Timestamps are Unix milliseconds.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'publisher', 'user')),
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE publishers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE publisher_members (
    publisher_id BIGINT NOT NULL REFERENCES publishers (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    PRIMARY KEY (publisher_id, user_id)
);
CREATE INDEX publisher_members_user ON publisher_members (user_id);

-- One row per plugin; its listing fields are copied from the latest resolvable version.
CREATE TABLE plugins (
    id INTEGER PRIMARY KEY,
    publisher_id BIGINT NOT NULL REFERENCES publishers (id),
    publisher TEXT NOT NULL,
    name TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    provider TEXT,
    runtime TEXT NOT NULL,
    keywords TEXT NOT NULL,
    latest_version TEXT,
    downloads BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (publisher_id, name)
);
CREATE INDEX plugins_downloads ON plugins (downloads DESC, id);
CREATE INDEX plugins_updated ON plugins (updated_at DESC, id);
CREATE INDEX plugins_name ON plugins (name, id);
CREATE INDEX plugins_provider ON plugins (provider);
CREATE INDEX plugins_runtime ON plugins (runtime);

-- Tags, categories and capabilities of a plugin's latest version, for filtering.
CREATE TABLE plugin_labels (
    plugin_id BIGINT NOT NULL REFERENCES plugins (id),
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'category', 'capability')),
    value TEXT NOT NULL,
    PRIMARY KEY (kind, value, plugin_id)
);
CREATE INDEX plugin_labels_plugin ON plugin_labels (plugin_id);

CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    plugin_id BIGINT NOT NULL REFERENCES plugins (id),
    version TEXT NOT NULL,
    manifest TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    signature TEXT,
    state TEXT NOT NULL CHECK (state IN ('active', 'deprecated', 'insecure', 'yanked', 'removed')),
    state_reason TEXT,
    replacement TEXT,
    downloads BIGINT NOT NULL DEFAULT 0,
    published_at BIGINT NOT NULL,
    published_by BIGINT NOT NULL REFERENCES users (id),
    UNIQUE (plugin_id, version)
);

CREATE TABLE artifacts (
    version_id BIGINT NOT NULL REFERENCES versions (id),
    path TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX artifacts_digest ON artifacts (digest);

CREATE TABLE dependencies (
    version_id BIGINT NOT NULL REFERENCES versions (id),
    dependency TEXT NOT NULL,
    requirement TEXT NOT NULL,
    PRIMARY KEY (version_id, dependency)
);

-- Blobs known to the blob store; written before any version refers to them.
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    uploaded_by BIGINT REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_events_target ON audit_events (target, id);

-- Full-text search over the listing fields, kept in step with `plugins` by triggers.
CREATE VIRTUAL TABLE plugins_fts USING fts5 (
    publisher, name, display_name, description, keywords,
    content = 'plugins', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
CREATE TRIGGER plugins_fts_insert AFTER INSERT ON plugins BEGIN
    INSERT INTO plugins_fts (rowid, publisher, name, display_name, description, keywords)
    VALUES (new.id, new.publisher, new.name, new.display_name, new.description, new.keywords);
END;
CREATE TRIGGER plugins_fts_delete AFTER DELETE ON plugins BEGIN
    INSERT INTO plugins_fts (plugins_fts, rowid, publisher, name, display_name, description, keywords)
    VALUES ('delete', old.id, old.publisher, old.name, old.display_name, old.description, old.keywords);
END;
CREATE TRIGGER plugins_fts_update AFTER UPDATE OF publisher, name, display_name, description, keywords ON plugins BEGIN
    INSERT INTO plugins_fts (plugins_fts, rowid, publisher, name, display_name, description, keywords)
    VALUES ('delete', old.id, old.publisher, old.name, old.display_name, old.description, old.keywords);
    INSERT INTO plugins_fts (rowid, publisher, name, display_name, description, keywords)
    VALUES (new.id, new.publisher, new.name, new.display_name, new.description, new.keywords);
END;
