//! OCI records on SQL: a manifest, its blob links and its tag are one transaction; tags
//! list in byte order (PostgreSQL's column is `COLLATE "C"`, SQLite's is binary).

use agora_core::Digest;
use agora_core::audit::AuditAction;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use super::rows::parse_digest;
use crate::metadata::*;
use crate::{StoreError, now_ms};

const COLUMNS: &str = "m.repository, m.digest, m.media_type, m.artifact_type, m.subject, m.size, \
     m.annotations, m.kind, m.version_id, (v.state IS NOT NULL AND v.state = 'removed') AS removed";
const FROM: &str = "oci_manifests m LEFT JOIN versions v ON v.id = m.version_id";

fn manifest_from_row(r: &AnyRow) -> Result<OciManifestRecord> {
    let kind: String = r.try_get("kind")?;
    let subject: Option<String> = r.try_get("subject")?;
    // SQLite answers a boolean expression as an integer, PostgreSQL as a boolean.
    let removed = r
        .try_get::<bool, _>("removed")
        .or_else(|_| r.try_get::<i64, _>("removed").map(|n| n != 0))?;
    Ok(OciManifestRecord {
        repository: r.try_get("repository")?,
        digest: parse_digest(&r.try_get::<String, _>("digest")?)?,
        media_type: r.try_get("media_type")?,
        artifact_type: r.try_get("artifact_type")?,
        subject: subject.as_deref().map(parse_digest).transpose()?,
        size: r.try_get::<i64, _>("size")? as u64,
        annotations: r.try_get("annotations")?,
        kind: OciKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown OCI manifest kind {kind:?}")))?,
        version_id: r.try_get("version_id")?,
        removed,
    })
}

fn pending_from_row(r: &AnyRow, run: bool) -> Result<OciPending> {
    Ok(OciPending {
        version_id: r.try_get("version_id")?,
        publisher: r.try_get("publisher")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        run: if run {
            Some(OciPendingRun {
                id: r.try_get("run_id")?,
                outcome: r.try_get("outcome")?,
                report: r.try_get("report")?,
                checked_at: r.try_get("checked_at")?,
            })
        } else {
            None
        },
    })
}

impl SqlStore {
    async fn put_oci_manifest_once(&self, m: &NewOciManifest) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let mut claimed = m.blobs.clone();
        claimed.push(m.digest);
        super::gc::claim_blobs(&mut tx, &claimed).await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM oci_manifests WHERE repository = $1 AND digest = $2")
                .bind(&m.repository)
                .bind(m.digest.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            if m.kind == OciKind::Pushed {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM oci_manifests WHERE repository = $1 AND kind = 'pushed'",
                )
                .bind(&m.repository)
                .fetch_one(&mut *tx)
                .await?;
                if count >= MAX_OCI_MANIFESTS {
                    return Err(StoreError::Conflict(format!(
                        "repository {} holds {MAX_OCI_MANIFESTS} manifests, the most it may; \
                         delete some first",
                        m.repository
                    )));
                }
            }
            sqlx::query(
                "INSERT INTO oci_manifests (repository, digest, media_type, artifact_type, subject, \
                 size, annotations, kind, version_id, verification_id, pushed_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (repository, digest) DO NOTHING",
            )
            .bind(&m.repository)
            .bind(m.digest.to_string())
            .bind(&m.media_type)
            .bind(&m.artifact_type)
            .bind(m.subject.map(|d| d.to_string()))
            .bind(m.size as i64)
            .bind(&m.annotations)
            .bind(m.kind.as_str())
            .bind(m.version_id)
            .bind(m.verification_id)
            .bind(m.pushed_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for blob in &m.blobs {
            sqlx::query(
                "INSERT INTO oci_blob_links (repository, digest, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (repository, digest) DO NOTHING",
            )
            .bind(&m.repository)
            .bind(blob.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(tag) = &m.tag {
            let current: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM oci_tags WHERE repository = $1 AND tag = $2",
            )
            .bind(&m.repository)
            .bind(tag)
            .fetch_optional(&mut *tx)
            .await?;
            if current.is_none() {
                let count: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM oci_tags WHERE repository = $1")
                        .bind(&m.repository)
                        .fetch_one(&mut *tx)
                        .await?;
                if count >= MAX_OCI_TAGS {
                    return Err(StoreError::Conflict(format!(
                        "repository {} holds {MAX_OCI_TAGS} tags, the most it may; delete some \
                         first",
                        m.repository
                    )));
                }
            }
            if current.as_deref() != Some(m.digest.to_string().as_str()) {
                sqlx::query(
                    "INSERT INTO oci_tags (repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, \
                     updated_at = excluded.updated_at",
                )
                .bind(&m.repository)
                .bind(tag)
                .bind(m.digest.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if let Some(actor) = &m.actor {
                    Self::audit(
                        &mut tx,
                        actor,
                        AuditAction::OciTag,
                        &format!("{}:{tag}", m.repository),
                        Some(m.digest.to_string()),
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl OciStore for SqlStore {
    async fn put_oci_manifest(&self, manifest: NewOciManifest) -> Result<()> {
        self.retrying(|| self.put_oci_manifest_once(&manifest))
            .await
    }

    async fn oci_manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<OciManifestRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE m.repository = $1 AND m.digest = $2"
        )))
        .bind(repository)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(manifest_from_row).transpose()
    }

    async fn oci_tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>> {
        let digest: Option<String> =
            sqlx::query_scalar("SELECT digest FROM oci_tags WHERE repository = $1 AND tag = $2")
                .bind(repository)
                .bind(tag)
                .fetch_optional(&self.read)
                .await?;
        digest.as_deref().map(parse_digest).transpose()
    }

    async fn oci_tags(
        &self,
        repository: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT tag FROM oci_tags WHERE repository = $1 AND tag > $2 ORDER BY tag LIMIT $3",
        )
        .bind(repository)
        .bind(last.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?)
    }

    async fn oci_referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OciManifestRecord>> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE m.repository = $1 AND m.subject = $2 \
             AND (v.state IS NULL OR v.state <> 'removed')"
        );
        if artifact_type.is_some() {
            sql.push_str(" AND m.artifact_type = $4");
        }
        sql.push_str(" ORDER BY m.created_at, m.digest LIMIT $3");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(subject.to_string())
            .bind(i64::from(limit));
        if let Some(t) = artifact_type {
            q = q.bind(t);
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(manifest_from_row)
            .collect()
    }

    async fn oci_blob_linked(
        &self,
        repository: &str,
        plugin: Option<(&str, &str)>,
        digest: &Digest,
    ) -> Result<bool> {
        let linked: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM oci_blob_links WHERE repository = $1 AND digest = $2",
        )
        .bind(repository)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        if linked.is_some() {
            return Ok(true);
        }
        let Some((publisher, name)) = plugin else {
            return Ok(false);
        };
        let file: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM artifacts a JOIN versions v ON v.id = a.version_id \
             JOIN plugins p ON p.id = v.plugin_id \
             WHERE a.digest = $1 AND p.publisher = $2 AND p.name = $3 AND v.state <> 'removed' \
             LIMIT 1",
        )
        .bind(digest.to_string())
        .bind(publisher)
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        Ok(file.is_some())
    }

