//! The page handlers, one module per page family, and what they share: the plugin card,
//! link rules, rendering and redirects. (The frame every page extends is `crate::layout`;
//! the error page is `crate::error`.)

pub mod account;
pub mod admin;
pub mod admin_reviews;
pub mod analytics;
pub mod home;
pub mod plugin;
pub mod publisher;
pub mod search;
pub mod tenant_fleet;
pub mod tenant_install;
pub mod tenant_updates;
pub mod tenants;

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
    /// The version listed: the latest, else the newest yanked or insecure one.
    pub version: String,
    pub runtime: String,
    /// `1 download`, `12.3k downloads`.
    pub downloads: String,
    pub rating: Option<String>,
    pub stars: String,
    /// `1 review`, `3 reviews`.
    pub reviews: String,
    pub verified: bool,
    /// The latest version came out verified in its newest verification run.
    pub verified_release: bool,
    pub private: bool,
    /// The listed version's state when it is not active (`deprecated`, `insecure`,
    /// `yanked`): shown as a marker in words.
    pub state: Option<&'static str>,
    pub updated: String,
}

impl Card {
    pub fn of(p: &PluginRecord) -> Card {
        let rating = p.rating();
        let state = p
            .listed_state
            .filter(|s| *s != agora_core::Lifecycle::Active)
            .map(agora_core::Lifecycle::as_str);
        Card {
            url: format!("/plugins/{}/{}", p.publisher, p.name),
            publisher: p.publisher.clone(),
            name: p.name.clone(),
            title: p.display_name.clone(),
            description: p.description.clone(),
            version: p
                .listed_version
                .clone()
                .or_else(|| p.latest_version.clone())
                .unwrap_or_default(),
            runtime: p.runtime.clone(),
            downloads: format::counted(p.downloads, "download", "downloads"),
            rating: rating.map(|r| format!("{r:.1}")),
            stars: format::stars(rating.unwrap_or(0.0)),
            reviews: format::counted(p.rating_count, "review", "reviews"),
            verified: p.verified,
            verified_release: p.latest_verification
                == Some(agora_core::verification::Outcome::Verified),
            private: p.visibility == agora_core::Visibility::Private,
            state,
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

/// Whether a user-provided address may become a link: an http(s) URL with a host, never
/// `javascript:` or `data:`, nothing blank or unprintable in it.
pub fn is_web_link(url: &str) -> bool {
    let rest = ["https://", "http://"].iter().find_map(|scheme| {
        url.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    });
    rest.is_some_and(|r| {
        r.chars().next().is_some_and(|c| c != '/')
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Whether text is a plain e-mail address (`name@example.org`) that may become a
/// `mailto:` link: letters, digits and `._%+-` before the `@`, a dotted domain after,
/// nothing a mail client would read as headers (`?`, `&`).
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

/// A contact or address a publisher wrote (a manifest's `contact.support`, a home
/// page): a link when it is an http(s) URL or an e-mail address, else text. Either way
/// the text is shown as written (escaped).
pub struct Contact {
    pub text: String,
    /// `https://…` (shown with `rel="nofollow noopener noreferrer"`) or `mailto:…`.
    pub href: Option<String>,
}

impl Contact {
    pub fn of(text: &str) -> Contact {
        let text = text.trim();
        let mail = text
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .map_or(text, |_| &text[7..]);
        let href = if is_web_link(text) {
            Some(text.to_owned())
        } else if is_email(mail) {
            Some(format!("mailto:{mail}"))
        } else {
            None
        };
        Contact {
            text: text.to_owned(),
            href,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_and_plain_email_addresses_become_links() {
        let href = |s: &str| Contact::of(s).href;
        assert_eq!(
            href("https://support.example.org/a/very/long/path?q=1"),
            Some("https://support.example.org/a/very/long/path?q=1".into())
        );
        assert_eq!(
            href("HTTP://example.org"),
            Some("HTTP://example.org".into())
        );
        assert_eq!(
            href("help@example.org"),
            Some("mailto:help@example.org".into())
        );
        assert_eq!(
            href("mailto:help@example.org"),
            Some("mailto:help@example.org".into())
        );
        for text in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "ftp://example.org",
            "https://",
            "https:///path",
            "//evil.example",
            "https://exa mple.org",
            "help@example.org?subject=x",
            "help@example.org&cc=x",
            "a@b",
            "@example.org",
            "mailto:",
            "file:///etc/passwd",
            "Ask in #plugins on the forum",
        ] {
            assert_eq!(href(text), None, "{text}");
            assert_eq!(Contact::of(text).text, text.trim());
        }
    }
}
