//! The job queue on SQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Dialect, SqlStore};
use crate::metadata::*;
use crate::now_ms;

const JOB_COLUMNS: &str = "id, kind, subject, state, attempts, max_attempts, run_after, last_error, created_at, finished_at";

fn job_record(r: &AnyRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        state: r.try_get("state")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0),
        max_attempts: u32::try_from(r.try_get::<i64, _>("max_attempts")?).unwrap_or(0),
        run_after: r.try_get("run_after")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// Ends `job` as done, if its claim still holds the lease (one row affected) — alone or
/// inside a transaction that records what the job produced.
pub(super) fn complete_query(
    job: &ClaimedJob,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "UPDATE jobs SET state = 'done', lease_until = NULL, finished_at = $1, last_error = NULL \
         WHERE id = $2 AND state = 'running' AND worker = $3 AND attempts = $4",
    )
    .bind(now_ms())
    .bind(job.id)
    .bind(&job.lease.worker)
    .bind(i64::from(job.attempt))
}

/// A new queued job ($1 kind, $2 subject, $3 attempts, $4 now), unless one is open.
macro_rules! queue_job {
    () => {
        "INSERT INTO jobs (kind, subject, state, attempts, max_attempts, run_after, created_at) \
         VALUES ($1, $2, 'queued', 0, $3, $4, $4) ON CONFLICT DO NOTHING"
    };
}

/// Queues `job` unless an open job of its kind and subject exists, in `tx` (the change it
/// belongs to); at `now`.
pub(super) async fn queue_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    job: &NewJob,
    now: i64,
) -> Result<()> {
    sqlx::query(queue_job!())
        .bind(&job.kind)
        .bind(&job.subject)
        .bind(i64::from(job.max_attempts.max(1)))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Most kinds one claim may name.
const MAX_KINDS: usize = 16;

#[async_trait]
impl JobQueue for SqlStore {
    async fn enqueue_job(&self, kind: &str, subject: &str, max_attempts: u32) -> Result<i64> {
        let now = now_ms();
        let inserted = sqlx::query(concat!(queue_job!(), " RETURNING id"))
            .bind(kind)
            .bind(subject)
            .bind(i64::from(max_attempts.max(1)))
            .bind(now)
            // To its end: a failed commit is an error (see the module's notes).
            .fetch_all(&self.write)
            .await?
            .into_iter()
            .next();
        if let Some(row) = inserted {
            return Ok(row.try_get("id")?);
        }
        let open = sqlx::query(
            "SELECT id FROM jobs WHERE kind = $1 AND subject = $2 AND state IN ('queued', 'running')",
        )
        .bind(kind)
        .bind(subject)
        .fetch_one(&self.write)
        .await?;
        Ok(open.try_get("id")?)
    }

    async fn claim_job(
        &self,
        worker: &str,
        kinds: &[&str],
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>> {
        let kinds = &kinds[..kinds.len().min(MAX_KINDS)];
        let now = now_ms();
        let until = now + lease_ms.max(1);
        // $1 now, $2 lease end, $3 worker, then the kinds.
        let kind_filter = if kinds.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 4)).collect();
            format!(" AND kind IN ({})", marks.join(", "))
        };
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            // One writer connection: the statement is atomic by itself.
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, worker = $3 \
             WHERE id = (SELECT id FROM jobs WHERE \
             ((state = 'queued' AND run_after <= $1) OR (state = 'running' AND lease_until < $1)){kind_filter} \
             ORDER BY run_after, id LIMIT 1{lock}) \
             RETURNING id, kind, subject, attempts, max_attempts"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(until)
            .bind(worker);
        for kind in kinds {
            query = query.bind(*kind);
        }
        // To its end: a claim whose commit failed (a full disk) is an error, not a job to
        // run whose lease was never written (see the module's notes).
        let Some(row) = query.fetch_all(&self.write).await?.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(ClaimedJob {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            subject: row.try_get("subject")?,
            attempt: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
            max_attempts: u32::try_from(row.try_get::<i64, _>("max_attempts")?).unwrap_or(0),
            lease: JobLease {
                worker: worker.to_owned(),
                until,
            },
        }))
    }

    async fn extend_job_lease(&self, job: &ClaimedJob, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND state = 'running' \
             AND worker = $3 AND attempts = $4",
        )
        .bind(now_ms() + lease_ms.max(1))
        .bind(job.id)
        .bind(&job.lease.worker)
        .bind(i64::from(job.attempt))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_job(&self, job: &ClaimedJob) -> Result<bool> {
        let done = complete_query(job).execute(&self.write).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail_job(&self, job: &ClaimedJob, error: &str) -> Result<Retry> {
        let now = now_ms();
        let error: String = error.chars().take(2000).collect();
        let spent = job.attempt >= job.max_attempts;
        let (state, run_after, finished) = if spent {
            ("failed", now, Some(now))
        } else {
            ("queued", now + backoff_ms(job.attempt), None)
        };
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, run_after = $2, finished_at = $3, last_error = $4, \
             lease_until = NULL WHERE id = $5 AND state = 'running' AND worker = $6 AND attempts = $7",
        )
        .bind(state)
        .bind(run_after)
        .bind(finished)
        .bind(error)
        .bind(job.id)
        .bind(&job.lease.worker)
        .bind(i64::from(job.attempt))
        .execute(&self.write)
        .await?;
        Ok(match (done.rows_affected(), spent) {
            (0, _) => Retry::LeaseLost,
            (_, true) => Retry::GaveUp,
            (_, false) => Retry::At(run_after),
        })
    }

    async fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(job_record).transpose()
    }

    async fn jobs(&self, kind: &str, limit: u32) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(kind)
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(job_record).collect()
    }
}
