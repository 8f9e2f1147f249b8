//! Authentication (bearer tokens, stored only as sha256 hashes) and the authorization
//! rules: every decision asks both the user's role and memberships and the token's
//! scopes, and a token's scopes never grant more than its user's role and memberships.
//! `docs/security.md` has the table of who may do what with which scope.

use agora_core::Scope;
use agora_store::{PublisherRecord, Role, TokenRecord, UserRecord, Viewer, now_ms};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};

use crate::AppState;
use crate::error::ApiError;

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

/// An authenticated request.
pub struct Caller {
    pub user: UserRecord,
    pub token: TokenRecord,
    pub scopes: Vec<Scope>,
    /// (publisher id, publisher name) of the user's memberships.
    pub memberships: Vec<(i64, String)>,
}

/// A request that may or may not carry a token. A token that is present but invalid is
/// refused rather than treated as anonymous, so a typo never silently hides private data.
pub struct MaybeCaller(pub Option<Caller>);

impl Caller {
    /// A user signed in to the web pages: the rights of their role and memberships, as a
    /// token with every scope would have.
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
        let token = TokenRecord {
            id: 0,
            user_id: user.id,
            username: user.username.clone(),
            name: "web session".into(),
            prefix: String::new(),
            scopes: Scope::join(&scopes),
            created_at: now_ms(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            parent_id: None,
        };
        Caller {
            user,
            token,
            scopes,
            memberships,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin && self.scopes.contains(&Scope::Admin)
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs an administrator's token with the admin scope",
            ))
        }
    }

    pub fn is_member(&self, publisher_id: i64) -> bool {
        self.memberships.iter().any(|(id, _)| *id == publisher_id)
    }

    /// May this caller publish and manage the publisher's plugins?
    pub fn require_publish(&self, publisher: &PublisherRecord) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        if !self.is_member(publisher.id) {
            return Err(ApiError::forbidden(format!(
                "user {} is not a member of publisher {}; an owner can add you with `agora publisher add-member {} {}`",
                self.user.username, publisher.name, publisher.name, self.user.username
            )));
        }
        if !self
            .scopes
            .iter()
            .any(|s| s.allows_publish(&publisher.name))
        {
            return Err(ApiError::forbidden(format!(
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
    ) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        if !is_owner {
            return Err(ApiError::forbidden(format!(
                "only owners of {} or administrators can change its members",
                publisher.name
            )));
        }
        if !self
            .scopes
            .iter()
            .any(|s| s.allows_members(&publisher.name))
        {
            return Err(ApiError::forbidden(format!(
                "this token's scopes ({}) do not include members:{} or members:*",
                Scope::join(&self.scopes),
                publisher.name
            )));
        }
        Ok(())
    }

    /// May this caller act on the user's own membership (accept or decline an
    /// invitation, leave)? A token with `members:PUBLISHER` or `members:*`.
    pub fn require_own_membership(&self, publisher: &str) -> Result<(), ApiError> {
        if self.is_admin() || self.scopes.iter().any(|s| s.allows_members(publisher)) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this token's scopes ({}) do not include members:{publisher} or members:*",
            Scope::join(&self.scopes)
        )))
    }

    /// May this caller write reviews? A token with the `review` scope.
    pub fn require_review(&self) -> Result<(), ApiError> {
        if self.is_admin() || self.scopes.contains(&Scope::Review) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this token's scopes ({}) do not include review",
            Scope::join(&self.scopes)
        )))
    }

    /// May this caller create a publisher of this name? The publisher (or admin) role,
    /// and a token that could publish for it (`publish:*` or `publish:NAME`).
    pub fn require_create_publisher(&self, name: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        if self.user.role == Role::User {
            return Err(ApiError::forbidden(format!(
                "user {} has the role user; creating publishers needs the publisher role (an administrator can grant it)",
                self.user.username
            )));
        }
        if !self.scopes.iter().any(|s| s.allows_publish(name)) {
            return Err(ApiError::forbidden(format!(
                "this token's scopes ({}) do not include publish:{name} or publish:*",
                Scope::join(&self.scopes)
            )));
        }
        Ok(())
    }

    /// May this caller upload blobs at all (some publisher they could publish to)?
    pub fn require_some_publish_right(&self) -> Result<(), ApiError> {
        let can = self.is_admin()
            || self
                .memberships
                .iter()
                .any(|(_, name)| self.scopes.iter().any(|s| s.allows_publish(name)));
        if can {
            Ok(())
        } else {
            Err(ApiError::forbidden(
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

impl MaybeCaller {
    pub fn viewer(&self) -> Viewer {
        self.0.as_ref().map(Caller::viewer).unwrap_or_default()
    }
}

/// How often `last_used_at` is written at most, per token.
const TOUCH_INTERVAL_MS: i64 = 60_000;

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(MaybeCaller(None));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let Some((record, user)) = state.meta.token_by_hash(&hash_token(token)).await? else {
            return Err(ApiError::unauthorized(format!(
                "token {}… is not known to this registry",
                token_display_prefix(token)
            )));
        };
        let now = now_ms();
        if record.revoked_at.is_some() {
            return Err(ApiError::unauthorized(format!(
                "token {} (id {}) was revoked",
                record.prefix, record.id
            )));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::unauthorized(format!(
                "token {} (id {}) expired at {}; create a new one with `agora token create`",
                record.prefix,
                record.id,
                crate::time::rfc3339(record.expires_at.unwrap_or_default())
            )));
        }
        if record
            .last_used_at
            .is_none_or(|at| now - at > TOUCH_INTERVAL_MS)
        {
            let meta = state.meta.clone();
            let id = record.id;
            tokio::spawn(async move {
                if let Err(e) = meta.touch_token(id, now).await {
                    tracing::warn!(error = %e, "could not record token use");
                }
            });
        }
        let scopes = Scope::parse_list(&record.scopes)
            .map_err(|e| ApiError::internal("a stored token has an unreadable scope", e))?;
        let memberships = state.meta.memberships(user.id).await?;
        Ok(MaybeCaller(Some(Caller {
            user,
            token: record,
            scopes,
            memberships,
        })))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        MaybeCaller::from_request_parts(parts, state)
            .await?
            .0
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "this needs a token: send `Authorization: Bearer <token>` (see `agora login`)",
                )
            })
    }
}
