//! User accounts: adapters over `agora_registry::accounts`.

use agora_core::api::{CreateUser, SetPassword, User};
use agora_registry::accounts;
use agora_registry::time::rfc3339;
use agora_store::UserRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

fn user_view(u: UserRecord) -> User {
    User {
        username: u.username,
        role: u.role.as_str().to_owned(),
        created_at: rfc3339(u.created_at),
    }
}

/// Every user (administrators).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("token" = [])),
    responses((status = 200, body = Vec<User>), (status = 403, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<User>>, ApiError> {
    let users = accounts::list_users(&state.registry, &caller).await?;
    Ok(Json(users.into_iter().map(user_view).collect()))
}

/// Create a user (administrators); give them a token with `POST /api/v1/tokens` and
/// `for_user`.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("token" = [])),
    responses((status = 201, body = User), (status = 403, body = agora_core::api::Problem), (status = 409, body = agora_core::api::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = accounts::create_user(&state.registry, &caller, request).await?;
    Ok((StatusCode::CREATED, Json(user_view(user))))
}

/// Set the password a user signs in to the web pages with: their own, or anyone's for an
/// administrator. Ends the user's browser sessions.
#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "users", request_body = SetPassword,
    params(("name" = String, Path)), security(("token" = [])),
    responses((status = 204), (status = 400, body = agora_core::api::Problem),
        (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn set_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    accounts::set_password(&state.registry, &caller, &name, request.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
