//! The search page: results with facets and counts beside them, filters that can be
//! removed one by one, sorting, and cursor paging. The query is checked by the same code
//! as the API's `GET /api/v1/plugins`.

use agora_core::api::SearchParams;
use agora_registry::catalog::{cursor::encode as encode_cursor, search_query};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{Card, render};
use crate::error::PageError;
use crate::layout::Layout;
use crate::session::Visitor;
use crate::state::Web;

const PAGE_SIZE: u32 = 20;

/// The search form as the browser sends it: every field text, empty when unset.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SearchForm {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub publisher: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verified: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verified_release: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_rating: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compatible_with: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sort: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

/// A checkbox-like filter is set.
fn is_on(value: &str) -> bool {
    matches!(value, "true" | "on" | "1")
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl SearchForm {
    fn params(&self) -> Result<SearchParams, PageError> {
        let min_rating = match some(&self.min_rating) {
            Some(r) => Some(r.parse::<u8>().map_err(|_| {
                PageError::BadInput(format!(
                    "min_rating: {r:?} is not a number of stars (1 to 5)"
                ))
            })?),
            None => None,
        };
        Ok(SearchParams {
            q: some(&self.q),
            tag: some(&self.tag),
            category: some(&self.category),
            provider: some(&self.provider),
            capability: some(&self.capability),
            runtime: some(&self.runtime),
            publisher: some(&self.publisher),
            verified: is_on(&self.verified).then_some(true),
            verified_release: is_on(&self.verified_release).then_some(true),
            min_rating,
            compatible_with: some(&self.compatible_with),
            sort: some(&self.sort),
            cursor: some(&self.cursor),
            limit: Some(PAGE_SIZE),
        })
    }

    /// The filters as hidden form fields, but for `except` (the field the form edits).
    fn hidden(&self, except: &str) -> Vec<(String, String)> {
        serde_urlencoded::to_string(self)
            .ok()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(&q).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != except && k != "cursor" && k != "sort")
            .collect()
    }

    /// This search's URL with one change, from the first page.
    fn url_with(&self, change: impl FnOnce(&mut SearchForm)) -> String {
        let mut next = self.clone();
        next.cursor.clear();
        change(&mut next);
        format!(
            "/search?{}",
            serde_urlencoded::to_string(&next).unwrap_or_default()
        )
    }
}

pub struct FacetValue {
    pub label: String,
    pub count: i64,
    pub url: String,
    pub active: bool,
}

pub struct FacetGroup {
    pub title: &'static str,
    pub values: Vec<FacetValue>,
}

pub struct Chip {
    pub label: String,
    pub remove: String,
}

pub struct SortOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout: Layout,
    form: SearchForm,
    total: i64,
    /// The text matched more plugins than a search considers (the newest are shown).
    capped: bool,
    cards: Vec<Card>,
    groups: Vec<FacetGroup>,
    chips: Vec<Chip>,
    sorts: Vec<SortOption>,
    next: Option<String>,
    first: Option<String>,
    /// Hidden fields of the compatibility form and of the sort form.
    keep_for_compat: Vec<(String, String)>,
    keep_for_sort: Vec<(String, String)>,
}

type Field = fn(&mut SearchForm) -> &mut String;

