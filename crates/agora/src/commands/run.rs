//! `agora run` and `agora conformance`: installed plugins in the sandbox.

use std::path::{Path, PathBuf};

use agora_client::Lockfile;
use agora_runner::audit::AuditLog;
use agora_runner::callbacks::{CoreLink, CoreSecret, HttpCore};
use agora_runner::kernel::{HostSupport, LANDLOCK_LAYERS, SandboxLayers};
use agora_runner::policy::{HostPolicy, Mode, SandboxPolicy, WeakerSandbox};
use agora_runner::{PluginSource, RunError, Runner, RunnerConfig, conformance};
use anyhow::{Context, bail};

use super::Session;
use crate::cli::{CoreArgs, RunnerArgs};

/// The environment variable holding the core's secret when no file is named.
const CORE_SECRET_ENV: &str = "AGORA_CORE_SECRET";

/// The core link `agora run` gives the runner: `--core-url` with the secret from
/// `--core-secret-file` or `AGORA_CORE_SECRET`. The secret is never printed.
fn core_link(core: &CoreArgs) -> anyhow::Result<Option<CoreLink>> {
    let Some(url) = &core.core_url else {
        if core.core_secret_file.is_some() {
            bail!("--core-secret-file needs --core-url: the core the callbacks go to");
        }
        return Ok(None);
    };
    let handler = HttpCore::new(url).map_err(anyhow::Error::msg)?;
    let secret = match &core.core_secret_file {
        Some(file) => CoreSecret::from_file(file).map_err(anyhow::Error::msg)?,
        None => match std::env::var(CORE_SECRET_ENV) {
            Ok(text) => CoreSecret::new(text.trim_end_matches(['\r', '\n']).as_bytes())
                .map_err(|e| anyhow::anyhow!("{CORE_SECRET_ENV}: {e}"))?,
            Err(_) => bail!(
                "--core-url needs the core's secret: --core-secret-file FILE or the environment variable {CORE_SECRET_ENV}"
            ),
        },
    };
    Ok(Some(CoreLink {
        secret,
        handler: std::sync::Arc::new(handler),
    }))
}

fn state_dir(args: &RunnerArgs) -> anyhow::Result<PathBuf> {
    match &args.state_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(dirs::data_dir()
            .context("no data directory for this user; pass --state-dir")?
            .join("agora/runner")),
    }
}

/// The policy file given (`--policy` or `AGORA_RUNNER_POLICY`), else the user's
/// `policy.toml` when there is one.
fn policy_file(args: &RunnerArgs) -> Option<PathBuf> {
    args.policy.clone().or_else(|| {
        dirs::config_dir()
            .map(|d| d.join("agora/policy.toml"))
            .filter(|p| p.exists())
    })
}

fn read_policy(path: &Path) -> anyhow::Result<HostPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    HostPolicy::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// The host policy `agora install` pulls OCI images under: AGORA_RUNNER_POLICY, else
/// ~/.config/agora/policy.toml if present, else the default (no registry allowed).
pub(super) fn default_policy() -> anyhow::Result<HostPolicy> {
    let named = std::env::var_os("AGORA_RUNNER_POLICY").map(PathBuf::from);
    match named.or_else(|| {
        dirs::config_dir()
            .map(|d| d.join("agora/policy.toml"))
            .filter(|p| p.exists())
    }) {
        Some(path) => read_policy(&path),
        None => Ok(HostPolicy::default()),
    }
}

/// The policy file named, the user's, or the built-in open policy.
pub(super) fn load_policy(args: &RunnerArgs) -> anyhow::Result<HostPolicy> {
    match policy_file(args) {
        Some(path) => read_policy(&path),
        None => Ok(HostPolicy {
            mode: Mode::Open,
            ..HostPolicy::default()
        }),
    }
}

/// The audit log named (`--audit`), else `audit.jsonl` in the state directory.
pub(super) fn audit_path(args: &RunnerArgs) -> anyhow::Result<PathBuf> {
    match &args.audit {
        Some(path) => Ok(path.clone()),
        None => Ok(state_dir(args)?.join("audit.jsonl")),
    }
}

