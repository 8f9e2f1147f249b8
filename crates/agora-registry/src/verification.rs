//! Verifying releases: every publish queues a `verify` job; a worker ([`run_worker`], in
//! the server or as `agora worker`) runs the stages on the release as stored, draws the
//! outcome with the policy in `agora_core::verification::decide`, and records the
//! report. Stages so far: `manifest` (lint), `integrity` (every blob re-hashed from
//! storage), `signature` (the release statement against the keys its publisher had
//! registered and not revoked when it was published), `files` (every file's archive
//! entries, [`crate::archive_audit`]; documents as text), and for WASM plugins `wasm` (the
//! component's imports against the declared capabilities, its handler export) or for
//! native ones `native` (each executable: architecture, PIE, non-executable stack,
//! RELRO, loader), then, when the registry has a check for it, `behaviour` (the plugin
//! run in the sandbox: [`crate::behaviour`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_core::manifest::ArtifactRole;
use agora_core::verification::{Finding, Severity, StageReport, StageStatus, VerificationReport};
use agora_core::{Manifest, PluginRef, Sha256Hasher};
use agora_store::{
    ArtifactRecord, ComponentRecord, LogWriter, PluginRecord, VersionRecord, Viewer,
};
use agora_trust::LogEntry;
use futures_util::StreamExt;

use crate::Registry;
use crate::error::{RegistryError, Result};

/// The job kind a publish queues.
pub const JOB_KIND: &str = "verify";
/// Attempts before a run that keeps failing (storage down, say) is given up.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long a worker holds a claimed run before another may take it over.
pub const LEASE: Duration = Duration::from_secs(300);
/// How long an idle worker waits before looking for work again.
pub const IDLE_WAIT: Duration = Duration::from_millis(500);
/// The leases a worker may be configured with: long enough for a run to finish, short
/// enough that a dead worker's run is taken over the same day.
pub const LEASE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);
/// The idle waits a worker may be configured with.
pub const IDLE_WAIT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(600);

/// How a worker holds and looks for runs (`[worker]` in the server's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// How long a claimed run is held before another worker may take it over.
    pub lease: Duration,
    /// How long an idle worker waits before looking for work again.
    pub idle_wait: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            lease: LEASE,
            idle_wait: IDLE_WAIT,
        }
    }
}

/// The job subject of a release: `publisher/name@version`.
pub fn subject(plugin: &PluginRef, version: &str) -> String {
    format!("{plugin}@{version}")
}

/// A release's verification run, queued with the release in its transaction (one open
/// run per release).
pub fn job(plugin: &PluginRef, version: &str) -> agora_store::NewJob {
    agora_store::NewJob {
        kind: JOB_KIND.into(),
        subject: subject(plugin, version),
        max_attempts: MAX_ATTEMPTS,
    }
}

/// The newest verification report of a release the caller may see; `None` until its
/// first run ended.
pub async fn latest(
    registry: &Registry,
    viewer: &Viewer,
    publisher: &str,
    name: &str,
    version: &str,
) -> Result<Option<VerificationReport>> {
    let (_, (v, _)) = crate::catalog::release(registry, viewer, publisher, name, version).await?;
    let Some(record) = registry.meta.latest_verification(v.id).await? else {
        return Ok(None);
    };
    serde_json::from_str(&record.report)
        .map(Some)
        .map_err(|e| RegistryError::internal("a stored verification report does not parse", e))
}

