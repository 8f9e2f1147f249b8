//! Blobs in a local directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_core::{Digest, Sha256Hasher};
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{BlobStore, BlobStream, ByteStream, PutOutcome, StoredBlob};
use crate::BlobError;

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
            super::hash_within(&mut hasher, &chunk, limit)?;
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
            super::hash_only(body, digest, limit).await?;
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

    async fn list(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError> {
        let after_hex = after.map(Digest::hex);
        let first_shard = after_hex.as_deref().map_or("00", |h| &h[..2]).to_owned();
        let mut out = Vec::new();
        for shard in 0..=255u8 {
            let shard = format!("{shard:02x}");
            if shard < first_shard {
                continue;
            }
            // One shard holds about 1/256 of the blobs: its names fit in memory.
            let mut names = match read_names(&self.root.join("sha256").join(&shard)).await {
                Ok(names) => names,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            names.sort_unstable();
            for name in names {
                if after_hex.as_deref().is_some_and(|a| name.as_str() <= a) {
                    continue;
                }
                // Anything that is not a digest's name is not a blob (fsck reads the
                // files it lists, so a stray file never passes for one).
                let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                    continue;
                };
                if !name.starts_with(&shard) {
                    continue;
                }
                let meta = match tokio::fs::metadata(self.path_of(&digest)).await {
                    Ok(meta) => meta,
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                out.push(StoredBlob {
                    digest,
                    size: meta.len(),
                    modified_ms: modified_ms(&meta),
                });
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    async fn sweep_partials(&self, older_than: Duration) -> Result<u64, BlobError> {
        let mut removed = 0;
        for path in self.partials(older_than).await? {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    async fn count_partials(&self, older_than: Duration) -> Result<u64, BlobError> {
        Ok(self.partials(older_than).await?.len() as u64)
    }
}

impl FsBlobStore {
    /// The temporary files in `tmp/` last written more than `older_than` ago.
    async fn partials(&self, older_than: Duration) -> Result<Vec<PathBuf>, BlobError> {
        let dir = self.root.join("tmp");
        let cutoff = crate::now_ms() - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut found = Vec::new();
        for name in read_names(&dir).await? {
            let path = dir.join(&name);
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                continue;
            };
            if meta.is_file() && modified_ms(&meta) < cutoff {
                found.push(path);
            }
        }
        Ok(found)
    }
}

/// The names of a directory's entries (non-UTF-8 names are skipped: no blob has one).
async fn read_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
