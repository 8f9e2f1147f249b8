//! The one HTTP error type: every failure leaves as an RFC 9457 problem details document
//! with a stable `type` URI, never a stack trace.

use agora_core::api::Problem;
use agora_core::manifest::FieldError;
use agora_store::{BlobError, StoreError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Prefix of every problem `type`; the suffix names the kind (e.g. `not-found`).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:agora:problem:";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    /// Extra headers, e.g. `WWW-Authenticate` or `Content-Range`.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            title,
            detail: Some(detail.into()),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, kind, "Bad request", detail)
    }

    /// One or more fields of the request are wrong; each is named.
    pub fn invalid(title: &'static str, errors: Vec<FieldError>) -> ApiError {
        let detail = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "invalid-request",
            title,
            detail: Some(detail),
            errors,
            headers: Vec::new(),
        }
    }

    pub fn field(field: &str, problem: impl Into<String>, expected: Option<&str>) -> ApiError {
        ApiError::invalid(
            "Invalid request",
            vec![FieldError::new(field, problem, expected)],
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"agora\""),
        ));
        e
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            format!("{context}; the server log has details"),
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_TYPE_PREFIX}{}", self.kind),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(detail) => ApiError::conflict(detail),
            StoreError::InvalidText => ApiError::field(
                "",
                "the request holds a character that cannot be stored",
                Some("text without control characters"),
            ),
            other => ApiError::internal("the metadata store failed", other),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::DigestMismatch { .. } => {
                ApiError::bad_request("digest-mismatch", format!("{err}; nothing was stored"))
            }
            BlobError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Content too large",
                format!("{err}; nothing was stored"),
            ),
            BlobError::SizeMismatch { .. } => {
                ApiError::bad_request("size-mismatch", err.to_string())
            }
            BlobError::Interrupted(_) => ApiError::bad_request(
                "upload-interrupted",
                format!("{err}; nothing was stored, upload again"),
            ),
            BlobError::RangeNotSatisfiable { size } => {
                let mut e = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range-not-satisfiable",
                    "Range not satisfiable",
                    err.to_string(),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    e.headers.push((header::CONTENT_RANGE, v));
                }
                e
            }
            other => ApiError::internal("the blob store failed", other),
        }
    }
}

/// Turns a panic in a handler into a logged 500 problem document instead of a dropped
/// connection.
pub async fn catch_panics(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            ApiError::internal("the request failed unexpectedly", what).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_problem_document() {
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(axum::middleware::from_fn(catch_panics));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("urn:agora:problem:internal") && !text.contains("handler bug"),
            "{text}"
        );
    }
}
