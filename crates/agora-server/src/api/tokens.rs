//! API tokens and the caller's identity: adapters over `agora_registry::tokens`.

use agora_core::Scope;
use agora_core::api::{CreateToken, CreatedToken, Me, Problem, TokenInfo};
use agora_registry::time::rfc3339;
use agora_registry::{Credential, tokens};
use agora_store::TokenRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::state::AppState;

pub fn token_info(t: TokenRecord) -> TokenInfo {
    TokenInfo {
        id: t.id,
        name: t.name,
        scopes: t.scopes,
        username: t.username,
        prefix: t.prefix,
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        parent_id: t.parent_id,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Administrators: list every user's tokens.
    all: Option<bool>,
}

/// The caller's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens", params(ListParams), security(("token" = [])),
    responses((status = 200, description = "The tokens, revoked ones too", body = Vec<TokenInfo>),
        (status = 403, description = "`forbidden`: `all=true` from someone other than an administrator", body = Problem, content_type = PROBLEM)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let list = tokens::list(&state.registry, &caller, params.all == Some(true)).await?;
    Ok(Json(list.into_iter().map(token_info).collect()))
}

/// Create a token. Its scopes cannot exceed the calling token's, it cannot outlive it,
/// and revoking the calling token revokes it. The secret is returned once and stored only
/// as a hash.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token", request_body = CreateToken, security(("token" = [])),
    responses((status = 201, description = "Created; the secret is in this answer only", body = CreatedToken),
        (status = 403, description = "`forbidden`: a scope beyond the calling token's, or `for_user` from someone other than an administrator", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the user has too many live tokens", body = Problem, content_type = PROBLEM)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (record, secret) = tokens::create(&state.registry, &caller, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret,
            info: token_info(record),
        }),
    ))
}

/// Revoke a token (and every token it minted): one of the caller's own whose scopes the
/// calling token holds too (a narrow token cannot revoke a wider one), or any token for an
/// administrator.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("id" = i64, Path, description = "The token's `id`")), security(("token" = [])),
    responses((status = 204, description = "Revoked, with every token it minted"),
        (status = 403, description = "`forbidden`: the token has a scope the calling token does not hold", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such token of the caller's (any user's, for an administrator)", body = Problem, content_type = PROBLEM)))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    tokens::revoke(&state.registry, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to and what it may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "tokens", operation_id = "get_me", security(("token" = [])),
    responses((status = 200, description = "The caller", body = Me)))]
pub async fn me(Authenticated(caller): Authenticated) -> Json<Me> {
    let token_name = match &caller.credential {
        Credential::Token(t) => t.name.clone(),
        Credential::Session => "web session".into(),
    };
    Json(Me {
        username: caller.user.username.clone(),
        token_name,
        role: caller.user.role.as_str().to_owned(),
        scopes: Scope::join(&caller.scopes),
        publishers: caller.memberships.iter().map(|(_, n)| n.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn a_token_is_shown_once_listed_without_its_secret_and_revoked() {
        let app = TestApp::new().await;
        let alice = app.user("alice", Role::Publisher, "publish:* review").await;
        let created = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(&alice),
                Some(json!({ "name": "ci", "scopes": "publish:*", "expires_in_seconds": 3600 })),
            )
            .await;
        insta::assert_json_snapshot!("create", created.snapshot());
        let secret = created.body["token"].as_str().unwrap().to_owned();

        let me = app.get("/api/v1/me", Some(&secret)).await;
        insta::assert_json_snapshot!("me", me.snapshot());

        let list = app.get("/api/v1/tokens", Some(&alice)).await;
        assert!(!list.body.to_string().contains(&secret), "{list:?}");
        assert_eq!(list.body.as_array().unwrap().len(), 2);

        let id = created.body["info"]["id"].as_i64().unwrap();
        let revoked = app
            .call(
                Method::DELETE,
                &format!("/api/v1/tokens/{id}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT);
        let after = app.get("/api/v1/me", Some(&secret)).await;
        insta::assert_json_snapshot!("revoked_token", after.snapshot());
    }

    #[tokio::test]
    async fn a_token_cannot_grant_more_than_it_holds_or_name_a_bad_id() {
        let app = TestApp::new().await;
        let narrow = app.user("alice", Role::Admin, "review").await;
        let wider = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(&narrow),
                Some(json!({ "name": "more", "scopes": "admin" })),
            )
            .await;
        insta::assert_json_snapshot!("create_wider", wider.snapshot());
        let unknown_scope = app
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(&narrow),
                Some(json!({ "name": "odd", "scopes": "root" })),
            )
            .await;
        insta::assert_json_snapshot!("create_unknown_scope", unknown_scope.snapshot());
        let bad_id = app
            .call(Method::DELETE, "/api/v1/tokens/abc", Some(&narrow), None)
            .await;
        insta::assert_json_snapshot!("revoke_bad_id", bad_id.snapshot());
        let anonymous = app.get("/api/v1/tokens", None).await;
        insta::assert_json_snapshot!("list_anonymous", anonymous.snapshot());
    }
}
