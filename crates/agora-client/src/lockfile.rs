//! `agora.lock`: the installed set of a plugin directory, pinned by digest.

use std::path::{Path, PathBuf};

use agora_core::Digest;
use agora_core::api::Artifact;
use serde::{Deserialize, Serialize};

pub const LOCKFILE: &str = "agora.lock";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockEntry {
    /// `publisher/name`.
    pub name: String,
    pub version: String,
    pub manifest_digest: Digest,
    pub artifacts: Vec<Artifact>,
    /// Id of the key that signed the release, once releases are signed.
    #[serde(default)]
    pub signer_key: Option<String>,
    /// Index of the release in the registry's transparency log, once there is one.
    #[serde(default)]
    pub log_index: Option<u64>,
    /// The version requirement it was installed with (`agora update` stays within it;
    /// `--latest` moves it). None for plugins installed only as dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// The registry's verification outcome of the release when it was installed
    /// (`verified`, `needs-review`, `rejected`); none when it was not checked yet. A
    /// host policy with `require_verified` runs only `verified` ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lockfile {
    pub format: u32,
    pub registry: String,
    pub plugins: Vec<LockEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid lockfile: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has format {found}; this agora understands format {FORMAT_VERSION}")]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotInstalled(String),
}

/// An installed plugin as `agora.lock` pins it: its directory and its entry.
#[derive(Debug, Clone)]
pub struct Installed {
    pub dir: PathBuf,
    pub entry: LockEntry,
}

impl Installed {
    /// The digest `agora.lock` pins for the file at `relative` (inside the plugin's
    /// directory), which the code must still hash to when it runs.
    pub fn pinned_digest(&self, relative: &str) -> Result<Digest, LockfileError> {
        self.entry
            .artifacts
            .iter()
            .find(|a| a.path == relative)
            .map(|a| a.digest)
            .ok_or_else(|| {
                LockfileError::NotInstalled(format!(
                    "agora.lock pins no digest for {relative} of {}; reinstall it",
                    self.entry.name
                ))
            })
    }
}

impl Lockfile {
    /// The plugin `spec` (`PUBLISHER/NAME[@VERSION]`) as installed in `dir`: refused if
    /// the directory has no lockfile, the plugin is not in it, or another version is.
    pub fn installed(dir: &Path, spec: &str) -> Result<Installed, LockfileError> {
        let not = |why: String| LockfileError::NotInstalled(why);
        let (name, version) = match spec.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (spec, None),
        };
        let wanted: agora_core::PluginRef = name
            .parse()
            .map_err(|_| not(format!("`{spec}` is not PUBLISHER/NAME[@VERSION]")))?;
        let id = format!("{}/{}", wanted.publisher, wanted.name);
        let lock = Lockfile::load(dir)?.ok_or_else(|| {
            not(format!(
                "{} has no agora.lock; install the plugin first (`agora install {id}`)",
                dir.display()
            ))
        })?;
        let entry = lock
            .plugins
            .into_iter()
            .find(|e| e.name == id)
            .ok_or_else(|| not(format!("{id} is not installed in {}", dir.display())))?;
        if let Some(version) = version
            && version != entry.version
        {
            return Err(not(format!(
                "{id}@{version} is not installed in {}; {id}@{} is",
                dir.display(),
                entry.version
            )));
        }
        Ok(Installed {
            dir: dir
                .join(wanted.publisher.as_str())
                .join(wanted.name.as_str()),
            entry,
        })
    }

    pub fn new(registry: &str) -> Lockfile {
        Lockfile {
            format: FORMAT_VERSION,
            registry: registry.to_owned(),
            plugins: Vec::new(),
        }
    }

    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(LOCKFILE)
    }

    /// Reads the lockfile of a plugin directory; `None` if there is none yet.
    pub fn load(dir: &Path) -> Result<Option<Lockfile>, LockfileError> {
        let path = Self::path_in(dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LockfileError::Read { path, source }),
        };
        let lock: Lockfile =
            serde_json::from_slice(&text).map_err(|source| LockfileError::Parse {
                path: path.clone(),
                source,
            })?;
        if lock.format != FORMAT_VERSION {
            return Err(LockfileError::Format {
                path,
                found: lock.format,
            });
        }
        Ok(Some(lock))
    }

    /// Writes atomically (temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), LockfileError> {
        let path = Self::path_in(dir);
        let write = || -> std::io::Result<()> {
            let temp = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer_pretty(temp.as_file(), self).map_err(std::io::Error::other)?;
            temp.as_file().sync_all()?;
            temp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|source| LockfileError::Write {
            path: path.clone(),
            source,
        })
    }

    pub fn upsert(&mut self, entry: LockEntry) {
        self.plugins.retain(|p| p.name != entry.name);
        self.plugins.push(entry);
        self.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    }
}
