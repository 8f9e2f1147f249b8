//! Publishers (namespaces), their members and invitations.
//!
//! Owners change who belongs (with a `members:` scope); administrators add members at
//! once, owners invite and the invited user accepts, so an owner learns nothing about
//! which accounts exist. A publisher always keeps an owner.

use agora_core::api::{
    AddMember, CreatePublisher, Invitation, Member, MemberChangeResult, Publisher,
    PublisherSettings,
};
use agora_core::name::{SLUG_RULE, Slug};
use agora_store::{InvitationRecord, MemberChange, PublisherRecord, now_ms};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::time::rfc3339;

pub async fn publisher_or_404(state: &AppState, name: &str) -> Result<PublisherRecord, ApiError> {
    state.meta.publisher_by_name(name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "publisher {name} not found; create it with `agora publisher create {name}`"
        ))
    })
}

async fn publisher_view(state: &AppState, p: PublisherRecord) -> Result<Publisher, ApiError> {
    let members = state.meta.members(p.id).await?;
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

/// A contact field: `shape` holds, no spaces, control characters, quotes or angle brackets.
fn contact(
    field: &str,
    raw: &str,
    shape: bool,
    what: &str,
    expected: &str,
) -> Result<(), ApiError> {
    let clean = !raw
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>\"'".contains(c));
    if shape && clean {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{:?} is not {what}", crate::extract::truncate(raw)),
            Some(expected),
        ))
    }
}

/// Checks a contact e-mail address: one `@` between two non-empty parts, at most 254.
pub fn valid_email(raw: &str) -> Result<(), ApiError> {
    let shape = raw.len() <= 254
        && raw.split('@').count() == 2
        && raw.split('@').all(|part| !part.is_empty());
    contact(
        "email",
        raw,
        shape,
        "an e-mail address",
        "an address such as security@example.com",
    )
}

/// Checks a contact web address: `https://` or `http://` and a host, at most 300.
pub fn valid_url(raw: &str) -> Result<(), ApiError> {
    let shape = raw.len() <= 300
        && (raw.starts_with("https://") || raw.starts_with("http://"))
        && raw.len() > "https://".len();
    contact(
        "url",
        raw,
        shape,
        "a web address",
        "an http:// or https:// address",
    )
}

/// Changes a publisher's contacts (owners, admins) and verification (admins); what the API
/// and the web forms share.
pub async fn apply_settings(
    state: &AppState,
    p: &PublisherRecord,
    settings: PublisherSettings,
    actor: &agora_store::UserRecord,
    is_admin: bool,
) -> Result<(), ApiError> {
    let is_owner = is_owner(state, p, &actor.username).await?;
    if settings.verified.is_some() && !is_admin {
        return Err(ApiError::forbidden("only administrators verify publishers"));
    }
    if (settings.email.is_some() || settings.url.is_some()) && !is_owner && !is_admin {
        return Err(ApiError::forbidden(format!(
            "only owners of {} or administrators can change its contacts",
            p.name
        )));
    }
    let clean = |v: Option<String>| v.map(|v| v.trim().to_owned());
    let (email, url) = (clean(settings.email), clean(settings.url));
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty()) {
        valid_email(e)?;
    }
    if let Some(u) = url.as_deref().filter(|u| !u.is_empty()) {
        valid_url(u)?;
    }
    if email.is_some() || url.is_some() {
        let email = email.or(p.email.clone()).filter(|e| !e.is_empty());
        let url = url.or(p.url.clone()).filter(|u| !u.is_empty());
        state
            .meta
            .set_publisher_contacts(p.id, email.as_deref(), url.as_deref(), &actor.username)
            .await?;
    }
    if let Some(verified) = settings.verified {
        state
            .meta
            .set_publisher_verified(p.id, verified, &actor.username)
            .await?;
    }
    Ok(())
}

/// Change a publisher's contacts (owners) or verification (administrators).
#[utoipa::path(patch, path = "/api/v1/publishers/{publisher}", tag = "publishers",
    params(("publisher" = String, Path)), request_body = PublisherSettings, security(("token" = [])),
    responses((status = 200, body = Publisher), (status = 400, body = agora_core::api::Problem),
        (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(settings): ApiJson<PublisherSettings>,
) -> Result<Json<Publisher>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    if (settings.email.is_some() || settings.url.is_some()) && !caller.is_admin() {
        caller.require_publish(&p)?;
    }
    apply_settings(&state, &p, settings, &caller.user, caller.is_admin()).await?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    Ok(Json(publisher_view(&state, p).await?))
}

pub fn valid_name(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse("publisher name", raw).map_err(|_| {
        ApiError::field(
            "name",
            format!(
                "{:?} is not a valid publisher name",
                crate::extract::truncate(raw)
            ),
            Some(SLUG_RULE),
        )
    })
}

