//! Publisher and plugin names (`[a-z0-9][a-z0-9-]{0,62}`) and `publisher/name` references.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a name may look like, for error messages.
pub const SLUG_RULE: &str =
    "1 to 63 characters: lowercase letters, digits and '-', starting with a letter or digit";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid {what} {value:?}: expected {SLUG_RULE}")]
    Invalid { what: &'static str, value: String },
    #[error(
        "invalid plugin reference {0:?}: expected PUBLISHER/NAME, for example acme/jira-ticket"
    )]
    Reference(String),
}

/// A validated publisher or plugin name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub fn parse(what: &'static str, value: &str) -> Result<Self, NameError> {
        if is_slug(value) {
            Ok(Slug(value.to_owned()))
        } else {
            Err(NameError::Invalid {
                what,
                value: truncate(value),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `value` matches `[a-z0-9][a-z0-9-]{0,62}`.
pub fn is_slug(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn truncate(value: &str) -> String {
    value.chars().take(80).collect()
}

impl TryFrom<String> for Slug {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Slug::parse("name", &value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> Self {
        value.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `publisher/name`, e.g. `acme/jira-ticket`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginRef {
    pub publisher: Slug,
    pub name: Slug,
}

impl PluginRef {
    pub fn new(publisher: &str, name: &str) -> Result<Self, NameError> {
        Ok(PluginRef {
            publisher: Slug::parse("publisher name", publisher)?,
            name: Slug::parse("plugin name", name)?,
        })
    }
}

impl FromStr for PluginRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (publisher, name) = s
            .split_once('/')
            .ok_or_else(|| NameError::Reference(truncate(s)))?;
        PluginRef::new(publisher, name)
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.publisher, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_documented_rule() {
        for ok in ["a", "acme", "acme-corp", "0day", &"a".repeat(63)] {
            assert!(is_slug(ok), "{ok} should be accepted");
        }
        for bad in [
            "",
            "-acme",
            "Acme",
            "ac_me",
            "ac.me",
            "../etc",
            "a/b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(!is_slug(bad), "{bad} should be refused");
        }
    }

    #[test]
    fn references_name_both_parts() {
        let r: PluginRef = "acme/jira-ticket".parse().unwrap();
        assert_eq!(r.to_string(), "acme/jira-ticket");
        assert!(matches!(
            "acme".parse::<PluginRef>(),
            Err(NameError::Reference(_))
        ));
        let err = "acme/../x".parse::<PluginRef>().unwrap_err().to_string();
        assert!(err.contains("plugin name"), "{err}");
    }
}
