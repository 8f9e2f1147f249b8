//! Where a plugin's code comes from: a plugin directory (an install, or a source tree for
//! `agora conformance`), its manifest, and the digest of the code that will run.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use agora_core::Digest;
use agora_core::digest::Sha256Hasher;
use agora_core::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, RuntimeKind};

use crate::RunError;

/// Largest plugin code file the runner loads.
pub const MAX_CODE_BYTES: u64 = 256 * 1024 * 1024;

/// A plugin ready to be admitted: its directory, manifest and code, hashed.
#[derive(Debug, Clone)]
pub struct PluginSource {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The module (wasm) or executable (exec) that runs.
    pub code: PathBuf,
    /// SHA-256 of `code`, as it was read.
    pub digest: Digest,
    /// An OCI plugin's image blobs (its `code` is the image manifest among them).
    pub image: Option<crate::oci::BlobDir>,
}

pub use agora_core::manifest::platform;

fn source_error(path: &Path, problem: impl Into<String>) -> RunError {
    RunError::Source {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

impl PluginSource {
    /// Reads `dir/plugin.yaml` and hashes the code it names.
    pub fn from_dir(dir: &Path) -> Result<PluginSource, RunError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let meta = std::fs::metadata(&manifest_path)
            .map_err(|e| source_error(&manifest_path, format!("cannot read the manifest: {e}")))?;
        if meta.len() > MAX_MANIFEST_BYTES as u64 {
            return Err(source_error(
                &manifest_path,
                "the manifest is larger than 64 KiB",
            ));
        }
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| source_error(&manifest_path, format!("cannot read the manifest: {e}")))?;
        let manifest =
            Manifest::from_yaml(&text).map_err(|e| source_error(&manifest_path, e.to_string()))?;
        PluginSource::with_manifest(dir, manifest)
    }

    /// The plugin in `dir` that `manifest` describes (already read, e.g. a release's
    /// stored manifest), its code hashed.
    pub fn with_manifest(dir: &Path, manifest: Manifest) -> Result<PluginSource, RunError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let relative = match manifest.runtime.kind {
            RuntimeKind::Wasm => manifest.runtime.module.clone().ok_or_else(|| {
                source_error(
                    &manifest_path,
                    "runtime.module is missing for a wasm plugin",
                )
            })?,
            RuntimeKind::Exec => {
                let platform = platform();
                manifest
                    .runtime
                    .binaries
                    .get(&platform)
                    .cloned()
                    .ok_or_else(|| {
                        let offered: Vec<&str> = manifest
                            .runtime
                            .binaries
                            .keys()
                            .map(String::as_str)
                            .collect();
                        source_error(
                            &manifest_path,
                            format!(
                                "runtime.binaries has no executable for {platform} (it offers: {})",
                                if offered.is_empty() {
                                    "none".to_owned()
                                } else {
                                    offered.join(", ")
                                }
                            ),
                        )
                    })?
            }
            RuntimeKind::Oci => return PluginSource::image(dir, manifest),
        };
        let rel = Path::new(&relative);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(source_error(
                &manifest_path,
                format!("`{relative}` must be a relative path inside the plugin directory"),
            ));
        }
        let code = dir.join(rel);
        let digest = hash_code(&code)?;
        Ok(PluginSource {
            dir: dir.to_path_buf(),
            manifest,
            code,
            digest,
            image: None,
        })
    }

    /// An OCI plugin: its code is the image manifest `runtime.image` pins, read from the
    /// image blobs of its directory (`crate::oci::BlobDir::for_plugin`) and hashed, so
    /// that the digest an install pinned is the image manifest's.
    fn image(dir: &Path, manifest: Manifest) -> Result<PluginSource, RunError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let image = manifest.runtime.image.clone().unwrap_or_default();
        let pinned =
            crate::oci::pinned_digest(&image).map_err(|e| source_error(&manifest_path, e))?;
        let blobs = crate::oci::BlobDir::for_plugin(dir).ok_or_else(|| {
            source_error(
                &manifest_path,
                format!(
                    "the image {image} is not in the OCI cache (no {}/ layout here, no .agora/oci above); run `agora install` again to pull it",
                    crate::oci::image::SOURCE_LAYOUT
                ),
            )
        })?;
        let code = blobs.path(&pinned);
        if !code.is_file() {
            return Err(source_error(
                &code,
                format!(
                    "the image {image} is not in the OCI cache; run `agora install` again to pull it"
                ),
            ));
        }
        let digest = hash_code(&code)?;
        Ok(PluginSource {
            dir: dir.to_path_buf(),
            manifest,
            code,
            digest,
            image: Some(blobs),
        })
    }

    /// Checks the code against the digest it was installed with.
    pub fn pinned(self, expected: &Digest) -> Result<PluginSource, RunError> {
        if &self.digest != expected {
            return Err(RunError::Tampered {
                path: self.code.clone(),
                expected: expected.to_string(),
                actual: self.digest.to_string(),
            });
        }
        Ok(self)
    }

    /// `publisher/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.manifest.publisher, self.manifest.name)
    }
}

fn hash_code(path: &Path) -> Result<Digest, RunError> {
    let file = std::fs::File::open(path)
        .map_err(|e| source_error(path, format!("cannot open the plugin code: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| source_error(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(source_error(path, "the plugin code is not a regular file"));
    }
    if meta.len() > MAX_CODE_BYTES {
        return Err(source_error(path, "the plugin code is larger than 256 MiB"));
    }
    let mut hasher = Sha256Hasher::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| source_error(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}
