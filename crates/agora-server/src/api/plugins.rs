//! The catalog: search and plugin details (`agora_registry::catalog`), and plugin settings
//! (`agora_registry::lifecycle::set_visibility`).

use agora_core::api::{PluginDetail, PluginSettings, SearchPage, SearchParams};
use agora_registry::catalog;
use agora_registry::time::rfc3339;
use axum::Json;
use axum::extract::State;

use super::convert;
use crate::AppState;
use crate::auth::{Authenticated, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PluginPath};

/// Search the catalog.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", params(SearchParams), responses(
    (status = 200, body = SearchPage),
    (status = 400, description = "A parameter is invalid", body = agora_core::api::Problem)
))]
pub async fn search(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    let query =
        catalog::search_query(params, caller.viewer(), state.registry.limits.max_page_size)?;
    let result = catalog::search(&state.registry, &query).await?;
    Ok(Json(SearchPage {
        items: result
            .plugins
            .into_iter()
            .map(convert::plugin_summary)
            .collect(),
        next_cursor: result.next.as_ref().map(catalog::cursor::encode),
    }))
}

/// A plugin with its latest version and version history.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}", tag = "plugins",
    params(("publisher" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = PluginDetail), (status = 404, body = agora_core::api::Problem)))]
pub async fn detail(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: PluginPath,
) -> Result<Json<PluginDetail>, ApiError> {
    plugin_detail(&state, &caller, &path).await.map(Json)
}

async fn plugin_detail(
    state: &AppState,
    caller: &MaybeCaller,
    path: &PluginPath,
) -> Result<PluginDetail, ApiError> {
    let (plugin, versions, latest) = catalog::plugin(
        &state.registry,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let latest = match latest {
        Some((v, artifacts)) => Some(convert::version_detail(&plugin, v, artifacts)?),
        None => None,
    };
    let created_at = rfc3339(plugin.created_at);
    Ok(PluginDetail {
        versions: versions.iter().map(convert::version_summary).collect(),
        summary: convert::plugin_summary(plugin),
        created_at,
        latest,
    })
}

/// Change plugin-level settings (visibility). Publisher members only.
#[utoipa::path(patch, path = "/api/v1/plugins/{publisher}/{name}", tag = "plugins",
    params(("publisher" = String, Path), ("name" = String, Path)), request_body = PluginSettings,
    security(("token" = [])),
    responses((status = 200, body = PluginDetail), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    path: PluginPath,
    ApiJson(settings): ApiJson<PluginSettings>,
) -> Result<Json<PluginDetail>, ApiError> {
    let plugin = agora_registry::lifecycle::set_visibility(
        &state.registry,
        &caller,
        path.publisher.as_str(),
        path.name.as_str(),
        settings.visibility,
    )
    .await?;
    state.cache.invalidate(&crate::cache::plugin_prefix(
        &plugin.publisher,
        &plugin.name,
    ));
    plugin_detail(&state, &MaybeCaller(Some(caller)), &path)
        .await
        .map(Json)
}
