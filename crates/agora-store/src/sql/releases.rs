//! Plugins, versions, artifacts, lifecycle and visibility on SQL. A release and everything
//! it derives (the plugin's listing and labels, its log entry) are one transaction.

use agora_core::{Digest, Lifecycle, Manifest, Visibility};
use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::rows::*;
use super::{SqlStore, search};
use crate::metadata::*;
use crate::{StoreError, now_ms};
use agora_core::audit::AuditAction;

impl SqlStore {
    /// Recomputes a plugin's listing fields and labels from its latest resolvable version.
    pub(super) async fn refresh_plugin(
        &self,
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
        // Which version is latest and which one the listing comes from: the domain's rule.
        let (latest, source) = agora_core::listing::listed(&candidates);
        let latest_version = latest
            .and_then(|id| candidates.iter().find(|c| c.0 == id))
            .map(|c| c.1.to_string());
        let Some(source) = source else {
            sqlx::query("DELETE FROM plugin_labels WHERE plugin_id = $1")
                .bind(plugin_id)
                .execute(&mut **tx)
                .await?;
            let update = format!(
                "UPDATE plugins SET latest_version = NULL, updated_at = $1{} WHERE id = $2",
                search::label_array_update(self.dialect, "$2")
            );
            sqlx::query(sqlx::AssertSqlSafe(update))
                .bind(now)
                .bind(plugin_id)
                .execute(&mut **tx)
                .await?;
            super::verifications::refresh_verdict(tx, plugin_id).await?;
            return Ok(());
        };
        let manifest_json: String =
            sqlx::query_scalar("SELECT manifest FROM versions WHERE id = $1")
                .bind(source)
                .fetch_one(&mut **tx)
                .await?;
        let m: Manifest = serde_json::from_str(&manifest_json)
            .map_err(|e| StoreError::Corrupt(format!("manifest of version row {source}: {e}")))?;
        let listing = agora_core::listing::Listing::of(&m);
        // The labels first: on PostgreSQL the plugin row's label array is read from them.
        sqlx::query("DELETE FROM plugin_labels WHERE plugin_id = $1")
            .bind(plugin_id)
            .execute(&mut **tx)
            .await?;
        for (kind, value) in &listing.labels {
            sqlx::query("INSERT INTO plugin_labels (plugin_id, kind, value) VALUES ($1, $2, $3)")
                .bind(plugin_id)
                .bind(*kind)
                .bind(value)
                .execute(&mut **tx)
                .await?;
        }
        let update = format!(
            "UPDATE plugins SET display_name = $1, description = $2, provider = $3, runtime = $4, \
             keywords = $5, latest_version = $6, updated_at = $7, min_core_key = $8{} WHERE id = $9",
            search::label_array_update(self.dialect, "$9")
        );
        sqlx::query(sqlx::AssertSqlSafe(update))
            .bind(&listing.display_name)
            .bind(&listing.description)
            .bind(listing.provider.as_deref())
            .bind(listing.runtime)
            .bind(&listing.keywords)
            .bind(latest_version)
            .bind(now)
            .bind(listing.min_core_key.as_deref())
            .bind(plugin_id)
            .execute(&mut **tx)
            .await?;
        super::verifications::refresh_verdict(tx, plugin_id).await
    }

    /// Fills in what plugin rows do not hold: labels, and the listed version and state.
    pub(super) async fn load_derived(&self, plugins: &mut [PluginRecord]) -> Result<()> {
        self.load_labels(plugins).await?;
        self.load_listed(plugins).await
    }

    /// The version each plugin's listing comes from and its state, by the domain's rule
    /// (`agora_core::listing::listed`, as `refresh_plugin` applies it).
    async fn load_listed(&self, plugins: &mut [PluginRecord]) -> Result<()> {
        if plugins.is_empty() {
            return Ok(());
        }
        let placeholders = placeholders(plugins.len());
        let sql = format!(
            "SELECT plugin_id, version, state FROM versions WHERE plugin_id IN ({placeholders})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in plugins.iter() {
            query = query.bind(p.id);
        }
        let mut candidates: std::collections::HashMap<i64, Vec<_>> = Default::default();
        for row in query.fetch_all(&self.read).await? {
            let id: i64 = row.try_get("plugin_id")?;
            let version = parse_version(&row.try_get::<String, _>("version")?)?;
            let state = parse_state(&row.try_get::<String, _>("state")?)?;
            let list = candidates.entry(id).or_default();
            list.push((list.len(), version, state));
        }
        for p in plugins.iter_mut() {
            let Some(list) = candidates.get(&p.id) else {
                continue;
            };
            if let (_, Some(i)) = agora_core::listing::listed(list) {
                p.listed_version = Some(list[i].1.to_string());
                p.listed_state = Some(list[i].2);
            }
        }
        Ok(())
    }

