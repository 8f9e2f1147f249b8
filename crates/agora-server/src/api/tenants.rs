//! The control plane's API: adapters over `agora_registry::tenants`. Members act with a
//! token holding `tenant:T` or `tenant:*` (and their role in the tenant); instances with
//! their own `agi_` credential (`/api/v1/instance/...`).

use std::time::Duration;

use agora_core::api::Problem;
use agora_core::tenant::{
    AppliedUpdates, ApplyUpdates, Approval, ApprovalList, ApproveRequest, CreateTenant,
    DesiredSet, FleetView, InstallPreview, InstanceList, InstanceReport, RegisterInstance,
    RegisteredInstance, SetTenantMember, Tenant, TenantList, TenantMemberList, TenantPolicy,
    UpdateList,
};
use agora_registry::tenants;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::openapi::PROBLEM;
use crate::auth::{Authenticated, InstanceAuth};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Create a tenant (registry administrators, token with `admin`); `admin` (default: the caller) becomes its first administrator.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", operation_id = "create_tenant",
    request_body = CreateTenant, security(("token" = [])),
    responses((status = 201, description = "Created", body = Tenant),
        (status = 403, description = "`forbidden`: only administrators create tenants", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the name is taken, or the registry holds the most tenants allowed", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a field named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let tenant = tenants::create(&state.registry, &caller, &request).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// The tenants the caller belongs to (every tenant, for an administrator), each with the caller's role.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", operation_id = "list_tenants", security(("token" = [])),
    responses((status = 200, description = "By name", body = TenantList),
        ))]
pub async fn list_tenants(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList {
        tenants: tenants::list(&state.registry, &caller).await?,
    }))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants", operation_id = "get_tenant",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "The tenant, with the caller's role", body = Tenant),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(tenants::get(&state.registry, &caller, &tenant).await?))
}

/// The tenant's policy: the fields of a host policy file, and whether updates that ask for no more are applied automatically.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/policy", tag = "tenants", operation_id = "get_tenant_policy",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "The policy", body = TenantPolicy),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn get_tenant_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<TenantPolicy>, ApiError> {
    Ok(Json(tenants::policy(&state.registry, &caller, &tenant).await?))
}

/// Replace the tenant's policy (its administrators). Instances apply it at their next poll; the runner admits a plugin only if the host's policy and this one both do.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/policy", tag = "tenants", operation_id = "set_tenant_policy",
    params(("tenant" = String, Path, description = "The tenant's name")),
    request_body = TenantPolicy, security(("token" = [])),
    responses((status = 200, description = "The policy now", body = TenantPolicy),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a field named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn set_tenant_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(policy): ApiJson<TenantPolicy>,
) -> Result<Json<TenantPolicy>, ApiError> {
    Ok(Json(
        tenants::set_policy(&state.registry, &caller, &tenant, &policy).await?,
    ))
}

/// The tenant's members.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "tenants", operation_id = "list_tenant_members",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "By user name", body = TenantMemberList),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn list_tenant_members(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<TenantMemberList>, ApiError> {
    Ok(Json(TenantMemberList {
        members: tenants::members(&state.registry, &caller, &tenant).await?,
    }))
}

/// Add a member or change their role (the tenant's administrators).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/members/{user}", tag = "tenants", operation_id = "set_tenant_member",
    params(("tenant" = String, Path, description = "The tenant's name"), ("user" = String, Path, description = "The user's name")),
    request_body = SetTenantMember, security(("token" = [])),
    responses((status = 200, description = "The members now", body = TenantMemberList),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant or user", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the tenant would be left without an administrator, or has the most members allowed", body = Problem, content_type = PROBLEM)))]
pub async fn set_tenant_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, user)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<SetTenantMember>,
) -> Result<Json<TenantMemberList>, ApiError> {
    let members =
        tenants::set_member(&state.registry, &caller, &tenant, &user, Some(request.role)).await?;
    Ok(Json(TenantMemberList { members }))
}

/// Remove a member (the tenant's administrators).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{user}", tag = "tenants", operation_id = "remove_tenant_member",
    params(("tenant" = String, Path, description = "The tenant's name"), ("user" = String, Path, description = "The user's name")), security(("token" = [])),
    responses((status = 200, description = "The members now", body = TenantMemberList),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant or user", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the tenant would be left without an administrator", body = Problem, content_type = PROBLEM)))]
