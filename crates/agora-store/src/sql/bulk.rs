//! First releases of new plugins, loaded in bulk: how a catalog of a million plugins is
//! seeded in minutes, where a publish each (about twenty statements) takes hours. The
//! rows are the ones [`MetadataStore::publish`] writes for the same releases (a store
//! test compares every column on both engines); only the statements differ: a few
//! multi-row inserts per batch, all in one transaction.

use std::collections::HashMap;

use agora_core::Lifecycle;
use agora_core::audit::AuditAction;
use agora_core::listing::{self, Listing};
use sqlx::{Any, Row, Transaction};

use super::releases::placeholders;
use super::{BINDS_PER_STATEMENT, Dialect, SqlStore, search};
use crate::metadata::*;
use crate::{StoreError, now_ms};

/// A bound value of a generated multi-row insert.
enum Value {
    Int(i64),
    Text(String),
    Maybe(Option<String>),
}

impl SqlStore {
    /// Publishes `releases`, each the first version of a plugin not in the catalog yet,
    /// in one transaction: all of them or, on any error, none. Signed releases (whose key
    /// must be checked against revocation), releases the transparency log records and
    /// releases that queue jobs are refused: publish those one at a time. So is a plugin
    /// that exists already or appears twice. Returns how many versions were stored.
    pub async fn publish_bulk(&self, releases: &[NewRelease]) -> Result<usize> {
        if let Some(r) = releases
            .iter()
            .find(|r| r.signer_key.is_some() || r.log_entry.is_some() || !r.jobs.is_empty())
        {
            return Err(StoreError::Conflict(format!(
                "{}/{}@{} is signed, logged or queues jobs; bulk loading takes unsigned, \
                 unlogged releases only, publish it on its own",
                r.manifest.publisher, r.manifest.name, r.manifest.version
            )));
        }
        if releases.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let ids = self.insert_plugins(&mut tx, releases, now).await?;
        let versions = insert_versions(&mut tx, releases, &ids, now).await?;
        let mut artifacts = Vec::new();
        let mut dependencies = Vec::new();
        let mut labels = Vec::new();
        let mut audit = Vec::new();
        for (r, (plugin_id, version_id)) in releases.iter().zip(ids.iter().zip(&versions)) {
            for a in &r.artifacts {
                artifacts.push(vec![
                    Value::Int(*version_id),
                    Value::Text(a.path.clone()),
                    Value::Text(a.role.as_str().into()),
                    Value::Text(a.digest.to_string()),
                    Value::Int(a.size),
                ]);
            }
            for (dependency, requirement) in &r.manifest.dependencies {
                dependencies.push(vec![
                    Value::Int(*version_id),
                    Value::Text(dependency.clone()),
                    Value::Text(requirement.clone()),
                ]);
            }
            for (kind, value) in Listing::of(&r.manifest).labels {
                labels.push(vec![
                    Value::Int(*plugin_id),
                    Value::Text(kind.into()),
                    Value::Text(value),
                ]);
            }
            let m = &r.manifest;
            audit.push(vec![
                Value::Int(now),
                Value::Text(r.actor.clone()),
                Value::Text(AuditAction::VersionPublish.as_str().into()),
                Value::Text(format!("{}/{}@{}", m.publisher, m.name, m.version)),
                Value::Maybe(Some(r.manifest_digest.to_string())),
            ]);
        }
        let digests: Vec<_> = releases
            .iter()
            .flat_map(|r| r.artifacts.iter().map(|a| a.digest))
            .collect();
        super::gc::claim_blobs(&mut tx, &digests).await?;
        insert(
            &mut tx,
            "artifacts (version_id, path, role, digest, size)",
            artifacts,
            "",
        )
        .await?;
        insert(
            &mut tx,
            "dependencies (version_id, dependency, requirement)",
            dependencies,
            "",
        )
        .await?;
        insert(
            &mut tx,
            "plugin_labels (plugin_id, kind, value)",
            labels,
            "",
        )
        .await?;
        if self.dialect == Dialect::Postgres {
            // The label arrays, by the expression refresh_plugin uses; these rows only (a
            // concurrent publish's rows may sit between their ids).
            for batch in ids.chunks(BINDS_PER_STATEMENT) {
                let list = placeholders(batch.len());
                let update = format!(
                    "UPDATE plugins SET updated_at = updated_at{} WHERE id IN ({list})",
                    search::label_array_update(self.dialect, "plugins.id")
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(update));
                for id in batch {
                    query = query.bind(id);
                }
                query.execute(&mut *tx).await?;
            }
        }
        insert(
            &mut tx,
            "audit_events (at, actor, action, target, detail)",
            audit,
            "",
        )
        .await?;
        tx.commit().await?;
        Ok(versions.len())
    }

