//! Entitlements: adapters over `agora_registry::entitlements`. Publishers offer a private
//! plugin to chosen tenants; a tenant's members list what is offered to it.

use agora_core::api::Problem;
use agora_core::tenant::{Entitlement, EntitlementList, RevokedEntitlement};
use agora_registry::entitlements;
use axum::Json;
use axum::extract::State;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::AppState;

/// The tenants a plugin is offered to (the publisher's members who may see its private plugins, and administrators).
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/entitlements", tag = "entitlements", operation_id = "list_plugin_entitlements",
    params(("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name")), security(("token" = [])),
    responses((status = 200, description = "By tenant name", body = EntitlementList),
        (status = 403, description = "`forbidden`: not a member of the publisher, or the token cannot see its private plugins", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
pub async fn list_plugin_entitlements(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name)): ApiPath<(String, String)>,
) -> Result<Json<EntitlementList>, ApiError> {
    Ok(Json(EntitlementList {
        entitlements: entitlements::of_plugin(&state.registry, &caller, &publisher, &name).await?,
    }))
}

/// Offer a private plugin to a tenant (a token with a publish scope for the publisher): the tenant's members and instances see it, and its administrators may approve it. Audited as `entitlement.grant`; granting twice changes nothing.
#[utoipa::path(put, path = "/api/v1/plugins/{publisher}/{name}/entitlements/{tenant}", tag = "entitlements", operation_id = "grant_entitlement",
    params(("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name"), ("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "The entitlement", body = Entitlement),
        (status = 403, description = "`forbidden`: the token has no publish scope for the publisher, or the user is not its member", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin (or a private one the caller may not see), or no such tenant", body = Problem, content_type = PROBLEM)))]
pub async fn grant_entitlement(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name, tenant)): ApiPath<(String, String, String)>,
) -> Result<Json<Entitlement>, ApiError> {
    Ok(Json(
        entitlements::grant(&state.registry, &caller, &publisher, &name, &tenant).await?,
    ))
}

/// Withdraw a plugin's offer to a tenant (a token with a publish scope for the publisher). When the tenant can no longer see the plugin and had approved it, it leaves the tenant's approved set too (a logged removal), and its instances remove it. Audited as `entitlement.revoke`.
#[utoipa::path(delete, path = "/api/v1/plugins/{publisher}/{name}/entitlements/{tenant}", tag = "entitlements", operation_id = "revoke_entitlement",
    params(("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name"), ("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "What was revoked and removed", body = RevokedEntitlement),
        (status = 403, description = "`forbidden`: the token has no publish scope for the publisher, or the user is not its member", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin (or a private one the caller may not see), or no such tenant", body = Problem, content_type = PROBLEM)))]
pub async fn revoke_entitlement(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name, tenant)): ApiPath<(String, String, String)>,
) -> Result<Json<RevokedEntitlement>, ApiError> {
    Ok(Json(
        entitlements::revoke(&state.registry, &caller, &publisher, &name, &tenant).await?,
    ))
}

/// The private plugins offered to a tenant (its members, token with `tenant:T` or `tenant:*`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/entitlements", tag = "entitlements", operation_id = "list_tenant_entitlements",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "By publisher and name", body = EntitlementList),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn list_tenant_entitlements(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<EntitlementList>, ApiError> {
    Ok(Json(EntitlementList {
        entitlements: entitlements::of_tenant(&state.registry, &caller, &tenant).await?,
    }))
}
