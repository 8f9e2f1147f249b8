//! Pulling an image by digest into a [`Cache`].
//!
//! 1. The reference is parsed by `agora_core::policy::ImageRef` (one parse for the
//!    policy and the pull): without `@sha256:` it is refused, and its registry must be
//!    on [`PullOptions::allowed_registries`] before any connection is made.
//! 2. If the cache already holds the image (the manifest, its config and every layer,
//!    see [`Cache::image`]), nothing is requested: content named by digest cannot have
//!    changed.
//! 3. The manifest is fetched through `oci-client` (which runs the registry's Bearer
//!    token flow, anonymously or with [`Credentials`]), bounded by
//!    [`Limits::max_manifest_bytes`] and hashed here against the reference's digest.
//!    `oci-client` reads a manifest response whole before it returns; the bound is
//!    applied to what it returns (its read is bounded by the client's timeouts).
//!    An index is followed to its `linux/amd64` image, fetched and checked the same way.
//! 4. Config and layers are bounded (count, each config's size, the image's total bytes)
//!    from their descriptors before any is fetched; each missing blob is streamed into
//!    the cache's `tmp/`, refused as soon as it runs past its descriptor's size, hashed
//!    here (besides `oci-client`'s own check at the stream's end), and renamed into place
//!    only when size and digest match.
//! 5. The manifests are stored last, so a cached manifest implies its blobs were fetched.

use std::collections::BTreeMap;
use std::time::Duration;

use agora_core::policy::{ImageRef, registry_allowed, registry_refusal};
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::cache::check_digest;
use crate::manifest::{self, Descriptor, Parsed};
use crate::{Cache, LocalImage, OciError};

/// A manifest or index: the distribution spec's own 4 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// An image config.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Layers in one image.
pub const MAX_LAYERS: usize = 128;
/// Entries in one index.
pub const MAX_INDEX_ENTRIES: usize = 256;
/// Config and layers together, as their descriptors say (compressed).
pub const MAX_IMAGE_BYTES: u64 = 2 << 30;

/// The bounds of one pull (the constants by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    pub max_config_bytes: u64,
    pub max_layers: usize,
    pub max_image_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: MAX_MANIFEST_BYTES,
            max_config_bytes: MAX_CONFIG_BYTES,
            max_layers: MAX_LAYERS,
            max_image_bytes: MAX_IMAGE_BYTES,
        }
    }
}

/// A registry account: the token flow exchanges it for a pull token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// What a [`Puller`] may do.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries a reference may name (`host`, `host:port`, `*.domain`; the host
    /// policy's `[oci] allowed_registries`). Empty: every pull is refused.
    pub allowed_registries: Vec<String>,
    /// Registries reached over plain HTTP (`host:port` exactly as references name them),
    /// e.g. a loopback registry in tests. Every other registry is reached over HTTPS.
    pub plain_http: Vec<String>,
    /// Accounts by registry (`host[:port]`); other registries are pulled anonymously.
    pub credentials: BTreeMap<String, Credentials>,
    pub limits: Limits,
    /// Who is pulling, in refusals: "this host", "the verifier".
    pub whose: Option<String>,
}

/// Pulls images by digest into a cache.
pub struct Puller {
    client: Client,
    options: PullOptions,
}

