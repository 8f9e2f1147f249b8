//! Benchmark tools driven by `bench/run.sh`:
//! - `seed`: fills a catalog with generated plugins through the real store code;
//! - `latency`: sequential GETs of one URL, reporting p50/p99;
//! - `publish`: uploads and publishes a release of a given size, reporting MiB/s.

use std::time::{Duration, Instant};

use agora_client::Client;
use agora_core::api::{ArtifactRef, PublishRequest};
use agora_core::manifest::ArtifactRole;
use agora_core::{Digest, Manifest};
use agora_store::{ArtifactRecord, MetadataStore, NewRelease, Role, SqlStore};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create COUNT plugins (one version each) in the database at URL.
    Seed {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        count: u32,
    },
    /// GET URL REQUESTS times, one at a time, and print latency percentiles as JSON.
    Latency {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 2000)]
        requests: u32,
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

async fn seed(database: &str, count: u32) -> anyhow::Result<()> {
    let store = SqlStore::connect(database).await?;
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
        store
            .publish(NewRelease {
                publisher_id: publisher.id,
                manifest,
                manifest_digest: digest,
                signature: None,
                signer_key: None,
                log_entry: None,
                artifacts,
                published_by: user.id,
                actor: "bench".into(),
            })
            .await?;
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

async fn latency(url: &str, requests: u32) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut bytes = 0;
    for _ in 0..20 {
        client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
    }
    let mut samples = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let t = Instant::now();
        let body = client
            .get(url)
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
    let answer: serde_json::Value = reqwest::get(url).await?.json().await?;
    let results = answer["items"].as_array().map(Vec::len);
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
    let module_path = dir.join("plugin.wasm");
    std::fs::write(&module_path, &module)?;
    let digest = Digest::of(&module);
    drop(module);
    let manifest = format!(
        "api_version: agora/v1\npublisher: bench\nname: big\nversion: {version}\ndescription: A large plugin\nlicense: MIT\n\
         runtime: {{ type: wasm, module: plugin.wasm }}\n"
    );
    let client = Client::new(registry, Some(token.to_owned()))?;
    // Sign as a publisher would (outside the timed part, like hashing the file).
    let key = agora_trust::SigningKey::generate("bench")?;
    client.add_key("bench", &key.public().to_openssh()).await?;
    let claim = agora_trust::ReleaseClaim {
        publisher: "bench".into(),
        name: "big".into(),
        version: version.to_owned(),
        files: [
            ("plugin.wasm".to_owned(), digest),
            ("plugin.yaml".to_owned(), Digest::of(manifest.as_bytes())),
        ]
        .into(),
    };
    let signature = serde_json::to_value(agora_trust::sign_release(&claim, &key))?;
    let started = Instant::now();
    client
        .upload_blob(&digest, &module_path, size, |_| {})
        .await?;
    let uploaded = started.elapsed();
    let request = PublishRequest {
        manifest,
        artifacts: vec![ArtifactRef {
            path: "plugin.wasm".into(),
            digest,
            size,
        }],
        signature: Some(signature),
    };
    client.publish("bench", "big", &request).await?;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed { database, count } => seed(&database, count).await,
        Command::Latency { url, requests } => latency(&url, requests).await,
        Command::Publish {
            registry,
            token,
            size_mib,
            version,
        } => publish(&registry, &token, size_mib, &version).await,
    }
}
