//! The OCI distribution endpoints' use cases (`/v2/`): pull, push, tags, referrers and
//! deletes over the same stores as the rest of the registry, with the same callers.
//!
//! - **Who sees what.** A repository `PUBLISHER/NAME[/...]` whose first two components
//!   name a plugin has that plugin's visibility: a viewer who may not see the plugin gets
//!   `NAME_UNKNOWN`, exactly as for a name that does not exist. Other repositories are
//!   public. A blob is served from a repository only if the repository holds it (pushed
//!   or mounted there, written for one of its generated manifests) or it is a file of
//!   one of the plugin's releases that is not removed; knowing a digest is never enough.
//! - **Who writes.** Pushing, mounting and deleting need a user's token with a
//!   `publish:` scope for the repository's publisher and membership there (an
//!   instance credential only reads). A blob linked into a repository was proved: its
//!   bytes were uploaded and hashed (`blobs::upload`), or mounted from a repository the
//!   caller can read.
//! - **Releases as artifacts.** Each release is written once as an OCI artifact
//!   ([`agora_core::oci::release_manifest`]) tagged with its version, its DSSE envelope
//!   and each verification run as referrers; [`catch_up`] writes whatever is missing
//!   (after a publish, a verification, and at start for releases older than this
//!   subsystem). Release tags belong to releases: a push may not take a tag that is a
//!   version number in a plugin's repository, and a release's artifact cannot be deleted
//!   through `/v2/` (remove the release instead).
//! - **Uploads** in progress are kept in files under `[oci] upload_dir`, one per session,
//!   owned by the user who started it, in memory on the replica that started it (clients
//!   keep an upload on one connection); at most [`MAX_UPLOADS`] at once, and
//!   [`MAX_UPLOADS_PER_USER`] per user, each forgotten after [`UPLOAD_IDLE`] without a
//!   chunk.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agora_core::oci::{self, Descriptor, ErrorCode, Reference, Repository};
use agora_core::{Digest, ProblemKind};
use agora_store::{ByteStream, NewOciManifest, OciKind, OciManifestRecord, OciPending, Viewer};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Registry;
use crate::caller::Caller;
use crate::error::RegistryError;

/// Most uploads in progress at once on one server.
pub const MAX_UPLOADS: usize = 256;
/// Most uploads in progress at once per user.
pub const MAX_UPLOADS_PER_USER: usize = 16;
/// An upload without a chunk for this long is forgotten, its file deleted.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(3600);
/// How many pending releases [`catch_up`] writes per store query.
const CATCH_UP_BATCH: u32 = 200;

/// An error as the distribution spec writes it: a code, its status, a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OciError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
    /// For a 416 on a blob: its size.
    pub size: Option<u64>,
}

impl OciError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OciError {
        OciError {
            code: code.as_str(),
            status: code.status(),
            message: message.into(),
            size: None,
        }
    }

    /// The same error answered with another status (the spec pairs some codes with
    /// several).
    pub fn with_status(mut self, status: u16) -> OciError {
        self.status = status;
        self
    }
}

impl From<RegistryError> for OciError {
    fn from(err: RegistryError) -> OciError {
        let message = err.detail.clone().unwrap_or_else(|| err.title.to_owned());
        let (code, status) = match err.kind {
            ProblemKind::Unauthorized => (ErrorCode::Unauthorized.as_str(), 401),
            ProblemKind::Forbidden | ProblemKind::Conflict => (ErrorCode::Denied.as_str(), 403),
            ProblemKind::NotFound => (ErrorCode::NameUnknown.as_str(), 404),
            ProblemKind::TooLarge => (ErrorCode::SizeInvalid.as_str(), 413),
            ProblemKind::DigestMismatch => (ErrorCode::DigestInvalid.as_str(), 400),
            ProblemKind::SizeMismatch => (ErrorCode::SizeInvalid.as_str(), 400),
            ProblemKind::RangeNotSatisfiable => (ErrorCode::RangeInvalid.as_str(), 416),
            ProblemKind::Unavailable => ("UNAVAILABLE", 503),
            ProblemKind::Internal => ("UNKNOWN", 500),
            _ => (ErrorCode::BlobUploadInvalid.as_str(), 400),
        };
        OciError {
            code,
            status,
            message,
            size: err.size,
        }
    }
}

impl From<agora_store::StoreError> for OciError {
    fn from(err: agora_store::StoreError) -> OciError {
        RegistryError::from(err).into()
    }
}

impl From<agora_store::BlobError> for OciError {
    fn from(err: agora_store::BlobError) -> OciError {
        RegistryError::from(err).into()
    }
}

pub type Result<T> = std::result::Result<T, OciError>;

/// The `[oci]` settings.
#[derive(Debug, Clone)]
pub struct OciSettings {
    /// Serve `/v2/` at all.
    pub enabled: bool,
    /// Where uploads in progress are kept.
    pub upload_dir: PathBuf,
    /// Whether pushed manifests, tags and blob links may be deleted.
    pub deletes: bool,
}

