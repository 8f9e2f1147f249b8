//! Blob references and gc marks on SQL (see [`crate::metadata::GcStore`] for the
//! protocol). The mark row is the one place a deletion and a publish, upload or OCI link
//! of the same digest meet: each side changes that row first in its transaction (on
//! PostgreSQL a row lock, on SQLite the single writer), so whichever commits second sees
//! the other.

use std::collections::{HashMap, HashSet};

use agora_core::Digest;
use agora_core::audit::AuditAction;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::SqlStore;
use super::rows::{corrupt, parse_digest};
use crate::metadata::*;
use crate::{StoreError, now_ms};

/// `$from, $from+1, ... ` for `n` bound values.
fn placeholders_from(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_batch(digests: &[Digest]) -> Result<()> {
    if digests.len() > MAX_GC_BATCH {
        return Err(StoreError::Conflict(format!(
            "{} digests in one batch; at most {MAX_GC_BATCH}",
            digests.len()
        )));
    }
    Ok(())
}

/// The condition "the digest in `column` is referenced" (see [`BlobUse::referenced`]).
fn referenced_sql(list: &str) -> String {
    format!(
        "SELECT a.digest FROM artifacts a JOIN versions v ON v.id = a.version_id \
         WHERE v.state <> 'removed' AND a.digest IN ({list}) \
         UNION SELECT digest FROM oci_manifests WHERE digest IN ({list}) \
         UNION SELECT digest FROM oci_blob_links WHERE digest IN ({list})"
    )
}

/// Makes the digests usable by the transaction `tx` is: removes their `marked` marks and
/// refuses a digest whose deletion has begun. Every write that records an upload of a
/// blob or makes it referenced calls this first.
pub(super) async fn claim_blobs(
    tx: &mut Transaction<'static, Any>,
    digests: &[Digest],
) -> Result<()> {
    let mut digests: Vec<String> = digests.iter().map(Digest::to_string).collect();
    digests.sort();
    digests.dedup();
    // Two statements per batch, whatever the number of digests (a bulk load claims
    // thousands at once).
    for batch in digests.chunks(super::BINDS_PER_STATEMENT) {
        let list = super::releases::placeholders(batch.len());
        for sql in [
            format!("DELETE FROM gc_marks WHERE state = 'marked' AND digest IN ({list})"),
            format!("SELECT digest FROM gc_marks WHERE digest IN ({list})"),
        ] {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in batch {
                query = query.bind(d.as_str());
            }
            if let Some(row) = query.fetch_optional(&mut **tx).await? {
                return Err(being_deleted(row.try_get::<String, _>("digest")?));
            }
        }
    }
    Ok(())
}

/// The refusal of a release whose blob garbage collection is deleting.
fn being_deleted(digest: impl std::fmt::Display) -> StoreError {
    StoreError::Conflict(format!(
        "blob {digest} is being deleted by garbage collection (nothing referred to it \
         for longer than the grace period); upload it again in a minute"
    ))
}

fn mark_from_row(r: &AnyRow) -> Result<GcMark> {
    let state: String = r.try_get("state")?;
    Ok(GcMark {
        state: GcState::parse(&state).ok_or_else(|| corrupt("gc state", &state))?,
        marked_at: r.try_get("marked_at")?,
        changed_at: r.try_get("changed_at")?,
    })
}

#[async_trait]
impl GcStore for SqlStore {
    async fn blob_uses(&self, digests: &[Digest]) -> Result<Vec<BlobUse>> {
        check_batch(digests)?;
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let list = placeholders_from(1, digests.len());
        let bind_all = |sql: String| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in digests {
                q = q.bind(d.to_string());
            }
            q
        };
        let referenced: HashSet<String> = bind_all(referenced_sql(&list))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let mut recorded: HashMap<String, (i64, i64)> = HashMap::new();
        for r in bind_all(format!(
            "SELECT digest, size, created_at FROM blobs WHERE digest IN ({list})"
        ))
        .fetch_all(&self.read)
        .await?
        {
            recorded.insert(
                r.try_get("digest")?,
                (r.try_get("size")?, r.try_get("created_at")?),
            );
        }
        let mut uploads: HashMap<String, i64> = HashMap::new();
        for r in bind_all(format!(
            "SELECT digest, MAX(created_at) AS last FROM blob_uploaders WHERE digest IN ({list}) GROUP BY digest"
        ))
        .fetch_all(&self.read)
        .await?
        {
            uploads.insert(r.try_get("digest")?, r.try_get("last")?);
        }
        let mut marks: HashMap<String, GcMark> = HashMap::new();
        for r in bind_all(format!(
            "SELECT digest, state, marked_at, changed_at FROM gc_marks WHERE digest IN ({list})"
        ))
        .fetch_all(&self.read)
        .await?
        {
            marks.insert(r.try_get("digest")?, mark_from_row(&r)?);
        }
        Ok(digests
            .iter()
            .map(|d| {
                let key = d.to_string();
                let record = recorded.get(&key).copied();
                let last_upload_ms = match (record.map(|(_, at)| at), uploads.get(&key).copied()) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                BlobUse {
                    digest: *d,
                    referenced: referenced.contains(&key),
                    recorded_size: record.map(|(size, _)| size.max(0) as u64),
                    last_upload_ms,
                    mark: marks.get(&key).copied(),
                }
            })
            .collect())
    }

    async fn gc_mark(&self, digests: &[Digest], at: i64) -> Result<()> {
        check_batch(digests)?;
        let mut tx = self.write.begin().await?;
        for d in digests {
            sqlx::query(
                "INSERT INTO gc_marks (digest, state, marked_at, changed_at) VALUES ($1, 'marked', $2, $2) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(d.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn gc_unmark(&self, digests: &[Digest]) -> Result<()> {
        check_batch(digests)?;
        if digests.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM gc_marks WHERE state = 'marked' AND digest IN ({})",
            placeholders_from(1, digests.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in digests {
            q = q.bind(d.to_string());
        }
        q.execute(&self.write).await?;
        Ok(())
    }

    async fn gc_forget_absent(
        &self,
        after: Option<&Digest>,
        upto: Option<&Digest>,
        present: &[Digest],
    ) -> Result<u64> {
        check_batch(present)?;
        let mut sql = String::from(
            "DELETE FROM gc_marks WHERE state = 'marked' AND ($1 IS NULL OR digest > $1) \
             AND ($2 IS NULL OR digest <= $2)",
        );
        if !present.is_empty() {
            sql.push_str(&format!(
                " AND digest NOT IN ({})",
                placeholders_from(3, present.len())
            ));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.map(Digest::to_string))
            .bind(upto.map(Digest::to_string));
        for d in present {
            q = q.bind(d.to_string());
        }
        Ok(q.execute(&self.write).await?.rows_affected())
    }

    async fn gc_begin_delete(
        &self,
        digest: &Digest,
        marked_before: i64,
        uploaded_before: i64,
        size: u64,
        actor: &str,
    ) -> Result<bool> {
        let d = digest.to_string();
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        // First the mark (the row a concurrent publish or upload changes first too).
        let moved = sqlx::query(
            "UPDATE gc_marks SET state = 'deleting', changed_at = $2 \
             WHERE digest = $1 AND state = 'marked' AND marked_at <= $3",
        )
        .bind(&d)
        .bind(now)
        .bind(marked_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let referenced = sqlx::query(sqlx::AssertSqlSafe(referenced_sql("$1")))
            .bind(&d)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let uploaded: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blob_uploaders WHERE digest = $1 AND created_at > $2 \
             UNION SELECT 1 FROM blobs WHERE digest = $1 AND created_at > $2",
        )
        .bind(&d)
        .bind(uploaded_before)
        .fetch_optional(&mut *tx)
        .await?;
        if referenced || uploaded.is_some() {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM blob_uploaders WHERE digest = $1")
            .bind(&d)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(&d)
            .execute(&mut *tx)
            .await?;
        Self::audit(
            &mut tx,
            actor,
            AuditAction::BlobGc,
            &d,
            Some(serde_json::json!({ "size": size }).to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn gc_end_delete(&self, digest: &Digest) -> Result<()> {
        sqlx::query("DELETE FROM gc_marks WHERE digest = $1 AND state = 'deleting'")
            .bind(digest.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn gc_deleting(&self, changed_before: i64, limit: u32) -> Result<Vec<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT digest FROM gc_marks WHERE state = 'deleting' AND changed_at <= $1 \
             ORDER BY digest LIMIT $2",
        )
        .bind(changed_before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|d| parse_digest(d)).collect()
    }

    async fn touch_blob(&self, digest: &Digest) -> Result<()> {
        // Read first: a mark is rare, and a HEAD should not take SQLite's one writer.
        let marked: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM gc_marks WHERE digest = $1 AND state = 'marked'")
                .bind(digest.to_string())
                .fetch_optional(&self.read)
                .await?;
        if marked.is_some() {
            sqlx::query("DELETE FROM gc_marks WHERE digest = $1 AND state = 'marked'")
                .bind(digest.to_string())
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    async fn blob_references(
        &self,
        kind: RefKind,
        after: Option<&RefCursor>,
        limit: u32,
    ) -> Result<(Vec<BlobRef>, Option<RefCursor>)> {
        let start = RefCursor {
            number: -1,
            ..RefCursor::default()
        };
        let after = after.unwrap_or(&start);
        let limit = i64::from(limit.max(1));
        let mut refs = Vec::new();
        let mut last = None;
        match kind {
            RefKind::Artifact => {
                let rows = sqlx::query(
                    "SELECT a.version_id, a.path, a.digest, a.size, p.publisher, p.name, v.version \
                     FROM artifacts a JOIN versions v ON v.id = a.version_id JOIN plugins p ON p.id = v.plugin_id \
                     WHERE v.state <> 'removed' AND (a.version_id > $1 OR (a.version_id = $1 AND a.path > $2)) \
                     ORDER BY a.version_id, a.path LIMIT $3",
                )
                .bind(after.number)
                .bind(&after.first)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                for r in &rows {
                    let path: String = r.try_get("path")?;
                    let owner = format!(
                        "{}/{}@{}:{path}",
                        r.try_get::<String, _>("publisher")?,
                        r.try_get::<String, _>("name")?,
                        r.try_get::<String, _>("version")?
                    );
                    refs.push(BlobRef {
                        digest: parse_digest(&r.try_get::<String, _>("digest")?)?,
                        kind,
                        owner,
                        size: Some(r.try_get::<i64, _>("size")?.max(0) as u64),
                    });
                    last = Some(RefCursor {
                        number: r.try_get("version_id")?,
                        first: path,
                        second: String::new(),
                    });
                }
            }
            RefKind::OciManifest | RefKind::OciLink => {
                let sql = if kind == RefKind::OciManifest {
                    "SELECT repository, digest, size FROM oci_manifests \
                     WHERE repository > $1 OR (repository = $1 AND digest > $2) \
                     ORDER BY repository, digest LIMIT $3"
                } else {
                    "SELECT repository, digest, NULL AS size FROM oci_blob_links \
                     WHERE repository > $1 OR (repository = $1 AND digest > $2) \
                     ORDER BY repository, digest LIMIT $3"
                };
                let rows = sqlx::query(sql)
                    .bind(&after.first)
                    .bind(&after.second)
                    .bind(limit)
                    .fetch_all(&self.read)
                    .await?;
                for r in &rows {
                    let repository: String = r.try_get("repository")?;
                    let digest: String = r.try_get("digest")?;
                    let size: Option<i64> = r.try_get("size").ok().flatten();
                    refs.push(BlobRef {
                        digest: parse_digest(&digest)?,
                        kind,
                        owner: repository.clone(),
                        size: size.map(|s| s.max(0) as u64),
                    });
                    last = Some(RefCursor {
                        number: 0,
                        first: repository,
                        second: digest,
                    });
                }
            }
            RefKind::Upload => {
                let rows = sqlx::query(
                    "SELECT digest, size FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2",
                )
                .bind(&after.first)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                for r in &rows {
                    let digest: String = r.try_get("digest")?;
                    refs.push(BlobRef {
                        digest: parse_digest(&digest)?,
                        kind,
                        owner: "upload".to_owned(),
                        size: Some(r.try_get::<i64, _>("size")?.max(0) as u64),
                    });
                    last = Some(RefCursor {
                        number: 0,
                        first: digest,
                        second: String::new(),
                    });
                }
            }
        }
        let next = if refs.len() as i64 >= limit {
            last
        } else {
            None
        };
        Ok((refs, next))
    }
}
