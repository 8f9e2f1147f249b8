//! `agora build`: builds a Rust plugin with cargo as its manifest says and puts each
//! artifact where the manifest names it: the WebAssembly component (`runtime.module`,
//! target `wasm32-wasip2`) or the native executables (`runtime.binaries`, one per
//! platform, the host's by default). Cargo decides what to rebuild; an artifact whose
//! bytes did not change is reported as unchanged and not rewritten.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agora_core::Digest;
use agora_core::manifest::{MANIFEST_FILE, Manifest, RuntimeKind};

/// The WebAssembly target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Manifest { path: PathBuf, problem: String },
    #[error(
        "{0} has no Cargo.toml: `agora build` builds Rust plugins with cargo; build this one with its own tools and put the artifact where plugin.yaml's runtime names it"
    )]
    NotRust(PathBuf),
    #[error("cannot run cargo: {0} (is Rust installed? https://rustup.rs)")]
    Cargo(std::io::Error),
    #[error("cargo build failed for {target}{hint} (its messages are above)")]
    Failed { target: String, hint: String },
    #[error(
        "cargo built no {what} for {target}; check that {manifest} builds one (crate-type = [\"cdylib\"] for a WASM component, a [[bin]] for a native plugin)"
    )]
    NoArtifact {
        what: &'static str,
        target: String,
        manifest: PathBuf,
    },
    #[error("{0}")]
    Platform(String),
    #[error(
        "--sbom runs cargo-cyclonedx, which is not installed: `cargo install --locked cargo-cyclonedx` (or write the SBOM with another generator and name it in plugin.yaml's sbom)"
    )]
    NoSbomTool,
    #[error("cargo cyclonedx failed for {0} (its messages are above)")]
    SbomFailed(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One artifact put in place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    /// Path inside the plugin directory, as the manifest names it.
    pub path: String,
    /// The Rust target it was built for.
    pub target: String,
    pub size: u64,
    pub digest: Digest,
    /// The same bytes were there already.
    pub unchanged: bool,
}

/// The Rust target triple for an Agora platform name (`linux-x86_64`).
pub fn rust_target(platform: &str) -> Result<String, BuildError> {
    let (os, arch) = platform.split_once('-').ok_or_else(|| {
        BuildError::Platform(format!(
            "{platform:?} is not a platform name (expected OS-ARCH, e.g. linux-x86_64)"
        ))
    })?;
    match os {
        "linux" => Ok(format!("{arch}-unknown-linux-gnu")),
        "macos" => Ok(format!("{arch}-apple-darwin")),
        other => Err(BuildError::Platform(format!(
            "agora build does not know the Rust target for OS {other:?} (platform {platform})"
        ))),
    }
}

/// Builds the plugin in `dir`. For native plugins, `platforms` chooses which of the
/// manifest's binaries to build (empty: this host's only).
pub fn build(dir: &Path, platforms: &[String]) -> Result<Vec<Built>, BuildError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = read_manifest(dir)?;
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        return Err(BuildError::NotRust(dir.to_path_buf()));
    }
    let manifest_problem = |problem: String| BuildError::Manifest {
        path: manifest_path.clone(),
        problem,
    };
    match manifest.runtime.kind {
        RuntimeKind::Wasm => {
            let module = manifest.runtime.module.clone().ok_or_else(|| {
                manifest_problem("runtime.module is missing: name the .wasm file".into())
            })?;
            let artifact = cargo_build(&cargo_toml, Some(WASM_TARGET), "WebAssembly module")?;
            Ok(vec![place(&artifact, dir, &module, WASM_TARGET, false)?])
        }
        RuntimeKind::Exec => {
            let wanted: Vec<String> = if platforms.is_empty() {
                vec![agora_core::manifest::platform()]
            } else {
                platforms.to_vec()
            };
            let host = agora_core::manifest::platform();
            let mut built = Vec::new();
            for platform in &wanted {
                let path = manifest.runtime.binaries.get(platform).ok_or_else(|| {
                    let known: Vec<&str> = manifest
                        .runtime
                        .binaries
                        .keys()
                        .map(String::as_str)
                        .collect();
                    manifest_problem(format!(
                        "runtime.binaries has no entry for {platform} (it has: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?;
                let target = rust_target(platform)?;
                // The host's own binary is built without --target, like `cargo build`.
                let explicit = (*platform != host).then_some(target.as_str());
                let artifact = cargo_build(&cargo_toml, explicit, "executable")?;
                built.push(place(&artifact, dir, path, &target, true)?);
            }
            Ok(built)
        }
        RuntimeKind::Oci => Err(manifest_problem(
            "runtime.type oci: build the image with your container tools (buildah, docker)".into(),
        )),
    }
}

/// Writes the plugin's software bill of materials where plugin.yaml's `sbom` names it:
/// CycloneDX 1.5 JSON made by `cargo cyclonedx` from the crate's resolved dependencies
/// (for the target the plugin is built for; build-only dependencies left out), which
/// the registry's `sbom` and `vulnerabilities` stages read.
pub fn sbom(dir: &Path) -> Result<Built, BuildError> {
    let (manifest, relative) = sbom_file(dir)?;
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        return Err(BuildError::NotRust(dir.to_path_buf()));
    }
    let target = match manifest.runtime.kind {
        RuntimeKind::Wasm => Some(WASM_TARGET),
        _ => None,
    };
    // cargo-cyclonedx writes `<stem>.json` beside Cargo.toml; it is moved into place.
    const STEM: &str = ".agora-sbom";
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "cyclonedx",
        "--format",
        "json",
        "--spec-version",
        "1.5",
        "--no-build-deps",
        "--override-filename",
        STEM,
    ])
    .arg("--manifest-path")
    .arg(&cargo_toml)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output().map_err(BuildError::Cargo)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("no such command") {
            return Err(BuildError::NoSbomTool);
        }
        eprint!("{stderr}");
        return Err(BuildError::SbomFailed(cargo_toml));
    }
    let written = dir.join(format!("{STEM}.json"));
    let built = place(
        &written,
        dir,
        &relative,
        target.unwrap_or(&agora_core::manifest::platform()),
        false,
    );
    let _ = std::fs::remove_file(&written);
    built
}

