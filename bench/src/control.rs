//! `control-plane`: the control plane under load, driven by `bench/control.sh` against a
//! running `agora serve` whose publisher `bench` exists. Simulated agents are tokio tasks
//! in this process, each with its own `agi_` credential and its own connections. Three
//! parts, printed as one JSON document:
//!
//! 1. **convergence**: `instances` agents long-poll their desired set (`wait` seconds);
//!    the bench approves a plugin, then moves its pin between two versions, `rounds`
//!    times, and times from each approval request to every instance having received the
//!    new generation, and to every instance having done an agent's network work (the
//!    version detail, the manifest blob and every artifact by digest, each hashed and
//!    checked; no disk) and posted its report;
//! 2. **polling**: K agents ask for their desired set without a long poll, each once per
//!    second with ±10% jitter, for each K of `levels` (ending after the first level whose
//!    p99 passes `stop_p99_ms` or that saw errors): requests per second, latency, errors,
//!    the server's CPU and memory over the measured window; then 64 instances asking
//!    `desired`, then posting reports, back to back (the ceilings of each);
//! 3. **long polls held**: N agents parked in a long poll, for each N of `levels` (ending
//!    like the polling ramp): what holding them costs the server, the latency of a plain
//!    poll beside them, and the time one approval takes to reach every waiting instance
//!    of one tenant (up to its 1,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agora_client::Client;
use agora_core::name::PluginRef;
use agora_core::tenant::{
    ApproveRequest, CreateTenant, DesiredSet, InstanceReport, ReportedPlugin,
};
use agora_core::{Digest, Sha256Hasher};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::{Rng, median_ms, percentile, spread};

/// What `control-plane` runs; see the module's documentation.
pub struct Options {
    pub registry: String,
    pub token: String,
    /// The server's process, for its CPU time, memory and sockets (read from `/proc`).
    pub server_pid: Option<u32>,
    pub instances: usize,
    pub rounds: usize,
    pub wait_secs: u32,
    pub module_kib: usize,
    pub levels: Vec<usize>,
    pub warmup: Duration,
    pub measure: Duration,
    pub stop_p99_ms: f64,
}

/// The plugin every tenant approves, and its two versions the pin moves between.
const PLUGIN: &str = "cp-agent-plugin";
const VERSIONS: [&str; 2] = ["1.0.0", "1.0.1"];
/// How a plain-polling agent spaces its requests (±10% jitter).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the probe beside the parked long polls asks.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Instances asking back to back, for the ceilings.
const BACK_TO_BACK_AGENTS: usize = 64;
/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 8;
/// Pause between an approval round and the next, so every agent is back in its long poll.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest wait for every agent to converge (or to be parked) before giving up.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest wait for every agent of a level to be answered once (then parked).
const PARK_TIMEOUT: Duration = Duration::from_secs(60);
/// An agent's pause after a failed request.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Linux reports process CPU time in USER_HZ ticks, 100 per second on every architecture.
const TICKS_PER_SEC: f64 = 100.0;

/// A process seen through `/proc`: CPU time, memory, open sockets.
#[derive(Clone)]
pub(crate) struct Proc(pub(crate) String);

impl Proc {
    fn stat_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // After the command name (in parentheses, may hold spaces): state is field 3,
        // utime and stime fields 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }

    pub(crate) fn status_mib(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Its threads, each with its name and CPU ticks so far.
    fn threads(&self) -> Vec<(Proc, String, u64)> {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.0)) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|e| {
                let thread = Proc(format!(
                    "{}/task/{}",
                    self.0,
                    e.file_name().to_string_lossy()
                ));
                let name = std::fs::read_to_string(format!("/proc/{}/comm", thread.0)).ok()?;
                let ticks = thread.stat_ticks()?;
                Some((thread, name.trim().to_owned(), ticks))
            })
            .collect()
    }

    /// Open sockets: the listener plus every connection the process holds.
    fn sockets(&self) -> Option<usize> {
        let dir = std::fs::read_dir(format!("/proc/{}/fd", self.0)).ok()?;
        Some(
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count(),
        )
    }
}

/// CPU use of a process over a window, in percent of one core.
pub(crate) struct CpuWindow {
    proc: Proc,
    ticks: u64,
    at: Instant,
}

