//! One module per group of commands; `run` dispatches.

mod account;
mod advisories;
mod agent;
mod catalog;
mod install;
mod keys;
mod maintenance;
mod probe;
mod release;
mod run;
mod serve;
mod tenant;
mod webhooks;

use agora_client::Client;

use crate::cli::{Cli, Command};
use crate::credentials::Credentials;
use crate::output::Output;

/// What every client command needs: where to talk to, with which token, how to print.
pub struct Session {
    pub registry: String,
    pub credentials: Credentials,
    pub out: Output,
}

impl Session {
    pub fn client(&self) -> anyhow::Result<Client> {
        // The error names the URL and what is wrong with it; a context would repeat it.
        Ok(Client::new(
            &self.registry,
            self.credentials.token_for(&self.registry),
        )?)
    }
}

/// The client commands' log on stderr, with `-v` (the Agora crates at `debug`: one
/// event per registry request, with method, URL, status and time; other crates at
/// `warn`) or `-vv` (the Agora crates at `trace`, the HTTP stack at `debug`).
/// `RUST_LOG`, when set, replaces these levels. Without `-v` nothing is logged: messages
/// are the output's job, and stderr stays one line on failure.
fn client_logging(verbose: u8, quiet: bool) {
    const OURS: [&str; 6] = [
        "agora",
        "agora_client",
        "agora_runner",
        "agora_core",
        "agora_trust",
        "agora_contract",
    ];
    if quiet || verbose == 0 {
        return;
    }
    let (ours, others) = if verbose >= 2 {
        ("trace", "debug")
    } else {
        ("debug", "warn")
    };
    let default = std::iter::once(others.to_owned())
        .chain(OURS.iter().map(|c| format!("{c}={ours}")))
        .collect::<Vec<_>>()
        .join(",");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    if let Command::Serve(args) = cli.command {
        return serve::run(args, cli.verbose, cli.quiet).await;
    }
    if let Command::Worker(args) = cli.command {
        return serve::worker(args, cli.verbose, cli.quiet).await;
    }
    if let Command::Advisories(crate::cli::AdvisoriesCommand::Recheck { config, data_dir }) =
        cli.command
    {
        return serve::recheck_advisories(
            config.as_deref(),
            data_dir,
            cli.json,
            cli.verbose,
            cli.quiet,
        )
        .await;
    }
    match cli.command {
        Command::Gc(args) => return maintenance::gc(args, cli.json, cli.verbose, cli.quiet).await,
        Command::Fsck(args) => {
            return maintenance::fsck(args, cli.json, cli.verbose, cli.quiet).await;
        }
        Command::Backup(args) => {
            return maintenance::backup(args, cli.json, cli.verbose, cli.quiet).await;
        }
        Command::Restore(args) => {
            return maintenance::restore(args, cli.json, cli.verbose, cli.quiet).await;
        }
        _ => {}
    }
    if let Command::Init { config, force } = &cli.command {
        return serve::init(config, *force, &out);
    }
    if let Command::Probe { url, timeout } = &cli.command {
        return probe::probe(url, std::time::Duration::from_secs(*timeout), &out).await;
    }
    client_logging(cli.verbose, cli.quiet);
    let credentials = Credentials::load()?;
    let registry = credentials.registry(cli.registry.as_deref());
    let ctx = Session {
        registry,
        credentials,
        out,
    };
    match cli.command {
        Command::Serve(_)
        | Command::Worker(_)
        | Command::Init { .. }
        | Command::Probe { .. }
        | Command::Gc(_)
        | Command::Fsck(_)
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Advisories(crate::cli::AdvisoriesCommand::Recheck { .. }) => {
            unreachable!("handled above")
        }
        Command::Login { token } => account::login(ctx, token).await,
        Command::Whoami => account::whoami(&ctx).await,
        Command::User(cmd) => account::user(&ctx, cmd).await,
        Command::Publisher(cmd) => account::publisher(&ctx, cmd).await,
        Command::Token(cmd) => account::token(&ctx, cmd).await,
        Command::New {
            name,
            runtime,
            publisher,
        } => release::new(&ctx, &name, &runtime, publisher.as_deref()),
        Command::Audit { dir } => release::audit(&ctx, &dir),
        Command::Build {
            dir,
            platforms,
            sbom,
        } => release::build(&ctx, &dir, &platforms, sbom),
        Command::Pack { dir, out } => release::pack(&ctx, &dir, out.as_deref()),
        Command::Publish { path, key } => release::publish(&ctx, &path, &key).await,
        Command::Keygen {
            out,
            passphrase_file,
            force,
        } => keys::keygen(&ctx, out, passphrase_file.as_deref(), force),
        Command::Key(cmd) => keys::key(&ctx, cmd).await,
        Command::Advisories(crate::cli::AdvisoriesCommand::Import { path }) => {
            advisories::import(&ctx, &path).await
        }
        Command::Webhook(cmd) => webhooks::webhook(&ctx, cmd).await,
        Command::Tenant(cmd) => tenant::tenant(&ctx, cmd).await,
        Command::Entitlement(cmd) => tenant::entitlement(&ctx, cmd).await,
        Command::Log(crate::cli::LogCommand::Monitor { follow, log }) => {
            install::monitor(&ctx, &follow, &log).await
        }
        Command::Yank(args) => release::lifecycle(&ctx, args, agora_core::Lifecycle::Yanked).await,
        Command::Unyank(args) => {
            release::lifecycle(&ctx, args, agora_core::Lifecycle::Active).await
        }
        Command::Deprecate(args) => {
            release::lifecycle(&ctx, args, agora_core::Lifecycle::Deprecated).await
        }
        Command::MarkInsecure(args) => {
            release::lifecycle(&ctx, args, agora_core::Lifecycle::Insecure).await
        }
        Command::Takedown(args) => {
            release::lifecycle(&ctx, args, agora_core::Lifecycle::Removed).await
        }
        Command::Visibility { plugin, visibility } => {
            release::visibility(&ctx, &plugin, &visibility).await
        }
        Command::Search(args) => catalog::search(&ctx, args).await,
        Command::Info { plugin } => catalog::info(&ctx, &plugin).await,
        Command::Versions { plugin } => catalog::versions(&ctx, &plugin).await,
        Command::Install {
            plugin,
            locked: _,
            allow_insecure,
            require_verified,
            dir,
            log,
        } => match plugin {
            Some(plugin) => {
                let options = agora_client::install::InstallOptions {
                    allow_insecure,
                    require_verified,
                };
                install::install(&ctx, &plugin, &dir.dir, &log, options).await
            }
            None => install::install_locked(&ctx, &dir.dir, &log).await,
        },
        Command::Outdated { dir } => install::outdated(&ctx, &dir.dir).await,
        Command::Update {
            plugin,
            latest,
            dir,
            log,
        } => install::update(&ctx, plugin.as_deref(), latest, &dir.dir, &log).await,
        Command::Verify {
            release,
            installed: _,
            dir,
            log,
        } => match release {
            Some(release) => install::verify_release(&ctx, &release, &log).await,
            None => install::verify_installed(&ctx, &dir.dir),
        },
        Command::Run {
            plugin,
            entrypoint,
            input,
            runner,
            core,
            dir,
        } => run::run(&ctx, &plugin, &entrypoint, &input, &runner, &core, &dir.dir).await,
        Command::Conformance {
            plugin,
            runner,
            dir,
        } => run::conformance(&ctx, &plugin, &runner, &dir.dir).await,
        Command::Doctor { runner, dir } => run::doctor(&ctx, &runner, &dir.dir),
        Command::Agent(args) => agent::agent(&ctx, &args, cli.verbose, cli.quiet).await,
        Command::List { dir } => install::list(&ctx, &dir.dir).await,
        Command::Remove { plugin, dir } => install::remove(&ctx, &plugin, &dir.dir).await,
    }
}

/// Splits `PUBLISHER/NAME@REST`.
pub fn split_at(spec: &str) -> anyhow::Result<(agora_core::PluginRef, Option<String>)> {
    let (name, rest) = match spec.split_once('@') {
        Some((n, r)) => (n, Some(r.to_owned())),
        None => (spec, None),
    };
    Ok((name.parse()?, rest))
}
