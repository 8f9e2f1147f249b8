//! A short-lived cache of rendered metadata for anonymous readers of public plugins:
//! the hot path of installers and CDNs, where every reader gets the same bytes.
//!
//! Entries live at most `ttl`; changes made through this replica invalidate them at
//! once, changes made through other replicas show within `ttl`. Only responses that
//! anyone may see are cached, so the cache never widens what a reader sees.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// How long a rendered response may be served; zero disables the cache.
    pub ttl: Duration,
    /// Most entries kept; when full, the cache starts over.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(1),
            max_entries: 10_000,
        }
    }
}

/// The key of a version's rendered detail.
pub fn version_key(publisher: &str, name: &str, version: &str) -> String {
    format!("{publisher}/{name}@{version}")
}

/// What every cached answer about one plugin starts with (for [`ResponseCache::invalidate`]).
pub fn plugin_prefix(publisher: &str, name: &str) -> String {
    version_key(publisher, name, "")
}

pub struct ResponseCache {
    config: CacheConfig,
    entries: RwLock<HashMap<String, (Instant, Bytes)>>,
    /// Counts invalidations: an answer rendered from data read before an invalidation is
    /// not stored after it (it could be the very answer the invalidation removed).
    generation: AtomicU64,
}

impl ResponseCache {
    pub fn new(config: CacheConfig) -> ResponseCache {
        ResponseCache {
            config,
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        if self.config.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let (stored, body) = entries.get(key)?;
        (stored.elapsed() < self.config.ttl).then(|| body.clone())
    }

    /// Read before rendering an answer; pass it to [`ResponseCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores an answer rendered from data read at `generation`, unless something was
    /// invalidated since.
    pub fn put(&self, key: String, body: Bytes, generation: u64) {
        if self.config.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if entries.len() >= self.config.max_entries {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), body));
        }
    }

    /// Drops every entry whose key starts with `prefix` (e.g. `acme/jira@`).
    pub fn invalidate(&self, prefix: &str) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.retain(|k, _| !k.starts_with(prefix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_are_invalidated_and_are_bounded() {
        let cache = ResponseCache::new(CacheConfig {
            ttl: Duration::from_millis(50),
            max_entries: 2,
        });
        cache.put(
            "acme/a@1.0.0".into(),
            Bytes::from_static(b"a"),
            cache.generation(),
        );
        assert_eq!(cache.get("acme/a@1.0.0").as_deref(), Some(&b"a"[..]));
        cache.invalidate("acme/a@");
        assert!(cache.get("acme/a@1.0.0").is_none());
        let now = cache.generation();
        cache.put("x".into(), Bytes::new(), now);
        cache.put("y".into(), Bytes::new(), now);
        cache.put("z".into(), Bytes::new(), now);
        assert!(
            cache.get("x").is_none() && cache.get("z").is_some(),
            "full: started over"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("z").is_none(), "expired");
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = ResponseCache::new(CacheConfig {
            ttl: Duration::ZERO,
            max_entries: 10,
        });
        cache.put("k".into(), Bytes::new(), cache.generation());
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn an_answer_rendered_before_an_invalidation_is_not_stored_after_it() {
        let cache = ResponseCache::new(CacheConfig::default());
        let before = cache.generation();
        // Meanwhile a release made the plugin private.
        cache.invalidate("acme/a@");
        cache.put("acme/a@1.0.0".into(), Bytes::from_static(b"public"), before);
        assert!(cache.get("acme/a@1.0.0").is_none());
        cache.put(
            "acme/a@1.0.0".into(),
            Bytes::from_static(b"x"),
            cache.generation(),
        );
        assert!(cache.get("acme/a@1.0.0").is_some());
    }
}