impl CpuWindow {
    pub(crate) fn start(proc: &Proc) -> Option<CpuWindow> {
        Some(CpuWindow {
            proc: proc.clone(),
            ticks: proc.stat_ticks()?,
            at: Instant::now(),
        })
    }

    pub(crate) fn percent(&self) -> Option<f64> {
        let used = self.proc.stat_ticks()?.saturating_sub(self.ticks) as f64 / TICKS_PER_SEC;
        Some(100.0 * used / self.at.elapsed().as_secs_f64())
    }
}

/// What the server and this process used over a measured window.
struct Usage {
    server: Option<CpuWindow>,
    bench: Option<CpuWindow>,
    /// The server's threads at the start, with their ticks.
    threads: Vec<(Proc, String, u64)>,
}

impl Usage {
    fn start(server: Option<&Proc>) -> Usage {
        Usage {
            server: server.and_then(CpuWindow::start),
            bench: CpuWindow::start(&Proc("self".into())),
            threads: server.map(Proc::threads).unwrap_or_default(),
        }
    }

    /// For each name the server's threads have, the CPU its busiest thread used over the
    /// window (percent of one core): one thread near 100% is a serial bottleneck.
    /// Threads started within the window count all their time.
    fn busiest_threads(&self) -> std::collections::BTreeMap<String, f64> {
        let mut busiest = std::collections::BTreeMap::new();
        let Some(server) = &self.server else {
            return busiest;
        };
        let seconds = server.at.elapsed().as_secs_f64();
        for (thread, name, ticks) in server.proc.threads() {
            let before = self
                .threads
                .iter()
                .find(|(t, _, _)| t.0 == thread.0)
                .map_or(0, |(_, _, ticks)| *ticks);
            let percent = 100.0 * ticks.saturating_sub(before) as f64 / TICKS_PER_SEC / seconds;
            let entry = busiest.entry(name).or_insert(0.0);
            *entry = f64::max(*entry, percent);
        }
        busiest
    }