/// The tenant policy `agora agent` keeps in the plugin directory, if it keeps one.
fn tenant_policy(dir: &Path) -> anyhow::Result<Option<HostPolicy>> {
    Ok(agora_client::agent::load_tenant_policy(dir)?)
}

fn runner(
    args: &RunnerArgs,
    policy: HostPolicy,
    tenant: Option<HostPolicy>,
    core: Option<CoreLink>,
) -> anyhow::Result<Runner> {
    let audit_path = audit_path(args)?;
    let mut config = RunnerConfig::new(state_dir(args)?);
    config.policy = policy;
    config.tenant_policy = tenant;
    config.core = core;
    config.audit = AuditLog::open(&audit_path)
        .with_context(|| format!("cannot open the audit log {}", audit_path.display()))?;
    Ok(Runner::new(config)?)
}

/// An installed plugin, its code checked against the digest `agora.lock` pins; when
/// `require_verified` names a policy (the host's or the tenant's) that asks for it,
/// refused unless its verification was `verified` when it was installed.
fn installed(
    plugin: &str,
    dir: &Path,
    require_verified: Option<&str>,
) -> anyhow::Result<PluginSource> {
    let installed = Lockfile::installed(dir, plugin)?;
    let outcome = installed.entry.verification.as_deref();
    if let Some(whose) = require_verified
        && outcome != Some("verified")
    {
        bail!(
            "{}@{} was {} when it was installed, and the {whose} policy runs only verified releases \
             (require_verified); install a verified version (`agora install --require-verified`), or \
             install it again once the registry has verified it",
            installed.entry.name,
            installed.entry.version,
            outcome.map_or("not yet checked".to_owned(), |o| o.to_owned())
        );
    }
    let source = PluginSource::from_dir(&installed.dir)?;
    let pin = match source.code.strip_prefix(&installed.dir) {
        Ok(relative) => installed.pinned_digest(&relative.to_string_lossy())?,
        // An oci plugin's code is its image manifest, in the directory's image cache
        // (DIR/.agora/oci): agora.lock pins plugin.yaml, and plugin.yaml pins the image.
        Err(_) if source.manifest.runtime.kind == agora_core::RuntimeKind::Oci => {
            let yaml = installed.dir.join("plugin.yaml");
            let expected = installed.pinned_digest("plugin.yaml")?;
            let actual = agora_core::Digest::of(
                &std::fs::read(&yaml).with_context(|| format!("cannot read {}", yaml.display()))?,
            );
            if actual != expected {
                return Err(RunError::Tampered {
                    path: yaml,
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                }
                .into());
            }
            agora_runner::oci::pinned_digest(
                source.manifest.runtime.image.as_deref().unwrap_or_default(),
            )
            .map_err(anyhow::Error::msg)?
        }
        Err(_) => bail!(
            "the code of {} ({}) is outside its directory {}",
            installed.entry.name,
            source.code.display(),
            installed.dir.display()
        ),
    };
    Ok(source.pinned(&pin)?)
}

fn read_input(input: &str) -> anyhow::Result<Vec<u8>> {
    match input.strip_prefix('@') {
        Some(file) => {
            std::fs::read(file).with_context(|| format!("cannot read the input file {file}"))
        }
        None => Ok(input.as_bytes().to_vec()),
    }
}

