//! Analytics: the intake that takes downloads and searches off the hot path, the reports
//! of publishers, tenants and operators, and a plugin's reputation from real runs.
//!
//! **Intake.** A request that downloads or searches only pushes an event into a bounded
//! in-memory buffer ([`Intake::record`]: a mutex held for a push, never a database call).
//! A flusher task ([`Intake::run`]) writes the buffer every `flush_every`, or sooner once
//! `batch` events wait, as one store transaction per batch (raw events and their rollups
//! together). A full buffer drops new events and counts them (`dropped`), so a flood
//! cannot grow memory; a failed write keeps the batch for the next flush. On shutdown the
//! server flushes what is left ([`Intake::flush`]); a crash loses at most the events of
//! one flush interval. Instances' reports (installs, removals, runs) are written in the
//! report's own request, exactly once per batch number.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_core::analytics::{
    self as domain, AnalyticsReport, CountKind, DAY_MS, DayRow, ErrorRow, MAX_REPORT_DAYS,
    MAX_VERSION_ROWS, PairRow, Period, Reputation, Retention, SearchRow, TOP_ROWS, VersionRow,
};
use agora_store::now_ms;
use agora_store::{
    AnalyticsEvent, AnalyticsFilter, AnalyticsGrouping, AnalyticsPruned, InstalledRecord,
    InstanceAnalytics, RunsRecord,
};

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result};

/// How the intake buffers and how long analytics are kept (`[analytics]`).
#[derive(Debug, Clone, Copy)]
pub struct AnalyticsSettings {
    /// How often buffered events are written.
    pub flush_every: Duration,
    /// Events per write (and the count that starts a write before its time).
    pub batch: usize,
    /// Most events buffered; beyond it new ones are dropped (and counted).
    pub max_buffered: usize,
    /// Whether search queries are kept (their text and counts).
    pub searches: bool,
    pub retention: Retention,
    /// Most raw events kept whatever their age.
    pub max_events: u64,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            flush_every: Duration::from_secs(1),
            batch: 2_000,
            max_buffered: 200_000,
            searches: true,
            retention: Retention::default(),
            max_events: 20_000_000,
        }
    }
}

/// The buffer between requests and the store.
pub struct Intake {
    settings: AnalyticsSettings,
    buffer: Mutex<Vec<AnalyticsEvent>>,
    wake: tokio::sync::Notify,
    /// One flush at a time (the task's and a shutdown's).
    flushing: tokio::sync::Mutex<()>,
    taken: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

/// What the intake has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntakeStats {
    pub taken: u64,
    pub written: u64,
    pub dropped: u64,
    pub buffered: u64,
}

impl Default for Intake {
    fn default() -> Self {
        Intake::new(AnalyticsSettings::default())
    }
}