    fn finish(&self) -> serde_json::Value {
        let server = self.server.as_ref().map(|w| &w.proc);
        serde_json::json!({
            "server_busiest_thread_cpu_percent": self.busiest_threads(),
            "server_cpu_percent": self.server.as_ref().and_then(CpuWindow::percent),
            "bench_cpu_percent": self.bench.as_ref().and_then(CpuWindow::percent),
            "server_rss_mib": server.and_then(|p| p.status_mib("VmRSS:")),
            "server_peak_rss_mib": server.and_then(|p| p.status_mib("VmHWM:")),
            "server_sockets": server.and_then(Proc::sockets),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A uniform fraction in [0, 1).
fn fraction(rng: &mut Rng) -> f64 {
    (rng.next() % 1_000_000) as f64 / 1_000_000.0
}

/// Publishes `bench/cp-agent-plugin` at both versions, each with its own module of
/// `module_kib` random KiB and a README.
async fn publish_plugin(admin: &Client, module_kib: usize) -> anyhow::Result<()> {
    let key = agora_trust::SigningKey::generate("bench")?;
    admin.add_key("bench", &key.public().to_openssh()).await?;
    let work = tempfile::tempdir()?;
    for version in VERSIONS {
        let dir = work.path().join(version);
        std::fs::create_dir_all(&dir)?;
        let mut module = vec![0u8; module_kib * 1024];
        getrandom::fill(&mut module)?;
        std::fs::write(dir.join("plugin.wasm"), &module)?;
        std::fs::write(
            dir.join("README.md"),
            format!("# {PLUGIN} {version}\n\nApproved by the control-plane benchmark.\n"),
        )?;
        std::fs::write(
            dir.join("plugin.yaml"),
            format!(
                "api_version: agora/v1\npublisher: bench\nname: {PLUGIN}\nversion: {version}\n\
                 description: A plugin the control-plane benchmark approves\nlicense: MIT\n\
                 runtime: {{ type: wasm, module: plugin.wasm }}\n"
            ),
        )?;
        crate::publish_dir(admin, &key, &dir).await?;
    }
    Ok(())
}

/// Registers instances `names` in `tenant`; returns their credentials in that order.
async fn register(admin: &Client, tenant: &str, names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(names.len());
    for chunk in names.chunks(REGISTER_CONCURRENCY) {
        let mut set = JoinSet::new();
        for (i, name) in chunk.iter().enumerate() {
            let (admin, tenant, name) = (admin.clone(), tenant.to_owned(), name.clone());
            set.spawn(async move { (i, admin.register_instance(&tenant, &name).await) });
        }
        let mut done = set.join_all().await;
        done.sort_by_key(|(i, _)| *i);
        for (_, registered) in done {
            tokens.push(registered?.token);
        }
    }
    Ok(tokens)
}

async fn create_tenant(admin: &Client, name: &str) -> anyhow::Result<()> {
    admin
        .create_tenant(&CreateTenant {
            name: name.to_owned(),
            display_name: None,
            admin: None,
        })
        .await?;
    Ok(())
}

async fn pin(
    admin: &Client,
    tenant: &str,
    plugin: &PluginRef,
    version: &str,
) -> anyhow::Result<()> {
    admin
        .approve(
            tenant,
            plugin,
            &ApproveRequest {
                version: version.to_owned(),
                manifest_digest: None,
            },
        )
        .await?;
    Ok(())
}

/// GETs a blob into memory, hashing it; fails unless size and digest match.
async fn fetch_verified(
    http: &reqwest::Client,
    base: &str,
    digest: &Digest,
    size: u64,
) -> anyhow::Result<()> {
    let mut response = http
        .get(format!("{base}/api/v1/blobs/{digest}"))
        .send()
        .await?
        .error_for_status()?;
    let mut hasher = Sha256Hasher::new();
    while let Some(chunk) = response.chunk().await? {
        hasher.update(&chunk);
    }
    anyhow::ensure!(
        hasher.len() == size,
        "{digest}: {} bytes, not {size}",
        hasher.len()
    );
    let actual = hasher.finish();
    anyhow::ensure!(actual == *digest, "{digest}: the bytes hash to {actual}");
    Ok(())
}

/// One simulated instance's connections: its own credential for the desired set and the
/// report, anonymous ones for releases and blobs (as `agora agent` has).
struct SimAgent {
    base: String,
    me: Client,
    public: Client,
    blobs: reqwest::Client,
}

impl SimAgent {
    fn new(registry: &str, token: &str) -> anyhow::Result<SimAgent> {
        Ok(SimAgent {
            base: registry.trim_end_matches('/').to_owned(),
            me: Client::new(registry, Some(token.to_owned()))?,
            public: Client::new(registry, None)?,
            blobs: reqwest::Client::new(),
        })
    }

    /// An agent's network work for a desired set: each release's detail (its manifest
    /// digest checked against the pin), the manifest blob and every artifact by digest,
    /// then the report.
    async fn converge(&self, desired: &DesiredSet) -> anyhow::Result<()> {
        let mut plugins = Vec::with_capacity(desired.plugins.len());
        for wanted in &desired.plugins {
            let detail = release(&self.public, &wanted.plugin, &wanted.version).await?;
            anyhow::ensure!(
                detail.manifest_digest.to_string() == wanted.manifest_digest,
                "{}@{} has manifest digest {}, the pin {}",
                wanted.plugin,
                wanted.version,
                detail.manifest_digest,
                wanted.manifest_digest
            );
            anyhow::ensure!(
                detail
                    .artifacts
                    .iter()
                    .any(|a| a.digest == detail.manifest_digest),
                "{}@{} lists no manifest blob",
                wanted.plugin,
                wanted.version
            );
            for artifact in &detail.artifacts {
                fetch_verified(&self.blobs, &self.base, &artifact.digest, artifact.size).await?;
            }
            plugins.push(ReportedPlugin {
                plugin: wanted.plugin.clone(),
                version: wanted.version.clone(),
                manifest_digest: wanted.manifest_digest.clone(),
            });
        }
        self.me
            .report_instance(&report(desired.generation, plugins))
            .await?;
        Ok(())
    }
}

/// The version detail of `plugin` (`publisher/name`) at `version`.
async fn release(
    public: &Client,
    plugin: &str,
    version: &str,
) -> anyhow::Result<agora_core::api::VersionDetail> {
    let (publisher, name) = plugin
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("{plugin} is not PUBLISHER/NAME"))?;
    Ok(public.version(publisher, name, version).await?)
}

/// A converged instance's report on `generation`: it runs `plugins`.
fn report(generation: i64, plugins: Vec<ReportedPlugin>) -> InstanceReport {
    InstanceReport {
        core_version: env!("CARGO_PKG_VERSION").to_owned(),
        runner_version: env!("CARGO_PKG_VERSION").to_owned(),
        platform: "linux-x86_64".to_owned(),
        generation,
        plugins,
        failures: Vec::new(),
        runs: Vec::new(),
        executions: Vec::new(),
        batch: None,
    }
}

/// An instance that has a new generation: when it received it, and when it had fetched
/// the releases and reported (equal to `received` where nothing is fetched).
struct Converged {
    instance: usize,
    generation: i64,
    received: Instant,
    reported: Instant,
}

/// Counts failed requests, keeping the first message.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Errors {
    fn add(&self, error: impl std::fmt::Display) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0
            && let Ok(mut first) = self.first.lock()
        {
            *first = Some(error.to_string());
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count.load(Ordering::Relaxed),
            "first": self.first.lock().ok().and_then(|f| f.clone()),
        })
    }
}

