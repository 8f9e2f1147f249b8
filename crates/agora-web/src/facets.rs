//! Facet counts, cached: counting every facet over a broad search of a large catalog
//! (all 100,000 plugins) costs 130–300 ms on SQLite, while the counts of one search change
//! only when the catalog does. Each count remembers the catalog's stamp (the newest audit
//! event, which every release, lifecycle, visibility, review and publisher change
//! writes, on any replica) and how long it took. When the catalog has changed (or the
//! count is older than [`TTL`]), a cheap count (under [`INLINE_RECOUNT`]) is redone at
//! once; an expensive one is shown once more while a background task recounts it (stale
//! while revalidate). So small catalogs always show exact counts, and on large ones only
//! the first visitor of a search waits for its count and counts trail a change by about
//! one recount. Results themselves are never cached.
//!
//! Bounded against visitors who send endless distinct searches: at most [`MAX_ENTRIES`]
//! counts are kept, and a full cache drops the count used least (fewest hits, then
//! longest unused), so a flood of one-off searches evicts its own entries, never the
//! popular ones; and at most [`MAX_CONCURRENT_COUNTS`] counts run at once per process
//! (others wait their turn), so such a flood cannot occupy the database either. The rate
//! limit on searches bounds how fast one client can send them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use agora_store::{Facets, MetadataStore, SearchQuery, SearchSort, StoreError};

/// How old a count may be even when the catalog stamp has not moved.
pub const TTL: Duration = Duration::from_secs(300);
/// Counts that took less than this are recounted in the request that finds them stale.
pub const INLINE_RECOUNT: Duration = Duration::from_millis(20);
/// Most searches remembered; when full, the least used goes.
pub const MAX_ENTRIES: usize = 2048;
/// Most facet counts running at once in one process.
pub const MAX_CONCURRENT_COUNTS: usize = 2;

struct Entry {
    at: Instant,
    stamp: i64,
    cost: Duration,
    facets: Arc<Facets>,
    refreshing: bool,
    /// Times served (capped), and when last.
    hits: u32,
    used: Instant,
}

pub struct FacetCache {
    entries: Mutex<HashMap<String, Entry>>,
    counting: Semaphore,
}

impl Default for FacetCache {
    fn default() -> Self {
        FacetCache {
            entries: Mutex::new(HashMap::new()),
            counting: Semaphore::new(MAX_CONCURRENT_COUNTS),
        }
    }
}

/// What decides the counts: the filters and text and who is looking (not the page,
/// sort or cursor).
fn key(q: &SearchQuery) -> String {
    let q = SearchQuery {
        sort: SearchSort::Relevance,
        after: None,
        limit: 0,
        ..q.clone()
    };
    format!("{q:?}")
}

impl FacetCache {
    pub async fn get(
        self: &Arc<Self>,
        meta: &Arc<dyn MetadataStore>,
        query: &SearchQuery,
    ) -> Result<Arc<Facets>, StoreError> {
        let stamp = meta.catalog_stamp().await?;
        self.get_at(meta, query, stamp).await
    }

    /// [`FacetCache::get`] with the catalog stamp the caller has read already.
    pub async fn get_at(
        self: &Arc<Self>,
        meta: &Arc<dyn MetadataStore>,
        query: &SearchQuery,
        stamp: i64,
    ) -> Result<Arc<Facets>, StoreError> {
        let key = key(query);
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(&key)
        {
            entry.hits = entry.hits.saturating_add(1).min(1_000_000);
            entry.used = Instant::now();
            let fresh = entry.stamp == stamp && entry.at.elapsed() < TTL;
            if fresh || (entry.refreshing && entry.cost >= INLINE_RECOUNT) {
                return Ok(entry.facets.clone());
            }
            if entry.cost >= INLINE_RECOUNT {
                entry.refreshing = true;
                let (cache, meta, query, key) =
                    (self.clone(), meta.clone(), query.clone(), key.clone());
                tokio::spawn(async move {
                    let counted = cache.count(&meta, &query).await;
                    match counted {
                        Ok((facets, cost)) => cache.put(key, stamp, cost, Arc::new(facets)),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not recount facets");
                            if let Ok(mut entries) = cache.entries.lock()
                                && let Some(entry) = entries.get_mut(&key)
                            {
                                entry.refreshing = false;
                            }
                        }
                    }
                });
                return Ok(entry.facets.clone());
            }
        }
        let (facets, cost) = self.count(meta, query).await?;
        let facets = Arc::new(facets);
        self.put(key, stamp, cost, facets.clone());
        Ok(facets)
    }

    /// Counts, once a place among the [`MAX_CONCURRENT_COUNTS`] is free; with the time the
    /// count itself took.
    async fn count(
        &self,
        meta: &Arc<dyn MetadataStore>,
        query: &SearchQuery,
    ) -> Result<(Facets, Duration), StoreError> {
        let _permit = self.counting.acquire().await;
        let started = Instant::now();
        let facets = meta.facets(query).await?;
        Ok((facets, started.elapsed()))
    }

    fn put(&self, key: String, stamp: i64, cost: Duration, facets: Arc<Facets>) {
        if let Ok(mut entries) = self.entries.lock() {
            let now = Instant::now();
            let (hits, used) = entries.get(&key).map_or((1, now), |e| (e.hits, e.used));
            if !entries.contains_key(&key)
                && entries.len() >= MAX_ENTRIES
                && let Some(least) = entries
                    .iter()
                    .min_by_key(|(_, e)| (e.hits, e.used))
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&least);
            }
            entries.insert(
                key,
                Entry {
                    at: now,
                    stamp,
                    cost,
                    facets,
                    refreshing: false,
                    hits,
                    used,
                },
            );
        }
    }

    /// Counts the whole catalog for anonymous visitors in the background, so the first
    /// visitor of the home and search pages does not wait for it.
    pub fn warm(self: &Arc<Self>, meta: &Arc<dyn MetadataStore>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (cache, meta) = (self.clone(), meta.clone());
        tokio::spawn(async move {
            if let Err(e) = cache.get(&meta, &SearchQuery::default()).await {
                tracing::warn!(error = %e, "could not count the catalog's facets");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_store::SearchCursor;

    #[test]
    fn a_flood_of_one_off_searches_never_evicts_the_popular_counts() {
        let cache = FacetCache::default();
        let popular = Arc::new(Facets {
            total: 42,
            ..Facets::default()
        });
        cache.put("popular".into(), 1, Duration::from_millis(300), popular);
        if let Some(e) = cache.entries.lock().unwrap().get_mut("popular") {
            e.hits = 5;
        }
        for i in 0..MAX_ENTRIES * 3 {
            cache.put(
                format!("junk {i}"),
                1,
                Duration::from_millis(300),
                Arc::new(Facets::default()),
            );
        }
        let entries = cache.entries.lock().unwrap();
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(entries.get("popular").map(|e| e.facets.total), Some(42));
    }

    #[test]
    fn pages_and_sorts_of_one_search_share_counts_but_viewers_do_not() {
        let q = SearchQuery {
            text: Some("jira".into()),
            ..SearchQuery::default()
        };
        let page2 = SearchQuery {
            sort: SearchSort::Name,
            after: Some(SearchCursor::Name {
                name: "x".into(),
                id: 3,
            }),
            ..q.clone()
        };
        assert_eq!(key(&q), key(&page2));
        let mut member = q.clone();
        member.viewer.private_publishers = vec![7];
        assert_ne!(key(&q), key(&member));
        let mut filtered = q.clone();
        filtered.category = Some("ci".into());
        assert_ne!(key(&q), key(&filtered));
    }
}
