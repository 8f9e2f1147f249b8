//! Reviews on SQL; a plugin's rating is recomputed in the same transaction as any change.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::SqlStore;
use super::rows::*;
use crate::metadata::*;
use crate::{StoreError, now_ms};
use agora_core::audit::AuditAction;

impl SqlStore {
    /// Recomputes a plugin's rating from its visible reviews; returns `publisher/name`.
    pub(super) async fn refresh_rating(
        tx: &mut Transaction<'static, Any>,
        plugin_id: i64,
    ) -> Result<String> {
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
}

#[async_trait]
impl ReviewStore for SqlStore {
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
            AuditAction::ReviewWrite,
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
            Some(reason) => (AuditAction::ReviewHide, format!("review {id}: {reason}")),
            None => (AuditAction::ReviewShow, format!("review {id}")),
        };
        Self::audit(&mut tx, actor, action, &target, Some(detail)).await?;
        tx.commit().await?;
        Ok(true)
    }
}
