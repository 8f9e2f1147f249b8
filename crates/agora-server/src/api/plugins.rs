//! The catalog: search and plugin details.

use agora_core::api::{PluginDetail, PluginSettings, SearchPage};
use agora_store::{PluginRecord, SearchQuery, SearchSort, Viewer};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::{convert, cursor};
use crate::AppState;
use crate::auth::{Caller, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PluginPath};
use crate::time::rfc3339;

const MAX_QUERY_CHARS: usize = 256;
const MAX_FILTER_CHARS: usize = 64;
const DEFAULT_PAGE_SIZE: u32 = 20;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words to look for in names, titles, descriptions, tags and categories (prefix match).
    pub q: Option<String>,
    pub tag: Option<String>,
    pub category: Option<String>,
    pub provider: Option<String>,
    pub capability: Option<String>,
    /// `wasm`, `exec` or `oci`.
    pub runtime: Option<String>,
    /// Only this publisher's plugins.
    pub publisher: Option<String>,
    /// `true`: only plugins of verified publishers.
    pub verified: Option<bool>,
    /// Only plugins whose average rating is at least this (1 to 5).
    pub min_rating: Option<u8>,
    /// Only plugins whose latest version runs on this host version (its `min_core`).
    pub compatible_with: Option<String>,
    /// `relevance` (default with `q`), `downloads` (default without), `recent`, `name` or `rating`.
    pub sort: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to the server's maximum (100 by default).
    pub limit: Option<u32>,
}

fn filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_FILTER_CHARS => Err(ApiError::field(
            field,
            format!("is {} characters long", v.chars().count()),
            Some("at most 64 characters"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

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
    let query = search_query(params, caller.viewer(), state.limits.max_page_size)?;
    let result = state.meta.search(&query).await?;
    Ok(Json(SearchPage {
        items: result
            .plugins
            .into_iter()
            .map(convert::plugin_summary)
            .collect(),
        next_cursor: result.next.as_ref().map(cursor::encode),
    }))
}

/// Checks search parameters and turns them into a query: the one place the API and the
/// web pages validate them, so both accept and refuse the same things.
pub fn search_query(
    params: SearchParams,
    viewer: Viewer,
    max: u32,
) -> Result<SearchQuery, ApiError> {
    if let Some(q) = &params.q
        && q.chars().count() > MAX_QUERY_CHARS
    {
        return Err(ApiError::field(
            "q",
            format!("is {} characters long", q.chars().count()),
            Some("at most 256 characters"),
        ));
    }
    let text = params.q.filter(|q| !q.trim().is_empty());
    let sort = match params.sort.as_deref() {
        None if text.is_some() => SearchSort::Relevance,
        None => SearchSort::Downloads,
        Some(s) => SearchSort::parse(s).ok_or_else(|| {
            ApiError::field(
                "sort",
                format!("unknown sort {:?}", crate::extract::truncate(s)),
                Some("relevance, downloads, recent, name or rating"),
            )
        })?,
    };
    // The order the store will really use, so the cursors it issues decode again.
    let sort = sort.for_text(text.as_deref());
    if let Some(runtime) = &params.runtime
        && !["wasm", "exec", "oci"].contains(&runtime.as_str())
    {
        return Err(ApiError::field(
            "runtime",
            format!("unknown runtime {:?}", crate::extract::truncate(runtime)),
            Some("wasm, exec or oci"),
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::field(
            "limit",
            format!("{limit} is out of range"),
            Some(&format!("1 to {max}")),
        ));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| cursor::decode(c, sort))
        .transpose()?;
    if let Some(r) = params.min_rating
        && !(1..=5).contains(&r)
    {
        return Err(ApiError::field(
            "min_rating",
            format!("{r} is out of range"),
            Some("1 to 5"),
        ));
    }
    let compatible_with = match filter("compatible_with", params.compatible_with)? {
        Some(v) => Some(semver::Version::parse(v.trim()).map_err(|_| {
            ApiError::field(
                "compatible_with",
                format!("{:?} is not a version", crate::extract::truncate(&v)),
                Some("a host version such as 2.4.0"),
            )
        })?),
        None => None,
    };
    Ok(SearchQuery {
        text,
        tag: filter("tag", params.tag)?,
        category: filter("category", params.category)?,
        provider: filter("provider", params.provider)?,
        capability: filter("capability", params.capability)?,
        runtime: filter("runtime", params.runtime)?,
        publisher: filter("publisher", params.publisher)?,
        verified: params.verified.unwrap_or(false),
        min_rating: params.min_rating.map(i64::from),
        compatible_with,
        sort,
        after,
        limit,
        viewer,
        max_matches: agora_store::MAX_TEXT_MATCHES,
    })
}

/// The plugin if it exists and the viewer may see it; otherwise the same 404 either way,
/// so private plugins cannot be discovered by probing names.
pub async fn visible_plugin(
    state: &AppState,
    viewer: &Viewer,
    publisher: &str,
    name: &str,
) -> Result<PluginRecord, ApiError> {
    state
        .meta
        .visible_plugin(publisher, name, viewer)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plugin {publisher}/{name} not found")))
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
    let plugin = visible_plugin(
        &state,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let versions = state.meta.versions(plugin.id).await?;
    let latest = match versions
        .iter()
        .find(|v| Some(&v.version) == plugin.latest_version.as_ref())
    {
        Some(v) => Some(convert::version_detail(
            &plugin,
            v.clone(),
            state.meta.artifacts(v.id).await?,
        )?),
        None => None,
    };
    let created_at = rfc3339(plugin.created_at);
    Ok(Json(PluginDetail {
        versions: versions.iter().map(convert::version_summary).collect(),
        summary: convert::plugin_summary(plugin),
        created_at,
        latest,
    }))
}

/// Change plugin-level settings (visibility). Publisher members only.
#[utoipa::path(patch, path = "/api/v1/plugins/{publisher}/{name}", tag = "plugins",
    params(("publisher" = String, Path), ("name" = String, Path)), request_body = PluginSettings,
    security(("token" = [])),
    responses((status = 200, body = PluginDetail), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: PluginPath,
    ApiJson(settings): ApiJson<PluginSettings>,
) -> Result<Json<PluginDetail>, ApiError> {
    let plugin = visible_plugin(
        &state,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let publisher = state
        .meta
        .publisher_by_name(&plugin.publisher)
        .await?
        .ok_or_else(|| ApiError::internal("a plugin's publisher is missing", &plugin.publisher))?;
    caller.require_publish(&publisher)?;
    let entry = crate::transparency::writer(agora_trust::LogEntry::Visibility {
        publisher: plugin.publisher.clone(),
        name: plugin.name.clone(),
        visibility: settings.visibility.as_str().to_owned(),
        at_ms: agora_store::now_ms(),
    });
    state
        .meta
        .set_visibility(
            plugin.id,
            settings.visibility,
            &caller.user.username,
            Some(entry),
        )
        .await?;
    state.cache.invalidate(&super::versions::cache_key(
        &plugin.publisher,
        &plugin.name,
        "",
    ));
    detail(State(state), MaybeCaller(Some(caller)), path).await
}