pub async fn remove_tenant_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, user)): ApiPath<(String, String)>,
) -> Result<Json<TenantMemberList>, ApiError> {
    let members = tenants::set_member(&state.registry, &caller, &tenant, &user, None).await?;
    Ok(Json(TenantMemberList { members }))
}

/// Register an instance (the tenant's administrators). Its credential (`agi_...`) is in this answer only.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/instances", tag = "tenants", operation_id = "register_instance",
    params(("tenant" = String, Path, description = "The tenant's name")),
    request_body = RegisterInstance, security(("token" = [])),
    responses((status = 201, description = "Registered; the credential is in this answer only", body = RegisteredInstance),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the name is taken in the tenant, or it has the most instances allowed (1000)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a field named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn register_instance(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(request): ApiJson<RegisterInstance>,
) -> Result<(StatusCode, Json<RegisteredInstance>), ApiError> {
    let registered =
        tenants::register_instance(&state.registry, &caller, &tenant, &request.name).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

/// The tenant's instances, with what each last reported.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/instances", tag = "tenants", operation_id = "list_instances",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "By name, revoked ones too", body = InstanceList),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn list_instances(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<InstanceList>, ApiError> {
    Ok(Json(InstanceList {
        instances: tenants::instances(&state.registry, &caller, &tenant).await?,
    }))
}

/// Revoke an instance's credential (the tenant's administrators).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/instances/{instance}", tag = "tenants", operation_id = "revoke_instance",
    params(("tenant" = String, Path, description = "The tenant's name"), ("instance" = String, Path, description = "The instance's name")), security(("token" = [])),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant or active instance", body = Problem, content_type = PROBLEM)))]
pub async fn revoke_instance(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, instance)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    tenants::revoke_instance(&state.registry, &caller, &tenant, &instance).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's approved set: each plugin pinned to a version and its manifest digest, with what the approval grants.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/plugins", tag = "tenants", operation_id = "list_approvals",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "By plugin", body = ApprovalList),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn list_approvals(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<ApprovalList>, ApiError> {
    Ok(Json(ApprovalList {
        plugins: tenants::approvals(&state.registry, &caller, &tenant).await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// The version to preview (default: the plugin's latest).
    pub version: Option<String>,
}

/// What approving a plugin would grant (hosts, secrets, capabilities), whether the tenant's policy admits it and which instances can run it (the tenant's administrators).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/plugins/{publisher}/{name}/preview", tag = "tenants", operation_id = "preview_approval",
    params(("tenant" = String, Path, description = "The tenant's name"), ("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name"), PreviewQuery), security(("token" = [])),
    responses((status = 200, description = "The preview", body = InstallPreview),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant, plugin or version (private plugins cannot be approved)", body = Problem, content_type = PROBLEM)))]
pub async fn preview_approval(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, publisher, name)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<PreviewQuery>,
) -> Result<Json<InstallPreview>, ApiError> {
    Ok(Json(
        tenants::preview(
            &state.registry,
            &caller,
            &tenant,
            &publisher,
            &name,
            query.version.as_deref(),
        )
        .await?,
    ))
}

/// Approve a plugin at a version for the tenant, or move its pin there (the tenant's administrators). A transparency log entry records it.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/plugins/{publisher}/{name}", tag = "tenants", operation_id = "approve_plugin",
    params(("tenant" = String, Path, description = "The tenant's name"), ("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name")),
    request_body = ApproveRequest, security(("token" = [])),
    responses((status = 200, description = "The approval", body = Approval),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant, plugin or version (private plugins cannot be approved)", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the release is yanked, insecure or removed, the tenant's policy refuses it, or a limit is reached", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a field named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn approve_plugin(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, publisher, name)): ApiPath<(String, String, String)>,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(
        tenants::approve(&state.registry, &caller, &tenant, &publisher, &name, &request).await?,
    ))
}

/// Take a plugin out of the tenant's approved set (the tenant's administrators); instances remove it.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/plugins/{publisher}/{name}", tag = "tenants", operation_id = "remove_approval",
    params(("tenant" = String, Path, description = "The tenant's name"), ("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name")), security(("token" = [])),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant, plugin or version (private plugins cannot be approved)", body = Problem, content_type = PROBLEM)))]
pub async fn remove_approval(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, publisher, name)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    tenants::remove(&state.registry, &caller, &tenant, &publisher, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a plugin's pin back to the version it had before its last move (the tenant's administrators).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/plugins/{publisher}/{name}/rollback", tag = "tenants", operation_id = "rollback_approval",
    params(("tenant" = String, Path, description = "The tenant's name"), ("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name")), security(("token" = [])),
    responses((status = 200, description = "The approval now", body = Approval),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant, plugin or version (private plugins cannot be approved)", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: there is no earlier version, or it was removed", body = Problem, content_type = PROBLEM)))]
