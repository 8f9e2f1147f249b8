//! Entitlements: a private plugin offered to chosen tenants (paid or partner plugins).
//! The tenant's members — through a credential holding a `tenant:` scope for it — and its
//! instances see the plugin as if it were public, and its administrators may approve it;
//! everyone else is told it does not exist. Publishers (a token with a publish scope for
//! the publisher) grant and revoke; both are audited. Revoking also takes the plugin out of
//! the tenant's approved set when the tenant can no longer see it, so its instances
//! remove it at their next round.

use agora_core::tenant::{Entitlement, MAX_TENANTS, RevokedEntitlement};
use agora_store::{EntitlementRecord, PluginRecord, TenantRecord};

use crate::error::{RegistryError, Result};
use crate::tenants::{self, Need};
use crate::{Caller, Registry};

fn to_entitlement(record: &EntitlementRecord) -> Entitlement {
    Entitlement {
        plugin: format!("{}/{}", record.publisher, record.name),
        tenant: record.tenant.clone(),
        granted_by: record.granted_by.clone(),
        granted_at: record.granted_at,
    }
}

/// The plugin as its publisher's member with publish rights (or an administrator) sees it.
async fn managed_plugin(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
) -> Result<PluginRecord> {
    let plugin =
        crate::catalog::visible_plugin(registry, &caller.viewer(), publisher, name).await?;
    let owner = crate::publishers::get(registry, &plugin.publisher).await?;
    caller.require_publish(&owner)?;
    Ok(plugin)
}

async fn tenant_named(registry: &Registry, tenant: &str) -> Result<TenantRecord> {
    registry
        .meta
        .tenant(tenant)
        .await?
        .ok_or_else(|| RegistryError::not_found(format!("no tenant named {tenant}")))
}

/// Offers `publisher/name` to `tenant`. Granting what is already granted changes nothing
/// (and is not audited again). A public plugin may be granted too: the grant takes effect
/// when it is made private.
pub async fn grant(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
    tenant: &str,
) -> Result<Entitlement> {
    let plugin = managed_plugin(registry, caller, publisher, name).await?;
    let record = tenant_named(registry, tenant).await?;
    registry
        .meta
        .grant_entitlement(plugin.id, record.id, &caller.user.username)
        .await?;
    registry
        .meta
        .entitlement(plugin.id, record.id)
        .await?
        .as_ref()
        .map(to_entitlement)
        .ok_or_else(|| {
            RegistryError::internal("an entitlement", "it is missing after it was granted")
        })
}

/// Withdraws the offer; when the tenant can no longer see the plugin and had approved it,
/// the plugin leaves its approved set too (logged, by the caller). Revoking what was never
/// granted still removes such a pin, so a revocation interrupted halfway can be repeated.
pub async fn revoke(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
    tenant: &str,
) -> Result<RevokedEntitlement> {
    let plugin = managed_plugin(registry, caller, publisher, name).await?;
    let record = tenant_named(registry, tenant).await?;
    let revoked = registry
        .meta
        .revoke_entitlement(plugin.id, record.id, &caller.user.username)
        .await?;
    let pin_removed = tenants::withdraw(registry, &record, &plugin, &caller.user.username).await?;
    Ok(RevokedEntitlement {
        revoked,
        pin_removed,
    })
}

/// The tenants `publisher/name` is offered to: for the publisher's members who may see its
/// private plugins, and administrators.
pub async fn of_plugin(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
) -> Result<Vec<Entitlement>> {
    let viewer = caller.viewer();
    let plugin = crate::catalog::visible_plugin(registry, &viewer, publisher, name).await?;
    if !viewer.is_insider(plugin.publisher_id) {
        return Err(RegistryError::forbidden(format!(
            "only members of publisher {} (with a token that may see its private plugins) see who {publisher}/{name} is offered to",
            plugin.publisher
        )));
    }
    Ok(registry
        .meta
        .plugin_entitlements(plugin.id, MAX_TENANTS)
        .await?
        .iter()
        .map(to_entitlement)
        .collect())
}

/// The private plugins offered to `tenant`: for its members.
pub async fn of_tenant(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
) -> Result<Vec<Entitlement>> {
    let (record, _) = tenants::load(registry, caller, tenant, Need::Member).await?;
    Ok(registry
        .meta
        .tenant_entitlements(record.id, MAX_TENANTS)
        .await?
        .iter()
        .map(to_entitlement)
        .collect())
}
