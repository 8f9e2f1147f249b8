//! Security advisories in the OSV format (<https://ossf.github.io/osv-schema/>) and the
//! one rule that decides whether a package version is affected. Pure: importing,
//! storing and acting on a match are the registry's job.
//!
//! Only the fields the matching and the findings use are read; the rest of a document is
//! kept by the store as imported. Ecosystems are strings, so an advisory for an
//! ecosystem this code does not know still imports (and matches by its exact `versions`
//! list).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::verification::Severity;

/// Longest advisory id accepted (`GHSA-xxxx-xxxx-xxxx`, `RUSTSEC-2024-0001`, ...).
pub const MAX_ID_CHARS: usize = 128;
/// Most affected-package entries one advisory may carry.
pub const MAX_AFFECTED: usize = 1000;

/// An OSV record, as far as Agora reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    /// RFC 3339; a newer `modified` replaces the stored record.
    pub modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

/// One affected package of an advisory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Exact affected versions, in the ecosystem's own syntax.
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// `crates.io`, `npm`, `PyPI`, `Go`, ... (OSV's names).
    pub ecosystem: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One event of a range: exactly one of the fields is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// Why an advisory document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvisoryError {
    #[error("not an OSV record: {0}")]
    Malformed(String),
    #[error("id must be 1 to {MAX_ID_CHARS} characters of letters, digits, '-', '_', ':' or '.'")]
    BadId,
    #[error("modified must be an RFC 3339 time stamp")]
    BadModified,
    #[error("it lists {0} affected packages; at most {MAX_AFFECTED} are accepted")]
    TooManyAffected(usize),
}

impl Advisory {
    /// Reads and checks one OSV record.
    pub fn from_json(value: serde_json::Value) -> Result<Advisory, AdvisoryError> {
        let advisory: Advisory =
            serde_json::from_value(value).map_err(|e| AdvisoryError::Malformed(e.to_string()))?;
        let id_ok = !advisory.id.is_empty()
            && advisory.id.chars().count() <= MAX_ID_CHARS
            && advisory
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
        if !id_ok {
            return Err(AdvisoryError::BadId);
        }
        // RFC 3339 starts with a full date and a 'T'; the store compares these as text.
        let m = advisory.modified.as_bytes();
        if m.len() < 20 || m[4] != b'-' || m[7] != b'-' || !matches!(m[10], b'T' | b't') {
            return Err(AdvisoryError::BadModified);
        }
        if advisory.affected.len() > MAX_AFFECTED {
            return Err(AdvisoryError::TooManyAffected(advisory.affected.len()));
        }
        Ok(advisory)
    }

    /// The packages it names, as `(ecosystem, name)`.
    pub fn packages(&self) -> Vec<(String, String)> {
        let mut packages: Vec<(String, String)> = self
            .affected
            .iter()
            .filter_map(|a| a.package.as_ref())
            .map(|p| (p.ecosystem.clone(), p.name.clone()))
            .collect();
        packages.sort();
        packages.dedup();
        packages
    }

    /// How severe a match is: the database's own word (GitHub's `LOW`, `MODERATE`,
    /// `HIGH`, `CRITICAL`) where it gives one, high otherwise.
    pub fn severity(&self) -> Severity {
        let word = self
            .database_specific
            .as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_ascii_uppercase();
        match word.as_str() {
            "CRITICAL" => Severity::Critical,
            "MODERATE" | "MEDIUM" => Severity::Medium,
            "LOW" => Severity::Low,
            _ => Severity::High,
        }
    }

    /// Whether `version` of the package `(ecosystem, name)` is affected; the match says
    /// which version fixes it, when the advisory names one.
    pub fn affects(&self, ecosystem: &str, name: &str, version: &str) -> Option<Match> {
        if self.withdrawn.is_some() {
            return None;
        }
        self.affected
            .iter()
            .filter(|a| {
                a.package
                    .as_ref()
                    .is_some_and(|p| same_ecosystem(&p.ecosystem, ecosystem) && p.name == name)
            })
            .find_map(|a| a.affects(ecosystem, version))
    }
}

/// An affected version, and the version that fixes it if the advisory names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub fixed: Option<String>,
}