impl Default for OciSettings {
    fn default() -> OciSettings {
        OciSettings {
            enabled: true,
            upload_dir: std::env::temp_dir().join("agora-oci-uploads"),
            deletes: true,
        }
    }
}

/// The OCI subsystem's state: its settings and the uploads in progress.
#[derive(Debug, Default)]
pub struct Oci {
    pub settings: OciSettings,
    uploads: Mutex<HashMap<String, Session>>,
}

#[derive(Debug)]
struct Session {
    repository: String,
    user_id: i64,
    offset: u64,
    touched: Instant,
    path: PathBuf,
    /// A chunk is being written: no second one may interleave.
    busy: bool,
}

impl Oci {
    pub fn new(settings: OciSettings) -> Oci {
        Oci {
            settings,
            uploads: Mutex::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A repository as a request names it, checked and visible to the viewer.
#[derive(Debug, Clone)]
pub struct Repo {
    pub name: Repository,
    /// The plugin this repository is (exactly `PUBLISHER/NAME`), if there is one.
    plugin: Option<(String, String)>,
    /// Whether anyone at all may read it (a public plugin's, or no plugin's, on a
    /// registry that needs no sign-in): only then may shared caches keep its content.
    pub public: bool,
}

impl Repo {
    fn plugin(&self) -> Option<(&str, &str)> {
        self.plugin.as_ref().map(|(p, n)| (p.as_str(), n.as_str()))
    }
}

/// Checks the name and that the viewer may see the repository.
pub async fn repository(registry: &Registry, viewer: &Viewer, raw: &str) -> Result<Repo> {
    let name = Repository::parse(raw).map_err(|e| OciError::new(ErrorCode::NameInvalid, e.0))?;
    let owner = {
        let mut parts = name.as_str().splitn(3, '/');
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    };
    // A visible plugin costs one query; a private one the viewer may not see and a name
    // with no plugin cost the same two, so timing tells them apart no better than the
    // answers do.
    let plugin = match registry
        .meta
        .visible_plugin(owner.0, owner.1, viewer)
        .await?
    {
        Some(plugin) => Some(plugin),
        None => {
            if registry.meta.plugin(owner.0, owner.1).await?.is_some() {
                return Err(unknown_name(&name));
            }
            None
        }
    };
    let public = !registry.sign_in_required
        && plugin
            .as_ref()
            .is_none_or(|p| p.visibility == agora_core::Visibility::Public);
    let exact = plugin
        .filter(|_| name.plugin().is_some())
        .map(|p| (p.publisher, p.name));
    Ok(Repo {
        name,
        plugin: exact,
        public,
    })
}

fn unknown_name(name: &Repository) -> OciError {
    OciError::new(
        ErrorCode::NameUnknown,
        format!("repository {name} is not known to this registry"),
    )
}

/// A manifest found: what to answer a GET or HEAD with.
#[derive(Debug, Clone)]
pub struct FoundManifest {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub subject: Option<Digest>,
    /// Bytes made for this answer (the referrers tag's index), not stored.
    pub inline: Option<Bytes>,
}

/// Resolves `reference` (a tag or digest) in a visible repository.
pub async fn manifest(registry: &Registry, repo: &Repo, reference: &str) -> Result<FoundManifest> {
    let reference =
        Reference::parse(reference).map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e.0))?;
    let reference_text = match &reference {
        Reference::Tag(t) => t.clone(),
        Reference::Digest(d) => d.to_string(),
    };
    let unknown = || {
        OciError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {reference_text} is not in {}", repo.name),
        )
    };
    let digest = match &reference {
        Reference::Digest(d) => *d,
        Reference::Tag(tag) => match registry.meta.oci_tag(repo.name.as_str(), tag).await? {
            Some(digest) => digest,
            None => {
                return referrers_tag(registry, repo, tag)
                    .await?
                    .ok_or_else(unknown);
            }
        },
    };
    let record = registry
        .meta
        .oci_manifest(repo.name.as_str(), &digest)
        .await?
        .filter(|m| !m.removed)
        .ok_or_else(unknown)?;
    Ok(FoundManifest {
        digest,
        media_type: record.media_type,
        size: record.size,
        subject: record.subject,
        inline: None,
    })
}

