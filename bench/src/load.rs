//! `load`: a mixed workload held for a while against a running `agora serve`, driven by
//! `bench/load.sh`. `clients` tasks, each with its own connections, ask one request after
//! another (no pause) until the time is up, each time picking a kind by weight:
//!
//! - `blob`: a download of a file of a release the load published (`/api/v1/blobs/D`);
//! - `version`, `plugin`: a version's or a plugin's detail (`/api/v1/plugins/...`), of a
//!   seeded plugin or one the load publishes;
//! - `search`: `/api/v1/plugins` with varied words (seeded description words, prefixes,
//!   names, words nothing matches) and filters, sorts and page sizes; a quarter of the
//!   searches with a next page follow its cursor;
//! - `page_home`, `page_search`, `page_plugin`: the web pages `/`, `/search?...` (the
//!   same parameters) and `/plugins/P/N[?version=V]`.
//!
//! Beside them, `publish`: a signed release (a new version of one of `plugins` plugins of
//! the publisher `bench`: manifest, module of `module_kib` random KiB, README, CHANGELOG)
//! through the client library, as `agora publish` does it (the missing-blob checks, the
//! uploads and the release, timed as one), `publish_per_sec` times a second at most: the
//! first client free once a publish is due makes it.
//!
//! Every answer outside 2xx/3xx is counted by kind and status with a few sample bodies;
//! a request that gets no answer (refused, cut, timed out) is a connection error. After
//! the window, every acknowledged release is looked up in its plugin's version list.
//! Prints JSON: per kind and in total, count, requests/s, p50/p99/max latency, statuses,
//! failures; per minute, requests/s, p99, failures and the server's memory; the server's
//! CPU and peak memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_client::Client;
use agora_client::publish::{self, PublishError};
use tokio::task::JoinSet;

use crate::control::{CpuWindow, Proc};
use crate::{CATEGORIES, DOMAIN, PROVIDERS, Rng, TAGS, percentile};

/// What `load` runs; see the module's documentation.
pub struct Options {
    pub registry: String,
    /// An administrator's token: creates the publisher `bench` and registers its key.
    pub token: String,
    pub server_pid: Option<u32>,
    pub clients: usize,
    pub duration: Duration,
    /// Plugins seeded by `agora-bench seed` (`pub-{i % 50}/plugin-{i}`), 0 for none.
    pub catalog: u32,
    /// Plugins the load publishes new versions of.
    pub plugins: u32,
    pub publish_per_sec: f64,
    pub module_kib: usize,
}

/// The kinds of request, in report order, with the weight each client picks them by
/// (publishes are paced instead).
const KINDS: [(&str, u64); 8] = [
    ("publish", 0),
    ("blob", 20),
    ("version", 12),
    ("plugin", 8),
    ("search", 20),
    ("page_home", 5),
    ("page_search", 15),
    ("page_plugin", 15),
];
const PUBLISH: usize = 0;
const BLOB: usize = 1;
const VERSION: usize = 2;
const PLUGIN: usize = 3;
const SEARCH: usize = 4;
const PAGE_HOME: usize = 5;
const PAGE_SEARCH: usize = 6;

/// The publisher whose plugins the load publishes (`load-0` ... `load-{plugins - 1}`).
const PUBLISHER: &str = "bench";
/// Publishers `agora-bench seed` spreads its plugins over.
const SEEDED_PUBLISHERS: u32 = 50;
/// A request with no answer by then is a connection error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Sample bodies kept per kind and status (and per kind for connection errors).
const SAMPLES_KEPT: usize = 3;
const SAMPLE_CHARS: usize = 400;
/// A client's pause after a request without an answer (a server down is not hammered).
const ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How often the server's memory is read.
const MONITOR_INTERVAL: Duration = Duration::from_secs(5);

/// A release the load published: what later requests ask for.
#[derive(Clone)]
struct Published {
    name: String,
    version: String,
    blobs: Vec<String>,
}