/// An administrator's decision on a release's verification: approve (`verified`) or
/// reject, with a reason. Recorded as the release's newest run (its stages kept, a
/// `review` stage added naming who decided and why) with an audit event.
pub async fn review(
    registry: &Registry,
    caller: &crate::caller::Caller,
    publisher: &str,
    name: &str,
    version: &str,
    decision: agora_core::verification::ReviewDecision,
) -> Result<VerificationReport> {
    caller.require_admin()?;
    crate::error::one_line("reason", &decision.reason)?;
    let reason = decision.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(RegistryError::field(
            "reason",
            "a decision needs a reason of 1 to 500 characters",
            Some("why it is approved or rejected, in one line"),
        ));
    }
    let word = match decision.outcome {
        agora_core::verification::Outcome::Verified => "approved",
        agora_core::verification::Outcome::Rejected => "rejected",
        agora_core::verification::Outcome::NeedsReview => {
            return Err(RegistryError::field(
                "outcome",
                "a review decides: it cannot leave the release needing review",
                Some("verified or rejected"),
            ));
        }
    };
    let (_, (v, _)) =
        crate::catalog::release(registry, &caller.viewer(), publisher, name, version).await?;
    let release = format!("{publisher}/{name}@{version}");
    let Some(latest) = registry.meta.latest_verification(v.id).await? else {
        return Err(RegistryError::conflict(format!(
            "{release} has not been checked yet; review it once its verification ran"
        )));
    };
    let mut report: VerificationReport = serde_json::from_str(&latest.report)
        .map_err(|e| RegistryError::internal("a stored verification report does not parse", e))?;
    report.stages.retain(|s| s.stage != "review");
    report.stages.push(StageReport {
        stage: "review".into(),
        status: StageStatus::Passed,
        duration_ms: 0,
        findings: vec![finding(
            Severity::Info,
            &format!("review.{word}"),
            format!("{word} by {}: {reason}", caller.user.username),
            None,
        )],
    });
    report.outcome = decision.outcome;
    let now = agora_store::now_ms();
    report.checked_at = crate::time::rfc3339(now);
    let json = serde_json::to_string(&report)
        .map_err(|e| RegistryError::internal("cannot render a verification report", e))?;
    registry
        .meta
        .record_review(
            v.id,
            report.outcome.as_str(),
            &json,
            now,
            &caller.user.username,
            &release,
            reason,
            Some(&verdict_entry(
                &report,
                &json,
                Some(&caller.user.username),
                now,
            )?),
        )
        .await?;
    crate::tenants::after_verification(registry, &report.release, report.outcome.as_str()).await;
    crate::oci::after_verification(registry, &report.release).await;
    Ok(report)
}

/// Runs every stage on the release `subject` names, records and returns the report.
pub async fn run(registry: &Registry, subject: &str) -> Result<VerificationReport> {
    let checked = check(registry, subject).await?;
    registry
        .meta
        .record_verification(
            checked.version_id,
            checked.report.outcome.as_str(),
            &checked.json,
            checked.at,
            Some(&checked.entry()?),
        )
        .await?;
    checked.log();
    crate::webhooks::verification_completed(registry, &checked.report).await;
    crate::tenants::after_verification(
        registry,
        &checked.report.release,
        checked.report.outcome.as_str(),
    )
    .await;
    crate::oci::after_verification(registry, &checked.report.release).await;
    Ok(checked.report)
}

/// The transparency-log entry of a verdict on `report` (rendered as `json`): its outcome,
/// its findings by severity and the report's digest; `reviewer` for a review.
fn verdict_entry(
    report: &VerificationReport,
    json: &str,
    reviewer: Option<&str>,
    at: i64,
) -> Result<LogWriter> {
    let (plugin, version) = report
        .release
        .split_once('@')
        .and_then(|(plugin, version)| Some((plugin.split_once('/')?, version)))
        .ok_or_else(|| {
            RegistryError::internal("a verification report names no release", &report.release)
        })?;
    Ok(crate::log::writer(LogEntry::Verification {
        publisher: plugin.0.to_owned(),
        name: plugin.1.to_owned(),
        version: version.to_owned(),
        outcome: report.outcome.as_str().to_owned(),
        report_digest: agora_core::Digest::of(json.as_bytes()),
        findings: agora_core::verification::SeverityCounts::of(
            report.stages.iter().flat_map(|s| s.findings.iter()),
        ),
        reviewer: reviewer.map(str::to_owned),
        at_ms: at,
    }))
}

/// A run's report, not yet recorded.
struct Checked {
    version_id: i64,
    report: VerificationReport,
    json: String,
    at: i64,
}

impl Checked {
    fn entry(&self) -> Result<LogWriter> {
        verdict_entry(&self.report, &self.json, None, self.at)
    }

    fn log(&self) {
        tracing::info!(
            release = self.report.release,
            outcome = self.report.outcome.as_str(),
            "release verified"
        );
    }
}

