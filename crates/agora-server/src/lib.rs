//! Agora's HTTP API: the REST API under `/api/v1` as thin adapters over the registry's use
//! cases (`agora-registry`), authentication at the door, health and readiness probes,
//! Prometheus metrics, the generated OpenAPI document, and the serve loop with its
//! connection limits, over plain HTTP or TLS.
//!
//! The server holds no state of its own beyond caches: everything lives in the stores the
//! registry is given, so any number of replicas can run behind a load balancer.

mod api;
mod auth;
mod body_rate;
mod cache;
pub mod client;
pub mod cors;
mod error;
mod extract;
pub mod headers;
pub mod listen;
mod metrics;
mod oci;
pub mod ratelimit;
mod state;
pub mod text;
pub mod tls;
mod unread_body;

use tokio::net::TcpListener;

pub use api::openapi;

/// The parsers of request headers that are not a library's: public only so the fuzz
/// targets (`fuzz/`) and their regression test can reach them.
pub mod parsers {
    pub use crate::api::blobs::{Wanted, parse_range};
    pub use crate::oci::content_range;
}
pub use cache::CacheConfig;
pub use error::ApiError;
pub use extract::ClientAddr;
pub use listen::HttpLimits;
pub use state::{AppState, Downloads, REDIRECT_TTL_RANGE};

/// The complete HTTP API: [`api_routes`] with a JSON problem for unknown paths.
pub fn app(state: AppState) -> axum::Router {
    let api = api_routes(state.clone())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(headers::security_headers));
    edge(api, state)
}

/// Wraps the whole application (the API and any pages beside it) in what every request
/// meets first: its client's address and scheme, as the trusted proxies say
/// ([`client`]), then the rate limits ([`ratelimit`]).
pub fn edge(app: axum::Router, state: AppState) -> axum::Router {
    let proxies = state.proxies.clone();
    app.layer(axum::middleware::from_fn_with_state(
        state,
        ratelimit::limit,
    ))
    .layer(axum::middleware::from_fn_with_state(
        proxies,
        client::resolve,
    ))
}

/// The API's routes without a fallback, for composing with other pages (the web UI).
pub fn api_routes(state: AppState) -> axum::Router {
    api::router(state)
}

/// The API's answer to a path it does not serve (RFC 9457 problem, 404).
pub async fn api_not_found() -> axum::response::Response {
    axum::response::IntoResponse::into_response(api::not_found().await)
}

/// Serves `app` (the API, or the API with the web pages) on `listener` until `shutdown`
/// resolves, under `limits` (header, body and idle timeouts; connection caps).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app, limits, None, shutdown).await
}

/// [`serve`] over TLS: the certificate reloaded when its files change, HSTS, and the
/// optional plain-HTTP listener that redirects to https ([`listen::Https`]).
pub async fn serve_https(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    https: listen::Https,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app, limits, Some(https), shutdown).await
}
