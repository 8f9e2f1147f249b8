//! Agora talking OCI as a client, and handling image content on disk. No HTTP server here.
//!
//! - [`pull`]: an image (or artifact) pulled **by digest only** from a registry on the
//!   caller's allow list, through `oci-client` (the Bearer token flow, anonymous or with
//!   credentials; plain HTTP only for the registries the caller names). Every byte is
//!   checked: the manifest against the reference's digest, the config and each layer
//!   against their descriptors (digest and size), within [`Limits`].
//! - [`Cache`]: the content-addressed store pulls write into and runners read from.
//! - [`unpack`]: layers into a root filesystem, with OCI whiteouts, refusing path tricks.
//! - [`layout`]: the project's own image writer: a deterministic single-layer OCI image
//!   layout from a list of files and an image config.
//!
//! # The cache on disk
//!
//! A plugin directory `DIR` keeps the images of its `runtime.type: oci` plugins in
//! **`DIR/.agora/oci/`** ([`plugin_cache_dir`]), shared by every plugin of `DIR`;
//! `agora install` and `agora agent` fill it in the same transaction as the install.
//!
//! ```text
//! DIR/.agora/oci/
//!   blobs/sha256/<hex>   every blob: indexes, manifests, configs, layers
//!   tmp/                 blobs being written (removed or renamed into blobs/)
//! ```
//!
//! A blob is written to `tmp/`, fsynced, and renamed into `blobs/sha256/<hex>` only after
//! its sha256 and size matched; so a blob present under its name is its content. A
//! runner reads an image with:
//!
//! ```no_run
//! # fn main() -> Result<(), agora_oci::OciError> {
//! let dir = std::path::Path::new("/srv/plugins");
//! let cache = agora_oci::Cache::open(&agora_oci::plugin_cache_dir(dir))?;
//! let image = cache.image("sha256:...")?; // the digest of `runtime.image`
//! // image.config: Some(image config) (user, entrypoint, env, working dir) for an image
//! // image.layers: each layer's path in the cache, digest and media type, in order
//! agora_oci::unpack::unpack(&image.layers, std::path::Path::new("/run/rootfs"), &Default::default())?;
//! # Ok(()) }
//! ```
//!
//! [`Cache::image`] re-hashes the (small) index, manifest and config on every read, and
//! checks each layer's size against its descriptor; a layer's content is trusted by its
//! content address (written only by that checked rename). [`Cache::verify`] re-hashes
//! every layer for a full check.

pub mod cache;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod pull;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unpack;

pub use cache::{Cache, ContainerConfig, ImageConfig, Layer, LocalImage, plugin_cache_dir};
pub use error::OciError;
pub use pull::{Credentials, Limits, PullOptions, Puller};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<64 lowercase hex>` digest, or `None` for anything else.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}
