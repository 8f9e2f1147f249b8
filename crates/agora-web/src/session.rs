//! Browser sessions, CSRF protection and the headers every page carries.
//!
//! A session is a random 256-bit cookie value; the database keeps only its sha256, the
//! user and a per-session CSRF token. Cookies are `HttpOnly`, `SameSite=Lax`, and
//! `Secure` with the `__Host-` prefix over HTTPS. Every form post must carry the session's
//! CSRF token (sign-in: a double-submit cookie) and must not come from another site
//! (`Origin` / `Sec-Fetch-Site`).

use agora_registry::Caller;
use agora_registry::caller::hash_token;
use agora_store::{UserRecord, Viewer, now_ms};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::PageError;
use crate::format::percent;
use crate::layout::Layout;
use crate::state::Web;

const SESSION: &str = "agora_session";
const SECURE_SESSION: &str = "__Host-agora_session";
const LOGIN_CSRF: &str = "agora_login_csrf";
const SECURE_LOGIN_CSRF: &str = "__Host-agora_login_csrf";

pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    hex::encode(bytes)
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether this request came over HTTPS (directly configured or from a TLS proxy).
fn secure(web: &Web, headers: &HeaderMap) -> bool {
    web.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn names(secure: bool) -> (&'static str, &'static str) {
    if secure {
        (SECURE_SESSION, SECURE_LOGIN_CSRF)
    } else {
        (SESSION, LOGIN_CSRF)
    }
}

fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are hex")
}

/// A signed-in user.
pub(crate) struct SignedIn {
    pub user: UserRecord,
    pub csrf: String,
    pub memberships: Vec<(i64, String)>,
    /// (id, name) of the tenants the user belongs to.
    pub tenants: Vec<(i64, String)>,
    session_hash: String,
}

/// Whoever is looking at a page: signed in or not.
pub(crate) struct Visitor {
    pub signed_in: Option<SignedIn>,
    /// The sign-in form's double-submit token, when the browser has one.
    login_csrf: Option<String>,
    pub secure: bool,
    /// What this session's last form post did, for the page it led to (`crate::notice`).
    pub notice: Option<String>,
}

impl Visitor {
    pub fn viewer(&self) -> Viewer {
        self.caller().map(|c| c.viewer()).unwrap_or_default()
    }

    pub fn is_admin(&self) -> bool {
        self.signed_in
            .as_ref()
            .is_some_and(|s| s.user.role == agora_store::Role::Admin)
    }

    /// The CSRF token forms on this page carry ("" when signed out).
    pub fn csrf(&self) -> &str {
        self.signed_in.as_ref().map_or("", |s| s.csrf.as_str())
    }

    /// The signed-in user, or a redirect to the sign-in page that comes back to `back`.
    pub fn require(&self, back: &str) -> Result<&SignedIn, PageError> {
        self.signed_in
            .as_ref()
            .ok_or_else(|| PageError::SignIn(back.to_owned()))
    }

    /// Checks a posted form's CSRF token against the session's.
    pub fn check_csrf(&self, posted: &str) -> Result<&SignedIn, PageError> {
        let Some(s) = &self.signed_in else {
            return Err(PageError::SignIn("/".into()));
        };
        if constant_time_eq(s.csrf.as_bytes(), posted.as_bytes()) {
            Ok(s)
        } else {
            Err(PageError::Forbidden(
                "this form has expired or came from another site; reload the page and try again"
                    .into(),
            ))
        }
    }

    /// The frame of a page as this visitor sees it.
    pub fn layout(&self, web: &Web, title: impl Into<String>) -> Layout {
        Layout {
            user: self.signed_in.as_ref().map(|s| s.user.username.clone()),
            is_admin: self.is_admin(),
            csrf: self.csrf().to_owned(),
            ..Layout::signed_out(web.config.site_name.clone(), title)
        }
    }

