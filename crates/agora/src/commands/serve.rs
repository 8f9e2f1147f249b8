//! `agora serve` and `agora init`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use agora_server::AppState;
use agora_store::{BlobStore, SqlStore};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::cli::{ServeArgs, WorkerArgs};
use crate::config::{ServerConfig, TEMPLATE};
use crate::output::Output;

pub fn init(path: &Path, force: bool, out: &Output) -> anyhow::Result<()> {
    anyhow::ensure!(
        force || !path.exists(),
        "{} exists already; pass --force to overwrite it",
        path.display()
    );
    std::fs::write(path, TEMPLATE).with_context(|| format!("cannot write {}", path.display()))?;
    out.show(&serde_json::json!({ "written": path }), |_| {
        format!(
            "Wrote {}; start with `agora serve --config {}`",
            path.display(),
            path.display()
        )
    })
}

pub(super) fn init_logging(cfg: &ServerConfig, verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn".to_owned(),
        (_, 0) => cfg.log.level.clone(),
        (_, 1) => "debug".to_owned(),
        _ => "trace".to_owned(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = match cfg.log.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Raises the soft open-file limit to the hard one (allowed without privileges) and
/// returns it, so the connection cap can be sized to it.
fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The metadata database and the blob store the configuration names.
async fn open_stores(cfg: &ServerConfig) -> anyhow::Result<(SqlStore, Arc<dyn BlobStore>)> {
    let url = cfg.database_url();
    let meta = SqlStore::connect_with(&url, cfg.store_options())
        .await
        .with_context(|| {
            // Never print a URL that may hold a password: only its scheme and host part.
            let shown = url.split('@').next_back().unwrap_or("");
            format!("cannot open the metadata database ({shown})")
        })?;
    let location = cfg.blob_location()?;
    let blobs = location
        .open()
        .await
        .with_context(|| format!("cannot open the blob store at {location}"))?;
    tracing::info!(blobs = %location, "blob store open");
    Ok((meta, blobs))
}

pub async fn run(args: ServeArgs, verbose: u8, quiet: bool) -> anyhow::Result<()> {
    let mut cfg = ServerConfig::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    init_logging(&cfg, verbose, quiet);
    // A certificate or key that cannot be used stops the start before anything is opened.
    let certificates = cfg.tls.certificates()?;
    let scheme = if certificates.is_some() {
        "https"
    } else {
        "http"
    };
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            cfg.data_dir.display()
        )
    })?;
    let (meta, blobs) = open_stores(&cfg).await?;
    let new_admin_token =
        agora_registry::bootstrap::ensure_admin(&meta, cfg.admin_token.as_deref()).await?;
    if let Some(password) = &cfg.admin_password {
        agora_registry::bootstrap::ensure_admin_password(&meta, password).await?;
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let redirect = match cfg.tls.redirect_from() {
        Some(from) => {
            let redirect = tokio::net::TcpListener::bind(from).await.with_context(|| {
                format!("cannot listen on {from} (tls.redirect_from, AGORA_TLS__REDIRECT_FROM)")
            })?;
            tracing::info!(redirect = %redirect.local_addr()?, to = %addr, "plain HTTP redirected to https");
            Some(redirect)
        }
        None => None,
    };
    tracing::info!(%addr, %scheme, database = ?meta.dialect(), "agora serving");
    println!(
        "Agora {} listening on {scheme}://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = new_admin_token {
        println!("Created the admin account. Its token is shown only this once; store it now:");
        // Listening on every address (0.0.0.0, as in a container): the hint names one a
        // client on this machine can reach.
        let reachable = if addr.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        println!("  agora login --registry {scheme}://{reachable} --token {token}");
    }
    let log = agora_registry::TransparencyLog::open(&meta, &cfg.log_origin())
        .await
        .context("cannot open the transparency log")?;
    tracing::info!(origin = %log.origin(), key = %log.verifier_key(), "transparency log ready");
    let registry = agora_registry::Registry::new(Arc::new(meta.clone()), blobs, log, cfg.limits())
        .with_sign_in_required(cfg.web.require_sign_in)
        .with_rate_limits(cfg.rate_limits.settings()?);
    let registry = Arc::new(with_behaviour(registry, &cfg));
    if cfg.oci.enabled {
        // Releases published before `/v2/` existed (or whose artifact a failure left
        // unwritten) get their OCI artifacts now, in the background.
        let registry = registry.clone();
        tokio::spawn(async move {
            match agora_registry::oci::catch_up(&registry).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(written = n, "OCI artifacts of earlier releases written"),
                Err(e) => {
                    tracing::warn!(error = %e, "writing OCI artifacts of earlier releases failed")
                }
            }
        });
    }
    let worker = cfg.worker.in_process.then(|| {
        tokio::spawn(agora_registry::verification::run_worker(
            registry.clone(),
            format!("serve-{}", std::process::id()),
            cfg.worker.options(),
        ))
    });
    // Webhook deliveries are sent by the server whatever runs the verifications (and by
    // `agora worker` processes too: the queue gives each delivery to one of them).
    let webhook_sender = tokio::spawn(agora_registry::webhooks::run_worker(
        registry.clone(),
        format!("serve-{}-webhooks", std::process::id()),
        cfg.worker.options().idle_wait,
    ));
    let rechecks = spawn_rechecks(&registry, &cfg, "serve");
    let gc = spawn_gc(&registry, &cfg, "serve");
    let analytics = tokio::spawn(agora_registry::analytics::Intake::run(registry.clone()));
    let prunes = tokio::spawn(agora_registry::analytics::run_prunes(
        registry.clone(),
        format!("serve-{}-analytics", std::process::id()),
        cfg.worker.options().lease,
    ));
    // Counts are summed across replicas through the database; one process on SQLite
    // needs no such sum, its counts are exact.
    let rate_limit_sync = (meta.dialect() == agora_store::Dialect::Postgres)
        .then(|| tokio::spawn(registry.rate_limits.clone().run(registry.meta.clone())));
    let flush_at_exit = registry.clone();
    let limits = cfg.http_limits(raise_open_file_limit());
    let state = AppState::new(registry, limits, cfg.cache())
        .with_downloads(cfg.downloads())
        .with_cors(cfg.cors.cors()?)
        .with_trusted_proxies(cfg.proxy.trusted()?);
    let app = agora_web::app(state, cfg.web.config());
    tracing::info!(
        max_connections = limits.max_connections,
        "connection limits"
    );
    match certificates {
        None => agora_server::serve(listener, app, limits, shutdown_signal()).await,
        Some(certificates) => {
            let https = agora_server::listen::Https {
                certificates,
                hsts: cfg.tls.hsts(),
                redirect,
            };
            agora_server::serve_https(listener, app, limits, https, shutdown_signal()).await
        }
    }
    .context("the server stopped")?;
    if let Some(worker) = worker {
        // A run cut here is claimed again once its lease expires.
        worker.abort();
    }
    if let Some(rechecks) = rechecks {
        rechecks.abort();
    }
    if let Some(gc) = gc {
        gc.abort();
    }
    webhook_sender.abort();
    prunes.abort();
    if let Some(sync) = rate_limit_sync {
        sync.abort();
    }
    // What the intake still holds is written before the database closes.
    analytics.abort();
    if let Err(e) = flush_at_exit.analytics.flush(&flush_at_exit).await {
        tracing::warn!(error = %e, "analytics events buffered at shutdown could not be written");
    }
    meta.close().await;
    Ok(())
}

