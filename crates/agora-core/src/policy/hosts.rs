//! Where a plugin may connect: one allowed destination ([`HostRule`]: `host`,
//! `host:port` or `*.domain`), whether a manifest's rule fits under the policy's, and the
//! addresses a plugin never reaches unless the policy allows private addresses.

use serde::Serialize;

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRule {
    /// Lowercase host name, or `*.domain`.
    pub host: String,
    /// `None`: ports 80 and 443.
    pub port: Option<u16>,
}

impl HostRule {
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let text = text.trim().to_ascii_lowercase();
        if text.contains('/') || text.contains('@') {
            return Err(format!(
                "`{text}` is not a host name (expected `host`, `host:port` or `*.domain`, no scheme or path)"
            ));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("`{text}` has an invalid port"))?;
                (host.to_owned(), Some(port))
            }
            None => (text.clone(), None),
        };
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "`{text}` is not a host name (expected `host`, `host:port` or `*.domain`)"
            ));
        }
        Ok(HostRule { host, port })
    }

    /// Whether this rule allows `host:port`. Host names only: a rule never matches an IP
    /// literal unless it is that literal.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        };
        port_ok && host_ok
    }

    /// Whether everything this rule allows is also allowed by `ceiling`.
    pub fn within(&self, ceiling: &HostRule) -> bool {
        let ports_within = match (self.port, ceiling.port) {
            (_, None) => self.port.is_none_or(|p| p == 80 || p == 443),
            (Some(p), Some(c)) => p == c,
            (None, Some(_)) => false,
        };
        let hosts_within = match (
            self.host.strip_prefix("*."),
            ceiling.host.strip_prefix("*."),
        ) {
            (None, None) => self.host == ceiling.host,
            (None, Some(domain)) => self.host.ends_with(&format!(".{domain}")),
            (Some(mine), Some(domain)) => mine == domain || mine.ends_with(&format!(".{domain}")),
            (Some(_), None) => false,
        };
        ports_within && hosts_within
    }
}

/// Whether an address is one a plugin must not reach unless the policy says so (the
/// registry's webhooks apply the same rule).
pub use crate::net::is_internal;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rules_parse_and_nest() {
        let rule = |text: &str| HostRule::parse(text).unwrap();
        assert_eq!(rule("API.Example.com").host, "api.example.com");
        assert_eq!(rule("api.example.com:8443").port, Some(8443));
        for bad in [
            "http://x",
            "user@host",
            "host:0",
            "host:99999",
            "",
            "a..b",
            "*.",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
        assert!(rule("a.example.com").within(&rule("*.example.com")));
        assert!(rule("*.a.example.com").within(&rule("*.example.com")));
        assert!(!rule("*.com").within(&rule("*.example.com")));
        assert!(!rule("example.com").within(&rule("*.example.com")));
        assert!(rule("example.com:443").within(&rule("example.com")));
        assert!(!rule("example.com:22").within(&rule("example.com")));
        assert!(!rule("example.com").within(&rule("example.com:443")));
    }
}
