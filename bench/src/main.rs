//! Benchmark tools driven by `bench/run.sh`:
//! - `seed`: fills a catalog with generated plugins through the real store code;
//! - `latency`: sequential GETs of one URL, reporting p50/p99;
//! - `publish`: uploads and publishes a release of a given size, reporting MiB/s;
//! - `publish-rate`: small-release publishes from concurrent publishers, into Agora and
//!   Verdaccio, reporting releases/s (driven by `bench/publish.sh`);
//! - `verify`: the verification pipeline (driven by `bench/verify.sh`): per-stage and
//!   total times, releases audited per minute, publish latency beside a busy worker;
//! - `control-plane`: simulated agents against the control plane (driven by
//!   `bench/control.sh`): convergence after an approval, polling load, long polls held;
//! - `load`: a mixed workload (publishes, downloads, searches, page views) from several
//!   clients for a while (driven by `bench/load.sh`).

mod control;
mod load;

use agora_store::prelude::*;
use std::time::{Duration, Instant};

use agora_client::Client;
use agora_client::publish;
use agora_core::manifest::ArtifactRole;
use agora_core::{Digest, Manifest};
use agora_store::{ArtifactRecord, NewRelease, Role, SqlStore};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time what an install spends verifying (signature, log proofs, hashing) next to the
    /// download, RUNS times; print medians as JSON.
    InstallCost {
        #[arg(long)]
        registry: String,
        /// PUBLISHER/NAME.
        #[arg(long)]
        plugin: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value_t = 10)]
        runs: u32,
    },
    /// Time the runner: WASM cold start from the compiled cache and warm calls, native
    /// start and warm calls, RUNS times each; print p50/p99 as JSON. The directories are
    /// built example plugins (hello-wasm, echo-native); native needs root.
    Runner {
        #[arg(long)]
        wasm: std::path::PathBuf,
        #[arg(long)]
        native: std::path::PathBuf,
        /// An OCI plugin directory (plugin.yaml with `runtime.type: oci` and its image as
        /// an `image/` layout): its start under runc from the unpacked, cached layers,
        /// and warm calls.
        #[arg(long)]
        oci: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 200)]
        runs: u32,
    },
    /// Create COUNT plugins (one version each) in the database at URL; with --reviews,
    /// every fifth plugin also gets one to three ratings and reviews. With --bulk, the
    /// same releases are stored 5,000 per transaction by multi-row inserts (the store's
    /// bulk load, which writes the rows a publish writes): a million in minutes.
    Seed {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        count: u32,
        #[arg(long, conflicts_with = "bulk")]
        reviews: bool,
        #[arg(long)]
        bulk: bool,
    },
    /// GET URL REQUESTS times, one at a time, and print latency percentiles as JSON.
    /// With --vary N, request k fills placeholders in URL from n = k mod N: `{n}` (n),
    /// `{n4}` (n with four digits), `{n50}` (n mod 50), so every request can ask for a
    /// different page (nothing cached can answer it).
    Latency {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 2000)]
        requests: u32,
        #[arg(long)]
        vary: Option<u32>,
        /// With --vary, fill `{n}` with n * STEP + OFFSET instead (to spread n over a
        /// range larger than VARY, such as every index of a large log).
        #[arg(long, default_value_t = 1)]
        step: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// The verification pipeline on a server that verifies nothing itself
    /// (`[worker] in_process = false`), whose publisher `bench` exists: publish COUNT
    /// signed releases with no worker running (each publish timed), start `agora worker`
    /// (the binary AGORA on DATA_DIR; the environment names the database), publish DURING
    /// more while it drains that backlog (timed), then wait for every release's report.
    /// Prints as JSON: p50/p99 of each stage and of the whole pipeline per release (from
    /// the reports' `stages[].duration_ms`), releases audited per minute, and publish
    /// latency without and beside the busy worker.
    Verify {
        #[arg(long)]
        registry: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        agora: std::path::PathBuf,
        #[arg(long)]
        data_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 200)]
        count: u32,
        #[arg(long, default_value_t = 100)]
        during: u32,
        /// The module every release carries (a built WebAssembly component makes the
        /// `wasm` stage do its real work); default: 64 KiB of random bytes.
        #[arg(long)]
        module: Option<std::path::PathBuf>,
        /// `agora worker --concurrency`.
        #[arg(long, default_value_t = 1)]
        concurrency: u16,
    },
    /// The control plane against a running server whose publisher `bench` exists (see
    /// `bench/control.sh` and the `control` module): INSTANCES simulated agents converge
    /// after ROUNDS approvals; then K plain-polling agents for each K of LEVELS; then N
    /// long polls held for each N of LEVELS. Prints JSON.
    ControlPlane {
        /// The registry; its administrator's token creates tenants.
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 100)]
        instances: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds each long poll waits for a change.
        #[arg(long, default_value_t = 30)]
        wait: u32,
        /// Size of the approved plugin's module, KiB.
        #[arg(long, default_value_t = 256)]
        module_kib: usize,
        /// Agent counts of the polling and long-poll parts, ascending.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
        levels: Vec<usize>,
        #[arg(long, default_value_t = 5)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 20)]
        measure_secs: u64,
        /// The polling ramp ends after the first level whose p99 passes this (or that
        /// saw errors).
        #[arg(long, default_value_t = 250.0)]
        stop_p99_ms: f64,
    },
    /// A mixed workload against a running server for DURATION_SECS (see `bench/load.sh`
    /// and the `load` module): CLIENTS tasks downloading, reading details, searching and
    /// viewing pages, and signed publishes at PUBLISH_PER_SEC at most. Prints JSON.
    Load {
        /// The registry; its administrator's token creates the publisher `bench` and
        /// registers a key.
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 12)]
        clients: usize,
        #[arg(long, default_value_t = 600)]
        duration_secs: u64,
        /// Plugins `seed` put in the catalog (0: none).
        #[arg(long, default_value_t = 0)]
        catalog: u32,
        /// Plugins the load publishes new versions of.
        #[arg(long, default_value_t = 8)]
        plugins: u32,
        #[arg(long, default_value_t = 2.0)]
        publish_per_sec: f64,
        /// Size of each release's module, KiB.
        #[arg(long, default_value_t = 32)]
        module_kib: usize,
    },
    /// Publish a release with a module of SIZE_MIB random mebibytes; print timings as JSON.
    Publish {
        #[arg(long)]
        registry: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 50)]
        size_mib: u64,
        #[arg(long, default_value = "1.0.0")]
        version: String,
    },
    /// Small-release publish throughput: PUBLISHERS concurrent publishers, each with its
    /// own connections, each publishing RELEASES new plugins (a plugin.yaml and a module of
    /// SIZE_KIB random KiB, signed) one after another; with `--verdaccio`, the same count
    /// of new npm packages (one publish PUT each, as `npm publish` sends it, a tarball of
    /// SIZE_KIB) into Verdaccio the same way. Prints releases/s and per-publish p50/p99 as
    /// JSON lines. Give `--registry`, `--verdaccio` or both.
    PublishRate {
        /// Agora's URL, to publish there.
        #[arg(long, requires = "token", required_unless_present = "verdaccio")]
        registry: Option<String>,
        /// A registry administrator's token.
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value_t = 8)]
        publishers: u32,
        #[arg(long, default_value_t = 25)]
        releases: u32,
        #[arg(long, default_value_t = 4)]
        size_kib: usize,
        /// Verdaccio's URL, to publish there too.
        #[arg(long, requires = "verdaccio_token")]
        verdaccio: Option<String>,
        /// A Verdaccio user's token.
        #[arg(long)]
        verdaccio_token: Option<String>,
    },
}

