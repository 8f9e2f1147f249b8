//! Versions: history, details, publishing (`agora_registry::publish`) and lifecycle changes
//! (`agora_registry::lifecycle`).

use agora_core::api::{
    LifecycleRequest, Problem, PublishRequest, PublishResponse, VersionDetail, VersionList,
};
use agora_registry::{catalog, lifecycle, publish};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::convert;
use super::openapi::PROBLEM;
use crate::auth::{Authenticated, MaybeCaller};
use crate::cache::{plugin_prefix, version_key};
use crate::error::ApiError;
use crate::extract::{ApiJson, PluginPath, VersionPath};
use crate::metrics;
use crate::state::AppState;

/// The version history of a plugin, newest first.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions", tag = "versions", operation_id = "list_versions",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The versions, newest first", body = VersionList), (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: PluginPath,
) -> Result<Json<VersionList>, ApiError> {
    let (plugin, versions) = catalog::versions(
        &state.registry,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    Ok(Json(VersionList {
        publisher: plugin.publisher,
        name: plugin.name,
        versions: versions.iter().map(convert::version_summary).collect(),
    }))
}

/// One version with its manifest, artifacts and signature.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}", tag = "versions", operation_id = "get_version",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name"), ("version" = String, Path, description = "A semantic version, e.g. `1.2.0`")),
    responses((status = 200, description = "The version", body = VersionDetail), (status = 404, description = "`not-found`: no such plugin or version, or a private plugin the caller may not see", body = Problem, content_type = PROBLEM)))]
pub async fn detail(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: VersionPath,
) -> Result<Response, ApiError> {
    let key = version_key(
        path.publisher.as_str(),
        path.name.as_str(),
        &path.version.to_string(),
    );
    // The cache holds public releases only, which every reader sees alike.
    let anonymous = caller.caller.is_none();
    if anonymous && let Some(body) = state.cache.get(&key) {
        return Ok(json_bytes(body));
    }
    let generation = state.cache.generation();
    let (plugin, (v, artifacts)) = catalog::release(
        &state.registry,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
        &path.version.to_string(),
    )
    .await?;
    let public = plugin.visibility == agora_core::Visibility::Public;
    let detail = convert::version_detail(&plugin, v, artifacts)?;
    let body = Bytes::from(
        serde_json::to_vec(&detail)
            .map_err(|e| ApiError::internal("could not render a version", e))?,
    );
    if anonymous && public {
        state.cache.put(key, body.clone(), generation);
    }
    Ok(json_bytes(body))
}

/// The newest verification report of a version: the outcome (`verified`, `needs-review`,
/// `rejected`) and every stage with its findings. 404 until the first run ended.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}/verification", tag = "versions", operation_id = "get_version_verification",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name"), ("version" = String, Path, description = "A semantic version, e.g. `1.2.0`")),
    responses((status = 200, description = "The newest verification report", body = agora_core::verification::VerificationReport), (status = 404, description = "`not-found`: no such plugin or version, a private plugin the caller may not see, or a version not checked yet", body = Problem, content_type = PROBLEM)))]
pub async fn verification(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: VersionPath,
) -> Result<Json<agora_core::verification::VerificationReport>, ApiError> {
    let version = path.version.to_string();
    let report = agora_registry::verification::latest(
        &state.registry,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
        &version,
    )
    .await?
    .ok_or_else(|| {
        ApiError::from(agora_registry::RegistryError::not_found(format!(
            "{}/{}@{version} has not been checked yet; its verification is queued",
            path.publisher, path.name
        )))
    })?;
    Ok(Json(report))
}

/// An administrator's decision on a version's verification: approve (`verified`) or
/// reject, with a reason; recorded as its newest run, audited.
#[utoipa::path(post, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}/verification/review", tag = "versions", operation_id = "review_version_verification",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name"), ("version" = String, Path, description = "A semantic version, e.g. `1.2.0`")),
    request_body = agora_core::verification::ReviewDecision, security(("token" = [])),
    responses((status = 200, description = "The report with the decision", body = agora_core::verification::VerificationReport),
        (status = 403, description = "`forbidden`: only administrators (token with `admin`) decide", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin or version", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the version has not been checked yet", body = Problem, content_type = PROBLEM)))]
pub async fn review_verification(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    path: VersionPath,
    ApiJson(decision): ApiJson<agora_core::verification::ReviewDecision>,
) -> Result<Json<agora_core::verification::VerificationReport>, ApiError> {
    let report = agora_registry::verification::review(
        &state.registry,
        &caller,
        path.publisher.as_str(),
        path.name.as_str(),
        &path.version.to_string(),
        decision,
    )
    .await?;
    Ok(Json(report))
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Publish a new version. Upload every artifact with `PUT /api/v1/blobs/{digest}` first.
#[utoipa::path(post, path = "/api/v1/plugins/{publisher}/{name}/versions", tag = "versions", operation_id = "publish_version",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name")), request_body = PublishRequest,
    security(("token" = [])),
    responses(
        (status = 201, description = "Published, with the release's log entry and its inclusion proof", body = PublishResponse,
            headers(("Location" = String, description = "The new version's URL"))),
        (status = 403, description = "`forbidden`: not a member of the publisher with `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the version exists already, or the signing key was revoked while the release was checked", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: the manifest (title `Invalid manifest`), the release's artifacts (title `Invalid release`) or another field is invalid, `errors` naming each; `invalid-signature`: the signature is missing, malformed, or not by an active key of the publisher. Also a body of the wrong shape, a bad name in the path, or a control character", body = Problem, content_type = PROBLEM)
    ))]
