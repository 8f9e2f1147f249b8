//! Runs installed Agora plugins under a host policy.
//!
//! A [`Runner`] admits a [`PluginSource`] under its [`HostPolicy`](policy::HostPolicy)
//! and returns a [`Plugin`]: a WASM component run in-process by wasmtime, or a native
//! executable run as a separate process in a Linux sandbox (namespaces, cgroups,
//! rlimits, Landlock, seccomp, an unprivileged uid, and an egress proxy as its only way
//! out). Either way the plugin speaks the same contract (`docs/plugin-contract.md`):
//! HTTP with JSON bodies, every request signed with a per-launch key. Everything
//! that happens goes to the [`AuditLog`](audit::AuditLog).
//!
//! ```no_run
//! # async fn demo() -> Result<(), agora_runner::RunError> {
//! use agora_runner::{PluginSource, Runner, RunnerConfig};
//! let runner = Runner::new(RunnerConfig::new("/var/lib/agora-runner".into()))?;
//! let plugin = runner.load(PluginSource::from_dir("plugins/acme/hello".as_ref())?).await?;
//! let answer = plugin.call("greet", br#"{"name":"Ada"}"#).await?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod behaviour;
pub mod callbacks;
pub mod conformance;
mod egress;
pub mod kernel;
#[cfg(target_os = "linux")]
mod native;
pub mod oci;
pub use agora_core::policy;
#[cfg(target_os = "linux")]
pub use native::sweep_stale as sweep_stale_sandboxes;
mod source;
mod transport;
mod wasm;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agora_contract::{Key, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use agora_core::manifest::{Manifest, RuntimeKind};
use bytes::Bytes;
use serde_json::json;

use audit::{AuditLog, Kind, Subject};
use policy::{Grant, HostPolicy, Refusal};
pub use source::{PluginSource, platform};

/// Largest request body the runner sends to a plugin.
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;
/// Largest response body the runner accepts from a plugin.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;
/// How long a native plugin has to answer its first `/healthz` after starting.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}", refused(.0))]
    Refused(Refusal),
    #[error("{}: {problem}", path.display())]
    Source { path: PathBuf, problem: String },
    #[error(
        "{} does not match the digest it was installed with (expected {expected}, found {actual}); reinstall the plugin",
        path.display()
    )]
    Tampered {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{plugin} has no entrypoint `{name}` (it declares: {available})")]
    UnknownEntrypoint {
        plugin: String,
        name: String,
        available: String,
    },
    #[error("the input is not usable: {0}")]
    BadInput(String),
    #[error("the request ran past its timeout of {ms} ms; the runner cut it")]
    Timeout { ms: u64 },
    #[error("the plugin went past its {what} limit and was stopped")]
    Limit { what: String },
    #[error("the plugin was stopped for a forbidden system call")]
    Syscall,
    #[error("the plugin stopped: {0}")]
    Crashed(String),
    #[error("the plugin broke the contract: {0}")]
    Protocol(String),
    #[error("the plugin answered {status}: {body}")]
    Failed { status: u16, body: String },
    #[error("cannot set up the sandbox: {0}")]
    Sandbox(String),
}

/// A refusal in words: whose policy refused (the tenant's reasons end in
/// `(tenant policy)`), the field and why.
fn refused(refusal: &Refusal) -> String {
    match refusal.reason.strip_suffix(" (tenant policy)") {
        Some(reason) => format!("refused by the tenant policy: {}: {reason}", refusal.field),
        None => format!("refused by the host policy: {refusal}"),
    }
}

/// runc's `--root` under the state directory.
#[cfg(target_os = "linux")]
const OCI_STATE: &str = "oci/runc";
/// Root file systems of OCI images, by manifest digest, under the state directory.
#[cfg(target_os = "linux")]
const OCI_ROOTFS: &str = "cache/oci/rootfs";

/// How a [`Runner`] is set up.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub policy: HostPolicy,
    /// The policy of the tenant this host belongs to, if any (what `agora agent` writes to
    /// `DIR/.agora/tenant-policy.toml`): a plugin runs only if both admit it, with the
    /// smaller of both grants ([`HostPolicy::admit_with`]); either's `sandbox.weaker =
    /// "refuse"` refuses a weaker sandbox, and the lower `landlock_max_abi` applies.
    pub tenant_policy: Option<HostPolicy>,
    /// Holds per-launch work directories (`runs/`) and compiled modules (`cache/`).
    pub state_dir: PathBuf,
    pub audit: AuditLog,
    /// The unprivileged uid and gid native plugins run as.
    pub sandbox_uid: u32,
    pub sandbox_gid: u32,
    /// The host's core that plugins' callbacks go to (`None`: every callback gets 503).
    pub core: Option<callbacks::CoreLink>,
    /// The OCI runtime OCI plugins start with: a path, or a name looked up on `PATH`
    /// (`None`: `runc`).
    pub oci_runtime: Option<PathBuf>,
}

