//! The agent (`agora agent`): keeps one host instance's plugin directory at its tenant's
//! desired set, and reports what it runs.
//!
//! A round ([`Agent::converge_once`], or each change seen by [`Agent::run`]'s long poll)
//! fetches the desired set (`GET /api/v1/instance/desired`, with the instance's own
//! `agi_` credential) and compares it with `DIR/agora.lock` ([`plan`]): a plugin already
//! installed at its pinned manifest digest, with intact files, is kept; any other is
//! checked before it is installed ([`vet`]: the exact version and manifest digest the
//! approval pinned, its lifecycle, this host's bounds, the host policy and the tenant
//! policy together through [`HostPolicy::admit_with`]), then downloaded and verified
//! exactly as `agora install` does ([`crate::install::Staging::stage`]: signature,
//! transparency log, every digest). A plugin that fails any check is reported as a
//! failure and its previous version, if any, stays. Plugins that left the set are
//! removed. Every change of a round is staged first and switched in one step
//! ([`crate::install::Staging::commit`]: one `agora.lock` write; a failed switch changes
//! nothing).
//!
//! After the switch the agent writes `DIR/.agora/tenant-policy.toml` (the tenant's
//! policy, which `agora run` applies with the host's) and `DIR/.agora/approvals.json`
//! (the approvals' log entries and openings), each atomically, runs the reload hook
//! (`sh -c CMD` with `AGORA_AGENT_DIR` and `AGORA_GENERATION`) and the in-process
//! callback, then reports (`POST /api/v1/instance/report`): the plugins it runs, its
//! failures, and run figures read from the runner's audit log ([`AuditReader`]).
//!
//! When the registry cannot be reached the directory stays as it is (the last verified
//! set keeps running) and the agent retries with exponential backoff, capped at the
//! report interval, plus jitter; it never gives up on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_core::api::VersionDetail;
use agora_core::manifest::RuntimeKind;
use agora_core::policy::{HostPolicy, PolicyError};
use agora_core::resolve::HostBounds;
use agora_core::tenant::{
    DesiredPlugin, DesiredSet, InstanceReport, MAX_REPORT_BYTES, MAX_REPORT_ITEMS, MAX_WAIT_SECS,
    ReportedFailure, ReportedPlugin, RunStats,
};
use agora_core::{Lifecycle, Manifest, PluginRef};
use serde::{Deserialize, Serialize};

use crate::api::{Client, ClientError};
use crate::install::{InstallError, Staged, Staging, TrustConfig};
use crate::lockfile::{LockEntry, Lockfile, LockfileError};

/// The agent's directory inside the plugin directory.
pub const STATE_DIR: &str = ".agora";
/// The tenant's policy as TOML, in [`STATE_DIR`]: what `agora run` applies with the host's.
pub const TENANT_POLICY_FILE: &str = "tenant-policy.toml";
/// The approvals' transparency log entries and openings, in [`STATE_DIR`].
pub const APPROVALS_FILE: &str = "approvals.json";
/// Locked (an advisory `flock`) by the agent that keeps the directory, in [`STATE_DIR`]:
/// a second agent on the same directory is refused instead of fighting over it.
pub const LOCK_FILE: &str = "agent.lock";
/// How long the long poll waits for a change by default, in seconds.
pub const DEFAULT_WAIT_SECS: u32 = 30;
/// How often an unchanged instance reports by default; also the longest retry delay.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The longest a reload hook may run before it is killed.
pub const RELOAD_HOOK_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a report may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest audit log line read; longer ones are skipped.
const MAX_AUDIT_LINE: usize = 64 * 1024;
/// Longest text (a reason, an error) put in a report.
const MAX_REPORT_TEXT: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("the registry sent a tenant policy this agent cannot apply: {0}")]
    TenantPolicy(PolicyError),
    #[error("{} holds no usable tenant policy: {reason}", path.display())]
    TenantPolicyFile { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("the registry did not answer the report within {0:?}")]
    ReportTimeout(Duration),
    #[error(
        "another agora agent keeps {} (it holds the lock on {}); run one agent per plugin directory",
        dir.display(),
        lock.display()
    )]
    Busy { dir: PathBuf, lock: PathBuf },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let context = context.into();
    move |source| AgentError::Io { context, source }
}

/// What a host gets told after the agent changed its plugin directory or its policy.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub dir: PathBuf,
    pub generation: i64,
    /// The tenant's policy: an embedded `agora_runner::Runner` takes it as its
    /// `RunnerConfig::tenant_policy`.
    pub tenant_policy: HostPolicy,
}

/// An in-process reload: hosts that embed the runner rebuild it here.
pub type ReloadCallback = Arc<dyn Fn(&Reloaded) + Send + Sync>;

/// How an agent runs.
#[derive(Clone)]
pub struct AgentConfig {
    /// The plugin directory it keeps (created if missing). The agent owns it: plugins
    /// not in the desired set are removed.
    pub dir: PathBuf,
    /// The registry's log state and key pinning, and this host's bounds (runner API,
    /// runner and core versions).
    pub trust: TrustConfig,
    /// The host's policy, the one `agora run` applies here; the tenant's is applied with it.
    pub host_policy: HostPolicy,
    /// `sh -c CMD` after each change.
    pub reload_hook: Option<String>,
    pub on_reload: Option<ReloadCallback>,
    /// The runner's audit log (JSON lines) the run figures are read from.
    pub audit_log: Option<PathBuf>,
    /// Seconds the long poll waits for a change (at most [`MAX_WAIT_SECS`]).
    pub wait_secs: u32,
    /// How often an unchanged instance reports; the longest retry delay.
    pub interval: Duration,
    /// The host application's version, as reported (default: agora's version).
    pub core_version: Option<String>,
}

impl AgentConfig {
    /// The defaults: no hook, no callback, no audit log, [`DEFAULT_WAIT_SECS`],
    /// [`DEFAULT_INTERVAL`]. OCI images are pulled from the registries `host_policy`
    /// allows (and the tenant's policy admits, checked with the rest of the admission).
    pub fn new(dir: PathBuf, trust: TrustConfig, host_policy: HostPolicy) -> AgentConfig {
        let trust = TrustConfig {
            oci: crate::install::OciPulls::from_policy(&host_policy),
            ..trust
        };
        AgentConfig {
            dir,
            trust,
            host_policy,
            reload_hook: None,
            on_reload: None,
            audit_log: None,
            wait_secs: DEFAULT_WAIT_SECS,
            interval: DEFAULT_INTERVAL,
            core_version: None,
        }
    }
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("dir", &self.dir)
            .field("reload_hook", &self.reload_hook)
            .field("on_reload", &self.on_reload.is_some())
            .field("audit_log", &self.audit_log)
            .field("wait_secs", &self.wait_secs)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

// ---- the plan: what to keep, install and remove ----

/// What a round will do to the plugin directory, before any check of a release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Installed at the pinned manifest digest, files intact.
    pub keep: Vec<DesiredPlugin>,
    /// To check and install, with what is installed now (an update), if anything.
    pub install: Vec<(DesiredPlugin, Option<LockEntry>)>,
    /// Installed, no longer desired.
    pub remove: Vec<LockEntry>,
    /// Entries of the desired set that cannot be acted on (a bad name, a duplicate).
    pub invalid: Vec<ReportedFailure>,
}

