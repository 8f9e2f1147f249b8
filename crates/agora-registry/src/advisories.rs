//! Security advisories: administrators import OSV records ([`import`]); each new or
//! changed record is matched at once against the components every release's SBOM lists
//! (recorded by the `vulnerabilities` verification stage), and a release it affects is
//! marked `insecure` with the advisory's id as the reason, through the same logged
//! lifecycle change a publisher's would be. A release verified later is matched against
//! the advisories already stored ([`finding`]). A scheduled re-check ([`recheck`])
//! imports an operator's OSV feed directory and matches every stored advisory again.

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
    import_as(registry, &caller.user.username, request).await
}

/// [`import`] on behalf of `actor` (an administrator, or [`VERIFIER`] for the scheduled
/// re-check's feed), who is named in the audit event and the lifecycle changes.
async fn import_as(
    registry: &Registry,
    actor: &str,
    request: AdvisoryImportRequest,
) -> Result<AdvisoryImportResponse> {
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
    let stored = registry.meta.import_advisories(&parsed, actor).await?;
    let mut flagged = Vec::new();
    for id in &stored.changed {
        let Some(record) = registry.meta.advisory(id).await? else {
            continue;
        };
        flagged.extend(flag_affected(registry, actor, &parse_stored(&record)?).await?);
    }
    Ok(AdvisoryImportResponse {
        changed: stored.changed,
        unchanged: stored.unchanged,
        flagged,
    })
}

/// Marks insecure every release (active or deprecated) whose SBOM lists a component
/// `advisory` affects, as `actor`; returns the releases it changed.
async fn flag_affected(
    registry: &Registry,
    actor: &str,
    advisory: &Advisory,
) -> Result<Vec<AdvisoryMatch>> {
    let mut flagged = Vec::new();
    for (ecosystem, name) in advisory.packages() {
        for user in registry.meta.releases_using(&ecosystem, &name).await? {
            let Some(found) = advisory.affects(&ecosystem, &name, &user.component_version) else {
                continue;
            };
            let release = format!("{}/{}@{}", user.publisher, user.plugin, user.version);
            if mark_insecure(
                registry,
                actor,
                user.version_id,
                &release,
                user.state,
                &reason(advisory, &user.purl, &found),
            )
            .await?
            {
                crate::webhooks::advisory_matched(
                    registry,
                    &release,
                    &advisory.id,
                    &user.purl,
                    found.fixed.as_deref(),
                )
                .await;
                flagged.push(AdvisoryMatch {
                    release,
                    advisory: advisory.id.clone(),
                    component: user.purl.clone(),
                    fixed: found.fixed.clone(),
                });
            }
        }
    }
    Ok(flagged)
}

/// The job kind of the scheduled re-check.
pub const RECHECK_JOB: &str = "advisories.recheck";
/// Advisories read per page by the re-check.
const RECHECK_PAGE: u32 = 200;

/// What a re-check did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recheck {
    /// The feed directory's import, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<AdvisoryImportResponse>,
    /// Stored advisories naming a component some release lists, each matched again.
    pub advisories_checked: usize,
    /// Releases marked insecure by this re-check (the import's included).
    pub flagged: Vec<AdvisoryMatch>,
}