/// What every client shares.
struct Shared {
    registry: String,
    token: String,
    key: agora_trust::SigningKey,
    work: tempfile::TempDir,
    module_kib: usize,
    plugins: u32,
    catalog: u32,
    published: Mutex<Vec<Published>>,
    /// When the next publish is due; `None` when the load publishes nothing.
    next_publish: Mutex<Option<Instant>>,
    publish_interval: Duration,
    /// Publishes started so far (names the next version).
    publishes: std::sync::atomic::AtomicU64,
    started: Instant,
    deadline: Instant,
}

impl Shared {
    /// Whether a publish is due now; the caller that hears yes makes it.
    fn take_publish(&self) -> bool {
        let mut next = self.next_publish.lock().unwrap_or_else(|e| e.into_inner());
        let Some(due) = *next else { return false };
        let now = Instant::now();
        if now < due {
            return false;
        }
        // Late publishes are not caught up in a burst: the schedule slips instead.
        *next = Some((due + self.publish_interval).max(now + self.publish_interval / 2));
        true
    }

    fn random_release(&self, rng: &mut Rng) -> Published {
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        published[(rng.next() % published.len() as u64) as usize].clone()
    }

    /// A plugin to ask for: a seeded one, or (a third of the time, or always without a
    /// seeded catalog) one the load publishes, with one of its versions.
    fn random_plugin(&self, rng: &mut Rng) -> (String, String, String) {
        if self.catalog > 0 && !rng.next().is_multiple_of(3) {
            let i = (rng.next() % u64::from(self.catalog)) as u32;
            let publisher = format!("pub-{}", i % SEEDED_PUBLISHERS);
            return (publisher, format!("plugin-{i}"), "1.0.0".into());
        }
        let release = self.random_release(rng);
        (PUBLISHER.into(), release.name, release.version)
    }
}

/// One measured request.
struct Sample {
    kind: u8,
    /// Since the window started.
    at_ms: u32,
    latency_us: u32,
}

/// Answers outside 2xx/3xx of one status (or connection errors) of one kind.
#[derive(Default)]
struct Failures {
    count: u64,
    samples: Vec<String>,
}

impl Failures {
    fn add(&mut self, text: impl FnOnce() -> String) {
        self.count += 1;
        if self.samples.len() < SAMPLES_KEPT {
            self.samples
                .push(text().chars().take(SAMPLE_CHARS).collect());
        }
    }

    fn absorb(&mut self, other: Failures) {
        self.count += other.count;
        self.samples.extend(other.samples);
        self.samples.truncate(SAMPLES_KEPT);
    }
}

/// What one client saw.
struct Tally {
    /// The start of the measured window.
    started: Instant,
    samples: Vec<Sample>,
    statuses: BTreeMap<(usize, u16), u64>,
    failures: BTreeMap<(usize, u16), Failures>,
    errors: BTreeMap<usize, Failures>,
    /// When each failure or error happened (ms since the window started).
    failed_at: Vec<u32>,
}

impl Tally {
    fn new(started: Instant) -> Tally {
        Tally {
            started,
            samples: Vec::new(),
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            errors: BTreeMap::new(),
            failed_at: Vec::new(),
        }
    }