pub async fn publish(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    path: PluginPath,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    let target = agora_core::PluginRef {
        publisher: path.publisher.clone(),
        name: path.name.clone(),
    };
    let published = publish::publish(&state.registry, &caller, &target, request).await?;
    if let Some(size) = published.manifest_stored {
        metrics::uploaded(size);
    }
    // A release can make the plugin private: no cached public answer may outlive that.
    state
        .cache
        .invalidate(&plugin_prefix(path.publisher.as_str(), path.name.as_str()));
    metrics::published();
    let version = published.version.version;
    let location = format!(
        "/api/v1/plugins/{}/{}/versions/{version}",
        path.publisher, path.name
    );
    let body = PublishResponse {
        publisher: path.publisher.to_string(),
        name: path.name.to_string(),
        version,
        manifest_digest: published.manifest_digest,
        artifacts: published
            .artifacts
            .into_iter()
            .map(convert::artifact)
            .collect(),
        log: published.log,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Change a version's lifecycle state: deprecate, mark insecure, yank, unyank (active),
/// or remove (administrators only; the bytes are deleted and a tombstone stays).
#[utoipa::path(patch, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}", tag = "versions", operation_id = "change_version_lifecycle",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name"), ("version" = String, Path, description = "A semantic version, e.g. `1.2.0`")),
    request_body = LifecycleRequest, security(("token" = [])),
    responses(
        (status = 200, description = "The version in its new state", body = VersionDetail),
        (status = 403, description = "`forbidden`: not a member of the publisher with `publish:P` or `publish:*`, or `removed` by someone other than an administrator", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin or version, or a private plugin the caller may not see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the change is not allowed from the current state (e.g. after `removed`)", body = Problem, content_type = PROBLEM)
    ))]
pub async fn change_lifecycle(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    path: VersionPath,
    ApiJson(request): ApiJson<LifecycleRequest>,
) -> Result<Json<VersionDetail>, ApiError> {
    let version = path.version.to_string();
    let (plugin, updated, artifacts) = lifecycle::change(
        &state.registry,
        &caller,
        path.publisher.as_str(),
        path.name.as_str(),
        &version,
        request,
    )
    .await?;
    state
        .cache
        .invalidate(&version_key(&plugin.publisher, &plugin.name, &version));
    Ok(Json(convert::version_detail(&plugin, updated, artifacts)?))
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use agora_trust::SigningKey;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn publishing_answers_the_release_with_its_log_entry_and_never_twice() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        let published = app
            .publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        insta::assert_json_snapshot!("publish", published.snapshot());

        let again = app
            .publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        insta::assert_json_snapshot!("publish_again", again.snapshot());

        let detail = app
            .get("/api/v1/plugins/acme/hello/versions/1.0.0", None)
            .await;
        assert_eq!(detail.status, StatusCode::OK);
        assert_eq!(detail.body["log_index"], published.body["log"]["index"]);
        let missing = app
            .get("/api/v1/plugins/acme/hello/versions/9.9.9", None)
            .await;
        insta::assert_json_snapshot!("detail_missing", missing.snapshot());
    }

    #[tokio::test]
    async fn a_release_signed_by_another_key_or_by_an_outsider_is_refused() {
        let app = TestApp::new().await;
        app.publisher(&app.admin, "acme").await;
        let stranger = SigningKey::generate("stranger").unwrap();
        let forged = app
            .publish(&app.admin, &stranger, "acme", "hello", "1.0.0")
            .await;
        assert_eq!(
            forged.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{forged:?}"
        );
        assert!(
            forged.body["detail"]
                .as_str()
                .unwrap()
                .contains("no signature is by a key of this publisher"),
            "{forged:?}"
        );

        let outsider = app.user("mallory", Role::Publisher, "publish:*").await;
        let key = app.publisher(&outsider, "mallory-tools").await;
        let foreign = app.publish(&outsider, &key, "acme", "hello", "1.0.0").await;
        insta::assert_json_snapshot!("publish_by_outsider", foreign.snapshot());

        let list = app.get("/api/v1/plugins/acme/hello/versions", None).await;
        assert_eq!(
            list.status,
            StatusCode::NOT_FOUND,
            "nothing was half-written"
        );
    }

    #[tokio::test]
    async fn lifecycle_changes_show_in_the_version_list() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        app.publish(&app.admin, &key, "acme", "hello", "1.1.0")
            .await;
        let path = "/api/v1/plugins/acme/hello/versions/1.0.0";
        let deprecated = app
            .call(
                Method::PATCH,
                path,
                Some(&app.admin),
                Some(json!({ "state": "deprecated", "reason": "use 1.1", "replacement": "acme/hello" })),
            )
            .await;
        assert_eq!(deprecated.status, StatusCode::OK, "{deprecated:?}");
        let yanked = app
            .call(
                Method::PATCH,
                "/api/v1/plugins/acme/hello/versions/1.1.0",
                Some(&app.admin),
                Some(json!({ "state": "yanked", "reason": "broken build" })),
            )
            .await;
        assert_eq!(yanked.status, StatusCode::OK, "{yanked:?}");
        let list = app.get("/api/v1/plugins/acme/hello/versions", None).await;
        insta::assert_json_snapshot!("list_after_lifecycle", list.snapshot());

        let member = app.user("bob", Role::User, "review").await;
        let refused = app
            .call(
                Method::PATCH,
                path,
                Some(&member),
                Some(json!({ "state": "removed", "reason": "spam" })),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    }
}
