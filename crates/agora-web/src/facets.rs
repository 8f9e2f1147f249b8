//! Facet counts, cached briefly: counting every facet over a broad search of a large
//! catalog (all 100,000 plugins) costs hundreds of milliseconds on SQLite, while the
//! counts of the same search barely change from one second to the next. Pages show
//! counts at most [`TTL`] old; results themselves are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_store::{Facets, MetadataStore, SearchQuery, SearchSort, StoreError};

/// How old a shown count may be.
pub const TTL: Duration = Duration::from_secs(30);
/// Most searches remembered; when full, the cache starts over.
const MAX_ENTRIES: usize = 2048;

#[derive(Default)]
pub struct FacetCache {
    entries: Mutex<HashMap<String, (Instant, Arc<Facets>)>>,
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
        &self,
        meta: &dyn MetadataStore,
        query: &SearchQuery,
    ) -> Result<Arc<Facets>, StoreError> {
        let key = key(query);
        if let Ok(entries) = self.entries.lock()
            && let Some((at, facets)) = entries.get(&key)
            && at.elapsed() < TTL
        {
            return Ok(facets.clone());
        }
        let facets = Arc::new(meta.facets(query).await?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), facets.clone()));
        }
        Ok(facets)
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
