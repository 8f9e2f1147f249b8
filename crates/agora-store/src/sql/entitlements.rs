//! Entitlements on SQL: a grant or revocation and its audit event are one transaction.

use agora_core::audit::AuditAction;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::metadata::*;
use crate::{StoreError, now_ms};

const COLUMNS: &str = "e.plugin_id, p.publisher, p.name, e.tenant_id, t.name AS tenant, \
     e.granted_by, e.granted_at";
const FROM: &str = "entitlements e JOIN plugins p ON p.id = e.plugin_id \
     JOIN tenants t ON t.id = e.tenant_id";

fn entitlement_from_row(r: &AnyRow) -> Result<EntitlementRecord> {
    Ok(EntitlementRecord {
        plugin_id: r.try_get("plugin_id")?,
        publisher: r.try_get("publisher")?,
        name: r.try_get("name")?,
        tenant_id: r.try_get("tenant_id")?,
        tenant: r.try_get("tenant")?,
        granted_by: r.try_get("granted_by")?,
        granted_at: r.try_get("granted_at")?,
    })
}

impl SqlStore {
    /// `publisher/name:tenant`, the audit target, read inside the transaction (which also
    /// proves both exist).
    async fn entitlement_target(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        plugin_id: i64,
        tenant_id: i64,
    ) -> Result<String> {
        let plugin: Option<String> =
            sqlx::query_scalar("SELECT publisher || '/' || name FROM plugins WHERE id = $1")
                .bind(plugin_id)
                .fetch_optional(&mut **tx)
                .await?;
        let plugin =
            plugin.ok_or_else(|| StoreError::NotFound(format!("plugin id {plugin_id}")))?;
        let tenant: Option<String> = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await?;
        let tenant =
            tenant.ok_or_else(|| StoreError::NotFound(format!("tenant id {tenant_id}")))?;
        Ok(format!("{plugin}:{tenant}"))
    }

    async fn entitlements_where(
        &self,
        condition: &str,
        order: &str,
        key: i64,
        limit: u32,
    ) -> Result<Vec<EntitlementRecord>> {
        let sql =
            format!("SELECT {COLUMNS} FROM {FROM} WHERE {condition} ORDER BY {order} LIMIT $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(entitlement_from_row)
            .collect()
    }
}

#[async_trait]
impl EntitlementStore for SqlStore {
    async fn grant_entitlement(&self, plugin_id: i64, tenant_id: i64, actor: &str) -> Result<bool> {
        self.retrying(|| async {
            let mut tx = self.write.begin().await?;
            let target = Self::entitlement_target(&mut tx, plugin_id, tenant_id).await?;
            let done = sqlx::query(
                "INSERT INTO entitlements (plugin_id, tenant_id, granted_by, granted_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (plugin_id, tenant_id) DO NOTHING",
            )
            .bind(plugin_id)
            .bind(tenant_id)
            .bind(actor)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            Self::audit(&mut tx, actor, AuditAction::EntitlementGrant, &target, None).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn revoke_entitlement(
        &self,
        plugin_id: i64,
        tenant_id: i64,
        actor: &str,
    ) -> Result<bool> {
        self.retrying(|| async {
            let mut tx = self.write.begin().await?;
            let target = Self::entitlement_target(&mut tx, plugin_id, tenant_id).await?;
            let done =
                sqlx::query("DELETE FROM entitlements WHERE plugin_id = $1 AND tenant_id = $2")
                    .bind(plugin_id)
                    .bind(tenant_id)
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            Self::audit(
                &mut tx,
                actor,
                AuditAction::EntitlementRevoke,
                &target,
                None,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn entitlement(
        &self,
        plugin_id: i64,
        tenant_id: i64,
    ) -> Result<Option<EntitlementRecord>> {
        let sql =
            format!("SELECT {COLUMNS} FROM {FROM} WHERE e.plugin_id = $1 AND e.tenant_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(plugin_id)
            .bind(tenant_id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(entitlement_from_row)
            .transpose()
    }

    async fn plugin_entitlements(
        &self,
        plugin_id: i64,
        limit: u32,
    ) -> Result<Vec<EntitlementRecord>> {
        self.entitlements_where("e.plugin_id = $1", "t.name", plugin_id, limit)
            .await
    }

    async fn tenant_entitlements(
        &self,
        tenant_id: i64,
        limit: u32,
    ) -> Result<Vec<EntitlementRecord>> {
        self.entitlements_where("e.tenant_id = $1", "p.publisher, p.name", tenant_id, limit)
            .await
    }

    async fn member_tenants(&self, user_id: i64) -> Result<Vec<(i64, String)>> {
        sqlx::query(
            "SELECT t.id, t.name FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $1 ORDER BY t.name",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
        .collect()
    }
}
