//! Publishing a release: the manifest is valid and names the plugin asked for, the caller
//! may publish for its publisher, every artifact is a file the manifest names and a blob
//! the caller uploaded (or can read already), the signature is by an active key of the
//! publisher over exactly these files; then the release, its log entry (naming the
//! publisher's key history head, sealed if the plugin is private) and everything else are
//! written in one transaction.

use std::collections::HashSet;

use agora_core::api::{InclusionProofResponse, PublishRequest};
use agora_core::manifest::{ArtifactRole, MANIFEST_FILE, relative_path_problem};
use agora_core::{Digest, FieldError, Manifest, ManifestError, PluginRef, ProblemKind};
use agora_store::{ArtifactRecord, LogWriter, NewRelease, VersionRecord};
use agora_trust::LogEntry;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result};
use crate::log;

/// Largest signature envelope accepted.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// A release as stored, with its files and its proven log entry.
#[derive(Debug, Clone)]
pub struct Published {
    pub version: VersionRecord,
    pub manifest_digest: Digest,
    /// Every file of the release, `plugin.yaml` included.
    pub artifacts: Vec<ArtifactRecord>,
    pub log: InclusionProofResponse,
    /// The manifest's bytes were stored as a new blob.
    pub manifest_stored: Option<u64>,
}

/// Publishes a new version of `target`; every artifact must be uploaded first.
pub async fn publish(
    registry: &Registry,
    caller: &Caller,
    target: &PluginRef,
    request: PublishRequest,
) -> Result<Published> {
    let manifest = Manifest::from_yaml_to_publish(&request.manifest).map_err(|e| match e {
        ManifestError::Invalid(errors) => {
            RegistryError::invalid("Invalid manifest", prefix_fields(errors))
        }
        other => RegistryError::field(
            "manifest",
            other.to_string(),
            Some("a plugin.yaml document; see /api/v1/schema/manifest.json"),
        ),
    })?;
    let wanted = target.clone();
    if manifest.plugin_ref() != wanted {
        return Err(RegistryError::field(
            "manifest.publisher",
            format!(
                "the manifest describes {} but the request is for {wanted}",
                manifest.plugin_ref()
            ),
            Some(&wanted.to_string()),
        ));
    }
    let publisher = crate::publishers::get(registry, target.publisher.as_str()).await?;
    caller.require_publish(&publisher)?;
    let label = format!("{wanted}@{}", manifest.version);
    if let Some(plugin) = registry
        .meta
        .plugin(publisher.name.as_str(), target.name.as_str())
        .await?
        && registry
            .meta
            .version(plugin.id, &manifest.version.to_string())
            .await?
            .is_some()
    {
        return Err(RegistryError::conflict(format!(
            "{label} is already published; a published version never changes, publish a new version instead"
        )));
    }
    let signature = match &request.signature {
        Some(s) => {
            let text = s.to_string();
            if text.len() > MAX_SIGNATURE_BYTES {
                return Err(RegistryError::field(
                    "signature",
                    format!("{} bytes", text.len()),
                    Some("at most 65536 bytes"),
                ));
            }
            Some(text)
        }
        None => None,
    };
    let mut artifacts = check_artifacts(registry, caller, &manifest, &request).await?;

    // The manifest's exact bytes are a blob too: its digest is what a signature covers.
    let manifest_bytes = Bytes::from(request.manifest.clone().into_bytes());
    let manifest_digest = Digest::of(&manifest_bytes);
    let signer_key = verify_signature(
        registry,
        &publisher,
        &manifest,
        &request,
        &artifacts,
        manifest_digest,
    )
    .await?;
    let size = manifest_bytes.len() as u64;
    let body = futures_util::stream::once(async move { Ok(manifest_bytes) }).boxed();
    let (outcome, _) = registry.blobs.put(&manifest_digest, body, size).await?;
    let manifest_stored = (outcome == agora_store::PutOutcome::Created).then_some(size);
    registry
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
                key_head: log::key_head(context),
                at_ms,
            };
            log::record(&entry, context.private)
        })
    };
    let version = registry
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
            // Queued with the release: a crash right after the commit (before, this was
            // queued afterwards) would leave a release no worker ever verifies.
            jobs: vec![crate::verification::job(
                &wanted,
                &manifest.version.to_string(),
            )],
        })
        .await?;
    tracing::info!(release = %label, by = %caller.user.username, "published");
    crate::oci::after_release(
        registry,
        version.id,
        &publisher.name,
        manifest.name.as_str(),
        &version.version,
    )
    .await;
    let log_index = version.log_index.ok_or_else(|| {
        RegistryError::internal("a release was stored without its log entry", &label)
    })?;
    let log = registry
        .log
        .prove_inclusion(registry.meta.as_ref(), log_index as u64, &caller.viewer())
        .await?;
    crate::webhooks::release_published(registry, &wanted, &version.version).await;
    Ok(Published {
        version,
        manifest_digest,
        artifacts,
        log,
        manifest_stored,
    })
}

/// Checks every artifact of a release against the manifest and the uploaded blobs. A
/// release may name only blobs the caller sent the bytes of, or can read already: knowing
/// a digest (the log and HEAD show digests) never makes someone else's private blob part
/// of a release, and so never public.
async fn check_artifacts(
    registry: &Registry,
    caller: &Caller,
    manifest: &Manifest,
    request: &PublishRequest,
) -> Result<Vec<ArtifactRecord>> {
    let viewer = caller.viewer();
    let mut errors = Vec::new();
    if request.artifacts.len() > registry.limits.max_artifacts {
        errors.push(FieldError::new(
            "artifacts",
            format!("{} artifacts", request.artifacts.len()),
            Some(&format!("at most {}", registry.limits.max_artifacts)),
        ));
        return Err(RegistryError::invalid("Invalid release", errors));
    }
    let mut records = Vec::with_capacity(request.artifacts.len());
    let mut seen = HashSet::new();
    for (i, a) in request.artifacts.iter().enumerate() {
        let field = format!("artifacts[{i}]");
        if let Err(e) = agora_core::text::check(
            &format!("{field}.path"),
            &a.path,
            agora_core::text::Lines::Single,
        ) {
            errors.push(e);
            continue;
        }
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
        let usable = match registry
            .meta
            .blob_uploaded_by(&a.digest, caller.user.id)
            .await?
        {
            Some(size) => Some(size),
            None if registry.meta.blob_readable(&a.digest, &viewer).await? => {
                registry.meta.blob_size(&a.digest).await?
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
        Err(RegistryError::invalid("Invalid release", errors))
    }
}

/// The release must be signed by an active key of its publisher, over exactly these files.
/// Returns the signing key's id.
async fn verify_signature(
    registry: &Registry,
    publisher: &agora_store::PublisherRecord,
    manifest: &Manifest,
    request: &PublishRequest,
    artifacts: &[ArtifactRecord],
    manifest_digest: Digest,
) -> Result<String> {
    let invalid = |detail: String| {
        RegistryError::invalid(
            "Invalid signature",
            vec![FieldError::new(
                "signature",
                detail,
                Some(
                    "a DSSE envelope signed with `agora publish --key KEY` by a key registered for the publisher",
                ),
            )],
        )
        .as_kind(ProblemKind::InvalidSignature)
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
    for k in registry
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
    let claim = agora_trust::ReleaseClaim::new(
        &publisher.name,
        manifest.name.as_str(),
        manifest.version.to_string(),
        manifest_digest,
        artifacts.iter().map(|a| (a.path.clone(), a.digest)),
    );
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