/// Compares what `installed` (the lockfile's entries) holds with `desired`; `intact` says
/// whether an entry's files are still exactly what it pins.
pub fn plan(
    installed: &[LockEntry],
    intact: impl Fn(&LockEntry) -> bool,
    desired: &[DesiredPlugin],
) -> Plan {
    let mut plan = Plan::default();
    let mut seen = BTreeSet::new();
    for wanted in desired {
        let name = match wanted.plugin.parse::<PluginRef>() {
            Ok(p) => p.to_string(),
            Err(_) => {
                plan.invalid.push(failure(
                    &wanted.plugin,
                    &wanted.version,
                    "the desired set names it, but it is not PUBLISHER/NAME",
                ));
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            plan.invalid.push(failure(
                &wanted.plugin,
                &wanted.version,
                "the desired set names this plugin more than once; the first entry was used",
            ));
            continue;
        }
        let current = installed.iter().find(|e| e.name == name);
        match current {
            Some(entry)
                if entry.version == wanted.version
                    && entry.manifest_digest.to_string() == wanted.manifest_digest
                    && intact(entry) =>
            {
                plan.keep.push(wanted.clone());
            }
            _ => plan.install.push((wanted.clone(), current.cloned())),
        }
    }
    plan.remove = installed
        .iter()
        .filter(|e| !seen.contains(&e.name))
        .cloned()
        .collect();
    plan
}

/// Whether the host and tenant policies together admit `manifest`; a refusal names the
/// field and whose policy refused.
pub fn admission(
    host: &HostPolicy,
    tenant: &HostPolicy,
    manifest: &Manifest,
) -> Result<(), String> {
    host.admit_with(Some(tenant), manifest)
        .map(drop)
        .map_err(|r| {
            if r.reason.ends_with("(tenant policy)") {
                format!("refused by the tenant policy: {}: {}", r.field, r.reason)
            } else {
                format!("refused by the host policy: {}: {}", r.field, r.reason)
            }
        })
}

/// Checks a release the registry serves for a desired entry before anything is
/// downloaded: exactly the pinned version and manifest digest (a version moved after
/// approval never changes what runs), a lifecycle that may be installed (not yanked,
/// insecure or removed), this host's bounds, and both policies. `Ok` carries a warning
/// (a deprecated release); `Err` the reason it is not installed.
pub fn vet(
    wanted: &DesiredPlugin,
    detail: &VersionDetail,
    host: &HostPolicy,
    tenant: &HostPolicy,
    bounds: &HostBounds,
) -> Result<Option<String>, String> {
    let label = format!("{}@{}", wanted.plugin, wanted.version);
    if format!("{}/{}", detail.publisher, detail.name) != wanted.plugin
        || detail.version != wanted.version
    {
        return Err(format!(
            "the registry answered with {}/{}@{} for {label}",
            detail.publisher, detail.name, detail.version
        ));
    }
    if detail.manifest_digest.to_string() != wanted.manifest_digest {
        return Err(format!(
            "the registry serves {label} with manifest {}, not the approved {}; a release that \
             changed after approval is never installed",
            detail.manifest_digest, wanted.manifest_digest
        ));
    }
    let reason = detail
        .state_reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let warning = match detail.state {
        Lifecycle::Yanked | Lifecycle::Insecure | Lifecycle::Removed => {
            return Err(format!(
                "{label} is {}{reason}; it is never newly installed",
                detail.state.as_str()
            ));
        }
        Lifecycle::Deprecated => Some(format!("{label} is deprecated{reason}")),
        Lifecycle::Active => None,
    };
    if let Some(why) = bounds.incompatibility(&detail.manifest) {
        return Err(format!("{label} cannot run on this host: {why}"));
    }
    let platform = agora_core::manifest::platform();
    if detail.manifest.runtime.kind == RuntimeKind::Exec
        && !detail.manifest.runtime.binaries.contains_key(&platform)
    {
        return Err(format!("{label} has no executable for {platform}"));
    }
    admission(host, tenant, &detail.manifest)?;
    Ok(warning)
}

fn failure(plugin: &str, version: &str, reason: &str) -> ReportedFailure {
    ReportedFailure {
        plugin: one_line(plugin),
        version: one_line(version),
        reason: one_line(reason),
    }
}

/// Outside text made fit for a report: one line, no control characters, bounded.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REPORT_TEXT)
        .collect();
    if text.chars().count() > MAX_REPORT_TEXT {
        out.push('…');
    }
    out
}

// ---- run figures from the runner's audit log ----

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, Default)]
struct Figures {
    calls: u64,
    failures: u64,
    total_ms: f64,
    last_error: Option<String>,
}

/// Runs of one release since the last batch was cut: what analytics receive.
#[derive(Debug, Clone, Default)]
struct Delta {
    calls: u64,
    failures: u64,
    total_ms: f64,
    durations: [u64; agora_core::analytics::DURATION_SLOTS],
    /// Per error class: how many, and the last message.
    errors: BTreeMap<String, (u64, String)>,
    /// When the last of them was read (Unix ms).
    at: i64,
    /// The digest of the code that ran last, as the runner recorded it.
    digest: Option<String>,
}

/// Run figures per plugin and version, from the audit log's JSON lines (see
/// `agora_runner::audit`): each `request` event is a call (a failure when its status
/// is not 2xx), each `failure` event a failed call, each `refused` event a call the
/// policy refused; `duration_ms` adds to the total. At most [`MAX_REPORT_ITEMS`]
/// plugin versions are counted.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    by_release: BTreeMap<(String, String), Figures>,
    /// The same runs since the last [`RunFigures::take_executions`], with their duration
    /// histogram and errors by class.
    pending: BTreeMap<(String, String), Delta>,
}

impl RunFigures {
    /// Counts one audit log line; lines that are no event of interest are ignored.
    pub fn add_line(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let text = |key: &str| event.get(key).and_then(|v| v.as_str());
        let (Some(kind), Some(plugin), Some(version)) =
            (text("event"), text("plugin"), text("version"))
        else {
            return;
        };
        let error = match kind {
            "request" => {
                let status = event.get("status").and_then(|s| s.as_u64()).unwrap_or(0);
                (!(200..300).contains(&status)).then(|| {
                    format!(
                        "answered {status} to {} {}",
                        text("method").unwrap_or("?"),
                        text("path").unwrap_or("?")
                    )
                })
            }
            "failure" => Some(text("error").unwrap_or("failed").to_owned()),
            "refused" => Some(format!(
                "refused: {}: {}",
                text("field").unwrap_or("?"),
                text("reason").unwrap_or("?")
            )),
            _ => return,
        };
        let key = (plugin.to_owned(), version.to_owned());
        if !self.by_release.contains_key(&key) && self.by_release.len() >= MAX_REPORT_ITEMS {
            return;
        }
        let ms = event
            .get("duration_ms")
            .and_then(|d| d.as_f64())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(0.0);
        let delta = self.pending.entry(key.clone()).or_default();
        delta.calls += 1;
        delta.total_ms += ms;
        delta.durations[agora_core::analytics::duration_slot(ms.ceil() as u64)] += 1;
        delta.at = now_ms();
        if let Some(digest) = text("digest").filter(|d| d.parse::<agora_core::Digest>().is_ok()) {
            delta.digest = Some(digest.to_owned());
        }
        let figures = self.by_release.entry(key).or_default();
        figures.calls += 1;
        figures.total_ms += ms;
        if let Some(error) = error {
            figures.failures += 1;
            figures.last_error = Some(one_line(&error));
            delta.failures += 1;
            let class = agora_core::analytics::classify(&error);
            let known = delta.errors.contains_key(class)
                || delta.errors.len() < agora_core::analytics::MAX_ERROR_CLASSES - 1;
            let class = if known {
                class
            } else {
                agora_core::analytics::OTHER_ERROR
            };
            let entry = delta.errors.entry(class.to_owned()).or_default();
            entry.0 += 1;
            entry.1 = one_line(&error);
        }
    }

    /// The runs counted since the last call, as a report's `executions` (and forgets them).
    pub fn take_executions(&mut self) -> Vec<agora_core::analytics::Execution> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((plugin, version), d)| agora_core::analytics::Execution {
                plugin: one_line(&plugin),
                version: one_line(&version),
                digest: d.digest,
                at: d.at,
                calls: d.calls,
                failures: d.failures,
                total_ms: d.total_ms.round() as u64,
                durations: d.durations.to_vec(),
                errors: d
                    .errors
                    .into_iter()
                    .map(
                        |(class, (count, message))| agora_core::analytics::ErrorCount {
                            class,
                            count,
                            message: Some(message),
                        },
                    )
                    .collect(),
            })
            .collect()
    }

    /// The figures as a report lists them.
    pub fn stats(&self) -> Vec<RunStats> {
        self.by_release
            .iter()
            .map(|((plugin, version), f)| RunStats {
                plugin: one_line(plugin),
                version: one_line(version),
                calls: f.calls,
                failures: f.failures,
                total_ms: f.total_ms.round() as u64,
                last_error: f.last_error.clone(),
            })
            .collect()
    }
}

/// Reads what the runner appended to its audit log since the last read (it remembers
/// the offset; a log that shrank or was replaced is read again from its start) into
/// [`RunFigures`] that grow for as long as the agent runs. A partial last line waits for
/// the next read.
#[derive(Debug)]
pub struct AuditReader {
    path: PathBuf,
    offset: u64,
    file: Option<(u64, u64)>,
    pub figures: RunFigures,
}

impl AuditReader {
    pub fn new(path: PathBuf) -> AuditReader {
        AuditReader {
            path,
            offset: 0,
            file: None,
            figures: RunFigures::default(),
        }
    }

