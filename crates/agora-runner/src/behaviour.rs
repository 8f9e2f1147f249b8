//! A release's behavioural run, for the registry's verification (its `behaviour` stage;
//! `agora_registry::behaviour` is the port, the binary plugs this in).
//!
//! The plugin runs under a host policy made from its own manifest ([`policy_for`]: its
//! outbound hosts, its secrets with placeholder values, its callbacks (with no core: each
//! is answered 503), its resources, nothing more, within the stage's ceilings). First the conformance harness; then each entrypoint is
//! called with a sample request ([`SAMPLE_REQUEST`]). Every denial the runner records on
//! the way becomes a finding ([`denial_findings`]): a host the manifest does not declare
//! (`behaviour.undeclared-host`), a file refused (`behaviour.file-denied`), a forbidden
//! system call or a limit the plugin was stopped at (`behaviour.killed`), a callback it
//! does not declare (`behaviour.undeclared-callback`) or sent badly
//! (`behaviour.callback-refused`); a failed
//! conformance check is `conformance.<check>` ([`conformance_findings`]). A plugin that
//! cannot be run here (a native one without root, an OCI image, no executable for this
//! platform, a sandbox this kernel cannot build) gets `behaviour.not-run` naming why.
//!
//! Bounded: the whole run has [`BUDGET`], each call at most [`MAX_CALL_TIMEOUT_MS`] and
//! the runner's output cap, at most [`MAX_FINDINGS`] findings. It runs on a thread of its
//! own with its own async runtime, so compiling a module or a slow plugin never holds
//! the caller's runtime (the registry's API, when the worker runs in `agora serve`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_core::manifest::{Manifest, RuntimeKind};
use agora_core::verification::{Finding, Severity};
use serde_json::Value;

use crate::audit::{AuditLog, Captured};
use crate::conformance;
use crate::policy::{HostPolicy, HostRule, Limits, Mode, NetworkPolicy, SecretGrant};
use crate::{PluginSource, RunError, Runner, RunnerConfig};

/// Time for a whole behavioural run of one release (conformance and sample calls).
pub const BUDGET: Duration = Duration::from_secs(120);
/// Longest timeout a call gets, whatever the manifest declares.
pub const MAX_CALL_TIMEOUT_MS: u32 = 10_000;
/// Most memory a plugin gets in the run, whatever the manifest declares.
pub const MAX_MEMORY_MB: u32 = 512;
/// Most open files a plugin gets in the run.
pub const MAX_FDS: u32 = 256;
/// Most findings one run reports; the rest are counted in one more.
pub const MAX_FINDINGS: usize = 32;
/// Longest detail (a host name, a reason) quoted from the runner in a finding.
const MAX_QUOTED_CHARS: usize = 200;
/// The request body each entrypoint is called with.
pub const SAMPLE_REQUEST: &[u8] = b"{}";
/// The value every secret the manifest asks for has in the run.
const PLACEHOLDER_SECRET: &str = "agora-verification-placeholder";
/// Threads of the run's own async runtime.
const RUNTIME_THREADS: usize = 2;

/// Runs releases' plugins for the registry's verification. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BehaviourRun {
    /// The runner's state (`runs/`, `cache/`) for these runs.
    pub state_dir: PathBuf,
    pub budget: Duration,
    /// The unprivileged uid and gid native plugins run as.
    pub sandbox_uid: u32,
    pub sandbox_gid: u32,
}

impl BehaviourRun {
    pub fn new(state_dir: PathBuf) -> BehaviourRun {
        let defaults = RunnerConfig::new(state_dir.clone());
        BehaviourRun {
            state_dir,
            budget: BUDGET,
            sandbox_uid: defaults.sandbox_uid,
            sandbox_gid: defaults.sandbox_gid,
        }
    }

