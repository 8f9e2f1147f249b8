//! Records of the store → wire types of the API.

use agora_core::Manifest;
use agora_core::api::{
    Artifact, HiddenReview, PluginSummary, Review, VersionDetail, VersionSummary,
};
use agora_store::{ArtifactRecord, PluginRecord, ReviewRecord, VersionRecord};

use agora_registry::time::rfc3339;

use crate::error::ApiError;

pub fn plugin_summary(p: PluginRecord) -> PluginSummary {
    let rating = p.rating();
    PluginSummary {
        publisher: p.publisher,
        name: p.name,
        display_name: p.display_name,
        description: p.description,
        provider: p.provider,
        runtime: p.runtime,
        visibility: p.visibility,
        latest_version: p.latest_version,
        tags: p.tags,
        categories: p.categories,
        capabilities: p.capabilities,
        downloads: p.downloads.max(0) as u64,
        updated_at: rfc3339(p.updated_at),
        rating,
        rating_count: p.rating_count.max(0) as u64,
        verified_publisher: p.verified,
        verified_release: p.latest_verification
            == Some(agora_core::verification::Outcome::Verified),
    }
}

pub fn review(r: ReviewRecord) -> Review {
    let hidden = match (r.hidden_at, r.hidden_by, r.hidden_reason) {
        (Some(at), by, reason) => Some(HiddenReview {
            at: rfc3339(at),
            by: by.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
        }),
        _ => None,
    };
    Review {
        id: r.id,
        author: r.username,
        version: r.version,
        rating: r.rating.clamp(1, 5) as u8,
        body: r.body,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        hidden,
    }
}

pub fn version_summary(v: &VersionRecord) -> VersionSummary {
    VersionSummary {
        version: v.version.clone(),
        state: v.state,
        state_reason: v.state_reason.clone(),
        replacement: v.replacement.clone(),
        manifest_digest: v.manifest_digest,
        downloads: v.downloads.max(0) as u64,
        published_at: rfc3339(v.published_at),
    }
}

pub fn artifact(a: ArtifactRecord) -> Artifact {
    Artifact {
        path: a.path,
        role: a.role,
        digest: a.digest,
        size: a.size.max(0) as u64,
    }
}

pub fn version_detail(
    plugin: &PluginRecord,
    v: VersionRecord,
    artifacts: Vec<ArtifactRecord>,
) -> Result<VersionDetail, ApiError> {
    let manifest: Manifest = serde_json::from_str(&v.manifest)
        .map_err(|e| ApiError::internal("a stored manifest could not be read", e))?;
    let signature = match &v.signature {
        Some(s) => Some(
            serde_json::from_str(s)
                .map_err(|e| ApiError::internal("a stored signature could not be read", e))?,
        ),
        None => None,
    };
    Ok(VersionDetail {
        publisher: plugin.publisher.clone(),
        name: plugin.name.clone(),
        version: v.version,
        state: v.state,
        state_reason: v.state_reason,
        replacement: v.replacement,
        manifest_digest: v.manifest_digest,
        manifest,
        artifacts: artifacts.into_iter().map(artifact).collect(),
        signature,
        downloads: v.downloads.max(0) as u64,
        published_at: rfc3339(v.published_at),
        published_by: v.published_by,
        signer_key: v.signer_key,
        log_index: v.log_index.map(|i| i as u64),
    })
}