/// Runs every stage on the release `subject` names.
async fn check(registry: &Registry, subject: &str) -> Result<Checked> {
    let (name, version) = subject
        .split_once('@')
        .ok_or_else(|| RegistryError::internal("a verify job has a malformed subject", subject))?;
    let plugin: PluginRef = name
        .parse()
        .map_err(|e| RegistryError::internal("a verify job names no plugin", e))?;
    let everyone = Viewer {
        admin: true,
        ..Viewer::default()
    };
    let (record, (v, artifacts)) = crate::catalog::release(
        registry,
        &everyone,
        plugin.publisher.as_str(),
        plugin.name.as_str(),
        version,
    )
    .await?;
    // The stored manifest, read once for the lint and for which audit applies.
    let manifest = serde_json::from_str::<Manifest>(&v.manifest);
    let mut stages = vec![
        timed("manifest", || async {
            match &manifest {
                Ok(m) => manifest_lint(m),
                Err(e) => vec![finding(
                    Severity::Critical,
                    "manifest.unreadable",
                    format!("the stored manifest does not read as a manifest: {e}"),
                    Some("plugin.yaml"),
                )],
            }
        })
        .await,
        timed("integrity", || integrity_stage(registry, &artifacts)).await,
        timed("signature", || {
            signature_stage(registry, &record, &v, &artifacts)
        })
        .await,
        timed("files", || files_stage(registry, &artifacts)).await,
    ];
    if let Ok(manifest) = &manifest {
        match manifest.runtime.kind {
            agora_core::RuntimeKind::Wasm => {
                stages.push(timed("wasm", || wasm_stage(registry, manifest, &artifacts)).await)
            }
            agora_core::RuntimeKind::Exec => {
                stages.push(timed("native", || native_stage(registry, manifest, &artifacts)).await)
            }
            agora_core::RuntimeKind::Oci => {
                stages.push(timed("oci", || crate::image_audit::stage(registry, manifest)).await)
            }
        }
        if let Some(behaviour) = &registry.behaviour {
            stages.push(
                timed("behaviour", || {
                    crate::behaviour::stage(registry, behaviour, manifest, &artifacts)
                })
                .await,
            );
        }
    }
    let sbom_path = manifest.as_ref().ok().and_then(|m| m.sbom.clone());
    let (sbom, components) = sbom_stage(registry, sbom_path.as_deref(), &artifacts).await;
    stages.push(sbom);
    stages
        .push(vulnerability_stage(registry, &v, subject, sbom_path.as_deref(), &components).await?);
    let outcome = registry.verification_policy.decide(&stages);
    let now = agora_store::now_ms();
    let report = VerificationReport {
        release: subject.to_owned(),
        outcome,
        checked_at: crate::time::rfc3339(now),
        stages,
    };
    let json = serde_json::to_string(&report)
        .map_err(|e| RegistryError::internal("cannot render a verification report", e))?;
    Ok(Checked {
        version_id: v.id,
        report,
        json,
        at: now,
    })
}

async fn timed<F, Fut>(stage: &str, body: F) -> StageReport
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Vec<Finding>>,
{
    let started = Instant::now();
    let findings = body().await;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    StageReport::of(stage, elapsed, findings)
}

pub(crate) fn finding(
    severity: Severity,
    rule: &str,
    message: String,
    location: Option<&str>,
) -> Finding {
    Finding {
        severity,
        rule: rule.to_owned(),
        message,
        location: location.map(str::to_owned),
    }
}

/// What the schema allows but a reviewer should look at.
pub fn manifest_lint(manifest: &Manifest) -> Vec<Finding> {
    let mut findings = Vec::new();
    for host in &manifest.network.outbound_hosts {
        if host == "*" || host.starts_with("*.") && host.matches('.').count() < 2 {
            findings.push(finding(
                Severity::Medium,
                "manifest.broad-host",
                format!("outbound host {host:?} reaches a whole top-level domain or more"),
                Some("network.outbound_hosts"),
            ));
        }
    }
    if !manifest.secrets.is_empty() && !manifest.network.outbound_hosts.is_empty() {
        findings.push(finding(
            Severity::Low,
            "manifest.secrets-with-network",
            format!(
                "it asks for secrets ({}) and may reach {} host(s): a host it reaches can receive them",
                manifest.secrets.join(", "),
                manifest.network.outbound_hosts.len()
            ),
            Some("secrets"),
        ));
    }
    findings
}