/// Every publisher.
#[utoipa::path(get, path = "/api/v1/publishers", tag = "publishers", responses((status = 200, body = Vec<Publisher>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Publisher>>, ApiError> {
    let mut out = Vec::new();
    for p in state.meta.list_publishers().await? {
        out.push(publisher_view(&state, p).await?);
    }
    Ok(Json(out))
}

/// Create a publisher; the caller becomes its owner. Needs the publisher or admin role.
#[utoipa::path(post, path = "/api/v1/publishers", tag = "publishers", request_body = CreatePublisher,
    security(("token" = [])),
    responses((status = 201, body = Publisher), (status = 403, body = agora_core::api::Problem), (status = 409, body = agora_core::api::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePublisher>,
) -> Result<(StatusCode, Json<Publisher>), ApiError> {
    let name = valid_name(&request.name)?;
    caller.require_create_publisher(name.as_str())?;
    if let Some(d) = &request.display_name
        && (d.is_empty() || d.chars().count() > 100)
    {
        return Err(ApiError::field(
            "display_name",
            "must be 1 to 100 characters",
            Some("1 to 100 characters"),
        ));
    }
    let p = state
        .meta
        .create_publisher(name.as_str(), request.display_name.as_deref(), &caller.user)
        .await?;
    Ok((StatusCode::CREATED, Json(publisher_view(&state, p).await?)))
}

/// One publisher and its members.
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}", tag = "publishers",
    params(("publisher" = String, Path)),
    responses((status = 200, body = Publisher), (status = 404, body = agora_core::api::Problem)))]
pub async fn detail(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Publisher>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    Ok(Json(publisher_view(&state, p).await?))
}

/// The members of a publisher.
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/members", tag = "publishers",
    params(("publisher" = String, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = agora_core::api::Problem)))]
pub async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// How long an invitation waits for its answer.
const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Most open invitations per publisher.
const MAX_OPEN_INVITATIONS: usize = 50;

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

async fn is_owner(state: &AppState, p: &PublisherRecord, username: &str) -> Result<bool, ApiError> {
    Ok(state
        .meta
        .members(p.id)
        .await?
        .iter()
        .any(|m| m.username == username && m.role == "owner"))
}

fn valid_role(role: Option<&str>) -> Result<&str, ApiError> {
    let role = role.unwrap_or("member");
    if ["owner", "member"].contains(&role) {
        Ok(role)
    } else {
        Err(ApiError::field(
            "role",
            format!("unknown role {:?}", crate::extract::truncate(role)),
            Some("owner or member"),
        ))
    }
}

/// Add a member. An administrator adds (or changes the role of) an existing user at once;
/// an owner (token with `members:PUBLISHER`) changes the role of a member, or invites
/// anyone else: the answer is the same whether or not an account of that name exists.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/members", tag = "publishers",
    params(("publisher" = String, Path)), request_body = AddMember, security(("token" = [])),
    responses((status = 200, body = MemberChangeResult), (status = 403, body = agora_core::api::Problem),
        (status = 404, body = agora_core::api::Problem), (status = 409, body = agora_core::api::Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AddMember>,
) -> Result<Json<MemberChangeResult>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    caller.require_members(&p, is_owner(&state, &p, &caller.user.username).await?)?;
    let role = valid_role(request.role.as_deref())?;
    let username = request.username.trim();
    if !agora_core::name::is_slug(username) {
        return Err(ApiError::field(
            "username",
            format!(
                "{:?} is not a valid user name",
                crate::extract::truncate(username)
            ),
            Some(SLUG_RULE),
        ));
    }
    let members = state.meta.members(p.id).await?;
    if members.iter().any(|m| m.username == username) {
        state
            .meta
            .change_member(
                p.id,
                username,
                MemberChange::Role(role),
                &caller.user.username,
            )
            .await?;
        let members = publisher_view(&state, p).await?.members;
        return Ok(Json(MemberChangeResult {
            outcome: "role-changed".into(),
            members,
            invitation: None,
        }));
    }
    if caller.is_admin() {
        // Administrators may list every user anyway; they add at once.
        let user = state.meta.user_by_name(username).await?.ok_or_else(|| {
            ApiError::field(
                "username",
                format!("no user named {username:?}"),
                Some("an existing user name"),
            )
        })?;
        state
            .meta
            .add_member(p.id, &user, role, &caller.user.username)
            .await?;
        let members = publisher_view(&state, p).await?.members;
        return Ok(Json(MemberChangeResult {
            outcome: "added".into(),
            members,
            invitation: None,
        }));
    }
    let now = now_ms();
    let invitation = InvitationRecord {
        publisher: p.name.clone(),
        username: username.to_owned(),
        role: role.to_owned(),
        invited_by: caller.user.username.clone(),
        created_at: now,
        expires_at: now + INVITATION_TTL_MS,
    };
    state
        .meta
        .invite_member(&invitation, p.id, MAX_OPEN_INVITATIONS)
        .await?;
    tracing::info!(publisher = %p.name, invited = %username, by = %caller.user.username, "member invited");
    let members = publisher_view(&state, p).await?.members;
    Ok(Json(MemberChangeResult {
        outcome: "invited".into(),
        members,
        invitation: Some(invitation_view(invitation)),
    }))
}

