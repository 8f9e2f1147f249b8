//! The server's configuration: one TOML file plus `AGORA_*` environment variables
//! (`AGORA_DATABASE_URL`, `AGORA_LIMITS__MAX_BLOB_BYTES`, ...), then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The file `agora init` writes: every setting with its default, commented.
pub const TEMPLATE: &str = r#"# Agora configuration.
#
# Every setting can also come from the environment: AGORA_<SETTING> for top-level
# settings (AGORA_DATABASE_URL), AGORA_<SECTION>__<SETTING> for the others
# (AGORA_LIMITS__MAX_BLOB_BYTES). Command-line flags win over both.

# Address and port to listen on.
listen = "127.0.0.1:8080"

# Directory for the embedded SQLite database and the blob store.
data_dir = "./agora-data"

# Metadata database. Default: SQLite at <data_dir>/agora.db.
# For PostgreSQL: "postgres://USER@HOST:5432/DATABASE" (keep passwords in the
# AGORA_DATABASE_URL environment variable rather than in this file).
# database_url = "sqlite://./agora-data/agora.db"

# Name of the transparency log (its "origin"), fixed when the log is created on first
# start. Default: agora-<random>. A good choice is the registry's host name.
# log_origin = "registry.example.com"

# The administrator's token. Default: one is created on first start and printed once.
# Prefer the AGORA_ADMIN_TOKEN environment variable; it must be at least 32 characters.
# admin_token = ""

# The administrator's password for the web pages, set at start when given. Prefer the
# AGORA_ADMIN_PASSWORD environment variable (12 characters or more). Other users set
# theirs with `PUT /api/v1/users/NAME/password` (or an administrator does).
# admin_password = ""

[tls]
# Serve HTTPS: the certificate chain (PEM, the server's certificate first, then its
# intermediates) and its private key (PEM: PKCS#8, RSA or SEC1, not encrypted). Both or
# neither; without them the server speaks plain HTTP (put a TLS proxy in front). Replaced
# files are picked up within seconds, without a restart; a pair that cannot be used is
# refused with an error in the log and the previous one stays in use.
# cert = "/etc/agora/tls/fullchain.pem"
# key = "/etc/agora/tls/privkey.pem"
# Strict-Transport-Security on every answer over TLS: how long browsers must use only
# https for this host, in seconds (one year; 0 sends no HSTS), and whether its subdomains
# too.
hsts_max_age_secs = 31536000
hsts_include_subdomains = false
# A plain-HTTP address (such as "0.0.0.0:80") that answers every request with a 308 to
# the same path on https, and serves nothing else.
# redirect_from = "0.0.0.0:80"

[web]
# A private registry: every page and API request needs a sign-in or a token (only the
# health probes and metrics stay open).
require_sign_in = false
# Mark session cookies Secure (use when the registry is served over HTTPS; requests that
# arrive with X-Forwarded-Proto: https get Secure cookies regardless).
secure_cookies = false
# Name shown in the page header and titles.
site_name = "Agora"
# How long a sign-in lasts, in hours.
session_hours = 168

[worker]
# Verify releases (the checks every publish queues) in the server process. Set false when
# `agora worker` processes do it instead, so audits never compete with the API.
in_process = true
# Run each release's plugin in the sandbox as a verification stage (`behaviour`): the
# conformance checks, then each entrypoint under a policy made from its own manifest;
# every host, file or system call the sandbox denies it is a finding. Native plugins
# need the worker to run as root (without it the stage says it did not run them);
# false leaves the stage out of every report. Work files go to <data_dir>/behaviour.
behaviour = true
# Seconds a worker holds a claimed verification before another worker may take it over
# (a worker that died mid-run is replaced after this long): 1 to 86400. Longer than the
# slowest run; a run that outlives it is redone by another worker and its own report
# discarded.
lease_secs = 300
# Milliseconds an idle worker waits before looking for queued work again: 10 to 600000.
idle_wait_ms = 500

[verification]
# How a release's findings decide its outcome (a failed integrity or signature stage
# always rejects it). The most severe finding a release may have and still be verified
# without a review: "info", "low", "medium" or "high".
verify_up_to = "low"
# The least severe finding that rejects a release outright: "medium", "high", "critical"
# or "never" (a review decides). Must be more severe than verify_up_to.
reject_from = "critical"
# Registries the oci stage may pull a release's image from (host, host:port or *.domain,
# as in the host policy's [oci] allowed_registries). Empty: images are not pulled and
# the stage reports it.
oci_registries = []
# Let the oci stage pull from loopback, private and link-local addresses.
oci_allow_private = false

[webhooks]
# Let webhooks reach loopback, private and link-local addresses (127.0.0.1, 10.0.0.0/8,
# 192.168.0.0/16, fd00::/8, ...). Off by default, so a hook cannot reach into the
# registry's own network; a hook URL naming such an address is refused, and a name that
# resolves only to such addresses fails its delivery.
allow_private = false

[advisories]
# Hours between re-checks of every release against the stored advisories (0: never).
# Each re-check first imports the OSV records of `dir` when it is set, then marks
# insecure every release an advisory covers that is not marked yet. One worker runs it
# per period, whichever claims it.
recheck_hours = 24
# A directory of OSV records (*.json, one record or a list per file) that each re-check
# imports: sync OSV's published data for your ecosystems into it (e.g. from a daily job).
# dir = "/var/lib/agora/osv"

[gc]
# Hours between garbage collections of blobs nothing refers to (0: never). One worker
# runs it per period, whichever claims it; `agora gc` runs one now.
every_hours = 24
# A blob is deleted only once nothing has referred to it, and no publisher has uploaded
# or asked about it, for this many hours (at least 1), over two collections.
grace_hours = 24