    async fn load_labels(&self, plugins: &mut [PluginRecord]) -> Result<()> {
        if plugins.is_empty() {
            return Ok(());
        }
        let placeholders = placeholders(plugins.len());
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
    /// One attempt at [`MetadataStore::publish`]; returns the new version's id.
    pub(super) async fn publish_once(&self, release: &NewRelease) -> Result<i64> {
        let m = &release.manifest;
        let target = format!("{}/{}@{}", m.publisher, m.name, m.version);
        let now = now_ms();
        let manifest_json =
            serde_json::to_string(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin_logged(release.log_entry.is_some()).await?;
        // A blob garbage collection is deleting cannot become part of a release; one it
        // had only marked is referenced from now on.
        let digests: Vec<_> = release.artifacts.iter().map(|a| a.digest).collect();
        super::gc::claim_blobs(&mut tx, &digests).await?;
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
        for job in &release.jobs {
            super::jobs::queue_in(&mut tx, job, now).await?;
        }
        self.refresh_plugin(&mut tx, plugin_id, now).await?;
        Self::audit(
            &mut tx,
            &release.actor,
            AuditAction::VersionPublish,
            &target,
            Some(release.manifest_digest.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(version_id)
    }
    /// One attempt at [`MetadataStore::set_lifecycle`]; returns the orphaned digests.
    pub(super) async fn set_lifecycle_once(&self, change: &LifecycleChange) -> Result<Vec<Digest>> {
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
                // Bytes another release, an OCI repository (pushed or mounted into it) or
                // an OCI manifest still uses stay: removal takes this release's away, not
                // anyone else's.
                "SELECT DISTINCT a.digest FROM artifacts a WHERE a.version_id = $1 AND NOT EXISTS ( \
                 SELECT 1 FROM artifacts b JOIN versions v ON v.id = b.version_id \
                 WHERE b.digest = a.digest AND v.state <> 'removed') \
                 AND NOT EXISTS (SELECT 1 FROM oci_blob_links l WHERE l.digest = a.digest) \
                 AND NOT EXISTS (SELECT 1 FROM oci_manifests m WHERE m.digest = a.digest)",
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
        self.refresh_plugin(&mut tx, plugin_id, now).await?;
        if let Some(writer) = &change.log_entry {
            let private = Self::is_private(&mut tx, plugin_id).await?;
            Self::append_log(&mut tx, writer, publisher_id, Some((plugin_id, private))).await?;
        }
        let detail = serde_json::json!({ "state": change.state, "reason": change.reason, "replacement": change.replacement });
        Self::audit(
            &mut tx,
            &change.actor,
            AuditAction::VersionLifecycle,
            &target,
            Some(detail.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(orphaned)
    }
    pub(super) async fn version_by_id(&self, id: i64) -> Result<VersionRecord> {
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

#[async_trait]
impl ReleaseStore for SqlStore {
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
        self.load_derived(&mut plugins).await?;
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
            for id in viewer.visibility_ids() {
                query = query.bind(id);
            }
        }
        let Some(row) = query.fetch_optional(&self.read).await? else {
            return Ok(None);
        };
        let mut plugins = [plugin_from_row(&row)?];
        self.load_derived(&mut plugins).await?;
        let [plugin] = plugins;
        Ok(Some(plugin))
    }
    async fn unlisted_plugins(
        &self,
        publisher_id: i64,
        viewer: &Viewer,
        limit: u32,
    ) -> Result<Vec<PluginRecord>> {
        if !viewer.is_insider(publisher_id) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p WHERE p.publisher_id = $1 \
             AND p.latest_version IS NULL AND EXISTS (SELECT 1 FROM versions v \
             WHERE v.plugin_id = p.id AND v.state <> 'removed') ORDER BY p.name LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(publisher_id)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        let mut plugins = rows
            .iter()
            .map(plugin_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.load_derived(&mut plugins).await?;
        Ok(plugins)
    }
    async fn plugin_visible_to(&self, plugin_id: i64, viewer: &Viewer) -> Result<bool> {
        let mut sql = String::from("SELECT 1 FROM plugins p WHERE p.id = $1");
        if !viewer.admin {
            sql.push_str(&search::visibility_condition(viewer, 2));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plugin_id);
        if !viewer.admin {
            for id in viewer.visibility_ids() {
                query = query.bind(id);
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
                AuditAction::PluginVisibility,
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
}

/// `$1, $2, ... $n`, for an `IN (...)` over `n` bound values.
pub(super) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