impl Affected {
    fn affects(&self, ecosystem: &str, version: &str) -> Option<Match> {
        let ordered = Ordered::of(ecosystem);
        if self.versions.iter().any(|v| v == version) {
            return Some(Match {
                fixed: self.fixed_after(ordered, version),
            });
        }
        for range in &self.ranges {
            let order = match range.kind.as_str() {
                "SEMVER" => Ordered::Semver,
                "ECOSYSTEM" => ordered,
                // GIT ranges name commits; versions of a built package cannot be placed.
                _ => continue,
            };
            if order.range_affects(&range.events, version) == Some(true) {
                return Some(Match {
                    fixed: self.fixed_after(order, version),
                });
            }
        }
        None
    }

    /// The lowest `fixed` version above `version`, in any range.
    fn fixed_after(&self, order: Ordered, version: &str) -> Option<String> {
        self.ranges
            .iter()
            .flat_map(|r| r.events.iter())
            .filter_map(|e| e.fixed.as_deref())
            .filter(|f| order.compare(f, version) == Some(Ordering::Greater))
            .min_by(|a, b| order.compare(a, b).unwrap_or(Ordering::Equal))
            .map(str::to_owned)
    }
}

/// OSV names some ecosystems with a release suffix (`Debian:12`); a component's
/// ecosystem matches the advisory's with or without it.
fn same_ecosystem(advisory: &str, component: &str) -> bool {
    advisory == component || advisory.split(':').next() == Some(component)
}

/// How versions of an ecosystem are ordered, where Agora knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordered {
    /// Semantic Versioning 2.0.0 (a leading `v` tolerated, as Go writes it).
    Semver,
    /// No known order: only exact `versions` match.
    Unknown,
}

impl Ordered {
    /// Ecosystems whose versions are semantic versions.
    fn of(ecosystem: &str) -> Ordered {
        match ecosystem {
            "crates.io" | "npm" | "Go" | "Hex" | "Pub" | "SwiftURL" => Ordered::Semver,
            _ => Ordered::Unknown,
        }
    }

    fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Ordered::Semver => Some(parse_semver(a)?.cmp(&parse_semver(b)?)),
            Ordered::Unknown => None,
        }
    }

    /// OSV's evaluation of one range: events sorted by version (`introduced: "0"`
    /// first); `introduced` at or below the version opens it, `fixed` at or below it
    /// closes it, `last_affected` below it closes it. `None` when a version cannot be
    /// placed in this order.
    fn range_affects(self, events: &[Event], version: &str) -> Option<bool> {
        let mut sorted: Vec<(&str, &Event)> = Vec::with_capacity(events.len());
        for e in events {
            let at = e
                .introduced
                .as_deref()
                .or(e.fixed.as_deref())
                .or(e.last_affected.as_deref())
                .or(e.limit.as_deref())?;
            if at != "0" {
                self.compare(at, at)?;
            }
            sorted.push((at, e));
        }
        sorted.sort_by(|(a, _), (b, _)| match (*a == "0", *b == "0") {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => self.compare(a, b).unwrap_or(Ordering::Equal),
        });
        let mut affected = false;
        for (at, e) in sorted {
            let cmp = if at == "0" {
                Ordering::Greater
            } else {
                self.compare(version, at)?
            };
            if e.introduced.is_some() {
                if cmp != Ordering::Less {
                    affected = true;
                }
            } else if e.fixed.is_some() {
                if cmp != Ordering::Less {
                    affected = false;
                }
            } else if e.last_affected.is_some() && cmp == Ordering::Greater {
                affected = false;
            }
        }
        Some(affected)
    }
}

