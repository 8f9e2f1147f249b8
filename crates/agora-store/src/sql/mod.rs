//! [`SqlStore`]: the metadata store on SQLite or PostgreSQL through `sqlx::Any`.
//!
//! Queries are written once in the SQL both engines accept (`$N` placeholders, `ON
//! CONFLICT`, `RETURNING`); what differs (schema DDL, full-text search) is chosen by
//! [`Dialect`]. On SQLite all writes go through a pool of one connection, so writers queue
//! instead of failing with "database is locked"; reads use their own pool (WAL mode).
//!
//! A data-changing statement with `RETURNING` run outside a transaction is read with
//! `fetch_all`, never `fetch_one` or `fetch_optional`: sqlx stops a SQLite statement once
//! it has the row asked for, and the reset that follows is what commits it, with that
//! commit's error (a full disk) dropped. The row would describe a change never written (a
//! job claimed on paper only, which a worker then claims again and again). Read to its end,
//! the statement's failed commit is an error.

mod accounts;
mod advisories;
mod analytics;
mod audit;
mod blobs;
mod bulk;
mod entitlements;
mod gc;
mod jobs;
mod limits;
mod log;
mod oci;
mod publishers;
mod releases;
mod reviews;
mod rows;
mod search;
mod tenants;
mod verifications;
mod webhooks;

use std::borrow::Cow;
use std::time::Duration;

use agora_core::Visibility;
use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Row, SqlStr, Transaction};

use crate::metadata::*;
use crate::{StoreError, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of_url(url: &str) -> Result<Dialect> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.chars().take(40).collect()))
        }
    }

    fn migrator(self) -> Migrator {
        let files: [(i64, &'static str, &'static str); 19] = match self {
            Dialect::Sqlite => [
                (
                    1,
                    "init",
                    include_str!("../../migrations/sqlite/0001_init.sql"),
                ),
                (
                    2,
                    "publisher keys",
                    include_str!("../../migrations/sqlite/0002_publisher_keys.sql"),
                ),
                (
                    3,
                    "transparency log",
                    include_str!("../../migrations/sqlite/0003_transparency_log.sql"),
                ),
                (
                    4,
                    "key log indexes",
                    include_str!("../../migrations/sqlite/0004_key_log_indexes.sql"),
                ),
                (
                    5,
                    "web",
                    include_str!("../../migrations/sqlite/0005_web.sql"),
                ),
                (
                    6,
                    "security",
                    include_str!("../../migrations/sqlite/0006_security.sql"),
                ),
                (
                    7,
                    "jobs",
                    include_str!("../../migrations/sqlite/0007_jobs.sql"),
                ),
                (
                    8,
                    "verifications",
                    include_str!("../../migrations/sqlite/0008_verifications.sql"),
                ),
                (
                    9,
                    "advisories",
                    include_str!("../../migrations/sqlite/0009_advisories.sql"),
                ),
                (
                    10,
                    "review queue",
                    include_str!("../../migrations/sqlite/0010_review_queue.sql"),
                ),
                (
                    11,
                    "webhooks",
                    include_str!("../../migrations/sqlite/0011_webhooks.sql"),
                ),
                (
                    12,
                    "tenants",
                    include_str!("../../migrations/sqlite/0012_tenants.sql"),
                ),
                (
                    13,
                    "entitlements",
                    include_str!("../../migrations/sqlite/0013_entitlements.sql"),
                ),
                (
                    14,
                    "oci",
                    include_str!("../../migrations/sqlite/0014_oci.sql"),
                ),
                (
                    15,
                    "gc",
                    include_str!("../../migrations/sqlite/0015_gc.sql"),
                ),
                (
                    16,
                    "analytics",
                    include_str!("../../migrations/sqlite/0016_analytics.sql"),
                ),
                (
                    17,
                    "limits",
                    include_str!("../../migrations/sqlite/0017_limits.sql"),
                ),
                (
                    18,
                    "log_leaves",
                    include_str!("../../migrations/sqlite/0018_log_leaves.sql"),
                ),
                (
                    19,
                    "plugin label array",
                    include_str!("../../migrations/sqlite/0019_plugin_label_array.sql"),
                ),
            ],
            Dialect::Postgres => [
                (
                    1,
                    "init",
                    include_str!("../../migrations/postgres/0001_init.sql"),
                ),
                (
                    2,
                    "publisher keys",
                    include_str!("../../migrations/postgres/0002_publisher_keys.sql"),
                ),
                (
                    3,
                    "transparency log",
                    include_str!("../../migrations/postgres/0003_transparency_log.sql"),
                ),
                (
                    4,
                    "key log indexes",
                    include_str!("../../migrations/postgres/0004_key_log_indexes.sql"),
                ),
                (
                    5,
                    "web",
                    include_str!("../../migrations/postgres/0005_web.sql"),
                ),
                (
                    6,
                    "security",
                    include_str!("../../migrations/postgres/0006_security.sql"),
                ),
                (
                    7,
                    "jobs",
                    include_str!("../../migrations/postgres/0007_jobs.sql"),
                ),
                (
                    8,
                    "verifications",
                    include_str!("../../migrations/postgres/0008_verifications.sql"),
                ),
                (
                    9,
                    "advisories",
                    include_str!("../../migrations/postgres/0009_advisories.sql"),
                ),
                (
                    10,
                    "review queue",
                    include_str!("../../migrations/postgres/0010_review_queue.sql"),
                ),
                (
                    11,
                    "webhooks",
                    include_str!("../../migrations/postgres/0011_webhooks.sql"),
                ),
                (
                    12,
                    "tenants",
                    include_str!("../../migrations/postgres/0012_tenants.sql"),
                ),
                (
                    13,
                    "entitlements",
                    include_str!("../../migrations/postgres/0013_entitlements.sql"),
                ),
                (
                    14,
                    "oci",
                    include_str!("../../migrations/postgres/0014_oci.sql"),
                ),
                (
                    15,
                    "gc",
                    include_str!("../../migrations/postgres/0015_gc.sql"),
                ),
                (
                    16,
                    "analytics",
                    include_str!("../../migrations/postgres/0016_analytics.sql"),
                ),
                (
                    17,
                    "limits",
                    include_str!("../../migrations/postgres/0017_limits.sql"),
                ),
                (
                    18,
                    "log_leaves",
                    include_str!("../../migrations/postgres/0018_log_leaves.sql"),
                ),
                (
                    19,
                    "plugin label array",
                    include_str!("../../migrations/postgres/0019_plugin_label_array.sql"),
                ),
            ],
        };
        let migrations = files
            .into_iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect();
        Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        }
    }
}