impl RunnerConfig {
    /// The default policy (curated, nothing allowed yet), no audit file, uid/gid 65534.
    pub fn new(state_dir: PathBuf) -> RunnerConfig {
        RunnerConfig {
            policy: HostPolicy::default(),
            tenant_policy: None,
            state_dir,
            audit: AuditLog::disabled(),
            sandbox_uid: 65534,
            sandbox_gid: 65534,
            core: None,
            oci_runtime: None,
        }
    }
}

/// Loads and runs plugins. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runner {
    shared: Arc<Shared>,
}

struct Shared {
    config: RunnerConfig,
    wasm: OnceLock<Result<wasm::WasmEngine, String>>,
}

impl Runner {
    pub fn new(config: RunnerConfig) -> Result<Runner, RunError> {
        for dir in [
            config.state_dir.join("runs"),
            config.state_dir.join("cache"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| RunError::Source {
                path: dir.clone(),
                problem: format!("cannot create the runner's state directory: {e}"),
            })?;
        }
        #[cfg(target_os = "linux")]
        if nix::unistd::geteuid().is_root() {
            let swept = native::sweep_stale();
            if swept > 0 {
                tracing::warn!(
                    "ended the plugins of {swept} sandbox(es) left by runners that are gone"
                );
            }
            let containers = config.state_dir.join(OCI_STATE);
            if containers.is_dir()
                && let Ok(runtime) = oci::runc::find(config.oci_runtime.as_deref())
            {
                let swept = oci::runc::sweep_stale(&runtime, &containers);
                if swept > 0 {
                    tracing::warn!("deleted {swept} container(s) left by runners that are gone");
                }
            }
        }
        Ok(Runner {
            shared: Arc::new(Shared {
                config,
                wasm: OnceLock::new(),
            }),
        })
    }

    pub fn policy(&self) -> &HostPolicy {
        &self.shared.config.policy
    }

    /// The Landlock layers a native launch gets here, or why it may not start: no
    /// Landlock at all, or a weaker sandbox than the policy accepts. A weaker one that is
    /// accepted is warned about and audited.
    #[cfg(target_os = "linux")]
    fn native_layers(&self, subject: &Subject) -> Result<kernel::SandboxLayers, RunError> {
        use policy::WeakerSandbox;
        let config = &self.shared.config;
        let sandbox = config
            .policy
            .sandbox
            .with_tenant(config.tenant_policy.as_ref().map(|t| &t.sandbox));
        let (max_abi, weaker) = (sandbox.landlock_max_abi, sandbox.weaker);
        let layers = kernel::SandboxLayers::new(kernel::landlock_abi().0, max_abi);
        let refuse = |reason: String| {
            config.audit.record(
                Kind::Refused,
                subject,
                json!({"field": "sandbox", "reason": reason, "landlock": &layers}),
            );
            Err(RunError::Sandbox(reason))
        };
        if layers.landlock_abi == 0 {
            return refuse(format!(
                "{}: native plugins need it (Linux 5.13 or newer with `landlock` in the `lsm=` boot parameter; `agora doctor` shows what this host has)",
                layers.summary()
            ));
        }
        if layers.is_weaker() {
            match weaker {
                WeakerSandbox::Refuse => {
                    let whose = if config.policy.sandbox.weaker == WeakerSandbox::Refuse {
                        "host"
                    } else {
                        "tenant"
                    };
                    return refuse(format!(
                        "this kernel cannot build the full sandbox: {}; the {whose} policy's sandbox.weaker = \"refuse\" does not accept a weaker one",
                        layers.summary()
                    ));
                }
                WeakerSandbox::Warn => {
                    tracing::warn!(
                        plugin = %subject.plugin,
                        "running a native plugin in a weaker sandbox: {}",
                        layers.summary()
                    );
                    config.audit.record(
                        Kind::WeakerSandbox,
                        subject,
                        json!({"reason": layers.summary(), "landlock": &layers}),
                    );
                }
            }
        }
        Ok(layers)
    }

