//! The content-addressed blob store: bytes stored under their sha256 digest, streamed in
//! and out, never held whole in memory.
//!
//! - [`FsBlobStore`] (`fs`): a local directory, the embedded default.
//! - [`ObjectBlobStore`] (`object`): any `object_store` backend; S3-compatible storage
//!   for replicas, memory for tests.
//! - [`BlobLocation`] (`location`): where the configuration says blobs live, parsed from
//!   a path or a `file://` or `s3://` URL, and opened as one of the above.

mod fs;
mod location;
mod object;

use std::time::Duration;

use agora_core::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::BlobError;

pub use fs::FsBlobStore;
pub use location::{BlobLocation, S3_URL_KEYS};
pub use object::ObjectBlobStore;

/// A stream of chunks, as uploads arrive and downloads leave.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Part of a blob being read.
pub struct BlobStream {
    /// Total size of the blob.
    pub size: u64,
    /// First byte of `body` within the blob.
    pub offset: u64,
    /// Length of `body`.
    pub len: u64,
    pub body: ByteStream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The bytes were written.
    Created,
    /// A blob with this digest existed already: the upload was read and hashed (it had to
    /// be the digest's bytes) and nothing was written.
    AlreadyPresent,
}

/// Adds `chunk` to `hasher`, unless the bytes so far would then pass `limit`: the one
/// step every upload path takes for each chunk it receives.
fn hash_within(
    hasher: &mut agora_core::Sha256Hasher,
    chunk: &[u8],
    limit: u64,
) -> Result<(), BlobError> {
    if hasher.len() + chunk.len() as u64 > limit {
        return Err(BlobError::TooLarge { limit });
    }
    hasher.update(chunk);
    Ok(())
}

/// Reads `body` to its end without keeping it, for a blob stored already: the bytes must
/// hash to `digest` and be at most `limit` long (whoever sends them shows they have the
/// content). Returns their length.
pub async fn hash_only(
    mut body: ByteStream,
    digest: &Digest,
    limit: u64,
) -> Result<u64, BlobError> {
    use futures_util::StreamExt;
    let mut hasher = agora_core::Sha256Hasher::new();
    while let Some(chunk) = body.next().await {
        hash_within(&mut hasher, &chunk.map_err(BlobError::Interrupted)?, limit)?;
    }
    let len = hasher.len();
    let actual = hasher.finish();
    if actual != *digest {
        return Err(BlobError::DigestMismatch {
            expected: *digest,
            actual,
        });
    }
    Ok(len)
}

/// Content-addressed storage. Implementations verify the digest (and size limit) while
/// streaming, and make a blob visible under its digest only once it is complete and
/// correct; a failed upload leaves nothing behind.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `digest`, refusing it if it is larger than `limit` bytes or its
    /// content does not hash to `digest`. Returns the outcome and the blob's size. The body
    /// is read to its end even when the blob is stored already (see [`hash_only`]): a
    /// digest alone never stands in for the bytes, and a request whose body is left unread
    /// costs its client the connection.
    async fn put(
        &self,
        digest: &Digest,
        body: ByteStream,
        limit: u64,
    ) -> Result<(PutOutcome, u64), BlobError>;
    /// The blob's size, or `None` if it is not stored.
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;
    /// Reads `len` bytes from `offset` (the whole blob with `offset = 0, len = size`).
    async fn get(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<Option<BlobStream>, BlobError>;
    /// The whole blob, its size learnt from the same read (one request to a bucket
    /// where `size` then `get` would be two).
    async fn get_whole(&self, digest: &Digest) -> Result<Option<BlobStream>, BlobError> {
        match self.size(digest).await? {
            Some(size) => self.get(digest, 0, size).await,
            None => Ok(None),
        }
    }
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;
    /// Checks the storage is reachable (for readiness probes).
    async fn check(&self) -> Result<(), BlobError>;
    /// Up to `limit` stored blobs in digest order, starting after `after` (from the first
    /// when `None`): one page of a walk over everything stored, for `gc` and `fsck`.
    async fn list(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError>;
    /// A URL that lets anyone holding it read the blob for `ttl`, answered with
    /// `cache_control` and `application/octet-stream`; `None` when this store cannot
    /// make one (a local directory), so the server streams the bytes itself.
    async fn presign_get(
        &self,
        digest: &Digest,
        ttl: Duration,
        cache_control: &str,
    ) -> Result<Option<String>, BlobError> {
        let _ = (digest, ttl, cache_control);
        Ok(None)
    }
    /// Removes upload leftovers (temporary files of uploads that a crash cut off) older
    /// than `older_than`; returns how many went. Stores whose failed uploads leave
    /// nothing behind by construction remove nothing.
    async fn sweep_partials(&self, older_than: Duration) -> Result<u64, BlobError> {
        let _ = older_than;
        Ok(0)
    }
    /// How many upload leftovers [`BlobStore::sweep_partials`] would remove (for
    /// `fsck`, which changes nothing).
    async fn count_partials(&self, older_than: Duration) -> Result<u64, BlobError> {
        let _ = older_than;
        Ok(0)
    }
}

/// One blob as a store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// Cache-Control of every blob: content addressed, so never stale.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
