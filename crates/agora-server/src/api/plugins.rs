//! The catalog: search and plugin details (`agora_registry::catalog`), and plugin settings
//! (`agora_registry::lifecycle::set_visibility`).

use agora_core::api::{PluginDetail, PluginSettings, Problem, SearchPage, SearchParams};
use agora_registry::catalog;
use agora_registry::time::rfc3339;
use axum::Json;
use axum::extract::State;

use super::convert;
use super::openapi::PROBLEM;
use crate::auth::{Authenticated, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PluginPath};
use crate::state::AppState;

/// Search the catalog.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", operation_id = "search_plugins", params(SearchParams), responses(
    (status = 200, description = "A page of results; `next_cursor` is absent on the last page", body = SearchPage),
    (status = 422, description = "`invalid-request`: a parameter's value is invalid (`errors` names it with what would be accepted), or a control character is in the path or query", body = Problem, content_type = PROBLEM)
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
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}", tag = "plugins", operation_id = "get_plugin",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The plugin", body = PluginDetail),
        (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
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
#[utoipa::path(patch, path = "/api/v1/plugins/{publisher}/{name}", tag = "plugins", operation_id = "update_plugin",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name")),
    request_body = PluginSettings, security(("token" = [])),
    responses((status = 200, description = "The plugin with its new settings", body = PluginDetail),
        (status = 403, description = "`forbidden`: not a member of the publisher with `publish:P` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
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
    plugin_detail(&state, &MaybeCaller::user(caller), &path)
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn search_answers_summaries_and_refuses_bad_parameters_by_name() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        for (name, version) in [("hello", "1.0.0"), ("world", "0.2.0")] {
            let published = app.publish(&app.admin, &key, "acme", name, version).await;
            assert_eq!(published.status, StatusCode::CREATED, "{published:?}");
        }

        let all = app.get("/api/v1/plugins?sort=name", None).await;
        insta::assert_json_snapshot!("search", all.snapshot());

        let bad = app
            .get("/api/v1/plugins?limit=100000&sort=best", None)
            .await;
        assert_eq!(bad.content_type, "application/problem+json");
        insta::assert_json_snapshot!("search_bad_parameters", bad.snapshot());

        let unknown = app.get("/api/v1/plugins?colour=red", None).await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{unknown:?}");
    }

    #[tokio::test]
    async fn detail_shows_the_latest_version_and_private_plugins_only_to_members() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        app.publish(&app.admin, &key, "acme", "hello", "1.1.0")
            .await;

        let detail = app.get("/api/v1/plugins/acme/hello", None).await;
        insta::assert_json_snapshot!("detail", detail.snapshot());

        let private = app
            .call(
                Method::PATCH,
                "/api/v1/plugins/acme/hello",
                Some(&app.admin),
                Some(json!({ "visibility": "private" })),
            )
            .await;
        assert_eq!(private.status, StatusCode::OK, "{private:?}");
        assert_eq!(private.body["visibility"], "private");

        let outsider = app.user("mallory", Role::User, "review").await;
        for token in [None, Some(outsider.as_str())] {
            let hidden = app.get("/api/v1/plugins/acme/hello", token).await;
            assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{hidden:?}");
            let search = app.get("/api/v1/plugins", token).await;
            assert_eq!(search.body["items"], json!([]));
        }
        let seen = app
            .get("/api/v1/plugins/acme/hello", Some(&app.admin))
            .await;
        assert_eq!(seen.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn only_members_change_a_plugins_settings() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        let outsider = app.user("mallory", Role::Publisher, "publish:*").await;
        let refused = app
            .call(
                Method::PATCH,
                "/api/v1/plugins/acme/hello",
                Some(&outsider),
                Some(json!({ "visibility": "private" })),
            )
            .await;
        insta::assert_json_snapshot!("update_by_outsider", refused.snapshot());
        let anonymous = app
            .call(
                Method::PATCH,
                "/api/v1/plugins/acme/hello",
                None,
                Some(json!({ "visibility": "private" })),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
}
