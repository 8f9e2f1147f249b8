//! Every kind of answer the API gives carries the security headers: JSON, problems (404,
//! 401, 405), blob bytes, `/metrics`, the probes and `/v2/`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::testing::TestApp;
use crate::headers::API_CSP;

#[tokio::test]
async fn every_kind_of_answer_carries_the_security_headers() {
    let app = TestApp::new().await;
    let key = app.publisher(&app.admin, "acme").await;
    let published = app.publish(&app.admin, &key, "acme", "tool", "1.0.0").await;
    assert_eq!(published.status, StatusCode::CREATED, "{published:?}");
    let manifest = published.body["manifest_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut answers = Vec::new();
    for (path, token) in [
        ("/api/v1/plugins?q=tool", None),
        ("/api/v1/plugins/acme/tool", None),
        (&*format!("/api/v1/blobs/{manifest}"), None),
        ("/api/v1/nothing-here", None),
        ("/api/v1/tokens", None),
        ("/api/v1/openapi.json", None),
        ("/metrics", None),
        ("/health", None),
        ("/v2/", Some(app.admin.as_str())),
        ("/v2/acme/tool/tags/list", Some(app.admin.as_str())),
    ] {
        answers.push((path.to_owned(), app.get(path, token).await));
    }
    let wrong_method = app
        .send(
            Request::delete("/api/v1/plugins")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    answers.push(("DELETE /api/v1/plugins".to_owned(), wrong_method));
    let statuses: Vec<u16> = answers.iter().map(|(_, a)| a.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 404, 401, 200, 200, 200, 200, 200, 405],
        "{answers:#?}"
    );
    for (what, answer) in &answers {
        let h = |name| answer.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(h(header::CONTENT_SECURITY_POLICY), Some(API_CSP), "{what}");
        assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"), "{what}");
        assert_eq!(h(header::X_FRAME_OPTIONS), Some("DENY"), "{what}");
        assert_eq!(h(header::REFERRER_POLICY), Some("no-referrer"), "{what}");
    }
}
