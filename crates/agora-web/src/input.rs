//! The one text rule at the pages' door: a path, query parameter or form field with a
//! control character is refused with a 422 page naming it, before any handler runs (the
//! rule itself is `agora_core::text`; the API applies the same rule to JSON).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::PageError;

/// Largest form body the pages accept (the same bound as the router's body limit).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub async fn reject_control_characters(request: Request, next: Next) -> Response {
    if let Some(problem) = agora_server::text::uri_problem(request.uri()) {
        return PageError::Unprocessable(problem.to_string()).into_response();
    }
    let is_form = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return PageError::BadInput(format!("the form is larger than {MAX_FORM_BYTES} bytes"))
            .into_response();
    };
    if let Some(problem) = agora_server::text::form_problem(&bytes) {
        return PageError::Unprocessable(problem.to_string()).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
