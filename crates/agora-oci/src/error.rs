//! The one error type of OCI pulls, the cache, unpacking and layouts.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse or is not pinned by `@sha256:`.
    #[error("image reference: {0}")]
    Reference(String),
    #[error("{0}")]
    RegistryNotAllowed(String),
    #[error("registry {registry}: {source}")]
    Registry {
        registry: String,
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    #[error("{what} has the digest {actual}, not {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} is {actual} bytes, not the {expected} its descriptor says")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A bound was hit; `limit` names the constant (`MAX_LAYERS`, ...).
    #[error("{what} exceeds {limit} ({max})")]
    TooLarge {
        what: String,
        limit: &'static str,
        max: u64,
    },
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("image config: {0}")]
    Config(String),
    #[error(
        "the image index has no linux/amd64 image (it offers: {offered}); pull a platform image's digest instead"
    )]
    NoPlatform { offered: String },
    #[error("{digest} is not in the cache {cache}")]
    NotCached { cache: PathBuf, digest: String },
    #[error("unpack: {0}")]
    Unpack(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OciError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OciError {
        let path = path.into();
        move |source| OciError::Io { path, source }
    }
}
