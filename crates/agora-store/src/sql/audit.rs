//! The audit log on SQL.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::metadata::*;

#[async_trait]
impl AuditStore for SqlStore {
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