/// The plugin's manifest and where its `sbom` field says the SBOM goes (an error naming
/// the field when there is none): checked before anything is built.
pub fn sbom_file(dir: &Path) -> Result<(Manifest, String), BuildError> {
    let manifest = read_manifest(dir)?;
    let relative = manifest.sbom.clone().ok_or_else(|| BuildError::Manifest {
        path: dir.join(MANIFEST_FILE),
        problem: "sbom is missing: name the file the SBOM goes to, e.g. `sbom: sbom.cdx.json`"
            .into(),
    })?;
    Ok((manifest, relative))
}

/// The plugin's `plugin.yaml`, read and parsed.
fn read_manifest(dir: &Path) -> Result<Manifest, BuildError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).map_err(|source| BuildError::Read {
        path: manifest_path.clone(),
        source,
    })?;
    Manifest::from_yaml(&text).map_err(|e| BuildError::Manifest {
        path: manifest_path,
        problem: e.to_string(),
    })
}

/// Runs `cargo build --release` and returns the artifact it reports (its JSON messages
/// give the real path, wherever the target directory is).
fn cargo_build(
    cargo_toml: &Path,
    target: Option<&str>,
    what: &'static str,
) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ])
    .arg("--manifest-path")
    .arg(cargo_toml)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output().map_err(BuildError::Cargo)?;
    let target_name = target.map_or_else(agora_core::manifest::platform, str::to_owned);
    if !out.status.success() {
        let hint = match target {
            Some(t) if !target_installed(t) => {
                format!("; the Rust target is not installed: rustup target add {t}")
            }
            _ => String::new(),
        };
        return Err(BuildError::Failed {
            target: target_name,
            hint,
        });
    }
    let wasm = target == Some(WASM_TARGET);
    let mut found = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if !message["manifest_path"]
            .as_str()
            .is_some_and(|p| Path::new(p) == cargo_toml || same_file(Path::new(p), cargo_toml))
        {
            continue;
        }
        let kinds = message["target"]["kind"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // A WASM component comes from a cdylib or a bin target; a native plugin from a bin.
        let usable = kinds.iter().any(|k| k == "bin" || (wasm && k == "cdylib"));
        if !usable {
            continue;
        }
        let file = if wasm {
            message["filenames"]
                .as_array()
                .and_then(|f| {
                    f.iter()
                        .filter_map(|f| f.as_str())
                        .find(|f| f.ends_with(".wasm"))
                })
                .map(PathBuf::from)
        } else {
            message["executable"].as_str().map(PathBuf::from)
        };
        if file.is_some() {
            found = file;
        }
    }
    found.ok_or(BuildError::NoArtifact {
        what,
        target: target_name,
        manifest: cargo_toml.to_path_buf(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn target_installed(target: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == target)
        })
        // Without rustup the target may come from elsewhere: do not guess.
        .unwrap_or(true)
}

/// Copies `artifact` to `dir/relative` unless the same bytes are there already.
fn place(
    artifact: &Path,
    dir: &Path,
    relative: &str,
    target: &str,
    executable: bool,
) -> Result<Built, BuildError> {
    if let Some(problem) = agora_core::manifest::relative_path_problem(relative) {
        return Err(BuildError::Manifest {
            path: dir.join(MANIFEST_FILE),
            problem: format!("{relative:?}: {problem}"),
        });
    }
    let bytes = std::fs::read(artifact).map_err(|source| BuildError::Read {
        path: artifact.to_path_buf(),
        source,
    })?;
    let digest = Digest::of(&bytes);
    let dest = dir.join(relative);
    let unchanged = std::fs::read(&dest).is_ok_and(|old| Digest::of(&old) == digest);
    if !unchanged {
        let write = || -> std::io::Result<()> {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let temp = tempfile::NamedTempFile::new_in(dest.parent().unwrap_or(dir))?;
            std::fs::write(temp.path(), &bytes)?;
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(mode))?;
            temp.persist(&dest).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|source| BuildError::Write {
            path: dest.clone(),
            source,
        })?;
    }
    Ok(Built {
        path: relative.to_owned(),
        target: target.to_owned(),
        size: bytes.len() as u64,
        digest,
        unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_map_to_rust_targets() {
        assert_eq!(
            rust_target("linux-x86_64").unwrap(),
            "x86_64-unknown-linux-gnu"
        );
        assert_eq!(
            rust_target("linux-aarch64").unwrap(),
            "aarch64-unknown-linux-gnu"
        );
        assert!(rust_target("x86_64").is_err());
        assert!(
            rust_target("plan9-x86_64")
                .unwrap_err()
                .to_string()
                .contains("plan9")
        );
    }

    #[test]
    fn a_plugin_without_cargo_toml_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "api_version: agora/v1\npublisher: acme\nname: x\nversion: 1.0.0\n\
             description: x\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n",
        )
        .unwrap();
        let err = build(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("has no Cargo.toml"), "{err}");
        let err = build(&dir.path().join("nowhere"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
