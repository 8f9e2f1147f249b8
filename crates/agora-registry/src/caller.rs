//! Who is calling, and what they may do. A [`Caller`] is a user with a credential (an API
//! token, or a web session that counts as a token holding every scope the user could use),
//! the scopes that credential carries and the user's memberships. Every authorization
//! decision asks both: the user's role and memberships, and the credential's scopes. A
//! token never grants more than its user may do. `docs/security.md` has the table.

use agora_core::Scope;
use agora_store::{PublisherRecord, Role, TokenRecord, UserRecord, Viewer, now_ms};
use sha2::{Digest as _, Sha256};

use crate::Registry;
use crate::error::{RegistryError, Result};

/// Every token starts with this, so secret scanners can recognise leaked ones.
pub const TOKEN_PREFIX: &str = "agora_";

/// A fresh random token: `agora_` and 64 hex digits (256 bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// How a token is stored: its sha256, hex. Tokens carry 256 bits of entropy, so a fast
/// hash is enough (as crates.io does); a slow password hash would only cost latency.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The first characters of a token, safe to show and log.
pub fn token_display_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// What a caller proved who they are with.
#[derive(Debug, Clone)]
pub enum Credential {
    Token(TokenRecord),
    /// A browser session of the web pages.
    Session,
}

/// An authenticated request's identity and rights.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRecord,
    pub credential: Credential,
    pub scopes: Vec<Scope>,
    /// (publisher id, publisher name) of the user's memberships.
    pub memberships: Vec<(i64, String)>,
}

/// What an anonymous request sees.
pub fn viewer_of(caller: Option<&Caller>) -> Viewer {
    caller.map(Caller::viewer).unwrap_or_default()
}

/// How often `last_used_at` is written at most, per token.
const TOUCH_INTERVAL_MS: i64 = 60_000;

impl Registry {
    /// The caller a bearer token stands for. A token that is unknown, revoked or expired is
    /// refused (never treated as anonymous, so a typo never silently hides private data).
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        let Some((record, user)) = self.meta.token_by_hash(&hash_token(token)).await? else {
            return Err(RegistryError::unauthorized(format!(
                "token {}… is not known to this registry",
                token_display_prefix(token)
            )));
        };
        let now = now_ms();
        if record.revoked_at.is_some() {
            return Err(RegistryError::unauthorized(format!(
                "token {} (id {}) was revoked",
                record.prefix, record.id
            )));
        }
        if let Some(at) = record.expires_at.filter(|at| *at <= now) {
            return Err(RegistryError::unauthorized(format!(
                "token {} (id {}) expired at {}; create a new one with `agora token create`",
                record.prefix,
                record.id,
                crate::time::rfc3339(at)
            )));
        }
        if record
            .last_used_at
            .is_none_or(|at| now - at > TOUCH_INTERVAL_MS)
        {
            let meta = self.meta.clone();
            let id = record.id;
            tokio::spawn(async move {
                if let Err(e) = meta.touch_token(id, now).await {
                    tracing::warn!(error = %e, "could not record token use");
                }
            });
        }
        let scopes = Scope::parse_list(&record.scopes)
            .map_err(|e| RegistryError::internal("a stored token has an unreadable scope", e))?;
        let memberships = self.meta.memberships(user.id).await?;
        Ok(Caller {
            user,
            credential: Credential::Token(record),
            scopes,
            memberships,
        })
    }
}

impl Caller {
    /// A user signed in to the web pages: the rights of their role and memberships, as a
    /// token holding every scope would have them.
    pub fn for_session(user: UserRecord, memberships: Vec<(i64, String)>) -> Caller {
        let mut scopes = vec![
            Scope::ReadPrivate,
            Scope::Review,
            Scope::PublishAny,
            Scope::MembersAny,
        ];
        if user.role == Role::Admin {
            scopes.insert(0, Scope::Admin);
        }
        Caller {
            user,
            credential: Credential::Session,
            scopes,
            memberships,
        }
    }

