//! Which blobs metadata refers to, for garbage collection (`agora gc`) and the
//! consistency check (`agora fsck`), and the gc marks that make a deletion safe against a
//! publish in flight.
//!
//! A blob is *referenced* when a release that is not removed lists it as a file, an OCI
//! manifest is stored under its digest, or an OCI repository holds it (`oci_blob_links`).
//! An upload record (`blobs`, `blob_uploaders`) is not a reference: it is what a publish
//! in flight holds until its release names the blob.
//!
//! Deleting takes two runs. A run *marks* what it finds unreferenced; a later run, at
//! least the grace period after the mark, moves a mark to `deleting` in one transaction
//! that also checks the blob is still unreferenced and not uploaded since, and removes
//! its upload records; then the bytes go, then the mark. Every path that makes a blob
//! referenced or records an upload (a publish, an upload, an OCI manifest or link) first
//! removes a `marked` mark and refuses a `deleting` one, in its own transaction: the mark
//! row is where the two meet, so one of them always sees the other's commit.

use agora_core::Digest;
use async_trait::async_trait;

use super::Result;

/// Most digests one [`GcStore::blob_uses`] call (and one mark or unmark) takes.
pub const MAX_GC_BATCH: usize = 500;

/// Where a blob's deletion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GcState {
    /// Found unreferenced by a run; deleted by a later one if it stays so.
    Marked,
    /// Its upload records are gone and its bytes are being deleted.
    Deleting,
}

impl GcState {
    pub fn as_str(self) -> &'static str {
        match self {
            GcState::Marked => "marked",
            GcState::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<GcState> {
        match s {
            "marked" => Some(GcState::Marked),
            "deleting" => Some(GcState::Deleting),
            _ => None,
        }
    }
}

/// A blob's gc mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcMark {
    pub state: GcState,
    /// When a run first found it unreferenced (Unix ms).
    pub marked_at: i64,
    /// When the state last changed (Unix ms).
    pub changed_at: i64,
}

/// What metadata says of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobUse {
    pub digest: Digest,
    /// A file of a release that is not removed, an OCI manifest, or a blob an OCI
    /// repository holds.
    pub referenced: bool,
    /// The size its upload record holds, if it has one.
    pub recorded_size: Option<u64>,
    /// Its newest upload (Unix ms), if recorded.
    pub last_upload_ms: Option<i64>,
    pub mark: Option<GcMark>,
}

/// The kinds of reference to a blob, each walked on its own by
/// [`GcStore::blob_references`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefKind {
    /// A file of a release that is not removed (`plugin.yaml` included).
    Artifact,
    /// An OCI manifest stored under its digest.
    OciManifest,
    /// A blob an OCI repository holds.
    OciLink,
    /// An upload record (a blob a publisher sent, released or not).
    Upload,
}

impl RefKind {
    pub const ALL: [RefKind; 4] = [
        RefKind::Artifact,
        RefKind::OciManifest,
        RefKind::OciLink,
        RefKind::Upload,
    ];
}

/// One reference to a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub kind: RefKind,
    /// What refers to it: `publisher/name@version:path`, `repository` or `upload`.
    pub owner: String,
    /// The size the reference records, if it records one.
    pub size: Option<u64>,
}

/// Where a walk over one kind of reference goes on (opaque).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefCursor {
    pub(crate) number: i64,
    pub(crate) first: String,
    pub(crate) second: String,
}

/// Blob references and gc marks.
#[async_trait]
pub trait GcStore: Send + Sync {
    /// What metadata says of each digest (at most [`MAX_GC_BATCH`]), in the given order.
    async fn blob_uses(&self, digests: &[Digest]) -> Result<Vec<BlobUse>>;

    /// Marks the digests (at most [`MAX_GC_BATCH`]) unreferenced as of `at`; a digest
    /// marked already keeps its older mark.
    async fn gc_mark(&self, digests: &[Digest], at: i64) -> Result<()>;

    /// Removes the `marked` marks of the digests (at most [`MAX_GC_BATCH`]): found
    /// referenced or used again.
    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()>;

    /// Removes `marked` marks of digests in `(after, upto]` (`None`: unbounded) that are
    /// not in `present` (at most [`MAX_GC_BATCH`]): the store no longer holds them.
    /// Returns how many went.
    async fn gc_forget_absent(
        &self,
        after: Option<&Digest>,
        upto: Option<&Digest>,
        present: &[Digest],
    ) -> Result<u64>;

    /// Starts deleting a blob, in one transaction: its mark must be `marked` at or before
    /// `marked_before`, the blob unreferenced, and no upload recorded after
    /// `uploaded_before`; then the mark becomes `deleting`, its upload records go and the
    /// deletion is audited (`blob.gc` by `actor`, with `size`). False (nothing changed)
    /// when any condition fails.
    async fn gc_begin_delete(
        &self,
        digest: &Digest,
        marked_before: i64,
        uploaded_before: i64,
        size: u64,
        actor: &str,
    ) -> Result<bool>;

    /// Ends a deletion once the bytes are gone: removes the `deleting` mark.
    async fn gc_end_delete(&self, digest: &Digest) -> Result<()>;

    /// Deletions begun at or before `changed_before` and not ended (a run that stopped
    /// between the two), at most `limit`.
    async fn gc_deleting(&self, changed_before: i64, limit: u32) -> Result<Vec<Digest>>;

    /// A publisher asked whether the blob exists (to skip its upload): a `marked` mark
    /// goes, so the grace period starts again from the next run.
    async fn touch_blob(&self, digest: &Digest) -> Result<()>;

    /// References of one kind after `after`, at most `limit`, and where the next page
    /// starts (`None`: this was the last).
    async fn blob_references(
        &self,
        kind: RefKind,
        after: Option<&RefCursor>,
        limit: u32,
    ) -> Result<(Vec<BlobRef>, Option<RefCursor>)>;
}