    /// Milliseconds from the window's start to `at`.
    fn since_start(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.started).as_millis() as u32
    }

    /// An answer with `status` to a request sent at `sent`, read in full just now.
    fn answered(&mut self, kind: usize, sent: Instant, status: u16) {
        self.samples.push(Sample {
            kind: kind as u8,
            at_ms: self.since_start(sent),
            latency_us: sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32,
        });
        *self.statuses.entry((kind, status)).or_default() += 1;
    }

    /// An answer outside 2xx/3xx (already counted by `answered`).
    fn failed(&mut self, kind: usize, status: u16, sent: Instant, text: impl FnOnce() -> String) {
        self.failures.entry((kind, status)).or_default().add(text);
        self.failed_at.push(self.since_start(sent));
    }

    /// No answer at all.
    fn error(&mut self, kind: usize, sent: Instant, text: impl FnOnce() -> String) {
        self.errors.entry(kind).or_default().add(text);
        self.failed_at.push(self.since_start(sent));
    }

    fn merge(&mut self, other: Tally) {
        self.samples.extend(other.samples);
        for (k, n) in other.statuses {
            *self.statuses.entry(k).or_default() += n;
        }
        for (k, f) in other.failures {
            self.failures.entry(k).or_default().absorb(f);
        }
        for (k, f) in other.errors {
            self.errors.entry(k).or_default().absorb(f);
        }
        self.failed_at.extend(other.failed_at);
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(options.plugins > 0, "--plugins must be at least 1");
    let admin = Client::new(&options.registry, Some(options.token.clone()))?;
    match admin.create_publisher(PUBLISHER, None).await {
        Ok(_) => {}
        Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => {}
        Err(e) => return Err(e.into()),
    }
    let key = agora_trust::SigningKey::generate("bench-load")?;
    admin.add_key(PUBLISHER, &key.public().to_openssh()).await?;
    let interval = if options.publish_per_sec > 0.0 {
        Duration::from_secs_f64(1.0 / options.publish_per_sec)
    } else {
        Duration::MAX
    };
    let mut shared = Shared {
        registry: options.registry.clone(),
        token: options.token.clone(),
        key,
        work: tempfile::tempdir()?,
        module_kib: options.module_kib,
        plugins: options.plugins,
        catalog: options.catalog,
        published: Mutex::new(Vec::new()),
        next_publish: Mutex::new(None),
        publish_interval: interval,
        publishes: Default::default(),
        started: Instant::now(),
        deadline: Instant::now(),
    };
    // Each plugin's first release, before the window: what downloads start from.
    for i in 0..options.plugins {
        let release = publish_release(&shared, &admin, &format!("load-{i}"), "1.0.0")
            .await
            .map_err(|e| anyhow::anyhow!("first release of load-{i}: {e}"))?;
        shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(release);
    }

    let server = options.server_pid.map(|p| Proc(p.to_string()));
    let server_cpu = server.as_ref().and_then(CpuWindow::start);
    let bench_cpu = CpuWindow::start(&Proc("self".into()));
    shared.started = Instant::now();
    shared.deadline = shared.started + options.duration;
    if options.publish_per_sec > 0.0 {
        *shared
            .next_publish
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = Some(shared.started);
    }
    let shared = Arc::new(shared);

    let monitor = tokio::spawn(monitor(server.clone(), shared.deadline));
    let mut clients = JoinSet::new();
    for id in 0..options.clients {
        clients.spawn(client(id, shared.clone()));
    }
    let mut tally = Tally::new(shared.started);
    while let Some(done) = clients.join_next().await {
        tally.merge(done??);
    }
    let window = shared.started.elapsed();
    let readings = monitor.await?;
    let server_cpu = server_cpu.as_ref().and_then(CpuWindow::percent);
    let bench_cpu = bench_cpu.as_ref().and_then(CpuWindow::percent);
    // A server that died leaves the check unanswered; the figures are still printed.
    let (missing, check_error) = match unlisted_releases(&admin, &shared).await {
        Ok(missing) => (Some(missing), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let published = shared
        .published
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();

    println!(
        "{}",
        serde_json::json!({
            "window_s": window.as_secs_f64(),
            "clients": options.clients,
            "catalog": options.catalog,
            "plugins": options.plugins,
            "publish_per_sec": options.publish_per_sec,
            "module_kib": options.module_kib,
            "weights": KINDS.iter().map(|(k, w)| (k.to_string(), *w)).collect::<BTreeMap<_, _>>(),
            "kinds": kinds_report(&tally, window),
            "total": total_report(&tally, window),
            "minutes": minutes_report(&tally, &readings, window),
            "load_average_1min": load_report(&readings),
            "releases_published": published,
            "releases_acknowledged_but_unlisted": missing,
            "release_check_error": check_error,
            "server_cpu_percent": server_cpu,
            "bench_cpu_percent": bench_cpu,
            "server_peak_rss_mib": server.as_ref().and_then(|p| p.status_mib("VmHWM:")),
            "server_rss_end_mib": server.as_ref().and_then(|p| p.status_mib("VmRSS:")),
        })
    );
    Ok(())
}

/// One simulated client: its own connections, its own random sequence.
async fn client(id: usize, shared: Arc<Shared>) -> anyhow::Result<Tally> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let publisher = Client::new(&shared.registry, Some(shared.token.clone()))?;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ ((id as u64 + 1) * 0x9E37_79B9));
    let total: u64 = KINDS.iter().map(|(_, w)| w).sum();
    let mut tally = Tally::new(shared.started);
    while Instant::now() < shared.deadline {
        if shared.take_publish() {
            publish_timed(&shared, &publisher, &mut tally).await;
            continue;
        }
        let mut pick = rng.next() % total;
        let kind = KINDS
            .iter()
            .position(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .unwrap_or(BLOB);
        let path = match kind {
            BLOB => {
                let release = shared.random_release(&mut rng);
                let blob = &release.blobs[(rng.next() % release.blobs.len() as u64) as usize];
                format!("/api/v1/blobs/{blob}")
            }
            VERSION => {
                let (p, n, v) = shared.random_plugin(&mut rng);
                format!("/api/v1/plugins/{p}/{n}/versions/{v}")
            }
            PLUGIN => {
                let (p, n, _) = shared.random_plugin(&mut rng);
                format!("/api/v1/plugins/{p}/{n}")
            }
            SEARCH => format!("/api/v1/plugins?{}", search_query(&mut rng)),
            PAGE_HOME => "/".to_owned(),
            PAGE_SEARCH => format!("/search?{}", search_query(&mut rng)),
            // page_plugin, the last kind.
            _ => {
                let (p, n, v) = shared.random_plugin(&mut rng);
                match rng.next() % 4 {
                    0 => format!("/plugins/{p}/{n}?version={v}"),
                    _ => format!("/plugins/{p}/{n}"),
                }
            }
        };
        let body = get(&http, &shared.registry, kind, &path, &mut tally).await;
        // Paging: a quarter of the API searches with a next page ask for it.
        if kind == SEARCH && rng.next().is_multiple_of(4) && Instant::now() < shared.deadline {
            let next = body
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b.as_ref()).ok())
                .and_then(|page| page["next_cursor"].as_str().map(str::to_owned));
            if let Some(cursor) = next {
                let path = format!("{path}&cursor={cursor}");
                get(&http, &shared.registry, SEARCH, &path, &mut tally).await;
            }
        }
    }
    Ok(tally)
}

