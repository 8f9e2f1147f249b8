//! The transparency log's rows and key on SQL.

use async_trait::async_trait;
use sqlx::Row;

use super::{Dialect, SqlStore};
use crate::metadata::*;
use crate::now_ms;

/// Characters of a stored entry digest: sha256 in hex.
const DIGEST_HEX: usize = 64;

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
        // The usual case, every digest stored and the indexes dense: the batch's digests
        // concatenated into one row (per-row decoding was most of the time a server took
        // to read a log of 10^6 entries). Anything else is read row by row.
        let concat = match self.dialect {
            Dialect::Sqlite => "group_concat(leaf, '' ORDER BY idx)",
            Dialect::Postgres => "string_agg(leaf, '' ORDER BY idx)",
        };
        let packed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n, COUNT(leaf) AS stored, MIN(idx) AS first, MAX(idx) AS last, \
             {concat} AS leaves FROM (SELECT idx, leaf FROM log_entries WHERE idx >= $1 \
             ORDER BY idx LIMIT $2) AS batch"
        )))
        .bind(from)
        .bind(i64::from(limit))
        .fetch_one(&self.read)
        .await?;
        let n: i64 = packed.try_get("n")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let stored: i64 = packed.try_get("stored")?;
        let first: Option<i64> = packed.try_get("first")?;
        let last: Option<i64> = packed.try_get("last")?;
        if stored == n && first == Some(from) && last == Some(from + n - 1) {
            let leaves: String = packed.try_get("leaves")?;
            if leaves.len() == n as usize * DIGEST_HEX && leaves.is_ascii() {
                return Ok((0..n as usize)
                    .map(|i| {
                        let digest = &leaves[i * DIGEST_HEX..(i + 1) * DIGEST_HEX];
                        (from + i as i64, LogLeaf::Digest(digest.to_owned()))
                    })
                    .collect());
            }
        }
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
        // Rows per statement: 1,000 parameters, under both engines' limits.
        const ROWS: usize = 500;
        let mut tx = self.write.begin().await?;
        let mut filled = 0;
        for chunk in leaves.chunks(ROWS) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "WITH v (idx, leaf) AS (VALUES {}) UPDATE log_entries SET leaf = v.leaf FROM v \
                 WHERE log_entries.idx = v.idx AND log_entries.leaf IS NULL",
                values.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (index, leaf) in chunk {
                query = query.bind(*index).bind(leaf.as_str());
            }
            filled += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(filled)
    }

    fn log_read_ahead(&self) -> usize {
        match self.dialect {
            Dialect::Sqlite => 1,
            Dialect::Postgres => 4,
        }
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
