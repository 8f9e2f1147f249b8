//! The security headers every answer of the API, `/v2/`, the probes and `/metrics`
//! carries (the web pages set their own, with the pages' Content-Security-Policy).
//!
//! Nothing the API serves is meant to run in a browser: JSON, problem documents and blob
//! bytes a publisher uploaded. So a browser is told not to guess a type (`nosniff`: a blob
//! is never sniffed into HTML), to run nothing and load nothing from an answer opened
//! directly (`Content-Security-Policy: default-src 'none'; sandbox`: an uploaded HTML or
//! SVG file served from the registry's origin can neither script nor read its cookies),
//! never to frame it, and to send no referrer onwards. A header a handler set itself is
//! kept.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The API's Content-Security-Policy: nothing loads, nothing runs, no framing.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, API_CSP),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(&mut response);
    response
}

/// Adds the headers a response does not set itself (for answers made outside the API's
/// router, such as a rate limit's `429`).
pub fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}
