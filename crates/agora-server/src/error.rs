//! The one HTTP error type: every failure leaves as an RFC 9457 problem details document
//! whose `type` is one of the documented kinds (`agora_core::ProblemKind`), never a stack
//! trace. Use cases fail with `RegistryError`; this renders it, with the kind's status and
//! the headers some kinds need (`WWW-Authenticate`, `Content-Range`).

use agora_core::api::Problem;
use agora_core::problem::PROBLEM_TYPE_PREFIX;
use agora_core::{FieldError, ProblemKind};
use agora_registry::RegistryError;
use agora_store::{BlobError, StoreError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub problem: RegistryError,
}

impl ApiError {
    /// A problem of `kind`, answered with the kind's status.
    pub fn of(kind: ProblemKind, detail: impl Into<String>) -> ApiError {
        RegistryError::new(kind, detail).into()
    }

    /// A problem of `kind` answered with another status than the kind's own (e.g. the
    /// 415 of a body sent without a JSON content type).
    pub fn with_status(
        status: StatusCode,
        kind: ProblemKind,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            problem: RegistryError::new(kind, detail),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::of(ProblemKind::NotFound, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::of(ProblemKind::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::of(ProblemKind::Forbidden, detail)
    }

    pub fn invalid(title: &'static str, errors: Vec<FieldError>) -> ApiError {
        RegistryError::invalid(title, errors).into()
    }

    pub fn field(field: &str, problem: impl Into<String>, expected: Option<&str>) -> ApiError {
        RegistryError::field(field, problem, expected).into()
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        RegistryError::internal(context, err).into()
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_TYPE_PREFIX}{}", self.problem.kind),
            title: self.problem.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.problem.detail.clone(),
            errors: self.problem.errors.clone(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(problem: RegistryError) -> Self {
        ApiError {
            status: StatusCode::from_u16(problem.kind.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            problem,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        RegistryError::from(err).into()
    }
}

impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        RegistryError::from(err).into()
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
        match self.problem.kind {
            ProblemKind::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"agora\""),
                );
            }
            // A dependency down or full (or the server at its limit): worth trying again.
            ProblemKind::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ProblemKind::RangeNotSatisfiable => {
                if let Some(v) = self
                    .problem
                    .size
                    .and_then(|size| HeaderValue::from_str(&format!("bytes */{size}")).ok())
                {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        response
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

    #[test]
    fn a_full_blob_store_is_unavailable_with_retry_after_not_internal() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let response = ApiError::from(BlobError::Io(full)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let response = ApiError::from(BlobError::Io(other)).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
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
