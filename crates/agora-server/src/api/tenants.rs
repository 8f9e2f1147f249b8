//! The control plane's API: adapters over `agora_registry::tenants`. Members act with a
//! token holding `tenant:T` or `tenant:*` (and their role in the tenant); instances with
//! their own `agi_` credential (`/api/v1/instance/...`).

use std::time::Duration;

use agora_core::api::Problem;
use agora_core::tenant::{
    AppliedUpdates, ApplyUpdates, Approval, ApprovalList, ApproveRequest, CreateTenant, DesiredSet,
    FleetView, InstallPreview, InstanceList, InstanceReport, RegisterInstance, RegisteredInstance,
    SetTenantMember, Tenant, TenantList, TenantMemberList, TenantPolicy, UpdateList,
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
    Ok(Json(
        tenants::policy(&state.registry, &caller, &tenant).await?,
    ))
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
        (status = 404, description = "`not-found`: no such tenant, plugin or version (a private plugin exists for a tenant only once offered to it)", body = Problem, content_type = PROBLEM)))]
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
        (status = 404, description = "`not-found`: no such tenant, plugin or version (a private plugin exists for a tenant only once offered to it)", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the release is yanked, insecure or removed, the tenant's policy refuses it, or a limit is reached", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a field named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn approve_plugin(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((tenant, publisher, name)): ApiPath<(String, String, String)>,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(
        tenants::approve(
            &state.registry,
            &caller,
            &tenant,
            &publisher,
            &name,
            &request,
        )
        .await?,
    ))
}