/// The referrers tag schema (`sha256-HEX`, the spec's fallback for clients without the
/// referrers API): an index of the subject's referrers, made for the request, so tools
/// that copy tags (skopeo, crane) can copy a release's signature and verification with
/// it (`skopeo copy --all docker://HOST/P/N:sha256-HEX ...`). `None` when the tag is not
/// of that form or the subject is not in the repository.
async fn referrers_tag(
    registry: &Registry,
    repo: &Repo,
    tag: &str,
) -> Result<Option<FoundManifest>> {
    let Some(hex) = tag.strip_prefix("sha256-") else {
        return Ok(None);
    };
    let Ok(subject) = oci::parse_digest(&format!("sha256:{hex}")) else {
        return Ok(None);
    };
    if registry
        .meta
        .oci_manifest(repo.name.as_str(), &subject)
        .await?
        .is_none_or(|m| m.removed)
    {
        return Ok(None);
    }
    let listed = referrers(registry, repo, &subject.to_string(), None).await?;
    let bytes = Bytes::from(oci::index(listed));
    Ok(Some(FoundManifest {
        digest: Digest::of(&bytes),
        media_type: oci::IMAGE_INDEX.to_owned(),
        size: bytes.len() as u64,
        subject: None,
        inline: Some(bytes),
    }))
}

/// The bytes of a manifest found by [`manifest`].
pub async fn manifest_bytes(registry: &Registry, found: &FoundManifest) -> Result<ByteStream> {
    if let Some(bytes) = found.inline.clone() {
        return Ok(Box::pin(futures_util::stream::once(
            async move { Ok(bytes) },
        )));
    }
    let stream = registry
        .blobs
        .get(&found.digest, 0, found.size)
        .await?
        .ok_or_else(|| {
            OciError::new(
                ErrorCode::ManifestUnknown,
                "the manifest's bytes are missing",
            )
            .with_status(500)
        })?;
    Ok(stream.body)
}

/// The size of a blob the repository may serve.
pub async fn blob_size(registry: &Registry, repo: &Repo, digest: &str) -> Result<(Digest, u64)> {
    let digest =
        oci::parse_digest(digest).map_err(|e| OciError::new(ErrorCode::DigestInvalid, e.0))?;
    let unknown = || {
        OciError::new(
            ErrorCode::BlobUnknown,
            format!("blob {digest} is not in {}", repo.name),
        )
    };
    if !registry
        .meta
        .oci_blob_linked(repo.name.as_str(), repo.plugin(), &digest)
        .await?
    {
        return Err(unknown());
    }
    let size = registry.blobs.size(&digest).await?.ok_or_else(unknown)?;
    Ok((digest, size))
}

/// Tags of a visible repository after `last`, at most `n`, and whether more follow.
pub async fn tags(
    registry: &Registry,
    repo: &Repo,
    last: Option<&str>,
    n: Option<usize>,
) -> Result<(Vec<String>, bool)> {
    let n = n.unwrap_or(oci::MAX_TAGS_PAGE).min(oci::MAX_TAGS_PAGE);
    if n == 0 {
        return Ok((Vec::new(), false));
    }
    let mut tags = registry
        .meta
        .oci_tags(repo.name.as_str(), last, n as u32 + 1)
        .await?;
    if tags.is_empty() && last.is_none() && !exists(registry, repo).await? {
        return Err(unknown_name(&repo.name));
    }
    let more = tags.len() > n;
    tags.truncate(n);
    Ok((tags, more))
}

async fn exists(registry: &Registry, repo: &Repo) -> Result<bool> {
    Ok(repo.plugin.is_some()
        || registry
            .meta
            .oci_repository_exists(repo.name.as_str())
            .await?)
}

