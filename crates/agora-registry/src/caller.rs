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
    /// (tenant id, tenant name) of the tenants the user belongs to, when the credential
    /// holds a `tenant:` scope (else empty): whose entitlements it may carry.
    pub tenants: Vec<(i64, String)>,
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
        let tenants = if scopes.iter().any(Scope::is_tenant) {
            self.meta.member_tenants(user.id).await?
        } else {
            Vec::new()
        };
        Ok(Caller {
            user,
            credential: Credential::Token(record),
            scopes,
            memberships,
            tenants,
        })
    }
}

impl Caller {
    /// A user signed in to the web pages: the rights of their role and memberships, as a
    /// token holding every scope would have them.
    pub fn for_session(
        user: UserRecord,
        memberships: Vec<(i64, String)>,
        tenants: Vec<(i64, String)>,
    ) -> Caller {
        let mut scopes = vec![
            Scope::ReadPrivate,
            Scope::Review,
            Scope::PublishAny,
            Scope::MembersAny,
            Scope::TenantAny,
        ];
        if user.role == Role::Admin {
            scopes.insert(0, Scope::Admin);
        }
        Caller {
            user,
            credential: Credential::Session,
            scopes,
            memberships,
            tenants,
        }
    }

    /// The token the caller came with (none for a web session).
    pub fn token(&self) -> Option<&TokenRecord> {
        match &self.credential {
            Credential::Token(t) => Some(t),
            Credential::Session => None,
        }
    }

