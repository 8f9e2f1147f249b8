//! Publishers (namespaces): creation, contacts and verification, members and invitations.
//!
//! Owners change who belongs (with a `members:` scope); administrators add members at
//! once, owners invite and the invited user accepts, so an owner learns nothing about
//! which accounts exist. A publisher always keeps an owner (the store refuses otherwise).

use agora_core::api::{AddMember, CreatePublisher, PublisherSettings};
use agora_core::name::{SLUG_RULE, Slug, is_slug};
use agora_store::{InvitationRecord, MemberChange, MemberRecord, PublisherRecord, now_ms};

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result, one_line, one_line_opt, truncate};

/// How long an invitation waits for its answer.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Most open invitations per publisher.
pub const MAX_OPEN_INVITATIONS: usize = 50;
/// Longest display name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A publisher name from a request, checked.
pub fn valid_name(raw: &str) -> Result<Slug> {
    one_line("name", raw)?;
    Slug::parse("publisher name", raw).map_err(|_| {
        RegistryError::field(
            "name",
            format!("{:?} is not a valid publisher name", truncate(raw)),
            Some(SLUG_RULE),
        )
    })
}

/// The publisher, or a 404 saying how to create it.
pub async fn get(registry: &Registry, name: &str) -> Result<PublisherRecord> {
    let name = valid_name(name)?;
    registry
        .meta
        .publisher_by_name(name.as_str())
        .await?
        .ok_or_else(|| {
            RegistryError::not_found(format!(
                "publisher {name} not found; create it with `agora publisher create {name}`"
            ))
        })
}

/// Every publisher (at most 1000).
pub async fn list(registry: &Registry) -> Result<Vec<PublisherRecord>> {
    Ok(registry.meta.list_publishers().await?)
}

pub async fn members(
    registry: &Registry,
    publisher: &PublisherRecord,
) -> Result<Vec<MemberRecord>> {
    Ok(registry.meta.members(publisher.id).await?)
}

pub(crate) async fn is_owner(
    registry: &Registry,
    p: &PublisherRecord,
    username: &str,
) -> Result<bool> {
    Ok(registry
        .meta
        .members(p.id)
        .await?
        .iter()
        .any(|m| m.username == username && m.role == "owner"))
}

/// Creates a publisher; the caller becomes its owner.
pub async fn create(
    registry: &Registry,
    caller: &Caller,
    request: CreatePublisher,
) -> Result<PublisherRecord> {
    let name = valid_name(&request.name)?;
    one_line_opt("display_name", request.display_name.as_deref())?;
    caller.require_create_publisher(name.as_str())?;
    if let Some(d) = &request.display_name
        && (d.is_empty() || d.chars().count() > MAX_DISPLAY_NAME_CHARS)
    {
        return Err(RegistryError::field(
            "display_name",
            "must be 1 to 100 characters",
            Some("1 to 100 characters"),
        ));
    }
    Ok(registry
        .meta
        .create_publisher(name.as_str(), request.display_name.as_deref(), &caller.user)
        .await?)
}

/// A contact field: `shape` holds, no spaces, control characters, quotes or angle brackets.
fn contact(field: &str, raw: &str, shape: bool, what: &str, expected: &str) -> Result<()> {
    let clean = !raw
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>\"'".contains(c));
    if shape && clean {
        Ok(())
    } else {
        Err(RegistryError::field(
            field,
            format!("{:?} is not {what}", truncate(raw)),
            Some(expected),
        ))
    }
}

/// Checks a contact e-mail address: one `@` between two non-empty parts, at most 254.
pub fn valid_email(raw: &str) -> Result<()> {
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
pub fn valid_url(raw: &str) -> Result<()> {
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

/// Changes a publisher's contacts (owners, with a publish scope; administrators) and
/// verification (administrators). Returns the publisher as it is now.
pub async fn update_settings(
    registry: &Registry,
    caller: &Caller,
    name: &str,
    settings: PublisherSettings,
) -> Result<PublisherRecord> {
    let p = get(registry, name).await?;
    let is_admin = caller.is_admin();
    let contacts = settings.email.is_some() || settings.url.is_some();
    if settings.verified.is_some() && !is_admin {
        return Err(RegistryError::forbidden(
            "only administrators verify publishers",
        ));
    }
    if contacts && !is_admin {
        caller.require_publish(&p)?;
        if !is_owner(registry, &p, &caller.user.username).await? {
            return Err(RegistryError::forbidden(format!(
                "only owners of {} or administrators can change its contacts",
                p.name
            )));
        }
    }
    // Checked as sent, before trimming: a line break around an address is refused too.
    one_line_opt("email", settings.email.as_deref())?;
    one_line_opt("url", settings.url.as_deref())?;
    let clean = |v: Option<String>| v.map(|v| v.trim().to_owned());
    let (email, url) = (clean(settings.email), clean(settings.url));
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty()) {
        valid_email(e)?;
    }
    if let Some(u) = url.as_deref().filter(|u| !u.is_empty()) {
        valid_url(u)?;
    }
    let actor = caller.user.username.as_str();
    if contacts {
        let email = email.or(p.email.clone()).filter(|e| !e.is_empty());
        let url = url.or(p.url.clone()).filter(|u| !u.is_empty());
        registry
            .meta
            .set_publisher_contacts(p.id, email.as_deref(), url.as_deref(), actor)
            .await?;
    }
    if let Some(verified) = settings.verified {
        registry
            .meta
            .set_publisher_verified(p.id, verified, actor)
            .await?;
    }
    get(registry, name).await
}

fn valid_role(role: Option<&str>) -> Result<&str> {
    one_line_opt("role", role)?;
    let role = role.unwrap_or("member");
    if ["owner", "member"].contains(&role) {
        Ok(role)
    } else {
        Err(RegistryError::field(
            "role",
            format!("unknown role {:?}", truncate(role)),
            Some("owner or member"),
        ))
    }
}

/// What adding a member did.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberOutcome {
    /// An administrator added an existing user.
    Added,
    /// The user was a member already; their role is the one asked for now.
    RoleChanged,
    /// An owner invited the name (whether or not such an account exists).
    Invited(InvitationRecord),
}

