//! Entitlements: which tenants a private plugin is offered to. A tenant's members and
//! instances see an entitled plugin as if it were public (`Viewer::tenants`), and its
//! administrators may approve it. Each grant and revocation is one transaction with its
//! audit event.

use async_trait::async_trait;

use super::Result;

/// One plugin offered to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRecord {
    pub plugin_id: i64,
    pub publisher: String,
    pub name: String,
    pub tenant_id: i64,
    pub tenant: String,
    pub granted_by: String,
    pub granted_at: i64,
}

#[async_trait]
pub trait EntitlementStore: Send + Sync {
    /// Offers the plugin to the tenant, audited as `entitlement.grant`; false (and no
    /// event) when it already was.
    async fn grant_entitlement(&self, plugin_id: i64, tenant_id: i64, actor: &str) -> Result<bool>;

    /// Withdraws the offer, audited as `entitlement.revoke`; false (and no event) when
    /// there was none.
    async fn revoke_entitlement(&self, plugin_id: i64, tenant_id: i64, actor: &str)
    -> Result<bool>;

    /// The plugin's offer to the tenant, if it is offered.
    async fn entitlement(
        &self,
        plugin_id: i64,
        tenant_id: i64,
    ) -> Result<Option<EntitlementRecord>>;

    /// The tenants the plugin is offered to, by tenant name, at most `limit`.
    async fn plugin_entitlements(
        &self,
        plugin_id: i64,
        limit: u32,
    ) -> Result<Vec<EntitlementRecord>>;

    /// The plugins offered to the tenant, by publisher and name, at most `limit`.
    async fn tenant_entitlements(
        &self,
        tenant_id: i64,
        limit: u32,
    ) -> Result<Vec<EntitlementRecord>>;

    /// The ids and names of the tenants `user_id` belongs to (any role), by name: whose
    /// entitlements the user's tokens may carry.
    async fn member_tenants(&self, user_id: i64) -> Result<Vec<(i64, String)>>;
}