[cors]
# Origins (scheme://host[:port]) whose web pages may call the API from a browser, or
# ["*"] for any site (then without credentials). Empty (the default): none; the CLI,
# agents and servers need no CORS.
allowed_origins = []
# What those pages may do: reads only by default.
allowed_methods = ["GET", "HEAD"]
# Let them send cookies or HTTP authentication (the API's tokens go in the Authorization
# header, which needs no credentials mode).
allow_credentials = false
# How long a browser may cache a preflight answer, 0 to 86400 seconds.
max_age_secs = 600

[rate_limits]
# Requests one token may make per window, or one client address when a request carries
# no token (IPv6 clients count by their /64), per class. Over a quota: 429 with
# Retry-After; answers carry RateLimit and RateLimit-Policy. Replicas on one PostgreSQL
# database sum their counts. Probes, /metrics and /static/ are never limited.
enabled = true
# The sliding window, in seconds (1 to 3600).
window_secs = 60
# Metadata, pages and downloads.
reads = 1200
# Catalog searches (the API with a query, the home and search pages, /v2/_catalog).
searches = 300
# Publishing, reviews, pushes, instance reports: every POST, PUT, PATCH and DELETE.
writes = 120
# Sign-in attempts per address, plus requests whose credentials turn out to be wrong.
sign_in = 20
# How often replicas sum their counts through the database, in milliseconds (100 to 10000).
sync_ms = 100

[proxy]
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For and
# X-Forwarded-Proto headers are believed, e.g. ["10.0.0.0/8"]. Empty (the default): the
# client is the connection's peer and those headers are ignored. Set it when Agora runs
# behind a proxy or load balancer, or every client shares the proxy's rate limits.
# AGORA_PROXY__TRUSTED takes a comma-separated list.
trusted = []

[analytics]
# Downloads and searches are buffered in memory and written in batches this often
# (milliseconds, 50 to 60000); a crash loses at most this long's events.
flush_ms = 1000
# Keep search queries (normalised text and counts, never who searched). Off: searches
# are not recorded at all.
searches = true
# Days raw events are kept (counted from when they arrived), 1 to 3650.
raw_days = 30
# Days hourly rollups are kept, 1 to 3650.
hourly_days = 14
# Days daily rollups are kept (0: for ever).
daily_days = 0

[oci]
# Serve the OCI distribution endpoints at /v2/: every release as an OCI artifact (with
# its signature and verification runs as referrers), and pushes of OCI images and
# artifacts into repositories named PUBLISHER/NAME by the publisher's members.
enabled = true
# Let members delete what they pushed (manifests and tags; releases are yanked or removed
# with `agora yank` / `agora takedown` instead).
deletes = true
# Where uploads in progress are kept. Default: <data_dir>/oci-uploads.
# upload_dir = "./agora-data/oci-uploads"

[blobs]
# Where the content-addressed blobs live. Default: the directory <data_dir>/blobs.
# Either a directory (a path or file:///PATH) or an S3-compatible bucket:
#   s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION
# (endpoint for S3-compatible servers, default AWS; also allow_http=true and
# virtual_hosted_style_request=true). S3 credentials come from the usual AWS sources,
# never from this file: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN),
# a web identity token, the container credentials endpoint or instance metadata.
# The AGORA_STORAGE_URL environment variable sets the same.
# url = "s3://agora-blobs?endpoint=http://127.0.0.1:9000&region=us-east-1"
# How downloads are answered: "stream" (the server sends the bytes) or "redirect" (a
# 307 to a presigned URL of the bucket, so a CDN or the bucket serves the bytes; needs S3
# storage, else the server streams).
downloads = "stream"
# Lifetime of a presigned download URL, in seconds (10 to 3600).
redirect_ttl_secs = 300

[limits]
# Largest blob accepted by an upload, in bytes (1 GiB).
max_blob_bytes = 1073741824
# Most files in one release.
max_artifacts = 64
# Largest page a list endpoint returns.
max_page_size = 100
# Largest JSON request body, in bytes (1 MiB).
max_json_bytes = 1048576
# Seconds a client has to send a request's head; also how long a keep-alive connection
# may stay idle between requests.
header_timeout_secs = 10
# Longest pause, in seconds, while a request body is being received.
body_idle_timeout_secs = 30
# Slowest average rate, in bytes per second, at which a request body may arrive once
# header_timeout_secs have passed (a body that trickles is cut; 0: no floor).
min_body_bytes_per_sec = 1024
# Most open connections (lowered to fit the process's open-file limit), and most from one
# client address. Connections over either get a 503 and are closed.
max_connections = 4096
max_connections_per_client = 256

[cache]
# How long anonymous readers may be served a rendered version detail of a public plugin,
# in milliseconds (0 disables). Changes through this server show at once; changes
# through other replicas within this time.
metadata_ttl_ms = 1000
# Most cached responses.
max_entries = 10000
# SQLite's page cache for the whole embedded database, in MiB (1 to 4096), shared out
# among its 9 connections (at least 1 MiB each). Pages beyond it come from the operating
# system's page cache. Ignored on PostgreSQL.
sqlite_page_cache_mib = 32

