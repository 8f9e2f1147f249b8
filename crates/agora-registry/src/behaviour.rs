//! The `behaviour` stage of a verification run: the release's plugin run in the sandbox.
//!
//! The registry does not run plugins itself (it stays free of wasmtime and the native
//! sandbox): it defines the port, [`BehaviourCheck`], and the binary plugs in the
//! runner's implementation (`agora_runner::behaviour`) with
//! [`Registry::with_behaviour`](crate::Registry::with_behaviour). What the registry does
//! is give the check the release's files: each blob is read from storage into a fresh
//! directory under the work directory, hashed on the way and compared with its digest,
//! and the directory is removed when the stage ends, whatever happened.

use std::future::Future;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use agora_core::verification::{Finding, Severity};
use agora_core::{Manifest, Sha256Hasher};
use agora_store::ArtifactRecord;
use futures_util::StreamExt;

use crate::Registry;

/// The future a [`BehaviourCheck`] returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Vec<Finding>> + Send + 'a>>;

/// Runs a release's plugin and says what it did that its manifest does not allow.
pub trait BehaviourCheck: Send + Sync {
    /// Runs the plugin whose files are in `dir` (each one checked against its digest),
    /// described by `manifest`, and returns the findings. It bounds itself in time, and
    /// says so in a finding when it could not run the plugin, rather than find nothing.
    fn check<'a>(&'a self, dir: &'a Path, manifest: &'a Manifest) -> CheckFuture<'a>;
}

/// A [`BehaviourCheck`] and where releases are materialised for it.
#[derive(Clone)]
pub struct Behaviour {
    pub check: Arc<dyn BehaviourCheck>,
    /// Holds one directory per release being checked, each removed afterwards.
    pub work_dir: PathBuf,
}

/// Most bytes of files a release may have for its plugin to be run by the stage.
pub const MAX_MATERIALISED_BYTES: u64 = 512 * 1024 * 1024;

/// A release's files in a directory of their own, removed on drop.
struct Materialised {
    dir: PathBuf,
}

impl Drop for Materialised {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a checked release's files");
        }
    }
}

fn not_run(why: String) -> Vec<Finding> {
    vec![Finding {
        severity: Severity::Low,
        rule: "behaviour.not-run".into(),
        message: why,
        location: None,
    }]
}

/// The stage: materialise, check, remove.
pub(crate) async fn stage(
    registry: &Registry,
    behaviour: &Behaviour,
    manifest: &Manifest,
    artifacts: &[ArtifactRecord],
) -> Vec<Finding> {
    let materialised = match materialise(registry, &behaviour.work_dir, manifest, artifacts).await {
        Ok(m) => m,
        Err(why) => return not_run(why),
    };
    behaviour.check.check(&materialised.dir, manifest).await
}

/// Where `path` (a file of the release) goes under `dir`; `None` when it would leave it.
fn inside(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let plain = !path.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| dir.join(relative))
}

/// Writes every file of the release into a new directory under `work_dir`, checking
/// each against its digest; executables the manifest names get mode 0755.
async fn materialise(
    registry: &Registry,
    work_dir: &Path,
    manifest: &Manifest,
    artifacts: &[ArtifactRecord],
) -> Result<Materialised, String> {
    let total: u64 = artifacts
        .iter()
        .map(|a| u64::try_from(a.size).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add);
    if total > MAX_MATERIALISED_BYTES {
        return Err(format!(
            "the release's files add up to {total} bytes; the stage runs releases of at most {MAX_MATERIALISED_BYTES}"
        ));
    }
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| format!("no randomness for a work directory: {e}"))?;
    std::fs::create_dir_all(work_dir)
        .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
    let dir = work_dir.join(format!("release-{}", hex::encode(suffix)));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let materialised = Materialised { dir };
    let executables: Vec<&String> = manifest.runtime.binaries.values().collect();
    for a in artifacts {
        let Some(target) = inside(&materialised.dir, &a.path) else {
            return Err(format!(
                "the release's file {:?} is not a plain relative path",
                a.path
            ));
        };
        let executable = executables.iter().any(|e| **e == a.path);
        write_checked(registry, a, &target, executable).await?;
    }
    Ok(materialised)
}

/// One blob written to `target`, hashed as it goes; an error names what went wrong.
async fn write_checked(
    registry: &Registry,
    a: &ArtifactRecord,
    target: &Path,
    executable: bool,
) -> Result<(), String> {
    let size = u64::try_from(a.size).unwrap_or(0);
    let unreadable = || {
        format!(
            "{} cannot be read from storage (see the integrity stage)",
            a.path
        )
    };
    let stream = match registry.blobs.get(&a.digest, 0, size).await {
        Ok(Some(s)) => s,
        _ => return Err(unreadable()),
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if executable { 0o755 } else { 0o644 });
    let mut file = options
        .open(target)
        .map_err(|e| format!("cannot write {}: {e}", a.path))?;
    let mut hasher = Sha256Hasher::new();
    let mut body = stream.body;
    while let Some(chunk) = body.next().await {
        let bytes = chunk.map_err(|_| unreadable())?;
        hasher.update(&bytes);
        file.write_all(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", a.path))?;
    }
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", a.path))?;
    if hasher.len() != size || hasher.finish() != a.digest {
        return Err(format!(
            "{} in storage does not match its digest (see the integrity stage); it is not run",
            a.path
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_materialised() {
        let dir = Path::new("/work/r");
        assert_eq!(
            inside(dir, "bin/echo"),
            Some(PathBuf::from("/work/r/bin/echo"))
        );
        for bad in ["", "/etc/passwd", "../up", "a/../../b", "./x"] {
            assert_eq!(inside(dir, bad), None, "{bad}");
        }
    }
}