/// The SQL metadata store.
#[derive(Clone)]
pub struct SqlStore {
    read: AnyPool,
    write: AnyPool,
    dialect: Dialect,
}

/// Values bound per generated statement at most (`IN` lists, multi-row inserts): under
/// SQLite's limit (32,766) and PostgreSQL's (65,535), large enough that a statement's
/// overhead is spread over hundreds of rows.
const BINDS_PER_STATEMENT: usize = 8_000;

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";

/// Connections to an SQLite database: one writer, and readers for everything else.
const SQLITE_READERS: u32 = 8;

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// SQLite's page cache for the whole store, in KiB, shared out evenly among its
    /// connections (each SQLite connection keeps a cache of its own; PostgreSQL has its
    /// own shared buffers and ignores this). Pages beyond it are read again from the
    /// operating system's page cache, which costs a copy, not a disk read.
    pub sqlite_cache_kib: u32,
}

impl StoreOptions {
    /// The default cache: 32 MiB for the whole store.
    pub const DEFAULT_SQLITE_CACHE_KIB: u32 = 32 * 1024;

    /// Each SQLite connection's `cache_size` (in KiB; at least 1 MiB each).
    fn sqlite_cache_per_connection_kib(&self) -> u32 {
        (self.sqlite_cache_kib / (SQLITE_READERS + 1)).max(1024)
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_cache_kib: Self::DEFAULT_SQLITE_CACHE_KIB,
        }
    }
}

