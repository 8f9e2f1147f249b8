//! The OCI runtime binary: where it is, whether it works here, and the commands the
//! runner gives it (`run`, `kill`, `delete`, `list`), always with `--root` in the
//! runner's state directory so that its containers are the runner's alone.
//!
//! runc is the runtime: crun refuses hosts whose cgroup v1 controllers sit beside a
//! cgroup2 hierarchy ("hybrid"), which many hosts still mount.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// The binary looked for on `PATH` when none is configured.
pub const DEFAULT_RUNTIME: &str = "runc";
/// What to tell someone who has none.
pub const INSTALL_HINT: &str = "install it with `apt-get install runc` (or your distribution's runc package), or set the runner's OCI runtime path";

/// An OCI runtime found on this host.
#[derive(Debug, Clone, Serialize)]
pub struct OciRuntime {
    pub path: PathBuf,
    /// Its `--version` first line, e.g. `runc version 1.1.5+ds1`.
    pub version: String,
}

/// Finds `configured` (a path, or a name looked up on `PATH`), or `runc` on `PATH`.
pub fn find(configured: Option<&Path>) -> Result<OciRuntime, String> {
    let wanted = configured.unwrap_or(Path::new(DEFAULT_RUNTIME));
    let path = if wanted.components().count() > 1 {
        wanted.to_path_buf()
    } else {
        search_path(wanted).ok_or_else(|| {
            format!(
                "no OCI runtime: `{}` is not on PATH ({}); {INSTALL_HINT}",
                wanted.display(),
                std::env::var("PATH").unwrap_or_default()
            )
        })?
    };
    let output = Command::new(&path).arg("--version").output().map_err(|e| {
        format!(
            "the OCI runtime {} cannot be run: {e}; {INSTALL_HINT}",
            path.display()
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "the OCI runtime {} failed `--version`: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(OciRuntime { path, version })
}

fn search_path(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // runc lives in /usr/sbin on Debian, which is not on every user's PATH.
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

impl OciRuntime {
    /// `runtime --root ROOT ARGS...`, quiet, its result ignored beyond success: for
    /// cleaning up, where nothing more can be done about a failure.
    pub(crate) fn quietly(&self, root: &Path, args: &[&str]) -> bool {
        Command::new(&self.path)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Kills container `id` and deletes it, whatever state it is in.
    pub(crate) fn remove(&self, root: &Path, id: &str) {
        self.quietly(root, &["kill", id, "KILL"]);
        self.quietly(root, &["delete", "--force", id]);
    }

    /// The ids of the containers under `root`.
    pub fn list(&self, root: &Path) -> Vec<String> {
        Command::new(&self.path)
            .arg("--root")
            .arg(root)
            .args(["list", "--quiet"])
            .stderr(std::process::Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A container id for a launch: `agora-r<runner pid>-<launch>`, so that a later runner
/// can tell which containers belong to a runner that is gone.
pub(crate) fn container_id(cgroup_name: &str) -> String {
    format!("agora-{cgroup_name}")
}

/// Deletes the containers under `root` whose runner is gone; returns how many.
pub fn sweep_stale(runtime: &OciRuntime, root: &Path) -> usize {
    let mut swept = 0;
    for id in runtime.list(root) {
        let Some(pid) = id
            .strip_prefix("agora-r")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        runtime.remove(root, &id);
        swept += 1;
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runtime_names_what_was_looked_for_and_how_to_install_it() {
        let error = find(Some(Path::new("no-such-runtime-here"))).unwrap_err();
        assert!(
            error.contains("`no-such-runtime-here` is not on PATH"),
            "{error}"
        );
        assert!(error.contains("apt-get install runc"), "{error}");
        let error = find(Some(Path::new("/nonexistent/runc"))).unwrap_err();
        assert!(error.contains("/nonexistent/runc cannot be run"), "{error}");
    }
}
