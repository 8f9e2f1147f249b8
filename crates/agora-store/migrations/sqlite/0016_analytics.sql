-- Analytics (see agora_core::analytics). Raw events are kept for the retention period
-- (by when they arrived); rollups are added to, never overwritten, so late events land in
-- the bucket of when they happened and several servers' batches add up exactly. Plugin,
-- version, tenant and instance ids are plain numbers (0 where none): analytics outlive
-- nothing they describe and never block a deletion.
CREATE TABLE analytics_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('download', 'install', 'removal', 'run', 'search')),
    at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    plugin_id BIGINT NOT NULL,
    version_id BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    instance_id BIGINT NOT NULL,
    count BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    total_ms BIGINT NOT NULL,
    query TEXT,
    detail TEXT
);
CREATE INDEX analytics_events_received ON analytics_events (received_at);

-- Counts per hour and per day, per kind, version and tenant.
CREATE TABLE analytics_counts (
    period TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    bucket BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('download', 'install', 'removal', 'run')),
    plugin_id BIGINT NOT NULL,
    version_id BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    count BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    total_ms BIGINT NOT NULL,
    PRIMARY KEY (period, bucket, kind, plugin_id, version_id, tenant_id)
);
CREATE INDEX analytics_counts_plugin ON analytics_counts (plugin_id, period, bucket);
CREATE INDEX analytics_counts_tenant ON analytics_counts (tenant_id, period, bucket);

-- Run durations per day, version and tenant: calls per histogram slot.
CREATE TABLE analytics_durations (
    day BIGINT NOT NULL,
    plugin_id BIGINT NOT NULL,
    version_id BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    slot INTEGER NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (day, plugin_id, version_id, tenant_id, slot)
);
CREATE INDEX analytics_durations_version ON analytics_durations (version_id, day);

-- Errors by class per version and tenant, with when first and last seen.
CREATE TABLE analytics_errors (
    plugin_id BIGINT NOT NULL,
    version_id BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    class TEXT NOT NULL,
    count BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    sample TEXT,
    PRIMARY KEY (plugin_id, version_id, tenant_id, class)
);
CREATE INDEX analytics_errors_last ON analytics_errors (last_seen);

-- Searches per day and normalised query (bounded per day; the rest under '(other)').
CREATE TABLE analytics_searches (
    day BIGINT NOT NULL,
    query TEXT NOT NULL,
    count BIGINT NOT NULL,
    zero_results BIGINT NOT NULL,
    PRIMARY KEY (day, query)
);

-- What each instance runs now, as its agent last reported: installs and removals are the
-- differences between reports.
CREATE TABLE analytics_installed (
    instance_id BIGINT NOT NULL,
    plugin_id BIGINT NOT NULL,
    version_id BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (instance_id, plugin_id)
);
CREATE INDEX analytics_installed_version ON analytics_installed (version_id);
CREATE INDEX analytics_installed_plugin ON analytics_installed (plugin_id);

-- The last run batch counted per instance: a report sent again counts once.
CREATE TABLE analytics_batches (
    instance_id BIGINT PRIMARY KEY,
    batch BIGINT NOT NULL
);
