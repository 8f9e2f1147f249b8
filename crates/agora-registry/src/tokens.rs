//! API tokens: created (never wider than the token creating them, never outliving it, and
//! revoked with it), listed and revoked.

use agora_core::api::CreateToken;
use agora_core::{SCOPE_SYNTAX, Scope};
use agora_store::{NewToken, TokenRecord, now_ms};

use crate::Registry;
use crate::caller::{Caller, hash_token, new_token, token_display_prefix};
use crate::error::{RegistryError, Result, one_line, one_line_opt, truncate};
use crate::time::rfc3339;

/// Longest token lifetime: ten years.
pub const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Most live (unrevoked, unexpired) tokens one user may hold.
pub const MAX_LIVE_TOKENS: usize = 200;

/// The caller's tokens (every user's, for an administrator asking for `all`).
pub async fn list(registry: &Registry, caller: &Caller, all: bool) -> Result<Vec<TokenRecord>> {
    let owner = if all {
        caller.require_admin()?;
        None
    } else {
        Some(caller.user.id)
    };
    Ok(registry.meta.list_tokens(owner).await?)
}

/// Checks a token request against the caller's rights and creates the token; returns it
/// and its secret, the only time the secret exists outside the caller's hands.
pub async fn create(
    registry: &Registry,
    caller: &Caller,
    request: CreateToken,
) -> Result<(TokenRecord, String)> {
    one_line("name", &request.name)?;
    one_line("scopes", &request.scopes)?;
    one_line_opt("for_user", request.for_user.as_deref())?;
    if request.name.trim().is_empty() || request.name.chars().count() > 64 {
        return Err(RegistryError::field(
            "name",
            "must be 1 to 64 characters",
            Some("a label such as ci or laptop"),
        ));
    }
    let scopes = Scope::parse_list(&request.scopes).map_err(|e| {
        RegistryError::field(
            "scopes",
            format!("{:?} is not a scope", truncate(&e.0)),
            Some(&format!("{SCOPE_SYNTAX}, space-separated")),
        )
    })?;
    if scopes.is_empty() {
        return Err(RegistryError::field(
            "scopes",
            "no scope given",
            Some(SCOPE_SYNTAX),
        ));
    }
    if let Some(denied) = scopes.iter().find(|s| !caller.may_grant(s)) {
        return Err(RegistryError::forbidden(format!(
            "this token cannot grant scope {denied}: a new token never gets more than the one creating it ({})",
            Scope::join(&caller.scopes)
        )));
    }
    let owner = match &request.for_user {
        Some(username) => {
            caller.require_admin()?;
            registry.meta.user_by_name(username).await?.ok_or_else(|| {
                RegistryError::field(
                    "for_user",
                    format!("no user named {:?}", truncate(username)),
                    Some("an existing user name"),
                )
            })?
        }
        None => caller.user.clone(),
    };
    // A token minted for oneself is a delegation: it never outlives the token that minted
    // it, and dies with it. A token an administrator makes for another user is a grant of
    // its own (the administrator's token rotating must not lock that user out). Sessions
    // (token id 0) mint independent tokens too.
    let parent = caller.token().filter(|_| request.for_user.is_none());
    let requested = match request.expires_in_seconds {
        Some(0) => {
            return Err(RegistryError::field(
                "expires_in_seconds",
                "must be positive",
                Some("1 to 315360000 seconds"),
            ));
        }
        Some(s) if s > MAX_LIFETIME_SECONDS => {
            return Err(RegistryError::field(
                "expires_in_seconds",
                format!("{s} is too long"),
                Some("at most 315360000 seconds (ten years)"),
            ));
        }
        Some(s) => Some(now_ms() + (s as i64) * 1000),
        None => None,
    };
    let expires_at = match (requested, parent.and_then(|p| p.expires_at)) {
        (Some(wanted), Some(limit)) if wanted > limit => {
            return Err(RegistryError::field(
                "expires_in_seconds",
                format!(
                    "the new token would outlive the one creating it, which expires at {}",
                    rfc3339(limit)
                ),
                Some(&format!(
                    "at most {} seconds",
                    ((limit - now_ms()) / 1000).max(0)
                )),
            ));
        }
        (None, Some(limit)) => Some(limit),
        (wanted, _) => wanted,
    };
    let now = now_ms();
    let live = registry
        .meta
        .list_tokens(Some(owner.id))
        .await?
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|at| at > now))
        .count();
    if live >= MAX_LIVE_TOKENS {
        return Err(RegistryError::conflict(format!(
            "user {} has {live} live tokens, the most allowed; revoke unused ones with `agora token revoke ID`",
            owner.username
        )));
    }
    let secret = new_token();
    let record = registry
        .meta
        .create_token(NewToken {
            user_id: owner.id,
            name: request.name.trim().to_owned(),
            hash: hash_token(&secret),
            prefix: token_display_prefix(&secret),
            scopes: Scope::join(&scopes),
            expires_at,
            parent_id: parent.map(|p| p.id),
        })
        .await?;
    tracing::info!(token = record.id, user = %owner.username, by = %caller.user.username, "token created");
    Ok((record, secret))
}

/// Revokes the caller's token `id` and what it minted (any token, for an administrator).
pub async fn revoke(registry: &Registry, caller: &Caller, id: i64) -> Result<()> {
    let owner = if caller.is_admin() {
        None
    } else {
        Some(caller.user.id)
    };
    if owner.is_some() && caller.token().is_none_or(|t| t.id != id) {
        let target = registry
            .meta
            .list_tokens(owner)
            .await?
            .into_iter()
            .find(|t| t.id == id && t.revoked_at.is_none());
        if let Some(target) = target {
            let scopes = Scope::parse_list(&target.scopes).map_err(|e| {
                RegistryError::internal("a stored token has an unreadable scope", e)
            })?;
            if let Some(wider) = scopes.iter().find(|s| !caller.may_grant(s)) {
                return Err(RegistryError::forbidden(format!(
                    "token {id} holds {wider}, which this token does not; revoke it with a token that holds every scope it has"
                )));
            }
        }
    }
    if registry.meta.revoke_token(id, owner, now_ms()).await? {
        tracing::info!(token = id, by = %caller.user.username, "token revoked");
        Ok(())
    } else {
        Err(RegistryError::not_found(format!(
            "no active token {id} of yours"
        )))
    }
}