    async fn link_oci_blob(&self, repository: &str, digest: &Digest) -> Result<()> {
        let mut tx = self.write.begin().await?;
        super::gc::claim_blobs(&mut tx, std::slice::from_ref(digest)).await?;
        sqlx::query(
            "INSERT INTO oci_blob_links (repository, digest, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (repository, digest) DO NOTHING",
        )
        .bind(repository)
        .bind(digest.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn oci_repository_exists(&self, repository: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM oci_manifests WHERE repository = $1 \
             UNION ALL SELECT 1 FROM oci_blob_links WHERE repository = $1 LIMIT 1",
        )
        .bind(repository)
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    async fn delete_oci_manifest(
        &self,
        repository: &str,
        digest: &Digest,
        actor: &str,
    ) -> Result<bool> {
        self.retrying(|| async {
            let mut tx = self.write.begin().await?;
            let deleted = sqlx::query(
                "DELETE FROM oci_manifests WHERE repository = $1 AND digest = $2 AND kind = 'pushed'",
            )
            .bind(repository)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM oci_tags WHERE repository = $1 AND digest = $2")
                .bind(repository)
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
            Self::audit(
                &mut tx,
                actor,
                AuditAction::OciDelete,
                &format!("{repository}@{digest}"),
                None,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn delete_oci_tag(&self, repository: &str, tag: &str, actor: &str) -> Result<bool> {
        self.retrying(|| async {
            let mut tx = self.write.begin().await?;
            let deleted = sqlx::query("DELETE FROM oci_tags WHERE repository = $1 AND tag = $2")
                .bind(repository)
                .bind(tag)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            Self::audit(
                &mut tx,
                actor,
                AuditAction::OciDelete,
                &format!("{repository}:{tag}"),
                None,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn oci_pending_releases(&self, after: i64, limit: u32) -> Result<Vec<OciPending>> {
        let rows = sqlx::query(
            "SELECT v.id AS version_id, p.publisher, p.name, v.version FROM versions v \
             JOIN plugins p ON p.id = v.plugin_id \
             WHERE v.id > $1 AND v.state <> 'removed' AND NOT EXISTS \
             (SELECT 1 FROM oci_manifests m WHERE m.version_id = v.id AND m.kind = 'release') \
             ORDER BY v.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| pending_from_row(r, false)).collect()
    }

    async fn oci_pending_runs(
        &self,
        after: i64,
        version_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<OciPending>> {
        let rows = sqlx::query(
            "SELECT v.id AS version_id, p.publisher, p.name, v.version, r.id AS run_id, r.outcome, \
             r.report, r.checked_at FROM verifications r JOIN versions v ON v.id = r.version_id \
             JOIN plugins p ON p.id = v.plugin_id \
             WHERE r.id > $1 AND ($3 IS NULL OR r.version_id = $3) AND v.state <> 'removed' \
             AND NOT EXISTS (SELECT 1 FROM oci_manifests m WHERE m.verification_id = r.id) \
             ORDER BY r.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .bind(version_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| pending_from_row(r, true)).collect()
    }
}
