//! The review queue of release verifications (administrators only).

use agora_core::api::Problem;
use agora_core::verification::ReviewQueuePage;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// The outcome of the releases' newest run: `needs-review` (default), `rejected` or
    /// `verified`.
    outcome: Option<String>,
    /// `next_cursor` of the previous page (with the same outcome).
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// The review queue: releases whose newest verification run has the outcome asked for,
/// newest run first, each with its findings and their counts by severity. Decide on one
/// with `POST .../versions/{version}/verification/review`.
#[utoipa::path(get, path = "/api/v1/verifications", tag = "versions", operation_id = "list_verification_queue", params(QueueParams), security(("token" = [])),
    responses((status = 200, description = "A page of the queue, newest run first", body = ReviewQueuePage),
        (status = 403, description = "`forbidden`: not an administrator with a token holding `admin`", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`invalid-request`: an unknown outcome, a limit out of range or a cursor this server did not issue", body = Problem, content_type = PROBLEM)))]
pub async fn queue(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(params): ApiQuery<QueueParams>,
) -> Result<Json<ReviewQueuePage>, ApiError> {
    let page = agora_registry::review_queue::queue(
        &state.registry,
        &caller,
        agora_registry::review_queue::QueueParams {
            outcome: params.outcome,
            cursor: params.cursor,
            limit: params.limit,
        },
    )
    .await?;
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use agora_core::verification::{Finding, Outcome, Severity, StageReport, VerificationReport};
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    /// Records a run of `publisher/name@version` with one finding per severity given.
    async fn run(app: &TestApp, release: (&str, &str, &str), outcome: Outcome, found: &[Severity]) {
        let (publisher, name, version) = release;
        let plugin = app.meta().plugin(publisher, name).await.unwrap().unwrap();
        let v = app
            .meta()
            .version(plugin.id, version)
            .await
            .unwrap()
            .unwrap();
        let findings = found
            .iter()
            .map(|s| Finding {
                severity: *s,
                rule: format!("test.{}", s.as_str()),
                message: format!("a {} <finding>", s.as_str()),
                location: Some("plugin.wasm".into()),
            })
            .collect();
        let report = VerificationReport {
            release: format!("{publisher}/{name}@{version}"),
            outcome,
            checked_at: "2026-01-01T00:00:00.000Z".into(),
            stages: vec![StageReport::of("manifest", 1, findings)],
        };
        app.meta()
            .record_verification(
                v.id,
                outcome.as_str(),
                &serde_json::to_string(&report).unwrap(),
                1,
                None,
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_queue_lists_releases_by_their_newest_run_to_administrators_only() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        for (name, version) in [("hello", "1.0.0"), ("jira", "1.0.0"), ("slack", "2.0.0")] {
            app.publish(&app.admin, &key, "acme", name, version).await;
        }
        use Severity::*;
        run(
            &app,
            ("acme", "hello", "1.0.0"),
            Outcome::NeedsReview,
            &[Medium, Low],
        )
        .await;
        run(
            &app,
            ("acme", "jira", "1.0.0"),
            Outcome::NeedsReview,
            &[High],
        )
        .await;
        run(
            &app,
            ("acme", "slack", "2.0.0"),
            Outcome::Rejected,
            &[Critical],
        )
        .await;
        // A newer run decides jira: it leaves the needs-review queue.
        run(&app, ("acme", "jira", "1.0.0"), Outcome::Verified, &[]).await;

        let queue = app.get("/api/v1/verifications", Some(&app.admin)).await;
        assert_eq!(queue.status, StatusCode::OK, "{queue:?}");
        insta::assert_json_snapshot!("needs_review", queue.snapshot());

        let rejected = app
            .get("/api/v1/verifications?outcome=rejected", Some(&app.admin))
            .await;
        assert_eq!(rejected.body["items"][0]["release"], "acme/slack@2.0.0");
        assert_eq!(rejected.body["items"][0]["counts"]["critical"], 1);

        // Paged: one at a time, newest first, each once.
        run(
            &app,
            ("acme", "slack", "2.0.0"),
            Outcome::NeedsReview,
            &[Medium],
        )
        .await;
        let mut seen = Vec::new();
        let mut path = "/api/v1/verifications?limit=1".to_owned();
        loop {
            let page = app.get(&path, Some(&app.admin)).await;
            assert_eq!(page.status, StatusCode::OK, "{page:?}");
            for item in page.body["items"].as_array().unwrap() {
                seen.push(item["release"].as_str().unwrap().to_owned());
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/verifications?limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, ["acme/slack@2.0.0", "acme/hello@1.0.0"]);

        // The decision through the review endpoint takes the release out of the queue.
        let decided = app
            .call(
                Method::POST,
                "/api/v1/plugins/acme/hello/versions/1.0.0/verification/review",
                Some(&app.admin),
                Some(json!({"outcome": "verified", "reason": "checked by hand"})),
            )
            .await;
        assert_eq!(decided.status, StatusCode::OK, "{decided:?}");
        let queue = app.get("/api/v1/verifications", Some(&app.admin)).await;
        assert_eq!(queue.body["items"].as_array().map(Vec::len), Some(1));

        // Refused: not an administrator; an administrator's token without `admin`.
        let user = app.user("gina", Role::Publisher, "publish:*").await;
        let refused = app.get("/api/v1/verifications", Some(&user)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        let weak_admin = app.user("root2", Role::Admin, "review").await;
        let refused = app.get("/api/v1/verifications", Some(&weak_admin)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        let anonymous = app.get("/api/v1/verifications", None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{anonymous:?}");

        // Bad input, by field.
        for (query, field) in [
            ("outcome=maybe", "outcome"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("cursor=zz", "cursor"),
        ] {
            let bad = app
                .get(&format!("/api/v1/verifications?{query}"), Some(&app.admin))
                .await;
            assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
            assert_eq!(bad.body["errors"][0]["field"], field, "{bad:?}");
        }
        let unknown = app
            .get("/api/v1/verifications?state=open", Some(&app.admin))
            .await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{unknown:?}");
    }

    #[tokio::test]
    async fn search_shows_and_filters_verified_releases() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        app.publish(&app.admin, &key, "acme", "jira", "1.0.0").await;
        run(&app, ("acme", "hello", "1.0.0"), Outcome::Verified, &[]).await;
        run(
            &app,
            ("acme", "jira", "1.0.0"),
            Outcome::NeedsReview,
            &[Severity::Medium],
        )
        .await;
        let all = app.get("/api/v1/plugins?sort=name", None).await;
        let marks: Vec<_> = all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["verified_release"].as_bool()))
            .collect();
        assert_eq!(marks, [("hello", Some(true)), ("jira", Some(false))]);
        let only = app.get("/api/v1/plugins?verified_release=true", None).await;
        assert_eq!(only.status, StatusCode::OK, "{only:?}");
        assert_eq!(only.body["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(only.body["items"][0]["name"], "hello");
        let bad = app
            .get("/api/v1/plugins?verified_release=maybe", None)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(bad.body["type"], "urn:agora:problem:invalid-query");
    }
}
