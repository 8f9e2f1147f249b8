//! Tenants, their members, instances and approved sets on SQL. Membership changes lock the
//! tenant's row, so a tenant can never lose its last administrator to two concurrent
//! changes; a pin change is one transaction with its (sealed) log entry, the generation's
//! bump and its audit event.

use agora_core::audit::AuditAction;
use agora_core::tenant::TenantRole;
use async_trait::async_trait;
use sqlx::any::{AnyQueryResult, AnyRow};
use sqlx::{Any, Row, Transaction};

use super::rows::{corrupt, parse_digest};
use super::{Dialect, SqlStore};
use crate::metadata::*;
use crate::{StoreError, now_ms};

/// The columns of `tenants t`, named `t_...` to keep them apart from a joined table's.
const TENANT_COLUMNS: &str = "t.id AS t_id, t.name AS t_name, t.display_name AS t_display_name, \
     t.policy AS t_policy, t.auto_update AS t_auto_update, t.generation AS t_generation, \
     t.created_by AS t_created_by, t.created_at AS t_created_at";

const INSTANCE_COLUMNS: &str = "i.id, i.tenant_id, i.name, i.created_by, i.created_at, \
     i.revoked_at, i.last_seen_at, i.core_version, i.runner_version, i.platform, i.generation, \
     i.state, i.detail, i.report";

/// A pin with its plugin's names and its log entry's opening.
const PIN_COLUMNS: &str = "tp.tenant_id, tp.plugin_id, p.publisher, p.name, tp.version, \
     tp.manifest_digest, tp.reach, tp.approved_by, tp.approved_at, tp.log_index, \
     l.opening AS log_opening, tp.previous_version, tp.previous_digest, tp.previous_reach";
const PIN_FROM: &str = "tenant_pins tp JOIN plugins p ON p.id = tp.plugin_id \
     LEFT JOIN log_entries l ON l.idx = tp.log_index";

fn pin_select(condition: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "SELECT {PIN_COLUMNS} FROM {PIN_FROM} WHERE {condition} ORDER BY p.publisher, p.name"
    ))
}

fn tenant_from_row(r: &AnyRow) -> Result<TenantRecord> {
    Ok(TenantRecord {
        id: r.try_get("t_id")?,
        name: r.try_get("t_name")?,
        display_name: r.try_get("t_display_name")?,
        policy: r.try_get("t_policy")?,
        auto_update: r.try_get::<i64, _>("t_auto_update")? != 0,
        generation: r.try_get("t_generation")?,
        created_by: r.try_get("t_created_by")?,
        created_at: r.try_get("t_created_at")?,
    })
}

/// Zero rows changed: the instance does not exist.
fn instance_found(done: AnyQueryResult, instance_id: i64) -> Result<()> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("instance id {instance_id}")));
    }
    Ok(())
}

/// A stored member role, checked.
fn role_from_row(r: &AnyRow) -> Result<String> {
    let role: String = r.try_get("role")?;
    match TenantRole::parse(&role) {
        Some(parsed) => Ok(parsed.as_str().to_owned()),
        None => Err(corrupt("tenant role", &role)),
    }
}

fn instance_from_row(r: &AnyRow) -> Result<InstanceRecord> {
    let state: Option<String> = r.try_get("state")?;
    if let Some(s) = state.as_deref()
        && !matches!(s, "converged" | "failed")
    {
        return Err(corrupt("instance state", s));
    }
    Ok(InstanceRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        core_version: r.try_get("core_version")?,
        runner_version: r.try_get("runner_version")?,
        platform: r.try_get("platform")?,
        generation: r.try_get("generation")?,
        state,
        detail: r.try_get("detail")?,
        report: r.try_get("report")?,
    })
}

fn pin_from_row(r: &AnyRow) -> Result<PinRecord> {
    let manifest_digest: String = r.try_get("manifest_digest")?;
    parse_digest(&manifest_digest)?;
    let previous = match (
        r.try_get::<Option<String>, _>("previous_version")?,
        r.try_get::<Option<String>, _>("previous_digest")?,
        r.try_get::<Option<String>, _>("previous_reach")?,
    ) {
        (Some(version), Some(digest), Some(reach)) => Some((version, digest, reach)),
        _ => None,
    };
    Ok(PinRecord {
        tenant_id: r.try_get("tenant_id")?,
        plugin_id: r.try_get("plugin_id")?,
        publisher: r.try_get("publisher")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        manifest_digest,
        reach: r.try_get("reach")?,
        approved_by: r.try_get("approved_by")?,
        approved_at: r.try_get("approved_at")?,
        log_index: r.try_get("log_index")?,
        log_opening: r.try_get("log_opening")?,
        previous,
    })
}

