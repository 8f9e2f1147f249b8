//! The page handlers, one module per page family, and what they share: the plugin card,
//! link rules, rendering and redirects. (The frame every page extends is `crate::layout`;
//! the error page is `crate::error`.)

pub mod account;
pub mod admin;
pub mod home;
pub mod plugin;
pub mod publisher;
pub mod search;

use agora_store::PluginRecord;
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::PageError;
use crate::format;

/// A plugin as a card in a list.
pub struct Card {
    pub url: String,
    pub publisher: String,
    pub name: String,
    pub title: String,
    pub description: String,
    pub version: String,
    pub runtime: String,
    pub downloads: String,
    pub rating: Option<String>,
    pub stars: String,
    pub rating_count: i64,
    pub verified: bool,
    pub private: bool,
    pub updated: String,
}

impl Card {
    pub fn of(p: &PluginRecord) -> Card {
        let rating = p.rating();
        Card {
            url: format!("/plugins/{}/{}", p.publisher, p.name),
            publisher: p.publisher.clone(),
            name: p.name.clone(),
            title: p.display_name.clone(),
            description: p.description.clone(),
            version: p.latest_version.clone().unwrap_or_default(),
            runtime: p.runtime.clone(),
            downloads: format::count(p.downloads),
            rating: rating.map(|r| format!("{r:.1}")),
            stars: format::stars(rating.unwrap_or(0.0)),
            rating_count: p.rating_count,
            verified: p.verified,
            private: p.visibility == agora_core::Visibility::Private,
            updated: format::date(p.updated_at),
        }
    }
}

/// `path` if it is a path on this site, else `/`: never an open redirect. Control
/// characters and whitespace are refused too (browsers drop tabs and newlines from
/// `Location`, which would turn `/\t/evil.test` into `//evil.test`).
pub fn local_path(path: &str) -> &str {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    if ok { path } else { "/" }
}

/// Whether a user-provided address may become a link: http(s) only, never
/// `javascript:` or `data:`.
pub fn is_web_link(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Renders a page template into a response.
pub fn render(page: &impl Template) -> Result<Response, PageError> {
    Ok(Html(page.render()?).into_response())
}

/// A redirect after a successful form post (303, so a reload does not post again).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub async fn not_found() -> PageError {
    PageError::NotFound("there is no page at this address".into())
}
