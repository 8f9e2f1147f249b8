//! Rate limits at the HTTP edge (`[rate_limits]`; the counting is
//! [`agora_registry::ratelimit`]). Each request is put in a class (reads, searches, writes,
//! sign-in) and counted against its token, or, without one, against its client's address
//! (as [`crate::client`] decided it). Over the quota it gets `429 too-many-requests` with
//! `Retry-After`; every limited answer carries `RateLimit-Policy` and `RateLimit`.
//!
//! A made-up token would get a fresh quota of its own, so every `401` to a request that
//! carried credentials is also counted against its address as a sign-in attempt, and an
//! address out of sign-in attempts is refused before its credentials are looked at.

use std::net::IpAddr;

use agora_core::ProblemKind;
use agora_core::ratelimit::{self, Decision, RouteClass, Subject};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use crate::client::Client;
use crate::error::ApiError;
use crate::state::AppState;

/// Stands for a client whose address is not known (routers driven directly by tests).
const UNKNOWN: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// The bearer token a request carries, if any (the API's `Authorization: Bearer`, and the
/// OCI endpoints' `Basic` whose password is a token).
fn credential(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    let rest = rest.trim_ascii();
    (!rest.is_empty()
        && (scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"basic")))
    .then_some(rest)
}

/// A short digest of a credential: enough to tell tokens apart, useless to anyone who
/// reads the counters.
fn token_subject(credential: &[u8]) -> Subject {
    Subject::Token(hex::encode(&Sha256::digest(credential)[..8]))
}

fn set_headers(response: &mut Response, class: RouteClass, decision: &Decision, window: u64) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ratelimit::policy_header(class, decision.limit, window)) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ratelimit::limit_header(class, decision)) {
        headers.insert("ratelimit", v);
    }
}

fn too_many(class: RouteClass, decision: &Decision, window: u64) -> Response {
    metrics::counter!("agora_rate_limited_total", "class" => class.as_str()).increment(1);
    let what = match class {
        RouteClass::Read => "reads",
        RouteClass::Search => "searches",
        RouteClass::Write => "changes",
        RouteClass::SignIn => "sign-in attempts (or requests with wrong credentials)",
    };
    let mut response = ApiError::of(
        ProblemKind::TooManyRequests,
        format!(
            "too many {what}: at most {} per {window} s from one token or address; try again in {} s",
            decision.limit, decision.reset_secs
        ),
    )
    .into_response();
    set_headers(&mut response, class, decision, window);
    if let Ok(v) = HeaderValue::from_str(&decision.reset_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    crate::headers::add_security_headers(&mut response);
    response
}

/// The middleware; outermost but for [`crate::client::resolve`], which must run first.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiter = state.registry.rate_limits.clone();
    if !limiter.settings().enabled {
        return next.run(request).await;
    }
    let uri = request.uri();
    let Some(class) = RouteClass::of(request.method().as_str(), uri.path(), uri.query().is_some())
    else {
        return next.run(request).await;
    };
    let window = limiter.settings().quotas.window_secs();
    let address = Subject::address(
        request
            .extensions()
            .get::<Client>()
            .and_then(|c| c.addr)
            .unwrap_or(UNKNOWN),
    );
    let token = credential(&request).map(token_subject);
    if token.is_some()
        && let Some(refused) = limiter.exhausted(RouteClass::SignIn, &address)
    {
        return too_many(RouteClass::SignIn, &refused, window);
    }
    let subject = token.as_ref().unwrap_or(&address);
    let Some(decision) = limiter.check(class, subject) else {
        return next.run(request).await;
    };
    if !decision.allowed {
        return too_many(class, &decision, window);
    }
    let mut response = next.run(request).await;
    if token.is_some() && response.status() == StatusCode::UNAUTHORIZED {
        limiter.charge(RouteClass::SignIn, &address);
    }
    set_headers(&mut response, class, &decision, window);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(authorization: Option<&str>) -> Request {
        let mut r = Request::builder().uri("/api/v1/plugins");
        if let Some(a) = authorization {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    }

    #[test]
    fn credentials_are_bearer_or_basic_tokens() {
        assert_eq!(
            credential(&request(Some("Bearer agora_abc"))),
            Some(&b"agora_abc"[..])
        );
        assert_eq!(
            credential(&request(Some("basic dXNlcjp0b2tlbg=="))).map(<[u8]>::len),
            Some(16)
        );
        assert_eq!(credential(&request(Some("Bearer "))), None);
        assert_eq!(credential(&request(Some("Digest x"))), None);
        assert_eq!(credential(&request(None)), None);
        let a = token_subject(b"agora_abc");
        assert_ne!(a, token_subject(b"agora_abd"));
        assert!(!format!("{a:?}").contains("agora_abc"));
    }
}
