//! The page handlers, one module per page family, and what they share: the layout every
//! page extends and the error page.

pub mod account;
pub mod admin;
pub mod home;
pub mod plugin;
pub mod publisher;
pub mod search;

use agora_registry::RegistryError;
use agora_store::{PluginRecord, StoreError};
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::assets::{CSS_PATH, JS_PATH};
use crate::format;
use crate::session::Visitor;

/// What the frame of every page shows.
pub struct Layout {
    pub site: String,
    pub title: String,
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    pub css: &'static str,
    pub js: &'static str,
    /// The search box's text.
    pub q: String,
}

impl Layout {
    pub fn new(web: &crate::Web, visitor: &Visitor, title: impl Into<String>) -> Layout {
        Layout {
            site: web.config.site_name.clone(),
            title: title.into(),
            user: visitor.signed_in.as_ref().map(|s| s.user.username.clone()),
            is_admin: visitor.is_admin(),
            csrf: visitor.csrf().to_owned(),
            css: CSS_PATH.as_str(),
            js: JS_PATH.as_str(),
            q: String::new(),
        }
    }
}

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

/// Percent-encodes a value for a query string.
pub fn percent(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .map(|s| s[2..].to_owned())
        .unwrap_or_default()
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    NotFound(String),
    BadInput(String),
    /// A field holds what no form or parameter may (a control character): 422.
    Unprocessable(String),
    Forbidden(String),
    /// Signing in is needed; come back to this path afterwards.
    SignIn(String),
    Internal(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::from(RegistryError::from(e))
    }
}

impl From<RegistryError> for PageError {
    fn from(e: RegistryError) -> Self {
        use agora_core::ProblemKind;
        let mut detail = e.detail.clone().unwrap_or_else(|| e.title.to_owned());
        for f in &e.errors {
            detail.push_str(&format!("; {f}"));
        }
        match e.kind {
            ProblemKind::NotFound => PageError::NotFound(detail),
            ProblemKind::Forbidden => PageError::Forbidden(detail),
            ProblemKind::Unauthorized => PageError::SignIn("/".into()),
            ProblemKind::Internal | ProblemKind::Unavailable => PageError::Internal(detail),
            _ => PageError::BadInput(detail),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("a page template failed: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    detail: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, detail) = match self {
            PageError::SignIn(back) => {
                return Redirect::to(&format!("/login?next={}", percent(&back))).into_response();
            }
            PageError::NotFound(d) => (StatusCode::NOT_FOUND, "Not found", d),
            PageError::BadInput(d) => (StatusCode::BAD_REQUEST, "That did not work", d),
            PageError::Unprocessable(d) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "That did not work", d)
            }
            PageError::Forbidden(d) => (StatusCode::FORBIDDEN, "Not allowed", d),
            PageError::Internal(d) => {
                tracing::error!(error = %d, "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "the server could not show this page; the error has been logged".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            layout: Layout {
                site: "Agora".into(),
                title: heading.into(),
                user: None,
                is_admin: false,
                csrf: String::new(),
                css: CSS_PATH.as_str(),
                js: JS_PATH.as_str(),
                q: String::new(),
            },
            status: status.as_u16(),
            heading,
            detail,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, heading).into_response(),
        }
    }
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
