//! Analytics reports: the registry's (administrators), a publisher's and a plugin's (its
//! members who may publish for it), a tenant's (its members). JSON by default; one table
//! as CSV with `format=csv&table=NAME`.

use agora_core::analytics::{AnalyticsReport, CSV_TABLES, to_csv};
use agora_core::api::Problem;
use agora_registry::analytics::{self, Scope};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// How many days the report covers, ending today (1 to 366; default 30).
    pub days: Option<u32>,
    /// The last day covered, `YYYY-MM-DD` (default: today, UTC).
    pub until: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// With `format=csv`: which table (`daily`, `versions`, `errors`, `together`, `searches`, `zero_searches`; default `daily`).
    pub table: Option<String>,
}

/// Reads the query, runs the report and answers JSON or one table as CSV.
async fn answer(
    state: &AppState,
    caller: &agora_registry::caller::Caller,
    scope: Scope<'_>,
    query: ReportQuery,
) -> Result<Response, ApiError> {
    let until = match query.until.as_deref() {
        None => None,
        Some(day) => Some(agora_core::analytics::parse_day(day).ok_or_else(|| {
            ApiError::field(
                "until",
                format!("{day:?} is not a date"),
                Some("a day as YYYY-MM-DD"),
            )
        })?),
    };
    let csv = match query.format.as_deref() {
        None | Some("json") => None,
        Some("csv") => Some(query.table.unwrap_or_else(|| "daily".to_owned())),
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!("{other:?} is not a format"),
                Some("json or csv"),
            ));
        }
    };
    if let Some(table) = &csv
        && !CSV_TABLES.contains(&table.as_str())
    {
        return Err(ApiError::field(
            "table",
            format!("{table:?} is not a table of the report"),
            Some(&CSV_TABLES.join(", ")),
        ));
    }
    let report: AnalyticsReport = analytics::report(
        &state.registry,
        caller,
        scope,
        query.days.unwrap_or(30),
        until,
    )
    .await?;
    match csv {
        None => Ok(axum::Json(report).into_response()),
        Some(table) => {
            let body = to_csv(&report, &table).unwrap_or_default();
            let file = format!(
                "attachment; filename=\"agora-{}-{table}.csv\"",
                report.scope.replace([':', '/'], "-")
            );
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
            );
            if let Ok(value) = HeaderValue::from_str(&file) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            Ok(response)
        }
    }
}

/// The whole registry's analytics (administrators): downloads, installs, removals, runs and searches per day; versions; top errors; plugins run together; top searches and those that found nothing.
#[utoipa::path(get, path = "/api/v1/analytics", tag = "analytics", operation_id = "registry_analytics",
    params(ReportQuery), security(("token" = [])),
    responses((status = 200, description = "The report (JSON), or one table of it (CSV)", 
            content((AnalyticsReport = "application/json"), (String = "text/csv"))),
        (status = 403, description = "`forbidden`: not an administrator's token with the admin scope", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: `days`, `until`, `format` or `table` named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn registry(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, Scope::Registry, query).await
}

/// A publisher's analytics, per plugin (its members whose token may publish for it, administrators).
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/analytics", tag = "analytics", operation_id = "publisher_analytics",
    params(("publisher" = String, Path, description = "The publisher's name"), ReportQuery), security(("token" = [])),
    responses((status = 200, description = "The report (JSON), or one table of it (CSV)", 
            content((AnalyticsReport = "application/json"), (String = "text/csv"))),
        (status = 403, description = "`forbidden`: not a member of the publisher, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a parameter named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn publisher(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(publisher): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, Scope::Publisher(&publisher), query).await
}

/// A plugin's analytics, per version (as for its publisher).
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/analytics", tag = "analytics", operation_id = "plugin_analytics",
    params(("publisher" = String, Path, description = "The publisher's name"),
        ("name" = String, Path, description = "The plugin's name"), ReportQuery), security(("token" = [])),
    responses((status = 200, description = "The report (JSON), or one table of it (CSV)", 
            content((AnalyticsReport = "application/json"), (String = "text/csv"))),
        (status = 403, description = "`forbidden`: not a member of the publisher, or the token lacks `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin (or not visible to the caller)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a parameter named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn plugin(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, Scope::Plugin(&publisher, &name), query).await
}

/// A tenant's analytics: its instances' installs, removals, runs and errors, per plugin (its members).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/analytics", tag = "analytics", operation_id = "tenant_analytics",
    params(("tenant" = String, Path, description = "The tenant's name"), ReportQuery), security(("token" = [])),
    responses((status = 200, description = "The report (JSON), or one table of it (CSV)", 
            content((AnalyticsReport = "application/json"), (String = "text/csv"))),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: a parameter named with what is accepted", body = Problem, content_type = PROBLEM)))]
pub async fn tenant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, Scope::Tenant(&tenant), query).await
}