/// How a long-polling agent acts on a new generation.
#[derive(Clone, Copy, PartialEq)]
enum OnChange {
    /// Fetch the releases and report (part 1).
    Converge,
    /// Only note it (parked polls, part 3).
    Note,
}

/// An agent in its long-poll loop: its first request has no `after`, then each waits up
/// to `wait` seconds for a generation other than the one it has. Every new generation is
/// sent on `done` (after the fetches and the report with [`OnChange::Converge`]).
async fn long_poll(
    ix: usize,
    agent: SimAgent,
    wait: u32,
    start_after: Duration,
    on_change: OnChange,
    done: mpsc::UnboundedSender<Converged>,
    errors: Arc<Errors>,
) {
    tokio::time::sleep(start_after).await;
    let mut applied: Option<i64> = None;
    loop {
        let asked = agent
            .me
            .desired_set(applied, if applied.is_some() { wait } else { 0 })
            .await;
        let received = Instant::now();
        let desired = match asked {
            Ok(desired) if Some(desired.generation) == applied => continue,
            Ok(desired) => desired,
            Err(e) => {
                errors.add(e);
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        if on_change == OnChange::Converge
            && let Err(e) = agent.converge(&desired).await
        {
            errors.add(e);
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        }
        applied = Some(desired.generation);
        let _ = done.send(Converged {
            instance: ix,
            generation: desired.generation,
            received,
            reported: Instant::now(),
        });
    }
}

/// Waits until each of `instances` has sent a generation above `above`; returns the first
/// such event of each.
async fn all_converged(
    done: &mut mpsc::UnboundedReceiver<Converged>,
    instances: usize,
    above: i64,
    timeout: Duration,
) -> anyhow::Result<Vec<Converged>> {
    let mut seen = vec![false; instances];
    let mut events = Vec::with_capacity(instances);
    let deadline = tokio::time::Instant::now() + timeout;
    while events.len() < instances {
        let event = tokio::time::timeout_at(deadline, done.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "only {} of {instances} instances had a generation above {above} within {timeout:?}",
                    events.len()
                )
            })?
            .ok_or_else(|| anyhow::anyhow!("every agent stopped"))?;
        if event.instance < instances && event.generation > above && !seen[event.instance] {
            seen[event.instance] = true;
            events.push(event);
        }
    }
    Ok(events)
}

