//! Analytics on SQL. Every batch is one transaction: its raw events, then its rollups,
//! each an `INSERT ... ON CONFLICT DO UPDATE` that adds to what is there, taken in key
//! order (so two servers' batches never deadlock on PostgreSQL, and add up exactly).

use std::collections::{BTreeMap, HashMap};

use agora_core::analytics::{
    CountKind, DURATION_SLOTS, MAX_ERROR_CLASSES, MAX_ERROR_SAMPLE_CHARS, MAX_QUERIES_PER_DAY,
    OTHER_ERROR, OTHER_QUERY, Period,
};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Dialect, SqlStore};
use crate::metadata::*;

/// Rows per multi-row INSERT of raw events (9 bound values each).
const EVENT_ROWS_PER_INSERT: usize = 100;
/// Digests per lookup of which release a download belongs to.
const DIGESTS_PER_LOOKUP: usize = 200;

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn cut(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// Releases named by (publisher, name, version), looked up once per transaction.
type ReleaseCache = HashMap<(String, String, String), Option<(i64, i64)>>;

/// Errors per (plugin, version, class): count, last seen, last message.
type ErrorSums = BTreeMap<(i64, i64, String), (u64, i64, Option<String>)>;

/// A rollup key: period, bucket, kind, plugin, version, tenant.
type CountKey = (&'static str, i64, &'static str, i64, i64, i64);

#[derive(Default, Clone, Copy)]
struct Sums {
    count: u64,
    failures: u64,
    total_ms: u64,
}

/// A raw event row.
struct RawEvent {
    kind: &'static str,
    at: i64,
    plugin_id: i64,
    version_id: i64,
    tenant_id: i64,
    instance_id: i64,
    sums: Sums,
    query: Option<String>,
    detail: Option<String>,
}

/// What one transaction adds: raw events and rollups, written in key order.
#[derive(Default)]
struct Batch {
    events: Vec<RawEvent>,
    counts: BTreeMap<CountKey, Sums>,
}

impl Batch {
    fn count(
        &mut self,
        kind: CountKind,
        at: i64,
        (plugin_id, version_id, tenant_id): (i64, i64, i64),
        sums: Sums,
    ) {
        for period in Period::ALL {
            let key = (
                period.as_str(),
                period.bucket(at),
                kind.as_str(),
                plugin_id,
                version_id,
                tenant_id,
            );
            let s = self.counts.entry(key).or_default();
            s.count += sums.count;
            s.failures += sums.failures;
            s.total_ms += sums.total_ms;
        }
    }

    async fn write(self, tx: &mut Transaction<'static, Any>, received_at: i64) -> Result<()> {
        for chunk in self.events.chunks(EVENT_ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO analytics_events (kind, at, received_at, plugin_id, version_id, \
                 tenant_id, instance_id, count, failures, total_ms, query, detail) VALUES ",
            );
            for (i, _) in chunk.iter().enumerate() {
                let b = i * 11;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, $1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9,
                    b + 10,
                    b + 11,
                    b + 12
                ));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(received_at);
            for e in chunk {
                q = q
                    .bind(e.kind)
                    .bind(e.at)
                    .bind(e.plugin_id)
                    .bind(e.version_id)
                    .bind(e.tenant_id)
                    .bind(e.instance_id)
                    .bind(int(e.sums.count))
                    .bind(int(e.sums.failures))
                    .bind(int(e.sums.total_ms))
                    .bind(e.query.as_deref())
                    .bind(e.detail.as_deref());
            }
            q.execute(&mut **tx).await?;
        }
        for ((period, bucket, kind, plugin_id, version_id, tenant_id), s) in self.counts {
            sqlx::query(
                "INSERT INTO analytics_counts (period, bucket, kind, plugin_id, version_id, \
                 tenant_id, count, failures, total_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (period, bucket, kind, plugin_id, version_id, tenant_id) DO UPDATE SET \
                 count = analytics_counts.count + excluded.count, \
                 failures = analytics_counts.failures + excluded.failures, \
                 total_ms = analytics_counts.total_ms + excluded.total_ms",
            )
            .bind(period)
            .bind(bucket)
            .bind(kind)
            .bind(plugin_id)
            .bind(version_id)
            .bind(tenant_id)
            .bind(int(s.count))
            .bind(int(s.failures))
            .bind(int(s.total_ms))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// The `AND ...` condition of `filter` on a table aliased `c` with `plugin_id` and
/// `tenant_id`, using the bound value `$n`.
fn filter_sql(filter: AnalyticsFilter, n: usize) -> String {
    match filter {
        AnalyticsFilter::Registry => String::new(),
        AnalyticsFilter::Publisher(_) => {
            format!(" AND c.plugin_id IN (SELECT id FROM plugins WHERE publisher_id = ${n})")
        }
        AnalyticsFilter::Plugin(_) => format!(" AND c.plugin_id = ${n}"),
        AnalyticsFilter::Tenant(_) => format!(" AND c.tenant_id = ${n}"),
    }
}

fn filter_value(filter: AnalyticsFilter) -> Option<i64> {
    match filter {
        AnalyticsFilter::Registry => None,
        AnalyticsFilter::Publisher(id)
        | AnalyticsFilter::Plugin(id)
        | AnalyticsFilter::Tenant(id) => Some(id),
    }
}

/// `$from, ..., $from+n-1`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The (plugin id, version id) of a release named by publisher, name and version.
async fn release_ids(
    tx: &mut Transaction<'static, Any>,
    cache: &mut ReleaseCache,
    publisher: &str,
    name: &str,
    version: &str,
) -> Result<Option<(i64, i64)>> {
    let key = (publisher.to_owned(), name.to_owned(), version.to_owned());
    if let Some(ids) = cache.get(&key) {
        return Ok(*ids);
    }
    let ids = sqlx::query(
        "SELECT p.id AS plugin_id, v.id AS version_id FROM plugins p \
         JOIN versions v ON v.plugin_id = p.id \
         WHERE p.publisher = $1 AND p.name = $2 AND v.version = $3",
    )
    .bind(publisher)
    .bind(name)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r: AnyRow| Ok::<_, sqlx::Error>((r.try_get("plugin_id")?, r.try_get("version_id")?)))
    .transpose()?;
    cache.insert(key, ids);
    Ok(ids)
}

impl SqlStore {
    async fn record_events_once(&self, received_at: i64, events: &[AnalyticsEvent]) -> Result<()> {
        let mut tx = self.write.begin().await?;
        // Which releases the downloaded manifests belong to.
        let mut digests: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                AnalyticsEvent::Download {
                    manifest_digest, ..
                } => Some(manifest_digest.as_str()),
                _ => None,
            })
            .collect();
        digests.sort_unstable();
        digests.dedup();
        let mut releases: HashMap<String, (i64, i64)> = HashMap::new();
        for chunk in digests.chunks(DIGESTS_PER_LOOKUP) {
            let sql = format!(
                "SELECT a.digest, v.id AS version_id, v.plugin_id FROM artifacts a \
                 JOIN versions v ON v.id = a.version_id \
                 WHERE a.role = 'manifest' AND a.digest IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(*d);
            }
            for row in q.fetch_all(&mut *tx).await? {
                releases.insert(
                    row.try_get("digest")?,
                    (row.try_get("plugin_id")?, row.try_get("version_id")?),
                );
            }
        }
        let mut batch = Batch::default();
        // Downloads per version and per plugin, for their counters.
        let mut per_version: BTreeMap<i64, i64> = BTreeMap::new();
        let mut per_plugin: BTreeMap<i64, i64> = BTreeMap::new();
        let mut searches: BTreeMap<(i64, String), (u64, u64)> = BTreeMap::new();
        for event in events {
            match event {
                AnalyticsEvent::Download {
                    at,
                    manifest_digest,
                } => {
                    let Some(&(plugin_id, version_id)) = releases.get(manifest_digest) else {
                        continue;
                    };
                    let one = Sums {
                        count: 1,
                        ..Sums::default()
                    };
                    batch.events.push(RawEvent {
                        kind: "download",
                        at: *at,
                        plugin_id,
                        version_id,
                        tenant_id: 0,
                        instance_id: 0,
                        sums: one,
                        query: None,
                        detail: None,
                    });
                    batch.count(CountKind::Download, *at, (plugin_id, version_id, 0), one);
                    *per_version.entry(version_id).or_default() += 1;
                    *per_plugin.entry(plugin_id).or_default() += 1;
                }
                AnalyticsEvent::Search { at, query, results } => {
                    let query = cut(query, agora_core::analytics::MAX_QUERY_CHARS);
                    batch.events.push(RawEvent {
                        kind: "search",
                        at: *at,
                        plugin_id: 0,
                        version_id: 0,
                        tenant_id: 0,
                        instance_id: 0,
                        sums: Sums {
                            count: *results,
                            ..Sums::default()
                        },
                        query: Some(query.clone()),
                        detail: None,
                    });
                    let s = searches
                        .entry((Period::Day.bucket(*at), query))
                        .or_default();
                    s.0 += 1;
                    s.1 += u64::from(*results == 0);
                }
            }
        }
        batch.write(&mut tx, received_at).await?;
        // Every version row, then every plugin row, each in id order: two servers' batches
        // take their row locks in one order.
        for (table, counts) in [("versions", per_version), ("plugins", per_plugin)] {
            for (id, n) in counts {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET downloads = downloads + $1 WHERE id = $2"
                )))
                .bind(n)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        let mut distinct: HashMap<i64, i64> = HashMap::new();
        for ((day, query), (count, zero)) in searches {
            let added = sqlx::query(
                "UPDATE analytics_searches SET count = count + $1, zero_results = zero_results + $2 \
                 WHERE day = $3 AND query = $4",
            )
            .bind(int(count))
            .bind(int(zero))
            .bind(day)
            .bind(&query)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if added > 0 {
                continue;
            }
            let known = match distinct.get(&day) {
                Some(n) => *n,
                None => {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM analytics_searches WHERE day = $1",
                    )
                    .bind(day)
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            let query = if known >= MAX_QUERIES_PER_DAY as i64 {
                OTHER_QUERY.to_owned()
            } else {
                distinct.insert(day, known + 1);
                query
            };
            sqlx::query(
                "INSERT INTO analytics_searches (day, query, count, zero_results) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (day, query) DO UPDATE SET count = analytics_searches.count + excluded.count, \
                 zero_results = analytics_searches.zero_results + excluded.zero_results",
            )
            .bind(day)
            .bind(&query)
            .bind(int(count))
            .bind(int(zero))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_instance_once(
        &self,
        report: &InstanceAnalytics,
    ) -> Result<InstanceAnalyticsOutcome> {
        let mut tx = self.write.begin().await?;
        if self.dialect == Dialect::Postgres {
            // One report of an instance at a time: the second sees the first's set.
            sqlx::query("SELECT id FROM instances WHERE id = $1 FOR UPDATE")
                .bind(report.instance_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut outcome = InstanceAnalyticsOutcome::default();
        let mut cache = HashMap::new();
        let mut now: BTreeMap<i64, i64> = BTreeMap::new();
        for r in &report.installed {
            match release_ids(&mut tx, &mut cache, &r.publisher, &r.name, &r.version).await? {
                Some((plugin_id, version_id)) => {
                    now.insert(plugin_id, version_id);
                }
                None => outcome.unknown += 1,
            }
        }
        let before: BTreeMap<i64, i64> = sqlx::query(
            "SELECT plugin_id, version_id FROM analytics_installed WHERE instance_id = $1",
        )
        .bind(report.instance_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("plugin_id")?, r.try_get("version_id")?)))
        .collect::<Result<_, sqlx::Error>>()?;
        let mut batch = Batch::default();
        let tenant = report.tenant_id;
        let one = Sums {
            count: 1,
            ..Sums::default()
        };
        let change = |batch: &mut Batch, kind: CountKind, plugin_id: i64, version_id: i64| {
            batch.events.push(RawEvent {
                kind: kind.as_str(),
                at: report.at,
                plugin_id,
                version_id,
                tenant_id: tenant,
                instance_id: report.instance_id,
                sums: one,
                query: None,
                detail: None,
            });
            batch.count(kind, report.at, (plugin_id, version_id, tenant), one);
        };
        for (&plugin_id, &old) in &before {
            if now.get(&plugin_id) != Some(&old) {
                change(&mut batch, CountKind::Removal, plugin_id, old);
                outcome.removals += 1;
                sqlx::query(
                    "DELETE FROM analytics_installed WHERE instance_id = $1 AND plugin_id = $2",
                )
                .bind(report.instance_id)
                .bind(plugin_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (&plugin_id, &version_id) in &now {
            if before.get(&plugin_id) != Some(&version_id) {
                change(&mut batch, CountKind::Install, plugin_id, version_id);
                outcome.installs += 1;
                sqlx::query(
                    "INSERT INTO analytics_installed (instance_id, plugin_id, version_id, tenant_id, since) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(report.instance_id)
                .bind(plugin_id)
                .bind(version_id)
                .bind(tenant)
                .bind(report.at)
                .execute(&mut *tx)
                .await?;
            }
        }
        // Runs, once per batch.
        let fresh = match report.batch {
            None => report.runs.is_empty(),
            Some(number) => {
                let last: Option<i64> = sqlx::query_scalar(
                    "SELECT batch FROM analytics_batches WHERE instance_id = $1",
                )
                .bind(report.instance_id)
                .fetch_optional(&mut *tx)
                .await?;
                let fresh = last.is_none_or(|last| number > last);
                if fresh {
                    sqlx::query(
                        "INSERT INTO analytics_batches (instance_id, batch) VALUES ($1, $2) \
                         ON CONFLICT (instance_id) DO UPDATE SET batch = excluded.batch",
                    )
                    .bind(report.instance_id)
                    .bind(number)
                    .execute(&mut *tx)
                    .await?;
                }
                fresh
            }
        };
        let mut durations: BTreeMap<(i64, i64, i64, i64), u64> = BTreeMap::new();
        let mut errors = ErrorSums::new();
        if fresh {
            for run in &report.runs {
                let Some((plugin_id, version_id)) =
                    release_ids(&mut tx, &mut cache, &run.publisher, &run.name, &run.version)
                        .await?
                else {
                    outcome.unknown += 1;
                    continue;
                };
                outcome.runs += 1;
                let sums = Sums {
                    count: run.calls,
                    failures: run.failures,
                    total_ms: run.total_ms,
                };
                let detail = serde_json::json!({
                    "digest": run.digest,
                    "durations": run.durations,
                    "errors": run.errors.iter().map(|(c, n, _)| serde_json::json!({"class": c, "count": n})).collect::<Vec<_>>(),
                });
                batch.events.push(RawEvent {
                    kind: "run",
                    at: run.at,
                    plugin_id,
                    version_id,
                    tenant_id: tenant,
                    instance_id: report.instance_id,
                    sums,
                    query: None,
                    detail: Some(detail.to_string()),
                });
                batch.count(
                    CountKind::Run,
                    run.at,
                    (plugin_id, version_id, tenant),
                    sums,
                );
                let day = Period::Day.bucket(run.at);
                for (slot, n) in run.durations.iter().enumerate().take(DURATION_SLOTS) {
                    if *n > 0 {
                        *durations
                            .entry((day, plugin_id, version_id, slot as i64))
                            .or_default() += n;
                    }
                }
                for (class, count, message) in &run.errors {
                    let e = errors
                        .entry((plugin_id, version_id, class.clone()))
                        .or_insert((0, run.at, None));
                    e.0 += count;
                    e.1 = e.1.max(run.at);
                    if message.is_some() {
                        e.2 = message.as_deref().map(|m| cut(m, MAX_ERROR_SAMPLE_CHARS));
                    }
                }
            }
        }
        batch.write(&mut tx, report.at).await?;
        for ((day, plugin_id, version_id, slot), n) in durations {
            sqlx::query(
                "INSERT INTO analytics_durations (day, plugin_id, version_id, tenant_id, slot, count) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (day, plugin_id, version_id, tenant_id, slot) DO UPDATE SET \
                 count = analytics_durations.count + excluded.count",
            )
            .bind(day)
            .bind(plugin_id)
            .bind(version_id)
            .bind(tenant)
            .bind(slot)
            .bind(int(n))
            .execute(&mut *tx)
            .await?;
        }
        for ((plugin_id, version_id, class), (count, at, sample)) in errors {
            let known: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM analytics_errors \
                 WHERE plugin_id = $1 AND version_id = $2 AND tenant_id = $3 AND class = $4",
            )
            .bind(plugin_id)
            .bind(version_id)
            .bind(tenant)
            .bind(&class)
            .fetch_one(&mut *tx)
            .await?;
            let class = if known > 0 {
                class
            } else {
                let classes: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM analytics_errors \
                     WHERE plugin_id = $1 AND version_id = $2 AND tenant_id = $3",
                )
                .bind(plugin_id)
                .bind(version_id)
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await?;
                if classes >= MAX_ERROR_CLASSES as i64 {
                    OTHER_ERROR.to_owned()
                } else {
                    class
                }
            };
            sqlx::query(
                "INSERT INTO analytics_errors (plugin_id, version_id, tenant_id, class, count, \
                 first_seen, last_seen, sample) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
                 ON CONFLICT (plugin_id, version_id, tenant_id, class) DO UPDATE SET \
                 count = analytics_errors.count + excluded.count, \
                 first_seen = CASE WHEN excluded.first_seen < analytics_errors.first_seen \
                     THEN excluded.first_seen ELSE analytics_errors.first_seen END, \
                 last_seen = CASE WHEN excluded.last_seen > analytics_errors.last_seen \
                     THEN excluded.last_seen ELSE analytics_errors.last_seen END, \
                 sample = CASE WHEN excluded.sample IS NOT NULL \
                     AND excluded.last_seen >= analytics_errors.last_seen \
                     THEN excluded.sample ELSE analytics_errors.sample END",
            )
            .bind(plugin_id)
            .bind(version_id)
            .bind(tenant)
            .bind(&class)
            .bind(int(count))
            .bind(at)
            .bind(sample.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

#[async_trait]
impl AnalyticsStore for SqlStore {
    async fn record_events(&self, received_at: i64, events: &[AnalyticsEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.retrying(|| self.record_events_once(received_at, events))
            .await
    }

    async fn record_instance_analytics(
        &self,
        report: &InstanceAnalytics,
    ) -> Result<InstanceAnalyticsOutcome> {
        self.retrying(|| self.record_instance_once(report)).await
    }

    async fn analytics_counts(
        &self,
        filter: AnalyticsFilter,
        period: &str,
        from: i64,
        to: i64,
        grouping: AnalyticsGrouping,
    ) -> Result<Vec<CountRecord>> {
        let (columns, joins, group) = match grouping {
            AnalyticsGrouping::Total => ("'' AS plugin, '' AS version", "", ""),
            AnalyticsGrouping::Plugin => (
                "p.publisher || '/' || p.name AS plugin, '' AS version",
                " JOIN plugins p ON p.id = c.plugin_id",
                ", p.publisher, p.name",
            ),
            AnalyticsGrouping::Version => (
                "p.publisher || '/' || p.name AS plugin, v.version",
                " JOIN plugins p ON p.id = c.plugin_id JOIN versions v ON v.id = c.version_id",
                ", p.publisher, p.name, v.version",
            ),
        };
        let sql = format!(
            "SELECT c.bucket, c.kind, {columns}, CAST(SUM(c.count) AS BIGINT) AS count, \
             CAST(SUM(c.failures) AS BIGINT) AS failures, CAST(SUM(c.total_ms) AS BIGINT) AS total_ms \
             FROM analytics_counts c{joins} \
             WHERE c.period = $1 AND c.bucket >= $2 AND c.bucket < $3{} \
             GROUP BY c.bucket, c.kind{group} ORDER BY c.bucket, c.kind{group}",
            filter_sql(filter, 4)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(period.to_owned())
            .bind(from)
            .bind(to);
        if let Some(v) = filter_value(filter) {
            q = q.bind(v);
        }
        q.fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| {
                Ok(CountRecord {
                    bucket: r.try_get("bucket")?,
                    kind: r.try_get("kind")?,
                    plugin: r.try_get("plugin")?,
                    version: r.try_get("version")?,
                    count: uint(r.try_get("count")?),
                    failures: uint(r.try_get("failures")?),
                    total_ms: uint(r.try_get("total_ms")?),
                })
            })
            .collect()
    }

    async fn analytics_versions(
        &self,
        filter: AnalyticsFilter,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<VersionCountsRecord>> {
        let sum = |kind: &str, column: &str| {
            format!("CAST(SUM(CASE WHEN c.kind = '{kind}' THEN c.{column} ELSE 0 END) AS BIGINT)")
        };
        let sql = format!(
            "SELECT t.*, p.publisher || '/' || p.name AS plugin, v.version, v.published_at FROM \
             (SELECT c.version_id, {} AS downloads, {} AS installs, {} AS removals, {} AS calls, \
              {} AS failures FROM analytics_counts c \
              WHERE c.period = 'day' AND c.bucket >= $1 AND c.bucket < $2{} GROUP BY c.version_id) t \
             JOIN versions v ON v.id = t.version_id JOIN plugins p ON p.id = v.plugin_id \
             ORDER BY t.downloads + t.installs + t.calls DESC, v.published_at DESC, t.version_id \
             LIMIT {}",
            sum("download", "count"),
            sum("install", "count"),
            sum("removal", "count"),
            sum("run", "count"),
            sum("run", "failures"),
            filter_sql(filter, 3),
            limit
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from).bind(to);
        if let Some(v) = filter_value(filter) {
            q = q.bind(v);
        }
        let mut records: Vec<VersionCountsRecord> = q
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| {
                Ok(VersionCountsRecord {
                    version_id: r.try_get("version_id")?,
                    plugin: r.try_get("plugin")?,
                    version: r.try_get("version")?,
                    published_at: r.try_get("published_at")?,
                    downloads: uint(r.try_get("downloads")?),
                    installs: uint(r.try_get("installs")?),
                    removals: uint(r.try_get("removals")?),
                    calls: uint(r.try_get("calls")?),
                    failures: uint(r.try_get("failures")?),
                    active_instances: 0,
                    durations: vec![0; DURATION_SLOTS],
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        let index: HashMap<i64, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.version_id, i))
            .collect();
        let ids = placeholders(1, records.len());
        let tenant = match filter {
            AnalyticsFilter::Tenant(_) => format!(" AND c.tenant_id = ${}", records.len() + 1),
            _ => String::new(),
        };
        let bind_ids = |sql: String| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in &records {
                q = q.bind(r.version_id);
            }
            if let AnalyticsFilter::Tenant(t) = filter {
                q = q.bind(t);
            }
            q
        };
        let active = bind_ids(format!(
            "SELECT c.version_id, COUNT(*) AS n FROM analytics_installed c \
             JOIN instances i ON i.id = c.instance_id \
             WHERE i.revoked_at IS NULL AND c.version_id IN ({ids}){tenant} GROUP BY c.version_id"
        ))
        .fetch_all(&self.read)
        .await?;
        let slots = bind_ids(format!(
            "SELECT c.version_id, c.slot, CAST(SUM(c.count) AS BIGINT) AS n FROM analytics_durations c \
             WHERE c.version_id IN ({ids}){tenant} AND c.day >= ${} AND c.day < ${} \
             GROUP BY c.version_id, c.slot",
            records.len() + 1 + usize::from(matches!(filter, AnalyticsFilter::Tenant(_))),
            records.len() + 2 + usize::from(matches!(filter, AnalyticsFilter::Tenant(_))),
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        for r in active {
            let id: i64 = r.try_get("version_id")?;
            if let Some(&i) = index.get(&id) {
                records[i].active_instances = uint(r.try_get("n")?);
            }
        }
        for r in slots {
            let id: i64 = r.try_get("version_id")?;
            let slot: i64 = r.try_get("slot")?;
            if let (Some(&i), Ok(slot)) = (index.get(&id), usize::try_from(slot))
                && slot < DURATION_SLOTS
            {
                records[i].durations[slot] += uint(r.try_get("n")?);
            }
        }
        Ok(records)
    }

    async fn analytics_errors(
        &self,
        filter: AnalyticsFilter,
        since: i64,
        limit: usize,
    ) -> Result<Vec<ErrorRecord>> {
        let sql = format!(
            "SELECT p.publisher || '/' || p.name AS plugin, v.version, c.class, \
             CAST(SUM(c.count) AS BIGINT) AS count, MIN(c.first_seen) AS first_seen, \
             MAX(c.last_seen) AS last_seen, MAX(c.sample) AS sample \
             FROM analytics_errors c JOIN versions v ON v.id = c.version_id \
             JOIN plugins p ON p.id = c.plugin_id \
             WHERE c.last_seen >= $1{} \
             GROUP BY p.publisher, p.name, v.version, c.class \
             ORDER BY count DESC, last_seen DESC, plugin, v.version, c.class LIMIT {limit}",
            filter_sql(filter, 2)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since);
        if let Some(v) = filter_value(filter) {
            q = q.bind(v);
        }
        q.fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| {
                Ok(ErrorRecord {
                    plugin: r.try_get("plugin")?,
                    version: r.try_get("version")?,
                    class: r.try_get("class")?,
                    count: uint(r.try_get("count")?),
                    first_seen: r.try_get("first_seen")?,
                    last_seen: r.try_get("last_seen")?,
                    sample: r.try_get("sample")?,
                })
            })
            .collect()
    }

    async fn analytics_pairs(
        &self,
        filter: AnalyticsFilter,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>> {
        // A publisher's view names other publishers' plugins only when they are public.
        let condition = match filter {
            AnalyticsFilter::Registry => String::new(),
            AnalyticsFilter::Tenant(_) => " AND a.tenant_id = $1".to_owned(),
            AnalyticsFilter::Publisher(_) => " AND (pa.publisher_id = $1 OR pb.publisher_id = $1) \
                 AND (pa.publisher_id = $1 OR pa.visibility = 'public') \
                 AND (pb.publisher_id = $1 OR pb.visibility = 'public')"
                .to_owned(),
            AnalyticsFilter::Plugin(_) => " AND (a.plugin_id = $1 OR b.plugin_id = $1) \
                 AND (pa.visibility = 'public' OR pa.publisher_id = pb.publisher_id) \
                 AND (pb.visibility = 'public' OR pa.publisher_id = pb.publisher_id)"
                .to_owned(),
        };
        let sql = format!(
            "SELECT pa.publisher || '/' || pa.name AS first, pb.publisher || '/' || pb.name AS second, \
             COUNT(*) AS n FROM analytics_installed a \
             JOIN analytics_installed b ON b.instance_id = a.instance_id AND a.plugin_id < b.plugin_id \
             JOIN instances i ON i.id = a.instance_id \
             JOIN plugins pa ON pa.id = a.plugin_id JOIN plugins pb ON pb.id = b.plugin_id \
             WHERE i.revoked_at IS NULL{condition} \
             GROUP BY pa.publisher, pa.name, pb.publisher, pb.name \
             ORDER BY n DESC, first, second LIMIT {limit}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(v) = filter_value(filter) {
            q = q.bind(v);
        }
        q.fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| {
                Ok((
                    r.try_get("first")?,
                    r.try_get("second")?,
                    uint(r.try_get("n")?),
                ))
            })
            .collect()
    }

    async fn analytics_searches(
        &self,
        from: i64,
        to: i64,
        zero_only: bool,
        limit: usize,
    ) -> Result<Vec<SearchCountRecord>> {
        let (having, order) = if zero_only {
            (" HAVING SUM(zero_results) > 0", "zero_results")
        } else {
            ("", "count")
        };
        let sql = format!(
            "SELECT query, CAST(SUM(count) AS BIGINT) AS count, \
             CAST(SUM(zero_results) AS BIGINT) AS zero_results FROM analytics_searches \
             WHERE day >= $1 AND day < $2 AND query <> '' GROUP BY query{having} \
             ORDER BY {order} DESC, query LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| {
                Ok(SearchCountRecord {
                    query: r.try_get("query")?,
                    count: uint(r.try_get("count")?),
                    zero_results: uint(r.try_get("zero_results")?),
                })
            })
            .collect()
    }

    async fn analytics_search_days(&self, from: i64, to: i64) -> Result<Vec<(i64, u64)>> {
        sqlx::query(
            "SELECT day, CAST(SUM(count) AS BIGINT) AS count FROM analytics_searches \
             WHERE day >= $1 AND day < $2 GROUP BY day ORDER BY day",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("day")?, uint(r.try_get("count")?))))
        .collect()
    }

    async fn analytics_active_instances(&self, plugin_id: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM analytics_installed c JOIN instances i ON i.id = c.instance_id \
             WHERE c.plugin_id = $1 AND i.revoked_at IS NULL",
        )
        .bind(plugin_id)
        .fetch_one(&self.read)
        .await?;
        Ok(uint(n))
    }

    async fn analytics_event_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM analytics_events")
            .fetch_one(&self.read)
            .await?;
        Ok(uint(n))
    }

    async fn prune_analytics(
        &self,
        events_before: i64,
        max_events: u64,
        hourly_before: i64,
        daily_before: Option<i64>,
    ) -> Result<AnalyticsPruned> {
        let mut pruned = AnalyticsPruned::default();
        let mut tx = self.write.begin().await?;
        pruned.events += sqlx::query("DELETE FROM analytics_events WHERE received_at < $1")
            .bind(events_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM analytics_events")
            .fetch_one(&mut *tx)
            .await?;
        if let Some(newest) = newest {
            pruned.events += sqlx::query("DELETE FROM analytics_events WHERE id <= $1")
                .bind(newest - int(max_events))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        pruned.hourly +=
            sqlx::query("DELETE FROM analytics_counts WHERE period = 'hour' AND bucket < $1")
                .bind(hourly_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if let Some(before) = daily_before {
            for sql in [
                "DELETE FROM analytics_counts WHERE period = 'day' AND bucket < $1",
                "DELETE FROM analytics_durations WHERE day < $1",
                "DELETE FROM analytics_searches WHERE day < $1",
                "DELETE FROM analytics_errors WHERE last_seen < $1",
            ] {
                pruned.daily += sqlx::query(sql)
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
        }
        tx.commit().await?;
        Ok(pruned)
    }
}