/// GETs `path` and reads the whole answer; returns the body of a 2xx/3xx answer.
async fn get(
    http: &reqwest::Client,
    registry: &str,
    kind: usize,
    path: &str,
    tally: &mut Tally,
) -> Option<impl AsRef<[u8]> + use<>> {
    let sent = Instant::now();
    let answer = match http.get(format!("{registry}{path}")).send().await {
        Ok(a) => a,
        Err(e) => {
            tally.error(kind, sent, || format!("GET {path}: {}", chain(&e)));
            tokio::time::sleep(ERROR_PAUSE).await;
            return None;
        }
    };
    let status = answer.status().as_u16();
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            tally.error(kind, sent, || {
                format!("GET {path} ({status}), body: {}", chain(&e))
            });
            tokio::time::sleep(ERROR_PAUSE).await;
            return None;
        }
    };
    tally.answered(kind, sent, status);
    if (200..400).contains(&status) {
        return Some(body);
    }
    tally.failed(kind, status, sent, || {
        format!("GET {path}: {}", String::from_utf8_lossy(&body))
    });
    None
}

/// An error with its causes, one after the other.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A publish of the next version of the next plugin, timed and counted.
async fn publish_timed(shared: &Shared, client: &Client, tally: &mut Tally) {
    let n = shared
        .publishes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let plugins = u64::from(shared.plugins);
    let name = format!("load-{}", n % plugins);
    let version = format!("1.0.{}", n / plugins + 1);
    let sent = Instant::now();
    match publish_release(shared, client, &name, &version).await {
        Ok(release) => {
            tally.answered(PUBLISH, sent, 201);
            shared
                .published
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(release);
        }
        Err(PublishFailure::Status(status, text)) => {
            tally.answered(PUBLISH, sent, status);
            tally.failed(PUBLISH, status, sent, || {
                format!("{name}@{version}: {text}")
            });
        }
        Err(PublishFailure::Other(text)) => {
            tally.error(PUBLISH, sent, || format!("{name}@{version}: {text}"));
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// Why a publish failed: an answer outside 2xx/3xx, or anything else.
enum PublishFailure {
    Status(u16, String),
    Other(String),
}

impl std::fmt::Display for PublishFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishFailure::Status(status, text) => write!(f, "{status}: {text}"),
            PublishFailure::Other(text) => f.write_str(text),
        }
    }
}