/// Part 1.
async fn convergence(
    opts: &Options,
    admin: &Client,
    plugin: &PluginRef,
) -> anyhow::Result<serde_json::Value> {
    let tenant = "cp-converge";
    create_tenant(admin, tenant).await?;
    let names: Vec<String> = (0..opts.instances).map(|i| format!("agent-{i}")).collect();
    let tokens = register(admin, tenant, &names).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let errors = Arc::new(Errors::default());
    let mut agents = JoinSet::new();
    for (ix, token) in tokens.iter().enumerate() {
        let agent = SimAgent::new(&opts.registry, token)?;
        agents.spawn(long_poll(
            ix,
            agent,
            opts.wait_secs,
            Duration::ZERO,
            OnChange::Converge,
            tx.clone(),
            errors.clone(),
        ));
    }
    // The empty set every instance starts with.
    let initial = all_converged(&mut rx, opts.instances, i64::MIN, CONVERGE_TIMEOUT).await?;
    let mut generation = initial.iter().map(|e| e.generation).max().unwrap_or(0);

    let (mut approvals, mut all_received, mut all_reported) = (Vec::new(), Vec::new(), Vec::new());
    let (mut received, mut reported) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    for round in 0..opts.rounds {
        tokio::time::sleep(SETTLE).await;
        let version = VERSIONS[round % VERSIONS.len()];
        let asked = Instant::now();
        pin(admin, tenant, plugin, version).await?;
        let approve = asked.elapsed();
        let events = all_converged(&mut rx, opts.instances, generation, CONVERGE_TIMEOUT).await?;
        generation = events
            .iter()
            .map(|e| e.generation)
            .max()
            .unwrap_or(generation);
        let got: Vec<Duration> = events.iter().map(|e| e.received - asked).collect();
        let done: Vec<Duration> = events.iter().map(|e| e.reported - asked).collect();
        let (last_got, last_done) = (
            got.iter().max().copied().unwrap_or_default(),
            done.iter().max().copied().unwrap_or_default(),
        );
        eprintln!(
            "convergence round {}: {version}, approval {:.1} ms, all received {:.1} ms, all reported {:.1} ms",
            round + 1,
            ms(approve),
            ms(last_got),
            ms(last_done)
        );
        rounds.push(serde_json::json!({
            "version": version, "approve_ms": ms(approve),
            "all_received_ms": ms(last_got), "all_reported_ms": ms(last_done),
        }));
        approvals.push(approve);
        all_received.push(last_got);
        all_reported.push(last_done);
        received.extend(got);
        reported.extend(done);
    }
    agents.abort_all();
    let public = Client::new(&opts.registry, None)?;
    let fetched: u64 = release(&public, &plugin.to_string(), VERSIONS[0])
        .await?
        .artifacts
        .iter()
        .map(|a| a.size)
        .sum();
    let max_ms = |v: &[Duration]| v.iter().max().copied().map(ms).unwrap_or_default();
    Ok(serde_json::json!({
        "instances": opts.instances, "rounds": rounds, "wait_secs": opts.wait_secs,
        "bytes_fetched_per_instance": fetched,
        "approve_ms": { "median": median_ms(approvals.clone()), "max": max_ms(&approvals) },
        "all_received_ms": { "median": median_ms(all_received.clone()), "max": max_ms(&all_received) },
        "all_reported_ms": { "median": median_ms(all_reported.clone()), "max": max_ms(&all_reported) },
        "per_instance_received": spread(received),
        "per_instance_reported": spread(reported),
        "errors": errors.json(),
    }))
}

/// Instances in tenants `cp-load-0`, `cp-load-1`, ... (each at most the per-tenant
/// limit), each tenant with the plugin approved at its first version.
struct Fleet {
    tokens: Vec<String>,
    /// How many tenants exist; the last may be partly filled.
    tenants: usize,
    registering: Duration,
}

impl Fleet {
    const PER_TENANT: usize = agora_core::tenant::MAX_INSTANCES as usize;

    async fn grow(&mut self, admin: &Client, plugin: &PluginRef, to: usize) -> anyhow::Result<()> {
        while self.tokens.len() < to {
            let tenant_ix = self.tokens.len() / Self::PER_TENANT;
            let tenant = format!("cp-load-{tenant_ix}");
            if tenant_ix >= self.tenants {
                create_tenant(admin, &tenant).await?;
                pin(admin, &tenant, plugin, VERSIONS[0]).await?;
                self.tenants += 1;
            }
            let end = to.min((tenant_ix + 1) * Self::PER_TENANT);
            let names: Vec<String> = (self.tokens.len()..end)
                .map(|i| format!("host-{i}"))
                .collect();
            let started = Instant::now();
            let tokens = register(admin, &tenant, &names).await?;
            self.registering += started.elapsed();
            self.tokens.extend(tokens);
        }
        Ok(())
    }
}

/// One plain poll: its start and how long it took; `None` when it failed.
struct Poll {
    at: Instant,
    took: Option<Duration>,
}