/// The scheduled garbage collection of blobs (`[gc]`), unless it is off. A run cut here
/// leaves marks and at most a deletion begun, which the next run finishes.
fn spawn_gc(
    registry: &Arc<agora_registry::Registry>,
    cfg: &ServerConfig,
    role: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = cfg.gc.every()?;
    Some(tokio::spawn(agora_registry::gc::run_scheduled(
        registry.clone(),
        format!("{role}-{}-gc", std::process::id()),
        every,
        cfg.gc.grace(),
        cfg.worker.options().lease,
    )))
}

/// The advisory re-check loop (`[advisories]`), unless it is off.
fn spawn_rechecks(
    registry: &Arc<agora_registry::Registry>,
    cfg: &ServerConfig,
    role: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = cfg.advisories.every()?;
    Some(tokio::spawn(agora_registry::advisories::run_rechecks(
        registry.clone(),
        format!("{role}-{}-advisories", std::process::id()),
        every,
        cfg.advisories.dir.clone(),
        cfg.worker.options().lease,
    )))
}

/// The server's configuration (`config`, `data_dir` winning), logging started, and the
/// registry over its database and blob store, for a process that works beside the
/// server (`agora worker`, `agora advisories recheck`).
pub(super) async fn offline_registry(
    config: Option<&Path>,
    data_dir: Option<std::path::PathBuf>,
    verbose: u8,
    quiet: bool,
) -> anyhow::Result<(ServerConfig, SqlStore, agora_registry::Registry)> {
    let mut cfg = ServerConfig::load(config)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    init_logging(&cfg, verbose, quiet);
    let (meta, blobs) = open_stores(&cfg).await?;
    let log = agora_registry::TransparencyLog::open(&meta, &cfg.log_origin())
        .await
        .context("cannot open the transparency log")?;
    let registry = agora_registry::Registry::new(Arc::new(meta.clone()), blobs, log, cfg.limits());
    Ok((cfg, meta, registry))
}