/// Every file re-read from storage and re-hashed: what is stored is what was published.
async fn integrity_stage(registry: &Registry, artifacts: &[ArtifactRecord]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for a in artifacts {
        let expected_size = u64::try_from(a.size).unwrap_or(0);
        let stream = match registry.blobs.get(&a.digest, 0, expected_size).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                findings.push(finding(
                    Severity::Critical,
                    "integrity.missing",
                    format!("the blob {} is not in storage", a.digest),
                    Some(&a.path),
                ));
                continue;
            }
            Err(e) => {
                findings.push(finding(
                    Severity::Critical,
                    "integrity.unreadable",
                    format!("the blob {} cannot be read: {e}", a.digest),
                    Some(&a.path),
                ));
                continue;
            }
        };
        let mut hasher = Sha256Hasher::new();
        let mut body = stream.body;
        let mut read_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => hasher.update(&bytes),
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = read_error {
            findings.push(finding(
                Severity::Critical,
                "integrity.unreadable",
                format!("reading the blob {} failed: {e}", a.digest),
                Some(&a.path),
            ));
            continue;
        }
        let size = hasher.len();
        let actual = hasher.finish();
        if actual != a.digest || size != expected_size {
            findings.push(finding(
                Severity::Critical,
                "integrity.digest-mismatch",
                format!(
                    "stored bytes hash to {actual} ({size} bytes); the release names {} ({} bytes)",
                    a.digest, a.size
                ),
                Some(&a.path),
            ));
        }
    }
    findings
}

/// The release statement checked again, against the keys the publisher had registered
/// and not revoked at publication.
async fn signature_stage(
    registry: &Registry,
    plugin: &PluginRecord,
    v: &VersionRecord,
    artifacts: &[ArtifactRecord],
) -> Vec<Finding> {
    let fail = |rule: &str, message: String| vec![finding(Severity::Critical, rule, message, None)];
    let Some(raw) = &v.signature else {
        return fail(
            "signature.missing",
            "the release carries no signature".into(),
        );
    };
    let envelope: agora_trust::Envelope = match serde_json::from_str(raw) {
        Ok(e) => e,
        Err(e) => return fail("signature.malformed", format!("not a DSSE envelope: {e}")),
    };
    let keys = match registry.meta.keys(plugin.publisher_id).await {
        Ok(keys) => keys,
        Err(e) => {
            return fail(
                "signature.keys-unreadable",
                format!("cannot read keys: {e}"),
            );
        }
    };
    let keys: Vec<agora_trust::PublicKey> = keys
        .into_iter()
        .filter(|k| k.revoked_at.is_none_or(|at| at > v.published_at))
        .filter_map(|k| agora_trust::PublicKey::parse(&k.public_key).ok())
        .collect();
    let claim = agora_trust::ReleaseClaim::new(
        &plugin.publisher,
        &plugin.name,
        v.version.clone(),
        v.manifest_digest,
        artifacts.iter().map(|a| (a.path.clone(), a.digest)),
    );
    match agora_trust::verify_release(&envelope, &keys, &claim) {
        Ok(signer) if v.signer_key.as_deref().is_some_and(|k| k != signer) => fail(
            "signature.signer-mismatch",
            format!(
                "signed by {signer}, but the release records {}",
                v.signer_key.as_deref().unwrap_or_default()
            ),
        ),
        Ok(_) => Vec::new(),
        Err(e) => fail("signature.invalid", e.to_string()),
    }
}

/// The release's SBOM read (`sbom`): absent is low, unreadable is high. Returns the
/// stage and the components advisories can name.
async fn sbom_stage(
    registry: &Registry,
    path: Option<&str>,
    artifacts: &[ArtifactRecord],
) -> (StageReport, Vec<ComponentRecord>) {
    let started = Instant::now();
    let (findings, components) = match path {
        None => (vec![sbom_missing()], Vec::new()),
        Some(path) => match audited_bytes(registry, artifacts, path, "sbom").await {
            Ok(bytes) => sbom_findings(&bytes, path),
            Err(findings) => (findings, Vec::new()),
        },
    };
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    (StageReport::of("sbom", elapsed, findings), components)
}

