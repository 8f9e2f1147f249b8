//! The transparency log's rows and key on SQL.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::metadata::*;
use crate::now_ms;

#[async_trait]
impl LogStore for SqlStore {
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
    async fn log_leaves(&self, from: i64, limit: u32) -> Result<Vec<(i64, LogLeaf)>> {
        let rows = sqlx::query(
            "SELECT idx, leaf, CASE WHEN leaf IS NULL THEN body END AS body FROM log_entries \
             WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let leaf = match r.try_get::<Option<String>, _>("leaf")? {
                    Some(digest) => LogLeaf::Digest(digest),
                    None => LogLeaf::Body(r.try_get("body")?),
                };
                Ok((r.try_get("idx")?, leaf))
            })
            .collect()
    }

    async fn fill_log_leaves(&self, leaves: &[(i64, String)]) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let mut filled = 0;
        for (index, leaf) in leaves {
            filled +=
                sqlx::query("UPDATE log_entries SET leaf = $1 WHERE idx = $2 AND leaf IS NULL")
                    .bind(leaf)
                    .bind(index)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        tx.commit().await?;
        Ok(filled)
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
}
