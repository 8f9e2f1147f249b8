//! Security advisories (administrators import OSV records).

use agora_core::api::{AdvisoryImportRequest, AdvisoryImportResponse, Problem};
use axum::Json;
use axum::extract::State;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

/// Imports OSV records: each new or changed record is matched at once against the
/// components of every release's SBOM, and the releases it affects are marked
/// `insecure` (reason: the advisory id, the component, the fixed version). All records
/// or none: a malformed one is named by its index.
#[utoipa::path(post, path = "/api/v1/advisories", tag = "operations", operation_id = "import_advisories",
    request_body = AdvisoryImportRequest, security(("token" = [])),
    responses((status = 200, description = "What changed and the releases now marked insecure", body = AdvisoryImportResponse),
        (status = 403, description = "`forbidden`: only administrators (token with `admin`) import", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a record is not OSV (named by index), or too many records", body = Problem, content_type = PROBLEM)))]
pub async fn import(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<AdvisoryImportRequest>,
) -> Result<Json<AdvisoryImportResponse>, ApiError> {
    let response = agora_registry::advisories::import(&state.registry, &caller, request).await?;
    // A release now insecure must not be served from the cache as it was.
    for flagged in &response.flagged {
        if let Some((plugin, _)) = flagged.release.split_once('@')
            && let Some((publisher, name)) = plugin.split_once('/')
        {
            state
                .cache
                .invalidate(&crate::cache::plugin_prefix(publisher, name));
        }
    }
    Ok(Json(response))
}