[log]
# "auto" (JSON when standard error is not a terminal), "json" or "text".
format = "auto"
# Log filter, in tracing's EnvFilter syntax (RUST_LOG wins when set).
level = "info"
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub admin_password: Option<String>,
    pub tls: TlsConfig,
    pub web: WebSettings,
    pub worker: WorkerSettings,
    pub verification: VerificationSettings,
    pub advisories: AdvisorySettings,
    pub gc: GcSettings,
    pub analytics: AnalyticsConfig,
    pub cors: CorsConfig,
    pub rate_limits: RateLimitConfig,
    pub proxy: ProxyConfig,
    pub webhooks: WebhookConfig,
    pub oci: OciConfig,
    /// Name of the transparency log, used only when the log is created (first start).
    pub log_origin: Option<String>,
    pub blobs: BlobConfig,
    pub limits: LimitsConfig,
    pub cache: CacheSettings,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Run the verification worker inside `agora serve`.
    pub in_process: bool,
    /// Run each release's plugin in the sandbox (the `behaviour` stage).
    pub behaviour: bool,
    /// How long a claimed run is held before another worker may take it over.
    pub lease_secs: u64,
    /// How long an idle worker waits before looking for work again.
    pub idle_wait_ms: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        let d = agora_registry::verification::WorkerOptions::default();
        WorkerSettings {
            in_process: true,
            behaviour: true,
            lease_secs: d.lease.as_secs(),
            idle_wait_ms: u64::try_from(d.idle_wait.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl WorkerSettings {
    /// The worker's options, as `agora serve` and `agora worker` both run it.
    pub fn options(&self) -> agora_registry::verification::WorkerOptions {
        agora_registry::verification::WorkerOptions {
            lease: std::time::Duration::from_secs(self.lease_secs),
            idle_wait: std::time::Duration::from_millis(self.idle_wait_ms),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        use agora_registry::verification::{IDLE_WAIT_RANGE, LEASE_RANGE};
        let options = self.options();
        anyhow::ensure!(
            LEASE_RANGE.contains(&options.lease),
            "worker.lease_secs (AGORA_WORKER__LEASE_SECS) is {}: a claimed verification must \
             be held long enough to finish, and a dead worker's runs taken over within a day; \
             expected {} to {} seconds",
            self.lease_secs,
            LEASE_RANGE.start().as_secs(),
            LEASE_RANGE.end().as_secs()
        );
        anyhow::ensure!(
            IDLE_WAIT_RANGE.contains(&options.idle_wait),
            "worker.idle_wait_ms (AGORA_WORKER__IDLE_WAIT_MS) is {}: an idle worker must \
             neither poll the database in a busy loop nor leave new releases unchecked for \
             long; expected {} to {} milliseconds",
            self.idle_wait_ms,
            IDLE_WAIT_RANGE.start().as_millis(),
            IDLE_WAIT_RANGE.end().as_millis()
        );
        Ok(())
    }
}

/// `[advisories]`: the scheduled re-check and its feed directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdvisorySettings {
    pub recheck_hours: u64,
    pub dir: Option<PathBuf>,
}

/// Longest period between advisory re-checks: 30 days.
const MAX_RECHECK_HOURS: u64 = 720;

impl Default for AdvisorySettings {
    fn default() -> Self {
        AdvisorySettings {
            recheck_hours: 24,
            dir: None,
        }
    }
}

impl AdvisorySettings {
    /// How often the re-check runs; none when it is off.
    pub fn every(&self) -> Option<std::time::Duration> {
        (self.recheck_hours > 0).then(|| std::time::Duration::from_secs(self.recheck_hours * 3600))
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.recheck_hours <= MAX_RECHECK_HOURS,
            "advisories.recheck_hours (AGORA_ADVISORIES__RECHECK_HOURS) is {}: expected 0 (never) \
             to {MAX_RECHECK_HOURS} hours",
            self.recheck_hours
        );
        if let Some(dir) = &self.dir {
            anyhow::ensure!(
                dir.is_dir(),
                "advisories.dir (AGORA_ADVISORIES__DIR) is {}, which is not a directory: expected \
                 a directory of OSV records (*.json)",
                dir.display()
            );
        }
        Ok(())
    }
}

/// `[gc]`: the scheduled garbage collection of blobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GcSettings {
    pub every_hours: u64,
    pub grace_hours: u64,
}

/// Longest period between collections, and longest grace period: 30 days.
const MAX_GC_HOURS: u64 = 720;

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            every_hours: 24,
            grace_hours: 24,
        }
    }
}

impl GcSettings {
    /// How often the collection runs; none when it is off.
    pub fn every(&self) -> Option<std::time::Duration> {
        (self.every_hours > 0).then(|| std::time::Duration::from_secs(self.every_hours * 3600))
    }

    pub fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.grace_hours * 3600)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.every_hours <= MAX_GC_HOURS,
            "gc.every_hours (AGORA_GC__EVERY_HOURS) is {}: expected 0 (never) to {MAX_GC_HOURS} hours",
            self.every_hours
        );
        anyhow::ensure!(
            (1..=MAX_GC_HOURS).contains(&self.grace_hours),
            "gc.grace_hours (AGORA_GC__GRACE_HOURS) is {}: expected 1 to {MAX_GC_HOURS} hours \
             (a publish in flight holds its uploads that long)",
            self.grace_hours
        );
        Ok(())
    }
}

/// `[cors]`: which other sites' pages may call the API from a browser.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            allowed_methods: vec!["GET".into(), "HEAD".into()],
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
}

impl CorsConfig {
    /// The cross-origin access these settings allow (none without origins).
    pub fn cors(&self) -> anyhow::Result<Option<agora_server::cors::Cors>> {
        Ok(agora_server::cors::Cors::new(
            &self.allowed_origins,
            &self.allowed_methods,
            self.allow_credentials,
            self.max_age_secs,
        )?)
    }
}