/// The referrers of `subject` in a visible repository, optionally of one artifact type.
pub async fn referrers(
    registry: &Registry,
    repo: &Repo,
    subject: &str,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>> {
    let subject =
        oci::parse_digest(subject).map_err(|e| OciError::new(ErrorCode::DigestInvalid, e.0))?;
    let records = registry
        .meta
        .oci_referrers(
            repo.name.as_str(),
            &subject,
            artifact_type,
            oci::MAX_REFERRERS as u32,
        )
        .await?;
    Ok(records.into_iter().map(descriptor_of).collect())
}

fn descriptor_of(m: OciManifestRecord) -> Descriptor {
    Descriptor {
        media_type: m.media_type,
        digest: m.digest.to_string(),
        size: m.size,
        artifact_type: m.artifact_type,
        annotations: m
            .annotations
            .and_then(|a| serde_json::from_str::<BTreeMap<String, String>>(&a).ok()),
        platform: None,
    }
}

/// The caller may write to the repository: a user (not an instance) with publish rights on
/// its publisher.
pub async fn require_push(registry: &Registry, caller: &Caller, repo: &Repo) -> Result<()> {
    let publisher = registry
        .meta
        .publisher_by_name(repo.name.publisher())
        .await?
        .ok_or_else(|| {
            OciError::new(
                ErrorCode::Denied,
                format!(
                    "publisher {} does not exist; repositories are named PUBLISHER/NAME after a \
                     publisher you belong to",
                    repo.name.publisher()
                ),
            )
        })?;
    caller.require_publish(&publisher)?;
    Ok(())
}

/// The state of an upload, for the `Location` and `Range` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

/// Starts an upload session for the caller in a repository it may push to.
pub async fn start_upload(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
) -> Result<UploadState> {
    require_push(registry, caller, repo).await?;
    let oci = &registry.oci;
    forget_idle(oci).await;
    let mut id_bytes = [0u8; 16];
    getrandom::fill(&mut id_bytes)
        .map_err(|e| RegistryError::internal("no randomness for an upload id", e))?;
    let id = hex::encode(id_bytes);
    tokio::fs::create_dir_all(&oci.settings.upload_dir)
        .await
        .map_err(|e| RegistryError::internal("cannot create the upload directory", e))?;
    let path = oci.settings.upload_dir.join(&id);
    {
        let mut sessions = oci.sessions();
        if sessions.len() >= MAX_UPLOADS {
            return Err(OciError::new(
                ErrorCode::TooManyRequests,
                format!("this server has {MAX_UPLOADS} uploads in progress; try again later"),
            ));
        }
        let mine = sessions
            .values()
            .filter(|s| s.user_id == caller.user.id)
            .count();
        if mine >= MAX_UPLOADS_PER_USER {
            return Err(OciError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "you have {MAX_UPLOADS_PER_USER} uploads in progress, the most one user may; \
                     finish or cancel one"
                ),
            ));
        }
        sessions.insert(
            id.clone(),
            Session {
                repository: repo.name.as_str().to_owned(),
                user_id: caller.user.id,
                offset: 0,
                touched: Instant::now(),
                path: path.clone(),
                busy: false,
            },
        );
    }
    if let Err(e) = tokio::fs::File::create(&path).await {
        oci.sessions().remove(&id);
        return Err(RegistryError::internal("cannot create an upload file", e).into());
    }
    Ok(UploadState { id, offset: 0 })
}

async fn forget_idle(oci: &Oci) {
    let stale: Vec<PathBuf> = {
        let mut sessions = oci.sessions();
        let ids: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| !s.busy && s.touched.elapsed() > UPLOAD_IDLE)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| sessions.remove(id))
            .map(|s| s.path)
            .collect()
    };
    for path in stale {
        let _ = tokio::fs::remove_file(path).await;
    }
}

fn unknown_upload(id: &str) -> OciError {
    OciError::new(
        ErrorCode::BlobUploadUnknown,
        format!(
            "upload {id} is not in progress here (finished, cancelled, idle for an hour, or another user's)"
        ),
    )
}

/// Takes the session for one operation: it must be the caller's, in this repository, and
/// not in the middle of another chunk.
fn claim(oci: &Oci, caller: &Caller, repo: &Repo, id: &str) -> Result<(PathBuf, u64)> {
    let mut sessions = oci.sessions();
    let session = sessions
        .get_mut(id)
        .filter(|s| s.user_id == caller.user.id && s.repository == repo.name.as_str())
        .ok_or_else(|| unknown_upload(id))?;
    if session.busy {
        return Err(OciError::new(
            ErrorCode::BlobUploadInvalid,
            "another chunk of this upload is still being received; send chunks one after another",
        )
        .with_status(416));
    }
    session.busy = true;
    session.touched = Instant::now();
    Ok((session.path.clone(), session.offset))
}

fn release(oci: &Oci, id: &str, offset: Option<u64>) {
    if let Some(session) = oci.sessions().get_mut(id) {
        session.busy = false;
        session.touched = Instant::now();
        if let Some(offset) = offset {
            session.offset = offset;
        }
    }
}

/// The state of an upload in progress.
pub fn upload_state(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    id: &str,
) -> Result<UploadState> {
    let sessions = registry.oci.sessions();
    let session = sessions
        .get(id)
        .filter(|s| s.user_id == caller.user.id && s.repository == repo.name.as_str())
        .ok_or_else(|| unknown_upload(id))?;
    Ok(UploadState {
        id: id.to_owned(),
        offset: session.offset,
    })
}

/// Appends a chunk. `range` is the request's `Content-Range` (first and last byte): it
/// must start where the upload ends, else `416` and nothing is written.
pub async fn append(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    id: &str,
    range: Option<(u64, u64)>,
    body: ByteStream,
) -> Result<UploadState> {
    let oci = &registry.oci;
    let (path, offset) = claim(oci, caller, repo, id)?;
    let result = write_chunk(registry, &path, offset, range, body).await;
    match result {
        Ok(new_offset) => {
            release(oci, id, Some(new_offset));
            Ok(UploadState {
                id: id.to_owned(),
                offset: new_offset,
            })
        }
        Err(e) => {
            release(oci, id, None);
            Err(e)
        }
    }
}

