//! User accounts: adapters over `agora_registry::accounts`.

use agora_core::api::{CreateUser, Problem, SetPassword, User};
use agora_registry::accounts;
use agora_registry::time::rfc3339;
use agora_store::UserRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::openapi::PROBLEM;
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
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users", security(("token" = [])),
    responses((status = 200, description = "Every user", body = Vec<User>), (status = 403, description = "`forbidden`: not an administrator", body = Problem, content_type = PROBLEM)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<User>>, ApiError> {
    let users = accounts::list_users(&state.registry, &caller).await?;
    Ok(Json(users.into_iter().map(user_view).collect()))
}

/// Create a user (administrators); give them a token with `POST /api/v1/tokens` and
/// `for_user`.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user", request_body = CreateUser, security(("token" = [])),
    responses((status = 201, description = "Created", body = User), (status = 403, description = "`forbidden`: not an administrator", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the name is taken", body = Problem, content_type = PROBLEM)))]
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
#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "users", operation_id = "set_password", request_body = SetPassword,
    params(("name" = String, Path, description = "The user's name")), security(("token" = [])),
    responses((status = 204, description = "Set; the user's browser sessions are ended"),
        (status = 403, description = "`forbidden`: someone else's password, by someone other than an administrator; or one's own, with a token lacking a scope a web session gets", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such user", body = Problem, content_type = PROBLEM)))]
pub async fn set_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    accounts::set_password(&state.registry, &caller, &name, request.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn administrators_create_users_and_set_passwords() {
        let app = TestApp::new().await;
        let created = app
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&app.admin),
                Some(json!({ "username": "erin", "role": "publisher" })),
            )
            .await;
        insta::assert_json_snapshot!("create", created.snapshot());
        let twice = app
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&app.admin),
                Some(json!({ "username": "erin" })),
            )
            .await;
        assert_eq!(twice.status, StatusCode::CONFLICT, "{twice:?}");
        let bad_role = app
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&app.admin),
                Some(json!({ "username": "frank", "role": "root" })),
            )
            .await;
        insta::assert_json_snapshot!("create_bad_role", bad_role.snapshot());

        let short = app
            .call(
                Method::PUT,
                "/api/v1/users/erin/password",
                Some(&app.admin),
                Some(json!({ "password": "short" })),
            )
            .await;
        insta::assert_json_snapshot!("weak_password", short.snapshot());

        let user = app.user("gina", Role::User, "review").await;
        let refused = app.get("/api/v1/users", Some(&user)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        let list = app.get("/api/v1/users", Some(&app.admin)).await;
        insta::assert_json_snapshot!("list", list.snapshot());
    }
}
