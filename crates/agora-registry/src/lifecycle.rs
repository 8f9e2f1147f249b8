//! A release's lifecycle (deprecate, mark insecure, yank, unyank, remove) and a plugin's
//! visibility: who may change them, the transitions allowed, and their log entries.

use agora_core::api::LifecycleRequest;
use agora_core::{Lifecycle, LifecycleError, PluginRef, Visibility};
use agora_store::{ArtifactRecord, LifecycleChange, PluginRecord, VersionRecord, now_ms};
use agora_trust::LogEntry;

use crate::Registry;
use crate::caller::Caller;
use crate::catalog::{version, visible_plugin};
use crate::error::{RegistryError, Result, one_line_opt};
use crate::log;

/// Longest reason for a lifecycle change.
pub const MAX_REASON_CHARS: usize = 1000;

/// Changes a version's lifecycle state: members with a publish right deprecate, mark
/// insecure, yank and unyank; administrators also remove (the bytes are deleted after the
/// change commits, and a tombstone stays). Returns the plugin, the version as it is now and
/// its artifacts.
pub async fn change(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
    version_name: &str,
    request: LifecycleRequest,
) -> Result<(PluginRecord, VersionRecord, Vec<ArtifactRecord>)> {
    one_line_opt("reason", request.reason.as_deref())?;
    one_line_opt("replacement", request.replacement.as_deref())?;
    let plugin = visible_plugin(registry, &caller.viewer(), publisher, name).await?;
    let owner = crate::publishers::get(registry, &plugin.publisher).await?;
    caller.require_publish(&owner)?;
    let current = version(registry, &plugin, version_name).await?;
    if let Some(reason) = &request.reason
        && reason.chars().count() > MAX_REASON_CHARS
    {
        return Err(RegistryError::field(
            "reason",
            "is longer than 1000 characters",
            Some("at most 1000 characters"),
        ));
    }
    if let Some(replacement) = &request.replacement {
        replacement.parse::<PluginRef>().map_err(|e| {
            RegistryError::field("replacement", e.to_string(), Some("publisher/name"))
        })?;
    }
    current
        .state
        .check_transition(request.state, caller.is_admin(), request.reason.as_deref())
        .map_err(|e| match e {
            LifecycleError::RemoveNeedsAdmin => RegistryError::forbidden(e.to_string()),
            LifecycleError::ReasonRequired(_) => RegistryError::field(
                "reason",
                e.to_string(),
                Some("a short explanation for users"),
            ),
            other => RegistryError::conflict(other.to_string()),
        })?;
    let entry = log::writer(LogEntry::Lifecycle {
        publisher: plugin.publisher.clone(),
        name: plugin.name.clone(),
        version: version_name.to_owned(),
        state: request.state.as_str().to_owned(),
        reason: request.reason.clone(),
        at_ms: now_ms(),
    });
    let (updated, orphaned) = registry
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
    // Metadata first, bytes after: a crash here leaves orphaned bytes, never dangling rows.
    for digest in orphaned {
        if let Err(e) = registry.blobs.delete(&digest).await {
            tracing::warn!(%digest, error = %e, "could not delete the bytes of a removed version");
        }
    }
    crate::webhooks::lifecycle_changed(
        registry,
        &format!("{}/{}@{}", plugin.publisher, plugin.name, version_name),
        current.state,
        updated.state,
        updated.state_reason.as_deref(),
    )
    .await;
    let artifacts = registry.meta.artifacts(updated.id).await?;
    Ok((plugin, updated, artifacts))
}

/// Makes a plugin public or private (members with a publish right); the change is logged.
pub async fn set_visibility(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    name: &str,
    visibility: Visibility,
) -> Result<PluginRecord> {
    let plugin = visible_plugin(registry, &caller.viewer(), publisher, name).await?;
    let owner = crate::publishers::get(registry, &plugin.publisher).await?;
    caller.require_publish(&owner)?;
    let entry = log::writer(LogEntry::Visibility {
        publisher: plugin.publisher.clone(),
        name: plugin.name.clone(),
        visibility: visibility.as_str().to_owned(),
        at_ms: now_ms(),
    });
    registry
        .meta
        .set_visibility(plugin.id, visibility, &caller.user.username, Some(entry))
        .await?;
    Ok(plugin)
}
