//! Entitlements: adapters over `agora_registry::entitlements`. Publishers offer a private
//! plugin to chosen tenants; a tenant's members list what is offered to it.

use agora_core::api::Problem;
use agora_core::tenant::{Entitlement, EntitlementList, RevokedEntitlement};
use agora_registry::entitlements;
use axum::Json;
use axum::extract::State;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::AppState;

/// The tenants a plugin is offered to (the publisher's members who may see its private plugins, and administrators).
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/entitlements", tag = "entitlements", operation_id = "list_plugin_entitlements",
    params(("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name")), security(("token" = [])),
    responses((status = 200, description = "By tenant name", body = EntitlementList),
        (status = 403, description = "`forbidden`: not a member of the publisher, or the token cannot see its private plugins", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin, or a private one the caller may not see", body = Problem, content_type = PROBLEM)))]
pub async fn list_plugin_entitlements(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name)): ApiPath<(String, String)>,
) -> Result<Json<EntitlementList>, ApiError> {
    Ok(Json(EntitlementList {
        entitlements: entitlements::of_plugin(&state.registry, &caller, &publisher, &name).await?,
    }))
}

/// Offer a private plugin to a tenant (a token with a publish scope for the publisher): the tenant's members and instances see it, and its administrators may approve it. Audited as `entitlement.grant`; granting twice changes nothing.
#[utoipa::path(put, path = "/api/v1/plugins/{publisher}/{name}/entitlements/{tenant}", tag = "entitlements", operation_id = "grant_entitlement",
    params(("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name"), ("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "The entitlement", body = Entitlement),
        (status = 403, description = "`forbidden`: the token has no publish scope for the publisher, or the user is not its member", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin (or a private one the caller may not see), or no such tenant", body = Problem, content_type = PROBLEM)))]
pub async fn grant_entitlement(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name, tenant)): ApiPath<(String, String, String)>,
) -> Result<Json<Entitlement>, ApiError> {
    Ok(Json(
        entitlements::grant(&state.registry, &caller, &publisher, &name, &tenant).await?,
    ))
}

/// Withdraw a plugin's offer to a tenant (a token with a publish scope for the publisher). When the tenant can no longer see the plugin and had approved it, it leaves the tenant's approved set too (a logged removal), and its instances remove it. Audited as `entitlement.revoke`.
#[utoipa::path(delete, path = "/api/v1/plugins/{publisher}/{name}/entitlements/{tenant}", tag = "entitlements", operation_id = "revoke_entitlement",
    params(("publisher" = String, Path, description = "The plugin's publisher"), ("name" = String, Path, description = "The plugin's name"), ("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "What was revoked and removed", body = RevokedEntitlement),
        (status = 403, description = "`forbidden`: the token has no publish scope for the publisher, or the user is not its member", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such plugin (or a private one the caller may not see), or no such tenant", body = Problem, content_type = PROBLEM)))]
pub async fn revoke_entitlement(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((publisher, name, tenant)): ApiPath<(String, String, String)>,
) -> Result<Json<RevokedEntitlement>, ApiError> {
    Ok(Json(
        entitlements::revoke(&state.registry, &caller, &publisher, &name, &tenant).await?,
    ))
}

/// The private plugins offered to a tenant (its members, token with `tenant:T` or `tenant:*`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/entitlements", tag = "entitlements", operation_id = "list_tenant_entitlements",
    params(("tenant" = String, Path, description = "The tenant's name")), security(("token" = [])),
    responses((status = 200, description = "By publisher and name", body = EntitlementList),
        (status = 403, description = "`forbidden`: the token lacks `tenant:T` or `tenant:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such tenant (or the caller is not in it)", body = Problem, content_type = PROBLEM)))]
pub async fn list_tenant_entitlements(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<EntitlementList>, ApiError> {
    Ok(Json(EntitlementList {
        entitlements: entitlements::of_tenant(&state.registry, &caller, &tenant).await?,
    }))
}

#[cfg(test)]
mod tests {
    use agora_core::Digest;
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::{TestApp, module};

    /// acme/tool (private) by alice; tenants corp (carol administers, dave a member) and
    /// other (olga administers); an instance of each.
    struct World {
        app: TestApp,
        alice: String,
        carol: String,
        dave: String,
        olga: String,
        corp_instance: String,
        other_instance: String,
    }

    async fn world() -> World {
        let app = TestApp::new().await;
        let root = app.user("root", Role::Admin, "admin").await;
        let alice = app.user("alice", Role::Publisher, "publish:*").await;
        let key = app.publisher(&alice, "acme").await;
        let p = app.publish(&alice, &key, "acme", "tool", "1.0.0").await;
        assert_eq!(p.status, StatusCode::CREATED, "{p:?}");
        let private = app
            .call(
                Method::PATCH,
                "/api/v1/plugins/acme/tool",
                Some(&alice),
                Some(json!({"visibility": "private"})),
            )
            .await;
        assert_eq!(private.status, StatusCode::OK, "{private:?}");
        let carol = app.user("carol", Role::User, "tenant:corp").await;
        let dave = app.user("dave", Role::User, "tenant:*").await;
        let olga = app.user("olga", Role::User, "tenant:*").await;
        let mut instances = Vec::new();
        for (tenant, admin, token) in [("corp", "carol", &carol), ("other", "olga", &olga)] {
            let created = app
                .call(
                    Method::POST,
                    "/api/v1/tenants",
                    Some(&root),
                    Some(json!({"name": tenant, "admin": admin})),
                )
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
            let registered = app
                .call(
                    Method::POST,
                    &format!("/api/v1/tenants/{tenant}/instances"),
                    Some(token),
                    Some(json!({"name": "edge-1"})),
                )
                .await;
            assert_eq!(registered.status, StatusCode::CREATED, "{registered:?}");
            instances.push(registered.body["token"].as_str().unwrap().to_owned());
        }
        let added = app
            .call(
                Method::PUT,
                "/api/v1/tenants/corp/members/dave",
                Some(&carol),
                Some(json!({"role": "member"})),
            )
            .await;
        assert_eq!(added.status, StatusCode::OK, "{added:?}");
        let other_instance = instances.pop().unwrap();
        let corp_instance = instances.pop().unwrap();
        World {
            app,
            alice,
            carol,
            dave,
            olga,
            corp_instance,
            other_instance,
        }
    }

    /// What `token` sees of acme/tool: its page, its release, its module and a search hit.
    async fn sees(app: &TestApp, token: &str) -> [bool; 4] {
        let found = |status: StatusCode| match status {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("{other}"),
        };
        let digest = Digest::of(module("acme", "tool", "1.0.0").as_bytes());
        let search = app.get("/api/v1/plugins?q=tool", Some(token)).await;
        [
            found(
                app.get("/api/v1/plugins/acme/tool", Some(token))
                    .await
                    .status,
            ),
            found(
                app.get("/api/v1/plugins/acme/tool/versions/1.0.0", Some(token))
                    .await
                    .status,
            ),
            found(
                app.get(&format!("/api/v1/blobs/{digest}"), Some(token))
                    .await
                    .status,
            ),
            search.body["items"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
        ]
    }

    async fn approve(app: &TestApp, tenant: &str, token: &str) -> crate::api::testing::Answer {
        app.call(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/plugins/acme/tool"),
            Some(token),
            Some(json!({"version": "1.0.0"})),
        )
        .await
    }

    #[tokio::test]
    async fn an_entitled_tenant_alone_sees_installs_and_downloads_a_private_plugin() {
        let w = world().await;
        let app = &w.app;
        for token in [
            &w.carol,
            &w.dave,
            &w.corp_instance,
            &w.olga,
            &w.other_instance,
        ] {
            assert_eq!(sees(app, token).await, [false; 4], "not offered yet");
        }
        let refused = approve(app, "corp", &w.carol).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{refused:?}");

        // Only the publisher grants.
        let path = "/api/v1/plugins/acme/tool/entitlements/corp";
        let denied = app.call(Method::PUT, path, Some(&w.carol), None).await;
        assert_eq!(denied.status, StatusCode::NOT_FOUND, "{denied:?}");
        let missing = app
            .call(
                Method::PUT,
                "/api/v1/plugins/acme/tool/entitlements/nope",
                Some(&w.alice),
                None,
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
        let granted = app.call(Method::PUT, path, Some(&w.alice), None).await;
        assert_eq!(granted.status, StatusCode::OK, "{granted:?}");
        assert_eq!(granted.body["tenant"], "corp");
        assert_eq!(granted.body["granted_by"], "alice");

        // corp's members and its instance see it; other's do not.
        for token in [&w.carol, &w.dave, &w.corp_instance] {
            assert_eq!(sees(app, token).await, [true; 4]);
        }
        for token in [&w.olga, &w.other_instance] {
            assert_eq!(sees(app, token).await, [false; 4]);
        }
        // A member's token without a tenant scope carries no entitlement.
        let narrow = app.meta().user_by_name("dave").await.unwrap().unwrap();
        let narrow = app.token(narrow.id, "review").await;
        assert_eq!(sees(app, &narrow).await, [false; 4]);
        // An instance credential reads, and does nothing else.
        let refused = app
            .call(Method::PUT, path, Some(&w.corp_instance), None)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

        assert_eq!(
            approve(app, "other", &w.olga).await.status,
            StatusCode::NOT_FOUND
        );
        let approved = approve(app, "corp", &w.carol).await;
        assert_eq!(approved.status, StatusCode::OK, "{approved:?}");
        let set = app
            .get("/api/v1/instance/desired", Some(&w.corp_instance))
            .await;
        assert_eq!(set.body["plugins"][0]["plugin"], "acme/tool", "{set:?}");

        // Who it is offered to: the publisher sees; the tenant sees what it is offered.
        let listed = app
            .get("/api/v1/plugins/acme/tool/entitlements", Some(&w.alice))
            .await;
        assert_eq!(
            listed.body["entitlements"][0]["tenant"], "corp",
            "{listed:?}"
        );
        let listed = app
            .get("/api/v1/plugins/acme/tool/entitlements", Some(&w.dave))
            .await;
        assert_eq!(listed.status, StatusCode::FORBIDDEN, "{listed:?}");
        let offered = app
            .get("/api/v1/tenants/corp/entitlements", Some(&w.dave))
            .await;
        assert_eq!(offered.body["entitlements"][0]["plugin"], "acme/tool");
        let offered = app
            .get("/api/v1/tenants/other/entitlements", Some(&w.olga))
            .await;
        assert_eq!(offered.body["entitlements"], json!([]));

        // Revoking takes it out of corp's set too; corp sees it no more.
        let revoked = app.call(Method::DELETE, path, Some(&w.alice), None).await;
        assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
        assert_eq!(revoked.body, json!({"revoked": true, "pin_removed": true}));
        let set = app
            .get("/api/v1/instance/desired", Some(&w.corp_instance))
            .await;
        assert_eq!(set.body["plugins"], json!([]), "{set:?}");
        for token in [&w.carol, &w.dave, &w.corp_instance] {
            assert_eq!(sees(app, token).await, [false; 4]);
        }
        let again = app.call(Method::DELETE, path, Some(&w.alice), None).await;
        assert_eq!(again.body, json!({"revoked": false, "pin_removed": false}));

        // Both were audited, with the pin's removal.
        let audit: Vec<String> = app
            .meta()
            .audit_events(None, 50)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.action, e.target))
            .collect();
        for wanted in [
            "entitlement.grant acme/tool:corp",
            "entitlement.revoke acme/tool:corp",
            "tenant.pin corp:acme/tool",
        ] {
            assert!(audit.iter().any(|a| a == wanted), "{wanted} in {audit:#?}");
        }
    }
}
