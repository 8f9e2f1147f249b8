//! Probes and the manifest schema.

use agora_core::api::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::openapi::PROBLEM;
use crate::error::ApiError;
use crate::state::AppState;

/// How long readiness waits for the database's answer.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A probe's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Probe {
    /// `ok` (`/health`) or `ready` (`/ready`).
    #[schema(example = "ok")]
    status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "operations", operation_id = "health", security(()),
    responses((status = 200, description = "The process is up: `{\"status\":\"ok\"}`", body = Probe)))]
pub async fn health() -> Json<Probe> {
    Json(Probe {
        status: "ok".into(),
    })
}

/// The database and blob storage are reachable.
#[utoipa::path(get, path = "/ready", tag = "operations", operation_id = "ready", security(()), responses(
    (status = 200, description = "Ready to serve: `{\"status\":\"ready\"}`", body = Probe),
    (status = 503, description = "`unavailable`: the database or the blob storage is unreachable, or the server is at its connection limit", body = Problem, content_type = PROBLEM)
))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Probe>, ApiError> {
    // A database that is down is retried for up to the pool's wait (10 s): the probe
    // says so within `READY_WAIT` instead.
    let unreachable = match tokio::time::timeout(READY_WAIT, state.registry.meta.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", READY_WAIT.as_secs())),
    };
    if let Some(e) = unreachable {
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
    Ok(Json(Probe {
        status: "ready".into(),
    }))
}

/// The JSON Schema of `plugin.yaml`.
#[utoipa::path(get, path = "/api/v1/schema/manifest.json", tag = "plugins", operation_id = "manifest_schema",
    responses((status = 200, description = "The JSON Schema (draft 2020-12) of `plugin.yaml`", body = Object, content_type = "application/schema+json")))]
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

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn probes_answer_and_unknown_paths_and_methods_are_problems() {
        let app = TestApp::new().await;
        let health = app.get("/health", None).await;
        insta::assert_json_snapshot!("health", health.snapshot());
        let ready = app.get("/ready", None).await;
        insta::assert_json_snapshot!("ready", ready.snapshot());
        let unknown = app.get("/api/v1/nothing-here", None).await;
        insta::assert_json_snapshot!("unknown_path", unknown.snapshot());
        let method = app
            .call(Method::DELETE, "/api/v1/plugins", None, None)
            .await;
        insta::assert_json_snapshot!("method_not_allowed", method.snapshot());
        let schema = app.get("/api/v1/schema/manifest.json", None).await;
        assert_eq!(schema.status, StatusCode::OK);
        assert!(schema.body["properties"]["runtime"].is_object());
    }

    #[tokio::test]
    async fn a_private_registry_answers_only_probes_without_a_token() {
        let app = TestApp::private().await;
        assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
        let closed = app.get("/api/v1/plugins", None).await;
        insta::assert_json_snapshot!("private_without_token", closed.snapshot());
        let open = app.get("/api/v1/plugins", Some(&app.admin)).await;
        assert_eq!(open.status, StatusCode::OK);
    }
}
