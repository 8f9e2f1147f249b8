//! `agora agent`: keeps a plugin directory at its tenant's desired set
//! (`agora_client::agent`), with the host's policy, trust and audit log as `agora run`
//! and `agora install` use them.

use std::path::Path;
use std::time::Duration;

use agora_client::agent::{Agent, AgentConfig, Round};
use agora_core::tenant::INSTANCE_TOKEN_PREFIX;
use anyhow::{Context, bail};

use super::Session;
use crate::cli::AgentArgs;

pub async fn agent(s: &Session, args: &AgentArgs, verbose: u8, quiet: bool) -> anyhow::Result<()> {
    agent_logging(verbose, quiet);
    let token = read_token(&args.token_file, quiet)?;
    let trust = super::install::trust_config(s, &args.log)?;
    let host_policy = super::run::load_policy(&args.runner)?;
    let mut config = AgentConfig::new(args.dir.dir.clone(), trust, host_policy);
    config.reload_hook = args.reload_hook.clone();
    config.audit_log = Some(super::run::audit_path(&args.runner)?);
    config.wait_secs = args.wait;
    config.interval = Duration::from_secs(args.interval);
    config.core_version = args.log.core_version.as_ref().map(ToString::to_string);
    let mut agent = Agent::new(&s.registry, token, config)?;
    if args.once {
        let round = agent.converge_once().await?;
        let reported = agent.report(round.generation).await;
        s.out.show(&round, show_round)?;
        reported.context("the round ran, but the registry did not take its report")?;
        if !round.converged() {
            bail!(
                "generation {} is not reached: {} problem(s), listed above",
                round.generation,
                round.failures.len() + usize::from(round.reload_error.is_some())
            );
        }
        return Ok(());
    }
    tracing::info!(
        registry = %s.registry,
        dir = %args.dir.dir.display(),
        "agent started"
    );
    agent.run(stop_requested()).await;
    tracing::info!("agent stopped");
    Ok(())
}

/// The round for people: its summary, then each failure.
fn show_round(round: &Round) -> String {
    let mut lines = vec![round.summary()];
    for f in &round.failures {
        lines.push(format!(
            "  FAILED {}@{}: {}",
            f.plugin,
            f.version,
            crate::output::shown(&f.reason)
        ));
    }
    if let Some(e) = &round.reload_error {
        lines.push(format!("  FAILED reload: {}", crate::output::shown(e)));
    }
    for w in &round.warnings {
        lines.push(format!("  warning: {}", crate::output::shown(w)));
    }
    lines.join("\n")
}

/// The instance credential in `path`, trimmed; a file others may read is warned about.
fn read_token(path: &Path, quiet: bool) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the instance credential {}", path.display()))?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 && !quiet {
        eprintln!(
            "warning: {} can be read by other users (mode {:o}); `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let token = text.trim();
    if !token.starts_with(INSTANCE_TOKEN_PREFIX)
        || token.len() <= INSTANCE_TOKEN_PREFIX.len()
        || !token.chars().all(|c| c.is_ascii_graphic())
    {
        bail!(
            "{} does not hold an instance credential ({INSTANCE_TOKEN_PREFIX}..., shown once by `agora tenant instance register`)",
            path.display()
        );
    }
    Ok(token.to_owned())
}

/// The agent logs each round at `info` on stderr (`-q`: warnings only; `-v`: `debug`,
/// with every registry request). `RUST_LOG` replaces these levels.
fn agent_logging(verbose: u8, quiet: bool) {
    let ours = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,agora={ours},agora_client={ours},agora_runner={ours}"
        ))
    });
    // Already set up by `-v` (the client commands' logging): that one stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
