//! Catalog search: the query, its cursor and results, facet counts.

use agora_core::search::{MAX_TEXT_MATCHES, SearchSort};
use async_trait::async_trait;

use super::{PluginRecord, Result, Viewer};

/// Where the previous page ended: the sort key and id of its last row.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchCursor {
    Relevance { score: f64, id: i64 },
    Downloads { downloads: i64, id: i64 },
    Recent { updated_at: i64, id: i64 },
    Name { name: String, id: i64 },
    Rating { rank: i64, id: i64 },
}

#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub tag: Option<String>,
    pub category: Option<String>,
    pub provider: Option<String>,
    pub capability: Option<String>,
    pub runtime: Option<String>,
    pub publisher: Option<String>,
    /// Only plugins of verified publishers.
    pub verified: bool,
    /// Only plugins whose latest version came out verified in its newest run.
    pub verified_release: bool,
    /// Only plugins whose average rating is at least this (1 to 5).
    pub min_rating: Option<i64>,
    /// Only plugins whose latest version runs on this host version (`min_core`).
    pub compatible_with: Option<semver::Version>,
    pub sort: SearchSort,
    pub after: Option<SearchCursor>,
    pub limit: u32,
    pub viewer: Viewer,
    /// Most matches a text search considers ([`MAX_TEXT_MATCHES`] unless lowered).
    pub max_matches: i64,
}

impl Default for SearchQuery {
    /// Everything the anonymous viewer may see, most relevant first, 20 per page.
    fn default() -> Self {
        SearchQuery {
            text: None,
            tag: None,
            category: None,
            provider: None,
            capability: None,
            runtime: None,
            publisher: None,
            verified: false,
            verified_release: false,
            min_rating: None,
            compatible_with: None,
            sort: SearchSort::Relevance,
            after: None,
            limit: 20,
            viewer: Viewer::anonymous(),
            max_matches: MAX_TEXT_MATCHES,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    pub plugins: Vec<PluginRecord>,
    pub next: Option<SearchCursor>,
}

/// Counts of the hits of a search by facet value, for the filters beside the results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    pub total: i64,
    pub providers: Vec<(String, i64)>,
    pub categories: Vec<(String, i64)>,
    pub tags: Vec<(String, i64)>,
    pub capabilities: Vec<(String, i64)>,
    pub runtimes: Vec<(String, i64)>,
    /// (minimum average rating 1..=4, hits rated at least that).
    pub ratings: Vec<(i64, i64)>,
    pub verified: i64,
    /// Hits whose latest version came out verified in its newest run.
    pub verified_releases: i64,
    /// A text search matched more than [`MAX_TEXT_MATCHES`]: the counts are of the most
    /// recently added that many.
    pub capped: bool,
}

/// Searching the catalog.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResult>;
    /// Hit counts of the search by facet value (the query's cursor, sort and limit are ignored).
    async fn facets(&self, query: &SearchQuery) -> Result<Facets>;
    /// A number that changes whenever the catalog does (every release, lifecycle,
    /// visibility, review and publisher change is audited; every verification run is
    /// recorded): the newest audit event's id plus the newest verification run's id.
    /// Caches of derived data (facet counts) compare it to know they are stale.
    async fn catalog_stamp(&self) -> Result<i64>;
}
