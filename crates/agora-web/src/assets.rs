//! The stylesheet and the one script, compiled into the binary and served with a
//! content hash in their URL so browsers may keep them for a year.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

/// `/static/app.<hash>.css` and `/static/app.<hash>.js`: the hash changes with the file.
pub(crate) static CSS_PATH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("/static/app.{}.css", short_hash(CSS)));
pub(crate) static JS_PATH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("/static/app.{}.js", short_hash(JS)));

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("/static/{file}");
    let (body, kind) = if path == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == *JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}
