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
    /// Something in the plugin directory that `agora.lock` does not know (a plugin
    /// copied in by hand, a leftover of a removal).
    Unknown { path: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Missing { plugin, path } => write!(f, "{plugin}: {path} is missing"),
            Finding::Modified { plugin, path, .. } => write!(f, "{plugin}: {path} was modified"),
            Finding::Unexpected { plugin, path } => {
                write!(f, "{plugin}: {path} is not part of the release")
            }
            Finding::Unknown { path } => {
                write!(f, "{path} is not a plugin agora.lock knows")
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

/// Whether `entry`'s files in `dir` are exactly the ones it pins (no file missing,
/// changed or added).
pub fn entry_intact(dir: &Path, entry: &crate::lockfile::LockEntry) -> bool {
    let plugin_dir = entry
        .name
        .split('/')
        .fold(dir.to_path_buf(), |p, part| p.join(part));
    let all_match = entry.artifacts.iter().all(|a| {
        crate::bundle::hash_file(&plugin_dir.join(&a.path)).is_ok_and(|(d, _)| d == a.digest)
    });
    let mut present = Vec::new();
    all_match
        && files_under(&plugin_dir, &plugin_dir, &mut present).is_ok()
        && present.len() == entry.artifacts.len()
}

/// What lies in `dir` besides `agora.lock`, the staging area and the locked plugins'
/// directories (`PUBLISHER/NAME`).
fn unknown_entries(dir: &Path, lock: &Lockfile) -> Vec<Finding> {
    let known: std::collections::BTreeSet<&str> =
        lock.plugins.iter().map(|p| p.name.as_str()).collect();
    let names = |d: &Path| -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = std::fs::read_dir(d)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                        (e.file_name().to_string_lossy().into_owned(), is_dir)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    };
    let mut findings = Vec::new();
    for (publisher, is_dir) in names(dir) {
        if publisher == crate::lockfile::LOCKFILE
            || publisher == ".agora-tmp"
            || publisher == ".agora"
        {
            continue;
        }
        if !is_dir
            || !known
                .iter()
                .any(|k| k.split('/').next() == Some(&publisher))
        {
            findings.push(Finding::Unknown { path: publisher });
            continue;
        }
        for (name, _) in names(&dir.join(&publisher)) {
            let path = format!("{publisher}/{name}");
            if !known.contains(path.as_str()) {
                findings.push(Finding::Unknown { path });
            }
        }
    }
    findings
}

/// Re-hashes every installed file against `agora.lock` and looks for files that do not
/// belong. Nothing is changed.
pub fn verify_installed(dir: &Path) -> Result<InstalledReport, LockfileError> {
    if !dir.is_dir() {
        return Err(LockfileError::NotInstalled(format!(
            "{} does not exist or is not a directory; name the plugin directory with --dir",
            dir.display()
        )));
    }
    let lock = Lockfile::load(dir)?.ok_or_else(|| {
        LockfileError::NotInstalled(format!(
            "{} has no agora.lock: nothing was installed there with agora, so nothing can be checked",
            dir.display()
        ))
    })?;
    let mut findings = unknown_entries(dir, &lock);
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