impl From<PublishError> for PublishFailure {
    fn from(e: PublishError) -> Self {
        let client = match &e {
            PublishError::Upload { source, .. } | PublishError::Client(source) => Some(source),
            PublishError::Gpg(_) => None,
        };
        match client.and_then(|c| c.status()) {
            Some(status) => PublishFailure::Status(status.as_u16(), chain(&e)),
            None => PublishFailure::Other(chain(&e)),
        }
    }
}

/// Writes `bench/NAME@VERSION` (manifest, random module, README, CHANGELOG) and publishes
/// it signed, as `agora publish` does.
async fn publish_release(
    shared: &Shared,
    client: &Client,
    name: &str,
    version: &str,
) -> Result<Published, PublishFailure> {
    let other = |e: &dyn std::error::Error| PublishFailure::Other(chain(e));
    let dir = shared.work.path().join(format!("{name}-{version}"));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut module = vec![0u8; shared.module_kib * 1024];
        getrandom::fill(&mut module).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("plugin.wasm"), module)?;
        let n: usize = name.bytes().map(usize::from).sum::<usize>() + version.len();
        std::fs::write(
            dir.join("plugin.yaml"),
            format!(
                "api_version: agora/v1\npublisher: {PUBLISHER}\nname: {name}\nversion: {version}\n\
                 description: {} {} plugin published under load\nlicense: MIT\nprovider: {}\n\
                 categories: [{}]\ntags: [{}, load]\nruntime: {{ type: wasm, module: plugin.wasm }}\n",
                DOMAIN[n % DOMAIN.len()],
                DOMAIN[(n / 7) % DOMAIN.len()],
                PROVIDERS[n % PROVIDERS.len()],
                CATEGORIES[n % CATEGORIES.len()],
                TAGS[n % TAGS.len()],
            ),
        )?;
        std::fs::write(
            dir.join("README.md"),
            format!(
                "# {name}\n\nA plugin of the load test, version **{version}**.\n\n- one\n- two\n"
            ),
        )?;
        std::fs::write(
            dir.join("CHANGELOG.md"),
            format!("# Changes\n\n## {version}\n\n- Published under load.\n"),
        )
    };
    write().map_err(|e| other(&e))?;
    let release = agora_client::ReleaseFiles::from_dir(&dir).map_err(|e| other(&e))?;
    let signature = publish::Signer::Key(&shared.key)
        .sign(&release)
        .map_err(PublishFailure::from)?;
    let missing = publish::missing(client, &release)
        .await
        .map_err(|e| PublishFailure::from(PublishError::Client(e)))?;
    publish::upload(client, &missing, |_| {}, |_| {}).await?;
    publish::submit(client, &release, &signature).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Published {
        name: name.to_owned(),
        version: version.to_owned(),
        blobs: release.files.iter().map(|f| f.digest.to_string()).collect(),
    })
}