/// What a repeating agent asks.
#[derive(Clone)]
enum Ask {
    /// Its desired set, without a long poll.
    Desired,
    /// To store this report.
    Report(Arc<InstanceReport>),
}

impl Ask {
    async fn send(&self, client: &Client) -> Result<(), agora_client::ClientError> {
        match self {
            Ask::Desired => client.desired_set(None, 0).await.map(drop),
            Ask::Report(report) => client.report_instance(report).await,
        }
    }
}

/// An agent that asks `ask` every `interval` ±10%, counted from the start of each
/// request (as `agora agent` spaces its requests), or back to back without one, until
/// `stop`.
async fn repeat(
    client: Client,
    ask: Ask,
    interval: Option<Duration>,
    seed: u64,
    stop: Arc<AtomicBool>,
    errors: Arc<Errors>,
) -> Vec<Poll> {
    let mut rng = Rng(seed | 1);
    if let Some(interval) = interval {
        tokio::time::sleep(interval.mul_f64(fraction(&mut rng))).await;
    }
    let mut polls = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let took = match ask.send(&client).await {
            Ok(()) => Some(at.elapsed()),
            Err(e) => {
                errors.add(e);
                None
            }
        };
        polls.push(Poll { at, took });
        if let Some(interval) = interval {
            let next = at + interval.mul_f64(0.9 + 0.2 * fraction(&mut rng));
            tokio::time::sleep_until(next.into()).await;
        }
    }
    polls
}

/// Polls started within `[from, to)`: the completed ones' latencies and the failures.
fn window(polls: Vec<Vec<Poll>>, from: Instant, to: Instant) -> (Vec<Duration>, usize) {
    let (mut took, mut failed) = (Vec::new(), 0);
    for poll in polls.into_iter().flatten() {
        if poll.at < from || poll.at >= to {
            continue;
        }
        match poll.took {
            Some(d) => took.push(d),
            None => failed += 1,
        }
    }
    (took, failed)
}

