//! Ratings and reviews: one per user per plugin, editable, tied to the version reviewed;
//! administrators hide abusive ones with a reason.

use agora_core::api::{HideReview, Review, ReviewInput, ReviewList};
use agora_store::{NewReview, PluginRecord, UserRecord};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::convert;
use super::plugins::visible_plugin;
use crate::AppState;
use crate::auth::{Caller, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, PluginPath};

/// Most reviews listed at once.
const MAX_REVIEWS: u32 = 200;
/// Longest reason for hiding a review.
const MAX_REASON_CHARS: usize = 500;

/// A plugin's reviews, newest first. Administrators also see hidden ones.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/reviews", tag = "reviews",
    params(("publisher" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ReviewList), (status = 404, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: PluginPath,
) -> Result<Json<ReviewList>, ApiError> {
    let viewer = caller.viewer();
    let plugin =
        visible_plugin(&state, &viewer, path.publisher.as_str(), path.name.as_str()).await?;
    let items = state
        .meta
        .reviews(plugin.id, viewer.admin, MAX_REVIEWS)
        .await?;
    Ok(Json(ReviewList {
        rating: plugin.rating(),
        rating_count: plugin.rating_count.max(0) as u64,
        items: items.into_iter().map(convert::review).collect(),
    }))
}

/// Write or replace the caller's review of a plugin.
#[utoipa::path(put, path = "/api/v1/plugins/{publisher}/{name}/reviews/mine", tag = "reviews",
    params(("publisher" = String, Path), ("name" = String, Path)), request_body = ReviewInput,
    security(("token" = [])),
    responses((status = 200, body = Review), (status = 400, body = agora_core::api::Problem),
        (status = 401, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn write_mine(
    State(state): State<AppState>,
    caller: Caller,
    path: PluginPath,
    ApiJson(input): ApiJson<ReviewInput>,
) -> Result<Json<Review>, ApiError> {
    caller.require_review()?;
    let plugin = visible_plugin(
        &state,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let review = write_review(&state, &plugin, &caller.user, input).await?;
    Ok(Json(convert::review(review)))
}

/// Checks a review and stores it: what the API and the web form share.
pub async fn write_review(
    state: &AppState,
    plugin: &PluginRecord,
    user: &UserRecord,
    input: ReviewInput,
) -> Result<agora_store::ReviewRecord, ApiError> {
    input
        .check()
        .map_err(|e| ApiError::field(&e.field, e.problem, e.expected.as_deref()))?;
    let version = match input.version.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => plugin.latest_version.clone().ok_or_else(|| {
            ApiError::field(
                "version",
                "the plugin has no installable version to review",
                Some("an existing version"),
            )
        })?,
    };
    match state.meta.version(plugin.id, &version).await? {
        Some(v) if v.state != agora_core::Lifecycle::Removed => {}
        _ => {
            return Err(ApiError::field(
                "version",
                format!(
                    "{}/{} has no version {:?}",
                    plugin.publisher,
                    plugin.name,
                    crate::extract::truncate(&version)
                ),
                Some("a published version of this plugin"),
            ));
        }
    }
    Ok(state
        .meta
        .upsert_review(NewReview {
            plugin_id: plugin.id,
            user_id: user.id,
            version,
            rating: i64::from(input.rating),
            body: input.body.trim().replace("\r\n", "\n"),
            actor: user.username.clone(),
        })
        .await?)
}

/// Hide an abusive review (administrators), with a reason kept in the audit log.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/hide", tag = "reviews",
    params(("id" = i64, Path)), request_body = HideReview, security(("token" = [])),
    responses((status = 204), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn hide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<HideReview>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    hide_review(&state, id, Some(&input.reason), &caller.user.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Show a hidden review again (administrators).
#[utoipa::path(delete, path = "/api/v1/reviews/{id}/hide", tag = "reviews",
    params(("id" = i64, Path)), security(("token" = [])),
    responses((status = 204), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    hide_review(&state, id, None, &caller.user.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hides (with a reason) or shows a review; the caller must have checked the right to.
pub async fn hide_review(
    state: &AppState,
    id: i64,
    reason: Option<&str>,
    actor: &str,
) -> Result<(), ApiError> {
    let reason = reason.map(str::trim);
    if let Some(r) = reason {
        let chars = r.chars().count();
        if chars == 0 || chars > MAX_REASON_CHARS {
            return Err(ApiError::field(
                "reason",
                if chars == 0 {
                    "is empty".to_owned()
                } else {
                    format!("is {chars} characters long")
                },
                Some("why the review is hidden, 1 to 500 characters"),
            ));
        }
    }
    if state.meta.hide_review(id, reason, actor).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("review {id} not found")))
    }
}
