//! Webhooks on SQL.

use agora_core::audit::AuditAction;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::metadata::*;
use crate::{StoreError, now_ms};

const HOOK_COLUMNS: &str = "w.id, w.publisher_id, p.name AS publisher, w.url, w.events, \
     w.secret, w.enabled, w.created_by, w.created_at";
const HOOK_FROM: &str = "webhooks w LEFT JOIN publishers p ON p.id = w.publisher_id";

/// What a hook's audit events name as their target: its publisher, or `registry`.
async fn hook_target(tx: &mut sqlx::Transaction<'static, sqlx::Any>, id: i64) -> Result<String> {
    let publisher: Option<String> = sqlx::query_scalar(
        "SELECT p.name FROM webhooks w LEFT JOIN publishers p ON p.id = w.publisher_id \
         WHERE w.id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(publisher.unwrap_or_else(|| "registry".to_owned()))
}

fn hook_from_row(r: &AnyRow) -> Result<WebhookRecord> {
    let events: String = r.try_get("events")?;
    Ok(WebhookRecord {
        id: r.try_get("id")?,
        publisher: r.try_get("publisher")?,
        url: r.try_get("url")?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        secret: r.try_get("secret")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn delivery_from_row(r: &AnyRow) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        message_id: r.try_get("message_id")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
    })
}

fn attempt_from_row(r: &AnyRow) -> Result<AttemptRecord> {
    let status: Option<i64> = r.try_get("status_code")?;
    Ok(AttemptRecord {
        delivery_id: r.try_get("delivery_id")?,
        message_id: r.try_get("message_id")?,
        event: r.try_get("event")?,
        attempt: u32::try_from(r.try_get::<i64, _>("attempt")?).unwrap_or(0),
        at: r.try_get("at")?,
        status_code: status.and_then(|s| u16::try_from(s).ok()),
        error: r.try_get("error")?,
        duration_ms: r.try_get("duration_ms")?,
    })
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook(&self, hook: &NewWebhook) -> Result<WebhookRecord> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (publisher_id, url, events, secret, enabled, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(hook.publisher_id)
        .bind(&hook.url)
        .bind(hook.events.join(","))
        .bind(&hook.secret)
        .bind(i64::from(hook.enabled))
        .bind(&hook.created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let target = hook_target(&mut tx, id).await?;
        SqlStore::audit(
            &mut tx,
            &hook.created_by,
            AuditAction::WebhookCreate,
            &target,
            Some(format!(
                "hook {id}: {} ({})",
                hook.url,
                hook.events.join(", ")
            )),
        )
        .await?;
        tx.commit().await?;
        let (record, _) = self
            .webhook(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("webhook {id} vanished after insert")))?;
        Ok(record)
    }

    async fn webhooks(&self, publisher_id: Option<i64>) -> Result<Vec<WebhookRecord>> {
        let rows = match publisher_id {
            Some(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {HOOK_COLUMNS} FROM {HOOK_FROM} WHERE w.publisher_id = $1 ORDER BY w.id"
                )))
                .bind(id)
                .fetch_all(&self.read)
                .await?
            }
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {HOOK_COLUMNS} FROM {HOOK_FROM} WHERE w.publisher_id IS NULL ORDER BY w.id"
            )))
            .fetch_all(&self.read)
            .await?,
        };
        rows.iter().map(hook_from_row).collect()
    }

    async fn webhook(&self, id: i64) -> Result<Option<(WebhookRecord, Option<i64>)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOOK_COLUMNS} FROM {HOOK_FROM} WHERE w.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.write)
        .await?;
        row.map(|r| Ok((hook_from_row(&r)?, r.try_get("publisher_id")?)))
            .transpose()
    }

    async fn delete_webhook(&self, id: i64, actor: &str) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let url: Option<String> = sqlx::query_scalar("SELECT url FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(url) = url else {
            return Ok(false);
        };
        let target = hook_target(&mut tx, id).await?;
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        SqlStore::audit(
            &mut tx,
            actor,
            AuditAction::WebhookRemove,
            &target,
            Some(format!("hook {id}: {url}")),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn webhooks_for_event(
        &self,
        publisher_id: i64,
        event: &str,
    ) -> Result<Vec<WebhookRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOOK_COLUMNS} FROM {HOOK_FROM} \
             WHERE w.enabled = 1 AND (w.publisher_id = $1 OR w.publisher_id IS NULL) ORDER BY w.id"
        )))
        .bind(publisher_id)
        .fetch_all(&self.read)
        .await?;
        let hooks = rows.iter().map(hook_from_row).collect::<Result<Vec<_>>>()?;
        Ok(hooks
            .into_iter()
            .filter(|h| h.events.iter().any(|e| e == event))
            .collect())
    }

    async fn enqueue_delivery(
        &self,
        webhook_id: i64,
        message_id: &str,
        event: &str,
        payload: &str,
        max_attempts: u32,
    ) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (webhook_id, message_id, event, payload, state, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id",
        )
        .bind(webhook_id)
        .bind(message_id)
        .bind(event)
        .bind(payload)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO jobs (kind, subject, state, attempts, max_attempts, run_after, created_at) \
             VALUES ($1, $2, 'queued', 0, $3, $4, $4)",
        )
        .bind(WEBHOOK_JOB_KIND)
        .bind(id.to_string())
        .bind(i64::from(max_attempts.max(1)))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn delivery(&self, id: i64) -> Result<Option<DeliveryRecord>> {
        let row = sqlx::query(
            "SELECT id, webhook_id, message_id, event, payload, state, created_at \
             FROM webhook_deliveries WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn record_attempt(
        &self,
        delivery: &DeliveryRecord,
        attempt: &AttemptRecord,
        state: DeliveryState,
        keep: u32,
    ) -> Result<()> {
        let keep = i64::from(keep.max(1));
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, webhook_id, attempt, at, status_code, error, duration_ms) \
             SELECT id, webhook_id, $2, $3, $4, $5, $6 FROM webhook_deliveries WHERE id = $1",
        )
        .bind(delivery.id)
        .bind(i64::from(attempt.attempt))
        .bind(attempt.at)
        .bind(attempt.status_code.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(attempt.duration_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE webhook_deliveries SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(delivery.id)
            .execute(&mut *tx)
            .await?;
        // The newest `keep` attempts of the hook stay, and so do its newest `keep`
        // deliveries and every one still pending; older ones go with their attempts.
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE webhook_id = $1 AND id <= \
             (SELECT id FROM webhook_attempts WHERE webhook_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(delivery.webhook_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND state <> 'pending' AND id <= \
             (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(delivery.webhook_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn webhook_attempts(&self, webhook_id: i64, limit: u32) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT a.delivery_id, d.message_id, d.event, a.attempt, a.at, a.status_code, a.error, \
             a.duration_ms FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
             WHERE a.webhook_id = $1 ORDER BY a.id DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }
}