    pub fn caller(&self) -> Option<Caller> {
        self.signed_in
            .as_ref()
            .map(|s| Caller::for_session(s.user.clone(), s.memberships.clone(), s.tenants.clone()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Web> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, PageError> {
        if let Some(v) = parts.extensions.get::<VisitorCache>() {
            return Ok(v
                .0
                .lock()
                .ok()
                .and_then(|mut g| g.take())
                .unwrap_or(Visitor {
                    signed_in: None,
                    login_csrf: None,
                    secure: secure(web, &parts.headers),
                    notice: None,
                }));
        }
        load(web, &parts.headers).await
    }
}

/// The visitor the gate already loaded, handed to the page so the session is read once.
#[derive(Clone)]
struct VisitorCache(std::sync::Arc<std::sync::Mutex<Option<Visitor>>>);

pub(crate) async fn load(web: &Web, headers: &HeaderMap) -> Result<Visitor, PageError> {
    let secure = secure(web, headers);
    let (session_name, csrf_name) = names(secure);
    let login_csrf = cookie(headers, csrf_name).map(str::to_owned);
    let Some(value) = cookie(headers, session_name) else {
        return Ok(Visitor {
            signed_in: None,
            login_csrf,
            secure,
            notice: None,
        });
    };
    let session_hash = hash_token(value);
    let signed_in = match web.registry.meta.session(&session_hash).await? {
        Some((session, user)) => Some(SignedIn {
            memberships: web.registry.meta.memberships(user.id).await?,
            tenants: web.registry.meta.member_tenants(user.id).await?,
            user,
            csrf: session.csrf,
            session_hash,
        }),
        None => None,
    };
    let notice = signed_in.as_ref().and_then(|s| {
        cookie(headers, crate::notice::cookie_name(secure))
            .and_then(|value| crate::notice::open(&s.csrf, value))
    });
    Ok(Visitor {
        signed_in,
        login_csrf,
        secure,
        notice,
    })
}

/// Starts a session for `user`: the `Set-Cookie` header to send.
pub(crate) async fn start(
    web: &Web,
    visitor: &Visitor,
    user: &UserRecord,
) -> Result<HeaderValue, PageError> {
    let value = random_hex();
    let ttl = web.config.session_ttl.as_secs() as i64;
    web.registry
        .meta
        .create_session(
            &hash_token(&value),
            user.id,
            &random_hex(),
            now_ms() + ttl * 1000,
        )
        .await?;
    Ok(set_cookie(
        names(visitor.secure).0,
        &value,
        ttl,
        visitor.secure,
    ))
}

/// Ends the visitor's session: the `Set-Cookie` header that removes the cookie.
pub(crate) async fn end(web: &Web, visitor: &Visitor) -> Result<HeaderValue, PageError> {
    if let Some(s) = &visitor.signed_in {
        web.registry.meta.delete_session(&s.session_hash).await?;
    }
    Ok(set_cookie(names(visitor.secure).0, "", 0, visitor.secure))
}

/// The sign-in form's double-submit token: the browser's, or a new one with its cookie.
pub(crate) fn login_csrf(visitor: &Visitor) -> (String, Option<HeaderValue>) {
    match &visitor.login_csrf {
        Some(t) if t.len() == 64 => (t.clone(), None),
        _ => {
            let t = random_hex();
            let c = set_cookie(names(visitor.secure).1, &t, 3600, visitor.secure);
            (t, Some(c))
        }
    }
}

pub(crate) fn check_login_csrf(visitor: &Visitor, posted: &str) -> Result<(), PageError> {
    match &visitor.login_csrf {
        Some(t) if constant_time_eq(t.as_bytes(), posted.as_bytes()) => Ok(()),
        _ => Err(PageError::Forbidden(
            "the sign-in form has expired or cookies are blocked; reload the page and try again"
                .into(),
        )),
    }
}

/// Refuses form posts from other sites (defence in depth beside the CSRF tokens and
/// `SameSite`), loads the visitor once, and in a private registry sends anonymous
/// visitors to the sign-in page.
pub(crate) async fn private_registry_gate(
    State(web): State<Web>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() == axum::http::Method::POST && cross_site(request.headers()) {
        return PageError::Forbidden("form posts from other sites are refused".into())
            .into_response();
    }
    let path = request.uri().path();
    let open = path == "/login" || path.starts_with("/static/");
    let visitor = match load(&web, request.headers()).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if web.registry.sign_in_required && !open && visitor.signed_in.is_none() {
        let back = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        return Redirect::to(&format!("/login?next={}", percent(&back))).into_response();
    }
    request
        .extensions_mut()
        .insert(VisitorCache(std::sync::Arc::new(std::sync::Mutex::new(
            Some(visitor),
        ))));
    next.run(request).await
}

fn cross_site(headers: &HeaderMap) -> bool {
    // Browsers that send Fetch Metadata say it themselves; trusting it keeps working
    // behind proxies that rewrite Host.
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"cross-site" || site.as_bytes() == b"same-site";
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("");
            let host = host.to_str().unwrap_or("");
            origin == "null" || origin.split_once("://").map(|(_, h)| h) != Some(host)
        }
        _ => false,
    }
}

/// The Content-Security-Policy of every page: nothing but this origin's own script and
/// style; images also from https (README badges); no frames, no plugins, no base tag.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xagora_session=bad; agora_session=good; other=1"),
        );
        assert_eq!(cookie(&h, "agora_session"), Some("good"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("reg.test:8080"));
        assert!(
            !cross_site(&h),
            "no Origin: a same-site form or a non-browser client"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://reg.test:8080"),
        );
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        assert!(cross_site(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
        // Behind a proxy that rewrites Host, Fetch Metadata decides.
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("backend:8080"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://reg.test"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site(&h));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