    /// Inserts one plugin row per release, listed from that release as refresh_plugin
    /// lists it; returns their ids in the releases' order.
    async fn insert_plugins(
        &self,
        tx: &mut Transaction<'static, Any>,
        releases: &[NewRelease],
        now: i64,
    ) -> Result<Vec<i64>> {
        let mut publishers: Vec<i64> = releases.iter().map(|r| r.publisher_id).collect();
        publishers.sort_unstable();
        publishers.dedup();
        let mut verified: HashMap<i64, bool> = HashMap::new();
        for batch in publishers.chunks(BINDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, verified_at FROM publishers WHERE id IN ({})",
                placeholders(batch.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in batch {
                query = query.bind(id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                verified.insert(
                    row.try_get("id")?,
                    row.try_get::<Option<i64>, _>("verified_at")?.is_some(),
                );
            }
        }
        let mut rows = Vec::with_capacity(releases.len());
        for r in releases {
            let m = &r.manifest;
            let listing = Listing::of(m);
            let candidates = [((), m.version.clone(), Lifecycle::Active)];
            let latest = listing::listed(&candidates)
                .0
                .map(|()| m.version.to_string());
            rows.push(vec![
                Value::Int(r.publisher_id),
                Value::Text(m.publisher.to_string()),
                Value::Text(m.name.to_string()),
                Value::Text(m.visibility.as_str().into()),
                Value::Text(listing.display_name),
                Value::Text(listing.description),
                Value::Maybe(listing.provider),
                Value::Text(listing.runtime.into()),
                Value::Text(listing.keywords),
                Value::Maybe(latest),
                Value::Int(now),
                Value::Int(now),
                Value::Int(i64::from(verified.get(&r.publisher_id) == Some(&true))),
                Value::Maybe(listing.min_core_key),
            ]);
        }
        let returned = insert(
            tx,
            "plugins (publisher_id, publisher, name, visibility, display_name, description, \
             provider, runtime, keywords, latest_version, created_at, updated_at, verified, min_core_key)",
            rows,
            " RETURNING id, publisher_id, name",
        )
        .await
        .map_err(|e| match e {
            StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                StoreError::Conflict(
                    "a plugin of the batch exists already or appears twice in it; bulk loading \
                     takes first releases of new plugins only"
                        .into(),
                )
            }
            e => e,
        })?;
        let by_name: HashMap<(i64, String), i64> = returned
            .iter()
            .map(|row| {
                Ok((
                    (row.try_get("publisher_id")?, row.try_get("name")?),
                    row.try_get("id")?,
                ))
            })
            .collect::<Result<_>>()?;
        releases
            .iter()
            .map(|r| {
                by_name
                    .get(&(r.publisher_id, r.manifest.name.to_string()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("no row for plugin {}", r.manifest.name))
                    })
            })
            .collect()
    }
}

/// Inserts one version row per release (of the plugin in `ids` at the same position);
/// returns their ids in the releases' order.
async fn insert_versions(
    tx: &mut Transaction<'static, Any>,
    releases: &[NewRelease],
    ids: &[i64],
    now: i64,
) -> Result<Vec<i64>> {
    let mut rows = Vec::with_capacity(releases.len());
    for (r, plugin_id) in releases.iter().zip(ids) {
        let manifest_json =
            serde_json::to_string(&r.manifest).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        rows.push(vec![
            Value::Int(*plugin_id),
            Value::Text(r.manifest.version.to_string()),
            Value::Text(manifest_json),
            Value::Text(r.manifest_digest.to_string()),
            Value::Maybe(r.signature.clone()),
            Value::Maybe(r.signer_key.clone()),
            Value::Text("active".into()),
            Value::Int(now),
            Value::Int(r.published_by),
        ]);
    }
    let returned = insert(
        tx,
        "versions (plugin_id, version, manifest, manifest_digest, signature, signer_key, state, \
         published_at, published_by)",
        rows,
        " RETURNING id, plugin_id",
    )
    .await?;
    let by_plugin: HashMap<i64, i64> = returned
        .iter()
        .map(|row| Ok((row.try_get("plugin_id")?, row.try_get("id")?)))
        .collect::<Result<_>>()?;
    ids.iter()
        .map(|p| {
            by_plugin
                .get(p)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("no version row for plugin {p}")))
        })
        .collect()
}

/// `INSERT INTO {into} VALUES (...), (...) {returning}` for `rows` (each as long as the
/// column list), as few statements as the bind limit allows; the rows `returning` names.
async fn insert(
    tx: &mut Transaction<'static, Any>,
    into: &str,
    rows: Vec<Vec<Value>>,
    returning: &str,
) -> Result<Vec<sqlx::any::AnyRow>> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(Vec::new());
    };
    let mut returned = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Vec<Value>> = rows.by_ref().take(BINDS_PER_STATEMENT / width).collect();
        let values = (0..batch.len())
            .map(|i| {
                let row = (1..=width)
                    .map(|c| format!("${}", i * width + c))
                    .collect::<Vec<_>>();
                format!("({})", row.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO {into} VALUES {values}{returning}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in batch.into_iter().flatten() {
            query = match value {
                Value::Int(i) => query.bind(i),
                Value::Text(s) => query.bind(s),
                Value::Maybe(s) => query.bind(s),
            };
        }
        returned.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(returned)
}