    /// The runtime, image and state an OCI plugin starts with, or why it cannot start:
    /// no OCI runtime, or an image missing from the cache or not matching its digests.
    #[cfg(target_os = "linux")]
    fn oci_launch(
        &self,
        source: &PluginSource,
        subject: &Subject,
    ) -> Result<oci::OciLaunch, RunError> {
        let config = &self.shared.config;
        let runtime = oci::runc::find(config.oci_runtime.as_deref()).map_err(|reason| {
            config.audit.record(
                Kind::Refused,
                subject,
                json!({"field": "runtime", "reason": reason}),
            );
            RunError::Sandbox(format!("cannot run {}: {reason}", subject.plugin))
        })?;
        let blobs = source.image.as_ref().ok_or_else(|| RunError::Source {
            path: source.code.clone(),
            problem:
                "the plugin's image is not in the OCI cache; run `agora install` again to pull it"
                    .into(),
        })?;
        let image = oci::image::prepare(blobs, &source.digest, &config.state_dir.join(OCI_ROOTFS))?;
        Ok(oci::OciLaunch {
            runtime,
            state: config.state_dir.join(OCI_STATE),
            image,
        })
    }

    fn wasm_engine(&self) -> Result<&wasm::WasmEngine, RunError> {
        self.shared
            .wasm
            .get_or_init(|| {
                wasm::WasmEngine::new(
                    &self.shared.config.state_dir.join("cache/wasm"),
                    self.shared.config.policy.limits.memory_mb,
                )
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| RunError::Sandbox(format!("cannot start the WASM engine: {e}")))
    }

    /// Admits `source` under the policy and prepares it to run. A WASM plugin is compiled
    /// (or loaded from the compiled cache); a native plugin starts on its first request.
    pub async fn load(&self, source: PluginSource) -> Result<Plugin, RunError> {
        let config = &self.shared.config;
        let subject = Subject {
            plugin: source.id(),
            version: source.manifest.version.to_string(),
            digest: source.digest.to_string(),
            runtime: source.manifest.runtime.kind.as_str(),
        };
        let grant = match config
            .policy
            .admit_with(config.tenant_policy.as_ref(), &source.manifest)
        {
            Ok(grant) => grant,
            Err(refusal) => {
                config.audit.record(
                    Kind::Refused,
                    &subject,
                    json!({"field": refusal.field, "reason": refusal.reason}),
                );
                return Err(RunError::Refused(refusal));
            }
        };
        let secrets = resolve_secrets(&grant)?;
        let workdir = WorkDir::create(&config.state_dir.join("runs"), &subject.plugin)?;
        config.audit.record(
            Kind::Pull,
            &subject,
            json!({"path": source.code.display().to_string()}),
        );
        let mut key_bytes = [0u8; 32];
        getrandom::fill(&mut key_bytes)
            .map_err(|e| RunError::Sandbox(format!("no randomness for the launch key: {e}")))?;
        let key = Key::from_bytes(key_bytes);
        let grant = Arc::new(grant);
        let callbacks = Arc::new(callbacks::Callbacks::new(
            subject.clone(),
            grant.clone(),
            config.audit.clone(),
            config.core.clone(),
        )?);
        let launch = callbacks.launch().to_owned();
        let mut environment = vec![(agora_contract::KEY_ENV.to_owned(), key.to_hex())];
        if callbacks.any_granted() {
            environment.push((
                agora_contract::CALLBACK_KEY_ENV.to_owned(),
                callbacks.key().to_hex(),
            ));
        }
        environment.extend(secrets);
        let context = LaunchContext {
            subject: subject.clone(),
            grant: grant.clone(),
            audit: config.audit.clone(),
            key: key.clone(),
            environment,
            workdir: workdir.path.clone(),
            callbacks,
        };
        let mut sandbox = None;
        let backend = match source.manifest.runtime.kind {
            RuntimeKind::Wasm => {
                let engine = self.wasm_engine()?;
                Backend::Wasm(engine.load(&source, context).await?)
            }
            #[cfg(target_os = "linux")]
            RuntimeKind::Exec => {
                let layers = self.native_layers(&subject)?;
                let plugin = native::NativePlugin::new(
                    &source,
                    context,
                    config.sandbox_uid,
                    config.sandbox_gid,
                    layers.landlock_abi,
                )?;
                sandbox = Some(layers);
                Backend::Native(plugin)
            }
            #[cfg(target_os = "linux")]
            RuntimeKind::Oci => {
                let launch = self.oci_launch(&source, &subject)?;
                Backend::Native(native::NativePlugin::oci(
                    &source,
                    context,
                    config.sandbox_uid,
                    config.sandbox_gid,
                    launch,
                )?)
            }
            #[cfg(not(target_os = "linux"))]
            other => {
                return Err(RunError::Source {
                    path: source.code.clone(),
                    problem: format!("runtime {} is not supported on this host", other.as_str()),
                });
            }
        };
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                manifest: source.manifest,
                subject,
                grant,
                key,
                launch,
                audit: config.audit.clone(),
                backend,
                sandbox,
                _workdir: workdir,
            }),
        })
    }
}

