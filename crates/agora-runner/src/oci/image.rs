//! An OCI plugin's image as the runner reads it: content-addressed blobs on disk (an
//! install's OCI cache, or an OCI image layout shipped in a source tree as `image/`),
//! every blob re-hashed before it is used, and the root file system unpacked once per
//! image manifest digest under the runner's state directory.
//!
//! The root file system of an image is made in a temporary directory beside its place,
//! every layer checked against its digest and unpacked in order, then renamed into
//! `<state>/cache/oci/rootfs/<manifest hex>/` in one step: a half-made root file system
//! is never used, and two runners racing make it twice, keeping one. Launches mount it
//! read-only; nothing ever writes into it again.

use std::io::Read;
use std::path::{Path, PathBuf};

use agora_core::Digest;
use agora_core::digest::Sha256Hasher;
use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::RunError;

/// Largest image manifest or config the runner reads.
const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Where a source tree keeps its image, as an OCI image layout.
pub const SOURCE_LAYOUT: &str = "image";

/// A directory of blobs by digest: `<root>/blobs/sha256/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDir {
    pub root: PathBuf,
}

/// The manifest digest of `runtime.image` (`name@sha256:<hex>`).
pub fn pinned_digest(image: &str) -> Result<Digest, String> {
    let (_, digest) = image.rsplit_once('@').ok_or_else(|| {
        format!("runtime.image `{image}` is not pinned by digest (NAME@sha256:...)")
    })?;
    digest
        .parse()
        .map_err(|e| format!("runtime.image `{image}`: {e}"))
}

impl BlobDir {
    /// Where the blobs of an OCI plugin in `plugin_dir` are: its own `image/` layout (a
    /// source tree), or the OCI cache of the plugin directory it is installed in
    /// (`DIR/.agora/oci`, for a plugin in `DIR/publisher/name`).
    pub fn for_plugin(plugin_dir: &Path) -> Option<BlobDir> {
        let own = plugin_dir.join(SOURCE_LAYOUT);
        if own.join("blobs").is_dir() {
            return Some(BlobDir { root: own });
        }
        plugin_dir
            .ancestors()
            .skip(1)
            .take(3)
            .map(|d| d.join(".agora/oci"))
            .find(|d| d.join("blobs").is_dir())
            .map(|root| BlobDir { root })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// A small document (manifest, config), read whole and checked against `digest`.
    pub fn document(&self, digest: &Digest) -> Result<Vec<u8>, RunError> {
        let path = self.path(digest);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .map_err(|e| missing(&path, e))?
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| missing(&path, e))?;
        if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(source_error(&path, "larger than 4 MiB"));
        }
        check(&path, digest, Digest::of(&bytes))?;
        Ok(bytes)
    }

    /// Hashes a blob of any size and checks it against `digest`.
    pub fn verify(&self, digest: &Digest) -> Result<PathBuf, RunError> {
        let path = self.path(digest);
        let mut file = std::fs::File::open(&path).map_err(|e| missing(&path, e))?;
        let mut hasher = Sha256Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| source_error(&path, e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        check(&path, digest, hasher.finish())?;
        Ok(path)
    }
}

fn source_error(path: &Path, problem: impl Into<String>) -> RunError {
    RunError::Source {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn missing(path: &Path, e: std::io::Error) -> RunError {
    source_error(
        path,
        format!("the image is not in the OCI cache ({e}); run `agora install` again to pull it"),
    )
}

fn check(path: &Path, expected: &Digest, actual: Digest) -> Result<(), RunError> {
    if &actual != expected {
        return Err(RunError::Tampered {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// An image ready to launch: its root file system and the command it runs.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub rootfs: PathBuf,
    /// `Entrypoint` then `Cmd`, from the image's config.
    pub args: Vec<String>,
}

/// Mount points the runtime needs in every root file system; made while the root file
/// system is still private, since a launch mounts it read-only.
const MOUNT_POINTS: [&str; 3] = ["proc", "dev", "tmp"];

/// The image `manifest` from `blobs`, unpacked under `cache` (once per digest).
pub fn prepare(
    blobs: &BlobDir,
    manifest: &Digest,
    cache: &Path,
) -> Result<PreparedImage, RunError> {
    let manifest_path = blobs.path(manifest);
    let parsed: ImageManifest = serde_json::from_slice(&blobs.document(manifest)?)
        .map_err(|e| source_error(&manifest_path, format!("not an OCI image manifest: {e}")))?;
    let config_digest = parse_digest(&manifest_path, parsed.config().digest().as_ref())?;
    let config_path = blobs.path(&config_digest);
    let config: ImageConfiguration = serde_json::from_slice(&blobs.document(&config_digest)?)
        .map_err(|e| source_error(&config_path, format!("not an OCI image config: {e}")))?;
    let args = command(&config);
    if args.is_empty() {
        return Err(source_error(
            &config_path,
            "the image config names no Entrypoint or Cmd to run",
        ));
    }
    let root = cache.join(manifest.hex());
    let rootfs = root.join("rootfs");
    if !rootfs.is_dir() {
        let io = |e: std::io::Error| {
            RunError::Sandbox(format!(
                "cannot make the root file system in {}: {e}",
                cache.display()
            ))
        };
        std::fs::create_dir_all(cache).map_err(io)?;
        let staging = tempdir_in(cache).map_err(io)?;
        let staged = staging.join("rootfs");
        std::fs::create_dir(&staged).map_err(io)?;
        let mut layers = Vec::new();
        for layer in parsed.layers() {
            let digest = parse_digest(&manifest_path, layer.digest().as_ref())?;
            layers.push(agora_oci::Layer {
                path: blobs.verify(&digest)?,
                digest: digest.to_string(),
                media_type: layer.media_type().to_string(),
                size: layer.size(),
            });
        }
        // Whiteouts applied, entries that would leave the root refused.
        agora_oci::unpack::unpack(&layers, &staged, &Default::default()).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            source_error(&manifest_path, format!("cannot unpack the image: {e}"))
        })?;
        for dir in MOUNT_POINTS {
            let point = staged.join(dir);
            if std::fs::symlink_metadata(&point).is_err() {
                std::fs::create_dir(&point).map_err(io)?;
            }
        }
        match std::fs::rename(&staging, &root) {
            Ok(()) => {}
            // Another runner made it first: use theirs.
            Err(_) if rootfs.is_dir() => {
                let _ = std::fs::remove_dir_all(&staging);
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(io(e));
            }
        }
    }
    Ok(PreparedImage { rootfs, args })
}

fn parse_digest(at: &Path, text: &str) -> Result<Digest, RunError> {
    text.parse()
        .map_err(|e| source_error(at, format!("a digest the runner cannot use: {text}: {e}")))
}

/// `Entrypoint` followed by `Cmd`.
fn command(config: &ImageConfiguration) -> Vec<String> {
    let Some(c) = config.config() else {
        return Vec::new();
    };
    c.entrypoint()
        .iter()
        .flatten()
        .chain(c.cmd().iter().flatten())
        .cloned()
        .collect()
}

fn tempdir_in(dir: &Path) -> std::io::Result<PathBuf> {
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = dir.join(format!(".new-{}", hex::encode(suffix)));
    std::fs::create_dir(&path)?;
    Ok(path)
}
