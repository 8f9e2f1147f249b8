//! [`SqlStore`]: the metadata store on SQLite or PostgreSQL through `sqlx::Any`.
//!
//! Queries are written once in the SQL both engines accept (`$N` placeholders, `ON
//! CONFLICT`, `RETURNING`); what differs (schema DDL, full-text search) is chosen by
//! [`Dialect`]. On SQLite all writes go through a pool of one connection, so writers queue
//! instead of failing with "database is locked"; reads use their own pool (WAL mode).

mod rows;
mod search;

use std::borrow::Cow;
use std::time::Duration;

use agora_core::{Digest, Lifecycle, Manifest, Visibility};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Row, SqlStr, Transaction};

use crate::metadata::*;
use crate::{StoreError, now_ms};
use rows::*;

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
        let files: [(i64, &'static str, &'static str); 6] = match self {
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

/// How long a revoked token stays listed (as history) before it is deleted.
const REVOKED_TOKENS_KEPT_MS: i64 = 30 * 24 * 3600 * 1000;

/// The SQL metadata store.
#[derive(Clone)]
pub struct SqlStore {
    read: AnyPool,
    write: AnyPool,
    dialect: Dialect,
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA cache_size = -32000;";

impl SqlStore {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...` and applies
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<SqlStore> {
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
                let options = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                                Ok(())
                            })
                        })
                };
                let write = options().max_connections(1).connect(&url).await?;
                dialect.migrator().run(&write).await?;
                let read = options().max_connections(8).connect(&url).await?;
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
        action: &str,
        target: &str,
        detail: Option<String>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_events (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(now_ms())
            .bind(actor)
            .bind(action)
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
        let index: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries")
            .fetch_one(&mut **tx)
            .await?;
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
        let record = writer.write(&LogContext {
            index,
            key_head,
            private: plugin.is_some_and(|(_, private)| private),
        });
        sqlx::query(
            "INSERT INTO log_entries (idx, body, created_at, opening, plugin_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(index)
        .bind(&record.body)
        .bind(now_ms())
        .bind(record.opening.as_deref())
        .bind(plugin.map(|(id, _)| id))
        .execute(&mut **tx)
        .await?;
        Ok((index, record))
    }

    /// Locks a publisher's row for a membership change (PostgreSQL; SQLite has one writer),
    /// so two concurrent demotions cannot both see the other owner; returns its name.
    async fn lock_publisher(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: i64,
    ) -> Result<String> {
        let sql = match self.dialect {
            Dialect::Postgres => "SELECT name FROM publishers WHERE id = $1 FOR UPDATE",
            Dialect::Sqlite => "SELECT name FROM publishers WHERE id = $1",
        };
        sqlx::query_scalar(sql)
            .bind(publisher_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("publisher id {publisher_id}")))
    }

    /// Refuses a membership change that leaves the publisher without an owner.
    async fn keep_an_owner(
        tx: &mut Transaction<'static, Any>,
        publisher_id: i64,
        name: &str,
    ) -> Result<()> {
        let owners: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM publisher_members WHERE publisher_id = $1 AND role = 'owner'",
        )
        .bind(publisher_id)
        .fetch_one(&mut **tx)
        .await?;
        if owners == 0 {
            return Err(StoreError::Conflict(format!(
                "publisher {name} must keep at least one owner; make another member an owner first"
            )));
        }
        Ok(())
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

    /// Recomputes a plugin's listing fields and labels from its latest resolvable version.
    async fn refresh_plugin(
        tx: &mut Transaction<'static, Any>,
        plugin_id: i64,
        now: i64,
    ) -> Result<()> {
        let rows = sqlx::query("SELECT id, version, state FROM versions WHERE plugin_id = $1")
            .bind(plugin_id)
            .fetch_all(&mut **tx)
            .await?;
        let mut candidates = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let version = parse_version(&row.try_get::<String, _>("version")?)?;
            let state = parse_state(&row.try_get::<String, _>("state")?)?;
            candidates.push((id, version, state));
        }
        let latest = pick_latest(&candidates);
        // Listing fields come from the latest resolvable version, else from the newest one.
        let source = latest.or_else(|| {
            candidates
                .iter()
                .filter(|(_, _, s)| *s != Lifecycle::Removed)
                .max_by(|a, b| a.1.cmp(&b.1))
                .map(|c| c.0)
        });
        let latest_version = latest
            .and_then(|id| candidates.iter().find(|c| c.0 == id))
            .map(|c| c.1.to_string());
        let Some(source) = source else {
            sqlx::query("UPDATE plugins SET latest_version = NULL, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(plugin_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM plugin_labels WHERE plugin_id = $1")
                .bind(plugin_id)
                .execute(&mut **tx)
                .await?;
            return Ok(());
        };
        let manifest_json: String =
            sqlx::query_scalar("SELECT manifest FROM versions WHERE id = $1")
                .bind(source)
                .fetch_one(&mut **tx)
                .await?;
        let m: Manifest = serde_json::from_str(&manifest_json)
            .map_err(|e| StoreError::Corrupt(format!("manifest of version row {source}: {e}")))?;
        let keywords = m
            .tags
            .iter()
            .chain(&m.categories)
            .chain(m.provider.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        sqlx::query(
            "UPDATE plugins SET display_name = $1, description = $2, provider = $3, runtime = $4, \
             keywords = $5, latest_version = $6, updated_at = $7, min_core_key = $8 WHERE id = $9",
        )
        .bind(m.title())
        .bind(&m.description)
        .bind(m.provider.as_deref())
        .bind(m.runtime.kind.as_str())
        .bind(&keywords)
        .bind(latest_version)
        .bind(now)
        .bind(
            m.compatibility
                .min_core
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok())
                .map(|v| version_key(&v)),
        )
        .bind(plugin_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM plugin_labels WHERE plugin_id = $1")
            .bind(plugin_id)
            .execute(&mut **tx)
            .await?;
        let labels = m
            .tags
            .iter()
            .map(|v| ("tag", v))
            .chain(m.categories.iter().map(|v| ("category", v)))
            .chain(m.capabilities.iter().map(|v| ("capability", v)));
        for (kind, value) in labels {
            sqlx::query("INSERT INTO plugin_labels (plugin_id, kind, value) VALUES ($1, $2, $3)")
                .bind(plugin_id)
                .bind(kind)
                .bind(value)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Recomputes a plugin's rating from its visible reviews; returns `publisher/name`.
    async fn refresh_rating(tx: &mut Transaction<'static, Any>, plugin_id: i64) -> Result<String> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(rating), 0) AS BIGINT) AS total \
             FROM reviews WHERE plugin_id = $1 AND hidden_at IS NULL",
        )
        .bind(plugin_id)
        .fetch_one(&mut **tx)
        .await?;
        let (count, sum): (i64, i64) = (row.try_get("n")?, row.try_get("total")?);
        let row = sqlx::query(
            "UPDATE plugins SET rating_count = $1, rating_sum = $2, rating_rank = $3 WHERE id = $4 \
             RETURNING publisher, name",
        )
        .bind(count)
        .bind(sum)
        .bind(rating_rank(count, sum))
        .bind(plugin_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(format!(
            "{}/{}",
            row.try_get::<String, _>("publisher")?,
            row.try_get::<String, _>("name")?
        ))
    }

    async fn load_labels(&self, plugins: &mut [PluginRecord]) -> Result<()> {
        if plugins.is_empty() {
            return Ok(());
        }
        let placeholders = (1..=plugins.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT plugin_id, kind, value FROM plugin_labels WHERE plugin_id IN ({placeholders}) ORDER BY value"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in plugins.iter() {
            query = query.bind(p.id);
        }
        for row in query.fetch_all(&self.read).await? {
            let id: i64 = row.try_get("plugin_id")?;
            let kind: String = row.try_get("kind")?;
            let value: String = row.try_get("value")?;
            if let Some(p) = plugins.iter_mut().find(|p| p.id == id) {
                match kind.as_str() {
                    "tag" => p.tags.push(value),
                    "category" => p.categories.push(value),
                    _ => p.capabilities.push(value),
                }
            }
        }
        Ok(())
    }

    async fn add_key_once(
        &self,
        publisher_id: i64,
        key: &KeyRecord,
        log_entry: Option<&LogWriter>,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_logged(log_entry.is_some()).await?;
        let name: String = sqlx::query_scalar("SELECT name FROM publishers WHERE id = $1")
            .bind(publisher_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO publisher_keys (publisher_id, id, algorithm, public_key, comment, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(publisher_id)
        .bind(&key.id)
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(key.comment.as_deref())
        .bind(key.created_at)
        .bind(&key.created_by)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, || format!("publisher {name} already has key {}", key.id)))?;
        Self::audit(
            &mut tx,
            &key.created_by,
            "key.add",
            &name,
            Some(key.id.clone()),
        )
        .await?;
        let mut index = None;
        if let Some(writer) = log_entry {
            let (idx, record) = Self::append_log(&mut tx, writer, publisher_id, None).await?;
            sqlx::query(
                "UPDATE publisher_keys SET log_index = $1 WHERE publisher_id = $2 AND id = $3",
            )
            .bind(idx)
            .bind(publisher_id)
            .bind(&key.id)
            .execute(&mut *tx)
            .await?;
            Self::set_key_head(&mut tx, publisher_id, idx, &record.leaf).await?;
            index = Some(idx);
        }
        tx.commit().await?;
        Ok(index)
    }

    /// One attempt at [`MetadataStore::publish`]; returns the new version's id.
    async fn publish_once(&self, release: &NewRelease) -> Result<i64> {
        let m = &release.manifest;
        let target = format!("{}/{}@{}", m.publisher, m.name, m.version);
        let now = now_ms();
        let manifest_json =
            serde_json::to_string(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin_logged(release.log_entry.is_some()).await?;
        // The signature was checked against the keys before this transaction; a key
        // revoked since (the log's lock orders this after the revocation) vouches for
        // nothing.
        if let Some(signer) = &release.signer_key {
            let revoked: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT revoked_at FROM publisher_keys WHERE publisher_id = $1 AND id = $2",
            )
            .bind(release.publisher_id)
            .bind(signer)
            .fetch_optional(&mut *tx)
            .await?;
            if !matches!(revoked, Some(None)) {
                return Err(StoreError::Conflict(format!(
                    "key {signer} is not an active key of {}: it was revoked while the release was being checked; sign with an active key",
                    m.publisher
                )));
            }
        }
        sqlx::query(
            "INSERT INTO plugins (publisher_id, publisher, name, visibility, display_name, description, \
             provider, runtime, keywords, created_at, updated_at, verified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', $9, $9, \
             (SELECT CASE WHEN verified_at IS NULL THEN 0 ELSE 1 END FROM publishers WHERE id = $1)) \
             ON CONFLICT (publisher_id, name) DO NOTHING",
        )
        .bind(release.publisher_id)
        .bind(m.publisher.as_str())
        .bind(m.name.as_str())
        .bind(m.visibility.as_str())
        .bind(m.title())
        .bind(&m.description)
        .bind(m.provider.as_deref())
        .bind(m.runtime.kind.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let plugin_id: i64 =
            sqlx::query_scalar("SELECT id FROM plugins WHERE publisher_id = $1 AND name = $2")
                .bind(release.publisher_id)
                .bind(m.name.as_str())
                .fetch_one(&mut *tx)
                .await?;
        // A later release can make a plugin private, never silently public again.
        if m.visibility == Visibility::Private {
            sqlx::query("UPDATE plugins SET visibility = 'private' WHERE id = $1")
                .bind(plugin_id)
                .execute(&mut *tx)
                .await?;
        }
        let version_id: i64 = sqlx::query_scalar(
            "INSERT INTO versions (plugin_id, version, manifest, manifest_digest, signature, signer_key, state, \
             published_at, published_by) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8) RETURNING id",
        )
        .bind(plugin_id)
        .bind(m.version.to_string())
        .bind(&manifest_json)
        .bind(release.manifest_digest.to_string())
        .bind(release.signature.as_deref())
        .bind(release.signer_key.as_deref())
        .bind(now)
        .bind(release.published_by)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, || format!("{target} is already published; a published version never changes, publish a new version instead")))?;
        for a in &release.artifacts {
            sqlx::query("INSERT INTO artifacts (version_id, path, role, digest, size) VALUES ($1, $2, $3, $4, $5)")
                .bind(version_id)
                .bind(&a.path)
                .bind(a.role.as_str())
                .bind(a.digest.to_string())
                .bind(a.size)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(writer) = &release.log_entry {
            let private = Self::is_private(&mut tx, plugin_id).await?;
            let (idx, _) = Self::append_log(
                &mut tx,
                writer,
                release.publisher_id,
                Some((plugin_id, private)),
            )
            .await?;
            sqlx::query("UPDATE versions SET log_index = $1 WHERE id = $2")
                .bind(idx)
                .bind(version_id)
                .execute(&mut *tx)
                .await?;
        }
        for (dependency, requirement) in &m.dependencies {
            sqlx::query("INSERT INTO dependencies (version_id, dependency, requirement) VALUES ($1, $2, $3)")
                .bind(version_id)
                .bind(dependency)
                .bind(requirement)
                .execute(&mut *tx)
                .await?;
        }
        Self::refresh_plugin(&mut tx, plugin_id, now).await?;
        Self::audit(
            &mut tx,
            &release.actor,
            "version.publish",
            &target,
            Some(release.manifest_digest.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(version_id)
    }

    /// One attempt at [`MetadataStore::set_lifecycle`]; returns the orphaned digests.
    async fn set_lifecycle_once(&self, change: &LifecycleChange) -> Result<Vec<Digest>> {
        let now = now_ms();
        let mut tx = self.begin_logged(change.log_entry.is_some()).await?;
        let row = sqlx::query("SELECT v.plugin_id, v.version, p.publisher, p.name, p.publisher_id FROM versions v JOIN plugins p ON p.id = v.plugin_id WHERE v.id = $1")
            .bind(change.version_id)
            .fetch_one(&mut *tx)
            .await?;
        let plugin_id: i64 = row.try_get("plugin_id")?;
        let publisher_id: i64 = row.try_get("publisher_id")?;
        let target = format!(
            "{}/{}@{}",
            row.try_get::<String, _>("publisher")?,
            row.try_get::<String, _>("name")?,
            row.try_get::<String, _>("version")?
        );
        sqlx::query(
            "UPDATE versions SET state = $1, state_reason = $2, replacement = $3 WHERE id = $4",
        )
        .bind(change.state.as_str())
        .bind(change.reason.as_deref())
        .bind(change.replacement.as_deref())
        .bind(change.version_id)
        .execute(&mut *tx)
        .await?;
        let mut orphaned = Vec::new();
        if change.state == Lifecycle::Removed {
            let rows = sqlx::query(
                "SELECT DISTINCT a.digest FROM artifacts a WHERE a.version_id = $1 AND NOT EXISTS ( \
                 SELECT 1 FROM artifacts b JOIN versions v ON v.id = b.version_id \
                 WHERE b.digest = a.digest AND v.state <> 'removed')",
            )
            .bind(change.version_id)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let digest: String = row.try_get("digest")?;
                sqlx::query("DELETE FROM blob_uploaders WHERE digest = $1")
                    .bind(&digest)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM blobs WHERE digest = $1")
                    .bind(&digest)
                    .execute(&mut *tx)
                    .await?;
                orphaned.push(parse_digest(&digest)?);
            }
        }
        Self::refresh_plugin(&mut tx, plugin_id, now).await?;
        if let Some(writer) = &change.log_entry {
            let private = Self::is_private(&mut tx, plugin_id).await?;
            Self::append_log(&mut tx, writer, publisher_id, Some((plugin_id, private))).await?;
        }
        let detail = serde_json::json!({ "state": change.state, "reason": change.reason, "replacement": change.replacement });
        Self::audit(
            &mut tx,
            &change.actor,
            "version.lifecycle",
            &target,
            Some(detail.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(orphaned)
    }

    async fn version_by_id(&self, id: i64) -> Result<VersionRecord> {
        let row = sqlx::query(version_select("v.id = $1"))
            .bind(id)
            .fetch_one(&self.write)
            .await?;
        version_from_row(&row)
    }
}

fn version_select(condition: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "SELECT v.id, v.plugin_id, v.version, v.manifest, v.manifest_digest, v.signature, v.state, \
         v.state_reason, v.replacement, v.downloads, v.published_at, u.username AS published_by, v.signer_key, v.log_index \
         FROM versions v JOIN users u ON u.id = v.published_by WHERE {condition}"
    ))
}

/// The newest version resolution may choose: stable releases before pre-releases.
fn pick_latest(candidates: &[(i64, semver::Version, Lifecycle)]) -> Option<i64> {
    let resolvable = || candidates.iter().filter(|c| c.2.resolvable());
    resolvable()
        .filter(|c| c.1.pre.is_empty())
        .max_by(|a, b| a.1.cmp(&b.1))
        .or_else(|| resolvable().max_by(|a, b| a.1.cmp(&b.1)))
        .map(|c| c.0)
}

#[async_trait]
impl MetadataStore for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn create_user(&self, username: &str, role: Role) -> Result<UserRecord> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, role, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(username)
        .bind(role.as_str())
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| {
            StoreError::conflict_on_unique(e, || format!("user {username} already exists"))
        })?;
        Ok(UserRecord {
            id,
            username: username.to_owned(),
            role,
            created_at: now,
        })
    }

    async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>> {
        let row = sqlx::query(
            "SELECT id, username, role, created_at, password_hash FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    async fn set_password(&self, user_id: i64, hash: Option<&str>, actor: &str) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING username",
        )
        .bind(hash)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user id {user_id}")))?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let action = if hash.is_some() {
            "user.password.set"
        } else {
            "user.password.clear"
        };
        Self::audit(&mut tx, actor, action, &name, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_ms();
        // Expired sessions go when new ones come, so the table never grows without bound.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.write)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<(SessionRecord, UserRecord)>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.csrf, s.created_at AS session_created_at, s.expires_at, \
             u.id, u.username, u.role, u.created_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok((
                SessionRecord {
                    user_id: row.try_get("user_id")?,
                    csrf: row.try_get("csrf")?,
                    created_at: row.try_get("session_created_at")?,
                    expires_at: row.try_get("expires_at")?,
                },
                user_from_row(&row)?,
            ))
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row =
            sqlx::query("SELECT id, username, role, created_at FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows =
            sqlx::query("SELECT id, username, role, created_at FROM users ORDER BY username")
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        let now = now_ms();
        // Tokens revoked long ago go when new ones come, so creating and revoking in a loop
        // cannot grow the table. (A token's descendants are revoked no later than it is,
        // so none outlives its parent's row.)
        sqlx::query(
            "DELETE FROM tokens WHERE user_id = $1 AND revoked_at IS NOT NULL AND revoked_at < $2",
        )
        .bind(token.user_id)
        .bind(now - REVOKED_TOKENS_KEPT_MS)
        .execute(&self.write)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (user_id, name, hash, prefix, scopes, created_at, expires_at, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.hash)
        .bind(&token.prefix)
        .bind(&token.scopes)
        .bind(now)
        .bind(token.expires_at)
        .bind(token.parent_id)
        .fetch_one(&self.write)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, || "token already exists".into()))?;
        let row = sqlx::query(token_select("t.id = $1"))
            .bind(id)
            .fetch_one(&self.write)
            .await?;
        token_from_row(&row)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenRecord, UserRecord)>> {
        let Some(row) = sqlx::query(token_select("t.hash = $1"))
            .bind(hash)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let user = UserRecord {
            id: token.user_id,
            username: token.username.clone(),
            role: Role::parse(&row.try_get::<String, _>("user_role")?)
                .ok_or_else(|| StoreError::Corrupt("unknown user role".into()))?,
            created_at: row.try_get("user_created_at")?,
        };
        Ok(Some((token, user)))
    }

    async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenRecord>> {
        let rows = match user_id {
            Some(uid) => {
                sqlx::query(token_select("t.user_id = $1 ORDER BY t.id"))
                    .bind(uid)
                    .fetch_all(&self.read)
                    .await?
            }
            None => {
                sqlx::query(token_select("1 = 1 ORDER BY t.id"))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: i64, owner: Option<i64>, at: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let result = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             AND ($3 = 0 OR user_id = $4)",
        )
        .bind(at)
        .bind(id)
        .bind(i64::from(owner.is_some()))
        .bind(owner.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        // What it minted, and what those minted: a child never outlives its parent.
        sqlx::query(
            "WITH RECURSIVE minted (id) AS ( \
                SELECT id FROM tokens WHERE parent_id = $1 \
                UNION SELECT t.id FROM tokens t JOIN minted m ON t.parent_id = m.id) \
             UPDATE tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND id IN (SELECT id FROM minted)",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn touch_token(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn create_publisher(
        &self,
        name: &str,
        display_name: Option<&str>,
        owner: &UserRecord,
    ) -> Result<PublisherRecord> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO publishers (name, display_name, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(display_name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, || format!("publisher {name} already exists")))?;
        sqlx::query(
            "INSERT INTO publisher_members (publisher_id, user_id, role) VALUES ($1, $2, 'owner')",
        )
        .bind(id)
        .bind(owner.id)
        .execute(&mut *tx)
        .await?;
        Self::audit(&mut tx, &owner.username, "publisher.create", name, None).await?;
        tx.commit().await?;
        Ok(PublisherRecord {
            id,
            name: name.to_owned(),
            display_name: display_name.map(str::to_owned),
            created_at: now,
            verified_at: None,
            email: None,
            url: None,
        })
    }

    async fn set_publisher_verified(
        &self,
        publisher_id: i64,
        verified: bool,
        actor: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE publishers SET verified_at = $1 WHERE id = $2 RETURNING name",
        )
        .bind(verified.then_some(now))
        .bind(publisher_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher id {publisher_id}")))?;
        sqlx::query("UPDATE plugins SET verified = $1 WHERE publisher_id = $2")
            .bind(i64::from(verified))
            .bind(publisher_id)
            .execute(&mut *tx)
            .await?;
        let action = if verified {
            "publisher.verify"
        } else {
            "publisher.unverify"
        };
        Self::audit(&mut tx, actor, action, &name, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_publisher_contacts(
        &self,
        publisher_id: i64,
        email: Option<&str>,
        url: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE publishers SET email = $1, url = $2 WHERE id = $3 RETURNING name",
        )
        .bind(email)
        .bind(url)
        .bind(publisher_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher id {publisher_id}")))?;
        let detail = format!("email={} url={}", email.unwrap_or("-"), url.unwrap_or("-"));
        Self::audit(&mut tx, actor, "publisher.contacts", &name, Some(detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn publisher_by_name(&self, name: &str) -> Result<Option<PublisherRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PUBLISHER_COLUMNS} FROM publishers WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(publisher_from_row).transpose()
    }

    async fn list_publishers(&self) -> Result<Vec<PublisherRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PUBLISHER_COLUMNS} FROM publishers ORDER BY name LIMIT 1000"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(publisher_from_row).collect()
    }

    async fn members(&self, publisher_id: i64) -> Result<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT u.username, m.role FROM publisher_members m JOIN users u ON u.id = m.user_id \
             WHERE m.publisher_id = $1 ORDER BY u.username",
        )
        .bind(publisher_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemberRecord {
                    username: r.try_get("username")?,
                    role: r.try_get("role")?,
                })
            })
            .collect()
    }

    async fn add_member(
        &self,
        publisher_id: i64,
        user: &UserRecord,
        role: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        sqlx::query(
            "INSERT INTO publisher_members (publisher_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (publisher_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(publisher_id)
        .bind(user.id)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        Self::keep_an_owner(&mut tx, publisher_id, &name).await?;
        Self::audit(
            &mut tx,
            actor,
            "publisher.add_member",
            &name,
            Some(format!("{} as {role}", user.username)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn change_member(
        &self,
        publisher_id: i64,
        username: &str,
        change: MemberChange<'_>,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        let user_id: Option<i64> = sqlx::query_scalar(
            "SELECT m.user_id FROM publisher_members m JOIN users u ON u.id = m.user_id \
             WHERE m.publisher_id = $1 AND u.username = $2",
        )
        .bind(publisher_id)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user_id) = user_id else {
            return Ok(false);
        };
        let (action, detail) = match change {
            MemberChange::Role(role) => {
                sqlx::query(
                    "UPDATE publisher_members SET role = $1 WHERE publisher_id = $2 AND user_id = $3",
                )
                .bind(role)
                .bind(publisher_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                ("publisher.member_role", format!("{username} as {role}"))
            }
            MemberChange::Remove => {
                sqlx::query(
                    "DELETE FROM publisher_members WHERE publisher_id = $1 AND user_id = $2",
                )
                .bind(publisher_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                ("publisher.remove_member", username.to_owned())
            }
        };
        Self::keep_an_owner(&mut tx, publisher_id, &name).await?;
        Self::audit(&mut tx, actor, action, &name, Some(detail)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn invite_member(
        &self,
        invitation: &InvitationRecord,
        publisher_id: i64,
        max_pending: usize,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        // Expired invitations go when new ones come: the table stays bounded.
        sqlx::query("DELETE FROM publisher_invitations WHERE expires_at <= $1")
            .bind(invitation.created_at)
            .execute(&mut *tx)
            .await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM publisher_invitations WHERE publisher_id = $1 AND username <> $2",
        )
        .bind(publisher_id)
        .bind(&invitation.username)
        .fetch_one(&mut *tx)
        .await?;
        if pending as usize >= max_pending {
            return Err(StoreError::Conflict(format!(
                "publisher {name} has {pending} open invitations already (at most {max_pending}); withdraw some or wait until they expire"
            )));
        }
        sqlx::query(
            "INSERT INTO publisher_invitations (publisher_id, username, role, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (publisher_id, username) DO UPDATE SET \
             role = excluded.role, invited_by = excluded.invited_by, created_at = excluded.created_at, \
             expires_at = excluded.expires_at",
        )
        .bind(publisher_id)
        .bind(&invitation.username)
        .bind(&invitation.role)
        .bind(&invitation.invited_by)
        .bind(invitation.created_at)
        .bind(invitation.expires_at)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &invitation.invited_by,
            "publisher.invite",
            &name,
            Some(format!("{} as {}", invitation.username, invitation.role)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn invitations(
        &self,
        publisher_id: Option<i64>,
        username: Option<&str>,
    ) -> Result<Vec<InvitationRecord>> {
        let rows = sqlx::query(
            "SELECT p.name AS publisher, i.username, i.role, i.invited_by, i.created_at, i.expires_at \
             FROM publisher_invitations i JOIN publishers p ON p.id = i.publisher_id \
             WHERE i.expires_at > $1 AND ($2 = 0 OR i.publisher_id = $3) AND ($4 = 0 OR i.username = $5) \
             ORDER BY p.name, i.username LIMIT 1000",
        )
        .bind(now_ms())
        .bind(i64::from(publisher_id.is_some()))
        .bind(publisher_id.unwrap_or(0))
        .bind(i64::from(username.is_some()))
        .bind(username.unwrap_or(""))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InvitationRecord {
                    publisher: r.try_get("publisher")?,
                    username: r.try_get("username")?,
                    role: r.try_get("role")?,
                    invited_by: r.try_get("invited_by")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    async fn accept_invitation(
        &self,
        publisher_id: i64,
        user: &UserRecord,
    ) -> Result<Option<String>> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        let role: Option<String> = sqlx::query_scalar(
            "DELETE FROM publisher_invitations WHERE publisher_id = $1 AND username = $2 AND expires_at > $3 \
             RETURNING role",
        )
        .bind(publisher_id)
        .bind(&user.username)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(role) = role else {
            return Ok(None);
        };
        // Joining never demotes: an owner who accepts a member invitation stays an owner.
        sqlx::query(
            "INSERT INTO publisher_members (publisher_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (publisher_id, user_id) DO UPDATE SET role = CASE \
             WHEN publisher_members.role = 'owner' THEN 'owner' ELSE excluded.role END",
        )
        .bind(publisher_id)
        .bind(user.id)
        .bind(&role)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &user.username,
            "publisher.join",
            &name,
            Some(format!("{} as {role}", user.username)),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(role))
    }

    async fn cancel_invitation(
        &self,
        publisher_id: i64,
        username: &str,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        let done = sqlx::query(
            "DELETE FROM publisher_invitations WHERE publisher_id = $1 AND username = $2",
        )
        .bind(publisher_id)
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            Self::audit(
                &mut tx,
                actor,
                "publisher.uninvite",
                &name,
                Some(username.to_owned()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn memberships(&self, user_id: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name FROM publisher_members m JOIN publishers p ON p.id = m.publisher_id \
             WHERE m.user_id = $1 ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    async fn add_key(
        &self,
        publisher_id: i64,
        key: &KeyRecord,
        log_entry: Option<LogWriter>,
    ) -> Result<Option<i64>> {
        self.retrying(|| self.add_key_once(publisher_id, key, log_entry.as_ref()))
            .await
    }

    async fn keys(&self, publisher_id: i64) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT id, algorithm, public_key, comment, created_at, created_by, revoked_at, revoked_by, \
             revocation_reason, log_index, revoked_log_index FROM publisher_keys WHERE publisher_id = $1 ORDER BY created_at, id",
        )
        .bind(publisher_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(
        &self,
        publisher_id: i64,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        at: i64,
        log_entry: Option<LogWriter>,
    ) -> Result<bool> {
        self.retrying(|| async {
            let mut tx = self.begin_logged(log_entry.is_some()).await?;
            let result = sqlx::query(
            "UPDATE publisher_keys SET revoked_at = $1, revoked_by = $2, revocation_reason = $3 \
             WHERE publisher_id = $4 AND id = $5 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(actor)
        .bind(reason)
        .bind(publisher_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 1 {
            let name: String = sqlx::query_scalar("SELECT name FROM publishers WHERE id = $1")
                .bind(publisher_id)
                .fetch_one(&mut *tx)
                .await?;
            Self::audit(&mut tx, actor, "key.revoke", &name, Some(id.to_owned())).await?;
            if let Some(writer) = &log_entry {
                let (idx, record) = Self::append_log(&mut tx, writer, publisher_id, None).await?;
                sqlx::query("UPDATE publisher_keys SET revoked_log_index = $1 WHERE publisher_id = $2 AND id = $3")
                    .bind(idx)
                    .bind(publisher_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::set_key_head(&mut tx, publisher_id, idx, &record.leaf).await?;
            }
        }
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
        })
        .await
    }

    async fn log_entries(&self, from: i64, limit: u32) -> Result<Vec<LogRow>> {
        let rows = sqlx::query(
            "SELECT idx, body, opening, plugin_id FROM log_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogRow {
                    index: r.try_get("idx")?,
                    body: r.try_get("body")?,
                    opening: r.try_get("opening")?,
                    plugin_id: r.try_get("plugin_id")?,
                })
            })
            .collect()
    }

    async fn ensure_log_key(
        &self,
        origin: &str,
        signer_key: &str,
        verifier_key: &str,
    ) -> Result<(String, String, String)> {
        sqlx::query(
            "INSERT INTO log_key (id, origin, signer_key, verifier_key, created_at) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(origin)
        .bind(signer_key)
        .bind(verifier_key)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        let row = sqlx::query("SELECT origin, signer_key, verifier_key FROM log_key WHERE id = 1")
            .fetch_one(&self.write)
            .await?;
        Ok((
            row.try_get("origin")?,
            row.try_get("signer_key")?,
            row.try_get("verifier_key")?,
        ))
    }

    async fn plugin(&self, publisher: &str, name: &str) -> Result<Option<PluginRecord>> {
        let sql = format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p WHERE p.publisher = $1 AND p.name = $2"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(publisher)
            .bind(name)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let mut plugins = [plugin_from_row(&row)?];
        self.load_labels(&mut plugins).await?;
        let [plugin] = plugins;
        Ok(Some(plugin))
    }

    async fn visible_plugin(
        &self,
        publisher: &str,
        name: &str,
        viewer: &Viewer,
    ) -> Result<Option<PluginRecord>> {
        let mut sql = format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p WHERE p.publisher = $1 AND p.name = $2"
        );
        if !viewer.admin {
            sql.push_str(&search::visibility_condition(viewer, 3));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(publisher)
            .bind(name);
        if !viewer.admin {
            for id in &viewer.private_publishers {
                query = query.bind(*id);
            }
        }
        let Some(row) = query.fetch_optional(&self.read).await? else {
            return Ok(None);
        };
        let mut plugins = [plugin_from_row(&row)?];
        self.load_labels(&mut plugins).await?;
        let [plugin] = plugins;
        Ok(Some(plugin))
    }

    async fn plugin_visible_to(&self, plugin_id: i64, viewer: &Viewer) -> Result<bool> {
        let mut sql = String::from("SELECT 1 FROM plugins p WHERE p.id = $1");
        if !viewer.admin {
            sql.push_str(&search::visibility_condition(viewer, 2));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plugin_id);
        if !viewer.admin {
            for id in &viewer.private_publishers {
                query = query.bind(*id);
            }
        }
        Ok(query.fetch_optional(&self.read).await?.is_some())
    }

    async fn set_visibility(
        &self,
        plugin_id: i64,
        visibility: Visibility,
        actor: &str,
        log_entry: Option<LogWriter>,
    ) -> Result<()> {
        self.retrying(|| async {
            let mut tx = self.begin_logged(log_entry.is_some()).await?;
            let row = sqlx::query(
                "SELECT publisher_id, publisher || '/' || name AS target FROM plugins WHERE id = $1",
            )
            .bind(plugin_id)
            .fetch_one(&mut *tx)
            .await?;
            let target: String = row.try_get("target")?;
            let publisher_id: i64 = row.try_get("publisher_id")?;
            sqlx::query("UPDATE plugins SET visibility = $1, updated_at = $2 WHERE id = $3")
                .bind(visibility.as_str())
                .bind(now_ms())
                .bind(plugin_id)
                .execute(&mut *tx)
                .await?;
            if let Some(writer) = &log_entry {
                let private = visibility == Visibility::Private;
                Self::append_log(&mut tx, writer, publisher_id, Some((plugin_id, private))).await?;
            }
            Self::audit(
                &mut tx,
                actor,
                "plugin.visibility",
                &target,
                Some(visibility.as_str().into()),
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn versions(&self, plugin_id: i64) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(version_select("v.plugin_id = $1"))
            .bind(plugin_id)
            .fetch_all(&self.read)
            .await?;
        let mut versions = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
        versions.sort_by_cached_key(|v| std::cmp::Reverse(semver::Version::parse(&v.version).ok()));
        Ok(versions)
    }

    async fn version(&self, plugin_id: i64, version: &str) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(version_select("v.plugin_id = $1 AND v.version = $2"))
            .bind(plugin_id)
            .bind(version)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn artifacts(&self, version_id: i64) -> Result<Vec<ArtifactRecord>> {
        let rows = sqlx::query(
            "SELECT path, role, digest, size FROM artifacts WHERE version_id = $1 ORDER BY path",
        )
        .bind(version_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn publish(&self, release: NewRelease) -> Result<VersionRecord> {
        let version_id = self.retrying(|| self.publish_once(&release)).await?;
        self.version_by_id(version_id).await
    }

    async fn set_lifecycle(
        &self,
        change: LifecycleChange,
    ) -> Result<(VersionRecord, Vec<agora_core::Digest>)> {
        let orphaned = self.retrying(|| self.set_lifecycle_once(&change)).await?;
        Ok((self.version_by_id(change.version_id).await?, orphaned))
    }

    async fn catalog_stamp(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM audit_events")
                .fetch_one(&self.read)
                .await?,
        )
    }

    async fn facets(&self, query: &SearchQuery) -> Result<Facets> {
        search::facets(&self.read, self.dialect, query).await
    }

    async fn upsert_review(&self, review: NewReview) -> Result<ReviewRecord> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO reviews (plugin_id, user_id, version, rating, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (plugin_id, user_id) DO UPDATE SET version = excluded.version, \
             rating = excluded.rating, body = excluded.body, updated_at = excluded.updated_at \
             RETURNING id",
        )
        .bind(review.plugin_id)
        .bind(review.user_id)
        .bind(&review.version)
        .bind(review.rating)
        .bind(&review.body)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let target = Self::refresh_rating(&mut tx, review.plugin_id).await?;
        Self::audit(
            &mut tx,
            &review.actor,
            "review.write",
            &target,
            Some(format!(
                "review {id}, {} stars, version {}",
                review.rating, review.version
            )),
        )
        .await?;
        tx.commit().await?;
        self.review(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("review {id} vanished after writing")))
    }

    async fn reviews(
        &self,
        plugin_id: i64,
        include_hidden: bool,
        limit: u32,
    ) -> Result<Vec<ReviewRecord>> {
        let hidden = if include_hidden {
            ""
        } else {
            " AND r.hidden_at IS NULL"
        };
        let sql = format!(
            "{REVIEW_SELECT} WHERE r.plugin_id = $1{hidden} ORDER BY r.updated_at DESC, r.id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(plugin_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(review_from_row).collect()
    }

    async fn review_of(&self, plugin_id: i64, user_id: i64) -> Result<Option<ReviewRecord>> {
        let sql = format!("{REVIEW_SELECT} WHERE r.plugin_id = $1 AND r.user_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(plugin_id)
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(review_from_row).transpose()
    }

    async fn review(&self, id: i64) -> Result<Option<ReviewRecord>> {
        let sql = format!("{REVIEW_SELECT} WHERE r.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(review_from_row).transpose()
    }

    async fn hide_review(&self, id: i64, reason: Option<&str>, actor: &str) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let plugin_id: Option<i64> = sqlx::query_scalar(
            "UPDATE reviews SET hidden_at = $1, hidden_by = $2, hidden_reason = $3 WHERE id = $4 RETURNING plugin_id",
        )
        .bind(reason.map(|_| now_ms()))
        .bind(reason.map(|_| actor))
        .bind(reason)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(plugin_id) = plugin_id else {
            return Ok(false);
        };
        let target = Self::refresh_rating(&mut tx, plugin_id).await?;
        let (action, detail) = match reason {
            Some(reason) => ("review.hide", format!("review {id}: {reason}")),
            None => ("review.show", format!("review {id}")),
        };
        Self::audit(&mut tx, actor, action, &target, Some(detail)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchResult> {
        let mut result = search::run(&self.read, self.dialect, query).await?;
        self.load_labels(&mut result.plugins).await?;
        Ok(result)
    }

    async fn record_blob(&self, digest: &Digest, size: u64, uploaded_by: i64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO blobs (digest, size, uploaded_by, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING")
            .bind(digest.to_string())
            .bind(size as i64)
            .bind(uploaded_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO blob_uploaders (digest, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest, user_id) DO NOTHING")
            .bind(digest.to_string())
            .bind(uploaded_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn blob_uploaded_by(&self, digest: &Digest, user_id: i64) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM blobs b JOIN blob_uploaders u ON u.digest = b.digest \
             WHERE b.digest = $1 AND u.user_id = $2",
        )
        .bind(digest.to_string())
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(size.map(|s| s as u64))
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(size.map(|s| s as u64))
    }

    async fn blob_readable(&self, digest: &Digest, viewer: &Viewer) -> Result<bool> {
        let mut sql = String::from(
            "SELECT 1 FROM artifacts a JOIN versions v ON v.id = a.version_id JOIN plugins p ON p.id = v.plugin_id \
             WHERE a.digest = $1 AND v.state <> 'removed'",
        );
        if !viewer.admin {
            sql.push_str(&search::visibility_condition(viewer, 2));
        }
        sql.push_str(" LIMIT 1");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(digest.to_string());
        if !viewer.admin {
            for id in &viewer.private_publishers {
                q = q.bind(*id);
            }
        }
        Ok(q.fetch_optional(&self.read).await?.is_some())
    }

    async fn count_download(&self, digest: &Digest) -> Result<()> {
        // Most downloads are modules and binaries, which count nothing: look up on the read
        // pool, and take SQLite's single writer only when there is something to count.
        let version: Option<(i64, i64)> = sqlx::query(
            "SELECT v.id, v.plugin_id FROM artifacts a JOIN versions v ON v.id = a.version_id \
             WHERE a.digest = $1 AND a.role = 'manifest' LIMIT 1",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?
        .map(|r: AnyRow| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("plugin_id")?)))
        .transpose()?;
        let Some((version_id, plugin_id)) = version else {
            return Ok(());
        };
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE versions SET downloads = downloads + 1 WHERE id = $1")
            .bind(version_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE plugins SET downloads = downloads + 1 WHERE id = $1")
            .bind(plugin_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(
        &self,
        target_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        let pattern = format!(
            "{}%",
            target_prefix
                .unwrap_or("")
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_events WHERE target LIKE $1 ESCAPE '\\' \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(pattern)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
