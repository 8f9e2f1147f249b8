//! Token scopes: what a token may do, on top of what its user may do.

use std::fmt;
use std::str::FromStr;

use crate::name::is_slug;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: expected admin, read:private, publish:* or publish:PUBLISHER")]
pub struct ScopeError(pub String);

/// One permission a token carries. A scope never grants more than the user's role and
/// memberships allow: `publish:acme` on a non-member's token publishes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything an administrator may do (only effective for admin users).
    Admin,
    /// See private plugins of the publishers the user belongs to.
    ReadPrivate,
    /// Publish and manage plugins of every publisher the user belongs to.
    PublishAny,
    /// Publish and manage plugins of one publisher.
    Publish(String),
}

impl Scope {
    pub fn allows_publish(&self, publisher: &str) -> bool {
        match self {
            Scope::Admin | Scope::PublishAny => true,
            Scope::Publish(p) => p == publisher,
            Scope::ReadPrivate => false,
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
            "publish:*" => Ok(Scope::PublishAny),
            _ => match s.strip_prefix("publish:") {
                Some(p) if is_slug(p) => Ok(Scope::Publish(p.to_owned())),
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
            Scope::PublishAny => f.write_str("publish:*"),
            Scope::Publish(p) => write!(f, "publish:{p}"),
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
}
