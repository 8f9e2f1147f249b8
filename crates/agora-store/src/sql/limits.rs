//! Rate-limit counts and sign-in failures on SQL (see [`crate::metadata::LimitStore`]).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::StoreError;
use crate::metadata::*;

/// Keys per statement (three bound values each, well under both engines' limits).
const KEYS_PER_STATEMENT: usize = 500;

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `$from, ..., $from+n-1`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlStore {
    async fn add_request_counts_once(
        &self,
        start: i64,
        previous: i64,
        counts: &[(String, u64)],
    ) -> Result<Vec<WindowTotals>> {
        // Keys in one order on every replica, so two concurrent syncs never deadlock.
        let mut adds: Vec<(&str, u64)> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        adds.sort_unstable();
        let mut tx = self.write.begin().await?;
        for chunk in adds.chunks(KEYS_PER_STATEMENT) {
            let rows = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO rate_limit_counts (start, key, count) VALUES {rows} \
                 ON CONFLICT (start, key) DO UPDATE \
                 SET count = rate_limit_counts.count + excluded.count"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(start);
            for (key, n) in chunk {
                q = q.bind(*key).bind(int(*n));
            }
            q.execute(&mut *tx).await?;
        }
        let mut totals: HashMap<String, WindowTotals> = HashMap::new();
        let keys: Vec<&str> = counts.iter().map(|(k, _)| k.as_str()).collect();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "SELECT start, key, count FROM rate_limit_counts \
                 WHERE start IN ($1, $2) AND key IN ({})",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(start)
                .bind(previous);
            for key in chunk {
                q = q.bind(*key);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let key: String = row.try_get("key")?;
                let n = count(row.try_get("count")?);
                let entry = totals.entry(key).or_default();
                if row.try_get::<i64, _>("start")? == start {
                    entry.current = n;
                } else {
                    entry.previous = n;
                }
            }
        }
        tx.commit().await?;
        Ok(counts
            .iter()
            .map(|(k, _)| totals.get(k).copied().unwrap_or_default())
            .collect())
    }

    async fn record_sign_in_failure_once(
        &self,
        keys: &[String],
        now: i64,
        forget_ms: i64,
        max_keys: u64,
    ) -> Result<()> {
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort_unstable();
        let mut tx = self.write.begin().await?;
        for key in sorted {
            sqlx::query(
                "INSERT INTO sign_in_failures (key, count, last_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET \
                 count = CASE WHEN excluded.last_at - sign_in_failures.last_at >= $3 \
                         THEN 1 ELSE sign_in_failures.count + 1 END, \
                 last_at = excluded.last_at",
            )
            .bind(key.as_str())
            .bind(now)
            .bind(forget_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM sign_in_failures WHERE last_at <= $1")
            .bind(now - forget_ms)
            .execute(&mut *tx)
            .await?;
        let kept: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sign_in_failures")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let over = count(kept).saturating_sub(max_keys);
        if over > 0 {
            sqlx::query(
                "DELETE FROM sign_in_failures WHERE key IN \
                 (SELECT key FROM sign_in_failures ORDER BY count, last_at LIMIT $1)",
            )
            .bind(int(over))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl LimitStore for SqlStore {
    async fn add_request_counts(
        &self,
        start: i64,
        previous: i64,
        counts: &[(String, u64)],
    ) -> Result<Vec<WindowTotals>> {
        if counts.len() > MAX_COUNT_KEYS {
            return Err(StoreError::Conflict(format!(
                "{} rate-limit keys in one call; at most {MAX_COUNT_KEYS}",
                counts.len()
            )));
        }
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        self.retrying(|| self.add_request_counts_once(start, previous, counts))
            .await
    }

    async fn prune_request_counts(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM rate_limit_counts WHERE start < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    async fn sign_in_failures(&self, keys: &[String]) -> Result<Vec<Option<SignInFailures>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT key, count, last_at FROM sign_in_failures WHERE key IN ({})",
            placeholders(1, keys.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for key in keys {
            q = q.bind(key.as_str());
        }
        let mut found: HashMap<String, SignInFailures> = HashMap::new();
        for row in q.fetch_all(&self.read).await? {
            found.insert(
                row.try_get("key")?,
                SignInFailures {
                    count: u32::try_from(row.try_get::<i64, _>("count")?).unwrap_or(u32::MAX),
                    last_at: row.try_get("last_at")?,
                },
            );
        }
        Ok(keys.iter().map(|k| found.get(k).copied()).collect())
    }

    async fn record_sign_in_failure(
        &self,
        keys: &[String],
        now: i64,
        forget_ms: i64,
        max_keys: u64,
    ) -> Result<()> {
        self.retrying(|| self.record_sign_in_failure_once(keys, now, forget_ms, max_keys))
            .await
    }

    async fn clear_sign_in_failure(&self, pair: &str, client: &str) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
            .bind(pair)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sign_in_failures SET count = count - 1 WHERE key = $1 AND count > 0")
            .bind(client)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
