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
}

impl AppState {
    pub fn new(registry: Arc<Registry>, http: HttpLimits, cache: CacheConfig) -> AppState {
        AppState {
            registry,
            http,
            cache: Arc::new(ResponseCache::new(cache)),
        }
    }
}
