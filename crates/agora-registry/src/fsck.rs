//! The consistency check of the blob store against metadata (`agora fsck`): every stored
//! blob re-hashed (streamed) against its digest and the size metadata records, every
//! reference checked to resolve to a stored blob, and what nothing refers to reported.
//! Changes nothing. Memory is bounded: the store and each kind of reference are walked
//! in pages, and each list in the report keeps at most [`MAX_LISTED`] entries (its count
//! is exact).

use std::collections::HashMap;
use std::time::Duration;

use agora_core::{Digest, Sha256Hasher};
use agora_store::{BlobError, GcState, MAX_GC_BATCH, RefCursor, RefKind};
use futures_util::StreamExt;

use crate::Registry;
use crate::error::Result;

/// Most entries each list of a report keeps.
pub const MAX_LISTED: usize = 1000;
/// Blobs and references read per page.
const PAGE: usize = MAX_GC_BATCH;

/// How a check goes.
#[derive(Debug, Clone, Copy)]
pub struct FsckOptions {
    /// Re-hash every blob's bytes (otherwise only sizes and references are checked).
    pub hash: bool,
    /// Upload leftovers younger than this are uploads in progress, not leftovers.
    pub partial_age: Duration,
}

impl Default for FsckOptions {
    fn default() -> FsckOptions {
        FsckOptions {
            hash: true,
            partial_age: Duration::from_secs(3600),
        }
    }
}

/// A list of findings: an exact count, the first [`MAX_LISTED`] entries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Findings<T> {
    pub count: u64,
    pub items: Vec<T>,
}

impl<T> Default for Findings<T> {
    fn default() -> Self {
        Findings {
            count: 0,
            items: Vec::new(),
        }
    }
}

impl<T> Findings<T> {
    fn push(&mut self, item: T) {
        self.count += 1;
        if self.items.len() < MAX_LISTED {
            self.items.push(item);
        }
    }
}

/// A stored blob whose bytes do not hash to its digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Corrupt {
    pub digest: String,
    /// What the bytes hash to, or why they could not be read.
    pub actual: String,
}

/// A blob whose stored size differs from what a reference records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizeMismatch {
    pub digest: String,
    pub kind: RefKind,
    pub owner: String,
    pub recorded: u64,
    pub stored: u64,
}

/// A reference to a blob the store does not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    pub digest: String,
    pub kind: RefKind,
    /// What refers to it (`publisher/name@version:path`, an OCI repository, `upload`).
    pub owner: String,
}

/// A stored blob nothing refers to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Orphan {
    pub digest: String,
    pub size: u64,
    /// When its bytes were written (Unix ms).
    pub modified_ms: i64,
    /// Whether a publisher's upload of it is recorded (a publish in flight, or one that
    /// never finished).
    pub uploaded: bool,
    /// Its gc mark, if a collection marked it.
    pub gc: Option<GcState>,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsckReport {
    /// False when anything is missing, corrupt or of the wrong size.
    pub ok: bool,
    /// Whether the bytes were re-hashed.
    pub hashed: bool,
    /// Blobs the store holds, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// References checked, by kind.
    pub references: HashMap<RefKind, u64>,
    pub corrupt: Findings<Corrupt>,
    pub size_mismatches: Findings<SizeMismatch>,
    pub missing: Findings<Missing>,
    pub orphans: Findings<Orphan>,
    /// Temporary files of uploads cut off (older than an hour): `agora gc` removes them.
    pub partials: u64,
}

/// Checks the blob store against metadata.
pub async fn run(registry: &Registry, options: FsckOptions) -> Result<FsckReport> {
    let mut report = FsckReport {
        hashed: options.hash,
        ..FsckReport::default()
    };
    walk_store(registry, options, &mut report).await?;
    for kind in RefKind::ALL {
        walk_references(registry, kind, &mut report).await?;
    }
    report.partials = registry.blobs.count_partials(options.partial_age).await?;
    report.ok =
        report.corrupt.count == 0 && report.missing.count == 0 && report.size_mismatches.count == 0;
    Ok(report)
}

/// Every stored blob: re-hashed, and an orphan if nothing refers to it.
async fn walk_store(
    registry: &Registry,
    options: FsckOptions,
    report: &mut FsckReport,
) -> Result<()> {
    let mut after: Option<Digest> = None;
    loop {
        let page = registry.blobs.list(after.as_ref(), PAGE).await?;
        let digests: Vec<Digest> = page.iter().map(|b| b.digest).collect();
        let uses = registry.meta.blob_uses(&digests).await?;
        for (blob, used) in page.iter().zip(&uses) {
            if used.mark.is_some_and(|m| m.state == GcState::Deleting) {
                // Being deleted by a collection right now.
                continue;
            }
            report.blobs += 1;
            report.bytes += blob.size;
            if options.hash
                && let Some(actual) = rehash(registry, &blob.digest, blob.size).await?
            {
                report.corrupt.push(Corrupt {
                    digest: blob.digest.to_string(),
                    actual,
                });
            }
            if !used.referenced {
                report.orphans.push(Orphan {
                    digest: blob.digest.to_string(),
                    size: blob.size,
                    modified_ms: blob.modified_ms,
                    uploaded: used.recorded_size.is_some(),
                    gc: used.mark.map(|m| m.state),
                });
            }
        }
        if page.len() < PAGE {
            return Ok(());
        }
        after = digests.last().copied();
    }
}

/// The blob's bytes hashed: `None` when they match its digest, else what they are.
async fn rehash(registry: &Registry, digest: &Digest, size: u64) -> Result<Option<String>> {
    let mut stream = match registry.blobs.get(digest, 0, size).await {
        Ok(Some(stream)) => stream.body,
        Ok(None) => return Ok(Some("deleted while being checked".to_owned())),
        Err(BlobError::RangeNotSatisfiable { size }) => {
            return Ok(Some(format!("shrank to {size} bytes while being checked")));
        }
        Err(e) => return Err(e.into()),
    };
    let mut hasher = Sha256Hasher::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => hasher.update(&chunk),
            Err(e) => return Ok(Some(format!("unreadable: {e}"))),
        }
    }
    let actual = hasher.finish();
    Ok((actual != *digest).then(|| actual.to_string()))
}

/// Every reference of one kind: its blob stored, with the size it records.
async fn walk_references(
    registry: &Registry,
    kind: RefKind,
    report: &mut FsckReport,
) -> Result<()> {
    let mut after: Option<RefCursor> = None;
    loop {
        let (refs, next) = registry
            .meta
            .blob_references(kind, after.as_ref(), PAGE as u32)
            .await?;
        // One size lookup per digest of the page.
        let mut sizes: HashMap<Digest, Option<u64>> = HashMap::new();
        for r in &refs {
            *report.references.entry(kind).or_default() += 1;
            let stored = match sizes.get(&r.digest) {
                Some(size) => *size,
                None => {
                    let size = registry.blobs.size(&r.digest).await?;
                    sizes.insert(r.digest, size);
                    size
                }
            };
            match (stored, r.size) {
                (None, _) => report.missing.push(Missing {
                    digest: r.digest.to_string(),
                    kind,
                    owner: r.owner.clone(),
                }),
                (Some(stored), Some(recorded)) if stored != recorded => {
                    report.size_mismatches.push(SizeMismatch {
                        digest: r.digest.to_string(),
                        kind,
                        owner: r.owner.clone(),
                        recorded,
                        stored,
                    })
                }
                _ => {}
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return Ok(()),
        }
    }
}
