//! Versions: history, details, publishing and lifecycle changes.

use std::collections::HashSet;

use agora_core::api::{
    LifecycleRequest, PublishRequest, PublishResponse, VersionDetail, VersionList,
};
use agora_core::manifest::{ArtifactRole, FieldError, MANIFEST_FILE, relative_path_problem};
use agora_core::{Digest, Lifecycle, Manifest, ManifestError, PluginRef};
use agora_store::{ArtifactRecord, LifecycleChange, LogWriter, NewRelease, PutOutcome};
use agora_trust::LogEntry;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::plugins::visible_plugin;
use super::{convert, publishers::publisher_or_404};
use crate::auth::{Caller, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiJson, PluginPath, VersionPath};
use crate::{AppState, metrics, transparency};

/// Largest signature envelope accepted.
const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// The version history of a plugin, newest first.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = VersionList), (status = 404, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: PluginPath,
) -> Result<Json<VersionList>, ApiError> {
    let plugin = visible_plugin(
        &state,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let versions = state.meta.versions(plugin.id).await?;
    Ok(Json(VersionList {
        publisher: plugin.publisher,
        name: plugin.name,
        versions: versions.iter().map(convert::version_summary).collect(),
    }))
}

/// One version with its manifest, artifacts and signature.
#[utoipa::path(get, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = VersionDetail), (status = 404, body = agora_core::api::Problem)))]
pub async fn detail(
    State(state): State<AppState>,
    caller: MaybeCaller,
    path: VersionPath,
) -> Result<Response, ApiError> {
    let key = cache_key(
        path.publisher.as_str(),
        path.name.as_str(),
        &path.version.to_string(),
    );
    let anonymous = caller.0.is_none();
    if anonymous && let Some(body) = state.cache.get(&key) {
        return Ok(json_bytes(body));
    }
    let generation = state.cache.generation();
    let plugin = visible_plugin(
        &state,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let v = version_or_404(&state, &plugin, &path.version.to_string()).await?;
    let artifacts = state.meta.artifacts(v.id).await?;
    let detail = convert::version_detail(&plugin, v, artifacts)?;
    let body = Bytes::from(
        serde_json::to_vec(&detail)
            .map_err(|e| ApiError::internal("could not render a version", e))?,
    );
    if anonymous && plugin.visibility == agora_core::Visibility::Public {
        state.cache.put(key, body.clone(), generation);
    }
    Ok(json_bytes(body))
}

/// The version of a plugin the caller may see, or a 404 naming it.
async fn version_or_404(
    state: &AppState,
    plugin: &agora_store::PluginRecord,
    version: &str,
) -> Result<agora_store::VersionRecord, ApiError> {
    state
        .meta
        .version(plugin.id, version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "version {version} of {}/{} not found",
                plugin.publisher, plugin.name
            ))
        })
}