/// The running server a scenario loads.
#[derive(clap::Args)]
struct Server {
    #[arg(long)]
    registry: String,
    /// A registry administrator's token.
    #[arg(long)]
    token: String,
    /// The server's process id, for its CPU time, memory and sockets (read from `/proc`).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// Words every description draws two of, so a one-word query matches about 1/20 of the
/// catalog and a two-word query about 1/400.
const DOMAIN: [&str; 20] = [
    "network",
    "scanner",
    "ticket",
    "jira",
    "slack",
    "cloud",
    "storage",
    "metrics",
    "alert",
    "deploy",
    "backup",
    "secret",
    "audit",
    "compliance",
    "database",
    "queue",
    "email",
    "billing",
    "search",
    "report",
];
const CATEGORIES: [&str; 10] = [
    "ticketing",
    "monitoring",
    "security",
    "storage",
    "messaging",
    "ci",
    "analytics",
    "networking",
    "data",
    "testing",
];
const PROVIDERS: [&str; 8] = [
    "aws",
    "gcp",
    "azure",
    "atlassian",
    "slack",
    "github",
    "gitlab",
    "datadog",
];
const TAGS: [&str; 30] = [
    "http", "grpc", "json", "yaml", "cli", "sdk", "webhook", "oauth", "rest", "graphql", "kafka",
    "nats", "redis", "postgres", "mysql", "s3", "gcs", "blob", "queue", "cron", "etl", "pdf",
    "csv", "xml", "ldap", "saml", "sso", "vpn", "dns", "tls",
];
const RUNTIMES: [&str; 3] = ["wasm", "exec", "oci"];

/// A small deterministic generator (xorshift), so every run seeds the same catalog.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn generated_manifest(i: u32, publisher: &str, rng: &mut Rng) -> String {
    let words: Vec<String> = (0..6)
        .map(|_| format!("w{:04}", rng.next() % 1000))
        .collect();
    let description = format!(
        "{} {} plugin {} {}",
        rng.pick(&DOMAIN),
        rng.pick(&DOMAIN),
        words[..3].join(" "),
        words[3..].join(" ")
    );
    let runtime = match rng.pick(&RUNTIMES) {
        "wasm" => "{ type: wasm, module: plugin.wasm }".to_owned(),
        "exec" => "{ type: exec, binaries: { linux-x86_64: bin/plugin } }".to_owned(),
        _ => format!(
            "{{ type: oci, image: \"registry.example/p{i}@sha256:{}\" }}",
            "a".repeat(64)
        ),
    };
    let mut tags = vec![rng.pick(&TAGS), rng.pick(&TAGS), rng.pick(&TAGS)];
    tags.sort();
    tags.dedup();
    format!(
        "api_version: agora/v1\npublisher: {publisher}\nname: plugin-{i}\nversion: 1.0.0\n\
         description: {description}\nlicense: MIT\nprovider: {}\ncategories: [{}]\ntags: [{}]\nruntime: {runtime}\n",
        rng.pick(&PROVIDERS),
        rng.pick(&CATEGORIES),
        tags.join(", ")
    )
}

