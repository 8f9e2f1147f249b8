//! First start: the administrator account and its token.

use agora_store::{MetadataStore, NewToken, Role, StoreError};

use crate::caller::{hash_token, new_token, token_display_prefix};

pub const ADMIN_USER: &str = "admin";
const ADMIN_SCOPES: &str = "admin read:private review publish:* members:*";
const MIN_TOKEN_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "AGORA_ADMIN_TOKEN is too short ({0} characters); use at least {MIN_TOKEN_LEN} random characters, e.g. from `openssl rand -hex 32`"
    )]
    WeakToken(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set the admin password: {0}")]
    Password(String),
}

/// Makes sure the admin account exists. With `configured_token` (from `AGORA_ADMIN_TOKEN`)
/// that token is registered for it; otherwise, on the very first start only, a fresh token
/// is created and returned so it can be shown once.
pub async fn ensure_admin(
    meta: &dyn MetadataStore,
    configured_token: Option<&str>,
) -> Result<Option<String>, BootstrapError> {
    if let Some(token) = configured_token
        && token.len() < MIN_TOKEN_LEN
    {
        return Err(BootstrapError::WeakToken(token.len()));
    }
    // Replicas starting at the same moment race to create the account and its token:
    // the loser of either race finds the winner's and goes on.
    let (admin, created) = match meta.user_by_name(ADMIN_USER).await? {
        Some(user) => (user, false),
        None => match meta.create_user(ADMIN_USER, Role::Admin).await {
            Ok(user) => (user, true),
            Err(StoreError::Conflict(_)) => match meta.user_by_name(ADMIN_USER).await? {
                Some(user) => (user, false),
                None => return Err(StoreError::NotFound(ADMIN_USER.into()).into()),
            },
            Err(e) => return Err(e.into()),
        },
    };
    let (token, show) = match configured_token {
        Some(token) if meta.token_by_hash(&hash_token(token)).await?.is_none() => {
            (token.to_owned(), false)
        }
        Some(_) => return Ok(None),
        None if created => (new_token(), true),
        None => return Ok(None),
    };
    match meta
        .create_token(NewToken {
            user_id: admin.id,
            name: "bootstrap".into(),
            hash: hash_token(&token),
            prefix: token_display_prefix(&token),
            scopes: ADMIN_SCOPES.into(),
            expires_at: None,
            parent_id: None,
        })
        .await
    {
        Ok(_) => Ok(show.then_some(token)),
        // The configured token, stored by another replica a moment ago.
        Err(StoreError::Conflict(_)) if configured_token.is_some() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Sets the admin account's web password from configuration, unless it already matches
/// (so a restart does not end the administrator's sessions).
pub async fn ensure_admin_password(
    meta: &dyn MetadataStore,
    password: &str,
) -> Result<(), BootstrapError> {
    let Some((admin, stored)) = meta.user_credentials(ADMIN_USER).await? else {
        return Ok(());
    };
    if crate::password::verify(password.to_owned(), stored).await {
        return Ok(());
    }
    let hash = crate::password::hash(password.to_owned())
        .await
        .map_err(|e| BootstrapError::Password(e.detail.unwrap_or_default()))?;
    meta.set_password(admin.id, Some(&hash), "bootstrap")
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_store::AccountStore;

    #[tokio::test]
    async fn replicas_starting_together_share_one_admin_and_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("agora.db").display());
        let first = agora_store::SqlStore::connect(&url).await.unwrap();
        let second = agora_store::SqlStore::connect(&url).await.unwrap();
        let token = "agora_test_token_of_the_operator_0123456789";
        for _ in 0..5 {
            let (a, b) = tokio::join!(
                ensure_admin(&first, Some(token)),
                ensure_admin(&second, Some(token))
            );
            assert_eq!((a.unwrap(), b.unwrap()), (None, None));
        }
        let admin = first.user_by_name(ADMIN_USER).await.unwrap().unwrap();
        let (_, owner) = first
            .token_by_hash(&hash_token(token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(owner.id, admin.id);
        // Without a configured token, exactly one of them creates (and shows) one.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("agora.db").display());
        let first = agora_store::SqlStore::connect(&url).await.unwrap();
        let second = agora_store::SqlStore::connect(&url).await.unwrap();
        let (a, b) = tokio::join!(ensure_admin(&first, None), ensure_admin(&second, None));
        let shown = [a.unwrap(), b.unwrap()];
        assert_eq!(shown.iter().filter(|t| t.is_some()).count(), 1, "{shown:?}");
    }
}
