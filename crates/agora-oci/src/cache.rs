//! The content-addressed blob cache: `<root>/blobs/sha256/<hex>`, written through
//! `<root>/tmp/` and renamed into place only after the digest and size matched (the file
//! and its directory fsynced), so a name always holds its content.
//!
//! Reading an image ([`Cache::image`]) re-hashes the index, manifest and config (a few
//! KiB, bounded by [`crate::Limits`]) and checks each layer's size against its
//! descriptor. A layer's bytes are trusted by content address: nothing but the checked
//! rename ever writes a name, and the cache lives in the plugin directory, with its
//! owner and permissions. [`Cache::verify`] re-hashes every layer when that trust is not
//! enough (e.g. `agora verify --installed`).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::manifest::{self, Descriptor, Parsed};
use crate::pull::{MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use crate::{OciError, sha256_digest, sha256_hex};

/// Where a plugin directory keeps its OCI images: `DIR/.agora/oci`.
pub fn plugin_cache_dir(plugin_dir: &Path) -> PathBuf {
    plugin_dir.join(".agora").join("oci")
}

/// A blob cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// One layer of a cached image, in the manifest's order (lowest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// An image whose every blob is in the cache.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The digest the image was asked by (an index's when the reference named one).
    pub digest: String,
    /// The image manifest's digest (the platform image chosen from an index).
    pub manifest_digest: String,
    pub config_digest: String,
    pub config_media_type: String,
    /// The image config; `None` for an artifact whose config is not an image config.
    pub config: Option<ImageConfig>,
    pub layers: Vec<Layer>,
}

/// An OCI (or Docker) image config: the fields Agora reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
}

/// How a container of the image starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// Media types whose blob is an image config.
pub const CONFIG_MEDIA_TYPES: [&str; 2] = [
    manifest::OCI_CONFIG,
    "application/vnd.docker.container.image.v1+json",
];

impl Cache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache, OciError> {
        for dir in [root.join("blobs").join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(OciError::io(&dir))?;
        }
        Ok(Cache {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let hex = sha256_hex(digest)
            .ok_or_else(|| OciError::Manifest(format!("`{digest}` is not a sha256 digest")))?;
        Ok(self.root.join("blobs").join("sha256").join(hex))
    }

    /// Whether the blob is present as a regular file of `size` bytes.
    pub fn has(&self, digest: &str, size: u64) -> bool {
        self.blob_path(digest)
            .ok()
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == size)
    }

