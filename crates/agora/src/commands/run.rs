//! `agora run` and `agora conformance`: installed plugins in the sandbox.

use std::path::{Path, PathBuf};

use agora_client::Lockfile;
use agora_runner::audit::AuditLog;
use agora_runner::policy::{HostPolicy, Mode};
use agora_runner::{PluginSource, RunError, Runner, RunnerConfig, conformance};
use anyhow::{Context, bail};

use super::Session;
use crate::cli::RunnerArgs;

fn state_dir(args: &RunnerArgs) -> anyhow::Result<PathBuf> {
    match &args.state_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(dirs::data_dir()
            .context("no data directory for this user; pass --state-dir")?
            .join("agora/runner")),
    }
}

/// The policy file named, the user's, or the built-in open policy.
fn load_policy(args: &RunnerArgs) -> anyhow::Result<HostPolicy> {
    let named = args.policy.clone().or_else(|| {
        dirs::config_dir()
            .map(|d| d.join("agora/policy.toml"))
            .filter(|p| p.exists())
    });
    match named {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the policy {}", path.display()))?;
            HostPolicy::from_toml(&text).with_context(|| format!("in {}", path.display()))
        }
        None => Ok(HostPolicy {
            mode: Mode::Open,
            ..HostPolicy::default()
        }),
    }
}

fn runner(args: &RunnerArgs, policy: HostPolicy) -> anyhow::Result<Runner> {
    let state = state_dir(args)?;
    let audit_path = args
        .audit
        .clone()
        .unwrap_or_else(|| state.join("audit.jsonl"));
    let mut config = RunnerConfig::new(state);
    config.policy = policy;
    config.audit = AuditLog::open(&audit_path)
        .with_context(|| format!("cannot open the audit log {}", audit_path.display()))?;
    Ok(Runner::new(config)?)
}

/// An installed plugin, its code checked against the digest `agora.lock` pins.
fn installed(plugin: &str, dir: &Path) -> anyhow::Result<PluginSource> {
    let installed = Lockfile::installed(dir, plugin)?;
    let source = PluginSource::from_dir(&installed.dir)?;
    let relative = source
        .code
        .strip_prefix(&installed.dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(source.pinned(&installed.pinned_digest(&relative)?)?)
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
    dir: &Path,
) -> anyhow::Result<()> {
    let source = installed(plugin, dir)?;
    let input = read_input(input)?;
    let runner = runner(args, load_policy(args)?)?;
    let loaded = runner.load(source).await?;
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
    let source = if as_dir.join("plugin.yaml").is_file() {
        PluginSource::from_dir(as_dir)?
    } else if plugin.contains('/') && !as_dir.exists() {
        installed(plugin, dir)?
    } else {
        bail!(
            "{plugin} is neither a plugin directory (with plugin.yaml) nor PUBLISHER/NAME of an installed plugin"
        );
    };
    let runner = runner(args, conformance::policy_for(&source.manifest))?;
    let report = conformance::run(&runner, source).await?;
    s.out.show(&report, conformance::Report::to_text)?;
    if !report.passed {
        let failed: Vec<&str> = report.failed().map(|c| c.name.as_str()).collect();
        bail!("{} does not conform: {}", report.plugin, failed.join(", "));
    }
    Ok(())
}
