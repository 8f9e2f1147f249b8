//! The content-addressed blob store: bytes stored under their sha256 digest, streamed in
//! and out, never held whole in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_core::{Digest, Sha256Hasher};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::BlobError;

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
    /// A blob with this digest existed already; the upload was not read.
    AlreadyPresent,
}

/// Content-addressed storage. Implementations verify the digest (and size limit) while
/// streaming, and make a blob visible under its digest only once it is complete and
/// correct; a failed upload leaves nothing behind.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `digest`, refusing it if it is larger than `limit` bytes or its
    /// content does not hash to `digest`. Returns the outcome and the blob's size.
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
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;
    /// Checks the storage is reachable and writable (for readiness probes).
    async fn check(&self) -> Result<(), BlobError>;
}

const READ_CHUNK: usize = 1024 * 1024;
const WRITE_BUFFER: usize = 1024 * 1024;

/// Blobs in a local directory: `ROOT/sha256/ab/abcdef...`, written to `ROOT/tmp/`,
/// fsynced and renamed into place.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub async fn open(root: impl Into<PathBuf>) -> Result<FsBlobStore, BlobError> {
        let root = root.into();
        tokio::fs::create_dir_all(root.join("tmp")).await?;
        tokio::fs::create_dir_all(root.join("sha256")).await?;
        Ok(FsBlobStore { root })
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    fn temp_path(&self) -> PathBuf {
        let mut nonce = [0u8; 12];
        // A collision is astronomically unlikely; on failure fall back to the clock.
        if getrandom::fill(&mut nonce).is_err() {
            nonce[..8].copy_from_slice(&crate::now_ms().to_le_bytes());
        }
        self.root
            .join("tmp")
            .join(format!("{}.part", hex::encode(nonce)))
    }

    async fn write_temp(
        &self,
        temp: &Path,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<Digest, BlobError> {
        let file = tokio::fs::File::create(temp).await?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut hasher = Sha256Hasher::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Interrupted)?;
            if hasher.len() + chunk.len() as u64 > limit {
                return Err(BlobError::TooLarge { limit });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        out.into_inner().sync_all().await?;
        Ok(hasher.finish())
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        digest: &Digest,
        body: ByteStream,
        limit: u64,
    ) -> Result<(PutOutcome, u64), BlobError> {
        let target = self.path_of(digest);
        if let Ok(meta) = tokio::fs::metadata(&target).await {
            return Ok((PutOutcome::AlreadyPresent, meta.len()));
        }
        let temp = self.temp_path();
        let written = self.write_temp(&temp, body, limit).await;
        let actual = match written {
            Ok(actual) => actual,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        if actual != *digest {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(BlobError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        let size = tokio::fs::metadata(&temp).await?.len();
        let parent = target.parent().unwrap_or(&self.root).to_owned();
        tokio::fs::create_dir_all(&parent).await?;
        // Same digest, same bytes: if a concurrent upload won the race, this replaces
        // identical content, which readers cannot tell apart.
        tokio::fs::rename(&temp, &target).await?;
        sync_dir(&parent).await?;
        Ok((PutOutcome::Created, size))
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.path_of(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<Option<BlobStream>, BlobError> {
        let mut file = match tokio::fs::File::open(self.path_of(digest)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        if offset.saturating_add(len) > size {
            return Err(BlobError::RangeNotSatisfiable { size });
        }
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset)).await?;
        }
        let body = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK).boxed();
        Ok(Some(BlobStream {
            size,
            offset,
            len,
            body,
        }))
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(digest)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        let probe = self.temp_path();
        tokio::fs::write(&probe, b"ready").await?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }
}

/// Blobs in any `object_store` backend (S3-compatible storage, memory), under
/// `sha256/<hex>`. Uploads are multipart and completed only after the digest checks out,
/// so a bad upload never becomes visible.
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
}

impl ObjectBlobStore {
    pub fn new(store: Arc<dyn ObjectStore>) -> ObjectBlobStore {
        ObjectBlobStore { store }
    }

    fn path_of(digest: &Digest) -> object_store::path::Path {
        object_store::path::Path::from(format!("sha256/{}", digest.hex()))
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(
        &self,
        digest: &Digest,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<(PutOutcome, u64), BlobError> {
        if let Some(size) = self.size(digest).await? {
            return Ok((PutOutcome::AlreadyPresent, size));
        }
        let path = Self::path_of(digest);
        let mut upload = WriteMultipart::new_with_chunk_size(
            self.store.put_multipart(&path).await?,
            8 * 1024 * 1024,
        );
        let mut hasher = Sha256Hasher::new();
        let outcome = loop {
            match body.next().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(BlobError::Interrupted(e)),
                Some(Ok(chunk)) => {
                    if hasher.len() + chunk.len() as u64 > limit {
                        break Err(BlobError::TooLarge { limit });
                    }
                    hasher.update(&chunk);
                    if let Err(e) = upload.wait_for_capacity(4).await {
                        break Err(e.into());
                    }
                    upload.write(&chunk);
                }
            }
        };
        let size = hasher.len();
        let actual = hasher.finish();
        let outcome = outcome.and_then(|()| {
            if actual == *digest {
                Ok(())
            } else {
                Err(BlobError::DigestMismatch {
                    expected: *digest,
                    actual,
                })
            }
        });
        match outcome {
            Ok(()) => {
                upload.finish().await?;
                Ok((PutOutcome::Created, size))
            }
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match self.store.head(&Self::path_of(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<Option<BlobStream>, BlobError> {
        let Some(size) = self.size(digest).await? else {
            return Ok(None);
        };
        if offset.saturating_add(len) > size {
            return Err(BlobError::RangeNotSatisfiable { size });
        }
        let body: ByteStream = if len == 0 {
            futures_util::stream::empty().boxed()
        } else {
            let options = GetOptions {
                range: Some(GetRange::Bounded(offset..offset + len)),
                ..Default::default()
            };
            let result = self.store.get_opts(&Self::path_of(digest), options).await?;
            result.into_stream().map_err(std::io::Error::other).boxed()
        };
        Ok(Some(BlobStream {
            size,
            offset,
            len,
            body,
        }))
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match self.store.delete(&Self::path_of(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        let probe = object_store::path::Path::from("agora-readiness-probe");
        self.store
            .put(&probe, Bytes::from_static(b"ready").into())
            .await?;
        self.store.delete(&probe).await?;
        Ok(())
    }
}