/// Part 2, one level: an agent for each of `tokens` asking `ask` every `interval` (or
/// back to back), warmed up, then measured.
async fn polling_level(
    opts: &Options,
    tokens: &[String],
    ask: &Ask,
    interval: Option<Duration>,
    server: Option<&Proc>,
) -> anyhow::Result<serde_json::Value> {
    let k = tokens.len();
    let clients = tokens
        .iter()
        .map(|t| Client::new(&opts.registry, Some(t.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Errors::default());
    let mut agents = JoinSet::new();
    for (i, client) in clients.into_iter().enumerate() {
        agents.spawn(repeat(
            client,
            ask.clone(),
            interval,
            0x9E37_79B9 ^ ((k as u64) << 32) ^ i as u64,
            stop.clone(),
            errors.clone(),
        ));
    }
    let mut level = measured(opts, opts.warmup, server, &stop, agents).await?;
    merge(
        &mut level,
        serde_json::json!({ "agents": k, "first_error": errors.json()["first"] }),
    );
    Ok(level)
}

/// Lets `repeaters` run for `warmup`, then measures for `opts.measure` and stops them
/// (through `stop`): the requests started in the window (per second, latency
/// percentiles, errors) and what the server and this process used meanwhile.
async fn measured(
    opts: &Options,
    warmup: Duration,
    server: Option<&Proc>,
    stop: &AtomicBool,
    repeaters: JoinSet<Vec<Poll>>,
) -> anyhow::Result<serde_json::Value> {
    tokio::time::sleep(warmup).await;
    let from = Instant::now();
    let usage = Usage::start(server);
    tokio::time::sleep(opts.measure).await;
    let to = Instant::now();
    let mut level = usage.finish();
    stop.store(true, Ordering::Relaxed);
    let (mut took, failed) = window(repeaters.join_all().await, from, to);
    took.sort();
    merge(
        &mut level,
        serde_json::json!({
            "requests": took.len(),
            "requests_per_s": took.len() as f64 / (to - from).as_secs_f64(),
            "p50_ms": took.first().map(|_| percentile(&took, 0.5)),
            "p99_ms": took.first().map(|_| percentile(&took, 0.99)),
            "max_ms": took.first().map(|_| percentile(&took, 1.0)),
            "errors": failed,
        }),
    );
    Ok(level)
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Part 3, one level: `tokens.len()` agents parked in long polls, a probe polling beside
/// them; then one approval in the first tenant and the time until every parked instance
/// of it has the new generation.
async fn held_level(
    opts: &Options,
    tokens: &[String],
    probe: &str,
    server: Option<&Proc>,
    (admin, plugin): (&Client, &PluginRef),
) -> anyhow::Result<serde_json::Value> {
    let n = tokens.len();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let errors = Arc::new(Errors::default());
    let mut agents = JoinSet::new();
    let mut rng = Rng(0x0005_DEEC_E66D ^ n as u64);
    for (ix, token) in tokens.iter().enumerate() {
        let agent = SimAgent::new(&opts.registry, token)?;
        // Agents come up over a couple of seconds, as hosts do, not in one burst.
        let start = Duration::from_secs(2).mul_f64(fraction(&mut rng));
        agents.spawn(long_poll(
            ix,
            agent,
            opts.wait_secs,
            start,
            OnChange::Note,
            tx.clone(),
            errors.clone(),
        ));
    }
    let first = match all_converged(&mut rx, n, i64::MIN, PARK_TIMEOUT).await {
        Ok(first) => first,
        Err(e) => {
            agents.abort_all();
            return Ok(serde_json::json!({
                "parked": n, "failed": e.to_string(), "agent_errors": errors.json(),
            }));
        }
    };
    let generation = first.iter().map(|e| e.generation).max().unwrap_or(0);
    tokio::time::sleep(SETTLE).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut prober = JoinSet::new();
    prober.spawn(repeat(
        Client::new(&opts.registry, Some(probe.to_owned()))?,
        Ask::Desired,
        Some(PROBE_INTERVAL),
        7,
        stop.clone(),
        Arc::new(Errors::default()),
    ));
    // The probe's figures; the server's use of CPU and memory beside them.
    let mut level = measured(opts, Duration::ZERO, server, &stop, prober).await?;
    merge(
        &mut level,
        serde_json::json!({ "parked": n, "agent_errors": errors.json() }),
    );

    // One pin move in cp-load-0: every parked instance of it (the first PER_TENANT of
    // the fleet) must wake with the new generation.
    let waiting = n.min(Fleet::PER_TENANT);
    let asked = Instant::now();
    pin(admin, "cp-load-0", plugin, VERSIONS[1]).await?;
    let approve = asked.elapsed();
    level["fan_out"] = match all_converged(&mut rx, waiting, generation, CONVERGE_TIMEOUT).await {
        Ok(events) => {
            let got: Vec<Duration> = events.iter().map(|e| e.received - asked).collect();
            serde_json::json!({
                "instances": waiting, "approve_ms": ms(approve), "per_instance": spread(got),
            })
        }
        Err(e) => serde_json::json!({ "instances": waiting, "failed": e.to_string() }),
    };
    pin(admin, "cp-load-0", plugin, VERSIONS[0]).await?;
    agents.abort_all();
    Ok(level)
}

/// Measures `level` for each of `levels` in order, ending after the first that `ended`
/// says went past the bound or saw errors; returns what each level measured.
async fn ramp(
    levels: &[usize],
    what: &str,
    mut level: impl AsyncFnMut(usize) -> anyhow::Result<serde_json::Value>,
    ended: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut measured = Vec::new();
    for &n in levels {
        eprintln!("{what}: {n}");
        let one = level(n).await?;
        eprintln!("  {one}");
        let end = ended(&one);
        measured.push(one);
        if end {
            break;
        }
    }
    Ok(measured)
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    anyhow::ensure!(!opts.levels.is_empty(), "--levels names no level");
    anyhow::ensure!(
        opts.instances >= 1 && opts.rounds >= 1,
        "--instances and --rounds must be at least 1"
    );
    let admin = Client::new(&opts.registry, Some(opts.token.clone()))?;
    let public = Client::new(&opts.registry, None)?;
    let plugin: PluginRef = format!("bench/{PLUGIN}").parse()?;
    let server = opts.server_pid.map(|p| Proc(p.to_string()));
    publish_plugin(&admin, opts.module_kib).await?;

    eprintln!(
        "convergence: {} instances, {} rounds",
        opts.instances, opts.rounds
    );
    let converge = convergence(&opts, &admin, &plugin).await?;

    let mut fleet = Fleet {
        tokens: Vec::new(),
        tenants: 0,
        registering: Duration::ZERO,
    };
    let polling = ramp(
        &opts.levels,
        "agents polling",
        async |k| {
            fleet.grow(&admin, &plugin, k).await?;
            let tokens = &fleet.tokens[..k];
            let every = Some(POLL_INTERVAL);
            polling_level(&opts, tokens, &Ask::Desired, every, server.as_ref()).await
        },
        |level| {
            level["errors"].as_u64() != Some(0)
                || level["p99_ms"]
                    .as_f64()
                    .is_none_or(|p99| p99 > opts.stop_p99_ms)
        },
    )
    .await?;

    // The ceilings: `desired` and reports back to back. Each is one write through SQLite's
    // single write connection (`desired` sets the instance's `last_seen_at`).
    let back_to_back_agents = BACK_TO_BACK_AGENTS.min(fleet.tokens.len());
    eprintln!("back to back: {back_to_back_agents} instances");
    let detail = release(&public, &plugin.to_string(), VERSIONS[0]).await?;
    let running = Ask::Report(Arc::new(report(
        1,
        vec![ReportedPlugin {
            plugin: plugin.to_string(),
            version: VERSIONS[0].to_owned(),
            manifest_digest: detail.manifest_digest.to_string(),
        }],
    )));
    let mut back_to_back = serde_json::Map::new();
    for (what, ask) in [("desired", Ask::Desired), ("report", running)] {
        let level = polling_level(
            &opts,
            &fleet.tokens[..back_to_back_agents],
            &ask,
            None,
            server.as_ref(),
        )
        .await?;
        eprintln!("  {what}: {level}");
        back_to_back.insert(what.to_owned(), level);
    }

    create_tenant(&admin, "cp-probe").await?;
    let probe = register(&admin, "cp-probe", &["probe".to_owned()])
        .await?
        .remove(0);
    let held = ramp(
        &opts.levels,
        "long polls held",
        async |n| {
            fleet.grow(&admin, &plugin, n).await?;
            let tokens = &fleet.tokens[..n];
            held_level(&opts, tokens, &probe, server.as_ref(), (&admin, &plugin)).await
        },
        |level| {
            level.get("failed").is_some()
                || level["fan_out"].get("failed").is_some()
                || level["errors"].as_u64() != Some(0)
                || level["agent_errors"]["count"].as_u64() != Some(0)
                || level["p99_ms"]
                    .as_f64()
                    .is_none_or(|p99| p99 > opts.stop_p99_ms)
        },
    )
    .await?;

    let registered = fleet.tokens.len();
    println!(
        "{}",
        serde_json::json!({
            "convergence": converge,
            "polling": polling,
            "poll_interval_s": POLL_INTERVAL.as_secs_f64(),
            "back_to_back": back_to_back,
            "long_polls_held": held,
            "measure_s": opts.measure.as_secs_f64(), "warmup_s": opts.warmup.as_secs_f64(),
            "stop_p99_ms": opts.stop_p99_ms,
            "registered_instances": registered,
            "registrations_per_s": registered as f64 / fleet.registering.as_secs_f64().max(1e-9),
            "module_kib": opts.module_kib,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_the_polls_started_in_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let polls = vec![
            vec![
                Poll {
                    at: at(0),
                    took: Some(Duration::from_millis(1)),
                },
                Poll {
                    at: at(10),
                    took: None,
                },
            ],
            vec![
                Poll {
                    at: at(20),
                    took: Some(Duration::from_millis(3)),
                },
                Poll {
                    at: at(30),
                    took: Some(Duration::from_millis(4)),
                },
            ],
        ];
        let (took, failed) = window(polls, at(10), at(30));
        assert_eq!(took, vec![Duration::from_millis(3)]);
        assert_eq!(failed, 1);
    }

    #[test]
    fn this_process_is_readable_through_proc() {
        let me = Proc("self".into());
        assert!(me.stat_ticks().is_some());
        assert!(me.status_mib("VmRSS:").is_some_and(|m| m > 0.0));
        assert!(me.sockets().is_some());
    }
}
