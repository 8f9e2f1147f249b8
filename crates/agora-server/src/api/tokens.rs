//! API tokens and the caller's identity: adapters over `agora_registry::tokens`.

use agora_core::Scope;
use agora_core::api::{CreateToken, CreatedToken, Me, TokenInfo};
use agora_registry::time::rfc3339;
use agora_registry::{Credential, tokens};
use agora_store::TokenRecord;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

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
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Administrators: list every user's tokens.
    all: Option<bool>,
}

/// The caller's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(ListParams), security(("token" = [])),
    responses((status = 200, body = Vec<TokenInfo>), (status = 401, body = agora_core::api::Problem)))]
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
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken, security(("token" = [])),
    responses((status = 201, body = CreatedToken), (status = 403, body = agora_core::api::Problem), (status = 422, body = agora_core::api::Problem)))]
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
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)), security(("token" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, body = agora_core::api::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::field(
            "id",
            "not a token id",
            Some("the numeric id shown by `agora token list`"),
        )
    })?;
    tokens::revoke(&state.registry, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token belongs to and what it may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "tokens", security(("token" = [])),
    responses((status = 200, body = Me), (status = 401, body = agora_core::api::Problem)))]
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
