//! The HTTP surface: routes grouped by resource, one module each. Each handler carries
//! its OpenAPI annotation; the document at `/api/v1/openapi.json` is generated from them,
//! completed with the answers every route shares (`openapi::complete`).

mod advisories;
mod analytics;
mod audit;
pub(crate) mod blobs;
mod convert;
#[cfg(test)]
mod cors_test;
#[cfg(test)]
mod docs_test;
mod entitlements;
#[cfg(test)]
mod headers_test;
mod health;
mod keys;
mod log;
mod openapi;
#[cfg(test)]
mod openapi_test;
mod plugins;
mod publishers;
mod reviews;
mod tenants;
#[cfg(test)]
mod testing;
mod tokens;
mod users;
mod verifications;
mod versions;
mod webhooks;

use axum::extract::FromRequestParts;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agora registry API",
        version = "1",
        description = "Publish, find and fetch signed plugins. Errors are RFC 9457 problem details (application/problem+json) whose `type` is `urn:agora:problem:<kind>`. A token is sent as `Authorization: Bearer <token>`: required where an operation's security says so, optional elsewhere (it shows private plugins to their members), and required on every operation but the probes in a private registry."
    ),
    components(schemas(agora_core::api::Problem)),
    // By default a token is optional; operations that need one say so.
    security((), ("token" = [])),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(health::manifest_schema))
        .routes(routes!(plugins::search))
        .routes(routes!(plugins::detail, plugins::update))
        .routes(routes!(reviews::list))
        .routes(routes!(reviews::write_mine))
        .routes(routes!(reviews::hide, reviews::show))
        .routes(routes!(versions::list, versions::publish))
        .routes(routes!(versions::detail, versions::change_lifecycle))
        .routes(routes!(versions::verification))
        .routes(routes!(versions::review_verification))
        .routes(routes!(verifications::queue))
        .routes(routes!(blobs::upload, blobs::download, blobs::head))
        .routes(routes!(publishers::list, publishers::create))
        .routes(routes!(publishers::detail, publishers::update))
        .routes(routes!(publishers::members, publishers::add_member))
        .routes(routes!(publishers::remove_member))
        .routes(routes!(publishers::publisher_invitations))
        .routes(routes!(publishers::cancel_invitation))
        .routes(routes!(publishers::accept_invitation))
        .routes(routes!(publishers::my_invitations))
        .routes(routes!(keys::list, keys::add))
        .routes(routes!(keys::revoke))
        .routes(routes!(log::key))
        .routes(routes!(log::checkpoint))
        .routes(routes!(log::inclusion))
        .routes(routes!(log::consistency))
        .routes(routes!(log::entries))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::set_password))
        .routes(routes!(audit::list))
        .routes(routes!(advisories::import))
        .routes(routes!(webhooks::list_registry, webhooks::create_registry))
        .routes(routes!(
            webhooks::list_for_publisher,
            webhooks::create_for_publisher
        ))
        .routes(routes!(webhooks::remove))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::ping))
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(tenants::get_tenant))
        .routes(routes!(
            tenants::get_tenant_policy,
            tenants::set_tenant_policy
        ))
        .routes(routes!(tenants::list_tenant_members))
        .routes(routes!(
            tenants::set_tenant_member,
            tenants::remove_tenant_member
        ))
        .routes(routes!(tenants::list_instances, tenants::register_instance))
        .routes(routes!(tenants::revoke_instance))
        .routes(routes!(tenants::list_approvals))
        .routes(routes!(tenants::preview_approval))
        .routes(routes!(tenants::approve_plugin, tenants::remove_approval))
        .routes(routes!(tenants::rollback_approval))
        .routes(routes!(tenants::list_updates))
        .routes(routes!(tenants::apply_updates))
        .routes(routes!(tenants::fleet))
        .routes(routes!(tenants::instance_desired))
        .routes(routes!(tenants::instance_report))
        .routes(routes!(entitlements::list_plugin_entitlements))
        .routes(routes!(
            entitlements::grant_entitlement,
            entitlements::revoke_entitlement
        ))
        .routes(routes!(entitlements::list_tenant_entitlements))
        .routes(routes!(analytics::registry))
        .routes(routes!(analytics::publisher))
        .routes(routes!(analytics::plugin))
        .routes(routes!(analytics::tenant))
}

/// The API's routes and their complete OpenAPI document.
fn routes_and_document() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = api_routes().split_for_parts();
    openapi::complete(&mut doc);
    (api, doc)
}

/// The OpenAPI document of this server's API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes_and_document().1
}

pub fn router(state: AppState) -> Router {
    let cors = state.cors.as_ref().map(crate::cors::Cors::layer);
    let metrics_handle = metrics::handle();
    let json_limit = state.http.max_json_bytes;
    let (api, doc) = routes_and_document();
    let doc = Arc::new(doc.to_json().unwrap_or_default());
    let router = api
        .route(
            "/api/v1/openapi.json",
            get(move || async move { json_response(doc.as_str().to_owned()) }),
        )
        .route("/metrics", {
            let intake = state.registry.analytics.clone();
            get(move || async move {
                metrics::analytics(&intake.stats());
                metrics_handle.render()
            })
        })
        .method_not_allowed_fallback(|| async {
            ApiError::of(
                agora_core::ProblemKind::MethodNotAllowed,
                "this endpoint does not accept that method",
            )
        })
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(
            crate::text::reject_control_characters,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            private_registry_gate,
        ))
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn(crate::error::catch_panics))
        .with_state(state.clone())
        .merge(crate::oci::router(state))
        .layer(axum::middleware::from_fn(crate::headers::security_headers));
    // Outermost: a preflight is answered before the private registry's gate (it carries
    // no token), and every answer gets the headers.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
}

/// In a private registry, every API request but the health probes needs a token. (A
/// token that is present is checked by the handlers as usual.)
async fn private_registry_gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Instances authenticate with their own credential, which their handlers check.
    let open = matches!(request.uri().path(), "/health" | "/ready" | "/metrics")
        || request.uri().path().starts_with("/api/v1/instance/");
    if !state.registry.sign_in_required || open {
        return next.run(request).await;
    }
    // The token is checked here, not only its presence: some handlers never look at it.
    let (mut parts, body) = request.into_parts();
    match crate::auth::MaybeCaller::from_request_parts(&mut parts, &state).await {
        Ok(maybe) if !maybe.is_anonymous() => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Ok(_) => ApiError::unauthorized(
            "this is a private registry: every request needs a token (`Authorization: Bearer <token>`, see `agora login`)",
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn json_response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
