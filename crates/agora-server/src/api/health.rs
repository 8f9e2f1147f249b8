//! Probes and the manifest schema.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "The process is up")))]
pub async fn health() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// The database and blob storage are reachable.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready to serve"),
    (status = 503, description = "A dependency is unreachable", body = agora_core::api::Problem)
))]
pub async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Err(e) = state.registry.meta.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Err(ApiError::of(
            agora_core::ProblemKind::Unavailable,
            format!("database unreachable: {e}"),
        ));
    }
    if let Err(e) = state.registry.blobs.check().await {
        tracing::warn!(error = %e, "readiness: blob storage unavailable");
        return Err(ApiError::of(
            agora_core::ProblemKind::Unavailable,
            format!("blob storage unavailable: {e}"),
        ));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ready"}"#,
    )
        .into_response())
}

/// The JSON Schema of `plugin.yaml`.
#[utoipa::path(get, path = "/api/v1/schema/manifest.json", tag = "plugins", responses((status = 200, description = "JSON Schema (draft 2020-12)")))]
pub async fn manifest_schema() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/schema+json"),
        )],
        agora_core::manifest::SCHEMA_JSON,
    )
        .into_response()
}