pub async fn run(
    s: &Session,
    plugin: &str,
    entrypoint: &str,
    input: &str,
    args: &RunnerArgs,
    core: &CoreArgs,
    dir: &Path,
) -> anyhow::Result<()> {
    let core = core_link(core)?;
    let policy = load_policy(args)?;
    let tenant = tenant_policy(dir)?;
    let require_verified = if policy.require_verified {
        Some("host")
    } else if tenant.as_ref().is_some_and(|t| t.require_verified) {
        Some("tenant")
    } else {
        None
    };
    let source = installed(plugin, dir, require_verified)?;
    let input = read_input(input)?;
    let runner = runner(args, policy, tenant, core)?;
    let loaded = runner.load(source).await?;
    if let Some(layers) = loaded.sandbox().filter(|l| l.is_weaker() && !s.out.quiet) {
        eprintln!(
            "warning: {plugin} runs in a weaker sandbox on this kernel: {} (`agora doctor` explains; sandbox.weaker = \"refuse\" in the host policy refuses this)",
            layers.summary()
        );
    }
    match loaded.call(entrypoint, &input).await {
        Ok(answer) => {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Err(RunError::Failed { status, body }) => {
            if s.out.json {
                println!("{body}");
            }
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .map(|p| {
                    let title = p["title"].as_str().unwrap_or("error").to_owned();
                    match p["detail"].as_str() {
                        Some(d) => format!("{title}: {d}"),
                        None => title,
                    }
                })
                .unwrap_or(body);
            bail!("{plugin} {entrypoint} answered {status}: {detail}")
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn conformance(
    s: &Session,
    plugin: &str,
    args: &RunnerArgs,
    dir: &Path,
) -> anyhow::Result<()> {
    let as_dir = Path::new(plugin);
    // An installed plugin is judged with the tenant policy of its directory, if any.
    let (source, tenant) = if as_dir.join("plugin.yaml").is_file() {
        (PluginSource::from_dir(as_dir)?, None)
    } else if plugin.contains('/') && !as_dir.exists() {
        (installed(plugin, dir, None)?, tenant_policy(dir)?)
    } else {
        bail!(
            "{plugin} is neither a plugin directory (with plugin.yaml) nor PUBLISHER/NAME of an installed plugin"
        );
    };
    // A policy given (or the user's) is the one the plugin must run under; without one,
    // the plugin is judged against its own declaration.
    let (policy, under) = match policy_file(args) {
        Some(path) => (
            read_policy(&path)?,
            format!("the host policy {}", path.display()),
        ),
        None => (
            conformance::policy_for(&source.manifest),
            "a policy made from its manifest (its outbound hosts, generous ceilings)".to_owned(),
        ),
    };
    let under = match &tenant {
        Some(_) => format!(
            "{under}, with the tenant policy in {}",
            dir.join(".agora/tenant-policy.toml").display()
        ),
        None => under,
    };
    let runner = runner(args, policy, tenant, None)?;
    let mut report = conformance::run(&runner, source).await?;
    report.policy = Some(under);
    s.out.show(&report, conformance::Report::to_text)?;
    if !report.passed {
        let failed: Vec<&conformance::Check> = report.failed().collect();
        match failed.as_slice() {
            [one] => bail!(
                "{} does not conform: {}: {}",
                report.plugin,
                one.name,
                one.detail
            ),
            _ => bail!(
                "{} does not conform: {}",
                report.plugin,
                failed
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(())
}

/// What this host can enforce for native plugins, and whether the policy lets them run.
#[derive(serde::Serialize)]
struct Doctor {
    host: HostSupport,
    sandbox: SandboxLayers,
    /// The host policy's sandbox settings, with the tenant's when there is one.
    policy: SandboxPolicy,
    /// The tenant policy applied with the host's (`DIR/.agora/tenant-policy.toml`).
    tenant_policy: Option<PathBuf>,
    /// `full`, `weaker` (accepted with a warning), or `refused`.
    native: &'static str,
    blockers: Vec<String>,
}

impl Doctor {
    fn to_text(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let h = &self.host;
        let mut out = format!("kernel        {}\n", h.kernel);
        out.push_str(&format!(
            "landlock      {}\n",
            match &h.landlock_problem {
                Some(why) => format!("not available ({why})"),
                None => format!("ABI {}", h.landlock_abi),
            }
        ));
        for layer in LANDLOCK_LAYERS {
            let state = if self.sandbox.active.contains(&layer.name) {
                "on".to_owned()
            } else if self.sandbox.covered.contains(&layer.name) {
                format!("off, covered: {}", layer.without)
            } else {
                "OFF: not confined".to_owned()
            };
            out.push_str(&format!(
                "  {:<11} ABI {} (Linux {:>4})  {:<60} {state}\n",
                layer.name, layer.abi, layer.linux, layer.confines
            ));
        }
        let ns: Vec<String> = h
            .namespaces
            .iter()
            .map(|(n, present)| {
                if *present {
                    n.clone()
                } else {
                    format!("{n} (missing)")
                }
            })
            .collect();
        out.push_str(&format!("namespaces    {}\n", ns.join(" ")));
        out.push_str(&format!(
            "cgroup        {}\n",
            match h.cgroup_version {
                2 => format!("v2, controllers: {}", h.cgroup_controllers.join(" ")),
                1 => format!("v1, controllers: {}", h.cgroup_controllers.join(" ")),
                _ => "not mounted".to_owned(),
            }
        ));
        out.push_str(&format!("seccomp       {}\n", yes(h.seccomp)));
        out.push_str(&format!("root          {}\n", yes(h.root)));
        out.push_str(&format!(
            "policy        sandbox.weaker = \"{}\"{}\n",
            match self.policy.weaker {
                WeakerSandbox::Warn => "warn",
                WeakerSandbox::Refuse => "refuse",
            },
            self.policy
                .landlock_max_abi
                .map(|a| format!(", sandbox.landlock_max_abi = {a}"))
                .unwrap_or_default()
        ));
        if let Some(path) = &self.tenant_policy {
            out.push_str(&format!(
                "              (the host's with the tenant's in {}: the stricter of both)\n",
                path.display()
            ));
        }
        out.push_str(&match self.native {
            "full" => "native plugins: run in the full sandbox".to_owned(),
            "weaker" => format!(
                "native plugins: run in a weaker sandbox, with a warning ({})",
                self.sandbox.summary()
            ),
            _ => format!("native plugins: cannot run: {}", self.blockers.join("; ")),
        });
        let oci = self.host.oci_blockers();
        out.push_str(&match &self.host.oci_runtime {
            Some(runtime) if oci.is_empty() => format!(
                "\nOCI plugins: run with {} ({})",
                runtime.version,
                runtime.path.display()
            ),
            _ => format!("\nOCI plugins: cannot run: {}", oci.join("; ")),
        });
        out.push_str("\nWASM plugins: run on every host (in-process, no kernel features needed)");
        out
    }
}

pub fn doctor(s: &Session, args: &RunnerArgs, dir: &Path) -> anyhow::Result<()> {
    let host_policy = load_policy(args)?.sandbox;
    let tenant = tenant_policy(dir)?.map(|t| t.sandbox);
    let policy = host_policy.with_tenant(tenant.as_ref());
    let host = HostSupport::probe();
    let sandbox = SandboxLayers::new(host.landlock_abi, policy.landlock_max_abi);
    let mut blockers = host.native_blockers();
    if blockers.is_empty() && sandbox.is_weaker() && policy.weaker == WeakerSandbox::Refuse {
        let whose = if host_policy.weaker == WeakerSandbox::Refuse {
            "host"
        } else {
            "tenant"
        };
        blockers.push(format!(
            "{}; the {whose} policy's sandbox.weaker = \"refuse\" does not accept a weaker sandbox",
            sandbox.summary()
        ));
    }
    let native = if !blockers.is_empty() {
        "refused"
    } else if sandbox.is_weaker() {
        "weaker"
    } else {
        "full"
    };
    let report = Doctor {
        host,
        sandbox,
        policy,
        tenant_policy: tenant.map(|_| {
            dir.join(agora_client::agent::STATE_DIR)
                .join(agora_client::agent::TENANT_POLICY_FILE)
        }),
        native,
        blockers,
    };
    s.out.show(&report, Doctor::to_text)
}