    /// Reads the new lines; a log that does not exist (yet) has none.
    pub fn read_new(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        if self.file != Some(id) || meta.len() < self.offset {
            self.file = Some(id);
            self.offset = 0;
        }
        file.seek(std::io::SeekFrom::Start(self.offset))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = std::io::Read::take(&mut reader, MAX_AUDIT_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if read == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') {
                if read <= MAX_AUDIT_LINE {
                    // Not complete yet: read again next time.
                    return Ok(());
                }
                // Too long: skipped to its end.
                let mut skipped = read as u64;
                loop {
                    let buf = reader.fill_buf()?;
                    if buf.is_empty() {
                        return Ok(());
                    }
                    match buf.iter().position(|b| *b == b'\n') {
                        Some(at) => {
                            reader.consume(at + 1);
                            skipped += at as u64 + 1;
                            break;
                        }
                        None => {
                            let n = buf.len();
                            reader.consume(n);
                            skipped += n as u64;
                        }
                    }
                }
                self.offset += skipped;
                continue;
            }
            self.offset += read as u64;
            self.figures.add_line(&String::from_utf8_lossy(&line));
        }
    }
}

// ---- the files under DIR/.agora ----

/// One approval's proof, as `approvals.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalProof {
    pub plugin: String,
    pub version: String,
    pub manifest_digest: String,
    /// The approval's entry in the registry's transparency log.
    pub log_index: i64,
    /// The sealed entry in clear.
    pub log_opening: Option<String>,
}

/// `DIR/.agora/approvals.json`: why each plugin that runs here may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    pub tenant: String,
    pub instance: String,
    pub generation: i64,
    pub plugins: Vec<ApprovalProof>,
}

/// The tenant policy the agent wrote into `dir` (`DIR/.agora/tenant-policy.toml`), if
/// there is one; `agora run` applies it with the host's.
pub fn load_tenant_policy(dir: &Path) -> Result<Option<HostPolicy>, AgentError> {
    let path = dir.join(STATE_DIR).join(TENANT_POLICY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
    };
    let invalid = |reason: String| AgentError::TenantPolicyFile {
        path: path.clone(),
        reason,
    };
    let policy: HostPolicy = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    policy
        .check_for_tenant()
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Some(policy))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) unless it holds
/// them already; whether it wrote.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, AgentError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(parent)?;
        let mut temp = tempfile::NamedTempFile::new_in(parent)?;
        std::io::Write::write_all(&mut temp, bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(io(format!("cannot write {}", path.display())))?;
    Ok(true)
}

fn policy_toml(policy: &HostPolicy) -> Result<String, AgentError> {
    let body = toml::to_string(policy).map_err(|e| AgentError::Io {
        context: "cannot write the tenant policy as TOML".into(),
        source: std::io::Error::other(e),
    })?;
    Ok(format!(
        "# The tenant's policy, written by `agora agent`; `agora run` applies it with the\n\
         # host's. Do not edit: the agent's next change replaces it.\n{body}"
    ))
}

// ---- a round ----

/// One plugin that changed in a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub plugin: String,
    /// The version before (none: newly installed).
    pub from: Option<String>,
    /// The version after (none: removed).
    pub to: Option<String>,
}

/// What one round did.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub tenant: String,
    pub instance: String,
    pub generation: i64,
    /// What the directory holds after the round.
    pub plugins: Vec<ReportedPlugin>,
    pub changes: Vec<Change>,
    /// Plugins left as they were (installed at the pinned digest).
    pub kept: usize,
    pub failures: Vec<ReportedFailure>,
    /// Deprecated releases that were installed.
    pub warnings: Vec<String>,
    /// The tenant policy file changed.
    pub policy_changed: bool,
    /// The reload hook and callback ran.
    pub reloaded: bool,
    /// The reload hook failed.
    pub reload_error: Option<String>,
    /// Some failure may pass on a retry (the registry or the disk, not a refusal).
    #[serde(skip)]
    pub transient: bool,
}

impl Round {
    /// Everything desired runs, and the host was told.
    pub fn converged(&self) -> bool {
        self.failures.is_empty() && self.reload_error.is_none()
    }

    /// One line for the log and the terminal.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for c in &self.changes {
            parts.push(match (&c.from, &c.to) {
                (None, Some(to)) => format!("installed {}@{to}", c.plugin),
                (Some(from), Some(to)) => format!("updated {} {from} \u{2192} {to}", c.plugin),
                (Some(from), None) => format!("removed {}@{from}", c.plugin),
                (None, None) => c.plugin.clone(),
            });
        }
        if self.policy_changed {
            parts.push("tenant policy changed".into());
        }
        if parts.is_empty() {
            parts.push("no change".into());
        }
        parts.push(format!("{} kept", self.kept));
        let head = if self.converged() {
            format!("converged to generation {}", self.generation)
        } else {
            format!(
                "generation {}: {} failure(s)",
                self.generation,
                self.failures.len() + usize::from(self.reload_error.is_some())
            )
        };
        format!(
            "{head} ({}/{}): {}",
            self.tenant,
            self.instance,
            parts.join(", ")
        )
    }
}

fn transient(e: &InstallError) -> bool {
    let client = |e: &ClientError| match e {
        ClientError::Transport { .. } | ClientError::Io { .. } => true,
        other => other.status().is_some_and(|s| s.is_server_error()),
    };
    match e {
        InstallError::Client(e) => client(e),
        InstallError::Log(crate::logcheck::LogCheckError::Client(e)) => client(e),
        InstallError::Lockfile(_) => true,
        _ => false,
    }
}

/// The agent of one instance. [`Agent::run`] is the loop; [`Agent::converge_once`] and
/// [`Agent::report`] one round of it.
pub struct Agent {
    /// With the instance's credential: its desired set and reports.
    instance: Client,
    /// Releases, keys, the log and blobs, read with the instance's credential too: it
    /// sees what its tenant may (public plugins, and the private ones offered to the
    /// tenant), and is accepted by a registry that needs a token for every request.
    reader: Client,
    config: AgentConfig,
    audit: Option<AuditReader>,
    /// The generation the last round applied (what the long poll waits past).
    applied: Option<i64>,
    /// The last round's failures, reported again until a round changes them.
    failures: Vec<ReportedFailure>,
    /// The runs batch sent and not yet accepted, with its number: sent again as it is
    /// until the registry accepts it (which counts a batch number once), while new runs
    /// wait for the next batch.
    executions: Option<(i64, Vec<agora_core::analytics::Execution>)>,
    last_batch: i64,
    /// [`LOCK_FILE`], locked for as long as the agent lives.
    _lock: std::fs::File,
}

/// Takes the directory's [`LOCK_FILE`] (creating `DIR/.agora`), or says who holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, AgentError> {
    let state = dir.join(STATE_DIR);
    std::fs::create_dir_all(&state).map_err(io(format!("cannot create {}", state.display())))?;
    let path = state.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AgentError::Busy {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(io(format!("cannot lock {}", path.display()))(e))
        }
    }
}