async fn write_chunk(
    registry: &Registry,
    path: &std::path::Path,
    offset: u64,
    range: Option<(u64, u64)>,
    mut body: ByteStream,
) -> Result<u64> {
    if let Some((start, end)) = range
        && (start != offset || end < start)
    {
        return Err(OciError {
            size: Some(offset),
            ..OciError::new(
                ErrorCode::RangeInvalid,
                format!(
                    "the chunk covers bytes {start}-{end} but the upload holds {offset} bytes; \
                     the next chunk must start at byte {offset}"
                ),
            )
        });
    }
    let limit = registry.limits.max_blob_bytes;
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(|e| RegistryError::internal("cannot open the upload file", e))?;
    let mut written = offset;
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                failure = Some(OciError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("the chunk was cut off ({e}); send it again from byte {offset}"),
                ));
                break;
            }
        };
        written += chunk.len() as u64;
        if written > limit {
            failure = Some(
                OciError::new(
                    ErrorCode::SizeInvalid,
                    format!("the blob would exceed {limit} bytes, this registry's limit per blob"),
                )
                .with_status(413),
            );
            break;
        }
        if let Err(e) = file.write_all(&chunk).await {
            failure = Some(RegistryError::internal("cannot write the upload file", e).into());
            break;
        }
    }
    if let Some(failure) = failure {
        // Nothing of a failed chunk stays: the upload ends where it did before.
        let _ = file.set_len(offset).await;
        return Err(failure);
    }
    if let Some((start, end)) = range
        && end - start + 1 != written - offset
    {
        let _ = file.set_len(offset).await;
        return Err(OciError::new(
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range announced {} bytes but the chunk held {}",
                end - start + 1,
                written - offset
            ),
        )
        .with_status(416));
    }
    file.flush()
        .await
        .map_err(|e| RegistryError::internal("cannot write the upload file", e))?;
    Ok(written)
}

/// Finishes an upload: the last chunk (possibly empty), then the whole content checked
/// against `digest` and stored; the session ends either way once the bytes were read.
pub async fn finish(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    id: &str,
    digest: Option<&str>,
    body: ByteStream,
) -> Result<Digest> {
    let digest = parse_upload_digest(digest)?;
    let oci = &registry.oci;
    let (path, offset) = claim(oci, caller, repo, id)?;
    let size = match write_chunk(registry, &path, offset, None, body).await {
        Ok(size) => size,
        Err(e) => {
            release(oci, id, None);
            return Err(e);
        }
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => {
            release(oci, id, None);
            return Err(RegistryError::internal("cannot read the upload file", e).into());
        }
    };
    let stored =
        crate::blobs::upload(registry, caller, &digest, Some(size), file_stream(file)).await;
    // The content was read whole: a digest that does not match ends the upload (the
    // client starts again), as every registry does.
    oci.sessions().remove(id);
    let _ = tokio::fs::remove_file(&path).await;
    stored?;
    registry
        .meta
        .link_oci_blob(repo.name.as_str(), &digest)
        .await?;
    Ok(digest)
}

fn parse_upload_digest(digest: Option<&str>) -> Result<Digest> {
    let raw = digest.ok_or_else(|| {
        OciError::new(
            ErrorCode::DigestInvalid,
            "finishing an upload needs the content's digest: ?digest=sha256:<64 hex>",
        )
    })?;
    oci::parse_digest(raw).map_err(|e| OciError::new(ErrorCode::DigestInvalid, e.0))
}

fn file_stream(file: tokio::fs::File) -> ByteStream {
    Box::pin(futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    }))
}

/// Cancels an upload in progress.
pub async fn cancel(registry: &Registry, caller: &Caller, repo: &Repo, id: &str) -> Result<()> {
    let oci = &registry.oci;
    let (path, _) = claim(oci, caller, repo, id)?;
    oci.sessions().remove(id);
    let _ = tokio::fs::remove_file(path).await;
    Ok(())
}

/// A monolithic upload (`POST ...?digest=` with the whole body).
pub async fn upload_whole(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    digest: &str,
    declared: Option<u64>,
    body: ByteStream,
) -> Result<Digest> {
    require_push(registry, caller, repo).await?;
    let digest = parse_upload_digest(Some(digest))?;
    crate::blobs::upload(registry, caller, &digest, declared, body).await?;
    registry
        .meta
        .link_oci_blob(repo.name.as_str(), &digest)
        .await?;
    Ok(digest)
}

/// Mounts a blob from another repository the caller can read; `false` when it cannot be
/// mounted (the client then uploads it, as the spec says).
pub async fn mount(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    from: &str,
    digest: &str,
) -> Result<Option<Digest>> {
    require_push(registry, caller, repo).await?;
    let Ok(source) = repository(registry, &caller.viewer(), from).await else {
        return Ok(None);
    };
    let Ok((digest, _)) = blob_size(registry, &source, digest).await else {
        return Ok(None);
    };
    registry
        .meta
        .link_oci_blob(repo.name.as_str(), &digest)
        .await?;
    Ok(Some(digest))
}