async fn seed(database: &str, count: u32, reviews: bool, bulk: bool) -> anyhow::Result<()> {
    let store = SqlStore::connect(database).await?;
    let mut reviewers = Vec::new();
    if reviews {
        for r in 0..3 {
            let name = format!("reviewer-{r}");
            reviewers.push(match store.user_by_name(&name).await? {
                Some(u) => u,
                None => store.create_user(&name, Role::User).await?,
            });
        }
    }
    let user = match store.user_by_name("bench").await? {
        Some(u) => u,
        None => store.create_user("bench", Role::Publisher).await?,
    };
    let mut publishers = Vec::new();
    for p in 0..50 {
        let name = format!("pub-{p}");
        let record = match store.publisher_by_name(&name).await? {
            Some(r) => r,
            None => store.create_publisher(&name, None, &user).await?,
        };
        publishers.push(record);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let mut batch = Vec::new();
    for i in 0..count {
        let publisher = &publishers[(i % 50) as usize];
        let text = generated_manifest(i, &publisher.name, &mut rng);
        let manifest = Manifest::from_yaml(&text)?;
        let digest = Digest::of(text.as_bytes());
        let artifacts = vec![ArtifactRecord {
            path: "plugin.yaml".into(),
            role: ArtifactRole::Manifest,
            digest,
            size: text.len() as i64,
        }];
        let release = NewRelease {
            publisher_id: publisher.id,
            manifest,
            manifest_digest: digest,
            signature: None,
            signer_key: None,
            log_entry: None,
            artifacts,
            published_by: user.id,
            actor: "bench".into(),
            // Seeded releases are not verified (their files are not stored).
            jobs: Vec::new(),
        };
        if bulk {
            batch.push(release);
            if batch.len() == 5_000 || i + 1 == count {
                store.publish_bulk(&batch).await?;
                batch.clear();
            }
        } else {
            let version = store.publish(release).await?;
            if reviews && i % 5 == 0 {
                let n = 1 + (rng.next() % 3) as usize;
                for reviewer in &reviewers[..n] {
                    store
                        .upsert_review(agora_store::NewReview {
                            plugin_id: version.plugin_id,
                            user_id: reviewer.id,
                            version: "1.0.0".into(),
                            rating: 1 + (rng.next() % 5) as i64,
                            body: format!(
                                "Review {i} by {}: does what it says.",
                                reviewer.username
                            ),
                            actor: reviewer.username.clone(),
                        })
                        .await?;
                }
            }
        }
        if (i + 1) % 10_000 == 0 {
            eprintln!("seeded {} plugins in {:.1?}", i + 1, started.elapsed());
        }
    }
    store.close().await;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

/// `url` with its placeholders filled for request `k` (see `Command::Latency`).
fn url_for(url: &str, k: u32, vary: Option<u32>, spread: Spread) -> String {
    match vary {
        Some(v) if v > 0 => {
            let n = k % v;
            let spread_n = u64::from(n) * spread.step + spread.offset;
            url.replace("{n4}", &format!("{n:04}"))
                .replace("{n50}", &(n % 50).to_string())
                .replace("{n}", &spread_n.to_string())
        }
        _ => url.to_owned(),
    }
}

/// How `{n}` is spread: n * step + offset.
#[derive(Clone, Copy)]
struct Spread {
    step: u64,
    offset: u64,
}

async fn latency(
    url: &str,
    requests: u32,
    vary: Option<u32>,
    spread: Spread,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut bytes = 0;
    // Warm the connection (and, without --vary, the page) with requests not measured;
    // with --vary they use n values the measured requests do not reach first.
    for w in 0..20 {
        client
            .get(url_for(url, requests.saturating_add(w), vary, spread))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
    }
    let mut samples = Vec::with_capacity(requests as usize);
    for k in 0..requests {
        let target = url_for(url, k, vary, spread);
        let t = Instant::now();
        let body = client
            .get(&target)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        samples.push(t.elapsed());
        bytes = body.len();
    }
    samples.sort();
    let mean =
        samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1000.0;
    // JSON answers (the API) say how many results the page held; HTML pages do not.
    let answer: Option<serde_json::Value> = reqwest::get(url_for(url, 0, vary, spread))
        .await?
        .json()
        .await
        .ok();
    let results = answer.and_then(|a| a["items"].as_array().map(Vec::len));
    println!(
        "{}",
        serde_json::json!({
            "requests": requests, "p50_ms": percentile(&samples, 0.50), "p99_ms": percentile(&samples, 0.99),
            "max_ms": percentile(&samples, 1.0), "mean_ms": mean, "response_bytes": bytes, "results_on_page": results,
        })
    );
    Ok(())
}

async fn publish(registry: &str, token: &str, size_mib: u64, version: &str) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("agora-bench-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let size = size_mib * 1024 * 1024;
    let mut module = vec![0u8; size as usize];
    getrandom::fill(&mut module)?;
    std::fs::write(dir.join("plugin.wasm"), &module)?;
    drop(module);
    std::fs::write(
        dir.join("plugin.yaml"),
        format!(
            "api_version: agora/v1\npublisher: bench\nname: big\nversion: {version}\ndescription: A large plugin\nlicense: MIT\n\
             runtime: {{ type: wasm, module: plugin.wasm }}\n"
        ),
    )?;
    // Hashing the files and signing happen before the timed part, as a publisher would.
    let release = agora_client::ReleaseFiles::from_dir(&dir)?;
    let client = Client::new(registry, Some(token.to_owned()))?;
    let key = agora_trust::SigningKey::generate("bench")?;
    client.add_key("bench", &key.public().to_openssh()).await?;
    let signature = publish::Signer::Key(&key).sign(&release)?;
    let started = Instant::now();
    let missing = publish::missing(&client, &release).await?;
    publish::upload(&client, &missing, |_| {}, |_| {}).await?;
    let uploaded = started.elapsed();
    publish::submit(&client, &release, &signature).await?;
    let total = started.elapsed();
    std::fs::remove_dir_all(&dir)?;
    let mib = size as f64 / (1024.0 * 1024.0);
    println!(
        "{}",
        serde_json::json!({
            "size_mib": size_mib, "upload_s": uploaded.as_secs_f64(), "total_s": total.as_secs_f64(),
            "upload_mib_s": mib / uploaded.as_secs_f64(), "publish_mib_s": mib / total.as_secs_f64(),
        })
    );
    Ok(())
}

/// How many publishers publish how many releases of what size ([`Command::PublishRate`]).
struct RateLoad {
    publishers: u32,
    releases: u32,
    size: usize,
}

/// Waits for every publisher's task, then prints one JSON line: releases per second over
/// the wall time since `started`, per-publish p50/p99.
async fn report_rate(
    server: &str,
    load: &RateLoad,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>>,
) -> anyhow::Result<()> {
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let wall = started.elapsed();
    samples.sort();
    let count = samples.len();
    println!(
        "{}",
        serde_json::json!({
            "server": server, "publishers": load.publishers, "releases": count,
            "size_kib": load.size / 1024, "seconds": wall.as_secs_f64(),
            "per_s": count as f64 / wall.as_secs_f64(),
            "p50_ms": percentile(&samples, 0.5), "p99_ms": percentile(&samples, 0.99),
        })
    );
    Ok(())
}

async fn publish_rate_agora(registry: &str, token: &str, load: &RateLoad) -> anyhow::Result<()> {
    let key = std::sync::Arc::new(agora_trust::SigningKey::generate("bench")?);
    Client::new(registry, Some(token.to_owned()))?
        .add_key("bench", &key.public().to_openssh())
        .await?;
    let work = tempfile::tempdir()?;
    let run = format!("{:x}", std::process::id());
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.publishers)
        .map(|t| {
            let (key, dir) = (std::sync::Arc::clone(&key), work.path().to_owned());
            let (registry, token, prefix) = (
                registry.to_owned(),
                token.to_owned(),
                format!("rate-{run}-{t}-"),
            );
            let (count, size) = (load.releases, load.size);
            tokio::spawn(async move {
                // Each publisher its own client: its own connections.
                let client = Client::new(&registry, Some(token))?;
                let mut module = vec![0u8; size];
                getrandom::fill(&mut module)?;
                publish_many(&client, &key, &dir, &prefix, count, &module).await
            })
        })
        .collect();
    report_rate("agora", load, started, tasks).await
}

async fn publish_rate_verdaccio(url: &str, token: &str, load: &RateLoad) -> anyhow::Result<()> {
    use base64ct::Encoding as _;
    use sha2::Digest as _;
    let url = url.trim_end_matches('/').to_owned();
    let run = format!("{:x}", std::process::id());
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.publishers)
        .map(|t| {
            let (url, token, prefix) = (url.clone(), token.to_owned(), format!("rate-{run}-{t}-"));
            let (count, size) = (load.releases, load.size);
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut samples = Vec::with_capacity(count as usize);
                for i in 0..count {
                    let mut tarball = vec![0u8; size];
                    getrandom::fill(&mut tarball)?;
                    let started = Instant::now();
                    // What `npm publish` PUTs: the package document with the tarball in it.
                    let name = format!("{prefix}{i}");
                    let file = format!("{name}-1.0.0.tgz");
                    let integrity =
                        base64ct::Base64::encode_string(&sha2::Sha512::digest(&tarball));
                    let doc = serde_json::json!({
                        "_id": name, "name": name, "dist-tags": {"latest": "1.0.0"},
                        "versions": {"1.0.0": {"name": name, "version": "1.0.0",
                            "description": "A release of the publish benchmark",
                            "dist": {"tarball": format!("{url}/{name}/-/{file}"),
                                     "integrity": format!("sha512-{integrity}")}}},
                        "_attachments": {file: {"content_type": "application/octet-stream",
                            "data": base64ct::Base64::encode_string(&tarball), "length": size}},
                    });
                    http.put(format!("{url}/{name}"))
                        .bearer_auth(&token)
                        .json(&doc)
                        .send()
                        .await?
                        .error_for_status()?;
                    samples.push(started.elapsed());
                }
                Ok::<_, anyhow::Error>(samples)
            })
        })
        .collect();
    report_rate("verdaccio", load, started, tasks).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed {
            database,
            count,
            reviews,
            bulk,
        } => seed(&database, count, reviews, bulk).await,
        Command::InstallCost {
            registry,
            plugin,
            version,
            runs,
        } => install_cost(&registry, &plugin, &version, runs).await,
        Command::Latency {
            url,
            requests,
            vary,
            step,
            offset,
        } => latency(&url, requests, vary, Spread { step, offset }).await,
        Command::Runner {
            wasm,
            native,
            oci,
            runs,
        } => runner(&wasm, &native, oci.as_deref(), runs).await,
        Command::Load {
            server:
                Server {
                    registry,
                    token,
                    server_pid,
                },
            clients,
            duration_secs,
            catalog,
            plugins,
            publish_per_sec,
            module_kib,
        } => {
            load::run(load::Options {
                registry,
                token,
                server_pid,
                clients,
                duration: Duration::from_secs(duration_secs),
                catalog,
                plugins,
                publish_per_sec,
                module_kib,
            })
            .await
        }
        Command::Publish {
            registry,
            token,
            size_mib,
            version,
        } => publish(&registry, &token, size_mib, &version).await,
        Command::PublishRate {
            registry,
            token,
            publishers,
            releases,
            size_kib,
            verdaccio,
            verdaccio_token,
        } => {
            let load = RateLoad {
                publishers,
                releases,
                size: size_kib * 1024,
            };
            if let (Some(registry), Some(token)) = (registry, token) {
                publish_rate_agora(&registry, &token, &load).await?;
            }
            if let (Some(url), Some(token)) = (verdaccio, verdaccio_token) {
                publish_rate_verdaccio(&url, &token, &load).await?;
            }
            Ok(())
        }
        Command::Verify {
            registry,
            token,
            agora,
            data_dir,
            count,
            during,
            module,
            concurrency,
        } => {
            let worker = WorkerProcess {
                agora,
                data_dir,
                concurrency,
            };
            verify(&registry, &token, &worker, count, during, module.as_deref()).await
        }
        Command::ControlPlane {
            server:
                Server {
                    registry,
                    token,
                    server_pid,
                },
            instances,
            rounds,
            wait,
            module_kib,
            levels,
            warmup_secs,
            measure_secs,
            stop_p99_ms,
        } => {
            control::run(control::Options {
                registry,
                token,
                server_pid,
                instances,
                rounds,
                wait_secs: wait,
                module_kib,
                levels,
                warmup: Duration::from_secs(warmup_secs),
                measure: Duration::from_secs(measure_secs),
                stop_p99_ms,
            })
            .await
        }
    }
}