fn resolve_secrets(grant: &Grant) -> Result<Vec<(String, String)>, RunError> {
    grant
        .secrets
        .iter()
        .map(|g| {
            let value = match (&g.from_env, &g.from_file) {
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    RunError::Sandbox(format!(
                        "the secret {} is granted from the environment variable {var}, which is not set",
                        g.name
                    ))
                })?,
                (_, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| {
                        RunError::Sandbox(format!(
                            "the secret {} is granted from {file}, which cannot be read: {e}",
                            g.name
                        ))
                    })?
                    .trim_end_matches('\n')
                    .to_owned(),
                (None, None) => unreachable!("policy check requires a source"),
            };
            Ok((g.name.clone(), value))
        })
        .collect()
}

/// What every backend needs to launch one plugin.
#[derive(Clone)]
pub(crate) struct LaunchContext {
    pub subject: Subject,
    pub grant: Arc<Grant>,
    pub audit: AuditLog,
    pub key: Key,
    /// The contract's environment (the keys) plus granted secrets, built once per launch.
    pub environment: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// The launch's callbacks to the host's core.
    pub callbacks: Arc<callbacks::Callbacks>,
}

/// Adds the contract's signature headers for `key` at `when` (Unix seconds); the path is
/// signed without its query, as the contract says.
pub(crate) fn signed(
    builder: http::request::Builder,
    key: &Key,
    method: &str,
    path: &str,
    when: u64,
    body: &[u8],
) -> http::request::Builder {
    let path = path.split('?').next().unwrap_or_default();
    builder
        .header(TIMESTAMP_HEADER, when.to_string())
        .header(SIGNATURE_HEADER, key.sign(method, path, when, body))
}

/// A per-launch private temporary directory, removed when the plugin is dropped.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create(runs: &Path, plugin: &str) -> Result<WorkDir, RunError> {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| RunError::Sandbox(e.to_string()))?;
        let path = runs.join(format!(
            "{}-{}",
            plugin.replace('/', "_"),
            hex::encode(suffix)
        ));
        std::fs::create_dir(&path).map_err(|e| RunError::Source {
            path: path.clone(),
            problem: format!("cannot create the work directory: {e}"),
        })?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

enum Backend {
    Wasm(wasm::WasmPlugin),
    #[cfg(target_os = "linux")]
    Native(native::NativePlugin),
}

impl Backend {
    async fn handle(
        &self,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, RunError> {
        match self {
            Backend::Wasm(p) => p.handle(request, timeout).await,
            #[cfg(target_os = "linux")]
            Backend::Native(p) => p.handle(request, timeout).await,
        }
    }
}

/// How the runner signs a request; anything but `Valid` exists for the conformance
/// harness, to check that a plugin refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Valid,
    Unsigned,
    WrongKey,
    Stale,
}

/// One request to a plugin.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: http::Method,
    pub path: String,
    pub body: Bytes,
    pub signing: Signing,
    /// Defaults to the entrypoint's granted timeout, or the plugin's.
    pub timeout: Option<Duration>,
}

impl Request {
    pub fn post(path: &str, body: impl Into<Bytes>) -> Request {
        Request {
            method: http::Method::POST,
            path: path.to_owned(),
            body: body.into(),
            signing: Signing::Valid,
            timeout: None,
        }
    }

    pub fn get(path: &str) -> Request {
        Request {
            method: http::Method::GET,
            path: path.to_owned(),
            body: Bytes::new(),
            signing: Signing::Valid,
            timeout: None,
        }
    }
}

/// A plugin's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Response {
    pub fn is_json(&self) -> bool {
        self.content_type.as_deref().is_some_and(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim();
            ct == "application/json" || ct.ends_with("+json")
        })
    }
}