fn sbom_missing() -> Finding {
    finding(
        Severity::Low,
        "sbom.missing",
        "the release names no SBOM (manifest field sbom): its components cannot be checked against advisories".into(),
        Some("sbom"),
    )
}

/// An SBOM's findings and the components advisories can name.
fn sbom_findings(bytes: &[u8], path: &str) -> (Vec<Finding>, Vec<ComponentRecord>) {
    match crate::sbom::parse(bytes) {
        Ok(sbom) => (
            Vec::new(),
            sbom.components
                .into_iter()
                .filter_map(|c| {
                    Some(ComponentRecord {
                        ecosystem: c.ecosystem?,
                        name: c.name,
                        version: c.version,
                        purl: c.purl,
                    })
                })
                .collect(),
        ),
        Err(e) => (
            vec![finding(
                Severity::High,
                "sbom.invalid",
                format!("the SBOM cannot be read: {e}"),
                Some(path),
            )],
            Vec::new(),
        ),
    }
}

/// The SBOM's components against the stored advisories (`vulnerabilities`): each match
/// is a finding naming the advisory and the fixed version, and marks the release
/// insecure. The components are recorded, so a later advisory finds the release.
async fn vulnerability_stage(
    registry: &Registry,
    v: &VersionRecord,
    release: &str,
    sbom_path: Option<&str>,
    components: &[ComponentRecord],
) -> Result<StageReport> {
    let started = Instant::now();
    registry
        .meta
        .set_release_components(v.id, components)
        .await?;
    let affected = crate::advisories::affecting(registry, components).await?;
    let location = sbom_path.unwrap_or("sbom");
    let findings = affected
        .iter()
        .map(|a| crate::advisories::finding(a, location))
        .collect();
    if let Some(first) = affected.first() {
        let reason =
            crate::advisories::reason(&first.advisory, &first.component.purl, &first.found);
        crate::advisories::mark_insecure(
            registry,
            crate::advisories::VERIFIER,
            v.id,
            release,
            v.state,
            &reason,
        )
        .await?;
        crate::advisories::announce(registry, release, &affected).await;
    }
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(StageReport::of("vulnerabilities", elapsed, findings))
}

/// Largest executable or module the audits read.
pub const MAX_AUDITED_FILE: u64 = 256 * 1024 * 1024;

/// The bytes of a release's file for an audit, or the finding that says why not (none
/// when the integrity stage already reports it missing or unreadable).
async fn audited_bytes(
    registry: &Registry,
    artifacts: &[ArtifactRecord],
    path: &str,
    field: &str,
) -> std::result::Result<Vec<u8>, Vec<Finding>> {
    let (size, mut body) = audited_stream(registry, artifacts, path, field).await?;
    // Into one buffer of the file's size as the chunks arrive: the file is held once,
    // not once in chunks and again joined.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => return Err(Vec::new()),
        }
    }
    Ok(bytes)
}

/// The size and byte stream of a release's file for an audit, or the finding that says
/// why not (none when the integrity stage already reports it missing or unreadable).
async fn audited_stream(
    registry: &Registry,
    artifacts: &[ArtifactRecord],
    path: &str,
    field: &str,
) -> std::result::Result<(u64, agora_store::ByteStream), Vec<Finding>> {
    let Some(a) = artifacts.iter().find(|a| a.path == path) else {
        return Err(vec![finding(
            Severity::Critical,
            "release.file-missing",
            format!("{field} names {path:?}, which is not a file of the release"),
            Some(field),
        )]);
    };
    let size = u64::try_from(a.size).unwrap_or(0);
    if size > MAX_AUDITED_FILE {
        return Err(vec![finding(
            Severity::High,
            "release.too-large-to-audit",
            format!("{size} bytes; the audits read files up to {MAX_AUDITED_FILE} bytes"),
            Some(path),
        )]);
    }
    match registry.blobs.get(&a.digest, 0, size).await {
        Ok(Some(stream)) => Ok((size, stream.body)),
        _ => Err(Vec::new()),
    }
}

