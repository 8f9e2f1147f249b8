//! Cross-origin access: none by default; an allowed origin's preflight is answered (in a
//! private registry too, before any token) and its reads carry the headers; any other
//! origin gets none.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::testing::TestApp;
use crate::cors::Cors;

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri("/api/v1/plugins")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .body(Body::empty())
        .unwrap()
}

fn read(origin: &str) -> Request<Body> {
    Request::get("/api/v1/plugins")
        .header(header::ORIGIN, origin)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn no_origin_is_allowed_by_default() {
    let app = TestApp::new().await;
    let answer = app.send(read("https://evil.example")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        !answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn allowed_origins_get_preflights_and_headers_and_others_do_not() {
    let origins = vec!["https://app.example".to_owned()];
    let cors = Cors::new(&origins, &["GET".to_owned()], false, 600).unwrap();
    let app = TestApp::with_cors(cors).await;
    let answer = app.send(preflight("https://app.example")).await;
    assert!(answer.status.is_success(), "{answer:?}");
    let h = |name| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        h(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://app.example"
    );
    assert!(h(header::ACCESS_CONTROL_ALLOW_METHODS).contains("GET"));
    assert!(!h(header::ACCESS_CONTROL_ALLOW_METHODS).contains("DELETE"));
    assert!(h(header::ACCESS_CONTROL_ALLOW_HEADERS).contains("authorization"));
    assert_eq!(h(header::ACCESS_CONTROL_MAX_AGE), "600");
    assert!(
        !answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
    );

    let answer = app.send(read("https://app.example")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    for other in ["https://evil.example", "http://app.example"] {
        let answer = app.send(read(other)).await;
        assert!(
            !answer
                .headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{other}"
        );
    }
}
