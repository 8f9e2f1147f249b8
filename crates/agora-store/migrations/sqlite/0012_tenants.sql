-- Tenants: organisations whose instances (host installations) run an approved set of
-- plugins under the tenant's policy (`agora_core::policy::HostPolicy` JSON). Members are
-- administrators or members; a tenant always keeps an administrator. An instance holds
-- the sha256 of its credential and its last report. Each pin holds a version and its
-- manifest digest, what the approval grants (reach JSON), its transparency log entry and
-- the pin before the last move (for a rollback). The generation is bumped by every change
-- of the approved set or the policy; instances poll it.
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT,
    policy TEXT NOT NULL,
    auto_update BIGINT NOT NULL DEFAULT 0 CHECK (auto_update IN (0, 1)),
    generation BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE tenant_members (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_members_user ON tenant_members (user_id);
CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_seen_at BIGINT,
    core_version TEXT,
    runner_version TEXT,
    platform TEXT,
    generation BIGINT,
    state TEXT CHECK (state IN ('converged', 'failed')),
    detail TEXT,
    report TEXT,
    UNIQUE (tenant_id, name)
);
CREATE TABLE tenant_pins (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    reach TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    previous_version TEXT,
    previous_digest TEXT,
    previous_reach TEXT,
    PRIMARY KEY (tenant_id, plugin_id)
);
CREATE INDEX tenant_pins_plugin ON tenant_pins (plugin_id);
