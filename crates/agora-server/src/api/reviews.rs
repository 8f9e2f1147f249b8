//! Ratings and reviews: adapters over `agora_registry::reviews`.

use agora_core::api::{HideReview, Problem, Review, ReviewInput, ReviewList};
use agora_registry::reviews;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::convert;
use super::openapi::PROBLEM;
use crate::auth::{Authenticated, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, IdPath, PluginPath};
use crate::state::AppState;

/// A plugin's reviews, newest first. Administrators also see hidden ones.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/reviews", tag = "reviews", operation_id = "list_reviews",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The rating and the newest reviews", body = ReviewList),
        (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: PluginPath,
) -> Result<Json<ReviewList>, ApiError> {
    let (plugin, items) = reviews::list(
        &state.registry,
        caller.caller.as_ref(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    Ok(Json(ReviewList {
        rating: plugin.rating(),
        rating_count: plugin.rating_count.max(0) as u64,
        items: items.into_iter().map(convert::review).collect(),
    }))
}

/// Write or replace the caller's review of a plugin (a token needs the `review` scope).
#[utoipa::path(put, path = "/api/v1/plugins/{publisher}/{name}/reviews/mine", tag = "reviews", operation_id = "write_my_review",
    params(("publisher" = String, Path, description = "The publisher's name"), ("name" = String, Path, description = "The plugin's name")), request_body = ReviewInput,
    security(("token" = [])),
    responses((status = 200, description = "The review as stored", body = Review),
        (status = 403, description = "`forbidden`: the token lacks the `review` scope", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
pub async fn write_mine(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    path: PluginPath,
    ApiJson(input): ApiJson<ReviewInput>,
) -> Result<Json<Review>, ApiError> {
    let review = reviews::write(
        &state.registry,
        &caller,
        path.publisher.as_str(),
        path.name.as_str(),
        input,
    )
    .await?;
    Ok(Json(convert::review(review)))
}

/// Hide an abusive review (administrators), with a reason kept in the audit log.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/hide", tag = "reviews", operation_id = "hide_review",
    params(("id" = i64, Path, description = "The review's `id`")), request_body = HideReview, security(("token" = [])),
    responses((status = 204, description = "Hidden"),
        (status = 403, description = "`forbidden`: not an administrator", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such review", body = Problem, content_type = PROBLEM)))]
pub async fn hide(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<HideReview>,
) -> Result<StatusCode, ApiError> {
    reviews::hide(&state.registry, &caller, id, Some(&input.reason)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Show a hidden review again (administrators).
#[utoipa::path(delete, path = "/api/v1/reviews/{id}/hide", tag = "reviews", operation_id = "show_review",
    params(("id" = i64, Path, description = "The review's `id`")), security(("token" = [])),
    responses((status = 204, description = "Shown again"),
        (status = 403, description = "`forbidden`: not an administrator", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such review", body = Problem, content_type = PROBLEM)))]
pub async fn show(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    reviews::hide(&state.registry, &caller, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn reviews_are_written_listed_and_hidden_by_a_reviewer() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        let carol = app.user("carol", Role::User, "review").await;
        let path = "/api/v1/plugins/acme/hello/reviews/mine";

        let written = app
            .call(
                Method::PUT,
                path,
                Some(&carol),
                Some(json!({ "rating": 4, "body": "Does what it says." })),
            )
            .await;
        insta::assert_json_snapshot!("write", written.snapshot());

        let out_of_range = app
            .call(
                Method::PUT,
                path,
                Some(&carol),
                Some(json!({ "rating": 9, "body": "" })),
            )
            .await;
        insta::assert_json_snapshot!("write_out_of_range", out_of_range.snapshot());

        let no_scope = app.user("dave", Role::User, "publish:*").await;
        let refused = app
            .call(
                Method::PUT,
                path,
                Some(&no_scope),
                Some(json!({ "rating": 1 })),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

        let list = app.get("/api/v1/plugins/acme/hello/reviews", None).await;
        insta::assert_json_snapshot!("list", list.snapshot());

        let id = written.body["id"].as_i64().unwrap();
        let by_author = app
            .call(
                Method::POST,
                &format!("/api/v1/reviews/{id}/hide"),
                Some(&carol),
                Some(json!({ "reason": "mine" })),
            )
            .await;
        assert_eq!(by_author.status, StatusCode::FORBIDDEN, "{by_author:?}");
        let hidden = app
            .call(
                Method::POST,
                &format!("/api/v1/reviews/{id}/hide"),
                Some(&app.admin),
                Some(json!({ "reason": "abuse" })),
            )
            .await;
        assert!(hidden.status.is_success(), "{hidden:?}");
        let after = app.get("/api/v1/plugins/acme/hello/reviews", None).await;
        assert_eq!(after.body["rating_count"], 0, "{after:?}");

        let bad_id = app
            .call(
                Method::DELETE,
                "/api/v1/reviews/abc/hide",
                Some(&app.admin),
                None,
            )
            .await;
        insta::assert_json_snapshot!("show_bad_id", bad_id.snapshot());
        assert_eq!(bad_id.content_type, "application/problem+json");
    }
}
