//! Authentication at the API's door: the bearer token of a request becomes the registry's
//! [`Caller`] (who, with which scopes and memberships); the rules of what a caller may do
//! are the registry's (`agora_registry::caller`).

use agora_registry::Caller;
use agora_registry::tenants::InstanceCaller;
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
/// An instance's credential (`agi_...`) is accepted too, for reading: it sees what its
/// tenant may (public plugins and the private ones offered to the tenant), and is no user.
pub struct MaybeCaller {
    pub caller: Option<Caller>,
    pub instance: Option<InstanceCaller>,
}

impl MaybeCaller {
    pub fn anonymous() -> MaybeCaller {
        MaybeCaller {
            caller: None,
            instance: None,
        }
    }

    pub fn user(caller: Caller) -> MaybeCaller {
        MaybeCaller {
            caller: Some(caller),
            instance: None,
        }
    }

    pub fn viewer(&self) -> Viewer {
        match (&self.caller, &self.instance) {
            (Some(caller), _) => caller.viewer(),
            (None, Some(instance)) => instance.viewer(),
            (None, None) => Viewer::anonymous(),
        }
    }

    /// Neither a user nor an instance.
    pub fn is_anonymous(&self) -> bool {
        self.caller.is_none() && self.instance.is_none()
    }
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(MaybeCaller::anonymous());
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        if token.starts_with(agora_core::tenant::INSTANCE_TOKEN_PREFIX) {
            let instance =
                agora_registry::tenants::authenticate_instance(&state.registry, token).await?;
            return Ok(MaybeCaller {
                caller: None,
                instance: Some(instance),
            });
        }
        Ok(MaybeCaller::user(state.registry.authenticate(token).await?))
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let maybe = MaybeCaller::from_request_parts(parts, state).await?;
        if maybe.instance.is_some() {
            return Err(ApiError::forbidden(
                "an instance credential (agi_...) only reads releases and its desired set; this needs a user's token (see `agora login`)",
            ));
        }
        maybe.caller.map(Authenticated).ok_or_else(|| {
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
