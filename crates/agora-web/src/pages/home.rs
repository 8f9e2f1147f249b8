//! The home page: popular, recently updated, verified and top-rated plugins, and the
//! categories with their counts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_store::{SearchQuery, SearchSort, StoreError};
use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{Card, render};
use crate::error::PageError;
use crate::format::percent;
use crate::layout::Layout;
use crate::session::Visitor;
use crate::state::Web;

const SHELF: u32 = 6;
/// How long the shelves of public plugins are kept while the catalog stamp stands:
/// download counts, which order the Popular shelves, change without moving it.
pub const SHELF_TTL: Duration = Duration::from_secs(30);

/// The shelves visitors who see only public plugins get (anonymous visitors, and users of
/// no private publisher or tenant): the four sorted searches were half the page's cost
/// (bench/callgrind.sh), and their answer changes only with the catalog. Kept while the
/// catalog stamp (every release, lifecycle, review and verdict change moves it, on any
/// replica) stands, for at most [`SHELF_TTL`]. One entry: nothing an outsider can grow.
#[derive(Default)]
pub struct ShelfCache {
    kept: Mutex<Option<Kept>>,
}

struct Kept {
    at: Instant,
    stamp: i64,
    shelves: Arc<Vec<Shelf>>,
}

impl ShelfCache {
    /// The shelves `base` sees, with the catalog at `stamp`.
    async fn get(
        &self,
        web: &Web,
        base: &SearchQuery,
        stamp: i64,
    ) -> Result<Arc<Vec<Shelf>>, StoreError> {
        if !base.viewer.sees_only_public() {
            return Ok(Arc::new(shelves(web, base).await?));
        }
        if let Some(kept) = &*self.lock()
            && kept.stamp == stamp
            && kept.at.elapsed() < SHELF_TTL
        {
            return Ok(kept.shelves.clone());
        }
        let fresh = Arc::new(shelves(web, base).await?);
        *self.lock() = Some(Kept {
            at: Instant::now(),
            stamp,
            shelves: fresh.clone(),
        });
        Ok(fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        // A panic while holding it left a whole value behind: keep using it.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Shelf {
    pub title: &'static str,
    pub more: String,
    pub cards: Vec<Card>,
}

pub struct Category {
    pub name: String,
    pub count: i64,
    pub url: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    /// `1 plugin`, `12 plugins`.
    total: String,
    shelves: Arc<Vec<Shelf>>,
    categories: Vec<Category>,
}

pub async fn home(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    let viewer = visitor.viewer();
    let base = SearchQuery {
        limit: SHELF,
        viewer: viewer.clone(),
        ..SearchQuery::default()
    };
    // One read of the catalog stamp for both caches.
    let stamp = web.registry.meta.catalog_stamp().await?;
    let shelves = web.shelves.get(&web, &base, stamp).await?;
    let facets = web.facets.get_at(&web.registry.meta, &base, stamp).await?;
    let categories = facets
        .categories
        .iter()
        .cloned()
        .map(|(name, count)| Category {
            url: format!("/search?category={}", percent(&name)),
            name,
            count,
        })
        .collect();
    render(&HomePage {
        layout: visitor.layout(&web, "Plugins"),
        total: crate::format::counted(facets.total, "plugin", "plugins"),
        shelves,
        categories,
    })
}

/// The shelves `base` (its viewer, a shelf's length) sees: popular, recent, verified and
/// top-rated plugins, the empty ones left out.
async fn shelves(web: &Web, base: &SearchQuery) -> Result<Vec<Shelf>, StoreError> {
    let mut shelves = Vec::new();
    for (title, sort, verified, more) in [
        (
            "Popular",
            SearchSort::Downloads,
            false,
            "/search?sort=downloads",
        ),
        (
            "Recently updated",
            SearchSort::Recent,
            false,
            "/search?sort=recent",
        ),
        (
            "From verified publishers",
            SearchSort::Downloads,
            true,
            "/search?verified=true",
        ),
        (
            "Top rated",
            SearchSort::Rating,
            false,
            "/search?sort=rating",
        ),
    ] {
        let q = SearchQuery {
            sort,
            verified,
            // Only rated plugins on the top-rated shelf.
            min_rating: (sort == SearchSort::Rating).then_some(1),
            ..base.clone()
        };
        let hits = web.registry.meta.search(&q).await?;
        if !hits.plugins.is_empty() {
            shelves.push(Shelf {
                title,
                more: more.to_owned(),
                cards: hits.plugins.iter().map(Card::of).collect(),
            });
        }
    }
    Ok(shelves)
}
