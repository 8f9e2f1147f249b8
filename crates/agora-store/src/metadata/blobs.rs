//! Which blobs exist, who uploaded them and who may read them (the bytes themselves are
//! in the [`crate::BlobStore`]; download counts are analytics').

use agora_core::Digest;
use async_trait::async_trait;

use super::{Result, Viewer};

/// The metadata of blobs.
#[async_trait]
pub trait BlobIndex: Send + Sync {
    /// Records a blob written to the blob store and that `uploaded_by` sent its bytes
    /// (idempotent; a blob can have many uploaders).
    async fn record_blob(&self, digest: &Digest, size: u64, uploaded_by: i64) -> Result<()>;
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// The blob's size if `user_id` sent its bytes (proved possession); `None` otherwise.
    async fn blob_uploaded_by(&self, digest: &Digest, user_id: i64) -> Result<Option<u64>>;
    /// Whether some downloadable version the viewer can see refers to this blob.
    async fn blob_readable(&self, digest: &Digest, viewer: &Viewer) -> Result<bool>;
}