/// Unlinks a blob from a repository (the bytes stay while anything else holds them).
pub async fn delete_blob(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    digest: &str,
) -> Result<()> {
    require_delete(registry, caller, repo).await?;
    // An unknown blob is still BLOB_UNKNOWN; a held one cannot be deleted alone.
    blob_size(registry, repo, digest).await?;
    Err(OciError::new(
        ErrorCode::Unsupported,
        "blobs are shared by content and removed by garbage collection once nothing refers to \
         them; delete the manifests that use this one",
    ))
}

async fn require_delete(registry: &Registry, caller: &Caller, repo: &Repo) -> Result<()> {
    if !registry.oci.settings.deletes {
        return Err(OciError::new(
            ErrorCode::Unsupported,
            "deletes are switched off on this registry ([oci] deletes = false)",
        ));
    }
    require_push(registry, caller, repo).await
}

/// A manifest pushed: what to answer with.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// Stores a pushed manifest under `reference` (a tag, or its own digest).
pub async fn put_manifest(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    reference: &str,
    content_type: Option<&str>,
    bytes: Bytes,
) -> Result<Pushed> {
    require_push(registry, caller, repo).await?;
    let reference =
        Reference::parse(reference).map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e.0))?;
    let checked = oci::check_manifest(&bytes, content_type)
        .map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e.0))?;
    let digest = Digest::of(&bytes);
    let tag = match reference {
        Reference::Digest(d) if d != digest => {
            return Err(OciError::new(
                ErrorCode::DigestInvalid,
                format!("the manifest's bytes hash to {digest}, not {d}"),
            ));
        }
        Reference::Digest(_) => None,
        Reference::Tag(tag) => {
            if repo.plugin.is_some() && semver::Version::parse(&tag.replace('_', "+")).is_ok() {
                return Err(OciError::new(
                    ErrorCode::Denied,
                    format!(
                        "tag {tag} is a version number, and version tags in a plugin's repository \
                         belong to its releases; push under another tag, or publish the release"
                    ),
                ));
            }
            Some(tag)
        }
    };
    for blob in &checked.blobs {
        if !registry
            .meta
            .oci_blob_linked(repo.name.as_str(), repo.plugin(), blob)
            .await?
        {
            return Err(OciError::new(
                ErrorCode::ManifestBlobUnknown,
                format!(
                    "the manifest refers to blob {blob}, which {} does not hold; push it first",
                    repo.name
                ),
            ));
        }
    }
    for child in &checked.manifests {
        let held = registry
            .meta
            .oci_manifest(repo.name.as_str(), child)
            .await?
            .is_some_and(|m| !m.removed);
        if !held {
            return Err(OciError::new(
                ErrorCode::ManifestBlobUnknown,
                format!(
                    "the index refers to manifest {child}, which {} does not hold; push it first",
                    repo.name
                ),
            ));
        }
    }
    let size = bytes.len() as u64;
    let body: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(bytes) }));
    registry
        .blobs
        .put(&digest, body, oci::MAX_MANIFEST_BYTES as u64)
        .await?;
    registry
        .meta
        .record_blob(&digest, size, caller.user.id)
        .await?;
    registry
        .meta
        .put_oci_manifest(NewOciManifest {
            repository: repo.name.as_str().to_owned(),
            digest,
            media_type: checked.media_type,
            artifact_type: checked.artifact_type,
            subject: checked.subject,
            size,
            annotations: checked.annotations,
            kind: OciKind::Pushed,
            version_id: None,
            verification_id: None,
            pushed_by: Some(caller.user.id),
            tag,
            blobs: Vec::new(),
            actor: Some(caller.user.username.clone()),
        })
        .await
        .map_err(|e| match e {
            agora_store::StoreError::Conflict(m) => OciError::new(ErrorCode::Denied, m),
            other => other.into(),
        })?;
    Ok(Pushed {
        digest,
        subject: checked.subject,
    })
}

/// Deletes a pushed manifest (by digest) or a tag.
pub async fn delete_manifest(
    registry: &Registry,
    caller: &Caller,
    repo: &Repo,
    reference: &str,
) -> Result<()> {
    require_delete(registry, caller, repo).await?;
    let reference =
        Reference::parse(reference).map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e.0))?;
    let actor = &caller.user.username;
    let name = repo.name.as_str();
    let release_owned = |what: String| {
        OciError::new(
            ErrorCode::Denied,
            format!(
                "{what} belongs to a release; yank the release or take it down instead (`agora yank`, `agora takedown`)"
            ),
        )
    };
    match reference {
        Reference::Tag(tag) => {
            if let Some(digest) = registry.meta.oci_tag(name, &tag).await?
                && let Some(m) = registry.meta.oci_manifest(name, &digest).await?
                && m.kind != OciKind::Pushed
            {
                return Err(release_owned(format!("tag {tag}")));
            }
            if registry.meta.delete_oci_tag(name, &tag, actor).await? {
                Ok(())
            } else {
                Err(OciError::new(
                    ErrorCode::ManifestUnknown,
                    format!("tag {tag} is not in {name}"),
                ))
            }
        }
        Reference::Digest(digest) => {
            match registry.meta.oci_manifest(name, &digest).await? {
                Some(m) if m.kind != OciKind::Pushed => {
                    return Err(release_owned(format!("manifest {digest}")));
                }
                None => {
                    return Err(OciError::new(
                        ErrorCode::ManifestUnknown,
                        format!("manifest {digest} is not in {name}"),
                    ));
                }
                Some(_) => {}
            }
            registry
                .meta
                .delete_oci_manifest(name, &digest, actor)
                .await?;
            Ok(())
        }
    }
}

