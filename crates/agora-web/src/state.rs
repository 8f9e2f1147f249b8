//! What the pages are configured with, and what every page handler can reach.

use std::sync::Arc;
use std::time::Duration;

use agora_registry::Registry;

use crate::{facets, markdown};

/// How the web pages behave.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (and use the `__Host-` prefix): on when the registry is served
    /// over HTTPS. Without it, cookies are still `Secure` for requests that arrive with
    /// `X-Forwarded-Proto: https` from a TLS-terminating proxy.
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// The name shown in the header and titles.
    pub site_name: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookies: false,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            site_name: "Agora".into(),
        }
    }
}

/// What every page handler can reach.
#[derive(Clone)]
pub(crate) struct Web {
    pub registry: Arc<Registry>,
    pub config: Arc<WebConfig>,
    pub docs: Arc<markdown::DocCache>,
    pub facets: Arc<facets::FacetCache>,
    pub shelves: Arc<crate::pages::home::ShelfCache>,
}

/// How many bytes of rendered README and changelog HTML the pages keep in memory.
const DOC_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Web {
    /// The pages' state over `registry`, with the facet counts computed once up front.
    pub fn new(registry: Arc<Registry>, config: WebConfig) -> Web {
        let web = Web {
            registry,
            config: Arc::new(config),
            docs: Arc::new(markdown::DocCache::new(DOC_CACHE_BYTES)),
            facets: Arc::new(facets::FacetCache::default()),
            shelves: Arc::default(),
        };
        web.facets.warm(&web.registry.meta);
        web
    }
}