/// Key of a version's rendered detail in the response cache.
pub fn cache_key(publisher: &str, name: &str, version: &str) -> String {
    format!("{publisher}/{name}@{version}")
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Checks every artifact of a release against the manifest and the uploaded blobs. A
/// release may name only blobs the caller sent the bytes of, or can read already: knowing
/// a digest (the log and HEAD show digests) never makes someone else's private blob part
/// of a release, and so never public.
async fn check_artifacts(
    state: &AppState,
    caller: &Caller,
    manifest: &Manifest,
    request: &PublishRequest,
) -> Result<Vec<ArtifactRecord>, ApiError> {
    let viewer = caller.viewer();
    let mut errors = Vec::new();
    if request.artifacts.len() > state.limits.max_artifacts {
        errors.push(FieldError::new(
            "artifacts",
            format!("{} artifacts", request.artifacts.len()),
            Some(&format!("at most {}", state.limits.max_artifacts)),
        ));
        return Err(ApiError::invalid("Invalid release", errors));
    }
    let mut records = Vec::with_capacity(request.artifacts.len());
    let mut seen = HashSet::new();
    for (i, a) in request.artifacts.iter().enumerate() {
        let field = format!("artifacts[{i}]");
        if let Some(problem) = relative_path_problem(&a.path) {
            errors.push(FieldError::new(
                format!("{field}.path"),
                problem,
                Some("a relative path inside the plugin directory"),
            ));
            continue;
        }
        if !seen.insert(a.path.as_str()) {
            errors.push(FieldError::new(
                format!("{field}.path"),
                format!("{} is listed twice", a.path),
                None,
            ));
            continue;
        }
        let role = match manifest.role_of(&a.path) {
            Some(ArtifactRole::Manifest) => {
                errors.push(FieldError::new(
                    format!("{field}.path"),
                    "plugin.yaml travels in the manifest field, not as an artifact",
                    None,
                ));
                continue;
            }
            Some(role) => role,
            None => {
                errors.push(FieldError::new(
                    format!("{field}.path"),
                    format!("{} is not part of the release the manifest describes", a.path),
                    Some("the runtime module or binaries, README, CHANGELOG, LICENSE or the files named by readme, changelog, license_file, sbom"),
                ));
                continue;
            }
        };
        let usable = match state
            .meta
            .blob_uploaded_by(&a.digest, caller.user.id)
            .await?
        {
            Some(size) => Some(size),
            None if state.meta.blob_readable(&a.digest, &viewer).await? => {
                state.meta.blob_size(&a.digest).await?
            }
            None => None,
        };
        match usable {
            None => errors.push(FieldError::new(
                format!("{field}.digest"),
                format!("blob {} has not been uploaded by you", a.digest),
                Some(&format!(
                    "upload it first with PUT /api/v1/blobs/{}",
                    a.digest
                )),
            )),
            Some(size) if size != a.size => errors.push(FieldError::new(
                format!("{field}.size"),
                format!("declared {} bytes but the uploaded blob has {size}", a.size),
                None,
            )),
            Some(size) => records.push(ArtifactRecord {
                path: a.path.clone(),
                role,
                digest: a.digest,
                size: size as i64,
            }),
        }
    }
    for (path, role) in manifest.required_files() {
        if !request.artifacts.iter().any(|a| a.path == path) {
            errors.push(FieldError::new(
                "artifacts",
                format!(
                    "{path} ({}) is named by the manifest but missing from the release",
                    role.as_str()
                ),
                None,
            ));
        }
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(ApiError::invalid("Invalid release", errors))
    }
}

/// Publish a new version. Upload every artifact with `PUT /api/v1/blobs/{digest}` first.
#[utoipa::path(post, path = "/api/v1/plugins/{publisher}/{name}/versions", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path)), request_body = PublishRequest,
    security(("token" = [])),
    responses(
        (status = 201, body = PublishResponse),
        (status = 403, body = agora_core::api::Problem),
        (status = 409, description = "The version exists already", body = agora_core::api::Problem),
        (status = 422, description = "The manifest or an artifact is invalid", body = agora_core::api::Problem)
    ))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    path: PluginPath,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    let manifest = Manifest::from_yaml(&request.manifest).map_err(|e| match e {
        ManifestError::Invalid(errors) => {
            ApiError::invalid("Invalid manifest", prefix_fields(errors))
        }
        other => ApiError::field(
            "manifest",
            other.to_string(),
            Some("a plugin.yaml document; see /api/v1/schema/manifest.json"),
        ),
    })?;
    let wanted = PluginRef {
        publisher: path.publisher.clone(),
        name: path.name.clone(),
    };
    if manifest.plugin_ref() != wanted {
        return Err(ApiError::field(
            "manifest.publisher",
            format!(
                "the manifest describes {} but the request is for {wanted}",
                manifest.plugin_ref()
            ),
            Some(&wanted.to_string()),
        ));
    }
    let publisher = publisher_or_404(&state, path.publisher.as_str()).await?;
    caller.require_publish(&publisher)?;
    let target = format!("{wanted}@{}", manifest.version);
    if let Some(plugin) = state
        .meta
        .plugin(publisher.name.as_str(), path.name.as_str())
        .await?
        && state
            .meta
            .version(plugin.id, &manifest.version.to_string())
            .await?
            .is_some()
    {
        return Err(ApiError::conflict(format!(
            "{target} is already published; a published version never changes, publish a new version instead"
        )));
    }
    let signature = match &request.signature {
        Some(s) => {
            let text = s.to_string();
            if text.len() > MAX_SIGNATURE_BYTES {
                return Err(ApiError::field(
                    "signature",
                    format!("{} bytes", text.len()),
                    Some("at most 65536 bytes"),
                ));
            }
            Some(text)
        }
        None => None,
    };
    let mut artifacts = check_artifacts(&state, &caller, &manifest, &request).await?;

    // The manifest's exact bytes are a blob too: its digest is what a signature covers.
    let manifest_bytes = Bytes::from(request.manifest.clone().into_bytes());
    let manifest_digest = Digest::of(&manifest_bytes);
    let signer_key = verify_signature(
        &state,
        &publisher,
        &manifest,
        &request,
        &artifacts,
        manifest_digest,
    )
    .await?;
    let size = manifest_bytes.len() as u64;
    let body = futures_util::stream::once(async move { Ok(manifest_bytes) }).boxed();
    let (outcome, _) = state.blobs.put(&manifest_digest, body, size).await?;
    if outcome == PutOutcome::Created {
        metrics::uploaded(size);
    }
    state
        .meta
        .record_blob(&manifest_digest, size, caller.user.id)
        .await?;
    artifacts.push(ArtifactRecord {
        path: MANIFEST_FILE.into(),
        role: ArtifactRole::Manifest,
        digest: manifest_digest,
        size: size as i64,
    });

    let envelope_digest = Digest::of(signature.as_deref().unwrap_or_default().as_bytes());
    let entry = {
        let (publisher, name, version) = (
            publisher.name.clone(),
            manifest.name.to_string(),
            manifest.version.to_string(),
        );
        let signer_key = signer_key.clone();
        let at_ms = agora_store::now_ms();
        // Built by the store under the log's lock: the release names the key event that
        // is the head of the publisher's key history at that moment, and is sealed if
        // the plugin is private once this release is in.
        LogWriter::new(move |context| {
            let entry = LogEntry::Release {
                publisher: publisher.clone(),
                name: name.clone(),
                version: version.clone(),
                manifest_digest,
                envelope_digest,
                signer_key: signer_key.clone(),
                key_head: transparency::key_head(context),
                at_ms,
            };
            transparency::record(&entry, context.private)
        })
    };
    let version = state
        .meta
        .publish(NewRelease {
            publisher_id: publisher.id,
            manifest: manifest.clone(),
            manifest_digest,
            signature,
            signer_key: Some(signer_key),
            log_entry: Some(entry),
            artifacts: artifacts.clone(),
            published_by: caller.user.id,
            actor: caller.user.username.clone(),
        })
        .await?;
    // A release can make the plugin private: no cached public answer may outlive that.
    state
        .cache
        .invalidate(&cache_key(&publisher.name, path.name.as_str(), ""));
    metrics::published();
    tracing::info!(release = %target, by = %caller.user.username, "published");
    let location = format!(
        "/api/v1/plugins/{}/{}/versions/{}",
        publisher.name, path.name, version.version
    );
    let log_index = version
        .log_index
        .ok_or_else(|| ApiError::internal("a release was stored without its log entry", &target))?;
    let log = state
        .log
        .prove_inclusion(state.meta.as_ref(), log_index as u64, &caller.viewer())
        .await?;
    let body = PublishResponse {
        publisher: publisher.name,
        name: path.name.to_string(),
        version: version.version,
        manifest_digest,
        artifacts: artifacts.into_iter().map(convert::artifact).collect(),
        log,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The release must be signed by an active key of its publisher, over exactly these files.
/// Returns the signing key's id.
async fn verify_signature(
    state: &AppState,
    publisher: &agora_store::PublisherRecord,
    manifest: &Manifest,
    request: &PublishRequest,
    artifacts: &[ArtifactRecord],
    manifest_digest: Digest,
) -> Result<String, ApiError> {
    let invalid = |detail: String| {
        let mut e = ApiError::invalid(
            "Invalid signature",
            vec![FieldError::new(
                "signature",
                detail,
                Some(
                    "a DSSE envelope signed with `agora publish --key KEY` by a key registered for the publisher",
                ),
            )],
        );
        e.kind = "invalid-signature";
        e
    };
    let Some(raw) = &request.signature else {
        return Err(invalid(format!(
            "releases must be signed by a key of publisher {}; sign with `agora publish --key KEY` (make one with `agora keygen`, register it with `agora key add {} KEY.pub`)",
            publisher.name, publisher.name
        )));
    };
    let envelope: agora_trust::Envelope = serde_json::from_value(raw.clone())
        .map_err(|e| invalid(format!("not a DSSE envelope: {e}")))?;
    let mut keys = Vec::new();
    for k in state
        .meta
        .keys(publisher.id)
        .await?
        .into_iter()
        .filter(|k| k.revoked_at.is_none())
    {
        match agora_trust::PublicKey::parse(&k.public_key) {
            Ok(key) => keys.push(key),
            Err(e) => {
                tracing::error!(publisher = %publisher.name, key = %k.id, error = %e, "a stored key does not parse")
            }
        }
    }
    if keys.is_empty() {
        return Err(invalid(format!(
            "publisher {} has no active signing key; register one with `agora key add {} KEY.pub`",
            publisher.name, publisher.name
        )));
    }
    let mut files: std::collections::BTreeMap<String, Digest> = artifacts
        .iter()
        .map(|a| (a.path.clone(), a.digest))
        .collect();
    files.insert(MANIFEST_FILE.into(), manifest_digest);
    let claim = agora_trust::ReleaseClaim {
        publisher: publisher.name.clone(),
        name: manifest.name.to_string(),
        version: manifest.version.to_string(),
        files,
    };
    agora_trust::verify_release(&envelope, &keys, &claim).map_err(|e| invalid(e.to_string()))
}

fn prefix_fields(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|mut e| {
            e.field = if e.field.is_empty() {
                "manifest".into()
            } else {
                format!("manifest.{}", e.field)
            };
            e
        })
        .collect()
}