impl Puller {
    pub fn new(options: PullOptions) -> Result<Puller, OciError> {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.plain_http.clone()),
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| OciError::Registry {
            registry: "(client)".into(),
            source: Box::new(e),
        })?;
        Ok(Puller { client, options })
    }

    /// Checks `reference` is pinned and its registry allowed, without pulling.
    pub fn admit(&self, reference: &str) -> Result<ImageRef, OciError> {
        let image = ImageRef::parse(reference).map_err(OciError::Reference)?;
        if !registry_allowed(&self.options.allowed_registries, &image.registry) {
            let whose = self.options.whose.as_deref().unwrap_or("this host");
            return Err(OciError::RegistryNotAllowed(registry_refusal(
                &self.options.allowed_registries,
                &image.registry,
                whose,
            )));
        }
        Ok(image)
    }

    /// Pulls `reference` (`registry/repository@sha256:<hex>`) into `cache`.
    pub async fn pull(&self, reference: &str, cache: &Cache) -> Result<LocalImage, OciError> {
        let image = self.admit(reference)?;
        if let Ok(local) = cache.image(&image.digest) {
            tracing::debug!(%image, "image already cached");
            return Ok(local);
        }
        let target = Reference::with_digest(
            image.registry.clone(),
            image.repository.clone(),
            image.digest.clone(),
        );
        let auth = match self.options.credentials.get(&image.registry) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let limits = &self.options.limits;
        let first = self.manifest(&image, &target, &image.digest, &auth).await?;
        let mut manifests = vec![(image.digest.clone(), first.clone())];
        let (manifest_digest, config, layers) = match manifest::parse(&first)? {
            Parsed::Image { config, layers } => (image.digest.clone(), config, layers),
            Parsed::Index(entries) => {
                if entries.len() > MAX_INDEX_ENTRIES {
                    return Err(OciError::TooLarge {
                        what: format!("the index's {} entries", entries.len()),
                        limit: "MAX_INDEX_ENTRIES",
                        max: MAX_INDEX_ENTRIES as u64,
                    });
                }
                let chosen = manifest::choose_platform(&entries)?;
                let target = target.clone_with_digest(chosen.digest.clone());
                let bytes = self
                    .manifest(&image, &target, &chosen.digest, &auth)
                    .await?;
                if bytes.len() as u64 != chosen.size {
                    return Err(OciError::SizeMismatch {
                        what: format!("the manifest {}", chosen.digest),
                        expected: chosen.size,
                        actual: bytes.len() as u64,
                    });
                }
                let Parsed::Image { config, layers } = manifest::parse(&bytes)? else {
                    return Err(OciError::Manifest(
                        "an index names another index as its linux/amd64 image".into(),
                    ));
                };
                manifests.insert(0, (chosen.digest.clone(), bytes));
                (chosen.digest.clone(), config, layers)
            }
        };
        check_bounds(limits, &config, &layers)?;
        for blob in std::iter::once(&config).chain(&layers) {
            if !cache.has(&blob.digest, blob.size) {
                self.blob(&image, &target, blob, cache).await?;
            }
        }
        for (digest, bytes) in &manifests {
            cache.put(digest, bytes)?;
        }
        tracing::debug!(%image, %manifest_digest, layers = layers.len(), "image pulled");
        cache.image(&image.digest)
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        target: &Reference,
        digest: &str,
        auth: &RegistryAuth,
    ) -> Result<Vec<u8>, OciError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(target, auth, &manifest::ACCEPTED)
            .await
            .map_err(|e| registry_error(image, e))?;
        let max = self.options.limits.max_manifest_bytes;
        if bytes.len() as u64 > max {
            return Err(OciError::TooLarge {
                what: format!("the manifest {digest} ({} bytes)", bytes.len()),
                limit: "MAX_MANIFEST_BYTES",
                max,
            });
        }
        check_digest(&format!("the manifest of {image}"), digest, &bytes)?;
        Ok(bytes.to_vec())
    }

    async fn blob(
        &self,
        image: &ImageRef,
        target: &Reference,
        blob: &Descriptor,
        cache: &Cache,
    ) -> Result<(), OciError> {
        let what = format!("the blob {}", blob.digest);
        let descriptor = OciDescriptor {
            media_type: blob.media_type.clone(),
            digest: blob.digest.clone(),
            size: i64::try_from(blob.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(target, &descriptor)
            .await
            .map_err(|e| registry_error(image, e))?;
        if let Some(length) = stream.content_length
            && length != blob.size
        {
            return Err(OciError::SizeMismatch {
                what,
                expected: blob.size,
                actual: length,
            });
        }
        let pending = cache.begin()?;
        let path = pending.file.path().to_owned();
        let std_file = pending.file.reopen().map_err(OciError::io(&path))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        let mut stream_error = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    stream_error = Some(e);
                    break;
                }
            };
            written += chunk.len() as u64;
            if written > blob.size {
                return Err(OciError::SizeMismatch {
                    what: format!("{what} (cut off at its descriptor's size)"),
                    expected: blob.size,
                    actual: written,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(OciError::io(&path))?;
        }
        file.flush().await.map_err(OciError::io(&path))?;
        drop(file);
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        // Our own checks first: they say what was wrong in our words, also when
        // oci-client's verifying stream ended with its own digest error.
        if written == blob.size && actual != blob.digest {
            return Err(OciError::DigestMismatch {
                what,
                expected: blob.digest.clone(),
                actual,
            });
        }
        if let Some(e) = stream_error {
            return Err(OciError::Io {
                path: format!("{}/{}", image.registry, image.repository).into(),
                source: e,
            });
        }
        if written != blob.size {
            return Err(OciError::SizeMismatch {
                what,
                expected: blob.size,
                actual: written,
            });
        }
        if actual != blob.digest {
            return Err(OciError::DigestMismatch {
                what,
                expected: blob.digest.clone(),
                actual,
            });
        }
        cache.commit(pending, &blob.digest)?;
        Ok(())
    }
}

fn check_bounds(
    limits: &Limits,
    config: &Descriptor,
    layers: &[Descriptor],
) -> Result<(), OciError> {
    if config.size > limits.max_config_bytes {
        return Err(OciError::TooLarge {
            what: format!("the config {} ({} bytes)", config.digest, config.size),
            limit: "MAX_CONFIG_BYTES",
            max: limits.max_config_bytes,
        });
    }
    if layers.len() > limits.max_layers {
        return Err(OciError::TooLarge {
            what: format!("the image's {} layers", layers.len()),
            limit: "MAX_LAYERS",
            max: limits.max_layers as u64,
        });
    }
    let total = std::iter::once(config)
        .chain(layers)
        .try_fold(0u64, |sum, d| sum.checked_add(d.size));
    match total {
        Some(total) if total <= limits.max_image_bytes => Ok(()),
        _ => Err(OciError::TooLarge {
            what: format!(
                "the image's size ({} bytes)",
                total.map_or_else(|| "more than 2^64".to_owned(), |t| t.to_string())
            ),
            limit: "MAX_IMAGE_BYTES",
            max: limits.max_image_bytes,
        }),
    }
}

fn registry_error(image: &ImageRef, e: oci_client::errors::OciDistributionError) -> OciError {
    OciError::Registry {
        registry: image.registry.clone(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(size: u64) -> Descriptor {
        Descriptor {
            media_type: manifest::OCI_LAYER_GZIP.into(),
            digest: crate::sha256_digest(b""),
            size,
            artifact_type: None,
            annotations: None,
            platform: None,
        }
    }

    #[test]
    fn bounds_name_the_limit_hit() {
        let limits = Limits {
            max_layers: 2,
            max_image_bytes: 100,
            max_config_bytes: 10,
            ..Limits::default()
        };
        let hit = |config: u64, layers: &[u64]| {
            let layers: Vec<_> = layers.iter().map(|s| d(*s)).collect();
            match check_bounds(&limits, &d(config), &layers) {
                Err(OciError::TooLarge { limit, .. }) => limit,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(hit(11, &[]), "MAX_CONFIG_BYTES");
        assert_eq!(hit(1, &[1, 1, 1]), "MAX_LAYERS");
        assert_eq!(hit(1, &[50, 50]), "MAX_IMAGE_BYTES");
        assert_eq!(hit(1, &[u64::MAX, 1]), "MAX_IMAGE_BYTES");
        assert!(check_bounds(&limits, &d(1), &[d(49), d(50)]).is_ok());
    }

    #[tokio::test]
    async fn tags_and_unlisted_registries_are_refused_before_any_request() {
        let puller = Puller::new(PullOptions {
            allowed_registries: vec!["registry.example".into()],
            ..PullOptions::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let err = puller
            .pull("registry.example/a/b:1.0", &cache)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not pinned by digest"), "{err}");
        let hex = "0".repeat(64);
        let err = puller
            .pull(&format!("evil.example/a/b@sha256:{hex}"), &cache)
            .await
            .unwrap_err();
        assert!(matches!(err, OciError::RegistryNotAllowed(_)), "{err}");
        assert!(
            err.to_string().contains("[oci] allowed_registries"),
            "{err}"
        );
    }
}