impl SqlStore {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...` and applies
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`SqlStore::connect`] with `options`.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url)?;
        let store = match dialect {
            Dialect::Sqlite => {
                let url = if url.contains("mode=") {
                    url.to_owned()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                let cache_kib = options.sqlite_cache_per_connection_kib();
                let options = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                sqlx::raw_sql(SQLITE_PRAGMAS).execute(&mut *conn).await?;
                                // A negative size is in KiB.
                                let cache = format!("PRAGMA cache_size = -{cache_kib}");
                                sqlx::raw_sql(sqlx::AssertSqlSafe(cache))
                                    .execute(conn)
                                    .await?;
                                Ok(())
                            })
                        })
                        // A COMMIT that fails (the disk full) makes SQLite roll the
                        // transaction back itself; sqlx's ROLLBACK then fails and the
                        // connection still counts a transaction open. Used again, its next
                        // transaction begins with a SAVEPOINT and, after one rollback,
                        // stays open for good: every later write answered as committed
                        // and never written. Such a connection is closed, not reused.
                        .before_acquire(|conn, _| {
                            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
                        })
                };
                let write = options().max_connections(1).connect(&url).await?;
                dialect.migrator().run(&write).await?;
                let read = options()
                    .max_connections(SQLITE_READERS)
                    .connect(&url)
                    .await?;
                SqlStore {
                    read,
                    write,
                    dialect,
                }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                dialect.migrator().run(&pool).await?;
                SqlStore {
                    read: pool.clone(),
                    write: pool,
                    dialect,
                }
            }
        };
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Writes a consistent copy of an SQLite database to `path` while it is in use
    /// (`VACUUM INTO`: an online backup). PostgreSQL is backed up with `pg_dump`.
    pub async fn backup_sqlite_into(&self, path: &std::path::Path) -> Result<()> {
        if self.dialect != Dialect::Sqlite {
            return Err(StoreError::Conflict(
                "an online file copy is SQLite's; back PostgreSQL up with pg_dump".into(),
            ));
        }
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Conflict(format!("{} is not UTF-8", path.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Whether the database at `url` holds no table yet (in PostgreSQL, in its current
    /// schema), checked without creating or migrating anything. A SQLite file that does
    /// not exist is empty.
    pub async fn is_empty_database(url: &str) -> Result<bool> {
        sqlx::any::install_default_drivers();
        let sql = match Dialect::of_url(url)? {
            Dialect::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                if !std::path::Path::new(path).exists() {
                    return Ok(true);
                }
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let tables: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await?;
        pool.close().await;
        Ok(tables == 0)
    }

    /// How the database would run a search: SQLite's `EXPLAIN QUERY PLAN` or PostgreSQL's
    /// `EXPLAIN`, one line per step. For diagnosing slow searches.
    pub async fn explain_search(&self, query: &SearchQuery) -> Result<Vec<String>> {
        let plan = search::plan(self.dialect, query);
        let sql = match self.dialect {
            Dialect::Sqlite => format!("EXPLAIN QUERY PLAN {}", plan.sql),
            Dialect::Postgres => format!("EXPLAIN {}", plan.sql),
        };
        let rows = plan
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.read)
            .await?;
        let column = match self.dialect {
            Dialect::Sqlite => "detail",
            Dialect::Postgres => "QUERY PLAN",
        };
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(column)?))
            .collect()
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn audit(
        tx: &mut Transaction<'static, Any>,
        actor: &str,
        action: agora_core::audit::AuditAction,
        target: &str,
        detail: Option<String>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_events (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(now_ms())
            .bind(actor)
            .bind(action.as_str())
            .bind(target)
            .bind(detail)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Begins a transaction that will append to the transparency log. The log's lock is
    /// its first step, before any row is touched: every appending transaction takes its
    /// locks in the same order (log, then rows), so two of them never deadlock. (On
    /// PostgreSQL a table lock; SQLite has one writer anyway.)
    async fn begin_logged(&self, logged: bool) -> Result<Transaction<'static, Any>> {
        let mut tx = self.write.begin().await?;
        if logged && self.dialect == Dialect::Postgres {
            sqlx::query("LOCK TABLE log_entries IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Appends the entry `writer` builds to the transparency log inside `tx` (begun with
    /// [`SqlStore::begin_logged`]); returns its index and record. Indexes are dense.
    async fn append_log(
        tx: &mut Transaction<'static, Any>,
        writer: &LogWriter,
        publisher_id: i64,
        plugin: Option<(i64, bool)>,
    ) -> Result<(i64, LogRecord)> {
        let row = sqlx::query("SELECT key_head_index, key_head_leaf FROM publishers WHERE id = $1")
            .bind(publisher_id)
            .fetch_one(&mut **tx)
            .await?;
        let key_head = match (
            row.try_get::<Option<i64>, _>("key_head_index")?,
            row.try_get::<Option<String>, _>("key_head_leaf")?,
        ) {
            (Some(i), Some(leaf)) => Some((i, leaf)),
            _ => None,
        };
        Self::append_entry(
            tx,
            writer,
            key_head,
            plugin.is_some_and(|(_, private)| private),
            plugin.map(|(id, _)| id),
        )
        .await
    }

    /// Appends the entry `writer` builds from the next index, `key_head` and `private`
    /// inside `tx` (begun with [`SqlStore::begin_logged`]), stored under `plugin_id` (whose
    /// readers get its opening); returns its index and record.
    async fn append_entry(
        tx: &mut Transaction<'static, Any>,
        writer: &LogWriter,
        key_head: Option<(i64, String)>,
        private: bool,
        plugin_id: Option<i64>,
    ) -> Result<(i64, LogRecord)> {
        let index: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries")
            .fetch_one(&mut **tx)
            .await?;
        let record = writer.write(&LogContext {
            index,
            key_head,
            private,
        });
        sqlx::query(
            "INSERT INTO log_entries (idx, body, created_at, opening, plugin_id, leaf) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(index)
        .bind(&record.body)
        .bind(now_ms())
        .bind(record.opening.as_deref())
        .bind(plugin_id)
        .bind(&record.leaf)
        .execute(&mut **tx)
        .await?;
        Ok((index, record))
    }

    /// Makes a key event the head of its publisher's key history.
    async fn set_key_head(
        tx: &mut Transaction<'static, Any>,
        publisher_id: i64,
        index: i64,
        leaf: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE publishers SET key_head_index = $1, key_head_leaf = $2 WHERE id = $3")
            .bind(index)
            .bind(leaf)
            .bind(publisher_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Whether the plugin is private, read inside `tx`.
    async fn is_private(tx: &mut Transaction<'static, Any>, plugin_id: i64) -> Result<bool> {
        let visibility: String = sqlx::query_scalar("SELECT visibility FROM plugins WHERE id = $1")
            .bind(plugin_id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(visibility == Visibility::Private.as_str())
    }

    /// Runs a transaction again when PostgreSQL reports it lost a race (serialization
    /// failure or deadlock): such a loss is a retry, never an error the caller sees, unless
    /// it keeps happening.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        const ATTEMPTS: u32 = 6;
        let mut delay = Duration::from_millis(5);
        let mut n = 1;
        loop {
            match attempt().await {
                Err(e) if e.is_retryable() && n < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt = n, "retrying a transaction that lost a race");
                    let mut jitter = [0u8; 1];
                    let _ = getrandom::fill(&mut jitter);
                    tokio::time::sleep(delay + Duration::from_millis(u64::from(jitter[0] % 16)))
                        .await;
                    delay *= 2;
                    n += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl MetadataStore for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection, readers and writer alike, holds its share of the store's page
    /// cache and no more: the cache of the whole store is bounded by design.
    #[tokio::test]
    async fn each_sqlite_connection_holds_its_share_of_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("agora.db").display());
        let options = StoreOptions {
            sqlite_cache_kib: 9 * 2048,
        };
        let store = SqlStore::connect_with(&url, options).await.unwrap();
        // The writer, then every reader at once (so each is a connection of its own).
        let mut held = vec![store.write.acquire().await.unwrap()];
        for _ in 0..SQLITE_READERS {
            held.push(store.read.acquire().await.unwrap());
        }
        for conn in &mut held {
            let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(size, -2048);
        }
        drop(held);
        // A tiny total still leaves each connection 1 MiB.
        assert_eq!(
            StoreOptions {
                sqlite_cache_kib: 1024
            }
            .sqlite_cache_per_connection_kib(),
            1024
        );
        store.close().await;
    }

    /// The module's rule, enforced: a statement with `RETURNING` is never read with
    /// `fetch_one`/`fetch_optional` straight from a pool (autocommit). sqlx stops such a
    /// statement after the row asked for, and on SQLite the commit that follows fails
    /// silently: a job claim on a full disk came back as claimed though it was never
    /// written. Inside a transaction (`&mut *tx`) the commit is checked, so those are fine.
    #[test]
    fn returning_statements_outside_a_transaction_are_read_to_their_end() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sql");
        let mut checked = 0;
        let mut offenders = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                if !line.contains("RETURNING") || line.trim_start().starts_with("//") {
                    continue;
                }
                // The first read of the statement, within the lines that follow it.
                let Some(read) = lines[n..lines.len().min(n + 30)]
                    .iter()
                    .find(|l| l.contains(".fetch_") || l.contains(".execute("))
                else {
                    continue;
                };
                checked += 1;
                let from_pool = read.contains("(&self.write)") || read.contains("(&self.read)");
                let stops_early = read.contains("fetch_one(") || read.contains("fetch_optional(");
                if from_pool && stops_early {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, read.trim()));
                }
            }
        }
        assert!(
            checked >= 10,
            "the scan found only {checked} RETURNING statements"
        );
        assert!(
            offenders.is_empty(),
            "read these with fetch_all (see the module's notes): {offenders:#?}"
        );
    }
}
