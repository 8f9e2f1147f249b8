//! API tokens and the caller's identity.

use agora_core::Scope;
use agora_core::api::{CreateToken, CreatedToken, Me, TokenInfo};
use agora_store::{NewToken, TokenRecord, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Caller, hash_token, new_token, token_display_prefix};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::time::rfc3339;

/// Longest token lifetime: ten years.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Most live (unrevoked, unexpired) tokens one user may hold.
pub const MAX_LIVE_TOKENS: usize = 200;

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
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let owner = if params.all == Some(true) {
        caller.require_admin()?;
        None
    } else {
        Some(caller.user.id)
    };
    let tokens = state.meta.list_tokens(owner).await?;
    Ok(Json(tokens.into_iter().map(token_info).collect()))
}

/// Create a token. Its scopes cannot exceed the calling token's, it cannot outlive it,
/// and revoking the calling token revokes it. The secret is returned once and stored only
/// as a hash.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken, security(("token" = [])),
    responses((status = 201, body = CreatedToken), (status = 403, body = agora_core::api::Problem), (status = 422, body = agora_core::api::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = create_token(&state, &caller, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Checks a token request against the caller's rights and creates the token: what the
/// API and the account page share.
pub async fn create_token(
    state: &AppState,
    caller: &Caller,
    request: CreateToken,
) -> Result<CreatedToken, ApiError> {
    if request.name.trim().is_empty() || request.name.chars().count() > 64 {
        return Err(ApiError::field(
            "name",
            "must be 1 to 64 characters",
            Some("a label such as ci or laptop"),
        ));
    }
    let scopes = Scope::parse_list(&request.scopes).map_err(|e| {
        ApiError::field(
            "scopes",
            e.to_string(),
            Some("admin, read:private, review, publish:*, publish:PUBLISHER, members:* or members:PUBLISHER, space-separated"),
        )
    })?;
    if scopes.is_empty() {
        return Err(ApiError::field(
            "scopes",
            "no scope given",
            Some(
                "admin, read:private, review, publish:*, publish:PUBLISHER, members:* or members:PUBLISHER",
            ),
        ));
    }
    if let Some(denied) = scopes.iter().find(|s| !caller.may_grant(s)) {
        return Err(ApiError::forbidden(format!(
            "this token cannot grant scope {denied}: a new token never gets more than the one creating it ({})",
            Scope::join(&caller.scopes)
        )));
    }
    let owner = match &request.for_user {
        Some(username) => {
            caller.require_admin()?;
            state.meta.user_by_name(username).await?.ok_or_else(|| {
                ApiError::field(
                    "for_user",
                    format!("no user named {:?}", crate::extract::truncate(username)),
                    Some("an existing user name"),
                )
            })?
        }
        None => caller.user.clone(),
    };
    // A token minted for oneself is a delegation: it never outlives the token that minted
    // it, and dies with it. A token an administrator makes for another user is a grant of
    // its own (the administrator's token rotating must not lock that user out). Sessions
    // (token id 0) mint independent tokens too.
    let parent = (request.for_user.is_none() && caller.token.id != 0).then_some(&caller.token);
    let requested = match request.expires_in_seconds {
        Some(0) => {
            return Err(ApiError::field(
                "expires_in_seconds",
                "must be positive",
                Some("1 to 315360000 seconds"),
            ));
        }
        Some(s) if s > MAX_LIFETIME_SECONDS => {
            return Err(ApiError::field(
                "expires_in_seconds",
                format!("{s} is too long"),
                Some("at most 315360000 seconds (ten years)"),
            ));
        }
        Some(s) => Some(now_ms() + (s as i64) * 1000),
        None => None,
    };
    let expires_at = match (requested, parent.and_then(|p| p.expires_at)) {
        (Some(wanted), Some(limit)) if wanted > limit => {
            return Err(ApiError::field(
                "expires_in_seconds",
                format!(
                    "the new token would outlive the one creating it, which expires at {}",
                    rfc3339(limit)
                ),
                Some(&format!(
                    "at most {} seconds",
                    ((limit - now_ms()) / 1000).max(0)
                )),
            ));
        }
        (None, Some(limit)) => Some(limit),
        (wanted, _) => wanted,
    };
    let now = now_ms();
    let live = state
        .meta
        .list_tokens(Some(owner.id))
        .await?
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|at| at > now))
        .count();
    if live >= MAX_LIVE_TOKENS {
        return Err(ApiError::conflict(format!(
            "user {} has {live} live tokens, the most allowed; revoke unused ones with `agora token revoke ID`",
            owner.username
        )));
    }
    let secret = new_token();
    let record = state
        .meta
        .create_token(NewToken {
            user_id: owner.id,
            name: request.name.trim().to_owned(),
            hash: hash_token(&secret),
            prefix: token_display_prefix(&secret),
            scopes: Scope::join(&scopes),
            expires_at,
            parent_id: parent.map(|p| p.id),
        })
        .await?;
    tracing::info!(token = record.id, user = %owner.username, by = %caller.user.username, "token created");
    Ok(CreatedToken {
        token: secret,
        info: token_info(record),
    })
}

/// Revoke a token (and every token it minted): one of the caller's own whose scopes the
/// calling token holds too (a narrow token cannot revoke a wider one), or any token for an
/// administrator.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)), security(("token" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, body = agora_core::api::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::field(
            "id",
            "not a token id",
            Some("the numeric id shown by `agora token list`"),
        )
    })?;
    revoke_token(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the caller's token `id` and what it minted (any token, for an administrator).
pub async fn revoke_token(state: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    let owner = if caller.is_admin() {
        None
    } else {
        Some(caller.user.id)
    };
    if owner.is_some() && id != caller.token.id {
        let target = state
            .meta
            .list_tokens(owner)
            .await?
            .into_iter()
            .find(|t| t.id == id && t.revoked_at.is_none());
        if let Some(target) = target {
            let scopes = Scope::parse_list(&target.scopes)
                .map_err(|e| ApiError::internal("a stored token has an unreadable scope", e))?;
            if let Some(wider) = scopes.iter().find(|s| !caller.may_grant(s)) {
                return Err(ApiError::forbidden(format!(
                    "token {id} holds {wider}, which this token does not; revoke it with a token that holds every scope it has"
                )));
            }
        }
    }
    if state.meta.revoke_token(id, owner, now_ms()).await? {
        tracing::info!(token = id, by = %caller.user.username, "token revoked");
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no active token {id} of yours"
        )))
    }
}

/// Who the token belongs to and what it may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "tokens", security(("token" = [])),
    responses((status = 200, body = Me), (status = 401, body = agora_core::api::Problem)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        username: caller.user.username.clone(),
        token_name: caller.token.name.clone(),
        role: caller.user.role.as_str().to_owned(),
        scopes: Scope::join(&caller.scopes),
        publishers: caller.memberships.iter().map(|(_, n)| n.clone()).collect(),
    })
}