/// Writes every missing release artifact and verification referrer; returns how many
/// manifests it wrote. Safe to run on several replicas at once (what it writes is
/// deterministic and idempotent).
pub async fn catch_up(registry: &Registry) -> Result<usize> {
    let mut written = 0;
    let mut after = 0;
    loop {
        let pending = registry
            .meta
            .oci_pending_releases(after, CATCH_UP_BATCH)
            .await?;
        let Some(last) = pending.last() else { break };
        after = last.version_id;
        for p in &pending {
            written += write_release(registry, p).await?;
        }
    }
    let mut after = 0;
    loop {
        let pending = registry
            .meta
            .oci_pending_runs(after, None, CATCH_UP_BATCH)
            .await?;
        let Some(last) = pending.last() else { break };
        after = last.run.as_ref().map_or(after, |r| r.id);
        for p in &pending {
            written += write_run(registry, p).await?;
        }
    }
    Ok(written)
}

/// Writes the OCI artifacts of one release (after its publish) and of its verification
/// runs; failures are logged, never the publish's or the run's.
pub async fn after_release(
    registry: &Registry,
    version_id: i64,
    publisher: &str,
    name: &str,
    version: &str,
) {
    let pending = OciPending {
        version_id,
        publisher: publisher.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        run: None,
    };
    let result = async {
        // After a verification the artifact is usually there already: only its new run
        // is written then.
        if release_manifest_of(registry, &pending).await?.is_none() {
            write_release(registry, &pending).await?;
        }
        for run in registry
            .meta
            .oci_pending_runs(0, Some(version_id), CATCH_UP_BATCH)
            .await?
        {
            write_run(registry, &run).await?;
        }
        Ok::<_, OciError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(release = %format!("{publisher}/{name}@{version}"), error = %e,
            "the release's OCI artifact was not written; `agora serve` writes it at its next start");
    }
}

/// Writes the referrer of a verification run just recorded on `release`
/// (`publisher/name@version`), and the release's artifact if it was missing.
pub async fn after_verification(registry: &Registry, release: &str) {
    let Some(((publisher, name), version)) = release
        .split_once('@')
        .and_then(|(plugin, version)| Some((plugin.split_once('/')?, version)))
    else {
        return;
    };
    let version_id = match registry.meta.plugin(publisher, name).await {
        Ok(Some(plugin)) => match registry.meta.version(plugin.id, version).await {
            Ok(Some(v)) => v.id,
            _ => return,
        },
        _ => return,
    };
    after_release(registry, version_id, publisher, name, version).await;
}