/// Take a plugin out of the tenant's approved set (the tenant's administrators); instances remove it.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/plugins/{publisher}/{name}", tag = "tenants", operation_id = "remove_approval",
    params(("tenant" = String, Path, description = "The tenant's name"), ("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name")), security(("token" = [])),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`: not an administrator of the tenant, or the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant, plugin or version (a private plugin exists for a tenant only once offered to it)", body = Problem, content_type = PROBLEM)))]
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
        (status = 404, description = "`not-found`: no such tenant, plugin or version (a private plugin exists for a tenant only once offered to it)", body = Problem, content_type = PROBLEM),
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
    Ok(Json(
        tenants::updates(&state.registry, &caller, &tenant).await?,
    ))
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
    Ok(Json(
        tenants::fleet(&state.registry, &caller, &tenant).await?,
    ))
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

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::{Value, json};

    use crate::api::testing::TestApp;

    /// A registry with acme/tool 1.0.0 and 1.1.0, tenant `corp` administered by carol
    /// (`tenant:corp`), with dave as a member; returns (app, root, carol, dave, alice).
    async fn corp() -> (TestApp, String, String, String, String) {
        let app = TestApp::new().await;
        let root = app.user("root", Role::Admin, "admin").await;
        let alice = app.user("alice", Role::Publisher, "publish:*").await;
        let key = app.publisher(&alice, "acme").await;
        for v in ["1.0.0", "1.1.0"] {
            let p = app.publish(&alice, &key, "acme", "tool", v).await;
            assert_eq!(p.status, StatusCode::CREATED, "{p:?}");
        }
        let carol = app.user("carol", Role::User, "tenant:corp").await;
        let dave = app.user("dave", Role::User, "tenant:*").await;
        let created = app
            .call(
                Method::POST,
                "/api/v1/tenants",
                Some(&root),
                Some(json!({"name": "corp", "admin": "carol"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        let added = app
            .call(
                Method::PUT,
                "/api/v1/tenants/corp/members/dave",
                Some(&carol),
                Some(json!({"role": "member"})),
            )
            .await;
        assert_eq!(added.status, StatusCode::OK, "{added:?}");
        (app, root, carol, dave, alice)
    }

    async fn approve(
        app: &TestApp,
        token: &str,
        version: &str,
        digest: Option<&str>,
    ) -> crate::api::testing::Answer {
        let mut body = json!({"version": version});
        if let Some(d) = digest {
            body["manifest_digest"] = json!(d);
        }
        app.call(
            Method::PUT,
            "/api/v1/tenants/corp/plugins/acme/tool",
            Some(token),
            Some(body),
        )
        .await
    }

    async fn log_size(app: &TestApp) -> usize {
        let entries = app.get("/api/v1/log/entries?from=0", None).await;
        entries
            .body
            .as_array()
            .map(Vec::len)
            .unwrap_or_else(|| panic!("{entries:?}"))
    }

    #[tokio::test]
    async fn a_tenant_admin_approves_updates_and_rolls_back_each_change_a_sealed_log_entry() {
        let (app, _root, carol, dave, _) = corp().await;
        let preview = app
            .get(
                "/api/v1/tenants/corp/plugins/acme/tool/preview?version=1.0.0",
                Some(&carol),
            )
            .await;
        assert_eq!(preview.status, StatusCode::OK, "{preview:?}");
        assert_eq!(preview.body["refusal"], Value::Null);
        let digest = preview.body["manifest_digest"].as_str().unwrap().to_owned();

        // The digest the administrator saw must be the release's.
        let wrong = approve(
            &app,
            &carol,
            "1.0.0",
            Some(&format!("sha256:{}", "0".repeat(64))),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:?}");
        assert_eq!(wrong.body["errors"][0]["field"], "manifest_digest");

        let before = log_size(&app).await;
        let approved = approve(&app, &carol, "1.0.0", Some(&digest)).await;
        assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
        assert_eq!(approved.body["approved_by"], "carol");
        assert_eq!(log_size(&app).await, before + 1);
        // The entry names the tenant, so it is sealed for everyone else.
        let index = approved.body["log_index"].as_i64().unwrap();
        let entries = app
            .get(&format!("/api/v1/log/entries?from={index}"), None)
            .await;
        let entry = &entries.body[0];
        assert!(
            entry["body"].as_str().unwrap().contains("\"sealed\""),
            "{entry}"
        );
        assert!(!entry.to_string().contains("corp"), "{entry}");

        // A member reads the updates; the newer version asks for nothing more.
        let updates = app.get("/api/v1/tenants/corp/updates", Some(&dave)).await;
        assert_eq!(updates.status, StatusCode::OK, "{updates:?}");
        let newer = &updates.body["plugins"][0]["newer"][0];
        assert_eq!(newer["version"], "1.1.0");
        assert_eq!(newer["asks_more"]["hosts"], json!([]));
        // ... but may not apply it.
        let applied = app
            .call(
                Method::POST,
                "/api/v1/tenants/corp/updates/apply",
                Some(&dave),
                Some(json!({})),
            )
            .await;
        assert_eq!(applied.status, StatusCode::FORBIDDEN, "{applied:?}");
        let applied = app
            .call(
                Method::POST,
                "/api/v1/tenants/corp/updates/apply",
                Some(&carol),
                Some(json!({})),
            )
            .await;
        assert_eq!(applied.status, StatusCode::OK, "{applied:?}");
        assert_eq!(applied.body["applied"][0]["version"], "1.1.0");
        assert_eq!(applied.body["applied"][0]["previous_version"], "1.0.0");

        let back = app
            .call(
                Method::POST,
                "/api/v1/tenants/corp/plugins/acme/tool/rollback",
                Some(&carol),
                None,
            )
            .await;
        assert_eq!(back.status, StatusCode::OK, "{back:?}");
        assert_eq!(back.body["version"], "1.0.0");
        // A rollback is not undone by another: there is nothing before it now.
        let again = app
            .call(
                Method::POST,
                "/api/v1/tenants/corp/plugins/acme/tool/rollback",
                Some(&carol),
                None,
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
        assert_eq!(log_size(&app).await, before + 3);

        let removed = app
            .call(
                Method::DELETE,
                "/api/v1/tenants/corp/plugins/acme/tool",
                Some(&carol),
                None,
            )
            .await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
        let list = app.get("/api/v1/tenants/corp/plugins", Some(&dave)).await;
        assert_eq!(list.body["plugins"], json!([]));
    }

    #[tokio::test]
    async fn tenants_answer_only_their_members_with_the_right_scope() {
        let (app, _root, _carol, _dave, _) = corp().await;
        // A user outside the tenant is told it does not exist, whatever their scopes.
        let eve = app.user("eve", Role::User, "tenant:*").await;
        let answer = app.get("/api/v1/tenants/corp", Some(&eve)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
        let answer = app.get("/api/v1/tenants", Some(&eve)).await;
        assert_eq!(answer.body["tenants"], json!([]));
        // The tenant's administrator with a token lacking the tenant scope is refused,
        // naming the scope.
        let narrow = app.meta().user_by_name("carol").await.unwrap().unwrap();
        let token = app.token(narrow.id, "review").await;
        let answer = app.get("/api/v1/tenants/corp/plugins", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .contains("tenant:corp")
        );
        // Only administrators create tenants.
        let answer = app
            .call(
                Method::POST,
                "/api/v1/tenants",
                Some(&eve),
                Some(json!({"name": "mine"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    }

    #[tokio::test]
    async fn the_policy_and_the_lifecycle_decide_what_can_be_approved() {
        let (app, _root, carol, _dave, alice) = corp().await;
        // A secret grant with a source is a host's business, not a tenant's.
        let bad = app
            .call(
                Method::PUT,
                "/api/v1/tenants/corp/policy",
                Some(&carol),
                Some(json!({"policy": {"secrets": [{"plugin": "acme/tool", "name": "TOKEN", "from_env": "X"}]}})),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(bad.body["errors"][0]["field"], "policy");
        let set = app
            .call(
                Method::PUT,
                "/api/v1/tenants/corp/policy",
                Some(&carol),
                Some(json!({"policy": {"mode": "open", "deny": ["acme/*"]}})),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "{set:?}");
        let refused = approve(&app, &carol, "1.0.0", None).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
        assert!(
            refused.body["detail"].as_str().unwrap().contains("deny"),
            "{refused:?}"
        );
        let preview = app
            .get(
                "/api/v1/tenants/corp/plugins/acme/tool/preview",
                Some(&carol),
            )
            .await;
        assert_eq!(preview.body["refusal"]["field"], "deny");

        // A yanked version is never newly pinned.
        app.call(
            Method::PUT,
            "/api/v1/tenants/corp/policy",
            Some(&carol),
            Some(json!({"policy": {"mode": "open"}})),
        )
        .await;
        let yank = app
            .call(
                Method::PATCH,
                "/api/v1/plugins/acme/tool/versions/1.1.0",
                Some(&alice),
                Some(json!({"state": "yanked", "reason": "broken"})),
            )
            .await;
        assert_eq!(yank.status, StatusCode::OK, "{yank:?}");
        let refused = approve(&app, &carol, "1.1.0", None).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
        assert!(refused.body["detail"].as_str().unwrap().contains("yanked"));
        assert_eq!(
            approve(&app, &carol, "1.0.0", None).await.status,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn an_instance_long_polls_its_set_and_reports_into_the_fleet_view() {
        let (app, _root, carol, dave, _) = corp().await;
        let registered = app
            .call(
                Method::POST,
                "/api/v1/tenants/corp/instances",
                Some(&carol),
                Some(json!({"name": "edge-1"})),
            )
            .await;
        assert_eq!(registered.status, StatusCode::CREATED, "{registered:?}");
        let token = registered.body["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("agi_"));
        let set = app.get("/api/v1/instance/desired", Some(&token)).await;
        assert_eq!(set.status, StatusCode::OK, "{set:?}");
        let generation = set.body["generation"].as_i64().unwrap();
        assert_eq!(set.body["plugins"], json!([]));

        // A poll waiting on the current generation answers as soon as an approval lands.
        let poll = format!("/api/v1/instance/desired?after={generation}&wait=30");
        let waiting = app.get(&poll, Some(&token));
        let approving = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            approve(&app, &carol, "1.0.0", None).await
        };
        let started = std::time::Instant::now();
        let (set, approved) = tokio::join!(waiting, approving);
        assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(
            set.body["generation"].as_i64().unwrap() > generation,
            "{set:?}"
        );
        let plugin = &set.body["plugins"][0];
        assert_eq!(plugin["version"], "1.0.0");
        assert!(plugin["log_opening"].as_str().is_some(), "{set:?}");

        let report = json!({
            "core_version": "2.3.0", "runner_version": "0.1.0", "platform": "linux-x86_64",
            "generation": set.body["generation"],
            "plugins": [{"plugin": "acme/tool", "version": "1.0.0",
                         "manifest_digest": plugin["manifest_digest"]}],
        });
        let posted = app
            .call(
                Method::POST,
                "/api/v1/instance/report",
                Some(&token),
                Some(report),
            )
            .await;
        assert_eq!(posted.status, StatusCode::NO_CONTENT, "{posted:?}");
        let fleet = app.get("/api/v1/tenants/corp/fleet", Some(&dave)).await;
        assert_eq!(fleet.status, StatusCode::OK, "{fleet:?}");
        assert_eq!(fleet.body["plugins"][0]["current"], json!(["edge-1"]));
        assert_eq!(fleet.body["instances"][0]["state"], "converged");
        assert_eq!(fleet.body["instances"][0]["behind"], false);

        // Reports are bounded.
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"plugin": "acme/tool", "version": "1.0.0", "reason": format!("{i}")}))
            .collect();
        let big = json!({"core_version": "1", "runner_version": "1", "platform": "x",
                         "generation": 1, "plugins": [], "failures": many});
        let refused = app
            .call(
                Method::POST,
                "/api/v1/instance/report",
                Some(&token),
                Some(big),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        assert_eq!(refused.body["errors"][0]["field"], "failures");
    }
}
