//! Authentication at the API's door: the bearer token of a request becomes the registry's
//! [`Caller`] (who, with which scopes and memberships); the rules of what a caller may do
//! are the registry's (`agora_registry::caller`).

use agora_registry::Caller;
use agora_store::Viewer;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// A request that must carry a valid token.
pub struct Authenticated(pub Caller);

/// A request that may or may not carry a token. A token that is present but invalid is
/// refused rather than treated as anonymous, so a typo never silently hides private data.
pub struct MaybeCaller(pub Option<Caller>);

impl MaybeCaller {
    pub fn viewer(&self) -> Viewer {
        agora_registry::caller::viewer_of(self.0.as_ref())
    }
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(MaybeCaller(None));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        Ok(MaybeCaller(Some(state.registry.authenticate(token).await?)))
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        MaybeCaller::from_request_parts(parts, state)
            .await?
            .0
            .map(Authenticated)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "this needs a token: send `Authorization: Bearer <token>` (see `agora login`)",
                )
            })
    }
}

/// A request from a tenant's instance, carrying its own credential (`agi_...`).
pub struct InstanceAuth(pub agora_registry::tenants::InstanceCaller);

impl FromRequestParts<AppState> for InstanceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(agora_core::tenant::INSTANCE_TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "this needs an instance credential: send `Authorization: Bearer agi_...` (from `agora tenant instance register`)",
                )
            })?;
        Ok(InstanceAuth(
            agora_registry::tenants::authenticate_instance(&state.registry, token).await?,
        ))
    }
}
