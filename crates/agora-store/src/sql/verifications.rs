//! Verification runs on SQL.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::metadata::*;

/// Inserts one run of a version inside a transaction, and keeps its plugin's verdict
/// (`plugins.latest_verification`) in step; returns the run's id.
async fn insert_run(
    conn: &mut sqlx::AnyConnection,
    version_id: i64,
    outcome: &str,
    report: &str,
    checked_at: i64,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO verifications (version_id, outcome, report, checked_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(version_id)
    .bind(outcome)
    .bind(report)
    .bind(checked_at)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REFRESH_VERDICT} (SELECT plugin_id FROM versions WHERE id = $1)"
    )))
    .bind(version_id)
    .execute(&mut *conn)
    .await?;
    Ok(row.try_get("id")?)
}

/// Sets a plugin's verdict (the plugin's id follows) to the outcome of its latest
/// version's newest run, NULL when there is none.
const REFRESH_VERDICT: &str = "UPDATE plugins SET latest_verification = (\
     SELECT r.outcome FROM verifications r JOIN versions v ON v.id = r.version_id \
     WHERE v.plugin_id = plugins.id AND v.version = plugins.latest_version \
     ORDER BY r.id DESC LIMIT 1) WHERE id =";

/// Recomputes a plugin's verdict, for a change of its latest version (in the same
/// transaction as that change).
pub(super) async fn refresh_verdict(conn: &mut sqlx::AnyConnection, plugin_id: i64) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("{REFRESH_VERDICT} $1")))
        .bind(plugin_id)
        .execute(conn)
        .await?;
    Ok(())
}

impl SqlStore {
    /// Appends a run's verdict to the transparency log inside `tx` (begun with
    /// [`SqlStore::begin_logged`]), sealed when the plugin is private.
    async fn log_verdict(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        version_id: i64,
        writer: &LogWriter,
    ) -> Result<()> {
        let row = sqlx::query(
            "SELECT p.id, p.publisher_id FROM versions v JOIN plugins p ON p.id = v.plugin_id \
             WHERE v.id = $1",
        )
        .bind(version_id)
        .fetch_one(&mut **tx)
        .await?;
        let plugin_id: i64 = row.try_get("id")?;
        let publisher_id: i64 = row.try_get("publisher_id")?;
        let private = Self::is_private(tx, plugin_id).await?;
        Self::append_log(tx, writer, publisher_id, Some((plugin_id, private))).await?;
        Ok(())
    }
}

#[async_trait]
impl VerificationStore for SqlStore {
    async fn record_verification(
        &self,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
        log_entry: Option<&LogWriter>,
    ) -> Result<i64> {
        let mut tx = self.begin_logged(log_entry.is_some()).await?;
        let id = insert_run(&mut tx, version_id, outcome, report, checked_at).await?;
        if let Some(writer) = log_entry {
            Self::log_verdict(&mut tx, version_id, writer).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn record_verification_job(
        &self,
        job: &ClaimedJob,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
        log_entry: Option<&LogWriter>,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_logged(log_entry.is_some()).await?;
        // The lease check first: on PostgreSQL the job's row stays locked until commit, so
        // no other worker can take the job over between the check and the report.
        let held = super::jobs::complete_query(job).execute(&mut *tx).await?;
        if held.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id = insert_run(&mut tx, version_id, outcome, report, checked_at).await?;
        if let Some(writer) = log_entry {
            Self::log_verdict(&mut tx, version_id, writer).await?;
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn record_review(
        &self,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
        actor: &str,
        target: &str,
        reason: &str,
        log_entry: Option<&LogWriter>,
    ) -> Result<i64> {
        let mut tx = self.begin_logged(log_entry.is_some()).await?;
        let id = insert_run(&mut tx, version_id, outcome, report, checked_at).await?;
        if let Some(writer) = log_entry {
            Self::log_verdict(&mut tx, version_id, writer).await?;
        }
        SqlStore::audit(
            &mut tx,
            actor,
            agora_core::audit::AuditAction::VersionReview,
            target,
            Some(format!("{outcome}: {reason}")),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn verification_queue(
        &self,
        outcome: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QueuedVerification>> {
        // Runs with the outcome, newest first (index verifications_outcome), each kept only
        // while no newer run of its version exists (index verifications_version).
        let rows = sqlx::query(
            "SELECT r.id, r.version_id, r.outcome, r.report, r.checked_at, \
             p.publisher, p.name, v.version FROM verifications r \
             JOIN versions v ON v.id = r.version_id JOIN plugins p ON p.id = v.plugin_id \
             WHERE r.outcome = $1 AND r.id < $2 AND v.state <> 'removed' \
             AND NOT EXISTS (SELECT 1 FROM verifications n \
                 WHERE n.version_id = r.version_id AND n.id > r.id) \
             ORDER BY r.id DESC LIMIT $3",
        )
        .bind(outcome)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueuedVerification {
                    publisher: r.try_get("publisher")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    run: run_from_row(r)?,
                })
            })
            .collect()
    }

    async fn latest_verification(&self, version_id: i64) -> Result<Option<VerificationRecord>> {
        let row = sqlx::query(
            "SELECT id, version_id, outcome, report, checked_at FROM verifications \
             WHERE version_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(version_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }
}

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<VerificationRecord> {
    Ok(VerificationRecord {
        id: r.try_get("id")?,
        version_id: r.try_get("version_id")?,
        outcome: r.try_get("outcome")?,
        report: r.try_get("report")?,
        checked_at: r.try_get("checked_at")?,
    })
}