/// The scheduled re-check: imports the OSV records of the feed directory `feed` (when
/// given: where an operator syncs OSV's published data), then matches every stored
/// advisory that names a listed component against every release again, so a release
/// whose components were recorded while an advisory was being imported, or whose
/// `insecure` mark was lifted while an advisory still covers it, is marked insecure.
/// Acts as [`VERIFIER`].
pub async fn recheck(registry: &Registry, feed: Option<&std::path::Path>) -> Result<Recheck> {
    let mut report = Recheck::default();
    if let Some(dir) = feed {
        let records = read_feed(dir)?;
        let mut imported = AdvisoryImportResponse {
            changed: Vec::new(),
            unchanged: Vec::new(),
            flagged: Vec::new(),
        };
        for batch in records.chunks(MAX_ADVISORIES_PER_IMPORT) {
            let done = import_as(
                registry,
                VERIFIER,
                AdvisoryImportRequest {
                    advisories: batch.to_vec(),
                },
            )
            .await?;
            imported.changed.extend(done.changed);
            imported.unchanged.extend(done.unchanged);
            imported.flagged.extend(done.flagged);
        }
        report.flagged.extend(imported.flagged.iter().cloned());
        report.imported = Some(imported);
    }
    let mut after: Option<String> = None;
    loop {
        let page = registry
            .meta
            .advisories_in_use(after.as_deref(), RECHECK_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for record in &page {
            report.advisories_checked += 1;
            report
                .flagged
                .extend(flag_affected(registry, VERIFIER, &parse_stored(record)?).await?);
        }
    }
    Ok(report)
}

/// The OSV records of a feed directory: every `*.json` file in it (not its
/// subdirectories), each one record or a list of them. A file that cannot be read or is
/// not JSON stops the re-check naming it, before anything is imported.
fn read_feed(dir: &std::path::Path) -> Result<Vec<serde_json::Value>> {
    let unreadable = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        RegistryError::field(
            "advisories.dir",
            format!("cannot read {}: {e}", path.display()),
            Some("a directory of OSV records as JSON, one record or a list per file"),
        )
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(dir, &e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let size = std::fs::metadata(&path)
            .map_err(|e| unreadable(&path, &e))?
            .len();
        if size > MAX_ADVISORY_BYTES as u64 * MAX_ADVISORIES_PER_IMPORT as u64 {
            return Err(unreadable(&path, &format!("{size} bytes is too large")));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, &e))?;
        match serde_json::from_str(&text).map_err(|e| unreadable(&path, &e))? {
            serde_json::Value::Array(list) => records.extend(list),
            one => records.push(one),
        }
    }
    Ok(records)
}

/// Queues the re-check unless one is queued or running, or the last one ended less than
/// `every` ago; true when it queued one.
pub async fn schedule_recheck(registry: &Registry, every: std::time::Duration) -> Result<bool> {
    crate::scheduled::schedule(registry, RECHECK_JOB, every).await
}

/// Runs the queued re-check if there is one for `worker` to claim; true when it ran one.
pub async fn work_recheck(
    registry: &Registry,
    worker: &str,
    feed: Option<&std::path::Path>,
    lease: std::time::Duration,
) -> Result<bool> {
    crate::scheduled::work(registry, worker, RECHECK_JOB, lease, || {
        recheck_logged(registry, feed)
    })
    .await
}

/// [`recheck`], its outcome logged.
async fn recheck_logged(registry: &Registry, feed: Option<&std::path::Path>) -> Result<()> {
    let done = recheck(registry, feed).await?;
    tracing::info!(
        advisories = done.advisories_checked,
        flagged = done.flagged.len(),
        "advisories re-checked"
    );
    Ok(())
}

/// The re-check loop `agora serve` and `agora worker` run: every minute (or `every`, if
/// shorter) it queues the re-check when due and runs it if this worker claims it, so
/// across workers and replicas it runs once per `every`. Runs until its task is dropped.
pub async fn run_rechecks(
    registry: std::sync::Arc<Registry>,
    worker: String,
    every: std::time::Duration,
    feed: Option<std::path::PathBuf>,
    lease: std::time::Duration,
) {
    crate::scheduled::run_every(registry, worker, RECHECK_JOB, every, lease, |registry| {
        let feed = feed.clone();
        async move { recheck_logged(&registry, feed.as_deref()).await }
    })
    .await
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
    crate::webhooks::lifecycle_changed(registry, release, state, Lifecycle::Insecure, Some(reason))
        .await;
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

/// Tells the webhooks each advisory that matched a component of `release`.
pub async fn announce(registry: &Registry, release: &str, affected: &[Affected]) {
    for a in affected {
        crate::webhooks::advisory_matched(
            registry,
            release,
            &a.advisory.id,
            &a.component.purl,
            a.found.fixed.as_deref(),
        )
        .await;
    }
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
