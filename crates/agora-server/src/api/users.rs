//! User accounts (administrators only).

use agora_core::api::{CreateUser, SetPassword, User};
use agora_core::name::{SLUG_RULE, is_slug};
use agora_store::{Role, UserRecord};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::time::rfc3339;

fn user_view(u: UserRecord) -> User {
    User {
        username: u.username,
        role: u.role.as_str().to_owned(),
        created_at: rfc3339(u.created_at),
    }
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("token" = [])),
    responses((status = 200, body = Vec<User>), (status = 403, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(
        state
            .meta
            .list_users()
            .await?
            .into_iter()
            .map(user_view)
            .collect(),
    ))
}

/// Create a user; give them a token with `POST /api/v1/tokens` and `for_user`.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("token" = [])),
    responses((status = 201, body = User), (status = 403, body = agora_core::api::Problem), (status = 409, body = agora_core::api::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require_admin()?;
    if !is_slug(&request.username) {
        return Err(ApiError::field(
            "username",
            format!(
                "{:?} is not a valid user name",
                crate::extract::truncate(&request.username)
            ),
            Some(SLUG_RULE),
        ));
    }
    let role = match request.role.as_deref() {
        None => Role::User,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::field(
                "role",
                format!("unknown role {:?}", crate::extract::truncate(r)),
                Some("admin, publisher or user"),
            )
        })?,
    };
    let user = state.meta.create_user(&request.username, role).await?;
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
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    if caller.user.username != name {
        caller.require_admin()?;
    } else {
        // A password opens a web session with every right of the account; a token that
        // holds less (a CI token with one publish scope) must not be able to mint one.
        let session = Caller::for_session(caller.user.clone(), caller.memberships.clone());
        if let Some(missing) = session.scopes.iter().find(|s| !caller.may_grant(s)) {
            return Err(ApiError::forbidden(format!(
                "setting your password needs a token that holds every right a signed-in session gets ({}); this token lacks {missing}",
                agora_core::Scope::join(&session.scopes)
            )));
        }
    }
    let user = state.meta.user_by_name(&name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "user {} not found",
            crate::extract::truncate(&name)
        ))
    })?;
    crate::password::check_new(&request.password)?;
    let hash = crate::password::hash(request.password).await?;
    state
        .meta
        .set_password(user.id, Some(&hash), &caller.user.username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
