-- Entitlements: a private plugin offered to a tenant. The tenant's members (through a
-- token holding a `tenant:` scope for it) and its instances see the plugin as if it were
-- public, and its administrators may approve it; nobody else sees it. Granting and
-- revoking are audited (`entitlement.grant`, `entitlement.revoke`).
CREATE TABLE entitlements (
    plugin_id BIGINT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, tenant_id)
);
CREATE INDEX entitlements_tenant ON entitlements (tenant_id);
