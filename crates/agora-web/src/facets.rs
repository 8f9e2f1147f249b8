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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_store::{Facets, MetadataStore, SearchQuery, SearchSort, StoreError};

/// How old a count may be even when the catalog stamp has not moved.
pub const TTL: Duration = Duration::from_secs(300);
/// Counts that took less than this are recounted in the request that finds them stale.
pub const INLINE_RECOUNT: Duration = Duration::from_millis(20);
/// Most searches remembered; when full, the cache starts over.
const MAX_ENTRIES: usize = 2048;

struct Entry {
    at: Instant,
    stamp: i64,
    cost: Duration,
    facets: Arc<Facets>,
    refreshing: bool,
}

#[derive(Default)]
pub struct FacetCache {
    entries: Mutex<HashMap<String, Entry>>,
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
        let key = key(query);
        let stamp = meta.catalog_stamp().await?;
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(&key)
        {
            let fresh = entry.stamp == stamp && entry.at.elapsed() < TTL;
            if fresh || (entry.refreshing && entry.cost >= INLINE_RECOUNT) {
                return Ok(entry.facets.clone());
            }
            if entry.cost >= INLINE_RECOUNT {
                entry.refreshing = true;
                let (cache, meta, query, key) =
                    (self.clone(), meta.clone(), query.clone(), key.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    match meta.facets(&query).await {
                        Ok(facets) => cache.put(key, stamp, started.elapsed(), Arc::new(facets)),
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
        let started = Instant::now();
        let facets = Arc::new(meta.facets(query).await?);
        self.put(key, stamp, started.elapsed(), facets.clone());
        Ok(facets)
    }

    fn put(&self, key: String, stamp: i64, cost: Duration, facets: Arc<Facets>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key,
                Entry {
                    at: Instant::now(),
                    stamp,
                    cost,
                    facets,
                    refreshing: false,
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
    use super::key;
    use agora_store::{SearchCursor, SearchQuery, SearchSort};

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