/// The component's imports and exports against the contract and the declared
/// capabilities ([`crate::wasm_audit`]).
async fn wasm_stage(
    registry: &Registry,
    manifest: &Manifest,
    artifacts: &[ArtifactRecord],
) -> Vec<Finding> {
    let module = manifest.runtime.module.as_deref().unwrap_or_default();
    let mut body = match audited_stream(registry, artifacts, module, "runtime.module").await {
        Ok((_, body)) => body,
        Err(findings) => return findings,
    };
    // Read as it arrives: only the section being parsed is held, not the module.
    let mut scan = crate::wasm_audit::Scan::default();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => scan.feed(&chunk, false),
            Err(_) => return Vec::new(),
        }
        if scan.finished() {
            break;
        }
    }
    scan.feed(&[], true);
    scan.findings(&manifest.capabilities, module)
}

/// Each platform's executable against what the sandbox relies on
/// ([`crate::elf_audit`]).
async fn native_stage(
    registry: &Registry,
    manifest: &Manifest,
    artifacts: &[ArtifactRecord],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (platform, path) in &manifest.runtime.binaries {
        let field = format!("runtime.binaries.{platform}");
        match audited_bytes(registry, artifacts, path, &field).await {
            Ok(bytes) => findings.extend(crate::elf_audit::audit(&bytes, platform, path)),
            Err(more) => findings.extend(more),
        }
    }
    findings
}

/// Every file of the release through [`file_findings`]. A module or executable too large
/// or missing is reported by its own stage.
async fn files_stage(registry: &Registry, artifacts: &[ArtifactRecord]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for a in artifacts {
        // A module or executable (the large files) is read whole only when its first bytes
        // may begin an archive: otherwise it has nothing the files stage looks at.
        if matches!(a.role, ArtifactRole::Module | ArtifactRole::Binary)
            && !may_be_archive(registry, artifacts, a).await
        {
            continue;
        }
        match audited_bytes(registry, artifacts, &a.path, &a.path).await {
            Ok(bytes) => findings.extend(file_findings(a.role, &a.path, &bytes)),
            Err(more) if !matches!(a.role, ArtifactRole::Module | ArtifactRole::Binary) => {
                findings.extend(more)
            }
            Err(_) => {}
        }
    }
    findings
}

/// Whether the file's first bytes may begin an archive ([`crate::archive_audit::may_be_archive`]);
/// true when they cannot be read, so the whole read reports why.
async fn may_be_archive(
    registry: &Registry,
    artifacts: &[ArtifactRecord],
    a: &ArtifactRecord,
) -> bool {
    let Ok((_, mut body)) = audited_stream(registry, artifacts, &a.path, &a.path).await else {
        return true;
    };
    let mut head = Vec::new();
    while head.len() < crate::archive_audit::HEAD_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(_)) => return true,
            None => break,
        }
    }
    crate::archive_audit::may_be_archive(&head)
}

/// What the `files` stage holds against one file of a release, in the registry and in
/// `agora audit` alike: a file whose bytes are an archive gets the archive audit
/// ([`crate::archive_audit`]: paths, links, special files, setuid entries, bombs); a
/// document (README, changelog, license, SBOM) must be UTF-8 text (`files.not-text`).
pub fn file_findings(role: ArtifactRole, path: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut findings = crate::archive_audit::audit(bytes, path);
    let document = matches!(
        role,
        ArtifactRole::Readme | ArtifactRole::Changelog | ArtifactRole::License | ArtifactRole::Sbom
    );
    if document && let Err(e) = std::str::from_utf8(bytes) {
        findings.push(finding(
            Severity::Medium,
            "files.not-text",
            format!(
                "the {} is not UTF-8 text (byte {} is not)",
                role.as_str(),
                e.valid_up_to()
            ),
            Some(path),
        ));
    }
    findings
}

