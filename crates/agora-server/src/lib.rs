//! Agora's HTTP server: the REST API under `/api/v1`, authentication and authorization,
//! health and readiness probes, Prometheus metrics and the generated OpenAPI document.
//!
//! The server holds no state of its own beyond caches: everything lives in the
//! [`MetadataStore`] and [`BlobStore`] it is given, so any number of replicas can run
//! behind a load balancer.

mod api;
mod auth;
mod bootstrap;
mod cache;
mod downloads;
mod error;
mod extract;
mod listen;
mod metrics;
pub mod password;
pub mod text;
mod time;
mod transparency;

use std::sync::Arc;

use agora_store::{BlobStore, MetadataStore};
use tokio::net::TcpListener;

pub use api::cursor::encode as encode_cursor;
pub use api::openapi;
pub use api::plugins::{SearchParams, search_query, visible_plugin};
pub use api::publishers::{
    accept as accept_invitation, apply_settings as apply_publisher_settings,
    withdraw as withdraw_invitation,
};
pub use api::reviews::{hide_review, write_review};
pub use api::tokens::{create_token, revoke_token};
pub use auth::{Caller, hash_token, new_token, token_display_prefix};
pub use bootstrap::{BootstrapError, ensure_admin, ensure_admin_password};
pub use cache::CacheConfig;
pub use error::ApiError;
pub use extract::ClientAddr;
pub use listen::ConnectionLimits;
pub use transparency::TransparencyLog;

/// Limits that protect the server from abuse; all configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest blob accepted by `PUT /api/v1/blobs/{digest}`.
    pub max_blob_bytes: u64,
    /// Most artifacts in one release.
    pub max_artifacts: usize,
    /// Largest page a list endpoint returns.
    pub max_page_size: u32,
    /// Largest JSON request body.
    pub max_json_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 1024 * 1024 * 1024,
            max_artifacts: 64,
            max_page_size: 100,
            max_json_bytes: 1024 * 1024,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub limits: Limits,
    /// A private registry: nothing is readable without signing in (a token, or a browser
    /// session for the web pages); only health probes and metrics stay open.
    pub sign_in_required: bool,
    cache: Arc<cache::ResponseCache>,
    log: Arc<TransparencyLog>,
    downloads: Arc<downloads::DownloadCounter>,
}

impl AppState {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        limits: Limits,
        cache: CacheConfig,
        log: TransparencyLog,
    ) -> AppState {
        AppState {
            meta,
            blobs,
            limits,
            sign_in_required: false,
            cache: Arc::new(cache::ResponseCache::new(cache)),
            log: Arc::new(log),
            downloads: Arc::new(downloads::DownloadCounter::default()),
        }
    }
}

impl AppState {
    /// Makes this a private registry (see [`AppState::sign_in_required`]).
    pub fn with_sign_in_required(mut self, required: bool) -> AppState {
        self.sign_in_required = required;
        self
    }
}

/// The complete HTTP API: [`api_routes`] with a JSON problem for unknown paths.
pub fn app(state: AppState) -> axum::Router {
    api_routes(state).fallback(api::not_found)
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
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app, limits, shutdown).await
}
