//! Publishers (namespaces), their members and invitations: adapters over
//! `agora_registry::publishers`.

use agora_core::api::{
    AddMember, CreatePublisher, Invitation, Member, MemberChangeResult, Problem, Publisher,
    PublisherSettings,
};
use agora_registry::publishers::{self, MemberOutcome};
use agora_registry::time::rfc3339;
use agora_store::{InvitationRecord, PublisherRecord};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::openapi::PROBLEM;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

async fn publisher_view(state: &AppState, p: PublisherRecord) -> Result<Publisher, ApiError> {
    let members = publishers::members(&state.registry, &p).await?;
    Ok(Publisher {
        name: p.name,
        display_name: p.display_name,
        members: members
            .into_iter()
            .map(|m| Member {
                username: m.username,
                role: m.role,
            })
            .collect(),
        created_at: rfc3339(p.created_at),
        verified: p.verified_at.is_some(),
        email: p.email,
        url: p.url,
    })
}

fn invitation_view(i: InvitationRecord) -> Invitation {
    Invitation {
        publisher: i.publisher,
        username: i.username,
        role: i.role,
        invited_by: i.invited_by,
        created_at: rfc3339(i.created_at),
        expires_at: rfc3339(i.expires_at),
    }
}

/// Change a publisher's contacts (owners) or verification (administrators).
#[utoipa::path(patch, path = "/api/v1/publishers/{publisher}", tag = "publishers", operation_id = "update_publisher",
    params(("publisher" = String, Path, description = "The publisher's name")), request_body = PublisherSettings, security(("token" = [])),
    responses((status = 200, description = "The publisher with its new settings", body = Publisher),
        (status = 403, description = "`forbidden`: contacts changed by someone other than an owner with `publish:P` or `publish:*` (or an administrator), or verification by someone other than an administrator", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM)))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(settings): ApiJson<PublisherSettings>,
) -> Result<Json<Publisher>, ApiError> {
    let p = publishers::update_settings(&state.registry, &caller, &name, settings).await?;
    Ok(Json(publisher_view(&state, p).await?))
}

/// Every publisher.
#[utoipa::path(get, path = "/api/v1/publishers", tag = "publishers", operation_id = "list_publishers",
    responses((status = 200, description = "Every publisher", body = Vec<Publisher>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Publisher>>, ApiError> {
    let mut out = Vec::new();
    for p in publishers::list(&state.registry).await? {
        out.push(publisher_view(&state, p).await?);
    }
    Ok(Json(out))
}

/// Create a publisher; the caller becomes its owner. Needs the publisher or admin role and
/// `publish:NAME` or `publish:*`.
#[utoipa::path(post, path = "/api/v1/publishers", tag = "publishers", operation_id = "create_publisher", request_body = CreatePublisher,
    security(("token" = [])),
    responses((status = 201, description = "Created; the caller is its owner", body = Publisher),
        (status = 403, description = "`forbidden`: not of the publisher or admin role, or the token lacks `publish:NAME` or `publish:*`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the name is taken", body = Problem, content_type = PROBLEM)))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<CreatePublisher>,
) -> Result<(StatusCode, Json<Publisher>), ApiError> {
    let p = publishers::create(&state.registry, &caller, request).await?;
    Ok((StatusCode::CREATED, Json(publisher_view(&state, p).await?)))
}

/// One publisher and its members.
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}", tag = "publishers", operation_id = "get_publisher",
    params(("publisher" = String, Path, description = "The publisher's name")),
    responses((status = 200, description = "The publisher", body = Publisher), (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM)))]
pub async fn detail(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Publisher>, ApiError> {
    let p = publishers::get(&state.registry, &name).await?;
    Ok(Json(publisher_view(&state, p).await?))
}

/// The members of a publisher.
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/members", tag = "publishers", operation_id = "list_members",
    params(("publisher" = String, Path, description = "The publisher's name")),
    responses((status = 200, description = "The members and their roles", body = Vec<Member>), (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM)))]
