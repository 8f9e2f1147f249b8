//! Accounts: users (administrators create and list them), passwords for the web pages
//! (one's own, or anyone's for an administrator) and signing in, throttled.

use std::net::IpAddr;
use std::time::Duration;

use agora_core::name::{SLUG_RULE, is_slug};
use agora_core::{Scope, api::CreateUser};
use agora_store::{Role, UserRecord};

use crate::caller::Caller;
use crate::error::{RegistryError, Result, one_line, truncate};
use crate::{Registry, password};

/// Every user (administrators).
pub async fn list_users(registry: &Registry, caller: &Caller) -> Result<Vec<UserRecord>> {
    caller.require_admin()?;
    Ok(registry.meta.list_users().await?)
}

/// Creates a user (administrators); they get a token through `tokens::create` with
/// `for_user`.
pub async fn create_user(
    registry: &Registry,
    caller: &Caller,
    request: CreateUser,
) -> Result<UserRecord> {
    caller.require_admin()?;
    one_line("username", &request.username)?;
    if !is_slug(&request.username) {
        return Err(RegistryError::field(
            "username",
            format!("{:?} is not a valid user name", truncate(&request.username)),
            Some(SLUG_RULE),
        ));
    }
    let role = match request.role.as_deref() {
        None => Role::User,
        Some(r) => Role::parse(r).ok_or_else(|| {
            RegistryError::field(
                "role",
                format!("unknown role {:?}", truncate(r)),
                Some("admin, publisher or user"),
            )
        })?,
    };
    Ok(registry.meta.create_user(&request.username, role).await?)
}

/// Sets the password `name` signs in to the web pages with: one's own, or anyone's for an
/// administrator. Ends the user's browser sessions.
pub async fn set_password(
    registry: &Registry,
    caller: &Caller,
    name: &str,
    new: String,
) -> Result<()> {
    one_line("name", name)?;
    if caller.user.username != name {
        caller.require_admin()?;
    } else {
        // A password opens a web session with every right of the account; a token that
        // holds less (a CI token with one publish scope) must not be able to mint one.
        let session = Caller::for_session(
            caller.user.clone(),
            caller.memberships.clone(),
            caller.tenants.clone(),
        );
        if let Some(missing) = session.scopes.iter().find(|s| !caller.may_grant(s)) {
            return Err(RegistryError::forbidden(format!(
                "setting your password needs a token that holds every right a signed-in session gets ({}); this token lacks {missing}",
                Scope::join(&session.scopes)
            )));
        }
    }
    let user =
        registry.meta.user_by_name(name).await?.ok_or_else(|| {
            RegistryError::not_found(format!("user {} not found", truncate(name)))
        })?;
    store_password(registry, &user, new, &caller.user.username).await
}

/// Changes the caller's own password, given the current one (the account page). Ends every
/// session of the user, this one too.
pub async fn change_own_password(
    registry: &Registry,
    caller: &Caller,
    current: String,
    new: String,
) -> Result<()> {
    let (user, stored) = registry
        .meta
        .user_credentials(&caller.user.username)
        .await?
        .ok_or_else(|| RegistryError::unauthorized("your account is gone; sign in again"))?;
    if !password::verify(current, stored).await {
        return Err(RegistryError::field(
            "current",
            "it is not your password",
            Some("your current password"),
        ));
    }
    store_password(registry, &user, new, &caller.user.username).await
}

async fn store_password(
    registry: &Registry,
    user: &UserRecord,
    new: String,
    actor: &str,
) -> Result<()> {
    password::check_new(&new)?;
    let hash = password::hash(new).await?;
    Ok(registry
        .meta
        .set_password(user.id, Some(&hash), actor)
        .await?)
}

/// How a sign-in went.
#[derive(Debug)]
pub enum SignIn {
    Accepted(UserRecord),
    /// Wrong user name or password (which one is not said).
    Refused,
    /// Too many failures from this client for this name, or from this client: try again
    /// after this long.
    Wait(Duration),
}

/// Checks a user name and password from `client`, throttled (see [`crate::throttle`]).
pub async fn sign_in(
    registry: &Registry,
    username: &str,
    password: String,
    client: Option<IpAddr>,
) -> Result<SignIn> {
    one_line("username", username)?;
    let client = client.unwrap_or(crate::throttle::UNKNOWN_CLIENT);
    if let Some(wait) = registry.throttle.wait(username, client).await? {
        return Ok(SignIn::Wait(wait));
    }
    // Counted before the password is checked, so concurrent guesses cannot all slip in.
    registry.throttle.fail(username, client).await?;
    let (user, stored) = match registry.meta.user_credentials(username).await? {
        Some((user, stored)) => (Some(user), stored),
        None => (None, None),
    };
    // Checked even for a missing user, so the answer takes as long either way.
    let ok = password::verify(password, stored).await;
    match user.filter(|_| ok) {
        Some(user) => {
            registry.throttle.succeed(username, client).await?;
            Ok(SignIn::Accepted(user))
        }
        None => {
            tracing::info!(user = %username, "failed sign-in");
            Ok(SignIn::Refused)
        }
    }
}
