//! Publishers (namespaces) and their members.

use agora_core::api::{AddMember, CreatePublisher, Member, Publisher};
use agora_core::name::{SLUG_RULE, Slug};
use agora_store::{PublisherRecord, Role};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::time::rfc3339;

pub async fn publisher_or_404(state: &AppState, name: &str) -> Result<PublisherRecord, ApiError> {
    state.meta.publisher_by_name(name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "publisher {name} not found; create it with `agora publisher create {name}`"
        ))
    })
}

async fn publisher_view(state: &AppState, p: PublisherRecord) -> Result<Publisher, ApiError> {
    let members = state.meta.members(p.id).await?;
    Ok(Publisher {
        name: p.name,
        display_name: p.display_name,
        members: members
            .into_iter()
            .map(|m| Member {
                username: m.username,
                role: m.role,
            })
            .collect(),
        created_at: rfc3339(p.created_at),
    })
}

pub fn valid_name(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse("publisher name", raw).map_err(|_| {
        ApiError::field(
            "name",
            format!(
                "{:?} is not a valid publisher name",
                crate::extract::truncate(raw)
            ),
            Some(SLUG_RULE),
        )
    })
}

/// Every publisher.
#[utoipa::path(get, path = "/api/v1/publishers", tag = "publishers", responses((status = 200, body = Vec<Publisher>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Publisher>>, ApiError> {
    let mut out = Vec::new();
    for p in state.meta.list_publishers().await? {
        out.push(publisher_view(&state, p).await?);
    }
    Ok(Json(out))
}

/// Create a publisher; the caller becomes its owner. Needs the publisher or admin role.
#[utoipa::path(post, path = "/api/v1/publishers", tag = "publishers", request_body = CreatePublisher,
    security(("token" = [])),
    responses((status = 201, body = Publisher), (status = 403, body = agora_core::api::Problem), (status = 409, body = agora_core::api::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePublisher>,
) -> Result<(StatusCode, Json<Publisher>), ApiError> {
    if caller.user.role == Role::User {
        return Err(ApiError::forbidden(format!(
            "user {} has the role user; creating publishers needs the publisher role (an administrator can grant it)",
            caller.user.username
        )));
    }
    let name = valid_name(&request.name)?;
    if let Some(d) = &request.display_name
        && (d.is_empty() || d.chars().count() > 100)
    {
        return Err(ApiError::field(
            "display_name",
            "must be 1 to 100 characters",
            Some("1 to 100 characters"),
        ));
    }
    let p = state
        .meta
        .create_publisher(name.as_str(), request.display_name.as_deref(), &caller.user)
        .await?;
    Ok((StatusCode::CREATED, Json(publisher_view(&state, p).await?)))
}

/// One publisher and its members.
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}", tag = "publishers",
    params(("publisher" = String, Path)),
    responses((status = 200, body = Publisher), (status = 404, body = agora_core::api::Problem)))]
pub async fn detail(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Publisher>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    Ok(Json(publisher_view(&state, p).await?))
}

/// The members of a publisher.
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/members", tag = "publishers",
    params(("publisher" = String, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = agora_core::api::Problem)))]
pub async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// Add a member (or change a member's role). Owners of the publisher and admins only.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/members", tag = "publishers",
    params(("publisher" = String, Path)), request_body = AddMember, security(("token" = [])),
    responses((status = 200, body = Vec<Member>), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AddMember>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    let is_owner = state
        .meta
        .members(p.id)
        .await?
        .iter()
        .any(|m| m.username == caller.user.username && m.role == "owner");
    if !is_owner && !caller.is_admin() {
        return Err(ApiError::forbidden(format!(
            "only owners of {} or administrators can add members",
            p.name
        )));
    }
    let role = request.role.as_deref().unwrap_or("member");
    if !["owner", "member"].contains(&role) {
        return Err(ApiError::field(
            "role",
            format!("unknown role {role:?}"),
            Some("owner or member"),
        ));
    }
    let user = state
        .meta
        .user_by_name(&request.username)
        .await?
        .ok_or_else(|| {
            ApiError::field(
                "username",
                format!(
                    "no user named {:?}",
                    crate::extract::truncate(&request.username)
                ),
                Some("an existing user name"),
            )
        })?;
    state
        .meta
        .add_member(p.id, &user, role, &caller.user.username)
        .await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}