    /// Runs the plugin in `dir` that `manifest` describes and returns the findings.
    pub async fn check(&self, dir: &Path, manifest: &Manifest) -> Vec<Finding> {
        let (this, dir, manifest) = (self.clone(), dir.to_path_buf(), manifest.clone());
        let (send, receive) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("agora-behaviour".into())
            .spawn(move || {
                let findings = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(RUNTIME_THREADS)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(this.run(&dir, &manifest)),
                    Err(e) => vec![not_run(format!("cannot start an async runtime: {e}"))],
                };
                let _ = send.send(findings);
            });
        if let Err(e) = spawned {
            return vec![not_run(format!("cannot start a thread: {e}"))];
        }
        receive.await.unwrap_or_else(|_| {
            vec![not_run(
                "the run ended without an answer (it panicked)".into(),
            )]
        })
    }

    async fn run(&self, dir: &Path, manifest: &Manifest) -> Vec<Finding> {
        if let Some(why) = cannot_run_here(manifest) {
            return vec![not_run(why)];
        }
        let secrets = match SecretFile::create(&self.state_dir) {
            Ok(s) => s,
            Err(e) => return vec![not_run(format!("cannot write placeholder secrets: {e}"))],
        };
        let bounded = bounded(manifest);
        let source = match PluginSource::with_manifest(dir, bounded.clone()) {
            Ok(s) => s,
            Err(e) => return vec![unloadable(&e)],
        };
        let (audit, captured) = AuditLog::capturing();
        let mut config = RunnerConfig::new(self.state_dir.clone());
        config.policy = policy_for(&bounded, &secrets.path);
        config.audit = audit;
        config.sandbox_uid = self.sandbox_uid;
        config.sandbox_gid = self.sandbox_gid;
        let runner = match Runner::new(config) {
            Ok(r) => r,
            Err(e) => return vec![not_run(format!("cannot set up the runner: {e}"))],
        };
        let mut findings = Vec::new();
        let finished = tokio::time::timeout(
            self.budget,
            phases(&runner, source, manifest, &captured, &mut findings),
        )
        .await;
        if finished.is_err() {
            // What the calls that ended were denied still counts.
            let (events, dropped) = captured.take();
            findings.extend(denial_findings(&events, dropped, manifest));
            findings.push(Finding {
                severity: Severity::Medium,
                rule: "behaviour.budget-exceeded".into(),
                message: format!(
                    "the run was stopped after {} s, before every check and call ended",
                    self.budget.as_secs()
                ),
                location: None,
            });
        }
        drop(runner);
        drop(secrets);
        bounded_findings(dedup(findings))
    }
}

/// Conformance, then the sample calls; findings pushed as they come, so a run cut by the
/// budget keeps what it found.
async fn phases(
    runner: &Runner,
    source: PluginSource,
    manifest: &Manifest,
    captured: &Captured,
    findings: &mut Vec<Finding>,
) {
    let report = match conformance::run(runner, source.clone()).await {
        Ok(report) => report,
        Err(e) => {
            findings.push(match e {
                RunError::Sandbox(why) => {
                    not_run(format!("the sandbox cannot be built here: {why}"))
                }
                other => unloadable(&other),
            });
            return;
        }
    };
    findings.extend(conformance_findings(&report));
    // The harness cuts requests on purpose (its timeout check): its limit denials are
    // its own; the conformance checks already judge slow entrypoints.
    let (events, dropped) = captured.take();
    let events: Vec<Value> = events
        .into_iter()
        .filter(|e| e["denied"] != "limit")
        .collect();
    findings.extend(denial_findings(&events, dropped, manifest));
    if !report.passed && report.checks.iter().any(|c| c.name == "policy") {
        return;
    }
    let plugin = match runner.load(source).await {
        Ok(p) => p,
        Err(e) => {
            findings.push(unloadable(&e));
            return;
        }
    };
    for name in manifest.entrypoints.keys() {
        // Errors are the conformance checks' business; denials are this phase's.
        let _ = plugin.call(name, SAMPLE_REQUEST).await;
    }
    drop(plugin);
    let (events, dropped) = captured.take();
    findings.extend(denial_findings(&events, dropped, manifest));
}

/// Why this worker cannot run the plugin at all, if it cannot.
fn cannot_run_here(manifest: &Manifest) -> Option<String> {
    match manifest.runtime.kind {
        RuntimeKind::Wasm => None,
        RuntimeKind::Oci => {
            Some("OCI images are not run by the runner yet; only its manifest was checked".into())
        }
        RuntimeKind::Exec => {
            let platform = crate::platform();
            if !manifest.runtime.binaries.contains_key(&platform) {
                return Some(format!(
                    "it has no executable for this worker's platform ({platform})"
                ));
            }
            native_needs(nix::unistd::geteuid().as_raw())
        }
    }
}

/// A native plugin's sandbox is built by root (namespaces, cgroups, mounts, the switch
/// to the sandbox uid): what a worker running as `euid` lacks, if anything.
fn native_needs(euid: u32) -> Option<String> {
    (euid != 0).then(|| {
        format!(
            "native plugins run only in the sandbox, which needs the worker to run as root (namespaces, cgroups, the switch to an unprivileged uid); this worker runs as uid {euid}"
        )
    })
}

