//! The OCI distribution endpoints' records: which manifests and tags each repository
//! holds, which blobs it may serve, and the referrers of a manifest. The bytes of
//! manifests and blobs are in the [`crate::BlobStore`].

use agora_core::Digest;
use async_trait::async_trait;

use super::Result;

/// Most tags one repository may hold.
pub const MAX_OCI_TAGS: i64 = 10_000;
/// Most pushed manifests one repository may hold.
pub const MAX_OCI_MANIFESTS: i64 = 100_000;

/// Who made a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciKind {
    Pushed,
    Release,
    Signature,
    Verification,
}

impl OciKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OciKind::Pushed => "pushed",
            OciKind::Release => "release",
            OciKind::Signature => "signature",
            OciKind::Verification => "verification",
        }
    }

    pub fn parse(s: &str) -> Option<OciKind> {
        [
            OciKind::Pushed,
            OciKind::Release,
            OciKind::Signature,
            OciKind::Verification,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A manifest a repository holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciManifestRecord {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub size: u64,
    /// Its annotations as JSON (for the referrers API), if small enough to keep.
    pub annotations: Option<String>,
    pub kind: OciKind,
    /// The release a generated manifest belongs to.
    pub version_id: Option<i64>,
    /// Whether that release is removed (a removed release's artifacts are gone).
    pub removed: bool,
}

/// A manifest to record.
#[derive(Debug, Clone)]
pub struct NewOciManifest {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub size: u64,
    pub annotations: Option<String>,
    pub kind: OciKind,
    pub version_id: Option<i64>,
    pub verification_id: Option<i64>,
    pub pushed_by: Option<i64>,
    /// A tag to point at it.
    pub tag: Option<String>,
    /// Blobs the repository holds from now on (those it writes for generated manifests).
    pub blobs: Vec<Digest>,
    /// Who is audited for moving the tag (pushes only).
    pub actor: Option<String>,
}

/// A release whose OCI artifacts are not all written yet: its artifact, or the referrer
/// of one verification run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciPending {
    pub version_id: i64,
    pub publisher: String,
    pub name: String,
    pub version: String,
    /// The run without its referrer (`None`: the release's artifact is missing).
    pub run: Option<OciPendingRun>,
}

/// A verification run whose referrer is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciPendingRun {
    pub id: i64,
    pub outcome: String,
    /// The report as stored (JSON).
    pub report: String,
    pub checked_at: i64,
}

#[async_trait]
pub trait OciStore: Send + Sync {
    /// Records a manifest (idempotent: the same digest twice is one row), links its blobs
    /// and points its tag at it, in one transaction. A tag or manifest beyond the
    /// repository's bound ([`MAX_OCI_TAGS`], [`MAX_OCI_MANIFESTS`]) is a `Conflict`.
    async fn put_oci_manifest(&self, manifest: NewOciManifest) -> Result<()>;

    /// A manifest of the repository by digest.
    async fn oci_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<OciManifestRecord>>;

    /// The digest a tag points at.
    async fn oci_tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>>;

    /// Tags in byte order after `last`, at most `limit`.
    async fn oci_tags(
        &self,
        repository: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;

    /// Manifests whose subject is `subject`, optionally of one artifact type, at most
    /// `limit`, oldest first.
    async fn oci_referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OciManifestRecord>>;

    /// Whether the repository may serve the blob: linked to it, or a file of one of the
    /// plugin's releases that is not removed (`plugin` = publisher and name, when the
    /// repository is a plugin's).
    async fn oci_blob_linked(
        &self,
        repository: &str,
        plugin: Option<(&str, &str)>,
        digest: &Digest,
    ) -> Result<bool>;

    /// Links a blob to a repository (a finished upload or a mount).
    async fn link_oci_blob(&self, repository: &str, digest: &Digest) -> Result<()>;

    /// Whether the repository holds anything (a manifest, a tag or a blob).
    async fn oci_repository_exists(&self, repository: &str) -> Result<bool>;

    /// Deletes a pushed manifest and the tags pointing at it, audited as `oci.delete`;
    /// false when there was no such pushed manifest.
    async fn delete_oci_manifest(
        &self,
        repository: &str,
        digest: &Digest,
        actor: &str,
    ) -> Result<bool>;

    /// Deletes a tag, audited as `oci.delete`; false when there was none.
    async fn delete_oci_tag(&self, repository: &str, tag: &str, actor: &str) -> Result<bool>;

    /// Releases (not removed) without their OCI artifact, by version id after `after`, at
    /// most `limit`.
    async fn oci_pending_releases(&self, after: i64, limit: u32) -> Result<Vec<OciPending>>;

    /// Verification runs of releases (not removed) without their referrer, by run id
    /// after `after`, of one release if `version_id` says which, at most `limit`.
    async fn oci_pending_runs(
        &self,
        after: i64,
        version_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<OciPending>>;
}
