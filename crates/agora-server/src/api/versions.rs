//! Versions: history, details, publishing (`agora_registry::publish`) and lifecycle changes
//! (`agora_registry::lifecycle`).

use agora_core::api::{
    LifecycleRequest, PublishRequest, PublishResponse, VersionDetail, VersionList,
};
use agora_registry::{catalog, lifecycle, publish};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::convert;
use crate::auth::{Authenticated, MaybeCaller};
use crate::cache::{plugin_prefix, version_key};
use crate::error::ApiError;
use crate::extract::{ApiJson, PluginPath, VersionPath};
use crate::{AppState, metrics};

/// The version history of a plugin, newest first.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = VersionList), (status = 404, body = agora_core::api::Problem)))]
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
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = VersionDetail), (status = 404, body = agora_core::api::Problem)))]
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
    let anonymous = caller.0.is_none();
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
#[utoipa::path(post, path = "/api/v1/plugins/{publisher}/{name}/versions", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path)), request_body = PublishRequest,
    security(("token" = [])),
    responses(
        (status = 201, body = PublishResponse),
        (status = 403, body = agora_core::api::Problem),
        (status = 409, description = "The version exists already", body = agora_core::api::Problem),
        (status = 422, description = "The manifest or an artifact is invalid", body = agora_core::api::Problem)
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
#[utoipa::path(patch, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    request_body = LifecycleRequest, security(("token" = [])),
    responses(
        (status = 200, body = VersionDetail),
        (status = 403, body = agora_core::api::Problem),
        (status = 404, body = agora_core::api::Problem),
        (status = 409, description = "The change is not allowed from the current state", body = agora_core::api::Problem)
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