/// Adds a member. An administrator adds (or changes the role of) an existing user at once;
/// an owner (token with `members:PUBLISHER`) changes the role of a member, or invites
/// anyone else: the outcome is the same whether or not an account of that name exists.
pub async fn add_member(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    request: AddMember,
) -> Result<(PublisherRecord, MemberOutcome)> {
    let p = get(registry, publisher).await?;
    caller.require_members(&p, is_owner(registry, &p, &caller.user.username).await?)?;
    let role = valid_role(request.role.as_deref())?;
    one_line("username", &request.username)?;
    let username = request.username.trim();
    if !is_slug(username) {
        return Err(RegistryError::field(
            "username",
            format!("{:?} is not a valid user name", truncate(username)),
            Some(SLUG_RULE),
        ));
    }
    let actor = caller.user.username.as_str();
    let members = registry.meta.members(p.id).await?;
    if members.iter().any(|m| m.username == username) {
        registry
            .meta
            .change_member(p.id, username, MemberChange::Role(role), actor)
            .await?;
        return Ok((p, MemberOutcome::RoleChanged));
    }
    if caller.is_admin() {
        // Administrators may list every user anyway; they add at once.
        let user = registry.meta.user_by_name(username).await?.ok_or_else(|| {
            RegistryError::field(
                "username",
                format!("no user named {username:?}"),
                Some("an existing user name"),
            )
        })?;
        registry.meta.add_member(p.id, &user, role, actor).await?;
        return Ok((p, MemberOutcome::Added));
    }
    let now = now_ms();
    let invitation = InvitationRecord {
        publisher: p.name.clone(),
        username: username.to_owned(),
        role: role.to_owned(),
        invited_by: actor.to_owned(),
        created_at: now,
        expires_at: now + INVITATION_TTL_MS,
    };
    registry
        .meta
        .invite_member(&invitation, p.id, MAX_OPEN_INVITATIONS)
        .await?;
    tracing::info!(publisher = %p.name, invited = %username, by = %actor, "member invited");
    Ok((p, MemberOutcome::Invited(invitation)))
}

/// Removes a member, or (with one's own name) leaves. Owners (token with
/// `members:PUBLISHER`) remove anyone; administrators anyone; never the last owner.
pub async fn remove_member(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    username: &str,
) -> Result<PublisherRecord> {
    one_line("username", username)?;
    let p = get(registry, publisher).await?;
    if username == caller.user.username {
        caller.require_own_membership(&p.name)?;
    } else {
        caller.require_members(&p, is_owner(registry, &p, &caller.user.username).await?)?;
    }
    if !registry
        .meta
        .change_member(p.id, username, MemberChange::Remove, &caller.user.username)
        .await?
    {
        return Err(RegistryError::not_found(format!(
            "{} is not a member of {}",
            truncate(username),
            p.name
        )));
    }
    tracing::info!(publisher = %p.name, removed = %username, by = %caller.user.username, "member removed");
    Ok(p)
}

/// A publisher's open invitations (owners and administrators).
pub async fn invitations_of(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
) -> Result<Vec<InvitationRecord>> {
    let p = get(registry, publisher).await?;
    caller.require_members(&p, is_owner(registry, &p, &caller.user.username).await?)?;
    Ok(registry.meta.invitations(Some(p.id), None).await?)
}

/// The caller's open invitations.
pub async fn my_invitations(registry: &Registry, caller: &Caller) -> Result<Vec<InvitationRecord>> {
    Ok(registry
        .meta
        .invitations(None, Some(&caller.user.username))
        .await?)
}

/// Declines (the invited user) or withdraws (an owner) an invitation.
pub async fn withdraw(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    username: &str,
) -> Result<()> {
    one_line("username", username)?;
    let p = get(registry, publisher).await?;
    if username == caller.user.username {
        caller.require_own_membership(&p.name)?;
    } else {
        caller.require_members(&p, is_owner(registry, &p, &caller.user.username).await?)?;
    }
    if registry
        .meta
        .cancel_invitation(p.id, username, &caller.user.username)
        .await?
    {
        Ok(())
    } else {
        Err(RegistryError::not_found(format!(
            "no open invitation of {} to {}",
            truncate(username),
            p.name
        )))
    }
}

/// The caller joins the publisher with the role its invitation names (a token needs
/// `members:PUBLISHER` or `members:*`; a web session has it).
pub async fn accept(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
) -> Result<PublisherRecord> {
    let p = get(registry, publisher).await?;
    caller.require_own_membership(&p.name)?;
    match registry.meta.accept_invitation(p.id, &caller.user).await? {
        Some(role) => {
            tracing::info!(publisher = %p.name, user = %caller.user.username, %role, "invitation accepted");
            Ok(p)
        }
        None => Err(RegistryError::not_found(format!(
            "no open invitation of {} to {}; ask an owner to invite you",
            caller.user.username, p.name
        ))),
    }
}