/// A search's query string: words (seeded description words, name and word prefixes,
/// words nothing matches, or none) and any of the filters, a sort and a page size.
fn search_query(rng: &mut Rng) -> String {
    let mut params: Vec<String> = Vec::new();
    let q = match rng.next() % 10 {
        0..=2 => rng.pick(&DOMAIN).to_owned(),
        3 => format!("{}+{}", rng.pick(&DOMAIN), rng.pick(&DOMAIN)),
        4 | 5 => format!("w{:04}", rng.next() % 1000),
        6 => format!("plugin-{}", rng.next() % 1000),
        7 => format!("zzq{}", rng.next() % 100_000),
        8 => rng.pick(&DOMAIN)[..4].to_owned(),
        _ => String::new(),
    };
    if !q.is_empty() {
        params.push(format!("q={q}"));
    }
    let mut filter = |percent: u64, param: &str, value: &dyn Fn(&mut Rng) -> String| {
        if rng.next() % 100 < percent {
            let v = value(rng);
            params.push(format!("{param}={v}"));
        }
    };
    filter(20, "category", &|r| r.pick(&CATEGORIES).to_owned());
    filter(12, "tag", &|r| r.pick(&TAGS).to_owned());
    filter(10, "runtime", &|r| {
        r.pick(&["wasm", "exec", "oci"]).to_owned()
    });
    filter(8, "provider", &|r| r.pick(&PROVIDERS).to_owned());
    filter(5, "publisher", &|r| format!("pub-{}", r.next() % 50));
    filter(5, "verified", &|_| "true".to_owned());
    filter(5, "verified_release", &|_| "true".to_owned());
    filter(5, "min_rating", &|r| (1 + r.next() % 5).to_string());
    filter(5, "compatible_with", &|_| "2.4.0".to_owned());
    filter(30, "sort", &|r| {
        r.pick(&["relevance", "downloads", "recent", "name", "rating"])
            .to_owned()
    });
    filter(15, "limit", &|r| (1 + r.next() % 100).to_string());
    params.join("&")
}

/// What the monitor read every few seconds: the server's resident memory and the
/// machine's one-minute load average, each with the second of the window it was read at.
#[derive(Default)]
struct Readings {
    rss_mib: Vec<(u32, f64)>,
    load_average: Vec<(u32, f64)>,
}

/// Reads the server's memory and the load average every few seconds until `until`.
async fn monitor(server: Option<Proc>, until: Instant) -> Readings {
    let mut readings = Readings::default();
    let started = Instant::now();
    while Instant::now() < until {
        let at = started.elapsed().as_secs() as u32;
        if let Some(rss) = server.as_ref().and_then(|s| s.status_mib("VmRSS:")) {
            readings.rss_mib.push((at, rss));
        }
        let load = std::fs::read_to_string("/proc/loadavg").ok();
        if let Some(one) = load.and_then(|l| l.split_whitespace().next()?.parse().ok()) {
            readings.load_average.push((at, one));
        }
        tokio::time::sleep(MONITOR_INTERVAL).await;
    }
    readings
}

/// The mean, least and greatest of the load averages read.
fn load_report(readings: &Readings) -> serde_json::Value {
    let l: Vec<f64> = readings.load_average.iter().map(|(_, l)| *l).collect();
    if l.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "mean": l.iter().sum::<f64>() / l.len() as f64,
        "min": l.iter().copied().fold(f64::INFINITY, f64::min),
        "max": l.iter().copied().fold(0.0, f64::max),
    })
}

/// Acknowledged releases missing from their plugin's version list.
async fn unlisted_releases(client: &Client, shared: &Shared) -> anyhow::Result<Vec<String>> {
    let published = shared
        .published
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut missing = Vec::new();
    for i in 0..shared.plugins {
        let name = format!("load-{i}");
        let listed: std::collections::BTreeSet<String> = client
            .versions(PUBLISHER, &name)
            .await?
            .versions
            .into_iter()
            .map(|v| v.version)
            .collect();
        for r in published.iter().filter(|r| r.name == name) {
            if !listed.contains(&r.version) {
                missing.push(format!("{name}@{}", r.version));
            }
        }
    }
    Ok(missing)
}

