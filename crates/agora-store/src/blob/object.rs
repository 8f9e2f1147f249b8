//! Blobs in any `object_store` backend: S3-compatible storage for replicas, memory for
//! tests.

use std::sync::Arc;
use std::time::Duration;

use agora_core::{Digest, Sha256Hasher};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, WriteMultipart,
};

use super::{BlobStore, BlobStream, ByteStream, IMMUTABLE, PutOutcome, StoredBlob};
use crate::BlobError;

/// Parts of a multipart upload (S3 needs at least 5 MiB for every part but the last).
/// A blob that fits in one part is sent with one `PUT` once its digest checks out.
const PART: usize = 8 * 1024 * 1024;
/// Parts in flight at once per upload (beside the one being filled).
const PARTS_IN_FLIGHT: usize = 2;
/// Uploads buffering at once: each holds up to `PART * (PARTS_IN_FLIGHT + 1)` bytes, so
/// the memory uploads can take is bounded (about 200 MiB) whatever the number of
/// connections; further uploads wait for a slot before reading their body.
pub const UPLOAD_SLOTS: usize = 8;

/// Blobs in an `object_store` backend, under `[PREFIX/]sha256/<hex>`, stored with
/// `Cache-Control: immutable` and `Content-Type: application/octet-stream`.
///
/// Nothing is visible under a blob's key before its digest checks out: a blob of one
/// part is hashed in memory and then written with one `PUT`; a larger one goes up as a
/// multipart upload that is completed only after the last byte hashed right and aborted
/// otherwise (an upload a crash cut off stays invisible; an S3 lifecycle rule removes
/// its parts, see docs/operations.md).
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    prefix: Option<String>,
    uploads: Arc<tokio::sync::Semaphore>,
}

impl ObjectBlobStore {
    /// Blobs at the top of `store`, with no presigned URLs.
    pub fn new(store: Arc<dyn ObjectStore>) -> ObjectBlobStore {
        ObjectBlobStore {
            store,
            signer: None,
            prefix: None,
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOAD_SLOTS)),
        }
    }

    /// Presigned download URLs from `signer` (the same bucket as the store).
    pub fn with_signer(mut self, signer: Arc<dyn Signer>) -> ObjectBlobStore {
        self.signer = Some(signer);
        self
    }

    /// At most `slots` uploads buffering at once (default [`UPLOAD_SLOTS`]).
    pub fn with_upload_slots(mut self, slots: usize) -> ObjectBlobStore {
        self.uploads = Arc::new(tokio::sync::Semaphore::new(slots.max(1)));
        self
    }

    /// Keys under `prefix/` (for a bucket shared with other data).
    pub fn with_prefix(mut self, prefix: &str) -> ObjectBlobStore {
        let prefix = prefix.trim_matches('/');
        self.prefix = (!prefix.is_empty()).then(|| prefix.to_owned());
        self
    }

    fn dir(&self) -> ObjectPath {
        match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/sha256")),
            None => ObjectPath::from("sha256"),
        }
    }

    fn path_of(&self, digest: &Digest) -> ObjectPath {
        self.dir().join(digest.hex())
    }

    fn attributes() -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::CacheControl, IMMUTABLE.into());
        attributes.insert(Attribute::ContentType, "application/octet-stream".into());
        attributes
    }

    /// Sends a blob larger than one part as a multipart upload: `first` is what was
    /// read already, `hasher` has hashed it. Completes the upload only if the rest of
    /// `body` stays within `limit` and the whole hashes to `digest`.
    async fn put_multipart(
        &self,
        digest: &Digest,
        first: Bytes,
        mut hasher: Sha256Hasher,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<(PutOutcome, u64), BlobError> {
        let options = PutMultipartOptions {
            attributes: Self::attributes(),
            ..Default::default()
        };
        let mut upload = WriteMultipart::new_with_chunk_size(
            self.store
                .put_multipart_opts(&self.path_of(digest), options)
                .await?,
            PART,
        );
        upload.write(&first);
        drop(first);
        let streamed = loop {
            match body.next().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(BlobError::Interrupted(e)),
                Some(Ok(chunk)) => {
                    if let Err(e) = super::hash_within(&mut hasher, &chunk, limit) {
                        break Err(e);
                    }
                    if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        break Err(e.into());
                    }
                    upload.write(&chunk);
                }
            }
        };
        let size = hasher.len();
        let outcome = streamed.and_then(|()| check_digest(digest, hasher.finish()));
        match outcome {
            Ok(()) => match upload.finish().await {
                Ok(_) => Ok((PutOutcome::Created, size)),
                // `finish` aborts the upload itself when completing it fails.
                Err(e) => Err(e.into()),
            },
            Err(e) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(%digest, error = %abort, "could not abort a failed multipart upload; a bucket lifecycle rule will remove its parts");
                }
                Err(e)
            }
        }
    }
}

