//! Client-side checks: a release's signature before anything is installed, and the files
//! of a plugin directory against its lockfile (local tamper detection).

use std::collections::BTreeMap;
use std::path::Path;

use agora_core::Digest;
use agora_core::api::{PublisherKey, VersionDetail};
use agora_trust::{Envelope, PublicKey, ReleaseClaim, VerifyError};

use crate::lockfile::{Lockfile, LockfileError};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0} is not signed; nothing was installed")]
    Unsigned(String),
    #[error("{label}: {source}; nothing was installed")]
    Signature { label: String, source: VerifyError },
    #[error(
        "{label}: the registry says it was signed by {claimed} but the signature is by {verified}; nothing was installed"
    )]
    SignerMismatch {
        label: String,
        claimed: String,
        verified: String,
    },
}

/// Checks the release's signature against `keys`, the ones its publisher had registered when it
/// was published (a key revoked later still vouches for what it signed before), over
/// exactly the files the registry lists. Returns the signing key's id.
pub fn verify_release_signature(
    detail: &VersionDetail,
    keys: &[PublisherKey],
) -> Result<String, TrustError> {
    let label = format!("{}/{}@{}", detail.publisher, detail.name, detail.version);
    let raw = detail
        .signature
        .as_ref()
        .ok_or_else(|| TrustError::Unsigned(label.clone()))?;
    let envelope: Envelope =
        serde_json::from_value(raw.clone()).map_err(|e| TrustError::Signature {
            label: label.clone(),
            source: VerifyError::Malformed(e.to_string()),
        })?;
    let keys: Vec<PublicKey> = keys
        .iter()
        // Timestamps are RFC 3339 in UTC with millisecond precision: they sort as text.
        .filter(|k| {
            k.revoked_at
                .as_ref()
                .is_none_or(|revoked| *revoked > detail.published_at)
        })
        .filter_map(|k| PublicKey::parse(&k.public_key).ok())
        .collect();
    let claim = ReleaseClaim::new(
        &detail.publisher,
        &detail.name,
        &detail.version,
        detail.manifest_digest,
        detail.artifacts.iter().map(|a| (a.path.clone(), a.digest)),
    );
    let verified = agora_trust::verify_release(&envelope, &keys, &claim).map_err(|source| {
        TrustError::Signature {
            label: label.clone(),
            source,
        }
    })?;
    if let Some(claimed) = &detail.signer_key
        && *claimed != verified
    {
        return Err(TrustError::SignerMismatch {
            label,
            claimed: claimed.clone(),
            verified,
        });
    }
    Ok(verified)
}

/// One problem found in a plugin directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Finding {
    /// A file the lockfile pins is gone.
    Missing { plugin: String, path: String },
    /// A file's content differs from its pinned digest.
    Modified {
        plugin: String,
        path: String,
        expected: Digest,
        actual: Digest,
    },
    /// A file is in a plugin's directory that no release put there.
    Unexpected { plugin: String, path: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Missing { plugin, path } => write!(f, "{plugin}: {path} is missing"),
            Finding::Modified { plugin, path, .. } => write!(f, "{plugin}: {path} was modified"),
            Finding::Unexpected { plugin, path } => {
                write!(f, "{plugin}: {path} is not part of the release")
            }
        }
    }
}

/// What `verify --installed` checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstalledReport {
    pub plugins: usize,
    pub files: usize,
    pub findings: Vec<Finding>,
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files_under(root, &entry.path(), out)?;
        } else {
            let rel = entry
                .path()
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(rel);
        }
    }
    Ok(())
}

/// Re-hashes every installed file against `agora.lock` and looks for files that do not
/// belong. Nothing is changed.
pub fn verify_installed(dir: &Path) -> Result<InstalledReport, LockfileError> {
    let lock = Lockfile::load(dir)?.unwrap_or_else(|| Lockfile::new(""));
    let mut findings = Vec::new();
    let mut files = 0;
    for entry in &lock.plugins {
        let plugin_dir = entry
            .name
            .split('/')
            .fold(dir.to_path_buf(), |p, part| p.join(part));
        let pinned: BTreeMap<&str, Digest> = entry
            .artifacts
            .iter()
            .map(|a| (a.path.as_str(), a.digest))
            .collect();
        for (path, expected) in &pinned {
            files += 1;
            match crate::bundle::hash_file(&plugin_dir.join(path)).map(|(digest, _)| digest) {
                Ok(actual) if actual == *expected => {}
                Ok(actual) => findings.push(Finding::Modified {
                    plugin: entry.name.clone(),
                    path: (*path).into(),
                    expected: *expected,
                    actual,
                }),
                Err(_) => findings.push(Finding::Missing {
                    plugin: entry.name.clone(),
                    path: (*path).into(),
                }),
            }
        }
        let mut present = Vec::new();
        let _ = files_under(&plugin_dir, &plugin_dir, &mut present);
        for path in present
            .into_iter()
            .filter(|p| !pinned.contains_key(p.as_str()))
        {
            findings.push(Finding::Unexpected {
                plugin: entry.name.clone(),
                path,
            });
        }
    }
    Ok(InstalledReport {
        plugins: lock.plugins.len(),
        files,
        findings,
    })
}
