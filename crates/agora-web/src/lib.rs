//! Agora's web pages, rendered on the server from the same binary as the API: the catalog
//! (home, search with facets), plugin pages (README, install command, capabilities,
//! versions with their signatures and log entries, ratings and reviews), publisher pages,
//! sign-in, the account page (tokens, password), administration, and the control plane's
//! tenant pages (approving a plugin for a tenant, its approved set and instances, updates,
//! the fleet), and analytics (the registry's, a publisher's, a plugin's, a tenant's).
//!
//! Pages work without JavaScript; one small script adds a copy button. Every response
//! carries a strict Content-Security-Policy; user text is escaped by the templates and
//! README/changelog HTML is sanitized. Forms need the session's CSRF token (or, for
//! sign-in, a double-submit cookie) and a same-origin request.

mod assets;
pub mod charts;
mod error;
mod facets;
mod format;
mod input;
mod layout;
mod markdown;
mod notice;
mod pages;
mod session;
mod state;

use agora_server::AppState;
use axum::Router;
use axum::routing::{get, post};

pub use markdown::render_markdown;
pub use state::WebConfig;

use state::Web;

/// The web pages and the API together: the application `agora serve` runs.
pub fn app(state: AppState, config: WebConfig) -> Router {
    let web = Web::new(state.registry.clone(), config);
    let pages = Router::new()
        .route("/", get(pages::home::home))
        .route("/search", get(pages::search::search))
        .route("/plugins/{publisher}/{name}", get(pages::plugin::plugin))
        .route(
            "/plugins/{publisher}/{name}/review",
            post(pages::plugin::write_review),
        )
        .route(
            "/plugins/{publisher}/{name}/entitlements",
            post(pages::plugin::grant),
        )
        .route(
            "/plugins/{publisher}/{name}/entitlements/{tenant}/revoke",
            post(pages::plugin::revoke),
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
        .route(
            "/logout",
            get(pages::account::logout_page).post(pages::account::logout),
        )
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
        .route("/admin/reviews", get(pages::admin_reviews::reviews))
        .route(
            "/admin/reviews/{publisher}/{name}/{version}",
            post(pages::admin_reviews::decide),
        )
        .route("/tenants", get(pages::tenants::list))
        .route("/tenants/{tenant}", get(pages::tenants::tenant))
        .route(
            "/tenants/{tenant}/install/{publisher}/{name}",
            get(pages::tenant_install::preview).post(pages::tenant_install::approve),
        )
        .route(
            "/tenants/{tenant}/plugins/{publisher}/{name}/remove",
            post(pages::tenants::remove),
        )
        .route(
            "/tenants/{tenant}/plugins/{publisher}/{name}/rollback",
            post(pages::tenant_updates::rollback),
        )
        .route(
            "/tenants/{tenant}/updates",
            get(pages::tenant_updates::updates),
        )
        .route(
            "/tenants/{tenant}/updates/apply",
            post(pages::tenant_updates::apply),
        )
        .route("/tenants/{tenant}/fleet", get(pages::tenant_fleet::fleet))
        .route("/admin/analytics", get(pages::analytics::admin))
        .route("/admin/analytics.csv", get(pages::analytics::admin_csv))
        .route(
            "/publishers/{publisher}/analytics",
            get(pages::analytics::publisher),
        )
        .route(
            "/publishers/{publisher}/analytics.csv",
            get(pages::analytics::publisher_csv),
        )
        .route(
            "/plugins/{publisher}/{name}/analytics",
            get(pages::analytics::plugin),
        )
        .route(
            "/plugins/{publisher}/{name}/analytics.csv",
            get(pages::analytics::plugin_csv),
        )
        .route("/tenants/{tenant}/analytics", get(pages::analytics::tenant))
        .route(
            "/tenants/{tenant}/analytics.csv",
            get(pages::analytics::tenant_csv),
        )
        .route("/static/{file}", get(assets::asset))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            session::private_registry_gate,
        ))
        .layer(axum::middleware::from_fn(input::reject_control_characters))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            error::framed,
        ))
        .layer(axum::middleware::from_fn(session::security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(web);
    let app = agora_server::api_routes(state.clone())
        .merge(api_fallback_router())
        .merge(pages);
    agora_server::edge(app, state)
}

/// Unknown paths under `/api/` get the API's JSON problem, not an HTML page.
fn api_fallback_router() -> Router {
    Router::new()
        .route("/api", axum::routing::any(agora_server::api_not_found))
        .route(
            "/api/{*rest}",
            axum::routing::any(agora_server::api_not_found),
        )
        .layer(axum::middleware::from_fn(
            agora_server::headers::security_headers,
        ))
}
