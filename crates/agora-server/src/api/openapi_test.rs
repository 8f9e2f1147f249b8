//! The answers that come from outside the handlers (extractors, layers, a private
//! registry) are the ones the OpenAPI document lists: each request here goes through
//! `TestApp`, which checks every answer against the document (`testing::check_documented`).

use agora_core::Digest;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::api::testing::{Answer, TestApp, check_documented};

fn problem(answer: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{answer:?}"
    );
    assert_eq!(
        answer.body["type"],
        format!("urn:agora:problem:{kind}"),
        "{answer:?}"
    );
}

fn post(path: &str, token: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn the_served_document_is_the_complete_one() {
    let app = TestApp::new().await;
    let served = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.content_type, "application/json");
    assert_eq!(served.body, serde_json::to_value(super::openapi()).unwrap());
    assert!(served.body["components"]["responses"]["Unauthorized"].is_object());
}

#[tokio::test]
async fn bad_json_bodies_answer_the_documented_problems() {
    let app = TestApp::new().await;
    let path = "/api/v1/publishers";
    let not_json = app
        .send(post(path, &app.admin, "text/plain", r#"{"name":"acme"}"#))
        .await;
    problem(
        &not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid-body",
    );
    let broken = app
        .send(post(path, &app.admin, "application/json", "{"))
        .await;
    problem(&broken, StatusCode::BAD_REQUEST, "invalid-body");
    let huge = format!(r#"{{"name":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let too_large = app
        .send(post(path, &app.admin, "application/json", huge))
        .await;
    problem(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "invalid-body");
    let wrong_shape = app
        .send(post(path, &app.admin, "application/json", r#"{"name":7}"#))
        .await;
    problem(
        &wrong_shape,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    );
}

#[tokio::test]
async fn bad_paths_and_queries_answer_the_documented_problems() {
    let app = TestApp::new().await;
    let unreadable = app.get("/api/v1/plugins?limit=many", None).await;
    problem(&unreadable, StatusCode::BAD_REQUEST, "invalid-query");
    let unknown = app.get("/api/v1/log/entries?colour=red", None).await;
    problem(&unknown, StatusCode::BAD_REQUEST, "invalid-query");
    let missing = app.get("/api/v1/log/proof/inclusion", None).await;
    problem(&missing, StatusCode::BAD_REQUEST, "invalid-query");
    let past_the_end = app.get("/api/v1/log/proof/inclusion?index=99", None).await;
    problem(
        &past_the_end,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    );
    let bad_encoding = app.get("/api/v1/plugins/acme/%FF", None).await;
    problem(&bad_encoding, StatusCode::BAD_REQUEST, "invalid-path");
    let bad_name = app.get("/api/v1/publishers/Not_A_Name", None).await;
    problem(
        &bad_name,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    );
    let control = app.get("/health?x=%01", None).await;
    problem(
        &control,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    );
    let bad_digest = app.get("/api/v1/blobs/md5:abc", None).await;
    problem(
        &bad_digest,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    );
}

#[tokio::test]
async fn tokens_are_refused_as_documented() {
    let app = TestApp::new().await;
    let unknown_token = "agora_0000000000000000000000000000000000000000";
    let refused = app.get("/api/v1/plugins", Some(unknown_token)).await;
    problem(&refused, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(refused.headers.contains_key(header::WWW_AUTHENTICATE));
    let anonymous = app.get("/api/v1/me", None).await;
    problem(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");

    let private = TestApp::private().await;
    for path in [
        "/api/v1/log/key",
        "/api/v1/log/checkpoint",
        "/api/v1/schema/manifest.json",
        "/api/v1/publishers",
    ] {
        let closed = private.get(path, None).await;
        problem(&closed, StatusCode::UNAUTHORIZED, "unauthorized");
        let open = private.get(path, Some(&private.admin)).await;
        assert_eq!(open.status, StatusCode::OK, "{open:?}");
    }
    assert_eq!(private.get("/ready", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_blob_answers_head_as_documented() {
    let app = TestApp::new().await;
    app.publisher(&app.admin, "acme").await;
    let bytes = b"unreleased bytes".to_vec();
    let digest = Digest::of(&bytes);
    let path = format!("/api/v1/blobs/{digest}");
    let uploaded = app
        .send(
            Request::put(&path)
                .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
                .body(Body::from(bytes.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{uploaded:?}");
    let head = |token: Option<String>| {
        let mut request = Request::head(&path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        app.send(request.body(Body::empty()).unwrap())
    };
    let by_uploader = head(Some(app.admin.clone())).await;
    assert_eq!(by_uploader.status, StatusCode::OK, "{by_uploader:?}");
    assert_eq!(
        by_uploader.headers[header::CONTENT_LENGTH],
        bytes.len().to_string()
    );
    assert_eq!(by_uploader.body, json!(null));
    let by_anyone = head(None).await;
    assert_eq!(by_anyone.status, StatusCode::NOT_FOUND, "{by_anyone:?}");
    let get = app.call(Method::GET, &path, Some(&app.admin), None).await;
    problem(&get, StatusCode::NOT_FOUND, "not-found");
}

/// An answer as `TestApp` would see it.
fn answer(status: StatusCode, content_type: &str, body: serde_json::Value) -> Answer {
    Answer {
        status,
        headers: Default::default(),
        content_type: content_type.into(),
        body,
    }
}

#[test]
#[should_panic(expected = "does not list")]
fn an_undocumented_status_is_caught() {
    let teapot = answer(
        StatusCode::IM_A_TEAPOT,
        "application/problem+json",
        json!({}),
    );
    check_documented(&Method::GET, "/api/v1/publishers/acme", &teapot);
}

#[test]
#[should_panic(expected = "the OpenAPI document lists")]
fn an_undocumented_content_type_is_caught() {
    let html = answer(StatusCode::NOT_FOUND, "text/html", json!("<p>no</p>"));
    check_documented(&Method::GET, "/api/v1/publishers/acme", &html);
}

#[test]
#[should_panic(expected = "schema refuses")]
fn a_body_unlike_its_schema_is_caught() {
    let wrong = answer(StatusCode::OK, "application/json", json!({ "name": 5 }));
    check_documented(&Method::GET, "/api/v1/publishers/acme", &wrong);
}

#[test]
fn a_documented_answer_passes_and_undocumented_paths_are_left_alone() {
    let missing = answer(
        StatusCode::NOT_FOUND,
        "application/problem+json",
        json!({ "type": "urn:agora:problem:not-found", "title": "Not found", "status": 404 }),
    );
    check_documented(&Method::GET, "/api/v1/publishers/acme", &missing);
    check_documented(&Method::GET, "/api/v1/nothing/here", &missing);
}