    /// The token the caller came with (none for a web session).
    pub fn token(&self) -> Option<&TokenRecord> {
        match &self.credential {
            Credential::Token(t) => Some(t),
            Credential::Session => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin && self.scopes.contains(&Scope::Admin)
    }

    pub fn require_admin(&self) -> Result<(), RegistryError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(RegistryError::forbidden(
                "this needs an administrator's token with the admin scope",
            ))
        }
    }

    pub fn is_member(&self, publisher_id: i64) -> bool {
        self.memberships.iter().any(|(id, _)| *id == publisher_id)
    }

    /// May this caller publish and manage the publisher's plugins?
    pub fn require_publish(&self, publisher: &PublisherRecord) -> Result<(), RegistryError> {
        if self.is_admin() {
            return Ok(());
        }
        if !self.is_member(publisher.id) {
            return Err(RegistryError::forbidden(format!(
                "user {} is not a member of publisher {}; an owner can add you with `agora publisher add-member {} {}`",
                self.user.username, publisher.name, publisher.name, self.user.username
            )));
        }
        if !self
            .scopes
            .iter()
            .any(|s| s.allows_publish(&publisher.name))
        {
            return Err(RegistryError::forbidden(format!(
                "this token's scopes ({}) do not include publish:{} or publish:*",
                Scope::join(&self.scopes),
                publisher.name
            )));
        }
        Ok(())
    }

    /// May this caller change who belongs to the publisher (invite, remove, change roles)?
    /// An owner, with a token holding `members:PUBLISHER` or `members:*`; or an admin.
    pub fn require_members(
        &self,
        publisher: &PublisherRecord,
        is_owner: bool,
    ) -> Result<(), RegistryError> {
        if self.is_admin() {
            return Ok(());
        }
        if !is_owner {
            return Err(RegistryError::forbidden(format!(
                "only owners of {} or administrators can change its members",
                publisher.name
            )));
        }
        if !self
            .scopes
            .iter()
            .any(|s| s.allows_members(&publisher.name))
        {
            return Err(RegistryError::forbidden(format!(
                "this token's scopes ({}) do not include members:{} or members:*",
                Scope::join(&self.scopes),
                publisher.name
            )));
        }
        Ok(())
    }

    /// May this caller act on the user's own membership (accept or decline an
    /// invitation, leave)? A token with `members:PUBLISHER` or `members:*`.
    pub fn require_own_membership(&self, publisher: &str) -> Result<(), RegistryError> {
        if self.is_admin() || self.scopes.iter().any(|s| s.allows_members(publisher)) {
            return Ok(());
        }
        Err(RegistryError::forbidden(format!(
            "this token's scopes ({}) do not include members:{publisher} or members:*",
            Scope::join(&self.scopes)
        )))
    }

    /// May this caller write reviews? A token with the `review` scope.
    pub fn require_review(&self) -> Result<(), RegistryError> {
        if self.is_admin() || self.scopes.contains(&Scope::Review) {
            return Ok(());
        }
        Err(RegistryError::forbidden(format!(
            "this token's scopes ({}) do not include review",
            Scope::join(&self.scopes)
        )))
    }

    /// May this caller create a publisher of this name? The publisher (or admin) role,
    /// and a token that could publish for it (`publish:*` or `publish:NAME`).
    pub fn require_create_publisher(&self, name: &str) -> Result<(), RegistryError> {
        if self.is_admin() {
            return Ok(());
        }
        if self.user.role == Role::User {
            return Err(RegistryError::forbidden(format!(
                "user {} has the role user; creating publishers needs the publisher role (an administrator can grant it)",
                self.user.username
            )));
        }
        if !self.scopes.iter().any(|s| s.allows_publish(name)) {
            return Err(RegistryError::forbidden(format!(
                "this token's scopes ({}) do not include publish:{name} or publish:*",
                Scope::join(&self.scopes)
            )));
        }
        Ok(())
    }

    /// May this caller upload blobs at all (some publisher they could publish to)?
    pub fn require_some_publish_right(&self) -> Result<(), RegistryError> {
        let can = self.is_admin()
            || self
                .memberships
                .iter()
                .any(|(_, name)| self.scopes.iter().any(|s| s.allows_publish(name)));
        if can {
            Ok(())
        } else {
            Err(RegistryError::forbidden(
                "uploading needs a token with a publish scope for a publisher you belong to",
            ))
        }
    }

    pub fn viewer(&self) -> Viewer {
        if self.is_admin() {
            return Viewer {
                admin: true,
                private_publishers: Vec::new(),
            };
        }
        let private_publishers = self
            .memberships
            .iter()
            .filter(|(_, name)| {
                self.scopes
                    .iter()
                    .any(|s| *s == Scope::ReadPrivate || s.allows_publish(name))
            })
            .map(|(id, _)| *id)
            .collect();
        Viewer {
            admin: false,
            private_publishers,
        }
    }

    /// Whether a token with `wanted` may be minted by this caller: never more than it holds.
    pub fn may_grant(&self, wanted: &Scope) -> bool {
        if self.is_admin() {
            return true;
        }
        // An `admin` scope on a non-administrator's token is inert, and grants nothing.
        *wanted != Scope::Admin
            && self
                .scopes
                .iter()
                .any(|s| *s != Scope::Admin && s.covers(wanted))
    }
}