/// Remove a member, or leave. Owners (token with `members:PUBLISHER`) remove anyone; a
/// member may remove themselves; administrators anyone. The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/publishers/{publisher}/members/{username}", tag = "publishers",
    params(("publisher" = String, Path), ("username" = String, Path)), security(("token" = [])),
    responses((status = 200, body = Vec<Member>), (status = 403, body = agora_core::api::Problem),
        (status = 404, body = agora_core::api::Problem), (status = 409, body = agora_core::api::Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, username)): Path<(String, String)>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    if username == caller.user.username {
        caller.require_own_membership(&p.name)?;
    } else {
        caller.require_members(&p, is_owner(&state, &p, &caller.user.username).await?)?;
    }
    if !state
        .meta
        .change_member(p.id, &username, MemberChange::Remove, &caller.user.username)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "{} is not a member of {}",
            crate::extract::truncate(&username),
            p.name
        )));
    }
    tracing::info!(publisher = %p.name, removed = %username, by = %caller.user.username, "member removed");
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// The publisher's open invitations (owners and administrators).
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/invitations", tag = "publishers",
    params(("publisher" = String, Path)), security(("token" = [])),
    responses((status = 200, body = Vec<Invitation>), (status = 403, body = agora_core::api::Problem)))]
pub async fn publisher_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    let name = valid_name(&name)?;
    let p = publisher_or_404(&state, name.as_str()).await?;
    caller.require_members(&p, is_owner(&state, &p, &caller.user.username).await?)?;
    let list = state.meta.invitations(Some(p.id), None).await?;
    Ok(Json(list.into_iter().map(invitation_view).collect()))
}

/// Withdraw an invitation (owners, administrators) or decline one (the invited user).
#[utoipa::path(delete, path = "/api/v1/publishers/{publisher}/invitations/{username}", tag = "publishers",
    params(("publisher" = String, Path), ("username" = String, Path)), security(("token" = [])),
    responses((status = 204, description = "Withdrawn"), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn cancel_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    withdraw(&state, &caller, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines (the invited user) or withdraws (an owner) an invitation: what the API and the
/// account page share.
pub async fn withdraw(
    state: &AppState,
    caller: &Caller,
    publisher: &str,
    username: &str,
) -> Result<(), ApiError> {
    let name = valid_name(publisher)?;
    let p = publisher_or_404(state, name.as_str()).await?;
    if username == caller.user.username {
        caller.require_own_membership(&p.name)?;
    } else {
        caller.require_members(&p, is_owner(state, &p, &caller.user.username).await?)?;
    }
    if state
        .meta
        .cancel_invitation(p.id, username, &caller.user.username)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no open invitation of {} to {}",
            crate::extract::truncate(username),
            p.name
        )))
    }
}

/// Accept an invitation: the caller joins the publisher with the invitation's role. Needs
/// a token with `members:PUBLISHER` or `members:*` (a web session has it).
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/invitations/accept", tag = "publishers",
    params(("publisher" = String, Path)), security(("token" = [])),
    responses((status = 200, body = Vec<Member>), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let p = accept(&state, &caller, &name).await?;
    Ok(Json(publisher_view(&state, p).await?.members))
}

/// The caller joins the publisher with the role its invitation names: what the API and
/// the account page share.
pub async fn accept(
    state: &AppState,
    caller: &Caller,
    publisher: &str,
) -> Result<PublisherRecord, ApiError> {
    let name = valid_name(publisher)?;
    let p = publisher_or_404(state, name.as_str()).await?;
    caller.require_own_membership(&p.name)?;
    match state.meta.accept_invitation(p.id, &caller.user).await? {
        Some(role) => {
            tracing::info!(publisher = %p.name, user = %caller.user.username, %role, "invitation accepted");
            Ok(p)
        }
        None => Err(ApiError::not_found(format!(
            "no open invitation of {} to {}; ask an owner to invite you",
            caller.user.username, p.name
        ))),
    }
}

/// The caller's open invitations.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "publishers", security(("token" = [])),
    responses((status = 200, body = Vec<Invitation>), (status = 401, body = agora_core::api::Problem)))]
pub async fn my_invitations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    let list = state
        .meta
        .invitations(None, Some(&caller.user.username))
        .await?;
    Ok(Json(list.into_iter().map(invitation_view).collect()))
}