/// The manifest as the run admits it: every timeout and resource capped at the stage's
/// ceilings ([`MAX_CALL_TIMEOUT_MS`], [`MAX_MEMORY_MB`], [`MAX_FDS`]).
fn bounded(manifest: &Manifest) -> Manifest {
    let mut m = manifest.clone();
    let cap = |v: &mut Option<u32>, max: u32| *v = v.map(|v| v.min(max));
    cap(&mut m.resources.timeout_ms, MAX_CALL_TIMEOUT_MS);
    cap(&mut m.resources.memory_mb, MAX_MEMORY_MB);
    cap(&mut m.resources.max_fds, MAX_FDS);
    for entry in m.entrypoints.values_mut() {
        cap(&mut entry.timeout_ms, MAX_CALL_TIMEOUT_MS);
    }
    m
}

/// The host policy of a behavioural run: exactly what `manifest` declares (its outbound
/// hosts, its secrets read from `secret_file`, its resources) under the stage's ceilings;
/// no private addresses.
pub fn policy_for(manifest: &Manifest, secret_file: &Path) -> HostPolicy {
    let defaults = HostPolicy::default().defaults;
    let ceilings = Limits {
        memory_mb: MAX_MEMORY_MB,
        timeout_ms: MAX_CALL_TIMEOUT_MS,
        max_fds: MAX_FDS,
        ..defaults
    };
    let plugin = format!("{}/{}", manifest.publisher, manifest.name);
    HostPolicy {
        mode: Mode::Open,
        limits: ceilings,
        defaults,
        network: NetworkPolicy {
            allowed_hosts: manifest.network.outbound_hosts.clone(),
            allow_private_addresses: false,
        },
        secrets: manifest
            .secrets
            .iter()
            .map(|name| SecretGrant {
                plugin: plugin.clone(),
                name: name.clone(),
                from_env: None,
                from_file: Some(secret_file.display().to_string()),
            })
            .collect(),
        // Declared callbacks are granted; with no core they are answered 503.
        callbacks: manifest.callbacks.clone(),
        ..HostPolicy::default()
    }
}

/// A file holding [`PLACEHOLDER_SECRET`], removed on drop.
struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    fn create(state_dir: &Path) -> std::io::Result<SecretFile> {
        use std::io::Write;
        std::fs::create_dir_all(state_dir)?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
        let path = state_dir.join(format!("secret-{}", hex::encode(suffix)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)?
            .write_all(PLACEHOLDER_SECRET.as_bytes())?;
        Ok(SecretFile { path })
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn finding(severity: Severity, rule: &str, message: String, location: Option<String>) -> Finding {
    Finding {
        severity,
        rule: rule.to_owned(),
        message,
        location,
    }
}

fn not_run(why: String) -> Finding {
    finding(Severity::Low, "behaviour.not-run", why, None)
}

fn unloadable(error: &RunError) -> Finding {
    finding(
        Severity::High,
        "behaviour.unloadable",
        format!("the runner cannot load it: {}", quoted(&error.to_string())),
        None,
    )
}

fn quoted(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if text.chars().count() > MAX_QUOTED_CHARS {
        out.push('…');
    }
    out
}

/// `entrypoint greet` → `entrypoint-greet`, `errors: bad input` → `errors-bad-input`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// Each failed conformance check as `conformance.<check>`: critical for the `auth`
/// checks (a plugin that answers requests the runner did not sign answers anyone who
/// reaches it), high for the others. Skipped checks are not findings.
pub fn conformance_findings(report: &conformance::Report) -> Vec<Finding> {
    report
        .failed()
        .map(|check| {
            let severity = if check.name.starts_with("auth") {
                Severity::Critical
            } else {
                Severity::High
            };
            let location = match check.name.strip_prefix("entrypoint ") {
                Some(entry) => Some(format!("entrypoints.{entry}")),
                None if check.name == "runner_api" => Some("compatibility.runner_api".into()),
                None => None,
            };
            finding(
                severity,
                &format!("conformance.{}", slug(&check.name)),
                quoted(&check.detail),
                location,
            )
        })
        .collect()
}

/// Whether the manifest declares `target` (`host:port`, `[v6]:port`).
fn declared(manifest: &Manifest, target: &str) -> bool {
    let Some((host, port)) = target.rsplit_once(':').and_then(|(h, p)| {
        Some((
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().ok()?,
        ))
    }) else {
        return false;
    };
    manifest
        .network
        .outbound_hosts
        .iter()
        .filter_map(|h| HostRule::parse(h).ok())
        .any(|rule| rule.allows(host, port))
}

/// The callbacks the runner refused in the run: one it does not declare is high, one it
/// sent badly (unsigned, too large, not JSON) medium; one refused only because the run has
/// no core (503) is no finding.
fn callback_findings<'a>(
    events: &'a [Value],
    manifest: &'a Manifest,
) -> impl Iterator<Item = Finding> + 'a {
    let text = |v: &Value, key: &str| quoted(v[key].as_str().unwrap_or("(not recorded)"));
    events
        .iter()
        .filter(|e| e["event"] == "callback_denied" && e["status"] != 503)
        .map(move |e| {
            if e["status"] == 403 {
                finding(
                    Severity::High,
                    "behaviour.undeclared-callback",
                    format!(
                        "it called back the core's {}, which its manifest does not declare (callbacks: {})",
                        text(e, "callback"),
                        if manifest.callbacks.is_empty() {
                            "none".to_owned()
                        } else {
                            quoted(&manifest.callbacks.join(", "))
                        }
                    ),
                    Some("callbacks".into()),
                )
            } else {
                finding(
                    Severity::Medium,
                    "behaviour.callback-refused",
                    format!(
                        "its callback {} was refused: {}",
                        text(e, "callback"),
                        text(e, "reason")
                    ),
                    Some("callbacks".into()),
                )
            }
        })
}

