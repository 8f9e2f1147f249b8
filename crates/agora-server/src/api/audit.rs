//! The audit log of changes (administrators only).

use agora_core::api::Problem;
use agora_store::AuditRecord;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use agora_registry::time::rfc3339;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only events whose target starts with this, e.g. `acme/jira`.
    target: Option<String>,
    /// At most this many events, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Who changed what, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "operations", operation_id = "list_audit_events", params(AuditParams), security(("token" = [])),
    responses((status = 200, description = "The events, newest first", body = Vec<AuditEvent>),
        (status = 403, description = "`forbidden`: not an administrator", body = Problem, content_type = PROBLEM)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let events = agora_registry::audit::events(
        &state.registry,
        &caller,
        params.target.as_deref(),
        params.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e: AuditRecord| AuditEvent {
                id: e.id,
                at: rfc3339(e.at),
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::StatusCode;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn the_audit_log_names_who_did_what_to_administrators_only() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        let events = app.get("/api/v1/audit?target=acme", Some(&app.admin)).await;
        insta::assert_json_snapshot!("events", events.snapshot());

        let user = app.user("gina", Role::User, "review").await;
        let refused = app.get("/api/v1/audit", Some(&user)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        let one = app.get("/api/v1/audit?limit=1", Some(&app.admin)).await;
        assert_eq!(one.body.as_array().map(Vec::len), Some(1), "{one:?}");
        let clamped = app.get("/api/v1/audit?limit=5000", Some(&app.admin)).await;
        assert_eq!(
            clamped.status,
            StatusCode::OK,
            "a limit above 1000 means 1000"
        );
        let unknown = app
            .get("/api/v1/audit?since=yesterday", Some(&app.admin))
            .await;
        insta::assert_json_snapshot!("unknown_parameter", unknown.snapshot());
    }
}