impl Agent {
    /// `token` is the instance's `agi_` credential. The agent takes the plugin
    /// directory's lock: a second agent on the same directory is [`AgentError::Busy`].
    pub fn new(registry: &str, token: String, config: AgentConfig) -> Result<Agent, AgentError> {
        let lock = lock_dir(&config.dir)?;
        Ok(Agent {
            _lock: lock,
            instance: Client::new(registry, Some(token.clone()))?,
            reader: Client::new(registry, Some(token))?,
            audit: config.audit_log.clone().map(AuditReader::new),
            executions: None,
            last_batch: 0,
            config,
            applied: None,
            failures: Vec::new(),
        })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// One round: the desired set now, applied.
    pub async fn converge_once(&mut self) -> Result<Round, AgentError> {
        let desired = self.instance.desired_set(None, 0).await?;
        self.apply(desired).await
    }

    /// Brings the plugin directory to `desired`, then writes the files under
    /// `DIR/.agora` and reloads when anything changed.
    pub async fn apply(&mut self, desired: DesiredSet) -> Result<Round, AgentError> {
        let round = self.switch(&desired).await?;
        Ok(self.finish(round, &desired).await)
    }

    /// After the switch: the reload (a failed one makes each plugin it was to bring in a
    /// failure), and what the next round and report start from.
    async fn finish(&mut self, mut round: Round, desired: &DesiredSet) -> Round {
        if round.reloaded
            && let Err(e) = self.reload(desired).await
        {
            for change in &round.changes {
                if let Some(to) = &change.to {
                    round.failures.push(failure(
                        &change.plugin,
                        to,
                        &format!("installed, but the host was not reloaded: {e}"),
                    ));
                }
            }
            round.failures.truncate(MAX_REPORT_ITEMS);
            round.reload_error = Some(e);
        }
        self.applied = Some(desired.generation);
        self.failures = round.failures.clone();
        round
    }

    /// The part of a round up to the reload: checks, downloads, the switch and the files.
    async fn switch(&mut self, desired: &DesiredSet) -> Result<Round, AgentError> {
        desired
            .policy
            .check_for_tenant()
            .map_err(AgentError::TenantPolicy)?;
        let dir = self.config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let old = Lockfile::load(&dir)?;
        let entries = old.as_ref().map(|l| l.plugins.clone()).unwrap_or_default();
        let plan = plan(
            &entries,
            |e| crate::verify::entry_intact(&dir, e),
            &desired.plugins,
        );
        let mut round = Round {
            tenant: desired.tenant.clone(),
            instance: desired.instance.clone(),
            generation: desired.generation,
            plugins: Vec::new(),
            changes: Vec::new(),
            kept: plan.keep.len(),
            failures: plan.invalid.clone(),
            warnings: Vec::new(),
            policy_changed: false,
            reloaded: false,
            reload_error: None,
            transient: false,
        };
        // A kept plugin the policies refuse now stays installed (the runner refuses it).
        for kept in &plan.keep {
            if let Err(reason) = self.admit_installed(&dir, kept, &desired.policy) {
                round
                    .failures
                    .push(failure(&kept.plugin, &kept.version, &reason));
            }
        }
        let mut staging = None;
        let mut staged: Vec<(Staged, Option<String>)> = Vec::new();
        for (wanted, previous) in &plan.install {
            if staging.is_none() {
                staging = Some(Staging::create(&dir).await?);
            }
            let Some(area) = staging.as_mut() else {
                continue;
            };
            match self.stage(area, wanted, &desired.policy).await {
                Ok((release, warning)) => {
                    round.warnings.extend(warning);
                    staged.push((release, previous.as_ref().map(|p| p.version.clone())));
                }
                Err((reason, again)) => {
                    tracing::warn!(plugin = %wanted.plugin, version = %wanted.version, "not installed: {reason}");
                    round.transient |= again;
                    round
                        .failures
                        .push(failure(&wanted.plugin, &wanted.version, &reason));
                }
            }
        }
        let removed: Vec<PluginRef> = plan
            .remove
            .iter()
            .filter_map(|e| e.name.parse().ok())
            .collect();
        if !staged.is_empty() || !removed.is_empty() {
            let mut lock = old.unwrap_or_else(|| Lockfile::new(self.reader.registry()));
            for (release, _) in &staged {
                lock.upsert(release.entry.clone());
            }
            lock.plugins
                .retain(|p| !plan.remove.iter().any(|r| r.name == p.name));
            let releases: Vec<Staged> = staged.iter().map(|(r, _)| r.clone()).collect();
            let result = match &staging {
                Some(area) => area.commit(&dir, &releases, &removed, &lock),
                None => Staging::create(&dir)
                    .await
                    .and_then(|area| area.commit(&dir, &releases, &removed, &lock)),
            };
            match result {
                Ok(()) => {
                    for (release, from) in &staged {
                        round.changes.push(Change {
                            plugin: release.entry.name.clone(),
                            from: from.clone(),
                            to: Some(release.entry.version.clone()),
                        });
                    }
                    for entry in &plan.remove {
                        round.changes.push(Change {
                            plugin: entry.name.clone(),
                            from: Some(entry.version.clone()),
                            to: None,
                        });
                    }
                }
                Err(e) => {
                    let reason = format!("the switch failed, nothing changed: {e}");
                    tracing::error!("{reason}");
                    round.transient = true;
                    for (release, _) in &staged {
                        round.failures.push(failure(
                            &release.entry.name,
                            &release.entry.version,
                            &reason,
                        ));
                    }
                    for entry in &plan.remove {
                        round
                            .failures
                            .push(failure(&entry.name, &entry.version, &reason));
                    }
                }
            }
        }
        drop(staging);
        round.plugins = installed_now(&dir)?;
        let state = dir.join(STATE_DIR);
        round.policy_changed = write_if_changed(
            &state.join(TENANT_POLICY_FILE),
            policy_toml(&desired.policy)?.as_bytes(),
        )?;
        let approvals = Approvals {
            tenant: desired.tenant.clone(),
            instance: desired.instance.clone(),
            generation: desired.generation,
            plugins: desired
                .plugins
                .iter()
                .filter(|d| {
                    round.plugins.iter().any(|p| {
                        p.plugin == d.plugin
                            && p.version == d.version
                            && p.manifest_digest == d.manifest_digest
                    })
                })
                .map(|d| ApprovalProof {
                    plugin: d.plugin.clone(),
                    version: d.version.clone(),
                    manifest_digest: d.manifest_digest.clone(),
                    log_index: d.log_index,
                    log_opening: d.log_opening.clone(),
                })
                .collect(),
        };
        let approvals = serde_json::to_vec_pretty(&approvals).map_err(|e| AgentError::Io {
            context: "cannot write the approvals".into(),
            source: std::io::Error::other(e),
        })?;
        write_if_changed(&state.join(APPROVALS_FILE), &approvals)?;
        round.reloaded = !round.changes.is_empty() || round.policy_changed;
        round.failures.truncate(MAX_REPORT_ITEMS);
        Ok(round)
    }

    /// A kept plugin under the policies as they are now, from its installed manifest.
    fn admit_installed(
        &self,
        dir: &Path,
        kept: &DesiredPlugin,
        tenant: &HostPolicy,
    ) -> Result<(), String> {
        let path = kept
            .plugin
            .split('/')
            .fold(dir.to_path_buf(), |p, part| p.join(part))
            .join(agora_core::manifest::MANIFEST_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let manifest = Manifest::from_yaml(&text)
            .map_err(|e| format!("{} is not a valid manifest: {e}", path.display()))?;
        admission(&self.config.host_policy, tenant, &manifest)
    }

    /// Checks a desired release and downloads it into the staging area; a failure's
    /// reason, and whether a retry may help.
    async fn stage(
        &self,
        staging: &mut Staging,
        wanted: &DesiredPlugin,
        tenant: &HostPolicy,
    ) -> Result<(Staged, Option<String>), (String, bool)> {
        let plugin: PluginRef = wanted
            .plugin
            .parse()
            .map_err(|_| ("not PUBLISHER/NAME".to_owned(), false))?;
        let detail = self
            .reader
            .version(
                plugin.publisher.as_str(),
                plugin.name.as_str(),
                &wanted.version,
            )
            .await
            .map_err(|e| {
                let e = InstallError::Client(e);
                (e.to_string(), transient(&e))
            })?;
        let host = &self.config.host_policy;
        let warning = vet(wanted, &detail, host, tenant, &self.config.trust.host)
            .map_err(|reason| (reason, false))?;
        let release = staging
            .stage(
                &self.reader,
                &self.config.trust,
                plugin,
                &detail,
                Some(format!("={}", detail.version)),
            )
            .await
            .map_err(|e| (e.to_string(), transient(&e)))?;
        if (host.require_verified || tenant.require_verified)
            && release.entry.verification.as_deref() != Some("verified")
        {
            let whose = if host.require_verified {
                "host"
            } else {
                "tenant"
            };
            return Err((
                format!(
                    "{}@{} is {} and the {whose} policy runs only verified releases (require_verified)",
                    wanted.plugin,
                    wanted.version,
                    release
                        .entry
                        .verification
                        .as_deref()
                        .unwrap_or("not verified yet")
                ),
                false,
            ));
        }
        Ok((release, warning))
    }

    /// Tells the host: the reload hook, then the callback.
    async fn reload(&self, desired: &DesiredSet) -> Result<(), String> {
        let dir = std::path::absolute(&self.config.dir).unwrap_or(self.config.dir.clone());
        if let Some(callback) = &self.config.on_reload {
            callback(&Reloaded {
                dir: dir.clone(),
                generation: desired.generation,
                tenant_policy: desired.policy.clone(),
            });
        }
        let Some(hook) = &self.config.reload_hook else {
            return Ok(());
        };
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(hook)
            .env("AGORA_AGENT_DIR", &dir)
            .env("AGORA_GENERATION", desired.generation.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::io::stderr())
            .kill_on_drop(true);
        let status = tokio::time::timeout(RELOAD_HOOK_TIMEOUT, command.status()).await;
        match status {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(format!("the reload hook `{hook}` failed ({s})")),
            Ok(Err(e)) => Err(format!("the reload hook `{hook}` could not start: {e}")),
            Err(_) => Err(format!(
                "the reload hook `{hook}` ran longer than {RELOAD_HOOK_TIMEOUT:?} and was killed"
            )),
        }
    }

    /// The report of `generation`: the plugins installed now, the last round's failures,
    /// and the run figures read so far.
    pub fn build_report(&mut self, generation: i64) -> Result<InstanceReport, AgentError> {
        let mut plugins = installed_now(&self.config.dir)?;
        plugins.truncate(MAX_REPORT_ITEMS);
        let runs = match &mut self.audit {
            Some(reader) => {
                if let Err(e) = reader.read_new() {
                    tracing::warn!("cannot read the audit log {}: {e}", reader.path.display());
                }
                if self.executions.is_none() {
                    let executions = reader.figures.take_executions();
                    if !executions.is_empty() {
                        // Batch numbers grow: the time, or one more than the last.
                        let number = now_ms().max(self.last_batch + 1);
                        self.last_batch = number;
                        self.executions = Some((number, executions));
                    }
                }
                reader.figures.stats()
            }
            None => Vec::new(),
        };
        let (batch, executions) = match &self.executions {
            Some((number, executions)) => (Some(*number), executions.clone()),
            None => (None, Vec::new()),
        };
        let mut report = InstanceReport {
            core_version: self
                .config
                .core_version
                .clone()
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
            runner_version: env!("CARGO_PKG_VERSION").to_owned(),
            platform: agora_core::manifest::platform(),
            generation,
            plugins,
            failures: self.failures.clone(),
            runs,
            executions,
            batch,
        };
        fit(&mut report);
        Ok(report)
    }

    /// Sends the report of `generation`.
    pub async fn report(&mut self, generation: i64) -> Result<(), AgentError> {
        let report = self.build_report(generation)?;
        tokio::time::timeout(REPORT_TIMEOUT, self.instance.report_instance(&report))
            .await
            .map_err(|_| AgentError::ReportTimeout(REPORT_TIMEOUT))??;
        // Accepted: the batch counted, the next report starts a new one.
        self.executions = None;
        Ok(())
    }

    /// The loop: long-polls for changes, converges on each, reports after every round
    /// (and at least once per interval when nothing changes), retries the registry with
    /// backoff, until `shutdown` resolves. Never returns on a registry error.
    pub async fn run(&mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let wait = self.config.wait_secs.min(MAX_WAIT_SECS);
        let interval = self.config.interval.max(Duration::from_secs(1));
        let mut attempt = 0u32;
        let mut again = false;
        let mut last_report: Option<Instant> = None;
        loop {
            let after = if again { None } else { self.applied };
            let asked = Instant::now();
            let fetched = tokio::select! {
                r = self.instance.desired_set(after, if after.is_some() { wait } else { 0 }) => r,
                () = &mut shutdown => return,
            };
            let desired = match fetched {
                Ok(desired) => desired,
                Err(e) => {
                    attempt += 1;
                    let delay = backoff(attempt, interval, random());
                    tracing::warn!(
                        "the registry did not give the desired set ({e}); the directory stays as it is, retrying in {delay:?}"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = &mut shutdown => return,
                    }
                }
            };
            let generation = desired.generation;
            let changed = again || self.applied != Some(generation);
            if changed {
                // Cancellable up to the switch, which is one synchronous step; the
                // reload after it always completes.
                let switched = tokio::select! {
                    r = self.switch(&desired) => r,
                    () = &mut shutdown => return,
                };
                let round = match switched {
                    Ok(round) => self.finish(round, &desired).await,
                    Err(e) => {
                        attempt += 1;
                        let delay = backoff(attempt, interval, random());
                        tracing::error!(
                            "cannot apply generation {generation}: {e}; retrying in {delay:?}"
                        );
                        again = true;
                        tokio::select! {
                            () = tokio::time::sleep(delay) => continue,
                            () = &mut shutdown => return,
                        }
                    }
                };
                log_round(&round);
                again = round.transient;
                last_report = self.report_logged(generation).await.then(Instant::now);
            } else if last_report.is_none_or(|t| t.elapsed() >= interval) {
                last_report = self.report_logged(generation).await.then(Instant::now);
            }
            let pause = if again || last_report.is_none() {
                attempt += 1;
                backoff(attempt, interval, random())
            } else if changed {
                attempt = 0;
                Duration::ZERO
            } else {
                attempt = 0;
                // A registry that answers at once although nothing changed (it does not
                // hold long polls) is not asked more than once per wait.
                Duration::from_secs(wait.into()).saturating_sub(asked.elapsed())
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut shutdown => return,
                }
            }
        }
    }

    async fn report_logged(&mut self, generation: i64) -> bool {
        match self.report(generation).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("cannot report to the registry: {e}");
                false
            }
        }
    }
}

