//! The transparency log: its key, signed checkpoints, proofs and entries.

use agora_core::api::{
    ConsistencyProofResponse, InclusionProofResponse, LogEntryBody, LogKeyInfo, Problem,
};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::openapi::PROBLEM;
use crate::auth::MaybeCaller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The log's verifier key, for clients to pin.
#[utoipa::path(get, path = "/api/v1/log/key", tag = "log", operation_id = "get_log_key",
    responses((status = 200, description = "The log's origin and verifier key", body = LogKeyInfo)))]
pub async fn key(State(state): State<AppState>) -> Json<LogKeyInfo> {
    Json(LogKeyInfo {
        origin: state.registry.log.origin().to_owned(),
        verifier_key: state.registry.log.verifier_key().to_owned(),
    })
}

/// The latest signed checkpoint (C2SP signed note: origin, size, root hash, signature).
#[utoipa::path(get, path = "/api/v1/log/checkpoint", tag = "log", operation_id = "get_log_checkpoint",
    responses((status = 200, description = "A C2SP signed note (UTF-8)", body = String, content_type = "text/plain")))]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let note = state
        .registry
        .log
        .checkpoint(state.registry.meta.as_ref())
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        note,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    /// Index of the entry.
    index: u64,
}

/// Proof that entry `index` is in the log, with the checkpoint it leads to. A sealed
/// entry (about a private plugin) comes with its opening for callers who may see it.
#[utoipa::path(get, path = "/api/v1/log/proof/inclusion", tag = "log", operation_id = "prove_inclusion", params(InclusionParams),
    responses((status = 200, description = "The proof and the checkpoint it leads to", body = InclusionProofResponse),
        (status = 422, description = "`invalid-request`: `index` is past the end of the log, or a control character is in the path or query", body = Problem, content_type = PROBLEM)))]
pub async fn inclusion(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(p): ApiQuery<InclusionParams>,
) -> Result<Json<InclusionProofResponse>, ApiError> {
    Ok(Json(
        state
            .registry
            .log
            .prove_inclusion(state.registry.meta.as_ref(), p.index, &caller.viewer())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    /// The size of the earlier tree (the last checkpoint the client saw).
    from: u64,
}

/// Proof that the current log extends the log of its first `from` entries.
#[utoipa::path(get, path = "/api/v1/log/proof/consistency", tag = "log", operation_id = "prove_consistency", params(ConsistencyParams),
    responses((status = 200, description = "The proof and the current checkpoint", body = ConsistencyProofResponse),
        (status = 422, description = "`invalid-request`: `from` is past the end of the log, or a control character is in the path or query", body = Problem, content_type = PROBLEM)))]
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ConsistencyParams>,
) -> Result<Json<ConsistencyProofResponse>, ApiError> {
    Ok(Json(
        state
            .registry
            .log
            .prove_consistency(state.registry.meta.as_ref(), p.from)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EntriesParams {
    /// First index (default 0).
    from: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

/// Log entries in order, for monitors and mirrors. Sealed entries (about private plugins)
/// come with their openings for callers who may see those plugins.
#[utoipa::path(get, path = "/api/v1/log/entries", tag = "log", operation_id = "list_log_entries", params(EntriesParams),
    responses((status = 200, description = "The entries from `from`, in order (none past the end)", body = Vec<LogEntryBody>)))]
pub async fn entries(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(p): ApiQuery<EntriesParams>,
) -> Result<Json<Vec<LogEntryBody>>, ApiError> {
    // An index past what the store can hold is past the end: nothing to show.
    let Ok(from) = i64::try_from(p.from.unwrap_or(0)) else {
        return Ok(Json(Vec::new()));
    };
    let rows = state
        .registry
        .meta
        .log_entries(from, p.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let viewer = caller.viewer();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let opening =
            agora_registry::log::opening(state.registry.meta.as_ref(), &viewer, &row).await?;
        out.push(LogEntryBody {
            index: row.index as u64,
            body: row.body,
            opening,
        });
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn the_log_proves_a_release_and_refuses_impossible_proofs() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;

        let checkpoint = app.get("/api/v1/log/checkpoint", None).await;
        assert_eq!(checkpoint.status, StatusCode::OK);
        let text = checkpoint.body.as_str().unwrap();
        assert!(text.starts_with("agora.test/log\n2\n"), "{text}");

        let proof = app.get("/api/v1/log/proof/inclusion?index=1", None).await;
        insta::assert_json_snapshot!("inclusion", proof.snapshot());
        let beyond = app.get("/api/v1/log/proof/inclusion?index=5", None).await;
        insta::assert_json_snapshot!("inclusion_beyond_the_tree", beyond.snapshot());
        let consistency = app.get("/api/v1/log/proof/consistency?from=3", None).await;
        insta::assert_json_snapshot!("consistency_from_beyond_the_tree", consistency.snapshot());
        let entries = app.get("/api/v1/log/entries?from=0&limit=5", None).await;
        insta::assert_json_snapshot!("entries", entries.snapshot());
    }
}
