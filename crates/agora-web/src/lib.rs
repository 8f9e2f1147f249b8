//! Agora's web pages, rendered on the server from the same binary as the API: the catalog
//! (home, search with facets), plugin pages (README, install command, capabilities,
//! versions with their signatures and log entries, ratings and reviews), publisher pages,
//! sign-in, the account page (tokens, password) and administration.
//!
//! Pages work without JavaScript; one small script adds a copy button. Every response
//! carries a strict Content-Security-Policy; user text is escaped by the templates and
//! README/changelog HTML is sanitized. Forms need the session's CSRF token (or, for
//! sign-in, a double-submit cookie) and a same-origin request.

mod assets;
mod facets;
mod format;
mod input;
mod markdown;
mod pages;
mod session;

use std::sync::Arc;
use std::time::Duration;

use agora_registry::Registry;
use agora_server::AppState;
use axum::Router;
use axum::routing::{get, post};

pub use markdown::render_markdown;

/// How the web pages behave.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (and use the `__Host-` prefix): on when the registry is served
    /// over HTTPS. Without it, cookies are still `Secure` for requests that arrive with
    /// `X-Forwarded-Proto: https` from a TLS-terminating proxy.
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// The name shown in the header and titles.
    pub site_name: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookies: false,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            site_name: "Agora".into(),
        }
    }
}

/// What every page handler can reach.
#[derive(Clone)]
pub(crate) struct Web {
    pub registry: Arc<Registry>,
    pub config: Arc<WebConfig>,
    pub docs: Arc<markdown::DocCache>,
    pub facets: Arc<facets::FacetCache>,
}

/// The web pages and the API together: the application `agora serve` runs.
pub fn app(state: AppState, config: WebConfig) -> Router {
    let web = Web {
        registry: state.registry.clone(),
        config: Arc::new(config),
        docs: Arc::new(markdown::DocCache::new(64 * 1024 * 1024)),
        facets: Arc::new(facets::FacetCache::default()),
    };
    web.facets.warm(&web.registry.meta);
    let pages = Router::new()
        .route("/", get(pages::home::home))
        .route("/search", get(pages::search::search))
        .route("/plugins/{publisher}/{name}", get(pages::plugin::plugin))
        .route(
            "/plugins/{publisher}/{name}/review",
            post(pages::plugin::write_review),
        )
        .route("/reviews/{id}/hide", post(pages::plugin::hide_review))
        .route("/reviews/{id}/show", post(pages::plugin::show_review))
        .route(
            "/publishers/{name}",
            get(pages::publisher::publisher).post(pages::publisher::update),
        )
        .route(
            "/login",
            get(pages::account::login_form).post(pages::account::login),
        )
        .route("/logout", post(pages::account::logout))
        .route("/account", get(pages::account::account))
        .route("/account/tokens", post(pages::account::create_token))
        .route(
            "/account/tokens/{id}/revoke",
            post(pages::account::revoke_token),
        )
        .route("/account/password", post(pages::account::change_password))
        .route(
            "/account/invitations/{publisher}/{answer}",
            post(pages::account::answer_invitation),
        )
        .route("/admin", get(pages::admin::admin))
        .route("/static/{file}", get(assets::asset))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            session::private_registry_gate,
        ))
        .layer(axum::middleware::from_fn(input::reject_control_characters))
        .layer(axum::middleware::from_fn(session::security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(web);
    agora_server::api_routes(state)
        .merge(api_fallback_router())
        .merge(pages)
}

/// Unknown paths under `/api/` get the API's JSON problem, not an HTML page.
fn api_fallback_router() -> Router {
    Router::new()
        .route("/api", axum::routing::any(agora_server::api_not_found))
        .route(
            "/api/{*rest}",
            axum::routing::any(agora_server::api_not_found),
        )
}
