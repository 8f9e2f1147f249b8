//! Ratings and reviews: adapters over `agora_registry::reviews`.

use agora_core::api::{HideReview, Review, ReviewInput, ReviewList};
use agora_registry::reviews;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::convert;
use crate::AppState;
use crate::auth::{Authenticated, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, PluginPath};

/// A plugin's reviews, newest first. Administrators also see hidden ones.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/reviews", tag = "reviews",
    params(("publisher" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ReviewList), (status = 404, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: PluginPath,
) -> Result<Json<ReviewList>, ApiError> {
    let (plugin, items) = reviews::list(
        &state.registry,
        caller.0.as_ref(),
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
#[utoipa::path(put, path = "/api/v1/plugins/{publisher}/{name}/reviews/mine", tag = "reviews",
    params(("publisher" = String, Path), ("name" = String, Path)), request_body = ReviewInput,
    security(("token" = [])),
    responses((status = 200, body = Review), (status = 400, body = agora_core::api::Problem),
        (status = 401, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
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
#[utoipa::path(post, path = "/api/v1/reviews/{id}/hide", tag = "reviews",
    params(("id" = i64, Path)), request_body = HideReview, security(("token" = [])),
    responses((status = 204), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn hide(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<HideReview>,
) -> Result<StatusCode, ApiError> {
    reviews::hide(&state.registry, &caller, id, Some(&input.reason)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Show a hidden review again (administrators).
#[utoipa::path(delete, path = "/api/v1/reviews/{id}/hide", tag = "reviews",
    params(("id" = i64, Path)), security(("token" = [])),
    responses((status = 204), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn show(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    reviews::hide(&state.registry, &caller, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