/// The round's outcome at `info` (failures at `warn`).
pub fn log_round(round: &Round) {
    if round.converged() {
        tracing::info!("{}", round.summary());
    } else {
        tracing::warn!("{}", round.summary());
        for f in &round.failures {
            tracing::warn!(plugin = %f.plugin, version = %f.version, "{}", f.reason);
        }
        if let Some(e) = &round.reload_error {
            tracing::warn!("{e}");
        }
    }
    for w in &round.warnings {
        tracing::warn!("{w}");
    }
}

/// What `dir/agora.lock` holds, as a report lists it.
fn installed_now(dir: &Path) -> Result<Vec<ReportedPlugin>, AgentError> {
    Ok(Lockfile::load(dir)?
        .map(|l| l.plugins)
        .unwrap_or_default()
        .into_iter()
        .map(|e| ReportedPlugin {
            plugin: e.name,
            version: e.version,
            manifest_digest: e.manifest_digest.to_string(),
        })
        .collect())
}

/// Shortens a report to what the registry accepts ([`MAX_REPORT_BYTES`]): the run
/// figures' errors are cut first, then the run figures, then the failures, by halves.
fn fit(report: &mut InstanceReport) {
    let size = |r: &InstanceReport| serde_json::to_vec(r).map_or(0, |v| v.len());
    if size(report) <= MAX_REPORT_BYTES {
        return;
    }
    for run in &mut report.runs {
        run.last_error = run.last_error.take().map(|e| e.chars().take(80).collect());
    }
    for e in report.executions.iter_mut().flat_map(|x| &mut x.errors) {
        e.message = e.message.take().map(|m| m.chars().take(80).collect());
    }
    while size(report) > MAX_REPORT_BYTES && !report.executions.is_empty() {
        report.executions.truncate(report.executions.len() / 2);
    }
    while size(report) > MAX_REPORT_BYTES && !report.runs.is_empty() {
        report.runs.truncate(report.runs.len() / 2);
    }
    while size(report) > MAX_REPORT_BYTES && !report.failures.is_empty() {
        report.failures.truncate(report.failures.len() / 2);
    }
}

/// The delay before retry `attempt` (1, 2, ...): 1 s doubling, capped at `cap`, plus up
/// to half of it again drawn from `random`.
pub fn backoff(attempt: u32, cap: Duration, random: u64) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(cap);
    let spread = (base.as_millis() / 2) as u64;
    base + Duration::from_millis(if spread == 0 {
        0
    } else {
        random % (spread + 1)
    })
}