/// A loaded plugin. Dropping it stops it and removes its work directory.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    manifest: Manifest,
    subject: Subject,
    grant: Arc<Grant>,
    key: Key,
    /// The launch id its callback key was derived for.
    launch: String,
    audit: AuditLog,
    backend: Backend,
    /// The native sandbox's Landlock layers on this kernel (None for WASM).
    sandbox: Option<kernel::SandboxLayers>,
    _workdir: WorkDir,
}

impl Drop for PluginInner {
    fn drop(&mut self) {
        self.audit.record(Kind::Stop, &self.subject, json!({}));
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Plugin {
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    pub fn grant(&self) -> &Grant {
        &self.inner.grant
    }

    /// The id of this launch: what its callback key was derived for, and what the core
    /// receives as `Agora-Launch`.
    pub fn launch_id(&self) -> &str {
        &self.inner.launch
    }

    /// A native plugin's sandbox layers on this kernel (`None` for WASM).
    pub fn sandbox(&self) -> Option<&kernel::SandboxLayers> {
        self.inner.sandbox.as_ref()
    }

    /// Calls entrypoint `name` with a JSON `input`; returns its JSON answer, or the
    /// plugin's problem document as [`RunError::Failed`].
    pub async fn call(&self, name: &str, input: &[u8]) -> Result<serde_json::Value, RunError> {
        let entry = self.inner.manifest.entrypoints.get(name).ok_or_else(|| {
            RunError::UnknownEntrypoint {
                plugin: self.inner.subject.plugin.clone(),
                name: name.to_owned(),
                available: self
                    .inner
                    .manifest
                    .entrypoints
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        if input.len() > MAX_INPUT_BYTES {
            return Err(RunError::BadInput(format!(
                "{} bytes; at most {MAX_INPUT_BYTES} are accepted",
                input.len()
            )));
        }
        serde_json::from_slice::<serde_json::Value>(input)
            .map_err(|e| RunError::BadInput(format!("not JSON: {e}")))?;
        let response = self
            .send(Request {
                timeout: Some(Duration::from_millis(
                    self.inner.grant.timeout_ms(name).into(),
                )),
                ..Request::post(&entry.path, Bytes::copy_from_slice(input))
            })
            .await?;
        if !(200..300).contains(&response.status) {
            return Err(RunError::Failed {
                status: response.status,
                body: String::from_utf8_lossy(&response.body).into_owned(),
            });
        }
        if !response.is_json() {
            return Err(RunError::Protocol(format!(
                "answered with content type {} instead of application/json",
                response.content_type.as_deref().unwrap_or("(none)")
            )));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| RunError::Protocol(format!("answered with a body that is not JSON: {e}")))
    }

    /// Sends one request as it is, signed as `request.signing` says.
    pub async fn send(&self, request: Request) -> Result<Response, RunError> {
        let timeout = request.timeout.unwrap_or(Duration::from_millis(
            self.inner.grant.limits.timeout_ms.into(),
        ));
        let now = unix_now();
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(format!("http://plugin{}", request.path))
            .header(http::header::HOST, "plugin")
            .header(http::header::CONTENT_TYPE, "application/json");
        let signing = match request.signing {
            Signing::Valid => Some((self.inner.key.clone(), now)),
            Signing::Unsigned => None,
            Signing::WrongKey => Some((Key::from_bytes([0x5a; 32]), now)),
            Signing::Stale => Some((self.inner.key.clone(), now - 3600)),
        };
        if let Some((key, when)) = signing {
            builder = signed(
                builder,
                &key,
                request.method.as_str(),
                &request.path,
                when,
                &request.body,
            );
        }
        let http_request = builder
            .body(request.body.clone())
            .map_err(|e| RunError::BadInput(format!("request path `{}`: {e}", request.path)))?;
        let started = Instant::now();
        let result = self.inner.backend.handle(http_request, timeout).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(response) => self.inner.audit.record(
                Kind::Request,
                &self.inner.subject,
                json!({"method": request.method.as_str(), "path": request.path,
                       "status": response.status().as_u16(), "duration_ms": elapsed_ms}),
            ),
            Err(e) => self.inner.audit.record(
                Kind::Failure,
                &self.inner.subject,
                json!({"method": request.method.as_str(), "path": request.path,
                       "error": e.to_string(), "duration_ms": elapsed_ms}),
            ),
        }
        let response = result?;
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Response {
            status: response.status().as_u16(),
            content_type,
            body: response.into_body(),
        })
    }

    /// `GET /healthz`, signed.
    pub async fn health(&self) -> Result<Response, RunError> {
        self.send(Request::get("/healthz")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{Limits, Mode};

    const MANIFEST: &str = "api_version: agora/v1\npublisher: acme\nname: jira\nversion: 1.0.0\n\
        description: d\nlicense: MIT\nruntime: { type: wasm, module: p.wasm }\n\
        entrypoints:\n  report: { path: /report }\n";

    fn open() -> HostPolicy {
        HostPolicy {
            mode: Mode::Open,
            ..HostPolicy::default()
        }
    }

    #[tokio::test]
    async fn a_plugin_the_host_allows_but_the_tenant_refuses_is_refused_with_the_tenants_reason() {
        let plugin = tempfile::tempdir().unwrap();
        std::fs::write(plugin.path().join("plugin.yaml"), MANIFEST).unwrap();
        std::fs::write(plugin.path().join("p.wasm"), b"\0asm").unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut config = RunnerConfig::new(state.path().to_path_buf());
        config.policy = open();
        config.tenant_policy = Some(HostPolicy {
            deny: vec!["acme/*".into()],
            ..open()
        });
        let (audit, captured) = AuditLog::capturing();
        config.audit = audit;
        let runner = Runner::new(config).unwrap();
        let source = PluginSource::from_dir(plugin.path()).unwrap();
        let Err(e) = runner.load(source).await else {
            panic!("the tenant's deny entry was ignored");
        };
        assert!(
            matches!(&e, RunError::Refused(r) if r.field == "deny"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "refused by the tenant policy: deny: acme/jira matches the deny entry `acme/*`"
        );
        let (events, _) = captured.take();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["event"], "refused");
        assert!(
            events[0]["reason"]
                .as_str()
                .unwrap()
                .ends_with("(tenant policy)")
        );
        // The host's own refusals still say so.
        let host = RunError::Refused(open().admit_with(None, &bad_manifest()).unwrap_err());
        assert!(host.to_string().starts_with(
            "refused by the host policy: resources.memory_mb: asks for 4096 MiB; this host"
        ));
    }

    fn bad_manifest() -> Manifest {
        Manifest::from_yaml(&format!("{MANIFEST}resources: {{ memory_mb: 4096 }}\n")).unwrap()
    }

    #[test]
    fn the_smaller_figures_of_host_and_tenant_win() {
        let manifest = Manifest::from_yaml(MANIFEST).unwrap();
        let host = HostPolicy {
            defaults: Limits {
                memory_mb: 128,
                timeout_ms: 10_000,
                ..HostPolicy::default().defaults
            },
            network: policy::NetworkPolicy {
                allowed_hosts: Vec::new(),
                allow_private_addresses: true,
            },
            ..open()
        };
        let tenant = HostPolicy {
            limits: Limits {
                memory_mb: 64,
                timeout_ms: 2_000,
                ..Limits::default()
            },
            defaults: Limits {
                memory_mb: 64,
                timeout_ms: 2_000,
                max_fds: 512,
                ..HostPolicy::default().defaults
            },
            ..open()
        };
        // The tenant's ceilings are checked, so its defaults above them never reach here.
        assert!(tenant.check_for_tenant().is_err());
        let tenant = HostPolicy {
            defaults: Limits {
                max_fds: 32,
                ..tenant.defaults
            },
            ..tenant
        };
        tenant.check_for_tenant().unwrap();
        let alone = host.admit(&manifest).unwrap();
        assert_eq!(
            (alone.limits.memory_mb, alone.limits.timeout_ms),
            (128, 10_000)
        );
        let both = host.admit_with(Some(&tenant), &manifest).unwrap();
        assert_eq!(both.limits.memory_mb, 64);
        assert_eq!(both.limits.timeout_ms, 2_000);
        assert_eq!(both.limits.max_fds, 32);
        assert_eq!(both.timeout_ms("report"), 2_000);
        assert!(!both.allow_private_addresses);
        // Within the host's ceiling, beyond the tenant's: the tenant refuses.
        let greedy =
            Manifest::from_yaml(&format!("{MANIFEST}resources: {{ memory_mb: 100 }}\n")).unwrap();
        assert!(host.admit(&greedy).is_ok());
        let refusal = host.admit_with(Some(&tenant), &greedy).unwrap_err();
        assert_eq!(refusal.field, "resources.memory_mb");
        assert_eq!(
            RunError::Refused(refusal).to_string(),
            "refused by the tenant policy: resources.memory_mb: asks for 100 MiB; the tenant allows at most 64 MiB"
        );
    }
}