fn latency_report(latencies: &mut [Duration], window: Duration) -> serde_json::Value {
    latencies.sort();
    if latencies.is_empty() {
        return serde_json::json!({ "count": 0, "per_s": 0.0 });
    }
    serde_json::json!({
        "count": latencies.len(),
        "per_s": latencies.len() as f64 / window.as_secs_f64(),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": percentile(latencies, 1.0),
    })
}

fn latencies(tally: &Tally, kind: Option<usize>) -> Vec<Duration> {
    tally
        .samples
        .iter()
        .filter(|s| kind.is_none_or(|k| usize::from(s.kind) == k))
        .map(|s| Duration::from_micros(u64::from(s.latency_us)))
        .collect()
}

fn kinds_report(tally: &Tally, window: Duration) -> Vec<serde_json::Value> {
    KINDS
        .iter()
        .enumerate()
        .map(|(kind, (name, weight))| {
            let mut report = latency_report(&mut latencies(tally, Some(kind)), window);
            let statuses: BTreeMap<String, u64> = tally
                .statuses
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, s), n)| (s.to_string(), *n))
                .collect();
            let failures: BTreeMap<String, serde_json::Value> = tally
                .failures
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, s), f)| {
                    let value = serde_json::json!({ "count": f.count, "samples": f.samples });
                    (s.to_string(), value)
                })
                .collect();
            let errors = tally.errors.get(&kind);
            report["kind"] = (*name).into();
            report["weight"] = (*weight).into();
            report["statuses"] = serde_json::json!(statuses);
            report["failures"] = serde_json::json!(failures);
            report["errors"] = errors.map_or(0, |e| e.count).into();
            report["error_samples"] = serde_json::json!(errors.map(|e| &e.samples));
            report
        })
        .collect()
}

fn total_report(tally: &Tally, window: Duration) -> serde_json::Value {
    let mut report = latency_report(&mut latencies(tally, None), window);
    let count = |range: std::ops::Range<u16>| -> u64 {
        tally
            .statuses
            .iter()
            .filter(|((_, s), _)| range.contains(s))
            .map(|(_, n)| n)
            .sum()
    };
    report["ok_2xx_3xx"] = count(200..400).into();
    report["client_errors_4xx"] = count(400..500).into();
    report["server_errors_5xx"] = count(500..600).into();
    report["other_statuses"] = (count(0..200) + count(600..u16::MAX)).into();
    report["connection_errors"] = tally.errors.values().map(|e| e.count).sum::<u64>().into();
    report
}

/// Per minute of the window: requests/s, p99, failures and errors, the server's memory,
/// the machine's load average.
fn minutes_report(tally: &Tally, readings: &Readings, window: Duration) -> Vec<serde_json::Value> {
    let mut minutes: BTreeMap<u32, Vec<Duration>> = BTreeMap::new();
    for s in &tally.samples {
        minutes
            .entry(s.at_ms / 60_000)
            .or_default()
            .push(Duration::from_micros(u64::from(s.latency_us)));
    }
    minutes
        .into_iter()
        .map(|(minute, mut latencies)| {
            latencies.sort();
            let failed = tally
                .failed_at
                .iter()
                .filter(|at| **at / 60_000 == minute)
                .count();
            let in_minute = |r: &[(u32, f64)]| -> Vec<f64> {
                r.iter()
                    .filter(|(at, _)| *at / 60 == minute)
                    .map(|(_, v)| *v)
                    .collect()
            };
            let rss = in_minute(&readings.rss_mib).into_iter().reduce(f64::max);
            let load = in_minute(&readings.load_average);
            let load = (!load.is_empty()).then(|| load.iter().sum::<f64>() / load.len() as f64);
            // The last minute may be partial (requests sent before the end, answered after).
            let span = (window.as_secs_f64() - f64::from(minute) * 60.0).clamp(1.0, 60.0);
            serde_json::json!({
                "minute": minute,
                "per_s": latencies.len() as f64 / span,
                "p99_ms": percentile(&latencies, 0.99),
                "failed": failed,
                "server_rss_max_mib": rss,
                "load_average_mean": load,
            })
        })
        .collect()
}