/// The release's own artifact and its signature referrer; returns how many were new.
async fn write_release(registry: &Registry, p: &OciPending) -> Result<usize> {
    let Some(plugin) = registry.meta.plugin(&p.publisher, &p.name).await? else {
        return Ok(0);
    };
    let Some(version) = registry.meta.version(plugin.id, &p.version).await? else {
        return Ok(0);
    };
    let artifacts = registry.meta.artifacts(version.id).await?;
    let Some(manifest_file) = artifacts
        .iter()
        .find(|a| a.role == agora_core::manifest::ArtifactRole::Manifest)
    else {
        return Err(RegistryError::internal(
            "a release has no manifest artifact",
            format!("{}/{}@{}", p.publisher, p.name, p.version),
        )
        .into());
    };
    let repository = format!("{}/{}", p.publisher, p.name);
    let published = crate::time::rfc3339(version.published_at);
    let facts = oci::ReleaseFacts {
        plugin: &repository,
        version: &version.version,
        published: &published,
        manifest: (&manifest_file.digest, manifest_file.size as u64),
        files: artifacts
            .iter()
            .filter(|a| a.role != agora_core::manifest::ArtifactRole::Manifest)
            .map(|a| oci::ReleaseFile {
                path: &a.path,
                role: a.role.as_str(),
                digest: &a.digest,
                size: a.size as u64,
            })
            .collect(),
    };
    let bytes = oci::release_manifest(&facts);
    let release = store_bytes(registry, bytes).await?;
    let subject = Descriptor::new(oci::IMAGE_MANIFEST, &release.0, release.1);
    let mut written = 0;
    // The signature first: a client that sees the release sees its signature too.
    if let Some(envelope) = &version.signature {
        let layer = store_bytes(registry, envelope.as_bytes().to_vec()).await?;
        let empty = store_bytes(registry, oci::EMPTY_JSON_BYTES.to_vec()).await?;
        let annotations = BTreeMap::from([(oci::CREATED.to_owned(), published.clone())]);
        let bytes = oci::referrer_manifest(
            oci::SIGNATURE_ARTIFACT,
            subject.clone(),
            (&layer.0, layer.1),
            annotations.clone(),
        );
        let sig = store_bytes(registry, bytes).await?;
        registry
            .meta
            .put_oci_manifest(NewOciManifest {
                repository: repository.clone(),
                digest: sig.0,
                media_type: oci::IMAGE_MANIFEST.to_owned(),
                artifact_type: Some(oci::SIGNATURE_ARTIFACT.to_owned()),
                subject: Some(release.0),
                size: sig.1,
                annotations: serde_json::to_string(&annotations).ok(),
                kind: OciKind::Signature,
                version_id: Some(version.id),
                verification_id: None,
                pushed_by: None,
                tag: None,
                blobs: vec![layer.0, empty.0],
                actor: None,
            })
            .await?;
        written += 1;
    }
    registry
        .meta
        .put_oci_manifest(NewOciManifest {
            repository: repository.clone(),
            digest: release.0,
            media_type: oci::IMAGE_MANIFEST.to_owned(),
            artifact_type: Some(oci::RELEASE_ARTIFACT.to_owned()),
            subject: None,
            size: release.1,
            annotations: None,
            kind: OciKind::Release,
            version_id: Some(version.id),
            verification_id: None,
            pushed_by: None,
            tag: Some(oci::version_tag(&version.version)),
            blobs: Vec::new(),
            actor: None,
        })
        .await?;
    Ok(written + 1)
}

/// The referrer of one verification run.
async fn write_run(registry: &Registry, p: &OciPending) -> Result<usize> {
    let Some(run) = &p.run else { return Ok(0) };
    let repository = format!("{}/{}", p.publisher, p.name);
    let Some(release) = release_manifest_of(registry, p).await? else {
        // The release's artifact comes first; the run follows on the next catch-up.
        return Ok(0);
    };
    let layer = store_bytes(registry, run.report.as_bytes().to_vec()).await?;
    let empty = store_bytes(registry, oci::EMPTY_JSON_BYTES.to_vec()).await?;
    let annotations = BTreeMap::from([
        (
            oci::CREATED.to_owned(),
            crate::time::rfc3339(run.checked_at),
        ),
        (oci::OUTCOME.to_owned(), run.outcome.clone()),
    ]);
    let subject = Descriptor::new(oci::IMAGE_MANIFEST, &release.digest, release.size);
    let bytes = oci::referrer_manifest(
        oci::VERIFICATION_ARTIFACT,
        subject,
        (&layer.0, layer.1),
        annotations.clone(),
    );
    let manifest = store_bytes(registry, bytes).await?;
    registry
        .meta
        .put_oci_manifest(NewOciManifest {
            repository,
            digest: manifest.0,
            media_type: oci::IMAGE_MANIFEST.to_owned(),
            artifact_type: Some(oci::VERIFICATION_ARTIFACT.to_owned()),
            subject: Some(release.digest),
            size: manifest.1,
            annotations: serde_json::to_string(&annotations).ok(),
            kind: OciKind::Verification,
            version_id: Some(p.version_id),
            verification_id: Some(run.id),
            pushed_by: None,
            tag: None,
            blobs: vec![layer.0, empty.0],
            actor: None,
        })
        .await?;
    Ok(1)
}

/// The release's own artifact, if it is written: its version tag pointing at a
/// generated release manifest (a tag pushed before the plugin existed does not count).
async fn release_manifest_of(
    registry: &Registry,
    p: &OciPending,
) -> Result<Option<OciManifestRecord>> {
    let repository = format!("{}/{}", p.publisher, p.name);
    let Some(digest) = registry
        .meta
        .oci_tag(&repository, &oci::version_tag(&p.version))
        .await?
    else {
        return Ok(None);
    };
    Ok(registry
        .meta
        .oci_manifest(&repository, &digest)
        .await?
        .filter(|m| m.kind == OciKind::Release))
}

/// Stores bytes the registry wrote itself under their digest.
async fn store_bytes(registry: &Registry, bytes: Vec<u8>) -> Result<(Digest, u64)> {
    let digest = Digest::of(&bytes);
    let size = bytes.len() as u64;
    let body: ByteStream = Box::pin(futures_util::stream::once(
        async move { Ok(Bytes::from(bytes)) },
    ));
    registry.blobs.put(&digest, body, size).await?;
    Ok((digest, size))
}