impl SqlStore {
    /// A tenant's name, read inside `tx`; with `lock`, its row is locked for a membership
    /// or pin change (PostgreSQL; SQLite has one writer), so two concurrent demotions
    /// cannot both see the other administrator.
    async fn tenant_name(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant_id: i64,
        lock: bool,
    ) -> Result<String> {
        let sql = if lock && self.dialect == Dialect::Postgres {
            "SELECT name FROM tenants WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT name FROM tenants WHERE id = $1"
        };
        sqlx::query_scalar(sql)
            .bind(tenant_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant id {tenant_id}")))
    }

    /// Refuses a membership change that leaves the tenant without an administrator.
    async fn keep_an_admin(
        tx: &mut Transaction<'static, Any>,
        tenant_id: i64,
        name: &str,
    ) -> Result<()> {
        let admins: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM tenant_members WHERE tenant_id = $1 AND role = 'admin'",
        )
        .bind(tenant_id)
        .fetch_one(&mut **tx)
        .await?;
        if admins == 0 {
            return Err(StoreError::Conflict(format!(
                "tenant {name} must keep an administrator; make another member an administrator first"
            )));
        }
        Ok(())
    }

    /// Runs `sql`, which selects [`TENANT_COLUMNS`] and what `rest` decodes, with `$1` =
    /// `key`.
    async fn tenant_rows<T>(
        &self,
        sql: String,
        key: i64,
        rest: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<(TenantRecord, T)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((tenant_from_row(r)?, rest(r)?)))
            .collect()
    }

    /// One attempt at [`TenantStore::change_pin`].
    async fn change_pin_once(
        &self,
        change: &PinChange,
        log: &LogWriter,
        max_pins: u32,
    ) -> Result<Option<PinRecord>> {
        let mut tx = self.begin_logged(true).await?;
        let tenant = self.tenant_name(&mut tx, change.tenant_id, true).await?;
        let current = sqlx::query(
            "SELECT version, manifest_digest, reach FROM tenant_pins WHERE tenant_id = $1 AND plugin_id = $2",
        )
        .bind(change.tenant_id)
        .bind(change.plugin_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| -> Result<(String, String, String)> {
            Ok((
                r.try_get("version")?,
                r.try_get("manifest_digest")?,
                r.try_get("reach")?,
            ))
        })
        .transpose()?;
        match (&change.to, &current) {
            (Some(_), None) => {
                let pins: i64 = sqlx::query_scalar(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM tenant_pins WHERE tenant_id = $1",
                )
                .bind(change.tenant_id)
                .fetch_one(&mut *tx)
                .await?;
                if pins >= i64::from(max_pins) {
                    return Err(StoreError::Conflict(format!(
                        "tenant {tenant} approves {pins} plugins already (at most {max_pins}); remove one first"
                    )));
                }
            }
            (None, None) => {
                return Err(StoreError::NotFound(format!(
                    "plugin id {} in the approved set of tenant {tenant}",
                    change.plugin_id
                )));
            }
            _ => {}
        }
        // Sealed and stored without a plugin id: only the tenant's readers get the opening.
        let (index, _) = Self::append_entry(&mut tx, log, None, true, None).await?;
        match &change.to {
            Some((version, digest, reach)) => {
                let previous = current.filter(|_| change.keep_previous);
                let previous = previous.as_ref();
                sqlx::query(
                    "INSERT INTO tenant_pins (tenant_id, plugin_id, version, manifest_digest, reach, \
                     approved_by, approved_at, log_index, previous_version, previous_digest, previous_reach) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET version = excluded.version, \
                     manifest_digest = excluded.manifest_digest, reach = excluded.reach, \
                     approved_by = excluded.approved_by, approved_at = excluded.approved_at, \
                     log_index = excluded.log_index, previous_version = excluded.previous_version, \
                     previous_digest = excluded.previous_digest, previous_reach = excluded.previous_reach",
                )
                .bind(change.tenant_id)
                .bind(change.plugin_id)
                .bind(version)
                .bind(digest)
                .bind(reach)
                .bind(&change.by)
                .bind(now_ms())
                .bind(index)
                .bind(previous.map(|p| p.0.as_str()))
                .bind(previous.map(|p| p.1.as_str()))
                .bind(previous.map(|p| p.2.as_str()))
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM tenant_pins WHERE tenant_id = $1 AND plugin_id = $2")
                    .bind(change.tenant_id)
                    .bind(change.plugin_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE tenants SET generation = generation + 1 WHERE id = $1")
            .bind(change.tenant_id)
            .execute(&mut *tx)
            .await?;
        Self::audit(
            &mut tx,
            &change.by,
            AuditAction::TenantPin,
            &change.audit_target,
            change.audit_detail.clone(),
        )
        .await?;
        let pin = sqlx::query(pin_select("tp.tenant_id = $1 AND tp.plugin_id = $2"))
            .bind(change.tenant_id)
            .bind(change.plugin_id)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(pin_from_row)
            .transpose()?;
        tx.commit().await?;
        Ok(pin)
    }
}

#[async_trait]
impl TenantStore for SqlStore {
    async fn create_tenant(&self, tenant: &NewTenant) -> Result<TenantRecord> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (name, display_name, policy, auto_update, generation, created_by, created_at) \
             VALUES ($1, $2, $3, 0, 0, $4, $5) RETURNING id",
        )
        .bind(&tenant.name)
        .bind(tenant.display_name.as_deref())
        .bind(&tenant.policy)
        .bind(&tenant.actor)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::conflict_on_unique(e, || format!("tenant {} already exists", tenant.name))
        })?;
        sqlx::query(
            "INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')",
        )
        .bind(id)
        .bind(tenant.admin_user_id)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &tenant.actor,
            AuditAction::TenantCreate,
            &tenant.name,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(TenantRecord {
            id,
            name: tenant.name.clone(),
            display_name: tenant.display_name.clone(),
            policy: tenant.policy.clone(),
            auto_update: false,
            generation: 0,
            created_by: tenant.actor.clone(),
            created_at: now,
        })
    }

    async fn tenant(&self, name: &str) -> Result<Option<TenantRecord>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants t WHERE t.name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenants(&self, limit: u32) -> Result<Vec<TenantRecord>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants t ORDER BY t.name LIMIT $1");
        let rows = self.tenant_rows(sql, i64::from(limit), |_| Ok(())).await?;
        Ok(rows.into_iter().map(|(t, ())| t).collect())
    }

    async fn tenants_of(&self, user_id: i64) -> Result<Vec<(TenantRecord, String)>> {
        let sql = format!(
            "SELECT {TENANT_COLUMNS}, m.role FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $1 ORDER BY t.name"
        );
        self.tenant_rows(sql, user_id, role_from_row).await
    }

    async fn tenant_role(&self, tenant_id: i64, user_id: i64) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT role FROM tenant_members WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(role_from_row).transpose()
    }

    async fn tenant_members(&self, tenant_id: i64) -> Result<Vec<TenantMemberRecord>> {
        let rows = sqlx::query(
            "SELECT u.username, m.role FROM tenant_members m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 ORDER BY u.username",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TenantMemberRecord {
                    user: r.try_get("username")?,
                    role: role_from_row(r)?,
                })
            })
            .collect()
    }

    async fn set_tenant_member(
        &self,
        tenant_id: i64,
        user_id: i64,
        role: Option<&str>,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let name = self.tenant_name(&mut tx, tenant_id, true).await?;
        let username: Option<String> =
            sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT role FROM tenant_members WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let username = match (username, role) {
            (Some(username), _) => username,
            (None, Some(_)) => return Err(StoreError::NotFound(format!("user id {user_id}"))),
            (None, None) => return Ok(false),
        };
        if current.as_deref() == role {
            return Ok(false);
        }
        match role {
            Some(role) => {
                sqlx::query(
                    "INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(role)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Self::keep_an_admin(&mut tx, tenant_id, &name).await?;
        Self::audit(
            &mut tx,
            actor,
            AuditAction::TenantMember,
            &format!("{name}:{username}"),
            Some(role.unwrap_or("removed").to_owned()),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_tenant_policy(
        &self,
        tenant_id: i64,
        policy: &str,
        auto_update: bool,
        actor: &str,
    ) -> Result<TenantRecord> {
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE tenants SET policy = $1, auto_update = $2, generation = generation + 1 \
             WHERE id = $3 RETURNING name",
        )
        .bind(policy)
        .bind(i64::from(auto_update))
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant id {tenant_id}")))?;
        Self::audit(
            &mut tx,
            actor,
            AuditAction::TenantPolicy,
            &name,
            Some(format!("auto_update={auto_update}")),
        )
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TENANT_COLUMNS} FROM tenants t WHERE t.id = $1"
        )))
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        tenant_from_row(&row)
    }

    async fn create_instance(
        &self,
        tenant_id: i64,
        name: &str,
        token_hash: &str,
        actor: &str,
    ) -> Result<InstanceRecord> {
        let mut tx = self.write.begin().await?;
        let tenant = self.tenant_name(&mut tx, tenant_id, false).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO instances (tenant_id, name, token_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(token_hash)
        .bind(actor)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::conflict_on_unique(e, || {
                format!("tenant {tenant} already has an instance named {name}")
            })
        })?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.id = $1"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let instance = instance_from_row(&row)?;
        Self::audit(
            &mut tx,
            actor,
            AuditAction::InstanceRegister,
            &format!("{tenant}/{name}"),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(instance)
    }

    async fn instances(&self, tenant_id: i64) -> Result<Vec<InstanceRecord>> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances i WHERE i.tenant_id = $1 ORDER BY i.name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(instance_from_row).collect()
    }

    async fn instance_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(InstanceRecord, TenantRecord)>> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS}, {TENANT_COLUMNS} FROM instances i JOIN tenants t ON t.id = i.tenant_id \
             WHERE i.token_hash = $1 AND i.revoked_at IS NULL"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok((instance_from_row(&r)?, tenant_from_row(&r)?)))
            .transpose()
    }

    async fn revoke_instance(&self, tenant_id: i64, name: &str, actor: &str) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let tenant = self.tenant_name(&mut tx, tenant_id, false).await?;
        let revoked = sqlx::query(
            "UPDATE instances SET revoked_at = $1 WHERE tenant_id = $2 AND name = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if revoked {
            Self::audit(
                &mut tx,
                actor,
                AuditAction::InstanceRevoke,
                &format!("{tenant}/{name}"),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn touch_instance(&self, instance_id: i64, at: i64) -> Result<()> {
        let done = sqlx::query("UPDATE instances SET last_seen_at = $1 WHERE id = $2")
            .bind(at)
            .bind(instance_id)
            .execute(&self.write)
            .await?;
        instance_found(done, instance_id)
    }

    async fn record_instance_report(
        &self,
        instance_id: i64,
        report: &InstanceReportRecord,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE instances SET last_seen_at = $1, core_version = $2, runner_version = $3, \
             platform = $4, generation = $5, state = $6, detail = $7, report = $8 WHERE id = $9",
        )
        .bind(report.at)
        .bind(&report.core_version)
        .bind(&report.runner_version)
        .bind(&report.platform)
        .bind(report.generation)
        .bind(&report.state)
        .bind(report.detail.as_deref())
        .bind(&report.report)
        .bind(instance_id)
        .execute(&self.write)
        .await?;
        instance_found(done, instance_id)
    }

    async fn pins(&self, tenant_id: i64) -> Result<Vec<PinRecord>> {
        let rows = sqlx::query(pin_select("tp.tenant_id = $1"))
            .bind(tenant_id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(pin_from_row).collect()
    }

    async fn pin(&self, tenant_id: i64, plugin_id: i64) -> Result<Option<PinRecord>> {
        let row = sqlx::query(pin_select("tp.tenant_id = $1 AND tp.plugin_id = $2"))
            .bind(tenant_id)
            .bind(plugin_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(pin_from_row).transpose()
    }

    async fn change_pin(
        &self,
        change: &PinChange,
        log: &LogWriter,
        max_pins: u32,
    ) -> Result<Option<PinRecord>> {
        self.retrying(|| self.change_pin_once(change, log, max_pins))
            .await
    }

    async fn auto_update_pins(&self, plugin_id: i64) -> Result<Vec<(TenantRecord, PinRecord)>> {
        let sql = format!(
            "SELECT {TENANT_COLUMNS}, {PIN_COLUMNS} FROM {PIN_FROM} JOIN tenants t ON t.id = tp.tenant_id \
             WHERE tp.plugin_id = $1 AND t.auto_update = 1 ORDER BY t.name"
        );
        self.tenant_rows(sql, plugin_id, pin_from_row).await
    }
}