    /// Reads a small blob (index, manifest, config) and checks its digest.
    pub fn read_checked(&self, digest: &str, max: u64) -> Result<Vec<u8>, OciError> {
        let path = self.blob_path(digest)?;
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.not_cached(digest));
            }
            Err(e) => return Err(OciError::io(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(OciError::io(&path))?;
        if bytes.len() as u64 > max {
            return Err(OciError::TooLarge {
                what: format!("the cached blob {digest}"),
                limit: "MAX_MANIFEST_BYTES",
                max,
            });
        }
        check_digest(&format!("the cached blob {digest}"), digest, &bytes)?;
        Ok(bytes)
    }

    /// Stores `bytes` under `digest` after checking it.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf, OciError> {
        check_digest(&format!("blob {digest}"), digest, bytes)?;
        let mut pending = self.begin()?;
        pending
            .file
            .write_all(bytes)
            .map_err(OciError::io(pending.file.path()))?;
        self.commit(pending, digest)
    }

    /// A temporary file in `tmp/` to stream a blob into; [`Cache::commit`] it after the
    /// digest matched, or drop it.
    pub(crate) fn begin(&self) -> Result<Pending, OciError> {
        let tmp = self.root.join("tmp");
        let file = tempfile::NamedTempFile::new_in(&tmp).map_err(OciError::io(&tmp))?;
        Ok(Pending { file })
    }

    /// Fsyncs the temporary file and renames it to the blob's name.
    pub(crate) fn commit(&self, pending: Pending, digest: &str) -> Result<PathBuf, OciError> {
        let target = self.blob_path(digest)?;
        let file = pending.file;
        file.as_file()
            .sync_all()
            .map_err(OciError::io(file.path()))?;
        let mut perms = file
            .as_file()
            .metadata()
            .map_err(OciError::io(file.path()))?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
        fs::set_permissions(file.path(), perms).map_err(OciError::io(file.path()))?;
        file.persist(&target)
            .map_err(|e| OciError::io(&target)(e.error))?;
        let dir = target.parent().unwrap_or(&self.root);
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(OciError::io(dir))?;
        Ok(target)
    }

    /// The image asked by `digest` (a manifest's, or an index's: its linux/amd64 image),
    /// with every blob present.
    pub fn image(&self, digest: &str) -> Result<LocalImage, OciError> {
        let bytes = self.read_checked(digest, MAX_MANIFEST_BYTES)?;
        let (manifest_digest, parsed) = match manifest::parse(&bytes)? {
            Parsed::Index(entries) => {
                let chosen = manifest::choose_platform(&entries)?;
                let bytes = self.read_checked(&chosen.digest, MAX_MANIFEST_BYTES)?;
                match manifest::parse(&bytes)? {
                    Parsed::Index(_) => {
                        return Err(OciError::Manifest(
                            "an index names another index as its linux/amd64 image".into(),
                        ));
                    }
                    image => (chosen.digest.clone(), image),
                }
            }
            image => (digest.to_owned(), image),
        };
        let Parsed::Image { config, layers } = parsed else {
            return Err(OciError::Manifest("not an image manifest".into()));
        };
        self.local_image(digest, &manifest_digest, &config, &layers)
    }

    pub(crate) fn local_image(
        &self,
        digest: &str,
        manifest_digest: &str,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<LocalImage, OciError> {
        let config_bytes = self.read_checked(&config.digest, MAX_CONFIG_BYTES)?;
        if config_bytes.len() as u64 != config.size {
            return Err(OciError::SizeMismatch {
                what: format!("the config {}", config.digest),
                expected: config.size,
                actual: config_bytes.len() as u64,
            });
        }
        let image_config = if CONFIG_MEDIA_TYPES.contains(&config.media_type.as_str()) {
            Some(
                serde_json::from_slice::<ImageConfig>(&config_bytes)
                    .map_err(|e| OciError::Config(e.to_string()))?,
            )
        } else {
            None
        };
        let layers = layers
            .iter()
            .map(|d| {
                if !self.has(&d.digest, d.size) {
                    return Err(self.not_cached(&d.digest));
                }
                Ok(Layer {
                    path: self.blob_path(&d.digest)?,
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                    size: d.size,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LocalImage {
            digest: digest.to_owned(),
            manifest_digest: manifest_digest.to_owned(),
            config_digest: config.digest.clone(),
            config_media_type: config.media_type.clone(),
            config: image_config,
            layers,
        })
    }

    /// Re-hashes every layer of `image`.
    pub fn verify(&self, image: &LocalImage) -> Result<(), OciError> {
        for layer in &image.layers {
            let mut file = fs::File::open(&layer.path).map_err(OciError::io(&layer.path))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(OciError::io(&layer.path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if actual != layer.digest {
                return Err(OciError::DigestMismatch {
                    what: format!("the cached layer {}", layer.path.display()),
                    expected: layer.digest.clone(),
                    actual,
                });
            }
        }
        Ok(())
    }

    fn not_cached(&self, digest: &str) -> OciError {
        OciError::NotCached {
            cache: self.root.clone(),
            digest: digest.to_owned(),
        }
    }
}

/// A blob being written.
pub(crate) struct Pending {
    pub(crate) file: tempfile::NamedTempFile,
}

pub(crate) fn check_digest(what: &str, expected: &str, bytes: &[u8]) -> Result<(), OciError> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(OciError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_under_its_digest_and_a_wrong_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let digest = sha256_digest(b"hello");
        let path = cache.put(&digest, b"hello").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert!(cache.has(&digest, 5));
        assert!(!cache.has(&digest, 6));
        let wrong = sha256_digest(b"other");
        let err = cache.put(&wrong, b"hello").unwrap_err();
        assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
        assert!(!cache.has(&wrong, 5));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_tampered_small_blob_is_refused_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let digest = sha256_digest(b"{}");
        let path = cache.put(&digest, b"{}").unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        fs::write(&path, b"[]").unwrap();
        assert!(matches!(
            cache.read_checked(&digest, 100),
            Err(OciError::DigestMismatch { .. })
        ));
        assert!(matches!(
            cache.image(&sha256_digest(b"absent")),
            Err(OciError::NotCached { .. })
        ));
    }
}