/// `agora advisories recheck`: runs the advisory re-check now, against the server's
/// database and blob store, and prints what it marked insecure.
pub async fn recheck_advisories(
    config: Option<&Path>,
    data_dir: Option<std::path::PathBuf>,
    json: bool,
    verbose: u8,
    quiet: bool,
) -> anyhow::Result<()> {
    let (cfg, meta, registry) = offline_registry(config, data_dir, verbose, quiet).await?;
    let done = agora_registry::advisories::recheck(&registry, cfg.advisories.dir.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    meta.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else if !quiet {
        if let Some(imported) = &done.imported {
            println!(
                "Imported {} new or changed advisories ({} unchanged)",
                imported.changed.len(),
                imported.unchanged.len()
            );
        }
        println!(
            "Checked {} advisories naming a listed component; {} release(s) marked insecure",
            done.advisories_checked,
            done.flagged.len()
        );
        for m in &done.flagged {
            let fix = m
                .fixed
                .as_deref()
                .map_or("no fixed version yet".to_owned(), |v| {
                    format!("fixed in {v}")
                });
            println!(
                "{} marked insecure: {} ({}; {fix})",
                m.release, m.advisory, m.component
            );
        }
    }
    Ok(())
}

/// The runner's behavioural run as the registry's `behaviour` stage.
struct RunnerBehaviour(agora_runner::behaviour::BehaviourRun);

impl agora_registry::behaviour::BehaviourCheck for RunnerBehaviour {
    fn check<'a>(
        &'a self,
        dir: &'a Path,
        manifest: &'a agora_core::Manifest,
    ) -> agora_registry::behaviour::CheckFuture<'a> {
        Box::pin(self.0.check(dir, manifest))
    }
}

/// The registry with the `[analytics]` and `[webhooks]` settings, the `[verification]` policy and the
/// `behaviour` stage (work files in `<data_dir>/behaviour`), unless `[worker] behaviour =
/// false`.
fn with_behaviour(
    registry: agora_registry::Registry,
    cfg: &ServerConfig,
) -> agora_registry::Registry {
    let registry = registry
        .with_analytics(cfg.analytics.settings())
        .with_webhooks(cfg.webhooks.settings())
        .with_oci(cfg.oci_settings())
        .with_image_audit(cfg.verification.image_audit());
    // Validated when the configuration was loaded.
    let registry = match cfg.verification.policy() {
        Ok(policy) => registry.with_verification_policy(policy),
        Err(_) => registry,
    };
    if !cfg.worker.behaviour {
        return registry;
    }
    let root = cfg.data_dir.join("behaviour");
    let run = agora_runner::behaviour::BehaviourRun::new(root.join("runner"));
    registry.with_behaviour(Arc::new(RunnerBehaviour(run)), root.join("releases"))
}

/// `agora worker`: verifies queued releases against the same database and blob store as
/// the server, as its own process, `concurrency` at a time; with `once`, until none is
/// due, then exits.
pub async fn worker(args: WorkerArgs, verbose: u8, quiet: bool) -> anyhow::Result<()> {
    let once = args.once;
    let concurrency = args.concurrency.max(1);
    let (cfg, meta, registry) =
        offline_registry(args.config.as_deref(), args.data_dir, verbose, quiet).await?;
    let registry = Arc::new(with_behaviour(registry, &cfg));
    let options = cfg.worker.options();
    // Each task claims under its own name, so the queue records which one ran a job.
    let name = |task: u16| match concurrency {
        1 => format!("worker-{}", std::process::id()),
        _ => format!("worker-{}-{task}", std::process::id()),
    };
    if once {
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..concurrency {
            let (registry, name) = (registry.clone(), name(task));
            tasks.spawn(async move {
                agora_registry::verification::run_until_idle(&registry, &name, &options).await
            });
        }
        let mut ran = 0;
        while let Some(done) = tasks.join_next().await {
            ran += done.context("a verification task panicked")??;
        }
        if !quiet {
            println!("Verified {ran} release(s); none is due now");
        }
    } else {
        tracing::info!(worker = %name(0), concurrency, "verification worker started");
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..concurrency {
            tasks.spawn(agora_registry::verification::run_worker(
                registry.clone(),
                name(task),
                options,
            ));
        }
        let webhook_sender = tokio::spawn(agora_registry::webhooks::run_worker(
            registry.clone(),
            format!("worker-{}-webhooks", std::process::id()),
            options.idle_wait,
        ));
        let rechecks = spawn_rechecks(&registry, &cfg, "worker");
        let gc = spawn_gc(&registry, &cfg, "worker");
        tokio::select! {
            _ = tasks.join_next() => {}
            _ = shutdown_signal() => {}
        }
        if let Some(rechecks) = rechecks {
            rechecks.abort();
        }
        if let Some(gc) = gc {
            gc.abort();
        }
        // A run cut here is claimed again once its lease expires.
        tasks.abort_all();
        webhook_sender.abort();
    }
    meta.close().await;
    Ok(())
}