/// Change a version's lifecycle state: deprecate, mark insecure, yank, unyank (active),
/// or remove (administrators only; the bytes are deleted and a tombstone stays).
#[utoipa::path(patch, path = "/api/v1/plugins/{publisher}/{name}/versions/{version}", tag = "versions",
    params(("publisher" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    request_body = LifecycleRequest, security(("token" = [])),
    responses(
        (status = 200, body = VersionDetail),
        (status = 403, body = agora_core::api::Problem),
        (status = 404, body = agora_core::api::Problem),
        (status = 409, description = "The change is not allowed from the current state", body = agora_core::api::Problem)
    ))]
pub async fn change_lifecycle(
    State(state): State<AppState>,
    caller: Caller,
    path: VersionPath,
    ApiJson(request): ApiJson<LifecycleRequest>,
) -> Result<Json<VersionDetail>, ApiError> {
    let plugin = visible_plugin(
        &state,
        &caller.viewer(),
        path.publisher.as_str(),
        path.name.as_str(),
    )
    .await?;
    let publisher = publisher_or_404(&state, &plugin.publisher).await?;
    caller.require_publish(&publisher)?;
    let version = path.version.to_string();
    let current = version_or_404(&state, &plugin, &version).await?;
    if let Some(reason) = &request.reason
        && reason.chars().count() > 1000
    {
        return Err(ApiError::field(
            "reason",
            "is longer than 1000 characters",
            Some("at most 1000 characters"),
        ));
    }
    if let Some(replacement) = &request.replacement {
        replacement
            .parse::<PluginRef>()
            .map_err(|e| ApiError::field("replacement", e.to_string(), Some("publisher/name")))?;
    }
    current
        .state
        .check_transition(request.state, caller.is_admin(), request.reason.as_deref())
        .map_err(|e| match e {
            agora_core::LifecycleError::RemoveNeedsAdmin => ApiError::forbidden(e.to_string()),
            agora_core::LifecycleError::ReasonRequired(_) => ApiError::field(
                "reason",
                e.to_string(),
                Some("a short explanation for users"),
            ),
            other => ApiError::conflict(other.to_string()),
        })?;
    let entry = transparency::writer(LogEntry::Lifecycle {
        publisher: plugin.publisher.clone(),
        name: plugin.name.clone(),
        version: version.clone(),
        state: request.state.as_str().to_owned(),
        reason: request.reason.clone(),
        at_ms: agora_store::now_ms(),
    });
    let (updated, orphaned) = state
        .meta
        .set_lifecycle(LifecycleChange {
            version_id: current.id,
            state: request.state,
            reason: request.reason,
            replacement: if request.state == Lifecycle::Deprecated {
                request.replacement
            } else {
                None
            },
            actor: caller.user.username.clone(),
            log_entry: Some(entry),
        })
        .await?;
    state
        .cache
        .invalidate(&cache_key(&plugin.publisher, &plugin.name, &version));
    // Metadata first, bytes after: a crash here leaves orphaned bytes, never dangling rows.
    for digest in orphaned {
        if let Err(e) = state.blobs.delete(&digest).await {
            tracing::warn!(%digest, error = %e, "could not delete the bytes of a removed version");
        }
    }
    let artifacts = state.meta.artifacts(updated.id).await?;
    Ok(Json(convert::version_detail(&plugin, updated, artifacts)?))
}