/// Size of the generated module when `verify` is given none.
const GENERATED_MODULE_BYTES: usize = 64 * 1024;
/// How often `verify` asks whether a release's report exists.
const REPORT_POLL: Duration = Duration::from_millis(10);
/// How long `verify` waits for one release's report before giving up.
const REPORT_WAIT: Duration = Duration::from_secs(600);

/// The `agora worker` process `verify` starts.
struct WorkerProcess {
    agora: std::path::PathBuf,
    data_dir: std::path::PathBuf,
    concurrency: u16,
}

impl WorkerProcess {
    fn spawn(&self) -> anyhow::Result<std::process::Child> {
        let log = std::fs::File::create(self.data_dir.join("bench-worker.log"))?;
        Ok(std::process::Command::new(&self.agora)
            .args([
                "worker",
                "--concurrency",
                &self.concurrency.to_string(),
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()?)
    }
}

/// Publishes signed releases `bench/<prefix><i>@1.0.0` carrying `module`, one after
/// another; returns each one's publish time (missing-blob check, upload, release).
async fn publish_many(
    client: &Client,
    key: &agora_trust::SigningKey,
    work: &std::path::Path,
    prefix: &str,
    count: u32,
    module: &[u8],
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count as usize);
    for i in 0..count {
        let dir = work.join(format!("{prefix}{i}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("plugin.wasm"), module)?;
        std::fs::write(
            dir.join("plugin.yaml"),
            format!(
                "api_version: agora/v1\npublisher: bench\nname: {prefix}{i}\nversion: 1.0.0\n\
                 description: A release of the verification benchmark\nlicense: MIT\n\
                 runtime: {{ type: wasm, module: plugin.wasm }}\n"
            ),
        )?;
        samples.push(publish_dir(client, key, &dir).await?);
    }
    Ok(samples)
}

/// Publishes the release in `dir` signed with `key`; returns the time from the
/// missing-blob check to the accepted release (hashing and signing come before).
async fn publish_dir(
    client: &Client,
    key: &agora_trust::SigningKey,
    dir: &std::path::Path,
) -> anyhow::Result<Duration> {
    let release = agora_client::ReleaseFiles::from_dir(dir)?;
    let signature = publish::Signer::Key(key).sign(&release)?;
    let started = Instant::now();
    let missing = publish::missing(client, &release).await?;
    publish::upload(client, &missing, |_| {}, |_| {}).await?;
    publish::submit(client, &release, &signature).await?;
    Ok(started.elapsed())
}

/// Waits for the report of `bench/<name>@1.0.0`.
async fn report_of(
    client: &Client,
    name: &str,
) -> anyhow::Result<agora_core::verification::VerificationReport> {
    let deadline = Instant::now() + REPORT_WAIT;
    loop {
        if let Some(report) = client.verification("bench", name, "1.0.0").await? {
            return Ok(report);
        }
        anyhow::ensure!(Instant::now() < deadline, "bench/{name} was never verified");
        tokio::time::sleep(REPORT_POLL).await;
    }
}

async fn verify(
    registry: &str,
    token: &str,
    worker: &WorkerProcess,
    count: u32,
    during: u32,
    module: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(count >= 2, "--count must be at least 2");
    let module = match module {
        Some(path) => std::fs::read(path)?,
        None => {
            let mut bytes = vec![0u8; GENERATED_MODULE_BYTES];
            getrandom::fill(&mut bytes)?;
            bytes
        }
    };
    let work = tempfile::tempdir()?;
    let client = Client::new(registry, Some(token.to_owned()))?;
    let key = agora_trust::SigningKey::generate("bench")?;
    client.add_key("bench", &key.public().to_openssh()).await?;

    // Publishing alone: no worker runs, the backlog builds up.
    let alone = publish_many(&client, &key, work.path(), "backlog-", count, &module).await?;
    // Publishing beside a worker draining that backlog.
    let mut child = worker.spawn()?;
    let busy = publish_many(&client, &key, work.path(), "busy-", during, &module).await;
    let last_backlog = format!("backlog-{}", count - 1);
    let busy_throughout = client
        .verification("bench", &last_backlog, "1.0.0")
        .await?
        .is_none();
    // Releases are claimed in the order they were queued: time from the first report to
    // the last one seen.
    let drained = async {
        let first = report_of(&client, "backlog-0").await?;
        let first_seen = Instant::now();
        let mut reports = vec![first];
        for i in 1..count {
            reports.push(report_of(&client, &format!("backlog-{i}")).await?);
        }
        for i in 0..during {
            reports.push(report_of(&client, &format!("busy-{i}")).await?);
        }
        anyhow::Ok((reports, first_seen.elapsed()))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let busy = busy?;
    let (reports, span) = drained?;

    let mut stages: std::collections::BTreeMap<String, Vec<Duration>> = Default::default();
    let mut totals = Vec::with_capacity(reports.len());
    let mut outcomes: std::collections::BTreeMap<&'static str, u32> = Default::default();
    for report in &reports {
        let mut total = 0;
        for stage in &report.stages {
            total += stage.duration_ms;
            stages
                .entry(stage.stage.clone())
                .or_default()
                .push(Duration::from_millis(stage.duration_ms));
        }
        totals.push(Duration::from_millis(total));
        *outcomes.entry(report.outcome.as_str()).or_default() += 1;
    }
    let per_minute = (reports.len() - 1) as f64 / span.as_secs_f64() * 60.0;
    let (alone, busy) = (spread(alone), spread(busy));
    let ratio =
        |field: &str| busy[field].as_f64().unwrap_or(0.0) / alone[field].as_f64().unwrap_or(1.0);
    println!(
        "{}",
        serde_json::json!({
            "releases": reports.len(), "module_bytes": module.len(), "worker_concurrency": worker.concurrency,
            "outcomes": outcomes,
            "pipeline_per_release": spread(totals),
            "stages": stages.into_iter().map(|(k, v)| (k, spread(v))).collect::<serde_json::Map<_, _>>(),
            "audited_per_minute": per_minute,
            "publish_without_worker": alone,
            "publish_beside_busy_worker": busy,
            "publish_ratio_p50": ratio("p50_ms"), "publish_ratio_p99": ratio("p99_ms"),
            "worker_busy_throughout": busy_throughout,
        })
    );
    Ok(())
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

async fn install_cost(
    registry: &str,
    plugin: &str,
    version: &str,
    runs: u32,
) -> anyhow::Result<()> {
    let (publisher, name) = plugin
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("--plugin is PUBLISHER/NAME"))?;
    let client = Client::new(registry, None)?;
    let state = std::env::temp_dir().join(format!("agora-bench-log-{}.json", std::process::id()));
    let pinning = agora_client::Pinning::default();
    let (mut meta, mut signature, mut log, mut download) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let detail = client.version(publisher, name, version).await?;
        meta.push(t.elapsed());
        let t = Instant::now();
        let keys = client.keys(publisher).await?;
        let signer = agora_client::verify_release_signature(&detail, &keys)?;
        signature.push(t.elapsed());
        let t = Instant::now();
        agora_client::verify_logged(&client, &state, &pinning, &detail, &signer).await?;
        log.push(t.elapsed());
        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        for a in &detail.artifacts {
            client
                .download_blob(&a.digest, a.size, &dir.path().join(a.digest.hex()))
                .await?;
        }
        download.push(t.elapsed());
        bytes = detail.artifacts.iter().map(|a| a.size).sum::<u64>();
    }
    // The cryptography alone, with every input already in memory.
    let detail = client.version(publisher, name, version).await?;
    let keys: Vec<agora_trust::PublicKey> = client
        .keys(publisher)
        .await?
        .iter()
        .filter_map(|k| agora_trust::PublicKey::from_openssh(&k.public_key).ok())
        .collect();
    let envelope: agora_trust::Envelope =
        serde_json::from_value(detail.signature.clone().unwrap_or_default())?;
    let claim = agora_trust::ReleaseClaim {
        publisher: publisher.into(),
        name: name.into(),
        version: version.into(),
        files: detail
            .artifacts
            .iter()
            .map(|a| (a.path.clone(), a.digest))
            .collect(),
    };
    let proof = client.log_inclusion(detail.log_index.unwrap_or(0)).await?;
    let key = client.log_key().await?.verifier_key;
    let reps = 200;
    let t = Instant::now();
    for _ in 0..reps {
        agora_trust::verify_release(&envelope, &keys, &claim)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let signature_us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    let hashes: Vec<[u8; 32]> = proof
        .hashes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| anyhow::anyhow!("proof hash {h:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let t = Instant::now();
    for _ in 0..reps {
        let head = agora_trust::Checkpoint::open(&proof.checkpoint, &key)?.head;
        agora_trust::verify_inclusion(
            &head,
            &agora_trust::LogEntry::leaf_of(&proof.entry),
            proof.index,
            &hashes,
        )?;
    }
    let proof_us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
    let _ = std::fs::remove_file(&state);
    println!(
        "{}",
        serde_json::json!({
            "release": format!("{plugin}@{version}"), "bytes": bytes, "runs": runs,
            "metadata_ms": median_ms(meta), "signature_check_ms": median_ms(signature), "log_check_ms": median_ms(log),
            "download_and_hash_ms": median_ms(download),
            "signature_verify_only_us": signature_us, "checkpoint_and_inclusion_verify_only_us": proof_us,
        })
    );
    Ok(())
}

fn spread(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    serde_json::json!({
        "p50_ms": percentile(&samples, 0.5),
        "p99_ms": percentile(&samples, 0.99),
        "max_ms": percentile(&samples, 1.0),
        "runs": samples.len(),
    })
}

async fn runner(
    wasm: &std::path::Path,
    native: &std::path::Path,
    oci: Option<&std::path::Path>,
    runs: u32,
) -> anyhow::Result<()> {
    use agora_runner::policy::{HostPolicy, Mode};
    use agora_runner::{PluginSource, Runner, RunnerConfig};
    let state = tempfile::tempdir()?;
    let mut config = RunnerConfig::new(state.path().to_path_buf());
    config.policy = HostPolicy {
        mode: Mode::Open,
        ..HostPolicy::default()
    };
    config.policy.runtimes.push(agora_core::RuntimeKind::Oci);
    config.policy.oci.allowed_registries = vec!["localhost".into()];
    let runner = Runner::new(config)?;
    let wasm_source = PluginSource::from_dir(wasm)?;
    let native_source = PluginSource::from_dir(native)?;
    let greet = br#"{"name":"bench"}"#;

    // Engine start and the first compilation fill the cache; not part of a cold start.
    let started = Instant::now();
    let first = runner.load(wasm_source.clone()).await?;
    let engine_and_compile = started.elapsed();
    first.call("greet", greet).await?;
    drop(first);

    let (mut load, mut cold) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let plugin = runner.load(wasm_source.clone()).await?;
        load.push(started.elapsed());
        plugin.call("greet", greet).await?;
        cold.push(started.elapsed());
    }
    let plugin = runner.load(wasm_source.clone()).await?;
    let mut warm = Vec::new();
    for _ in 0..runs * 10 {
        let started = Instant::now();
        plugin.call("greet", greet).await?;
        warm.push(started.elapsed());
    }

    let mut native_start = Vec::new();
    for _ in 0..runs.min(100) {
        let plugin = runner.load(native_source.clone()).await?;
        let started = Instant::now();
        plugin.health().await?;
        native_start.push(started.elapsed());
    }
    let echo = runner.load(native_source.clone()).await?;
    let mut native_warm = Vec::new();
    for _ in 0..runs * 10 {
        let started = Instant::now();
        echo.call("echo", greet).await?;
        native_warm.push(started.elapsed());
    }
    // An OCI plugin: the first load unpacks its layers (once per image digest); each
    // start after that is a cold start from the cached root file system: the runtime
    // spec, `runc run`, the plugin answering /healthz.
    let (mut oci_start, mut oci_warm, mut oci_unpack) = (Vec::new(), Vec::new(), None);
    if let Some(dir) = oci {
        let source = PluginSource::from_dir(dir)?;
        let started = Instant::now();
        let first = runner.load(source.clone()).await?;
        first.health().await?;
        oci_unpack = Some(started.elapsed().as_secs_f64() * 1000.0);
        drop(first);
        for _ in 0..runs.min(100) {
            let started = Instant::now();
            let plugin = runner.load(source.clone()).await?;
            plugin.health().await?;
            oci_start.push(started.elapsed());
        }
        let echo = runner.load(source).await?;
        for _ in 0..runs * 10 {
            let started = Instant::now();
            echo.call("echo", greet).await?;
            oci_warm.push(started.elapsed());
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "oci_first_start_with_unpack_ms": oci_unpack,
            "oci_start_to_ready": spread(oci_start),
            "oci_warm_call": spread(oci_warm),
            "wasm_engine_and_first_compile_ms": engine_and_compile.as_secs_f64() * 1000.0,
            "wasm_load_from_cache": spread(load),
            "wasm_cold_start_first_call": spread(cold),
            "wasm_warm_call": spread(warm),
            "native_start_to_ready": spread(native_start),
            "native_warm_call": spread(native_warm),
        })
    );
    Ok(())
}
