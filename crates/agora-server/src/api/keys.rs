//! Publisher signing keys: adapters over `agora_registry::keys`.

use agora_core::api::{AddKey, Problem, PublisherKey, RevokeKey};
use agora_registry::keys;
use agora_registry::time::rfc3339;
use agora_store::KeyRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::openapi::PROBLEM;
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
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/keys", tag = "publishers", operation_id = "list_keys",
    params(("publisher" = String, Path, description = "The publisher's name")),
    responses((status = 200, description = "The keys, revoked ones too", body = Vec<PublisherKey>), (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM)))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<PublisherKey>>, ApiError> {
    let list = keys::list(&state.registry, &name).await?;
    Ok(Json(list.into_iter().map(key_view).collect()))
}

/// Register a signing key (an OpenSSH Ed25519 public key line or an armored OpenPGP key);
/// the answer carries its log index.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/keys", tag = "publishers", operation_id = "add_key",
    params(("publisher" = String, Path, description = "The publisher's name")), request_body = AddKey, security(("token" = [])),
    responses(
        (status = 201, description = "Registered, with its log index", body = PublisherKey),
        (status = 403, description = "`forbidden`: not a member of the publisher with `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the key is registered already", body = Problem, content_type = PROBLEM)
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
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/keys/revoke", tag = "publishers", operation_id = "revoke_key",
    params(("publisher" = String, Path, description = "The publisher's name")), request_body = RevokeKey, security(("token" = [])),
    responses((status = 200, description = "The revoked key", body = PublisherKey),
        (status = 403, description = "`forbidden`: not a member of the publisher with `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher, or it has no active key of that id", body = Problem, content_type = PROBLEM)))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<RevokeKey>,
) -> Result<Json<PublisherKey>, ApiError> {
    let key = keys::revoke(&state.registry, &caller, &name, request).await?;
    Ok(Json(key_view(key)))
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn keys_are_added_listed_and_revoked_by_members_only() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        let list = app.get("/api/v1/publishers/acme/keys", None).await;
        insta::assert_json_snapshot!("list", list.snapshot());

        let garbage = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/keys",
                Some(&app.admin),
                Some(json!({ "public_key": "ssh-rsa AAAA nope" })),
            )
            .await;
        insta::assert_json_snapshot!("add_garbage", garbage.snapshot());

        let outsider = app.user("mallory", Role::Publisher, "publish:*").await;
        let id = key.public().id().to_owned();
        let refused = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/keys/revoke",
                Some(&outsider),
                Some(json!({ "id": id })),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

        let revoked = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/keys/revoke",
                Some(&app.admin),
                Some(json!({ "id": id, "reason": "laptop lost" })),
            )
            .await;
        insta::assert_json_snapshot!("revoke", revoked.snapshot());
        let unsigned = app
            .publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        assert_eq!(
            unsigned.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a revoked key signs nothing new: {unsigned:?}"
        );
    }
}
