//! Analytics: raw events, their rollups per hour and day, run durations, errors by class,
//! searches, and what each instance runs (see `agora_core::analytics` for the rules).
//! Every write adds to rollups inside one transaction with its raw events, so a batch
//! counts wholly or not at all, and batches from several servers add up.

use async_trait::async_trait;

use super::Result;

/// A download or a search, as the server's intake buffers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalyticsEvent {
    /// A counted download of the release whose manifest has this digest (other blobs
    /// count nothing).
    Download { at: i64, manifest_digest: String },
    /// A search: its normalised query and how many plugins it found.
    Search {
        at: i64,
        query: String,
        results: u64,
    },
}

/// Runs of one release on one instance since its previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsRecord {
    pub publisher: String,
    pub name: String,
    pub version: String,
    /// The digest of the code that ran, when the agent said.
    pub digest: Option<String>,
    pub at: i64,
    pub calls: u64,
    pub failures: u64,
    pub total_ms: u64,
    /// Calls per duration slot (`agora_core::analytics::DURATION_BOUNDS_MS`).
    pub durations: Vec<u64>,
    /// (class, count, last message).
    pub errors: Vec<(String, u64, Option<String>)>,
}

/// One release an instance reports it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRecord {
    pub publisher: String,
    pub name: String,
    pub version: String,
}

/// An instance's report, as analytics take it.
#[derive(Debug, Clone)]
pub struct InstanceAnalytics {
    pub instance_id: i64,
    pub tenant_id: i64,
    pub at: i64,
    /// What it runs now (replaces what it ran before: the differences are installs and
    /// removals).
    pub installed: Vec<InstalledRecord>,
    /// The run batch's number; runs are counted only when it is above the last one
    /// counted for this instance.
    pub batch: Option<i64>,
    pub runs: Vec<RunsRecord>,
}

/// What an instance's report changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceAnalyticsOutcome {
    pub installs: u64,
    pub removals: u64,
    /// Run records counted (0 for a batch counted before).
    pub runs: u64,
    /// Releases named that the registry does not have (ignored).
    pub unknown: u64,
}

/// Whose analytics a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsFilter {
    Registry,
    Publisher(i64),
    Plugin(i64),
    Tenant(i64),
}

/// How daily counts are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsGrouping {
    /// One row per day and kind.
    Total,
    /// Per day, kind and plugin.
    Plugin,
    /// Per day, kind and version.
    Version,
}

/// Counts of one kind in one bucket. `plugin` and `version` are empty where grouped away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRecord {
    pub bucket: i64,
    pub kind: String,
    pub plugin: String,
    pub version: String,
    pub count: u64,
    pub failures: u64,
    pub total_ms: u64,
}

/// A version's totals over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCountsRecord {
    pub version_id: i64,
    /// `publisher/name`.
    pub plugin: String,
    pub version: String,
    pub published_at: i64,
    pub downloads: u64,
    pub installs: u64,
    pub removals: u64,
    pub calls: u64,
    pub failures: u64,
    pub active_instances: u64,
    /// Calls per duration slot.
    pub durations: Vec<u64>,
}

/// An error class of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    pub plugin: String,
    pub version: String,
    pub class: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub sample: Option<String>,
}

/// A search query's counts over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCountRecord {
    pub query: String,
    pub count: u64,
    pub zero_results: u64,
}

/// How much a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyticsPruned {
    pub events: u64,
    pub hourly: u64,
    pub daily: u64,
}

#[async_trait]
pub trait AnalyticsStore {
    /// Records a batch of downloads and searches, received at `received_at`, with their
    /// rollups, in one transaction (download counts of versions and plugins included).
    async fn record_events(&self, received_at: i64, events: &[AnalyticsEvent]) -> Result<()>;

    /// Records an instance's report: the differences to what it ran before as installs
    /// and removals, and its runs (once per batch), in one transaction.
    async fn record_instance_analytics(
        &self,
        report: &InstanceAnalytics,
    ) -> Result<InstanceAnalyticsOutcome>;

    /// Counts in `[from, to)` per `period` (`hour` or `day`), grouped as asked.
    async fn analytics_counts(
        &self,
        filter: AnalyticsFilter,
        period: &str,
        from: i64,
        to: i64,
        grouping: AnalyticsGrouping,
    ) -> Result<Vec<CountRecord>>;

    /// Per version over the days `[from, to)`: totals, instances running it now and the
    /// duration histogram; most downloaded and installed first, at most `limit`.
    async fn analytics_versions(
        &self,
        filter: AnalyticsFilter,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<VersionCountsRecord>>;

    /// Error classes per version last seen at or after `since`, most frequent first, at
    /// most `limit` rows.
    async fn analytics_errors(
        &self,
        filter: AnalyticsFilter,
        since: i64,
        limit: usize,
    ) -> Result<Vec<ErrorRecord>>;

    /// Pairs of plugins running on one instance now, with how many instances run both;
    /// most frequent first, at most `limit`.
    async fn analytics_pairs(
        &self,
        filter: AnalyticsFilter,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>>;

    /// Searches over the days `[from, to)`, most frequent first (only those that found
    /// nothing with `zero_only`), at most `limit`.
    async fn analytics_searches(
        &self,
        from: i64,
        to: i64,
        zero_only: bool,
        limit: usize,
    ) -> Result<Vec<SearchCountRecord>>;

    /// Searches per day over `[from, to)`.
    async fn analytics_search_days(&self, from: i64, to: i64) -> Result<Vec<(i64, u64)>>;

    /// Instances running any version of the plugin now.
    async fn analytics_active_instances(&self, plugin_id: i64) -> Result<u64>;

    /// Raw events stored (for tests and `agora analytics` summaries).
    async fn analytics_event_count(&self) -> Result<u64>;

    /// Removes raw events received before `events_before` (and the oldest beyond
    /// `max_events`), hourly rollups before `hourly_before`, and daily rollups, durations
    /// and errors before `daily_before` (when given).
    async fn prune_analytics(
        &self,
        events_before: i64,
        max_events: u64,
        hourly_before: i64,
        daily_before: Option<i64>,
    ) -> Result<AnalyticsPruned>;
}
