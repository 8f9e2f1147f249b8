//! Security advisories: administrators import OSV records ([`import`]); each new or
//! changed record is matched at once against the components every release's SBOM lists
//! (recorded by the `vulnerabilities` verification stage), and a release it affects is
//! marked `insecure` with the advisory's id as the reason, through the same logged
//! lifecycle change a publisher's would be. A release verified later is matched against
//! the advisories already stored ([`findings`]).

use agora_core::FieldError;
use agora_core::advisory::{Advisory, Match};
use agora_core::api::{AdvisoryImportRequest, AdvisoryImportResponse, AdvisoryMatch};
use agora_core::verification::Finding;
use agora_core::{Lifecycle, PluginRef};
use agora_store::{AdvisoryRecord, ComponentRecord, LifecycleChange, NewAdvisory, now_ms};
use agora_trust::LogEntry;

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result};

/// Most records one import request carries (the CLI sends a directory in batches).
pub const MAX_ADVISORIES_PER_IMPORT: usize = 500;
/// Largest OSV record accepted, as JSON.
pub const MAX_ADVISORY_BYTES: usize = 256 * 1024;
/// Who a lifecycle change made by a verification run names as its actor.
pub const VERIFIER: &str = "agora-verifier";

/// Imports OSV records (administrators only): all of them or, when one is malformed,
/// none, with each bad record named by its index. Returns what changed and the releases
/// the changed records now mark insecure.
pub async fn import(
    registry: &Registry,
    caller: &Caller,
    request: AdvisoryImportRequest,
) -> Result<AdvisoryImportResponse> {
    caller.require_admin()?;
    let count = request.advisories.len();
    if count == 0 || count > MAX_ADVISORIES_PER_IMPORT {
        return Err(RegistryError::field(
            "advisories",
            format!("{count} records; an import carries 1 to {MAX_ADVISORIES_PER_IMPORT}"),
            Some("a list of OSV records, sent in batches"),
        ));
    }
    let now = now_ms();
    let mut parsed = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for (i, doc) in request.advisories.into_iter().enumerate() {
        let field = format!("advisories[{i}]");
        let document = doc.to_string();
        if document.len() > MAX_ADVISORY_BYTES {
            errors.push(FieldError::new(
                &field,
                format!("{} bytes of JSON", document.len()),
                Some("an OSV record of at most 256 KiB"),
            ));
            continue;
        }
        match Advisory::from_json(doc) {
            Ok(a) => {
                let summary_ok = a.summary.as_deref().is_none_or(|s| {
                    agora_core::text::check(&field, s, agora_core::text::Lines::Single).is_ok()
                });
                if !summary_ok {
                    errors.push(FieldError::new(
                        format!("{field}.summary"),
                        "contains a control character or a line break",
                        Some("one line of text"),
                    ));
                    continue;
                }
                parsed.push(NewAdvisory {
                    packages: a.packages(),
                    record: AdvisoryRecord {
                        id: a.id,
                        modified: a.modified,
                        withdrawn: a.withdrawn,
                        summary: a.summary,
                        document,
                        imported_at: now,
                    },
                });
            }
            Err(e) => errors.push(FieldError::new(
                &field,
                e.to_string(),
                Some("an OSV record: id, modified (RFC 3339), affected"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(RegistryError::invalid(
            "Some advisories are not OSV records",
            errors,
        ));
    }
    let stored = registry
        .meta
        .import_advisories(&parsed, &caller.user.username)
        .await?;
    let mut flagged = Vec::new();
    for id in &stored.changed {
        let Some(record) = registry.meta.advisory(id).await? else {
            continue;
        };
        let advisory = parse_stored(&record)?;
        for (ecosystem, name) in advisory.packages() {
            for user in registry.meta.releases_using(&ecosystem, &name).await? {
                let Some(found) = advisory.affects(&ecosystem, &name, &user.component_version)
                else {
                    continue;
                };
                let release = format!("{}/{}@{}", user.publisher, user.plugin, user.version);
                if mark_insecure(
                    registry,
                    &caller.user.username,
                    user.version_id,
                    &release,
                    user.state,
                    &reason(&advisory, &user.purl, &found),
                )
                .await?
                {
                    flagged.push(AdvisoryMatch {
                        release,
                        advisory: advisory.id.clone(),
                        component: user.purl.clone(),
                        fixed: found.fixed.clone(),
                    });
                }
            }
        }
    }
    Ok(AdvisoryImportResponse {
        changed: stored.changed,
        unchanged: stored.unchanged,
        flagged,
    })
}

fn parse_stored(record: &AdvisoryRecord) -> Result<Advisory> {
    serde_json::from_str::<serde_json::Value>(&record.document)
        .map_err(|e| e.to_string())
        .and_then(|v| Advisory::from_json(v).map_err(|e| e.to_string()))
        .map_err(|e| RegistryError::internal("a stored advisory does not read", e))
}

/// The lifecycle reason of a release an advisory affects: the id first, so it shows
/// wherever the reason does (`agora install` refusing it, the plugin page).
pub fn reason(advisory: &Advisory, purl: &str, found: &Match) -> String {
    let fix = match &found.fixed {
        Some(v) => format!("fixed in {v}"),
        None => "no fixed version yet".to_owned(),
    };
    let summary = advisory
        .summary
        .as_deref()
        .map(|s| format!(": {}", crate::error::truncate(s)))
        .unwrap_or_default();
    format!("{}{summary} (affects {purl}; {fix})", advisory.id)
}

/// Marks a release insecure for an advisory, logged and audited as `actor`; false when
/// it already is insecure, yanked or removed (nothing to change).
pub async fn mark_insecure(
    registry: &Registry,
    actor: &str,
    version_id: i64,
    release: &str,
    state: Lifecycle,
    reason: &str,
) -> Result<bool> {
    if !matches!(state, Lifecycle::Active | Lifecycle::Deprecated) {
        return Ok(false);
    }
    let (plugin, version) = release
        .split_once('@')
        .ok_or_else(|| RegistryError::internal("a release names no version", release))?;
    let plugin: PluginRef = plugin
        .parse()
        .map_err(|e| RegistryError::internal("a release names no plugin", e))?;
    let entry = crate::log::writer(LogEntry::Lifecycle {
        publisher: plugin.publisher.to_string(),
        name: plugin.name.to_string(),
        version: version.to_owned(),
        state: Lifecycle::Insecure.as_str().to_owned(),
        reason: Some(reason.to_owned()),
        at_ms: now_ms(),
    });
    registry
        .meta
        .set_lifecycle(LifecycleChange {
            version_id,
            state: Lifecycle::Insecure,
            reason: Some(reason.to_owned()),
            replacement: None,
            actor: actor.to_owned(),
            log_entry: Some(entry),
        })
        .await?;
    tracing::warn!(release, reason, "release marked insecure by an advisory");
    Ok(true)
}

/// A component of a release that a stored advisory affects.
pub struct Affected {
    pub advisory: Advisory,
    pub component: ComponentRecord,
    pub found: Match,
}

/// The stored advisories that affect any of `components`.
pub async fn affecting(
    registry: &Registry,
    components: &[ComponentRecord],
) -> Result<Vec<Affected>> {
    let mut packages: Vec<(String, String)> = components
        .iter()
        .map(|c| (c.ecosystem.clone(), c.name.clone()))
        .collect();
    packages.sort();
    packages.dedup();
    let mut affected = Vec::new();
    for record in registry.meta.advisories_for(&packages).await? {
        let advisory = parse_stored(&record)?;
        for c in components {
            if let Some(found) = advisory.affects(&c.ecosystem, &c.name, &c.version) {
                affected.push(Affected {
                    advisory: advisory.clone(),
                    component: c.clone(),
                    found,
                });
            }
        }
    }
    Ok(affected)
}

/// The finding a matched advisory makes.
pub fn finding(a: &Affected, sbom_path: &str) -> Finding {
    Finding {
        severity: a.advisory.severity(),
        rule: "vulnerability.advisory".into(),
        message: reason(&a.advisory, &a.component.purl, &a.found),
        location: Some(sbom_path.to_owned()),
    }
}