fn check_digest(expected: &Digest, actual: Digest) -> Result<(), BlobError> {
    if actual == *expected {
        Ok(())
    } else {
        Err(BlobError::DigestMismatch {
            expected: *expected,
            actual,
        })
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
            super::hash_only(body, digest, limit).await?;
            return Ok((PutOutcome::AlreadyPresent, size));
        }
        // The semaphore is never closed; a closed one would only lift the bound.
        let _slot = self.uploads.acquire().await.ok();
        // Read up to one part: most blobs end within it and go up in one request.
        let mut hasher = Sha256Hasher::new();
        let mut first = BytesMut::new();
        loop {
            match body.next().await {
                None => break,
                Some(Err(e)) => return Err(BlobError::Interrupted(e)),
                Some(Ok(chunk)) => {
                    super::hash_within(&mut hasher, &chunk, limit)?;
                    first.extend_from_slice(&chunk);
                    if first.len() >= PART {
                        return self
                            .put_multipart(digest, first.freeze(), hasher, body, limit)
                            .await;
                    }
                }
            }
        }
        let size = hasher.len();
        check_digest(digest, hasher.finish())?;
        let options = PutOptions {
            attributes: Self::attributes(),
            ..Default::default()
        };
        self.store
            .put_opts(
                &self.path_of(digest),
                PutPayload::from_bytes(first.freeze()),
                options,
            )
            .await?;
        Ok((PutOutcome::Created, size))
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.path_of(digest)).await {
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
        let path = self.path_of(digest);
        if len == 0 {
            let Some(size) = self.size(digest).await? else {
                return Ok(None);
            };
            if offset > size {
                return Err(BlobError::RangeNotSatisfiable { size });
            }
            return Ok(Some(BlobStream {
                size,
                offset,
                len,
                body: futures_util::stream::empty().boxed(),
            }));
        }
        // One request: the ranged GET answers the object's size with the bytes.
        let options = GetOptions {
            range: Some(GetRange::Bounded(offset..offset.saturating_add(len))),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                // A range past the end: report it with the blob's size.
                if let Some(size) = self.size(digest).await?
                    && offset.saturating_add(len) > size
                {
                    return Err(BlobError::RangeNotSatisfiable { size });
                }
                return Err(e.into());
            }
        };
        let size = result.meta.size;
        if offset.saturating_add(len) > size || result.range.end - result.range.start != len {
            return Err(BlobError::RangeNotSatisfiable { size });
        }
        let body = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(Some(BlobStream {
            size,
            offset,
            len,
            body,
        }))
    }

    async fn get_whole(&self, digest: &Digest) -> Result<Option<BlobStream>, BlobError> {
        let result = match self.store.get(&self.path_of(digest)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = result.meta.size;
        let body = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(Some(BlobStream {
            size,
            offset: 0,
            len: size,
            body,
        }))
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match self.store.delete(&self.path_of(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        // A HEAD of a key nobody writes: reachable and authorized without writing (every
        // replica probes every few seconds).
        let probe = self.dir().join("readiness-probe");
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError> {
        let dir = self.dir();
        let offset = match after {
            Some(digest) => self.path_of(digest),
            None => dir.clone(),
        };
        // S3 and memory list in key order, so the first `limit` are the page.
        let mut listed = self.store.list_with_offset(Some(&dir), &offset);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(meta) = listed.next().await.transpose()? else {
                break;
            };
            let Some(digest) = meta
                .location
                .filename()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                continue;
            };
            out.push(StoredBlob {
                digest,
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        out.sort_unstable_by(|a, b| a.digest.as_bytes().cmp(b.digest.as_bytes()));
        Ok(out)
    }

    async fn presign_get(
        &self,
        digest: &Digest,
        ttl: Duration,
        cache_control: &str,
    ) -> Result<Option<String>, BlobError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        // The response headers are part of the signature: a CDN caches what we say.
        let options = SignedUrlOptions::default().with_query([
            ("response-cache-control", cache_control),
            ("response-content-type", "application/octet-stream"),
        ]);
        let url = signer
            .signed_url_opts(Method::GET, &self.path_of(digest), ttl, &options)
            .await?;
        Ok(Some(url.to_string()))
    }
}
