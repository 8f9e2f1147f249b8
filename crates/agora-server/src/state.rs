//! What every handler can reach.

use std::sync::Arc;

use agora_registry::Registry;

use crate::cache::{CacheConfig, ResponseCache};
use crate::listen::HttpLimits;

/// What every handler can reach: the registry and the HTTP layer's own settings and cache.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub http: HttpLimits,
    pub(crate) cache: Arc<ResponseCache>,
    pub downloads: Downloads,
    /// Cross-origin access for other sites' pages (`[cors]`); none by default.
    pub cors: Option<crate::cors::Cors>,
    /// Whose `X-Forwarded-For`/`-Proto` are believed (`[proxy] trusted`); none by default.
    pub proxies: Arc<crate::client::TrustedProxies>,
}

/// How `GET /api/v1/blobs/{digest}` hands out the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Downloads {
    /// The server streams them from the blob store.
    #[default]
    Stream,
    /// Where the blob store can presign (S3), a `307` to a URL valid for `ttl`, so the
    /// bytes go from the bucket (or a CDN in front of it) to the client directly.
    Redirect { ttl: std::time::Duration },
}

/// Shortest and longest lifetime of a presigned download URL: long enough for a slow
/// client to start, short enough that a leaked URL soon stops working.
pub const REDIRECT_TTL_RANGE: std::ops::RangeInclusive<u64> = 10..=3600;

impl AppState {
    pub fn new(registry: Arc<Registry>, http: HttpLimits, cache: CacheConfig) -> AppState {
        AppState {
            registry,
            http,
            cache: Arc::new(ResponseCache::new(cache)),
            downloads: Downloads::Stream,
            cors: None,
            proxies: Arc::default(),
        }
    }

    pub fn with_downloads(mut self, downloads: Downloads) -> AppState {
        self.downloads = downloads;
        self
    }

    pub fn with_trusted_proxies(mut self, proxies: crate::client::TrustedProxies) -> AppState {
        self.proxies = Arc::new(proxies);
        self
    }

    pub fn with_cors(mut self, cors: Option<crate::cors::Cors>) -> AppState {
        self.cors = cors;
        self
    }
}
