//! The home page: popular, recently updated, verified and top-rated plugins, and the
//! categories with their counts.

use agora_store::{SearchQuery, SearchSort};
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
    shelves: Vec<Shelf>,
    categories: Vec<Category>,
}

pub async fn home(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    let viewer = visitor.viewer();
    let base = SearchQuery {
        limit: SHELF,
        viewer: viewer.clone(),
        ..SearchQuery::default()
    };
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
    let facets = web.facets.get(&web.registry.meta, &base).await?;
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