/// `[rate_limits]`: requests per window, per token or client address, per class.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub window_secs: u64,
    pub reads: u32,
    pub searches: u32,
    pub writes: u32,
    pub sign_in: u32,
    pub sync_ms: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let d = agora_registry::ratelimit::RateLimitSettings::default();
        RateLimitConfig {
            enabled: d.enabled,
            window_secs: d.quotas.window.as_secs(),
            reads: d.quotas.reads,
            searches: d.quotas.searches,
            writes: d.quotas.writes,
            sign_in: d.quotas.sign_in,
            sync_ms: d.sync.as_millis() as u64,
        }
    }
}

impl RateLimitConfig {
    /// The limiter's settings, each value checked.
    pub fn settings(&self) -> anyhow::Result<agora_registry::ratelimit::RateLimitSettings> {
        anyhow::ensure!(
            (1..=3600).contains(&self.window_secs),
            "rate_limits.window_secs (AGORA_RATE_LIMITS__WINDOW_SECS) is {}; expected 1 to 3600 seconds",
            self.window_secs
        );
        for (name, value) in [
            ("reads", self.reads),
            ("searches", self.searches),
            ("writes", self.writes),
            ("sign_in", self.sign_in),
        ] {
            anyhow::ensure!(
                (1..=1_000_000).contains(&value),
                "rate_limits.{name} (AGORA_RATE_LIMITS__{}) is {value}; expected 1 to 1000000 requests per window (set rate_limits.enabled = false to turn limits off)",
                name.to_uppercase()
            );
        }
        anyhow::ensure!(
            (100..=10_000).contains(&self.sync_ms),
            "rate_limits.sync_ms (AGORA_RATE_LIMITS__SYNC_MS) is {}; expected 100 to 10000 milliseconds",
            self.sync_ms
        );
        Ok(agora_registry::ratelimit::RateLimitSettings {
            enabled: self.enabled,
            quotas: agora_core::ratelimit::Quotas {
                reads: self.reads,
                searches: self.searches,
                writes: self.writes,
                sign_in: self.sign_in,
                window: std::time::Duration::from_secs(self.window_secs),
            },
            sync: std::time::Duration::from_millis(self.sync_ms),
        })
    }
}

/// `[proxy]`: whose forwarding headers are believed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    /// A list in the file; a comma-separated string from `AGORA_PROXY__TRUSTED`.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted: Vec<String>,
}

/// A list of strings, or one string of comma-separated items (as environment variables
/// give lists).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Items::deserialize(d)? {
        Items::List(items) => items,
        Items::Commas(s) => s.split(',').map(|i| i.trim().to_owned()).collect(),
    })
}

impl ProxyConfig {
    pub fn trusted(&self) -> anyhow::Result<agora_server::client::TrustedProxies> {
        let entries: Vec<&str> = self
            .trusted
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        agora_server::client::TrustedProxies::parse(&entries)
            .context("AGORA_PROXY__TRUSTED or [proxy] trusted")
    }
}

/// `[analytics]`: how events are buffered and how long analytics are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AnalyticsConfig {
    pub flush_ms: u64,
    pub searches: bool,
    pub raw_days: u32,
    pub hourly_days: u32,
    pub daily_days: u32,
}

/// Longest retention: ten years.
const MAX_RETENTION_DAYS: u32 = 3650;

impl Default for AnalyticsConfig {
    fn default() -> Self {
        let r = agora_core::analytics::Retention::default();
        AnalyticsConfig {
            flush_ms: 1000,
            searches: true,
            raw_days: r.raw_days,
            hourly_days: r.hourly_days,
            daily_days: r.daily_days,
        }
    }
}

impl AnalyticsConfig {
    pub fn settings(&self) -> agora_registry::analytics::AnalyticsSettings {
        agora_registry::analytics::AnalyticsSettings {
            flush_every: std::time::Duration::from_millis(self.flush_ms),
            searches: self.searches,
            retention: agora_core::analytics::Retention {
                raw_days: self.raw_days,
                hourly_days: self.hourly_days,
                daily_days: self.daily_days,
            },
            ..Default::default()
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (50..=60_000).contains(&self.flush_ms),
            "analytics.flush_ms (AGORA_ANALYTICS__FLUSH_MS) is {}: expected 50 to 60000 milliseconds",
            self.flush_ms
        );
        for (name, env, days) in [
            ("raw_days", "RAW_DAYS", self.raw_days),
            ("hourly_days", "HOURLY_DAYS", self.hourly_days),
        ] {
            anyhow::ensure!(
                (1..=MAX_RETENTION_DAYS).contains(&days),
                "analytics.{name} (AGORA_ANALYTICS__{env}) is {days}: expected 1 to {MAX_RETENTION_DAYS} days"
            );
        }
        anyhow::ensure!(
            self.daily_days <= MAX_RETENTION_DAYS,
            "analytics.daily_days (AGORA_ANALYTICS__DAILY_DAYS) is {}: expected 0 (for ever) to {MAX_RETENTION_DAYS} days",
            self.daily_days
        );
        Ok(())
    }
}

/// `[verification]`: the policy that turns a run's findings into its outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VerificationSettings {
    pub verify_up_to: String,
    pub reject_from: String,
    pub oci_registries: Vec<String>,
    pub oci_allow_private: bool,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        let d = agora_core::verification::Policy::default();
        VerificationSettings {
            verify_up_to: d.verify_up_to().as_str().to_owned(),
            reject_from: d
                .reject_from()
                .map_or("never", agora_core::verification::Severity::as_str)
                .to_owned(),
            oci_registries: Vec::new(),
            oci_allow_private: false,
        }
    }
}

