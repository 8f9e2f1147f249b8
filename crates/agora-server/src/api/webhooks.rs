//! Webhooks: adapters over `agora_registry::webhooks`. Registry-wide hooks are
//! administrators'; a publisher's are its owners'.

use agora_core::api::Problem;
use agora_core::webhook::{
    Webhook, WebhookAttempt, WebhookCreateRequest, WebhookCreated, WebhookPing,
};
use agora_registry::webhooks;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, IdPath};
use crate::state::AppState;

/// Create a registry-wide hook: it receives the events of every publisher. The signing
/// secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "create_registry_webhook",
    request_body = WebhookCreateRequest, security(("token" = [])),
    responses((status = 201, description = "Created; the secret is in this answer only", body = WebhookCreated),
        (status = 403, description = "`forbidden`: only administrators (token with `admin`) manage registry-wide hooks", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the registry has the most hooks allowed (50)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a bad `url` or `events`, named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn create_registry(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<WebhookCreateRequest>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let created = webhooks::create(&state.registry, &caller, None, request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The registry-wide hooks (never their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "list_registry_webhooks",
    security(("token" = [])),
    responses((status = 200, description = "The registry-wide hooks, oldest first", body = Vec<Webhook>),
        (status = 403, description = "`forbidden`: only administrators (token with `admin`) manage registry-wide hooks", body = Problem, content_type = PROBLEM)))]
pub async fn list_registry(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    Ok(Json(webhooks::list(&state.registry, &caller, None).await?))
}

/// Create a hook for a publisher's events (its owners, with `publish:P` or `publish:*`).
/// The signing secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/webhooks", tag = "webhooks", operation_id = "create_publisher_webhook",
    params(("publisher" = String, Path, description = "The publisher's name")),
    request_body = WebhookCreateRequest, security(("token" = [])),
    responses((status = 201, description = "Created; the secret is in this answer only", body = WebhookCreated),
        (status = 403, description = "`forbidden`: not an owner of the publisher, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the publisher has the most hooks allowed (20)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a bad `url` or `events`, named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn create_for_publisher(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(publisher): ApiPath<String>,
    ApiJson(request): ApiJson<WebhookCreateRequest>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let created = webhooks::create(&state.registry, &caller, Some(&publisher), request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A publisher's hooks (its owners; never their secrets).
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/webhooks", tag = "webhooks", operation_id = "list_publisher_webhooks",
    params(("publisher" = String, Path, description = "The publisher's name")), security(("token" = [])),
    responses((status = 200, description = "The publisher's hooks, oldest first", body = Vec<Webhook>),
        (status = 403, description = "`forbidden`: not an owner of the publisher, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM)))]
pub async fn list_for_publisher(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(publisher): ApiPath<String>,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    Ok(Json(
        webhooks::list(&state.registry, &caller, Some(&publisher)).await?,
    ))
}

/// Delete a hook with its pending deliveries and history.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    params(("id" = i64, Path, description = "The hook's `id`")), security(("token" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: a member who is not an owner, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such hook the caller may manage", body = Problem, content_type = PROBLEM)))]
pub async fn remove(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    webhooks::remove(&state.registry, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A hook's delivery attempts, newest first (the newest 100 are kept).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    params(("id" = i64, Path, description = "The hook's `id`")), security(("token" = [])),
    responses((status = 200, description = "Each attempt: when, the status or the error, how long", body = Vec<WebhookAttempt>),
        (status = 403, description = "`forbidden`: a member who is not an owner, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such hook the caller may manage", body = Problem, content_type = PROBLEM)))]
pub async fn deliveries(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<Json<Vec<WebhookAttempt>>, ApiError> {
    Ok(Json(
        webhooks::deliveries(&state.registry, &caller, id).await?,
    ))
}

/// Queue a `webhook.ping` delivery to a hook, to try its receiver.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", tag = "webhooks", operation_id = "ping_webhook",
    params(("id" = i64, Path, description = "The hook's `id`")), security(("token" = [])),
    responses((status = 202, description = "Queued; its attempts show in the deliveries", body = WebhookPing),
        (status = 403, description = "`forbidden`: a member who is not an owner, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such hook the caller may manage", body = Problem, content_type = PROBLEM)))]
pub async fn ping(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<(StatusCode, Json<WebhookPing>), ApiError> {
    let queued = webhooks::ping(&state.registry, &caller, id).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    fn hook(url: &str, events: &[&str]) -> serde_json::Value {
        json!({ "url": url, "events": events })
    }

    #[tokio::test]
    async fn an_owner_creates_a_hook_whose_secret_is_shown_once_then_removes_it() {
        let app = TestApp::new().await;
        let alice = app.user("alice", Role::Publisher, "publish:*").await;
        app.publisher(&alice, "acme").await;
        let created = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/webhooks",
                Some(&alice),
                Some(hook(
                    "https://hooks.example.com/agora",
                    &["release.published", "verification.completed"],
                )),
            )
            .await;
        insta::assert_json_snapshot!("create", created.snapshot());
        let secret = created.body["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{created:?}");
        let id = created.body["id"].as_i64().unwrap();

        let list = app
            .get("/api/v1/publishers/acme/webhooks", Some(&alice))
            .await;
        insta::assert_json_snapshot!("list", list.snapshot());
        assert!(!list.body.to_string().contains(&secret));

        let ping = app
            .call(
                Method::POST,
                &format!("/api/v1/webhooks/{id}/ping"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(ping.status, StatusCode::ACCEPTED, "{ping:?}");
        // Nothing was sent yet (no worker here): no attempt in the history.
        let deliveries = app
            .get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(&alice))
            .await;
        assert_eq!(deliveries.status, StatusCode::OK);
        assert_eq!(deliveries.body, json!([]));

        let removed = app
            .call(
                Method::DELETE,
                &format!("/api/v1/webhooks/{id}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
        let gone = app
            .get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(&alice))
            .await;
        insta::assert_json_snapshot!("deliveries_of_a_removed_hook", gone.snapshot());
    }

    #[tokio::test]
    async fn outsiders_are_refused_and_bad_input_is_named_by_field() {
        let app = TestApp::new().await;
        let alice = app.user("alice", Role::Publisher, "publish:*").await;
        app.publisher(&alice, "acme").await;
        let carol = app.user("carol", Role::Publisher, "publish:*").await;
        let good = hook("https://hooks.example.com/agora", &["release.lifecycle"]);

        let outsider = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/webhooks",
                Some(&carol),
                Some(good.clone()),
            )
            .await;
        insta::assert_json_snapshot!("create_by_outsider", outsider.snapshot());
        let registry_wide = app
            .call(
                Method::POST,
                "/api/v1/webhooks",
                Some(&alice),
                Some(good.clone()),
            )
            .await;
        assert_eq!(registry_wide.status, StatusCode::FORBIDDEN);
        let anonymous = app.get("/api/v1/webhooks", None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        let bad_url = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/webhooks",
                Some(&alice),
                Some(hook("https://user:pw@10.0.0.1/", &["release.lifecycle"])),
            )
            .await;
        insta::assert_json_snapshot!("create_bad_url", bad_url.snapshot());
        let bad_event = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/webhooks",
                Some(&alice),
                Some(hook(
                    "https://hooks.example.com/",
                    &["release.published", "release.deleted"],
                )),
            )
            .await;
        insta::assert_json_snapshot!("create_bad_event", bad_event.snapshot());

        // A hook of acme is not carol's to see or remove.
        let created = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/webhooks",
                Some(&alice),
                Some(good),
            )
            .await;
        let id = created.body["id"].as_i64().unwrap();
        let removed = app
            .call(
                Method::DELETE,
                &format!("/api/v1/webhooks/{id}"),
                Some(&carol),
                None,
            )
            .await;
        assert_eq!(removed.status, StatusCode::NOT_FOUND, "{removed:?}");
    }
}
