//! Token scopes: what a token may do, on top of what its user may do.

use std::fmt;
use std::str::FromStr;

use crate::name::is_slug;

/// The scopes a token may carry, as an error message or help text lists them.
pub const SCOPE_SYNTAX: &str = "admin, read:private, review, publish:*, publish:PUBLISHER, members:*, members:PUBLISHER, tenant:* or tenant:TENANT";

/// A word that is not a scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: expected {SCOPE_SYNTAX}")]
pub struct ScopeError(pub String);

/// One permission a token carries. A scope never grants more than the user's role and
/// memberships allow: `publish:acme` on a non-member's token publishes nothing. Every write
/// the API accepts names the scope it needs (`docs/security.md` has the table).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything an administrator may do: only effective for admin users, inert on
    /// anyone else's token (the registry's authorization ignores it there).
    Admin,
    /// See private plugins of the publishers the user belongs to.
    ReadPrivate,
    /// Write, edit and withdraw one's own reviews.
    Review,
    /// Publish and manage plugins (releases, lifecycle, visibility, signing keys, contacts)
    /// of every publisher the user belongs to, and create publishers.
    PublishAny,
    /// The same for one publisher (and creating a publisher of that name).
    Publish(String),
    /// Invite, remove and change the role of members of every publisher the user owns.
    MembersAny,
    /// The same for one publisher.
    Members(String),
    /// Act in every tenant the user belongs to, with the user's role there: see its
    /// approved set, updates and fleet; as its administrator, approve, update and remove
    /// plugins, set its policy, register instances and manage members.
    TenantAny,
    /// The same for one tenant.
    Tenant(String),
}

impl Scope {
    pub fn allows_publish(&self, publisher: &str) -> bool {
        match self {
            Scope::Admin | Scope::PublishAny => true,
            Scope::Publish(p) => p == publisher,
            _ => false,
        }
    }

    /// Whether this scope lets a token change who belongs to `publisher`.
    pub fn allows_members(&self, publisher: &str) -> bool {
        match self {
            Scope::Admin | Scope::MembersAny => true,
            Scope::Members(p) => p == publisher,
            _ => false,
        }
    }

    /// Whether this scope lets a token act in `tenant`.
    /// `tenant:*` or `tenant:T`.
    pub fn is_tenant(&self) -> bool {
        matches!(self, Scope::TenantAny | Scope::Tenant(_))
    }

    pub fn allows_tenant(&self, tenant: &str) -> bool {
        match self {
            Scope::Admin | Scope::TenantAny => true,
            Scope::Tenant(t) => t == tenant,
            _ => false,
        }
    }

    /// Whether a token holding `self` may mint a token holding `wanted`: never a wider
    /// right than its own.
    pub fn covers(&self, wanted: &Scope) -> bool {
        match (self, wanted) {
            (Scope::Admin, _) => true,
            (_, Scope::Publish(p)) => self.allows_publish(p),
            (_, Scope::Members(p)) => self.allows_members(p),
            (_, Scope::Tenant(t)) => self.allows_tenant(t),
            (a, b) => a == b,
        }
    }

    /// Parses a space- or comma-separated list.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, ScopeError> {
        s.split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect()
    }

    pub fn join(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Scope::Admin),
            "read:private" => Ok(Scope::ReadPrivate),
            "review" => Ok(Scope::Review),
            "publish:*" => Ok(Scope::PublishAny),
            "members:*" => Ok(Scope::MembersAny),
            "tenant:*" => Ok(Scope::TenantAny),
            _ => match (
                s.strip_prefix("publish:"),
                s.strip_prefix("members:"),
                s.strip_prefix("tenant:"),
            ) {
                (Some(p), _, _) if is_slug(p) => Ok(Scope::Publish(p.to_owned())),
                (_, Some(p), _) if is_slug(p) => Ok(Scope::Members(p.to_owned())),
                (_, _, Some(t)) if is_slug(t) => Ok(Scope::Tenant(t.to_owned())),
                _ => Err(ScopeError(s.chars().take(80).collect())),
            },
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::ReadPrivate => f.write_str("read:private"),
            Scope::Review => f.write_str("review"),
            Scope::PublishAny => f.write_str("publish:*"),
            Scope::Publish(p) => write!(f, "publish:{p}"),
            Scope::MembersAny => f.write_str("members:*"),
            Scope::Members(p) => write!(f, "members:{p}"),
            Scope::TenantAny => f.write_str("tenant:*"),
            Scope::Tenant(t) => write!(f, "tenant:{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_reject_unknown_words() {
        let list = Scope::parse_list("publish:acme read:private,admin publish:*").unwrap();
        assert_eq!(
            Scope::join(&list),
            "publish:acme read:private admin publish:*"
        );
        assert!(Scope::parse_list("publish:ACME").is_err());
        assert!(Scope::parse_list("root").is_err());
    }

    #[test]
    fn a_publisher_scope_covers_only_its_publisher() {
        let s: Scope = "publish:acme".parse().unwrap();
        assert!(s.allows_publish("acme"));
        assert!(!s.allows_publish("evil"));
        assert!(!Scope::ReadPrivate.allows_publish("acme"));
    }

    #[test]
    fn members_and_review_scopes_round_trip_and_grant_only_themselves() {
        let list = Scope::parse_list("members:acme members:* review").unwrap();
        assert_eq!(Scope::join(&list), "members:acme members:* review");
        let m: Scope = "members:acme".parse().unwrap();
        assert!(m.allows_members("acme") && !m.allows_members("evil"));
        assert!(!m.allows_publish("acme"));
        assert!(!Scope::PublishAny.allows_members("acme"));
        assert!(!Scope::ReadPrivate.allows_members("acme"));
        assert!(Scope::Admin.allows_members("acme"));
    }

    #[test]
    fn a_scope_covers_only_what_it_grants_itself() {
        let s = |t: &str| t.parse::<Scope>().unwrap();
        assert!(s("publish:*").covers(&s("publish:acme")));
        assert!(!s("publish:acme").covers(&s("publish:*")));
        assert!(!s("publish:acme").covers(&s("publish:evil")));
        assert!(s("members:*").covers(&s("members:acme")));
        assert!(!s("publish:*").covers(&s("members:acme")));
        assert!(!s("read:private").covers(&s("review")));
        assert!(s("review").covers(&s("review")));
        assert!(s("admin").covers(&s("members:*")));
        assert!(!s("publish:*").covers(&s("admin")));
    }
}