fn parse_semver(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn advisory(affected: serde_json::Value) -> Advisory {
        Advisory::from_json(json!({
            "id": "GHSA-test-0001",
            "modified": "2026-11-01T00:00:00Z",
            "affected": affected,
        }))
        .unwrap()
    }

    fn crate_range(kind: &str, events: serde_json::Value) -> Advisory {
        advisory(json!([{
            "package": {"ecosystem": "crates.io", "name": "smallvec"},
            "ranges": [{"type": kind, "events": events}],
        }]))
    }

    #[test]
    fn introduced_and_fixed_bound_the_range() {
        let a = crate_range(
            "SEMVER",
            json!([{"introduced": "1.0.0"}, {"fixed": "1.6.1"}]),
        );
        assert_eq!(a.affects("crates.io", "smallvec", "0.9.9"), None);
        assert_eq!(
            a.affects("crates.io", "smallvec", "1.0.0"),
            Some(Match {
                fixed: Some("1.6.1".into())
            })
        );
        assert!(a.affects("crates.io", "smallvec", "1.6.0").is_some());
        assert!(a.affects("crates.io", "smallvec", "1.6.1-rc.1").is_some());
        assert_eq!(a.affects("crates.io", "smallvec", "1.6.1"), None);
        assert_eq!(a.affects("crates.io", "smallvec", "2.0.0"), None);
        assert_eq!(a.affects("crates.io", "other", "1.2.0"), None);
        assert_eq!(a.affects("npm", "smallvec", "1.2.0"), None);
    }

    #[test]
    fn introduced_zero_and_last_affected() {
        let a = crate_range(
            "ECOSYSTEM",
            json!([{"introduced": "0"}, {"last_affected": "0.4.2"}]),
        );
        assert!(a.affects("crates.io", "smallvec", "0.0.1").is_some());
        assert_eq!(
            a.affects("crates.io", "smallvec", "0.4.2"),
            Some(Match { fixed: None })
        );
        assert_eq!(a.affects("crates.io", "smallvec", "0.4.3"), None);
    }

    #[test]
    fn several_ranges_in_one_events_list_in_any_order() {
        // Two affected spans, events given out of order: [1.0, 1.5) and [2.0, 2.3).
        let a = crate_range(
            "SEMVER",
            json!([{"fixed": "2.3.0"}, {"introduced": "2.0.0"}, {"introduced": "1.0.0"}, {"fixed": "1.5.0"}]),
        );
        assert!(a.affects("crates.io", "smallvec", "1.2.0").is_some());
        assert_eq!(a.affects("crates.io", "smallvec", "1.7.0"), None);
        assert_eq!(
            a.affects("crates.io", "smallvec", "2.1.0"),
            Some(Match {
                fixed: Some("2.3.0".into())
            })
        );
        assert_eq!(a.affects("crates.io", "smallvec", "2.3.0"), None);
        // The fix named for 1.2.0 is the first fix above it.
        assert_eq!(
            a.affects("crates.io", "smallvec", "1.2.0").unwrap().fixed,
            Some("1.5.0".into())
        );
    }

    #[test]
    fn unknown_orders_match_only_listed_versions_and_git_ranges_never() {
        let a = advisory(json!([{
            "package": {"ecosystem": "PyPI", "name": "jinja2"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.3"}]}],
            "versions": ["3.1.2"],
        }, {
            "package": {"ecosystem": "crates.io", "name": "git-only"},
            "ranges": [{"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}],
        }]));
        assert!(a.affects("PyPI", "jinja2", "3.1.2").is_some());
        assert_eq!(a.affects("PyPI", "jinja2", "3.0.0"), None);
        assert_eq!(a.affects("crates.io", "git-only", "1.0.0"), None);
    }

    #[test]
    fn withdrawn_advisories_match_nothing_and_ids_are_checked() {
        let mut a = crate_range("SEMVER", json!([{"introduced": "0"}]));
        assert!(a.affects("crates.io", "smallvec", "1.0.0").is_some());
        a.withdrawn = Some("2026-11-02T00:00:00Z".into());
        assert_eq!(a.affects("crates.io", "smallvec", "1.0.0"), None);
        assert_eq!(
            Advisory::from_json(json!({"id": "../x", "modified": "2026-11-01T00:00:00Z"})),
            Err(AdvisoryError::BadId)
        );
        assert_eq!(
            Advisory::from_json(json!({"id": "X-1", "modified": "yesterday"})),
            Err(AdvisoryError::BadModified)
        );
        assert!(matches!(
            Advisory::from_json(json!({"id": "X-1"})),
            Err(AdvisoryError::Malformed(_))
        ));
    }

    #[test]
    fn the_database_severity_is_read() {
        let mut a = crate_range("SEMVER", json!([{"introduced": "0"}]));
        assert_eq!(a.severity(), Severity::High);
        a.database_specific = Some(json!({"severity": "MODERATE"}));
        assert_eq!(a.severity(), Severity::Medium);
        a.database_specific = Some(json!({"severity": "CRITICAL"}));
        assert_eq!(a.severity(), Severity::Critical);
    }

    #[test]
    fn ecosystems_with_a_release_suffix_match() {
        let a = advisory(json!([{
            "package": {"ecosystem": "Debian:12", "name": "openssl"},
            "versions": ["3.0.11-1~deb12u1"],
        }]));
        assert!(a.affects("Debian", "openssl", "3.0.11-1~deb12u1").is_some());
    }
}
