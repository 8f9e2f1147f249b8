//! Backup and restore (`agora backup`, `agora restore`): the metadata database (SQLite
//! through an online copy, `VACUUM INTO`; PostgreSQL through `pg_dump` in its custom
//! format, restored by `pg_restore`) and every blob, copied through the
//! [`BlobStore`] trait so either side may be a directory or a bucket. Each copied blob is
//! verified against its digest on the way (the destination's `put` hashes it); blobs the
//! destination holds already are skipped, so a backup into the same place again copies
//! only what is new. A manifest (`agora-backup.json`) says what was saved, when, from which
//! engine, how many blobs and bytes, and the transparency log's size and root, which a
//! restore checks.

use std::path::{Path, PathBuf};

use agora_core::Digest;
use agora_store::{BlobStore, MAX_GC_BATCH, MetadataStore};
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// The manifest's file name in a backup directory.
pub const MANIFEST_FILE: &str = "agora-backup.json";
/// The format this version writes and reads.
pub const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// The Agora version that took it.
    pub agora_version: String,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// The metadata file in the backup directory.
    pub metadata_file: String,
    /// PostgreSQL: the schema dumped, when the database URL selects one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Where the blobs were copied to (a directory in the backup, or a bucket).
    pub blobs_location: String,
    pub blobs: u64,
    pub bytes: u64,
    /// The transparency log when the metadata was saved.
    pub log: LogHead,
}

/// A transparency log's size and root (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    pub tree_size: u64,
    pub root: String,
}

impl LogHead {
    pub fn of(head: &agora_trust::TreeHead) -> LogHead {
        LogHead {
            tree_size: head.size,
            root: hex::encode(head.root),
        }
    }
}

/// What a copy of blobs did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlobCopy {
    /// Blobs the source holds, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// Copied (verified against their digest on the way).
    pub copied: u64,
    /// Held by the destination already.
    pub skipped: u64,
    /// Source blobs whose bytes do not hash to their digest (not copied).
    pub corrupt: Vec<String>,
}

/// Copies every blob of `from` into `to`, skipping those `to` holds; a blob whose bytes do
/// not match its digest is not copied and is named in the result.
pub async fn copy_blobs(from: &dyn BlobStore, to: &dyn BlobStore) -> Result<BlobCopy> {
    let mut done = BlobCopy::default();
    let mut after: Option<Digest> = None;
    loop {
        let page = from.list(after.as_ref(), MAX_GC_BATCH).await?;
        for blob in &page {
            done.blobs += 1;
            done.bytes += blob.size;
            if to.size(&blob.digest).await?.is_some() {
                done.skipped += 1;
                continue;
            }
            let Some(stream) = from.get(&blob.digest, 0, blob.size).await? else {
                // Deleted since it was listed.
                done.blobs -= 1;
                done.bytes -= blob.size;
                continue;
            };
            match to.put(&blob.digest, stream.body, blob.size).await {
                Ok(_) => done.copied += 1,
                Err(agora_store::BlobError::DigestMismatch { .. }) => {
                    done.corrupt.push(blob.digest.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if page.len() < MAX_GC_BATCH {
            return Ok(done);
        }
        after = page.last().map(|b| b.digest);
    }
}

/// Whether a blob store holds nothing.
pub async fn blob_store_is_empty(store: &dyn BlobStore) -> Result<bool> {
    Ok(store.list(None, 1).await?.is_empty())
}

/// The schema a PostgreSQL URL selects (`options=-c search_path=NAME`), if any.
pub fn postgres_schema(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if key != "options" {
            return None;
        }
        let value = percent_decode(value);
        let rest = value.split("search_path=").nth(1)?;
        let schema: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!schema.is_empty()).then_some(schema)
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a PostgreSQL client program (`pg_dump`, `pg_restore`); a missing program or a
/// failure is an error naming it and what it printed.
pub async fn run_pg_tool(program: &str, args: &[String]) -> Result<()> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            RegistryError::field(
                "engine",
                format!("cannot run {program}: {e}"),
                Some("PostgreSQL's client programs (pg_dump, pg_restore) on PATH, of the server's major version or newer"),
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(RegistryError::internal(
            &format!("{program} failed ({})", out.status),
            crate::truncate(first),
        ));
    }
    Ok(())
}

/// `pg_dump` of the database at `url` (only `schema`, when given) into `file`, in the
/// custom format.
pub async fn pg_dump(url: &str, schema: Option<&str>, file: &Path) -> Result<()> {
    let mut args = vec![
        "--format=custom".to_owned(),
        "--no-owner".to_owned(),
        "--no-privileges".to_owned(),
        format!("--file={}", file.display()),
    ];
    if let Some(schema) = schema {
        args.push(format!("--schema={schema}"));
    }
    args.push(format!("--dbname={url}"));
    run_pg_tool("pg_dump", &args).await
}

/// `pg_restore` of `file` into the database at `url`, in one transaction; `clean` drops
/// what the dump recreates first.
pub async fn pg_restore(url: &str, file: &Path, clean: bool) -> Result<()> {
    let mut args = vec![
        "--no-owner".to_owned(),
        "--no-privileges".to_owned(),
        "--exit-on-error".to_owned(),
        "--single-transaction".to_owned(),
    ];
    if clean {
        args.extend(["--clean".to_owned(), "--if-exists".to_owned()]);
    }
    args.push(format!("--dbname={url}"));
    args.push(file.display().to_string());
    run_pg_tool("pg_restore", &args).await
}

/// Reads a backup directory's manifest, checking its format.
pub fn read_manifest(dir: &Path) -> Result<BackupManifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        RegistryError::field(
            "from",
            format!("cannot read {}: {e}", path.display()),
            Some("a directory written by `agora backup`"),
        )
    })?;
    let manifest: BackupManifest = serde_json::from_str(&text).map_err(|e| {
        RegistryError::field(
            "from",
            format!("{} is not a backup manifest: {e}", path.display()),
            Some("a directory written by `agora backup`"),
        )
    })?;
    if manifest.format != FORMAT {
        return Err(RegistryError::field(
            "format",
            format!("the backup is of format {}", manifest.format),
            Some(&format!("format {FORMAT}")),
        ));
    }
    Ok(manifest)
}