    /// Whether the credential holds a scope that passes `test`. The `admin` scope counts
    /// only through [`Caller::is_admin`]: on a non-administrator's token it is inert.
    fn holds(&self, test: impl Fn(&Scope) -> bool) -> bool {
        self.scopes.iter().any(|s| *s != Scope::Admin && test(s))
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

    /// Does the credential let the caller act in `tenant` (`tenant:TENANT` or `tenant:*`)?
    /// The role the user holds there is the tenant module's to check.
    pub fn require_tenant_scope(&self, tenant: &str) -> Result<(), RegistryError> {
        if self.is_admin() || self.holds(|s| s.allows_tenant(tenant)) {
            Ok(())
        } else {
            Err(RegistryError::forbidden(format!(
                "this token's scopes ({}) do not include tenant:{tenant} or tenant:*",
                Scope::join(&self.scopes)
            )))
        }
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
        if !self.holds(|s| s.allows_publish(&publisher.name)) {
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
        self.require_owner_holding(publisher, is_owner, "change its members", "members", |s| {
            s.allows_members(&publisher.name)
        })
    }

    /// May this caller manage the publisher's webhooks (create, list, remove, see their
    /// deliveries)? An owner, with a token that may publish for it (`publish:PUBLISHER`
    /// or `publish:*`); or an admin.
    pub fn require_webhooks(
        &self,
        publisher: &PublisherRecord,
        is_owner: bool,
    ) -> Result<(), RegistryError> {
        self.require_owner_holding(publisher, is_owner, "manage its webhooks", "publish", |s| {
            s.allows_publish(&publisher.name)
        })
    }

    /// An admin; or an owner of the publisher (`is_owner`) whose token holds a scope
    /// `allows` accepts (`{scope}:PUBLISHER` or `{scope}:*`), to do `what`.
    fn require_owner_holding(
        &self,
        publisher: &PublisherRecord,
        is_owner: bool,
        what: &str,
        scope: &str,
        allows: impl Fn(&Scope) -> bool,
    ) -> Result<(), RegistryError> {
        if self.is_admin() {
            return Ok(());
        }
        if !is_owner {
            return Err(RegistryError::forbidden(format!(
                "only owners of {} or administrators can {what}",
                publisher.name
            )));
        }
        if !self.holds(allows) {
            return Err(RegistryError::forbidden(format!(
                "this token's scopes ({}) do not include {scope}:{} or {scope}:*",
                Scope::join(&self.scopes),
                publisher.name
            )));
        }
        Ok(())
    }

    /// May this caller act on the user's own membership (accept or decline an
    /// invitation, leave)? A token with `members:PUBLISHER` or `members:*`.
    pub fn require_own_membership(&self, publisher: &str) -> Result<(), RegistryError> {
        if self.is_admin() || self.holds(|s| s.allows_members(publisher)) {
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
        if !self.holds(|s| s.allows_publish(name)) {
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
                .any(|(_, name)| self.holds(|s| s.allows_publish(name)));
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
                ..Viewer::default()
            };
        }
        let private_publishers = self
            .memberships
            .iter()
            .filter(|(_, name)| self.holds(|s| *s == Scope::ReadPrivate || s.allows_publish(name)))
            .map(|(id, _)| *id)
            .collect();
        let tenants = self
            .tenants
            .iter()
            .filter(|(_, name)| self.holds(|s| s.allows_tenant(name)))
            .map(|(id, _)| *id)
            .collect();
        Viewer {
            admin: false,
            private_publishers,
            tenants,
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

#[cfg(test)]
mod tests {
    //! The authorization rules as one table: who (role), with what (the credential's
    //! scopes), standing where (no membership, member or owner of `acme`), may do what.
    //! Each row lists every action it allows; every other action must be refused.

    use std::collections::BTreeSet;

    use agora_core::Visibility;
    use agora_store::PluginRecord;

    use super::*;

    const ACTIONS: &[&str] = &[
        "see-private",
        "publish",
        "members",
        "accept",
        "review",
        "create",
        "upload",
        "admin",
        "grant-publish",
    ];

    #[derive(Clone, Copy)]
    enum Standing {
        None,
        Member,
        Owner,
    }

    enum Credential {
        Token(&'static str),
        Session,
    }

    fn acme() -> PublisherRecord {
        PublisherRecord {
            id: 7,
            name: "acme".into(),
            display_name: None,
            created_at: 0,
            verified_at: None,
            email: None,
            url: None,
        }
    }

    fn plugin(visibility: Visibility) -> PluginRecord {
        PluginRecord {
            id: 1,
            publisher_id: 7,
            publisher: "acme".into(),
            name: "jira".into(),
            visibility,
            display_name: "Jira".into(),
            description: String::new(),
            provider: None,
            runtime: "wasm".into(),
            latest_version: None,
            listed_version: None,
            listed_state: None,
            downloads: 0,
            created_at: 0,
            updated_at: 0,
            tags: Vec::new(),
            categories: Vec::new(),
            capabilities: Vec::new(),
            verified: false,
            rating_count: 0,
            rating_sum: 0,
            rating_rank: 0,
            latest_verification: None,
        }
    }

    fn caller(role: Role, credential: &Credential, standing: Standing) -> Caller {
        let user = UserRecord {
            id: 1,
            username: "alice".into(),
            role,
            created_at: 0,
        };
        let memberships = match standing {
            Standing::None => Vec::new(),
            Standing::Member | Standing::Owner => vec![(7, "acme".to_owned())],
        };
        match credential {
            Credential::Session => Caller::for_session(user, memberships, Vec::new()),
            Credential::Token(scopes) => Caller {
                user,
                credential: super::Credential::Session,
                scopes: Scope::parse_list(scopes).unwrap(),
                memberships,
                tenants: Vec::new(),
            },
        }
    }

    fn allowed(caller: &Caller, standing: Standing) -> BTreeSet<&'static str> {
        let publisher = acme();
        let owner = matches!(standing, Standing::Owner);
        let checks = [
            (
                "see-private",
                caller.viewer().can_see(&plugin(Visibility::Private)),
            ),
            ("publish", caller.require_publish(&publisher).is_ok()),
            ("members", caller.require_members(&publisher, owner).is_ok()),
            ("accept", caller.require_own_membership("acme").is_ok()),
            ("review", caller.require_review().is_ok()),
            ("create", caller.require_create_publisher("newco").is_ok()),
            ("upload", caller.require_some_publish_right().is_ok()),
            ("admin", caller.require_admin().is_ok()),
            (
                "grant-publish",
                caller.may_grant(&Scope::Publish("acme".into())),
            ),
        ];
        checks
            .into_iter()
            .filter(|(_, ok)| *ok)
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn role_scope_membership_and_visibility_decide_together() {
        use Credential::{Session, Token};
        use Standing::{Member, None, Owner};
        let all = ACTIONS.join(" ");
        #[rustfmt::skip]
        let table: &[(Role, Credential, Standing, &str)] = &[
            // An administrator's rights need the admin scope on the token too.
            (Role::Admin, Token("admin"), None, &all),
            (Role::Admin, Token("review"), None, "review"),
            (Role::Admin, Session, None, &all),
            // A member publishes with publish:* or publish:acme, and nothing else does.
            (Role::Publisher, Token("publish:*"), Member, "see-private publish create upload grant-publish"),
            (Role::Publisher, Token("publish:acme"), Member, "see-private publish upload grant-publish"),
            (Role::Publisher, Token("publish:other"), Member, ""),
            (Role::Publisher, Token("read:private"), Member, "see-private"),
            // Managing members needs the owner's standing and a members scope.
            (Role::Publisher, Token("publish:* members:*"), Owner, "see-private publish members accept create upload grant-publish"),
            (Role::Publisher, Token("publish:*"), Owner, "see-private publish create upload grant-publish"),
            (Role::Publisher, Token("members:acme"), Owner, "members accept"),
            (Role::Publisher, Token("members:acme"), Member, "accept"),
            // Scopes give an outsider nothing of acme's.
            (Role::Publisher, Token("publish:* members:*"), None, "accept create grant-publish"),
            (Role::Publisher, Session, Member, "see-private publish accept review create upload grant-publish"),
            // The user role may not create publishers; an admin scope on its token is inert.
            (Role::User, Token("publish:* review"), Member, "see-private publish review upload grant-publish"),
            (Role::User, Token("admin"), None, ""),
            (Role::Publisher, Token("admin"), Owner, ""),
            (Role::User, Token("review"), None, "review"),
        ];
        for (row, (role, credential, standing, expected)) in table.iter().enumerate() {
            let caller = caller(*role, credential, *standing);
            let expected: BTreeSet<&str> = expected.split_whitespace().collect();
            assert!(
                expected.iter().all(|a| ACTIONS.contains(a)),
                "row {row} names an unknown action"
            );
            assert_eq!(
                allowed(&caller, *standing),
                expected,
                "row {row}: {role:?} with {:?} ({:?})",
                Scope::join(&caller.scopes),
                caller.memberships
            );
            assert!(
                caller.viewer().can_see(&plugin(Visibility::Public)),
                "row {row}: public plugins are for everyone"
            );
        }
        assert!(!Viewer::anonymous().can_see(&plugin(Visibility::Private)));
    }
}