/// The stages that need no registry (the manifest lint, the files, and the WASM or
/// native audit), on a plugin's files before it is published: `read` gives a file's
/// bytes by its path in the plugin directory. For `agora audit`.
pub fn audit_local(
    manifest: &Manifest,
    read: impl Fn(&str) -> Option<Vec<u8>>,
) -> Vec<StageReport> {
    let stage = |name: &str, findings: Vec<Finding>| StageReport::of(name, 0, findings);
    let missing = |field: &str, path: &str| {
        finding(
            Severity::Critical,
            "release.file-missing",
            format!("{field} names {path:?}, which is not in the plugin directory"),
            Some(field),
        )
    };
    let mut stages = vec![stage("manifest", manifest_lint(manifest))];
    // A document named but absent is refused by publish; modules and executables are
    // reported missing by their own stage.
    let mut files = Vec::new();
    for (path, role) in manifest.release_files(|p| read(p).is_some()) {
        match read(&path) {
            Some(bytes) => files.extend(file_findings(role, &path, &bytes)),
            None if !matches!(role, ArtifactRole::Module | ArtifactRole::Binary) => {
                files.push(missing(role.as_str(), &path))
            }
            None => {}
        }
    }
    stages.push(stage("files", files));
    match manifest.runtime.kind {
        agora_core::RuntimeKind::Wasm => {
            let module = manifest.runtime.module.as_deref().unwrap_or_default();
            let findings = match read(module) {
                Some(bytes) => crate::wasm_audit::audit(&bytes, &manifest.capabilities, module),
                None => vec![missing("runtime.module", module)],
            };
            stages.push(stage("wasm", findings));
        }
        agora_core::RuntimeKind::Exec => {
            let mut findings = Vec::new();
            for (platform, path) in &manifest.runtime.binaries {
                match read(path) {
                    Some(bytes) => findings.extend(crate::elf_audit::audit(&bytes, platform, path)),
                    None => findings.push(missing(&format!("runtime.binaries.{platform}"), path)),
                }
            }
            stages.push(stage("native", findings));
        }
        agora_core::RuntimeKind::Oci => {}
    }
    let sbom = match &manifest.sbom {
        None => vec![sbom_missing()],
        Some(path) => match read(path) {
            Some(bytes) => sbom_findings(&bytes, path).0,
            None => vec![missing("sbom", path)],
        },
    };
    stages.push(stage("sbom", sbom));
    stages
}

/// Runs queued verifications until none is due; returns how many ran. For `agora worker
/// --once` and tests.
pub async fn run_until_idle(
    registry: &Registry,
    worker: &str,
    options: &WorkerOptions,
) -> Result<usize> {
    let mut ran = 0;
    while work_one(registry, worker, options).await? {
        ran += 1;
    }
    Ok(ran)
}

/// Claims and runs one due verification; false when none was due. The report is
/// recorded together with the job's end, and only while the lease is held, so a run
/// taken over by another worker (this one stalled, or was thought dead) records nothing.
async fn work_one(registry: &Registry, worker: &str, options: &WorkerOptions) -> Result<bool> {
    let lease = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
    let Some(job) = registry.meta.claim_job(worker, &[JOB_KIND], lease).await? else {
        return Ok(false);
    };
    match check(registry, &job.subject).await {
        Ok(checked) => {
            let recorded = registry
                .meta
                .record_verification_job(
                    &job,
                    checked.version_id,
                    checked.report.outcome.as_str(),
                    &checked.json,
                    checked.at,
                    Some(&checked.entry()?),
                )
                .await?;
            match recorded {
                Some(_) => {
                    checked.log();
                    crate::webhooks::verification_completed(registry, &checked.report).await;
                    crate::tenants::after_verification(
                        registry,
                        &checked.report.release,
                        checked.report.outcome.as_str(),
                    )
                    .await;
                    crate::oci::after_verification(registry, &checked.report.release).await;
                }
                None => tracing::warn!(
                    job = job.id,
                    "a verification outlived its lease; another worker took it over"
                ),
            }
        }
        Err(e) => {
            let retry = registry.meta.fail_job(&job, &e.to_string()).await?;
            tracing::warn!(job = job.id, release = %job.subject, error = %e, ?retry, "a verification run failed");
        }
    }
    Ok(true)
}

/// The worker loop: runs due verifications, waits `options.idle_wait` when there are
/// none, and keeps going through store errors (logged). Runs until its task is dropped.
pub async fn run_worker(registry: Arc<Registry>, worker: String, options: WorkerOptions) {
    loop {
        match work_one(&registry, &worker, &options).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(options.idle_wait).await,
            Err(e) => {
                tracing::error!(error = %e, "the verification worker cannot reach the store");
                tokio::time::sleep(options.idle_wait * 4).await;
            }
        }
    }
}