impl Intake {
    pub fn new(settings: AnalyticsSettings) -> Intake {
        Intake {
            settings: AnalyticsSettings {
                batch: settings.batch.max(1),
                max_buffered: settings.max_buffered.max(1),
                ..settings
            },
            buffer: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
            taken: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &AnalyticsSettings {
        &self.settings
    }

    /// Buffers one event; never waits for the store.
    pub fn record(&self, event: AnalyticsEvent) {
        if !self.settings.searches && matches!(event, AnalyticsEvent::Search { .. }) {
            return;
        }
        let full = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
            if buffer.len() >= self.settings.max_buffered {
                drop(buffer);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            buffer.push(event);
            buffer.len() >= self.settings.batch
        };
        self.taken.fetch_add(1, Ordering::Relaxed);
        if full {
            self.wake.notify_one();
        }
    }

    pub fn stats(&self) -> IntakeStats {
        IntakeStats {
            taken: self.taken.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            buffered: self.buffer.lock().map(|b| b.len() as u64).unwrap_or(0),
        }
    }

    /// Writes everything buffered, a batch per transaction. A batch the store refuses goes
    /// back into the buffer (room permitting) for the next flush, and the error is returned.
    pub async fn flush(&self, registry: &Registry) -> Result<u64> {
        let _one = self.flushing.lock().await;
        let events = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        let mut written = 0u64;
        let mut chunks = events.chunks(self.settings.batch);
        while let Some(chunk) = chunks.next() {
            if let Err(e) = registry.meta.record_events(now_ms(), chunk).await {
                let rest: Vec<AnalyticsEvent> =
                    chunk.iter().chain(chunks.flatten()).cloned().collect();
                let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
                let room = self.settings.max_buffered.saturating_sub(buffer.len());
                let kept = rest.len().min(room);
                self.dropped
                    .fetch_add((rest.len() - kept) as u64, Ordering::Relaxed);
                buffer.extend(rest.into_iter().take(kept));
                return Err(e.into());
            }
            written += chunk.len() as u64;
            self.written
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(written)
    }

    /// The flusher: writes the buffer every `flush_every`, or as soon as a batch is full.
    /// Runs until its task is dropped (then [`Intake::flush`] writes the rest).
    pub async fn run(registry: Arc<Registry>) {
        let intake = registry.analytics.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(intake.settings.flush_every) => {}
                _ = intake.wake.notified() => {}
            }
            if let Err(e) = intake.flush(&registry).await {
                tracing::warn!(error = %e, "could not write analytics events; they wait for the next flush");
                tokio::time::sleep(intake.settings.flush_every).await;
            }
        }
    }
}

/// Counts a download of the release whose manifest has `digest` (already deduplicated per
/// client by the caller); other blobs count nothing when the batch is written.
pub fn downloaded(registry: &Registry, digest: &agora_core::Digest) {
    registry.analytics.record(AnalyticsEvent::Download {
        at: now_ms(),
        manifest_digest: digest.to_string(),
    });
}

/// Counts a search: its normalised text and how many plugins it found.
pub fn searched(registry: &Registry, text: Option<&str>, results: u64) {
    registry.analytics.record(AnalyticsEvent::Search {
        at: now_ms(),
        query: domain::query_key(text.unwrap_or("")),
        results,
    });
}

/// Whose analytics a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The whole registry: administrators.
    Registry,
    /// A publisher's plugins: its members whose token may publish for it, administrators.
    Publisher(&'a str),
    /// One plugin: as for its publisher.
    Plugin(&'a str, &'a str),
    /// A tenant's fleet: its members, administrators.
    Tenant(&'a str),
}

/// The report of `scope` over the `days` days ending with `until` (a day, Unix ms; today
/// when none).
pub async fn report(
    registry: &Registry,
    caller: &Caller,
    scope: Scope<'_>,
    days: u32,
    until: Option<i64>,
) -> Result<AnalyticsReport> {
    if days == 0 || days > MAX_REPORT_DAYS {
        return Err(RegistryError::field(
            "days",
            format!("{days} is out of range"),
            Some(&format!("a number of days from 1 to {MAX_REPORT_DAYS}")),
        ));
    }
    let (filter, name, grouping) = authorize(registry, caller, scope).await?;
    let to = Period::Day.bucket(until.unwrap_or_else(now_ms)) + DAY_MS;
    let from = to - i64::from(days) * DAY_MS;
    let meta = &registry.meta;
    let counts = meta
        .analytics_counts(filter, Period::Day.as_str(), from, to, grouping)
        .await?;
    let mut daily: Vec<DayRow> = Vec::new();
    for c in counts {
        let day = domain::day_name(c.bucket);
        let (plugin, version) = match grouping {
            AnalyticsGrouping::Total => ("*".to_owned(), "*".to_owned()),
            AnalyticsGrouping::Plugin => (c.plugin, "*".to_owned()),
            AnalyticsGrouping::Version => (c.plugin, c.version),
        };
        let row = match daily
            .iter_mut()
            .rev()
            .take_while(|r| r.day == day)
            .find(|r| r.plugin == plugin && r.version == version)
        {
            Some(row) => row,
            None => {
                daily.push(DayRow {
                    day,
                    plugin,
                    version,
                    downloads: 0,
                    installs: 0,
                    removals: 0,
                    calls: 0,
                    failures: 0,
                    searches: 0,
                });
                daily.last_mut().expect("just pushed")
            }
        };
        match CountKind::parse(&c.kind) {
            Some(CountKind::Download) => row.downloads += c.count,
            Some(CountKind::Install) => row.installs += c.count,
            Some(CountKind::Removal) => row.removals += c.count,
            Some(CountKind::Run) => {
                row.calls += c.count;
                row.failures += c.failures;
            }
            None => {}
        }
    }
    let (searches, zero_searches) = if scope == Scope::Registry {
        for (bucket, n) in meta.analytics_search_days(from, to).await? {
            let day = domain::day_name(bucket);
            match daily.iter_mut().find(|r| r.day == day) {
                Some(row) => row.searches += n,
                None => daily.push(DayRow {
                    day,
                    plugin: "*".into(),
                    version: "*".into(),
                    downloads: 0,
                    installs: 0,
                    removals: 0,
                    calls: 0,
                    failures: 0,
                    searches: n,
                }),
            }
        }
        daily.sort_by(|a, b| a.day.cmp(&b.day));
        let rows = |records: Vec<agora_store::SearchCountRecord>| {
            records
                .into_iter()
                .map(|s| SearchRow {
                    query: s.query,
                    count: s.count,
                    zero_results: s.zero_results,
                })
                .collect::<Vec<_>>()
        };
        (
            rows(meta.analytics_searches(from, to, false, TOP_ROWS).await?),
            rows(meta.analytics_searches(from, to, true, TOP_ROWS).await?),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let versions = meta
        .analytics_versions(filter, from, to, MAX_VERSION_ROWS)
        .await?
        .into_iter()
        .map(|v| VersionRow {
            success_rate: domain::success_rate(v.calls, v.failures),
            p50_ms: domain::quantile_ms(&v.durations, 0.5),
            p90_ms: domain::quantile_ms(&v.durations, 0.9),
            p99_ms: domain::quantile_ms(&v.durations, 0.99),
            plugin: v.plugin,
            version: v.version,
            published_at: v.published_at,
            downloads: v.downloads,
            installs: v.installs,
            removals: v.removals,
            active_instances: v.active_instances,
            calls: v.calls,
            failures: v.failures,
        })
        .collect();
    // Errors per plugin and class, with the versions they occur in (newest first).
    let mut errors: Vec<ErrorRow> = Vec::new();
    for e in meta
        .analytics_errors(filter, from, MAX_VERSION_ROWS)
        .await?
    {
        match errors
            .iter_mut()
            .find(|r| r.plugin == e.plugin && r.class == e.class)
        {
            Some(row) => {
                row.count += e.count;
                row.first_seen = row.first_seen.min(e.first_seen);
                if e.last_seen > row.last_seen {
                    row.last_seen = e.last_seen;
                    row.sample = e.sample.or(row.sample.take());
                }
                row.versions.push(e.version);
            }
            None => errors.push(ErrorRow {
                plugin: e.plugin,
                class: e.class,
                count: e.count,
                first_seen: e.first_seen,
                last_seen: e.last_seen,
                versions: vec![e.version],
                sample: e.sample,
            }),
        }
    }
    for row in &mut errors {
        row.versions.sort_by(|a, b| version_order(b, a));
        row.versions.dedup();
    }
    errors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_seen.cmp(&a.last_seen))
            .then(a.plugin.cmp(&b.plugin))
            .then(a.class.cmp(&b.class))
    });
    errors.truncate(TOP_ROWS);
    let together = meta
        .analytics_pairs(filter, TOP_ROWS)
        .await?
        .into_iter()
        .map(|(first, second, instances)| PairRow {
            first,
            second,
            instances,
        })
        .collect();
    Ok(AnalyticsReport {
        scope: name,
        from,
        to,
        days,
        daily,
        versions,
        errors,
        together,
        searches,
        zero_searches,
    })
}

/// Semantic versions by precedence, anything else after them by text.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Who may read `scope`, and how it reads.
async fn authorize(
    registry: &Registry,
    caller: &Caller,
    scope: Scope<'_>,
) -> Result<(AnalyticsFilter, String, AnalyticsGrouping)> {
    match scope {
        Scope::Registry => {
            caller.require_admin()?;
            Ok((
                AnalyticsFilter::Registry,
                "registry".to_owned(),
                AnalyticsGrouping::Total,
            ))
        }
        Scope::Publisher(name) => {
            crate::error::one_line("publisher", name)?;
            let missing = || RegistryError::not_found(format!("no publisher named {name}"));
            let publisher = registry
                .meta
                .publisher_by_name(name)
                .await?
                .ok_or_else(missing)?;
            caller.require_publish(&publisher)?;
            Ok((
                AnalyticsFilter::Publisher(publisher.id),
                format!("publisher:{name}"),
                AnalyticsGrouping::Plugin,
            ))
        }
        Scope::Plugin(publisher, name) => {
            let plugin =
                crate::catalog::visible_plugin(registry, &caller.viewer(), publisher, name).await?;
            let record = registry
                .meta
                .publisher_by_name(publisher)
                .await?
                .ok_or_else(|| {
                    RegistryError::not_found(format!("no publisher named {publisher}"))
                })?;
            caller.require_publish(&record)?;
            Ok((
                AnalyticsFilter::Plugin(plugin.id),
                format!("plugin:{publisher}/{name}"),
                AnalyticsGrouping::Version,
            ))
        }
        Scope::Tenant(name) => {
            let (tenant, _) =
                crate::tenants::load(registry, caller, name, crate::tenants::Need::Member).await?;
            Ok((
                AnalyticsFilter::Tenant(tenant.id),
                format!("tenant:{name}"),
                AnalyticsGrouping::Plugin,
            ))
        }
    }
}

/// A plugin's record from real runs (anyone who may see the plugin may see this).
pub async fn reputation(
    registry: &Registry,
    plugin_id: i64,
    latest_version_id: Option<i64>,
) -> Result<Reputation> {
    let meta = &registry.meta;
    let to = Period::Day.bucket(now_ms()) + DAY_MS;
    let from = to - 30 * DAY_MS;
    let counts = meta
        .analytics_counts(
            AnalyticsFilter::Plugin(plugin_id),
            Period::Day.as_str(),
            from,
            to,
            AnalyticsGrouping::Total,
        )
        .await?;
    let mut r = Reputation {
        active_instances: meta.analytics_active_instances(plugin_id).await?,
        ..Reputation::default()
    };
    let mut failures = 0u64;
    for c in counts {
        match CountKind::parse(&c.kind) {
            Some(CountKind::Install) => r.installs_30d += c.count,
            Some(CountKind::Run) => {
                r.calls_30d += c.count;
                failures += c.failures;
            }
            _ => {}
        }
    }
    r.success_rate = domain::success_rate(r.calls_30d, failures);
    r.issues_per_1000 = (r.calls_30d > 0)
        .then(|| (failures.min(r.calls_30d) as f64 * 10_000.0 / r.calls_30d as f64).round() / 10.0);
    if let Some(version_id) = latest_version_id {
        r.last_checked = meta
            .latest_verification(version_id)
            .await?
            .map(|v| v.checked_at);
    }
    Ok(r)
}

/// Records what an instance's report says for analytics: what it runs (installs and
/// removals are the differences to its previous report) and its runs (deltas), counted
/// once per batch number. The report was validated by the caller.
pub async fn instance_reported(
    registry: &Registry,
    tenant_id: i64,
    instance_id: i64,
    report: &agora_core::tenant::InstanceReport,
) -> Result<()> {
    let split = |plugin: &str| -> Option<(String, String)> {
        let (p, n) = plugin.split_once('/')?;
        Some((p.to_owned(), n.to_owned()))
    };
    let installed = report
        .plugins
        .iter()
        .filter_map(|p| {
            let (publisher, name) = split(&p.plugin)?;
            Some(InstalledRecord {
                publisher,
                name,
                version: p.version.clone(),
            })
        })
        .collect();
    let runs = report
        .executions
        .iter()
        .filter_map(|e| {
            let (publisher, name) = split(&e.plugin)?;
            Some(RunsRecord {
                publisher,
                name,
                version: e.version.clone(),
                digest: e.digest.clone(),
                at: e.at,
                calls: e.calls,
                failures: e.failures,
                total_ms: e.total_ms,
                durations: e.durations.clone(),
                errors: e
                    .errors
                    .iter()
                    .map(|x| (x.class.clone(), x.count, x.message.clone()))
                    .collect(),
            })
        })
        .collect();
    registry
        .meta
        .record_instance_analytics(&InstanceAnalytics {
            instance_id,
            tenant_id,
            at: now_ms(),
            installed,
            batch: report.batch,
            runs,
        })
        .await?;
    Ok(())
}

/// Checks the analytics part of an instance's report: the batch number when runs are
/// sent, each run's figures and error classes.
pub fn check_executions(report: &agora_core::tenant::InstanceReport) -> Result<()> {
    if report.executions.is_empty() {
        return Ok(());
    }
    if report.batch.is_none() {
        return Err(RegistryError::field(
            "batch",
            "is missing while executions are sent",
            Some("a number above the last batch this instance sent (e.g. the time in ms)"),
        ));
    }
    let now = now_ms();
    for (i, e) in report.executions.iter().enumerate() {
        let f = |name: &str| format!("executions[{i}].{name}");
        crate::error::one_line(&f("plugin"), &e.plugin)?;
        crate::error::one_line(&f("version"), &e.version)?;
        if let Some(digest) = &e.digest
            && digest.parse::<agora_core::Digest>().is_err()
        {
            return Err(RegistryError::field(
                &f("digest"),
                format!("{digest:?} is not a digest"),
                Some("sha256: followed by 64 lowercase hexadecimal digits"),
            ));
        }
        if e.failures > e.calls {
            return Err(RegistryError::field(
                &f("failures"),
                format!("{} failures among {} calls", e.failures, e.calls),
                Some("at most as many failures as calls"),
            ));
        }
        if e.durations.len() > domain::DURATION_SLOTS {
            return Err(RegistryError::field(
                &f("durations"),
                format!("has {} slots", e.durations.len()),
                Some(&format!(
                    "at most {} counts, one per slot of {:?} ms",
                    domain::DURATION_SLOTS,
                    &domain::DURATION_BOUNDS_MS[..domain::DURATION_SLOTS - 1]
                )),
            ));
        }
        if e.durations.iter().sum::<u64>() > e.calls {
            return Err(RegistryError::field(
                &f("durations"),
                "counts more calls than `calls`",
                Some("slot counts adding up to at most `calls`"),
            ));
        }
        // Runs from the future, or from before the retention of raw events, are refused.
        if e.at > now + DAY_MS || e.at < now - 400 * DAY_MS {
            return Err(RegistryError::field(
                &f("at"),
                format!("{} is not a time of the last 400 days", e.at),
                Some("Unix milliseconds, no later than a day from now"),
            ));
        }
        if e.errors.len() > domain::MAX_ERROR_CLASSES {
            return Err(RegistryError::field(
                &f("errors"),
                format!("lists {} classes", e.errors.len()),
                Some(&format!("at most {}", domain::MAX_ERROR_CLASSES)),
            ));
        }
        for (j, x) in e.errors.iter().enumerate() {
            domain::check_error_class(&f(&format!("errors[{j}].class")), &x.class)
                .map_err(RegistryError::from)?;
            if let Some(m) = &x.message {
                crate::error::multi_line(&f(&format!("errors[{j}].message")), m)?;
            }
        }
    }
    Ok(())
}

/// Drops what the retention settings say is old; run by the scheduled `analytics.prune`
/// job.
pub async fn prune(registry: &Registry) -> Result<AnalyticsPruned> {
    let s = registry.analytics.settings();
    let now = now_ms();
    let days = |d: u32| now - i64::from(d) * DAY_MS;
    Ok(registry
        .meta
        .prune_analytics(
            days(s.retention.raw_days),
            s.max_events,
            days(s.retention.hourly_days),
            (s.retention.daily_days > 0).then(|| days(s.retention.daily_days)),
        )
        .await?)
}

/// The scheduled job's kind.
pub const PRUNE_JOB: &str = "analytics.prune";

/// The prune loop `agora serve` and `agora worker` run: once an hour across replicas.
pub async fn run_prunes(registry: Arc<Registry>, worker: String, lease: Duration) {
    crate::scheduled::run_every(
        registry,
        worker,
        PRUNE_JOB,
        Duration::from_secs(3600),
        lease,
        |registry| async move {
            let pruned = prune(&registry).await?;
            if pruned != AnalyticsPruned::default() {
                tracing::info!(?pruned, "old analytics dropped");
            }
            Ok(())
        },
    )
    .await
}
