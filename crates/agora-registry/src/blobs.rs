//! Blobs: uploading (which proves the uploader has the bytes), who may read a blob, and
//! which downloads count.

use std::net::IpAddr;

use agora_core::Digest;
use agora_store::{BlobError, ByteStream, Viewer};

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result};

/// A blob digest from a request, checked.
pub fn parse_digest(raw: &str) -> Result<Digest> {
    raw.parse().map_err(|e: agora_core::DigestError| {
        RegistryError::field(
            "digest",
            format!("{:?} is not a digest", e.0),
            Some("sha256: followed by 64 lowercase hex digits"),
        )
    })
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// New bytes, stored.
    Stored { size: u64 },
    /// The bytes were stored already (and the caller proved they have them, or had
    /// uploaded them before, or can read them).
    Known { size: u64 },
}

/// Stores `body` under `digest` for a caller with some publish right. Bytes stored already
/// are still read and hashed, and nothing written, unless the caller uploaded them before
/// or can read them: a release may name only blobs its publisher uploaded, so knowing a
/// digest never makes someone else's private blob part of a release.
pub async fn upload(
    registry: &Registry,
    caller: &Caller,
    digest: &Digest,
    declared: Option<u64>,
    body: ByteStream,
) -> Result<Uploaded> {
    caller.require_some_publish_right()?;
    let limit = registry.limits.max_blob_bytes;
    if let Some(len) = declared
        && len > limit
    {
        return Err(RegistryError::new(
            agora_core::ProblemKind::TooLarge,
            format!(
                "the blob is {len} bytes; this registry accepts at most {limit} bytes per blob"
            ),
        ));
    }
    let stored = match registry.meta.blob_size(digest).await? {
        Some(size) if registry.blobs.size(digest).await?.is_some() => Some(size),
        _ => None,
    };
    if let Some(size) = stored {
        let known = registry
            .meta
            .blob_uploaded_by(digest, caller.user.id)
            .await?
            .is_some()
            || registry
                .meta
                .blob_readable(digest, &caller.viewer())
                .await?;
        if known {
            // Sent again by a publisher about to name it: garbage collection waits.
            registry.meta.touch_blob(digest).await?;
        } else {
            // Same digest, same bytes: the size is the stored one.
            agora_store::hash_only(body, digest, limit).await?;
            registry
                .meta
                .record_blob(digest, size, caller.user.id)
                .await?;
        }
        return Ok(Uploaded::Known { size });
    }
    // Stored bytes with no record (an upload a crash cut between the two) are read and
    // hashed by `put` like any others: a digest alone claims nothing.
    let (_, size) = registry.blobs.put(digest, body, limit).await?;
    if let Some(len) = declared
        && len != size
    {
        return Err(BlobError::SizeMismatch {
            declared: len,
            actual: size,
        }
        .into());
    }
    registry
        .meta
        .record_blob(digest, size, caller.user.id)
        .await?;
    Ok(Uploaded::Stored { size })
}

/// What a caller may know of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Its bytes: a non-removed release the caller may see includes it. `public`: anyone
    /// at all could read them (a public release on a registry that needs no sign-in), so
    /// a shared cache may keep them.
    Read { public: bool },
    /// Only that it exists (a HEAD by the publisher who uploaded it).
    Exists,
}

/// Whether the caller may read the blob, or (asking only whether it exists) uploaded it;
/// for anyone else the blob does not exist. `viewer` decides what it may read (a user's or an
/// instance's); `caller` is the user, if any. `exists_only`: a HEAD request.
pub async fn access(
    registry: &Registry,
    viewer: &Viewer,
    caller: Option<&Caller>,
    digest: &Digest,
    exists_only: bool,
) -> Result<Access> {
    // Readable by anyone first: the common case costs one query, and the answer says
    // whether shared caches may keep the bytes.
    let sees_only_public = viewer.sees_only_public();
    if !registry.sign_in_required
        && registry
            .meta
            .blob_readable(digest, &Viewer::anonymous())
            .await?
    {
        return Ok(Access::Read { public: true });
    }
    if (registry.sign_in_required || !sees_only_public)
        && registry.meta.blob_readable(digest, viewer).await?
    {
        return Ok(Access::Read { public: false });
    }
    // Publishers may ask whether a blob they uploaded exists (to skip re-uploads); its
    // bytes are only served once a release they may see includes it.
    if let Some(c) = caller.filter(|c| exists_only && c.require_some_publish_right().is_ok())
        && registry
            .meta
            .blob_uploaded_by(digest, c.user.id)
            .await?
            .is_some()
    {
        // The publisher will skip its upload and name the blob in a release: garbage
        // collection starts its grace period again.
        registry.meta.touch_blob(digest).await?;
        return Ok(Access::Exists);
    }
    Err(RegistryError::not_found(format!("blob {digest} not found")))
}

/// Counts a download of a readable blob (from its first byte) once per client and release
/// per period, through the analytics intake (written in the background, in batches).
pub fn count_download(registry: &Registry, client: Option<IpAddr>, digest: Digest) {
    if registry.downloads.counts(client, &digest) {
        crate::analytics::downloaded(registry, &digest);
    }
}