impl VerificationSettings {
    /// Where the oci stage pulls from; loopback registries (allowed only with
    /// `oci_allow_private`) are reached over plain HTTP.
    pub fn image_audit(&self) -> agora_registry::image_audit::ImageAuditSettings {
        let plain_http = self
            .oci_registries
            .iter()
            .filter(|r| {
                let host = r.rsplit_once(':').map_or(r.as_str(), |(h, _)| h);
                host == "localhost" || host.starts_with("127.")
            })
            .cloned()
            .collect();
        agora_registry::image_audit::ImageAuditSettings {
            allowed_registries: self.oci_registries.clone(),
            allow_private: self.oci_allow_private,
            plain_http,
        }
    }

    pub fn policy(&self) -> anyhow::Result<agora_core::verification::Policy> {
        use agora_core::verification::{Policy, Severity};
        let verify: Severity = self.verify_up_to.parse().map_err(|e| {
            anyhow::anyhow!("verification.verify_up_to (AGORA_VERIFICATION__VERIFY_UP_TO): {e}")
        })?;
        let reject = match self.reject_from.as_str() {
            "never" => None,
            other => Some(other.parse::<Severity>().map_err(|e| {
                anyhow::anyhow!(
                    "verification.reject_from (AGORA_VERIFICATION__REJECT_FROM): {e}, or never"
                )
            })?),
        };
        agora_core::policy::check_allowed_registries(&self.oci_registries)
            .map_err(|e| anyhow::anyhow!("verification.oci_registries: {e}"))?;
        Policy::new(verify, reject).map_err(|e| anyhow::anyhow!("[verification]: {e}"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    pub metadata_ttl_ms: u64,
    pub max_entries: usize,
    pub sqlite_page_cache_mib: u32,
}

impl Default for CacheSettings {
    fn default() -> Self {
        let d = agora_server::CacheConfig::default();
        CacheSettings {
            metadata_ttl_ms: d.ttl.as_millis() as u64,
            max_entries: d.max_entries,
            sqlite_page_cache_mib: agora_store::StoreOptions::DEFAULT_SQLITE_CACHE_KIB / 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WebSettings {
    pub require_sign_in: bool,
    pub secure_cookies: bool,
    pub site_name: String,
    pub session_hours: u64,
}

impl Default for WebSettings {
    fn default() -> Self {
        let d = agora_web::WebConfig::default();
        WebSettings {
            require_sign_in: false,
            secure_cookies: d.secure_cookies,
            site_name: d.site_name,
            session_hours: d.session_ttl.as_secs() / 3600,
        }
    }
}

impl WebSettings {
    pub fn config(&self) -> agora_web::WebConfig {
        agora_web::WebConfig {
            secure_cookies: self.secure_cookies,
            session_ttl: std::time::Duration::from_secs(self.session_hours * 3600),
            site_name: self.site_name.clone(),
        }
    }
}

/// `[tls]`: HTTPS served by `agora serve` itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub hsts_max_age_secs: u64,
    pub hsts_include_subdomains: bool,
    pub redirect_from: Option<String>,
}

/// Longest HSTS max-age accepted: two years.
const MAX_HSTS_SECS: u64 = 2 * 365 * 24 * 3600;

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            hsts_max_age_secs: 365 * 24 * 3600,
            hsts_include_subdomains: false,
            redirect_from: None,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files when TLS is on (both set), none when it is off
    /// (neither); one without the other is refused. Empty values count as unset.
    pub fn files(&self) -> anyhow::Result<Option<agora_server::tls::TlsFiles>> {
        let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        match (set(&self.cert), set(&self.key)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(agora_server::tls::TlsFiles { cert, key })),
            (Some(_), None) => anyhow::bail!(
                "tls.cert (AGORA_TLS__CERT) is set but tls.key (AGORA_TLS__KEY) is not: TLS \
                 needs the certificate and its private key (PEM files), or neither"
            ),
            (None, Some(_)) => anyhow::bail!(
                "tls.key (AGORA_TLS__KEY) is set but tls.cert (AGORA_TLS__CERT) is not: TLS \
                 needs the certificate and its private key (PEM files), or neither"
            ),
        }
    }

    /// The plain-HTTP address that redirects to https, if any.
    pub fn redirect_from(&self) -> Option<&str> {
        self.redirect_from
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }

    /// `Strict-Transport-Security` for answers over TLS, unless its max-age is 0.
    pub fn hsts(&self) -> Option<agora_server::tls::Hsts> {
        (self.hsts_max_age_secs > 0).then(|| agora_server::tls::Hsts {
            max_age: std::time::Duration::from_secs(self.hsts_max_age_secs),
            include_subdomains: self.hsts_include_subdomains,
        })
    }

    /// The certificate and key read and checked (none when TLS is off); an error names
    /// the setting, the file and what is wrong with it.
    pub fn certificates(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<agora_server::tls::Certificates>>> {
        use agora_server::tls::{Certificates, TlsError};
        let Some(files) = self.files()? else {
            return Ok(None);
        };
        let key_file = files.key.clone();
        let certificates = Certificates::load(files).map_err(|e| {
            let setting = match &e {
                TlsError::Read { path, .. } if *path == key_file => "tls.key (AGORA_TLS__KEY)",
                TlsError::Read { .. }
                | TlsError::NoCertificate { .. }
                | TlsError::BadCertificate { .. } => "tls.cert (AGORA_TLS__CERT)",
                TlsError::NoKey { .. }
                | TlsError::EncryptedKey { .. }
                | TlsError::BadKey { .. } => "tls.key (AGORA_TLS__KEY)",
                TlsError::Mismatch { .. } => {
                    "tls.cert and tls.key (AGORA_TLS__CERT, AGORA_TLS__KEY)"
                }
            };
            anyhow::Error::new(e).context(setting)
        })?;
        Ok(Some(std::sync::Arc::new(certificates)))
    }

    fn validate(&self) -> anyhow::Result<()> {
        let on = self.files()?.is_some();
        anyhow::ensure!(
            self.hsts_max_age_secs <= MAX_HSTS_SECS,
            "tls.hsts_max_age_secs (AGORA_TLS__HSTS_MAX_AGE_SECS) is {}: expected 0 (no HSTS) \
             to {MAX_HSTS_SECS} seconds (two years)",
            self.hsts_max_age_secs
        );
        if let Some(from) = self.redirect_from() {
            anyhow::ensure!(
                on,
                "tls.redirect_from (AGORA_TLS__REDIRECT_FROM) is set but TLS is off: set \
                 tls.cert and tls.key, or remove it"
            );
            let port = from
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            anyhow::ensure!(
                matches!(port, Some((host, Ok(_))) if !host.is_empty()),
                "tls.redirect_from (AGORA_TLS__REDIRECT_FROM) is {from:?}: expected HOST:PORT, \
                 such as 0.0.0.0:80 or [::]:80"
            );
        }
        Ok(())
    }
}

/// `[webhooks]`: how deliveries may reach their receivers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Let hooks reach loopback, private and link-local addresses.
    pub allow_private: bool,
}

impl WebhookConfig {
    pub fn settings(&self) -> agora_registry::webhooks::WebhookSettings {
        agora_registry::webhooks::WebhookSettings {
            allow_private: self.allow_private,
        }
    }
}

/// `[oci]`: the OCI distribution endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OciConfig {
    pub enabled: bool,
    pub deletes: bool,
    pub upload_dir: Option<PathBuf>,
}

impl Default for OciConfig {
    fn default() -> OciConfig {
        OciConfig {
            enabled: true,
            deletes: true,
            upload_dir: None,
        }
    }
}

impl ServerConfig {
    /// The `[oci]` settings, uploads under `<data_dir>/oci-uploads` unless set.
    pub fn oci_settings(&self) -> agora_registry::oci::OciSettings {
        agora_registry::oci::OciSettings {
            enabled: self.oci.enabled,
            deletes: self.oci.deletes,
            upload_dir: self
                .oci
                .upload_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("oci-uploads")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BlobConfig {
    /// The blob directory, as older configurations name it (`url` says the same).
    pub path: Option<PathBuf>,
    /// A directory, `file:///PATH` or `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`.
    pub url: Option<String>,
    pub downloads: String,
    pub redirect_ttl_secs: u64,
}

impl Default for BlobConfig {
    fn default() -> BlobConfig {
        BlobConfig {
            path: None,
            url: None,
            downloads: "stream".into(),
            redirect_ttl_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    pub max_blob_bytes: u64,
    pub max_artifacts: usize,
    pub max_page_size: u32,
    pub max_json_bytes: usize,
    pub header_timeout_secs: u64,
    pub body_idle_timeout_secs: u64,
    pub min_body_bytes_per_sec: u64,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: String,
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./agora-data"),
            database_url: None,
            admin_token: None,
            admin_password: None,
            tls: TlsConfig::default(),
            web: WebSettings::default(),
            worker: WorkerSettings::default(),
            verification: VerificationSettings::default(),
            advisories: AdvisorySettings::default(),
            gc: GcSettings::default(),
            analytics: AnalyticsConfig::default(),
            cors: CorsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            proxy: ProxyConfig::default(),
            webhooks: WebhookConfig::default(),
            oci: OciConfig::default(),
            log_origin: None,
            blobs: BlobConfig::default(),
            limits: LimitsConfig::default(),
            cache: CacheSettings::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = agora_registry::Limits::default();
        let c = agora_server::HttpLimits::default();
        LimitsConfig {
            max_blob_bytes: d.max_blob_bytes,
            max_artifacts: d.max_artifacts,
            max_page_size: d.max_page_size,
            max_json_bytes: c.max_json_bytes,
            header_timeout_secs: c.header_timeout.as_secs(),
            body_idle_timeout_secs: c.body_idle_timeout.as_secs(),
            min_body_bytes_per_sec: c.min_body_bytes_per_sec,
            max_connections: c.max_connections,
            max_connections_per_client: c.max_connections_per_client,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "auto".into(),
            level: "info".into(),
        }
    }
}

impl ServerConfig {
    /// Loads defaults, then the file (explicit, or `./agora.toml` if present), then the
    /// environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<ServerConfig> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "configuration file {} does not exist (create one with `agora init --config {}`)",
                    path.display(),
                    path.display()
                );
                builder =
                    builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
            }
            None if Path::new("agora.toml").is_file() => {
                builder = builder.add_source(
                    config::File::from(Path::new("agora.toml")).format(config::FileFormat::Toml),
                );
            }
            None => {}
        }
        builder = builder.add_source(
            config::Environment::with_prefix("AGORA")
                .prefix_separator("_")
                .separator("__"),
        );
        let loaded = builder.build().context("cannot read the configuration")?;
        let cfg: ServerConfig = loaded.try_deserialize().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=24 * 365).contains(&self.web.session_hours),
            "web.session_hours is {}; expected 1 to 8760",
            self.web.session_hours
        );
        anyhow::ensure!(
            !self.web.site_name.trim().is_empty() && self.web.site_name.chars().count() <= 60,
            "web.site_name must be 1 to 60 characters"
        );
        if let Some(p) = &self.admin_password {
            anyhow::ensure!(
                p.chars().count() >= agora_registry::password::MIN_PASSWORD_CHARS,
                "admin_password (AGORA_ADMIN_PASSWORD) is {} characters; use at least {}",
                p.chars().count(),
                agora_registry::password::MIN_PASSWORD_CHARS
            );
        }
        anyhow::ensure!(
            self.limits.max_page_size >= 1,
            "limits.max_page_size must be at least 1"
        );
        anyhow::ensure!(
            (1..=4096).contains(&self.cache.sqlite_page_cache_mib),
            "cache.sqlite_page_cache_mib (AGORA_CACHE__SQLITE_PAGE_CACHE_MIB) is {}; expected 1 to 4096 MiB",
            self.cache.sqlite_page_cache_mib
        );
        anyhow::ensure!(
            self.limits.max_blob_bytes >= 1,
            "limits.max_blob_bytes must be at least 1"
        );
        anyhow::ensure!(
            (1..=3600).contains(&self.limits.header_timeout_secs)
                && (1..=3600).contains(&self.limits.body_idle_timeout_secs),
            "limits.header_timeout_secs and limits.body_idle_timeout_secs must be 1 to 3600"
        );
        anyhow::ensure!(
            self.limits.min_body_bytes_per_sec <= 100 * 1024 * 1024,
            "limits.min_body_bytes_per_sec (AGORA_LIMITS__MIN_BODY_BYTES_PER_SEC) is {}; expected 0 (no floor) to 104857600 bytes per second",
            self.limits.min_body_bytes_per_sec
        );
        anyhow::ensure!(
            self.limits.max_connections >= 1 && self.limits.max_connections_per_client >= 1,
            "limits.max_connections and limits.max_connections_per_client must be at least 1"
        );
        anyhow::ensure!(
            ["auto", "json", "text"].contains(&self.log.format.as_str()),
            "log.format is {:?}; expected auto, json or text",
            self.log.format
        );
        anyhow::ensure!(
            ["stream", "redirect"].contains(&self.blobs.downloads.as_str()),
            "blobs.downloads (AGORA_BLOBS__DOWNLOADS) is {:?}; expected stream or redirect",
            self.blobs.downloads
        );
        anyhow::ensure!(
            agora_server::REDIRECT_TTL_RANGE.contains(&self.blobs.redirect_ttl_secs),
            "blobs.redirect_ttl_secs (AGORA_BLOBS__REDIRECT_TTL_SECS) is {}; expected {} to {} seconds",
            self.blobs.redirect_ttl_secs,
            agora_server::REDIRECT_TTL_RANGE.start(),
            agora_server::REDIRECT_TTL_RANGE.end()
        );
        anyhow::ensure!(
            self.blobs.url.is_none() || self.blobs.path.is_none(),
            "blobs.url and blobs.path are both set; keep one (url accepts a directory too)"
        );
        self.blob_location()?;
        self.worker.validate()?;
        self.verification.policy()?;
        self.advisories.validate()?;
        self.gc.validate()?;
        self.analytics.validate()?;
        self.tls.validate()?;
        self.cors.cors()?;
        self.rate_limits.settings()?;
        self.proxy.trusted()?;
        Ok(())
    }