/// The metadata file of a backup, in its directory.
pub fn metadata_path(dir: &Path, manifest: &BackupManifest) -> Result<PathBuf> {
    let name = Path::new(&manifest.metadata_file);
    if name.components().count() != 1 || name.is_absolute() {
        return Err(RegistryError::field(
            "metadata_file",
            format!("{:?} is not a file name", manifest.metadata_file),
            Some("a file in the backup directory"),
        ));
    }
    Ok(dir.join(name))
}

/// The size and root of the log stored in `meta` (computed from its entries; no key
/// needed).
pub async fn log_head(meta: &dyn MetadataStore) -> Result<LogHead> {
    let mut tree = agora_trust::MerkleLog::new();
    loop {
        let batch = meta.log_entries(tree.size() as i64, 10_000).await?;
        if batch.is_empty() {
            return Ok(LogHead::of(&tree.head()));
        }
        for row in batch {
            tree.append(agora_trust::LogEntry::leaf_of(&row.body));
        }
    }
}

/// Checks that the first `expected.tree_size` entries of the log in `meta` have the
/// recorded root, and returns the log's full size.
pub async fn check_log(meta: &dyn MetadataStore, expected: &LogHead) -> Result<u64> {
    let mut tree = agora_trust::MerkleLog::new();
    let mut prefix = None;
    loop {
        let batch = meta.log_entries(tree.size() as i64, 10_000).await?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            tree.append(agora_trust::LogEntry::leaf_of(&row.body));
            if tree.size() == expected.tree_size {
                prefix = Some(hex::encode(tree.head().root));
            }
        }
    }
    if expected.tree_size == 0 {
        prefix = Some(hex::encode(agora_trust::MerkleLog::new().head().root));
    }
    match prefix {
        Some(root) if root == expected.root => Ok(tree.size()),
        Some(root) => Err(RegistryError::conflict(format!(
            "the restored log's root at size {} is {root}, not the backup's {}",
            expected.tree_size, expected.root
        ))),
        None => Err(RegistryError::conflict(format!(
            "the restored log holds {} entries, fewer than the backup's {}",
            tree.size(),
            expected.tree_size
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_read_from_a_postgres_url() {
        assert_eq!(
            postgres_schema("postgres://u@h/db?options=-c%20search_path%3Dagora_1").as_deref(),
            Some("agora_1")
        );
        assert_eq!(
            postgres_schema("postgres://u@h/db?sslmode=disable&options=-c search_path=s2")
                .as_deref(),
            Some("s2")
        );
        assert_eq!(postgres_schema("postgres://u@h/db"), None);
    }

    #[tokio::test]
    async fn blobs_are_copied_once_and_a_corrupt_one_is_named() {
        use agora_store::FsBlobStore;
        use futures_util::StreamExt;
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = FsBlobStore::open(a.path()).await.unwrap();
        let to = FsBlobStore::open(b.path()).await.unwrap();
        for content in [&b"one"[..], b"two"] {
            let bytes = bytes::Bytes::copy_from_slice(content);
            let body = futures_util::stream::once(async move { Ok(bytes) }).boxed();
            from.put(&Digest::of(content), body, 10).await.unwrap();
        }
        let first = copy_blobs(&from, &to).await.unwrap();
        assert_eq!((first.blobs, first.copied, first.skipped), (2, 2, 0));
        let again = copy_blobs(&from, &to).await.unwrap();
        assert_eq!((again.copied, again.skipped), (0, 2));
        // A flipped byte in the source is caught on the way.
        let hex = Digest::of(b"one").hex();
        let path = a.path().join("sha256").join(&hex[..2]).join(&hex);
        std::fs::write(&path, b"onf").unwrap();
        let c = tempfile::tempdir().unwrap();
        let fresh = FsBlobStore::open(c.path()).await.unwrap();
        let copy = copy_blobs(&from, &fresh).await.unwrap();
        assert_eq!(copy.corrupt, [Digest::of(b"one").to_string()]);
        assert_eq!(copy.copied, 1);
    }
}
