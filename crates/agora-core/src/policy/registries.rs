//! OCI image references and the registries a policy lets images come from.
//!
//! A plugin of `runtime.type: oci` names its image by digest
//! (`registry.example/acme/jira@sha256:<64 hex>`). [`ImageRef::parse`] reads such a
//! reference the way Docker and OCI tools do: the first path component is the registry
//! when it holds a `.` or a `:` or is `localhost`, otherwise the registry is `docker.io`
//! (and a one-component name lives under `library/`). A reference without
//! `@sha256:<64 hex>` is refused: a tag can move, a digest cannot. A tag written beside
//! the digest (`repo:1.0@sha256:...`) is dropped; the digest alone decides the content.
//!
//! The policy's `[oci] allowed_registries` entries are [`HostRule`]s, the same patterns
//! as the outbound hosts: `host` (a registry named without a port, i.e. HTTPS on 443),
//! `host:port`, or `*.domain`. [`registry_allowed`] is the one check the policy, the
//! client's pull and the registry's verifier apply.

use super::HostRule;

/// The name of the policy setting listing the registries images may come from.
pub const ALLOWED_REGISTRIES_SETTING: &str = "[oci] allowed_registries";

/// Where images whose name has no registry component come from.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host` or `host:port`, lowercase.
    pub registry: String,
    /// The repository path inside the registry (`acme/jira`).
    pub repository: String,
    /// `sha256:<64 lowercase hex>`.
    pub digest: String,
}

impl ImageRef {
    /// Parses `[registry/]repository[:tag]@sha256:<64 hex>`.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        let Some((name, digest)) = text.rsplit_once('@') else {
            return Err(format!(
                "`{text}` is not pinned by digest (expected NAME@sha256:<64 hex>; a tag can move, so images are pulled by digest only)"
            ));
        };
        let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
            format!("`{text}` has the digest `{digest}`; only sha256 digests are accepted")
        })?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "`{text}` has the digest `{digest}` (expected sha256: and 64 lowercase hex digits)"
            ));
        }
        let (first, rest) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_ascii_lowercase(), rest)
            }
            Some(_) => (DEFAULT_REGISTRY.to_owned(), name),
            None => (DEFAULT_REGISTRY.to_owned(), name),
        };
        // A tag after the last path component is dropped: the digest decides.
        let repository = match rest.rsplit_once('/') {
            Some((dir, last)) => format!("{dir}/{}", last.split(':').next().unwrap_or(last)),
            None => rest.split(':').next().unwrap_or(rest).to_owned(),
        };
        let repository = if first == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(format!(
                "`{text}` has the repository `{repository}` (expected lowercase components of letters, digits, `.`, `_` and `-`, joined by `/`)"
            ));
        }
        registry_rule(&first).map_err(|e| format!("`{text}`: the registry {e}"))?;
        Ok(ImageRef {
            registry: first,
            repository,
            digest: digest.to_owned(),
        })
    }

    /// The registry's host and port (443 when the reference names none).
    pub fn host_and_port(&self) -> (&str, u16) {
        split_registry(&self.registry)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

fn split_registry(registry: &str) -> (&str, u16) {
    match registry.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (registry, 443),
    }
}

fn registry_rule(registry: &str) -> Result<HostRule, String> {
    let rule = HostRule::parse(registry)?;
    if rule.host.starts_with("*.") {
        return Err(format!("`{registry}` is a pattern, not a registry"));
    }
    Ok(rule)
}

/// Checks every entry of an allowed-registries list.
pub fn check_allowed_registries(entries: &[String]) -> Result<(), String> {
    for entry in entries {
        HostRule::parse(entry)?;
    }
    Ok(())
}

/// Whether `registry` (`host` or `host:port`, as in [`ImageRef::registry`]) is on the
/// list. Entries that do not parse allow nothing.
pub fn registry_allowed(entries: &[String], registry: &str) -> bool {
    let (host, port) = split_registry(registry);
    entries
        .iter()
        .filter_map(|e| HostRule::parse(e).ok())
        .any(|rule| rule.allows(host, port))
}

/// The reason a registry is refused: names the registry, what the list allows and the
/// setting to change (`whose` is "this host" or "the tenant").
pub fn registry_refusal(entries: &[String], registry: &str, whose: &str) -> String {
    format!(
        "the image's registry `{registry}` is not one {whose} pulls from ({ALLOWED_REGISTRIES_SETTING} allows {}; add \"{registry}\" to it to allow it)",
        if entries.is_empty() {
            "none".to_owned()
        } else {
            entries.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_name_registry_repository_and_digest() {
        let r = ImageRef::parse(&format!("registry.example/acme/jira@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "registry.example");
        assert_eq!(r.repository, "acme/jira");
        assert_eq!(r.digest, format!("sha256:{HEX}"));
        assert_eq!(r.host_and_port(), ("registry.example", 443));
        let r = ImageRef::parse(&format!("127.0.0.1:5000/p/x:1.0@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "p/x");
        assert_eq!(r.host_and_port(), ("127.0.0.1", 5000));
        let r = ImageRef::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        let r = ImageRef::parse(&format!("acme/jira@sha256:{HEX}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "acme/jira")
        );
        let r = ImageRef::parse(&format!("localhost/jira@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn references_without_a_sha256_digest_are_refused() {
        let tag = ImageRef::parse("registry.example/acme/jira:1.0").unwrap_err();
        assert!(tag.contains("not pinned by digest"), "{tag}");
        for bad in [
            format!("r.example/a@sha512:{HEX}"),
            "r.example/a@sha256:abc".to_owned(),
            format!("r.example/a@sha256:{}", HEX.to_uppercase()),
            format!("r.example/A@sha256:{HEX}"),
            format!("r.example//a@sha256:{HEX}"),
            format!("r.example:0/a@sha256:{HEX}"),
        ] {
            assert!(ImageRef::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_registries_match_like_outbound_hosts() {
        let list = vec![
            "registry.example".to_owned(),
            "127.0.0.1:5000".to_owned(),
            "*.corp.example".to_owned(),
        ];
        assert!(registry_allowed(&list, "registry.example"));
        assert!(registry_allowed(&list, "registry.example:443"));
        assert!(!registry_allowed(&list, "registry.example:5000"));
        assert!(registry_allowed(&list, "127.0.0.1:5000"));
        assert!(!registry_allowed(&list, "127.0.0.1:5001"));
        assert!(registry_allowed(&list, "r.corp.example"));
        assert!(!registry_allowed(&list, "corp.example"));
        assert!(!registry_allowed(&[], "registry.example"));
        let reason = registry_refusal(&[], "evil.example", "this host");
        assert!(
            reason.contains("[oci] allowed_registries allows none"),
            "{reason}"
        );
        assert!(reason.contains("add \"evil.example\""), "{reason}");
        assert!(check_allowed_registries(&["http://x".to_owned()]).is_err());
    }
}