    /// The origin a new transparency log gets: the configured one, else `agora-<random>`
    /// so that two registries' logs never share a name.
    pub fn log_origin(&self) -> String {
        self.log_origin.clone().unwrap_or_else(|| {
            let mut suffix = [0u8; 4];
            let _ = getrandom::fill(&mut suffix);
            format!(
                "agora-{}",
                suffix
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        })
    }

    /// How the metadata store is opened.
    pub fn store_options(&self) -> agora_store::StoreOptions {
        agora_store::StoreOptions {
            sqlite_cache_kib: self.cache.sqlite_page_cache_mib.saturating_mul(1024),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("agora.db").display()))
    }

    /// Where blobs live: `AGORA_STORAGE_URL`, else `[blobs] url`, else `[blobs] path`, else
    /// `<data_dir>/blobs`.
    pub fn blob_location(&self) -> anyhow::Result<agora_store::BlobLocation> {
        let url = std::env::var("AGORA_STORAGE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .map(|u| (u, "AGORA_STORAGE_URL"))
            .or_else(|| {
                self.blobs
                    .url
                    .clone()
                    .map(|u| (u, "blobs.url (AGORA_BLOBS__URL)"))
            });
        match (url, &self.blobs.path) {
            (Some((url, from)), _) => url
                .parse()
                .with_context(|| format!("{from} is not a blob storage location")),
            (None, Some(path)) => Ok(agora_store::BlobLocation::Directory(path.clone())),
            (None, None) => Ok(agora_store::BlobLocation::Directory(
                self.data_dir.join("blobs"),
            )),
        }
    }

    /// How blob downloads are answered (`[blobs] downloads`).
    pub fn downloads(&self) -> agora_server::Downloads {
        match self.blobs.downloads.as_str() {
            "redirect" => agora_server::Downloads::Redirect {
                ttl: std::time::Duration::from_secs(self.blobs.redirect_ttl_secs),
            },
            _ => agora_server::Downloads::Stream,
        }
    }

    pub fn cache(&self) -> agora_server::CacheConfig {
        agora_server::CacheConfig {
            ttl: std::time::Duration::from_millis(self.cache.metadata_ttl_ms),
            max_entries: self.cache.max_entries.max(1),
        }
    }

    /// The HTTP layer's limits, with the connection cap lowered to what the open-file
    /// limit `fd_limit` leaves after a reserve for the database, blobs and plugins.
    pub fn http_limits(&self, fd_limit: Option<u64>) -> agora_server::HttpLimits {
        const RESERVE: u64 = 128;
        let cap = fd_limit
            .map(|n| n.saturating_sub(RESERVE).max(16) as usize)
            .unwrap_or(usize::MAX);
        agora_server::HttpLimits {
            max_json_bytes: self.limits.max_json_bytes,
            header_timeout: std::time::Duration::from_secs(self.limits.header_timeout_secs),
            body_idle_timeout: std::time::Duration::from_secs(self.limits.body_idle_timeout_secs),
            max_connections: self.limits.max_connections.min(cap),
            max_connections_per_client: self.limits.max_connections_per_client,
            min_body_bytes_per_sec: self.limits.min_body_bytes_per_sec,
            ..agora_server::HttpLimits::default()
        }
    }

    pub fn limits(&self) -> agora_registry::Limits {
        agora_registry::Limits {
            max_blob_bytes: self.limits.max_blob_bytes,
            max_artifacts: self.limits.max_artifacts,
            max_page_size: self.limits.max_page_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_to_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agora.toml");
        std::fs::write(&file, TEMPLATE).unwrap();
        let cfg = ServerConfig::load(Some(&file)).unwrap();
        let d = ServerConfig::default();
        assert_eq!((&cfg.listen, &cfg.data_dir), (&d.listen, &d.data_dir));
        assert_eq!(cfg.limits.max_blob_bytes, d.limits.max_blob_bytes);
        assert!(cfg.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn the_sqlite_page_cache_is_bounded_and_named_when_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agora.toml");
        std::fs::write(&file, "[cache]\nsqlite_page_cache_mib = 18\n").unwrap();
        let options = ServerConfig::load(Some(&file)).unwrap().store_options();
        assert_eq!(options.sqlite_cache_kib, 18 * 1024);
        for bad in ["0", "4097"] {
            std::fs::write(&file, format!("[cache]\nsqlite_page_cache_mib = {bad}\n")).unwrap();
            let err = ServerConfig::load(Some(&file)).unwrap_err().to_string();
            assert!(
                err.contains("cache.sqlite_page_cache_mib") && err.contains("1 to 4096 MiB"),
                "{err}"
            );
        }
    }

    #[test]
    fn worker_settings_come_from_the_file_and_out_of_range_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agora.toml");
        std::fs::write(&file, "[worker]\nlease_secs = 2\nidle_wait_ms = 50\n").unwrap();
        let options = ServerConfig::load(Some(&file)).unwrap().worker.options();
        assert_eq!(options.lease, std::time::Duration::from_secs(2));
        assert_eq!(options.idle_wait, std::time::Duration::from_millis(50));
        std::fs::write(&file, "[worker]\nlease_secs = 0\n").unwrap();
        let err = ServerConfig::load(Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("worker.lease_secs") && err.contains("1 to 86400 seconds"),
            "{err}"
        );
        std::fs::write(&file, "[worker]\nidle_wait_ms = 1\n").unwrap();
        let err = ServerConfig::load(Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("worker.idle_wait_ms") && err.contains("10 to 600000 milliseconds"),
            "{err}"
        );
    }

    #[test]
    fn tls_needs_both_files_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agora.toml");
        let load = |toml: &str| {
            std::fs::write(&file, toml).unwrap();
            ServerConfig::load(Some(&file))
        };
        let cfg = load("").unwrap();
        assert!(cfg.tls.files().unwrap().is_none(), "off by default");
        assert_eq!(cfg.tls.hsts().unwrap().max_age.as_secs(), 31_536_000);
        for (toml, expected) in [
            (
                "[tls]\ncert = \"c.pem\"\n",
                "tls.cert (AGORA_TLS__CERT) is set but tls.key",
            ),
            (
                "[tls]\nkey = \"k.pem\"\n",
                "tls.key (AGORA_TLS__KEY) is set but tls.cert",
            ),
            (
                "[tls]\nredirect_from = \"0.0.0.0:80\"\n",
                "tls.redirect_from (AGORA_TLS__REDIRECT_FROM) is set but TLS is off",
            ),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nredirect_from = \"0.0.0.0\"\n",
                "expected HOST:PORT",
            ),
            (
                "[tls]\nhsts_max_age_secs = 100000000\n",
                "tls.hsts_max_age_secs",
            ),
        ] {
            let err = format!("{:#}", load(toml).unwrap_err());
            assert!(err.contains(expected), "{toml}: {err}");
        }
        let cfg = load("[tls]\nhsts_max_age_secs = 0\n").unwrap();
        assert!(cfg.tls.hsts().is_none(), "0 turns HSTS off");
        // Files that cannot be used are refused at start, naming the setting and the file.
        std::fs::write(dir.path().join("garbage.pem"), "garbage").unwrap();
        let garbage = dir.path().join("garbage.pem").display().to_string();
        let cfg = load(&format!(
            "[tls]\ncert = \"{garbage}\"\nkey = \"{garbage}\"\n"
        ))
        .unwrap();
        let err = format!("{:#}", cfg.tls.certificates().unwrap_err());
        assert!(
            err.starts_with("tls.cert (AGORA_TLS__CERT): ")
                && err.contains("garbage.pem holds no certificate"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = ServerConfig::load(Some(Path::new("/nonexistent/agora.toml"))).unwrap_err();
        assert!(err.to_string().contains("agora init"), "{err}");
    }
}