pub async fn rollback_approval(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, publisher, name)): ApiPath<(String, String, String)>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(
        tenants::rollback(&state.registry, &caller, &tenant, &publisher, &name).await?,
    ))
}

/// Per approved plugin, its newer versions: changelog, verification outcome, lifecycle, what each asks beyond the approval and whether the policy admits it.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/updates", tag = "tenants", operation_id = "list_updates",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "The updates", body = UpdateList),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn list_updates(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<UpdateList>, ApiError> {
    Ok(Json(tenants::updates(&state.registry, &caller, &tenant).await?))
}

/// Move one plugin's pin (or every plugin's) to its newest applicable version (the tenant's administrators).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/updates/apply", tag = "tenants", operation_id = "apply_updates",
    params(("tenant" = String, Path, description = "The tenant's name")),
    request_body = ApplyUpdates, security(("token" = [])),
    responses((status = 200, description = "What moved, and what stayed and why", body = AppliedUpdates),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant, or the plugin is not approved", body = Problem, content_type = PROBLEM)))]
pub async fn apply_updates(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(request): ApiJson<ApplyUpdates>,
) -> Result<Json<AppliedUpdates>, ApiError> {
    Ok(Json(
        tenants::apply(&state.registry, &caller, &tenant, &request).await?,
    ))
}

/// The fleet: which instance runs which digest, which are behind, which failed to converge and why; per plugin, the instances that run it.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/fleet", tag = "tenants", operation_id = "fleet",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "The fleet", body = FleetView),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn fleet(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<FleetView>, ApiError> {
    Ok(Json(tenants::fleet(&state.registry, &caller, &tenant).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DesiredQuery {
    /// The generation the instance already has: the answer waits for a newer one.
    pub after: Option<i64>,
    /// Seconds to wait for a change when `after` is current (at most 60; default 0).
    pub wait: Option<u32>,
}

/// An instance's desired set (its own `agi_` credential): the tenant's policy and approved set. With `after` equal to the current generation, the answer waits up to `wait` seconds for a change.
#[utoipa::path(get, path = "/api/v1/instance/desired", tag = "tenants", operation_id = "instance_desired",
    params(DesiredQuery),
    responses((status = 200, description = "The desired set", body = DesiredSet),
        (status = 401, description = "`unauthorized`: no instance credential, or an unknown or revoked one", body = Problem, content_type = PROBLEM)))]
pub async fn instance_desired(
    State(state): State<AppState>,
    InstanceAuth(instance): InstanceAuth,
    ApiQuery(query): ApiQuery<DesiredQuery>,
) -> Result<Json<DesiredSet>, ApiError> {
    let wait = Duration::from_secs(u64::from(query.wait.unwrap_or(0)));
    Ok(Json(
        tenants::desired(&state.registry, &instance, query.after, wait).await?,
    ))
}

/// An instance's report (its own `agi_` credential): what it runs, what it could not and why, its run figures.
#[utoipa::path(post, path = "/api/v1/instance/report", tag = "tenants", operation_id = "instance_report",
    request_body = InstanceReport,
    responses((status = 204, description = "Recorded"),
        (status = 401, description = "`unauthorized`: no instance credential, or an unknown or revoked one", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`too-large`: the report is over 256 KiB", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a field named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn instance_report(
    State(state): State<AppState>,
    InstanceAuth(instance): InstanceAuth,
    ApiJson(report): ApiJson<InstanceReport>,
) -> Result<StatusCode, ApiError> {
    tenants::report(&state.registry, &instance, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}