/// Every `denial` among the runner's audit `events` as a finding, and every refused
/// callback ([`callback_findings`]; other events are ignored); `dropped` more events that were not kept are said in one more finding.
pub fn denial_findings(events: &[Value], dropped: usize, manifest: &Manifest) -> Vec<Finding> {
    let text = |v: &Value, key: &str| quoted(v[key].as_str().unwrap_or("(not recorded)"));
    let mut findings: Vec<Finding> = events
        .iter()
        .filter(|e| e["event"] == "denial")
        .map(|e| match e["denied"].as_str().unwrap_or_default() {
            "host" => {
                let target = text(e, "target");
                if declared(manifest, &target) {
                    finding(
                        Severity::Low,
                        "behaviour.host-refused",
                        format!(
                            "its declared host {target} was refused in the run: {}",
                            text(e, "reason")
                        ),
                        Some("network.outbound_hosts".into()),
                    )
                } else {
                    finding(
                        Severity::High,
                        "behaviour.undeclared-host",
                        format!(
                            "it tried to reach {target}, which its manifest does not declare (network.outbound_hosts: {})",
                            if manifest.network.outbound_hosts.is_empty() {
                                "none".to_owned()
                            } else {
                                quoted(&manifest.network.outbound_hosts.join(", "))
                            }
                        ),
                        Some("network.outbound_hosts".into()),
                    )
                }
            }
            "file" => finding(
                Severity::High,
                "behaviour.file-denied",
                format!(
                    "it tried to open {}, outside what the sandbox grants: {}",
                    text(e, "target"),
                    text(e, "reason")
                ),
                None,
            ),
            "syscall" => finding(
                Severity::High,
                "behaviour.killed",
                format!("it was killed for {}", text(e, "reason")),
                None,
            ),
            "limit" => {
                let limit = text(e, "limit");
                let figure = ["timeout_ms", "memory_mb", "max_fds", "cpu_secs", "max_processes", "bytes"]
                    .iter()
                    .find_map(|k| e[*k].as_u64().map(|v| format!(" ({k} {v})")))
                    .unwrap_or_default();
                finding(
                    Severity::High,
                    "behaviour.killed",
                    format!("it was stopped at its {limit} limit{figure}"),
                    Some("resources".into()),
                )
            }
            other => finding(
                Severity::Medium,
                "behaviour.denied",
                format!("the sandbox denied it something ({})", quoted(other)),
                None,
            ),
        })
        .collect();
    findings.extend(callback_findings(events, manifest));
    if dropped > 0 {
        findings.push(finding(
            Severity::Medium,
            "behaviour.denied",
            format!("{dropped} more audit events were not kept"),
            None,
        ));
    }
    findings
}

fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    findings
        .into_iter()
        .filter(|f| seen.insert((f.rule.clone(), f.message.clone())))
        .collect()
}

/// At most [`MAX_FINDINGS`], the worst first kept; the rest counted in one more.
fn bounded_findings(mut findings: Vec<Finding>) -> Vec<Finding> {
    if findings.len() <= MAX_FINDINGS {
        return findings;
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let rest = findings.split_off(MAX_FINDINGS - 1);
    let worst = rest
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    findings.push(finding(
        worst,
        "behaviour.more-findings",
        format!("{} more findings are not listed", rest.len()),
        None,
    ));
    findings
}

#[cfg(test)]
mod tests;
