//! Publisher signing keys: adapters over `agora_registry::keys`.

use agora_core::api::{AddKey, PublisherKey, RevokeKey};
use agora_registry::keys;
use agora_registry::time::rfc3339;
use agora_store::KeyRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub fn key_view(k: KeyRecord) -> PublisherKey {
    PublisherKey {
        id: k.id,
        algorithm: k.algorithm,
        public_key: k.public_key,
        comment: k.comment,
        created_at: rfc3339(k.created_at),
        created_by: k.created_by,
        revoked_at: k.revoked_at.map(rfc3339),
        revoked_by: k.revoked_by,
        revocation_reason: k.revocation_reason,
        log_index: k.log_index.map(|i| i as u64),
        revoked_log_index: k.revoked_log_index.map(|i| i as u64),
    }
}

/// A publisher's keys, revoked ones included (with when and why).
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/keys", tag = "publishers",
    params(("publisher" = String, Path)),
    responses((status = 200, body = Vec<PublisherKey>), (status = 404, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<PublisherKey>>, ApiError> {
    let list = keys::list(&state.registry, &name).await?;
    Ok(Json(list.into_iter().map(key_view).collect()))
}

/// Register a signing key (an OpenSSH Ed25519 public key line or an armored OpenPGP key);
/// the answer carries its log index.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/keys", tag = "publishers",
    params(("publisher" = String, Path)), request_body = AddKey, security(("token" = [])),
    responses(
        (status = 201, body = PublisherKey),
        (status = 403, body = agora_core::api::Problem),
        (status = 409, description = "The key is registered already", body = agora_core::api::Problem),
        (status = 422, body = agora_core::api::Problem)
    ))]
pub async fn add(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<AddKey>,
) -> Result<(StatusCode, Json<PublisherKey>), ApiError> {
    let key = keys::add(&state.registry, &caller, &name, request).await?;
    Ok((StatusCode::CREATED, Json(key_view(key))))
}

/// Revoke a key: releases it signed stay, new releases signed with it are refused.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/keys/revoke", tag = "publishers",
    params(("publisher" = String, Path)), request_body = RevokeKey, security(("token" = [])),
    responses((status = 200, body = PublisherKey), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<RevokeKey>,
) -> Result<Json<PublisherKey>, ApiError> {
    let key = keys::revoke(&state.registry, &caller, &name, request).await?;
    Ok(Json(key_view(key)))
}