pub async fn members(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let p = publishers::get(&state.registry, &name).await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// Add a member. An administrator adds (or changes the role of) an existing user at once;
/// an owner (token with `members:PUBLISHER`) changes the role of a member, or invites
/// anyone else: the answer is the same whether or not an account of that name exists.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/members", tag = "publishers", operation_id = "add_member",
    params(("publisher" = String, Path, description = "The publisher's name")), request_body = AddMember, security(("token" = [])),
    responses((status = 200, description = "What was done (`added`, `role-changed` or `invited`) and the members", body = MemberChangeResult),
        (status = 403, description = "`forbidden`: not an owner of the publisher with `members:P` or `members:*`, nor an administrator", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the publisher has too many open invitations, or the change would leave it without an owner", body = Problem, content_type = PROBLEM)))]
pub async fn add_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<AddMember>,
) -> Result<Json<MemberChangeResult>, ApiError> {
    let (p, outcome) = publishers::add_member(&state.registry, &caller, &name, request).await?;
    let (outcome, invitation) = match outcome {
        MemberOutcome::Added => ("added", None),
        MemberOutcome::RoleChanged => ("role-changed", None),
        MemberOutcome::Invited(i) => ("invited", Some(invitation_view(i))),
    };
    Ok(Json(MemberChangeResult {
        outcome: outcome.into(),
        members: publisher_view(&state, p).await?.members,
        invitation,
    }))
}

/// Remove a member, or leave. Owners (token with `members:PUBLISHER`) remove anyone; a
/// member may remove themselves; administrators anyone. The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/publishers/{publisher}/members/{username}", tag = "publishers", operation_id = "remove_member",
    params(("publisher" = String, Path, description = "The publisher's name"), ("username" = String, Path, description = "A user's name")), security(("token" = [])),
    responses((status = 200, description = "The remaining members", body = Vec<Member>),
        (status = 403, description = "`forbidden`: not an owner of the publisher with `members:P` or `members:*`, nor an administrator; or, leaving, the token lacks `members:P` or `members:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher, or the user is not a member", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: the last owner cannot be removed", body = Problem, content_type = PROBLEM)))]
pub async fn remove_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((name, username)): ApiPath<(String, String)>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let p = publishers::remove_member(&state.registry, &caller, &name, &username).await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// The publisher's open invitations (owners and administrators).
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/invitations", tag = "publishers", operation_id = "list_publisher_invitations",
    params(("publisher" = String, Path, description = "The publisher's name")), security(("token" = [])),
    responses((status = 200, description = "The open invitations", body = Vec<Invitation>),
        (status = 403, description = "`forbidden`: not an owner of the publisher with `members:P` or `members:*`, nor an administrator", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher", body = Problem, content_type = PROBLEM)))]
pub async fn publisher_invitations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    let list = publishers::invitations_of(&state.registry, &caller, &name).await?;
    Ok(Json(list.into_iter().map(invitation_view).collect()))
}

/// Withdraw an invitation (owners, administrators) or decline one (the invited user).
#[utoipa::path(delete, path = "/api/v1/publishers/{publisher}/invitations/{username}", tag = "publishers", operation_id = "cancel_invitation",
    params(("publisher" = String, Path, description = "The publisher's name"), ("username" = String, Path, description = "A user's name")), security(("token" = [])),
    responses((status = 204, description = "Withdrawn or declined"),
        (status = 403, description = "`forbidden`: not an owner of the publisher with `members:P` or `members:*`, nor an administrator; or, declining, the token lacks `members:P` or `members:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher, or no open invitation of the user", body = Problem, content_type = PROBLEM)))]
pub async fn cancel_invitation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((name, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    publishers::withdraw(&state.registry, &caller, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation: the caller joins the publisher with the invitation's role. Needs
/// a token with `members:PUBLISHER` or `members:*` (a web session has it).
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/invitations/accept", tag = "publishers", operation_id = "accept_invitation",
    params(("publisher" = String, Path, description = "The publisher's name")), security(("token" = [])),
    responses((status = 200, description = "Joined; the members", body = Vec<Member>),
        (status = 403, description = "`forbidden`: the token lacks `members:P` or `members:*`", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not-found`: no such publisher, or no open invitation of the caller", body = Problem, content_type = PROBLEM)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let p = publishers::accept(&state.registry, &caller, &name).await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// The caller's open invitations.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "publishers", operation_id = "list_my_invitations", security(("token" = [])),
    responses((status = 200, description = "The caller's open invitations", body = Vec<Invitation>)))]
pub async fn my_invitations(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    let list = publishers::my_invitations(&state.registry, &caller).await?;
    Ok(Json(list.into_iter().map(invitation_view).collect()))
}

#[cfg(test)]
mod tests {
    use agora_store::Role;
    use axum::http::{Method, StatusCode};
    use serde_json::json;

    use crate::api::testing::TestApp;

    #[tokio::test]
    async fn an_owner_invites_and_the_invited_user_accepts() {
        let app = TestApp::new().await;
        let alice = app
            .user("alice", Role::Publisher, "publish:* members:*")
            .await;
        let bob = app
            .user("bob", Role::Publisher, "publish:* members:*")
            .await;
        app.publisher(&alice, "acme").await;

        let invited = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/members",
                Some(&alice),
                Some(json!({ "username": "bob" })),
            )
            .await;
        insta::assert_json_snapshot!("invite", invited.snapshot());
        let ghost = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/members",
                Some(&alice),
                Some(json!({ "username": "nobody" })),
            )
            .await;
        // The answer does not tell whether an account of that name exists.
        assert_eq!(ghost.status, invited.status);
        assert_eq!(ghost.body["outcome"], invited.body["outcome"]);
        assert_eq!(ghost.body["invitation"]["username"], "nobody");

        let mine = app.get("/api/v1/invitations", Some(&bob)).await;
        insta::assert_json_snapshot!("my_invitations", mine.snapshot());
        let accepted = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/invitations/accept",
                Some(&bob),
                None,
            )
            .await;
        insta::assert_json_snapshot!("accept", accepted.snapshot());
    }

    #[tokio::test]
    async fn members_are_managed_by_owners_and_the_last_owner_stays() {
        let app = TestApp::new().await;
        let alice = app
            .user("alice", Role::Publisher, "publish:* members:*")
            .await;
        let bob = app
            .user("bob", Role::Publisher, "publish:* members:*")
            .await;
        app.publisher(&alice, "acme").await;

        let by_outsider = app
            .call(
                Method::POST,
                "/api/v1/publishers/acme/members",
                Some(&bob),
                Some(json!({ "username": "bob", "role": "owner" })),
            )
            .await;
        assert_eq!(by_outsider.status, StatusCode::FORBIDDEN, "{by_outsider:?}");

        let last_owner = app
            .call(
                Method::DELETE,
                "/api/v1/publishers/acme/members/alice",
                Some(&alice),
                None,
            )
            .await;
        insta::assert_json_snapshot!("remove_last_owner", last_owner.snapshot());

        let bad_name = app
            .call(
                Method::POST,
                "/api/v1/publishers",
                Some(&alice),
                Some(json!({ "name": "Not A Slug" })),
            )
            .await;
        insta::assert_json_snapshot!("create_bad_name", bad_name.snapshot());

        let detail = app.get("/api/v1/publishers/acme", None).await;
        insta::assert_json_snapshot!("detail", detail.snapshot());
    }
}