pub async fn search(
    State(web): State<Web>,
    visitor: Visitor,
    Query(form): Query<SearchForm>,
) -> Result<Response, PageError> {
    let query = search_query(form.params()?, visitor.viewer(), PAGE_SIZE)?;
    let (hits, facets) = tokio::try_join!(
        agora_registry::catalog::search(&web.registry, &query),
        async {
            web.facets
                .get(&web.registry.meta, &query)
                .await
                .map_err(agora_registry::RegistryError::from)
        }
    )?;
    let facets = (*facets).clone();

    let group = |title, field: Field, values: Vec<(String, i64)>| {
        let current = field(&mut form.clone()).clone();
        FacetGroup {
            title,
            values: values
                .into_iter()
                .map(|(value, count)| {
                    let active = current == value;
                    let url = form.url_with(|f| {
                        *field(f) = if active { String::new() } else { value.clone() };
                    });
                    FacetValue {
                        label: value,
                        count,
                        url,
                        active,
                    }
                })
                .collect(),
        }
    };
    let mut groups = vec![
        group("Category", |f| &mut f.category, facets.categories),
        group("Provider", |f| &mut f.provider, facets.providers),
        group("Tag", |f| &mut f.tag, facets.tags),
        group("Capability", |f| &mut f.capability, facets.capabilities),
        group("Runtime", |f| &mut f.runtime, facets.runtimes),
        group(
            "Rating",
            |f| &mut f.min_rating,
            facets
                .ratings
                .into_iter()
                .map(|(stars, n)| (stars.to_string(), n))
                .collect(),
        ),
    ];
    for v in &mut groups[5].values {
        v.label = format!("{}★ & up", v.label);
    }
    // An on/off filter as a group of one value, which toggles it.
    let toggle = |title, label: &str, count, field: Field| {
        let on = is_on(field(&mut form.clone()));
        FacetGroup {
            title,
            values: vec![FacetValue {
                label: label.into(),
                count,
                url: form.url_with(|f| *field(f) = if on { String::new() } else { "true".into() }),
                active: on,
            }],
        }
    };
    groups.push(toggle(
        "Publisher",
        "Verified publishers",
        facets.verified,
        |f| &mut f.verified,
    ));
    groups.push(toggle(
        "Verification",
        "Latest version verified",
        facets.verified_releases,
        |f| &mut f.verified_release,
    ));
    groups.retain(|g| !g.values.is_empty());

    let mut chips = Vec::new();
    let fields: [(&str, Field); 11] = [
        ("category", |f| &mut f.category),
        ("provider", |f| &mut f.provider),
        ("tag", |f| &mut f.tag),
        ("capability", |f| &mut f.capability),
        ("runtime", |f| &mut f.runtime),
        ("publisher", |f| &mut f.publisher),
        ("verified", |f| &mut f.verified),
        ("verified release", |f| &mut f.verified_release),
        ("rating ≥", |f| &mut f.min_rating),
        ("runs on", |f| &mut f.compatible_with),
        ("text", |f| &mut f.q),
    ];
    for (label, field) in fields {
        let value = field(&mut form.clone()).clone();
        if !value.is_empty() {
            chips.push(Chip {
                label: format!("{label}: {value}"),
                remove: form.url_with(|f| field(f).clear()),
            });
        }
    }
    let current_sort = match query.sort {
        agora_store::SearchSort::Relevance => "relevance",
        agora_store::SearchSort::Downloads => "downloads",
        agora_store::SearchSort::Recent => "recent",
        agora_store::SearchSort::Name => "name",
        agora_store::SearchSort::Rating => "rating",
    };
    let sorts = [
        ("relevance", "Best match"),
        ("downloads", "Most downloaded"),
        ("rating", "Top rated"),
        ("recent", "Recently updated"),
        ("name", "Name"),
    ]
    .into_iter()
    .map(|(value, label)| SortOption {
        value,
        label,
        selected: value == current_sort,
    })
    .collect();
    let next = hits.next.as_ref().map(|c| {
        let mut f = form.clone();
        f.sort = current_sort.to_owned();
        f.cursor = encode_cursor(c);
        format!(
            "/search?{}",
            serde_urlencoded::to_string(&f).unwrap_or_default()
        )
    });
    let first = (!form.cursor.is_empty()).then(|| form.url_with(|_| {}));
    let mut layout = visitor.layout(&web, "Search");
    layout.q = form.q.clone();
    let mut keep_for_compat = form.hidden("compatible_with");
    if !form.sort.is_empty() {
        keep_for_compat.push(("sort".into(), form.sort.clone()));
    }
    render(&SearchPage {
        keep_for_sort: form.hidden("sort"),
        keep_for_compat,
        layout,
        total: facets.total,
        capped: facets.capped,
        cards: hits.plugins.iter().map(Card::of).collect(),
        groups,
        chips,
        sorts,
        next,
        first,
        form,
    })
}
