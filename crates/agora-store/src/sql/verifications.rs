//! Verification runs on SQL.

use async_trait::async_trait;
use sqlx::{Any, Row};

use super::SqlStore;
use crate::metadata::*;

/// Inserts one run of a version, alone or inside a transaction; returns its id.
async fn insert_run<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
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
    .fetch_one(executor)
    .await?;
    Ok(row.try_get("id")?)
}

#[async_trait]
impl VerificationStore for SqlStore {
    async fn record_verification(
        &self,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
    ) -> Result<i64> {
        insert_run(&self.write, version_id, outcome, report, checked_at).await
    }

    async fn record_verification_job(
        &self,
        job: &ClaimedJob,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.write.begin().await?;
        // The lease check first: on PostgreSQL the job's row stays locked until commit, so
        // no other worker can take the job over between the check and the report.
        let held = super::jobs::complete_query(job).execute(&mut *tx).await?;
        if held.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id = insert_run(&mut *tx, version_id, outcome, report, checked_at).await?;
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
    ) -> Result<i64> {
        let mut tx = self.write.begin().await?;
        let id = insert_run(&mut *tx, version_id, outcome, report, checked_at).await?;
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

    async fn latest_verification(&self, version_id: i64) -> Result<Option<VerificationRecord>> {
        let row = sqlx::query(
            "SELECT id, version_id, outcome, report, checked_at FROM verifications \
             WHERE version_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(version_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(VerificationRecord {
                id: r.try_get("id")?,
                version_id: r.try_get("version_id")?,
                outcome: r.try_get("outcome")?,
                report: r.try_get("report")?,
                checked_at: r.try_get("checked_at")?,
            })
        })
        .transpose()
    }
}