fn random() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::Digest;
    use agora_core::policy::{Limits, Mode};
    use agora_core::tenant::Reach;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    const MANIFEST: &str = "api_version: agora/v1\npublisher: acme\nname: jira\nversion: 1.2.0\n\
        description: d\nlicense: MIT\nruntime: { type: wasm, module: p.wasm }\n";

    fn digest(text: &str) -> Digest {
        Digest::of(text.as_bytes())
    }

    fn entry(name: &str, version: &str) -> LockEntry {
        LockEntry {
            name: name.into(),
            version: version.into(),
            manifest_digest: digest(&format!("{name}@{version}")),
            artifacts: Vec::new(),
            signer_key: None,
            log_index: None,
            requirement: None,
            verification: None,
        }
    }

    fn wanted(name: &str, version: &str) -> DesiredPlugin {
        DesiredPlugin {
            plugin: name.into(),
            version: version.into(),
            manifest_digest: digest(&format!("{name}@{version}")).to_string(),
            reach: Reach::default(),
            approved_at: 0,
            log_index: 7,
            log_opening: Some("{}".into()),
        }
    }

    fn open() -> HostPolicy {
        HostPolicy {
            mode: Mode::Open,
            ..HostPolicy::default()
        }
    }

    fn bounds() -> HostBounds {
        HostBounds {
            runner_apis: vec!["v1".into()],
            runner_version: semver::Version::new(0, 1, 0),
            core_version: Some(semver::Version::new(2, 0, 0)),
        }
    }

    fn detail(manifest: &str, state: Lifecycle) -> VersionDetail {
        let manifest = Manifest::from_yaml(manifest).unwrap();
        VersionDetail {
            publisher: manifest.publisher.to_string(),
            name: manifest.name.to_string(),
            version: manifest.version.to_string(),
            state,
            state_reason: (state != Lifecycle::Active).then(|| "GHSA-1234".into()),
            replacement: None,
            manifest_digest: digest(&format!("{}@{}", manifest.plugin_ref(), manifest.version)),
            manifest,
            artifacts: Vec::new(),
            signature: None,
            downloads: 0,
            published_at: "2026-01-01T00:00:00.000Z".into(),
            published_by: "ada".into(),
            signer_key: None,
            log_index: Some(3),
        }
    }

    #[test]
    fn the_plan_keeps_what_is_pinned_and_intact_and_installs_or_removes_the_rest() {
        let installed = [
            entry("acme/kept", "1.0.0"),
            entry("acme/older", "1.0.0"),
            entry("acme/tampered", "1.0.0"),
            entry("acme/gone", "3.0.0"),
        ];
        let mut moved = wanted("acme/moved", "1.0.0");
        moved.manifest_digest = digest("another manifest").to_string();
        let installed = [&installed[..], &[entry("acme/moved", "1.0.0")]].concat();
        let desired = [
            wanted("acme/kept", "1.0.0"),
            wanted("acme/older", "2.0.0"),
            wanted("acme/tampered", "1.0.0"),
            wanted("acme/new", "0.1.0"),
            moved,
            wanted("acme/kept", "9.0.0"),
            wanted("not a name", "1.0.0"),
        ];
        let plan = plan(&installed, |e| e.name != "acme/tampered", &desired);
        let names = |list: Vec<&str>| list.into_iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            plan.keep
                .iter()
                .map(|d| d.plugin.clone())
                .collect::<Vec<_>>(),
            names(vec!["acme/kept"])
        );
        let install: Vec<(String, Option<String>)> = plan
            .install
            .iter()
            .map(|(d, prev)| (d.plugin.clone(), prev.as_ref().map(|p| p.version.clone())))
            .collect();
        assert_eq!(
            install,
            vec![
                ("acme/older".into(), Some("1.0.0".into())),
                ("acme/tampered".into(), Some("1.0.0".into())),
                ("acme/new".into(), None),
                // Same version, other manifest: installed again, and vetted.
                ("acme/moved".into(), Some("1.0.0".into())),
            ]
        );
        assert_eq!(
            plan.remove
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>(),
            names(vec!["acme/gone"])
        );
        let invalid: Vec<&str> = plan.invalid.iter().map(|f| f.plugin.as_str()).collect();
        assert_eq!(invalid, ["acme/kept", "not a name"]);
        assert!(plan.invalid[0].reason.contains("more than once"));
        // Nothing desired: everything goes.
        assert_eq!(plan_of_nothing(&installed).remove.len(), installed.len());
    }

    fn plan_of_nothing(installed: &[LockEntry]) -> Plan {
        plan(installed, |_| true, &[])
    }

    #[test]
    fn a_release_is_vetted_against_the_pin_its_lifecycle_the_host_and_both_policies() {
        let want = wanted("acme/jira", "1.2.0");
        let ok = detail(MANIFEST, Lifecycle::Active);
        assert_eq!(vet(&want, &ok, &open(), &open(), &bounds()), Ok(None));
        // A version whose manifest moved after approval.
        let mut moved = ok.clone();
        moved.manifest_digest = digest("republished");
        let why = vet(&want, &moved, &open(), &open(), &bounds()).unwrap_err();
        assert!(why.contains("not the approved"), "{why}");
        // Lifecycle: never newly installed when yanked, insecure or removed.
        for state in [Lifecycle::Yanked, Lifecycle::Insecure, Lifecycle::Removed] {
            let why =
                vet(&want, &detail(MANIFEST, state), &open(), &open(), &bounds()).unwrap_err();
            assert_eq!(
                why,
                format!(
                    "acme/jira@1.2.0 is {}: GHSA-1234; it is never newly installed",
                    state.as_str()
                )
            );
        }
        let warning = vet(
            &want,
            &detail(MANIFEST, Lifecycle::Deprecated),
            &open(),
            &open(),
            &bounds(),
        )
        .unwrap();
        assert_eq!(
            warning.as_deref(),
            Some("acme/jira@1.2.0 is deprecated: GHSA-1234")
        );
        // The host's policy, then the tenant's, each named.
        let curated = HostPolicy::default();
        let why = vet(&want, &ok, &curated, &open(), &bounds()).unwrap_err();
        assert!(
            why.starts_with("refused by the host policy: mode: this host runs curated plugins"),
            "{why}"
        );
        let tenant = HostPolicy {
            limits: Limits {
                memory_mb: 16,
                ..Limits::default()
            },
            defaults: Limits {
                memory_mb: 16,
                ..HostPolicy::default().defaults
            },
            ..open()
        };
        let greedy = detail(
            &format!("{MANIFEST}resources: {{ memory_mb: 32 }}\n"),
            Lifecycle::Active,
        );
        let why = vet(&want, &greedy, &open(), &tenant, &bounds()).unwrap_err();
        assert_eq!(
            why,
            "refused by the tenant policy: resources.memory_mb: asks for 32 MiB; the tenant \
             allows at most 16 MiB (tenant policy)"
        );
        // This host's bounds.
        let newer_core = detail(
            &format!("{MANIFEST}compatibility: {{ min_core: 3.0.0 }}\n"),
            Lifecycle::Active,
        );
        let why = vet(&want, &newer_core, &open(), &open(), &bounds()).unwrap_err();
        assert!(why.contains("cannot run on this host"), "{why}");
        let elsewhere = if agora_core::manifest::platform() == "windows-aarch64" {
            "linux-x86_64"
        } else {
            "windows-aarch64"
        };
        let native = detail(
            &MANIFEST.replace(
                "{ type: wasm, module: p.wasm }",
                &format!("{{ type: exec, binaries: {{ {elsewhere}: bin/p }} }}"),
            ),
            Lifecycle::Active,
        );
        let why = vet(&want, &native, &open(), &open(), &bounds()).unwrap_err();
        assert!(why.contains("has no executable for"), "{why}");
    }

    #[test]
    fn run_figures_come_from_the_audit_log_per_plugin_version() {
        let lines = [
            r#"{"ts":"t","event":"pull","plugin":"acme/jira","version":"1.0.0","digest":"d","runtime":"wasm","path":"x"}"#,
            r#"{"ts":"t","event":"request","plugin":"acme/jira","version":"1.0.0","digest":"d","runtime":"wasm","method":"POST","path":"/a","status":200,"duration_ms":12.4}"#,
            r#"{"ts":"t","event":"request","plugin":"acme/jira","version":"1.0.0","digest":"d","runtime":"wasm","method":"POST","path":"/a","status":500,"duration_ms":3.3}"#,
            r#"{"ts":"t","event":"failure","plugin":"acme/jira","version":"1.0.0","digest":"d","runtime":"wasm","method":"POST","path":"/b","error":"the request ran past its timeout\nof 100 ms","duration_ms":100.0}"#,
            r#"{"ts":"t","event":"request","plugin":"acme/jira","version":"1.1.0","digest":"e","runtime":"wasm","method":"POST","path":"/a","status":201,"duration_ms":1.0}"#,
            r#"{"ts":"t","event":"refused","plugin":"acme/evil","version":"0.1.0","digest":"f","runtime":"exec","field":"deny","reason":"no"}"#,
            r#"{"ts":"t","event":"denial","plugin":"acme/jira","version":"1.0.0","denied":"host"}"#,
            "not json at all",
            r#"{"event":"request"}"#,
        ];
        let mut figures = RunFigures::default();
        for line in lines {
            figures.add_line(line);
        }
        let stats = figures.stats();
        assert_eq!(
            stats,
            vec![
                RunStats {
                    plugin: "acme/evil".into(),
                    version: "0.1.0".into(),
                    calls: 1,
                    failures: 1,
                    total_ms: 0,
                    last_error: Some("refused: deny: no".into()),
                },
                RunStats {
                    plugin: "acme/jira".into(),
                    version: "1.0.0".into(),
                    calls: 3,
                    failures: 2,
                    total_ms: 116,
                    last_error: Some("the request ran past its timeout of 100 ms".into()),
                },
                RunStats {
                    plugin: "acme/jira".into(),
                    version: "1.1.0".into(),
                    calls: 1,
                    failures: 0,
                    total_ms: 1,
                    last_error: None,
                },
            ]
        );
        // The same runs as analytics deltas: durations in their histogram slots, errors
        // by class with the last message; taken once.
        let executions = figures.take_executions();
        let jira: Vec<_> = executions
            .iter()
            .map(|e| {
                (
                    e.plugin.as_str(),
                    e.version.as_str(),
                    e.calls,
                    e.failures,
                    e.total_ms,
                )
            })
            .collect();
        assert_eq!(
            jira,
            [
                ("acme/evil", "0.1.0", 1, 1, 0),
                ("acme/jira", "1.0.0", 3, 2, 116),
                ("acme/jira", "1.1.0", 1, 0, 1)
            ]
        );
        let mut slots = vec![0u64; agora_core::analytics::DURATION_SLOTS];
        slots[agora_core::analytics::duration_slot(13)] += 1;
        slots[agora_core::analytics::duration_slot(4)] += 1;
        slots[agora_core::analytics::duration_slot(100)] += 1;
        assert_eq!(executions[1].durations, slots);
        let classes: Vec<_> = executions[1]
            .errors
            .iter()
            .map(|e| (e.class.as_str(), e.count))
            .collect();
        assert_eq!(classes, [("status-5xx", 1), ("timeout", 1)]);
        assert_eq!(executions[0].errors[0].class, "refused");
        assert!(figures.take_executions().is_empty(), "taken once");
        assert_eq!(figures.stats(), stats, "the running totals stay");

        // Bounded: releases beyond the report's limit are not counted.
        let mut many = RunFigures::default();
        for i in 0..MAX_REPORT_ITEMS + 5 {
            many.add_line(&format!(
                r#"{{"event":"request","plugin":"p/n","version":"{i}.0.0","status":200}}"#
            ));
        }
        assert_eq!(many.stats().len(), MAX_REPORT_ITEMS);
    }

    #[test]
    fn the_audit_log_is_read_from_where_the_last_read_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut reader = AuditReader::new(path.clone());
        reader.read_new().unwrap(); // no log yet: nothing
        let call =
            r#"{"event":"request","plugin":"a/b","version":"1.0.0","status":200,"duration_ms":5}"#;
        let append = |text: &str| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append(&format!("{call}\n{call}\n"));
        reader.read_new().unwrap();
        assert_eq!(reader.figures.stats()[0].calls, 2);
        // A line being written is read once it is complete.
        let (head, tail) = call.split_at(20);
        append(head);
        reader.read_new().unwrap();
        assert_eq!(reader.figures.stats()[0].calls, 2);
        append(&format!("{tail}\n"));
        reader.read_new().unwrap();
        assert_eq!(reader.figures.stats()[0].calls, 3);
        // An overlong line is skipped, what follows is read.
        append(&format!("{}\n{call}\n", "x".repeat(MAX_AUDIT_LINE * 2)));
        reader.read_new().unwrap();
        assert_eq!(reader.figures.stats()[0].calls, 4);
        reader.read_new().unwrap();
        assert_eq!(reader.figures.stats()[0].calls, 4, "nothing is read twice");
        // A rotated log (a new, shorter file) is read from its start; totals keep growing.
        std::fs::remove_file(&path).unwrap();
        append(&format!("{call}\n"));
        reader.read_new().unwrap();
        let stats = reader.figures.stats();
        assert_eq!((stats[0].calls, stats[0].total_ms), (5, 25));
    }

    #[test]
    fn retries_back_off_to_the_interval_with_bounded_jitter() {
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(1, cap, 0), Duration::from_secs(1));
        assert_eq!(backoff(2, cap, 0), Duration::from_secs(2));
        assert_eq!(backoff(5, cap, 0), Duration::from_secs(16));
        assert_eq!(backoff(6, cap, 0), cap);
        assert_eq!(backoff(1000, cap, 0), cap);
        for random in [1, 499, 500, 7_777, u64::MAX] {
            let d = backoff(1000, cap, random);
            assert!(d >= cap && d <= cap + cap / 2, "{d:?}");
        }
        assert_eq!(
            backoff(3, Duration::from_secs(1), 0),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_report_is_cut_to_what_the_registry_accepts() {
        let run = |i: usize| RunStats {
            plugin: "acme/jira".into(),
            version: format!("{i}.0.0"),
            calls: 1,
            failures: 1,
            total_ms: 1,
            last_error: Some("e".repeat(MAX_REPORT_TEXT)),
        };
        let mut report = InstanceReport {
            core_version: "1.0.0".into(),
            runner_version: "0.1.0".into(),
            platform: "linux-x86_64".into(),
            generation: 1,
            plugins: Vec::new(),
            failures: vec![failure("acme/jira", "1.0.0", &"f".repeat(MAX_REPORT_TEXT)); 10],
            runs: (0..MAX_REPORT_ITEMS).map(run).collect(),
            executions: Vec::new(),
            batch: None,
        };
        fit(&mut report);
        let size = serde_json::to_vec(&report).unwrap().len();
        assert!(size <= MAX_REPORT_BYTES, "{size}");
        assert_eq!(report.failures.len(), 10, "failures stay while runs can go");
        assert!(report.runs.len() >= MAX_REPORT_ITEMS / 2);
    }

    #[test]
    fn the_tenant_policy_file_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_tenant_policy(dir.path()).unwrap().is_none());
        let policy = HostPolicy::from_toml(
            "mode = \"curated\"\nallow = [\"acme/*\"]\n[limits]\nmemory_mb = 64\n\
             [defaults]\nmemory_mb = 32\n[network]\nallowed_hosts = [\"*.example.com\"]\n\
             [sandbox]\nlandlock_max_abi = 4\n",
        )
        .unwrap();
        let policy = HostPolicy {
            secrets: vec![agora_core::policy::SecretGrant {
                plugin: "acme/jira".into(),
                name: "JIRA_TOKEN".into(),
                from_env: None,
                from_file: None,
            }],
            ..policy
        };
        let path = dir.path().join(STATE_DIR).join(TENANT_POLICY_FILE);
        assert!(write_if_changed(&path, policy_toml(&policy).unwrap().as_bytes()).unwrap());
        assert!(!write_if_changed(&path, policy_toml(&policy).unwrap().as_bytes()).unwrap());
        assert_eq!(load_tenant_policy(dir.path()).unwrap(), Some(policy));
        // A secret's value never comes from the tenant's policy.
        std::fs::write(
            &path,
            "[[secrets]]\nplugin = \"*\"\nname = \"A\"\nfrom_env = \"HOME_SECRET\"\n",
        )
        .unwrap();
        let err = load_tenant_policy(dir.path()).unwrap_err().to_string();
        assert!(err.contains("each host supplies its value"), "{err}");
    }

    type Seen = Arc<std::sync::Mutex<Vec<(String, String)>>>;

    /// A registry that answers every request with `body` (JSON, 200); it keeps each
    /// request line and body.
    async fn registry_answering(body: String) -> (String, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen: Seen = Default::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (read, _) = socket.split();
                let mut reader = tokio::io::BufReader::new(read);
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line).await;
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).await.unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut request = vec![0u8; length];
                let _ = reader.read_exact(&mut request).await;
                log.lock().unwrap().push((
                    request_line.trim_end().to_owned(),
                    String::from_utf8_lossy(&request).into_owned(),
                ));
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (url, seen)
    }

    fn agent(
        registry: &str,
        dir: &Path,
        hook: Option<String>,
    ) -> (Agent, Arc<std::sync::Mutex<Vec<i64>>>) {
        let trust = TrustConfig {
            log_state: dir.join("log.json"),
            pinning: crate::logcheck::Pinning {
                configured_key: None,
                repin: false,
            },
            host: bounds(),
            oci: Default::default(),
        };
        let mut config = AgentConfig::new(dir.join("plugins"), trust, open());
        config.reload_hook = hook;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        config.on_reload = Some(Arc::new(move |r: &Reloaded| {
            log.lock().unwrap().push(r.generation)
        }));
        (
            Agent::new(registry, "agi_test".into(), config).unwrap(),
            seen,
        )
    }

    fn desired(generation: i64, plugins: Vec<DesiredPlugin>) -> DesiredSet {
        DesiredSet {
            tenant: "acme-corp".into(),
            instance: "web-1".into(),
            generation,
            policy: open(),
            plugins,
        }
    }

    /// Puts `entry` in `dir` as if installed: its directory and lockfile entry.
    fn preinstall(dir: &Path, entries: &[LockEntry]) {
        let mut lock = Lockfile::new("http://registry/");
        for e in entries {
            std::fs::create_dir_all(e.name.split('/').fold(dir.to_path_buf(), |p, s| p.join(s)))
                .unwrap();
            lock.upsert(e.clone());
        }
        lock.save(dir).unwrap();
    }

    #[tokio::test]
    async fn a_refused_update_keeps_the_previous_version_and_removals_switch_in_one_step() {
        let yanked = detail(MANIFEST, Lifecycle::Yanked);
        let (registry, _) = registry_answering(serde_json::to_string(&yanked).unwrap()).await;
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("hook.out");
        let (mut agent, reloads) = agent(
            &registry,
            tmp.path(),
            Some(format!(
                "echo \"$AGORA_GENERATION $AGORA_AGENT_DIR\" >> {}",
                out.display()
            )),
        );
        let dir = tmp.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        preinstall(
            &dir,
            &[entry("acme/jira", "1.0.0"), entry("acme/gone", "1.0.0")],
        );
        let round = agent
            .apply(desired(4, vec![wanted("acme/jira", "1.2.0")]))
            .await
            .unwrap();
        assert!(!round.converged());
        assert_eq!(round.failures.len(), 1);
        assert_eq!(
            round.failures[0].reason,
            "acme/jira@1.2.0 is yanked: GHSA-1234; it is never newly installed"
        );
        assert_eq!(
            round.changes,
            vec![Change {
                plugin: "acme/gone".into(),
                from: Some("1.0.0".into()),
                to: None
            }]
        );
        // The previous version stays; the removed one is gone, with its publisher's directory.
        let lock = Lockfile::load(&dir).unwrap().unwrap();
        assert_eq!(lock.plugins, vec![entry("acme/jira", "1.0.0")]);
        assert!(dir.join("acme/jira").is_dir() && !dir.join("acme/gone").exists());
        assert!(!dir.join(".agora-tmp").exists());
        // The files under .agora, then the reload (hook and callback) with the generation.
        assert_eq!(load_tenant_policy(&dir).unwrap(), Some(open()));
        let approvals: Approvals =
            serde_json::from_slice(&std::fs::read(dir.join(".agora/approvals.json")).unwrap())
                .unwrap();
        assert_eq!(approvals.generation, 4);
        assert!(
            approvals.plugins.is_empty(),
            "1.0.0 is not what was approved"
        );
        assert!(round.reloaded && round.reload_error.is_none());
        let hook = std::fs::read_to_string(&out).unwrap();
        assert_eq!(hook.trim(), format!("4 {}", dir.display()));
        assert_eq!(*reloads.lock().unwrap(), [4]);
        assert_eq!(
            round.summary(),
            "generation 4: 1 failure(s) (acme-corp/web-1): removed acme/gone@1.0.0, tenant policy changed, 0 kept"
        );
        // The report: what runs now, the failure, this host.
        let report = agent.build_report(4).unwrap();
        assert_eq!(report.plugins.len(), 1);
        assert_eq!(report.plugins[0].version, "1.0.0");
        assert_eq!(report.failures, round.failures);
        assert_eq!(report.platform, agora_core::manifest::platform());
        assert_eq!(report.core_version, env!("CARGO_PKG_VERSION"));
        // Nothing changed: no reload, nothing written.
        let again = agent
            .apply(desired(5, vec![wanted("acme/jira", "1.2.0")]))
            .await
            .unwrap();
        assert!(!again.reloaded && again.changes.is_empty());
        assert_eq!(*reloads.lock().unwrap(), [4]);
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_a_failure_that_may_pass_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let (mut agent, _) = agent(&url, tmp.path(), Some("exit 3".into()));
        let dir = tmp.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        preinstall(&dir, &[entry("acme/jira", "1.0.0")]);
        let round = agent
            .apply(desired(1, vec![wanted("acme/jira", "1.2.0")]))
            .await
            .unwrap();
        assert!(round.transient);
        assert_eq!(round.failures.len(), 1);
        assert!(round.changes.is_empty());
        assert_eq!(
            Lockfile::load(&dir).unwrap().unwrap().plugins,
            vec![entry("acme/jira", "1.0.0")]
        );
        // The policy file was new: the host was reloaded, and the hook's failure is said.
        assert!(round.reloaded);
        assert!(
            round
                .reload_error
                .as_deref()
                .is_some_and(|e| e.contains("`exit 3` failed")),
            "{:?}",
            round.reload_error
        );
        assert!(agent.converge_once().await.is_err());
    }

    #[tokio::test]
    async fn the_loop_converges_reports_and_long_polls_past_the_applied_generation() {
        let set = desired(3, Vec::new());
        let (registry, seen) = registry_answering(serde_json::to_string(&set).unwrap()).await;
        let tmp = tempfile::tempdir().unwrap();
        let (mut agent, reloads) = agent(&registry, tmp.path(), None);
        agent.config.wait_secs = 1;
        agent.config.interval = Duration::from_secs(1);
        let dir = tmp.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        preinstall(&dir, &[entry("acme/gone", "1.0.0")]);
        agent
            .run(tokio::time::sleep(Duration::from_millis(2500)))
            .await;
        assert!(Lockfile::load(&dir).unwrap().unwrap().plugins.is_empty());
        assert_eq!(*reloads.lock().unwrap(), [3], "one change, one reload");
        let seen = seen.lock().unwrap().clone();
        let lines: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        assert!(
            lines[0].starts_with("GET /api/v1/instance/desired HTTP"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("POST /api/v1/instance/report"),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("GET /api/v1/instance/desired?after=3&wait=1"),
            "{lines:?}"
        );
        let report: InstanceReport = serde_json::from_str(&seen[1].1).unwrap();
        assert_eq!(report.generation, 3);
        assert!(report.plugins.is_empty() && report.converged());
        // This registry answers at once: asked about once a second, reported once per interval.
        let polls = lines.iter().filter(|l| l.starts_with("GET")).count();
        assert!((2..=5).contains(&polls), "{lines:?}");
        let reports = lines.iter().filter(|l| l.starts_with("POST")).count();
        assert!((1..=4).contains(&reports), "{lines:?}");
    }

    #[tokio::test]
    async fn the_loop_outlasts_an_unreachable_registry_until_it_is_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let (mut agent, reloads) = agent(&url, tmp.path(), None);
        agent.config.interval = Duration::from_secs(1);
        let dir = tmp.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        preinstall(&dir, &[entry("acme/jira", "1.0.0")]);
        let started = Instant::now();
        agent
            .run(tokio::time::sleep(Duration::from_millis(1500)))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(1500));
        assert_eq!(
            Lockfile::load(&dir).unwrap().unwrap().plugins,
            vec![entry("acme/jira", "1.0.0")]
        );
        assert!(reloads.lock().unwrap().is_empty());
        for file in [TENANT_POLICY_FILE, APPROVALS_FILE] {
            assert!(!dir.join(STATE_DIR).join(file).exists(), "{file}");
        }
    }

    #[tokio::test]
    async fn one_agent_keeps_a_directory_a_second_is_refused_until_the_first_stops() {
        let tmp = tempfile::tempdir().unwrap();
        let (first, _) = agent("http://127.0.0.1:9/", tmp.path(), None);
        let config = first.config().clone();
        match Agent::new("http://127.0.0.1:9/", "agi_test".into(), config.clone()) {
            Err(e @ AgentError::Busy { .. }) => {
                let text = e.to_string();
                assert!(text.contains("another agora agent keeps"), "{text}");
                assert!(text.contains(LOCK_FILE), "{text}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("two agents on one directory"),
        }
        drop(first);
        Agent::new("http://127.0.0.1:9/", "agi_test".into(), config)
            .expect("the lock goes with the agent that held it");
    }
}
