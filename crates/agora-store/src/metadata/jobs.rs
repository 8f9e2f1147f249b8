//! The job queue: durable background work (a release's verification run, and what
//! follows it), claimed by one worker at a time under a lease.
//!
//! A job is `queued` until a worker claims it (`running`, with a lease); the worker ends
//! it `done`, or reports a failure, which queues it again after a backoff until its
//! attempts run out (`failed`). A running job whose lease expires (its worker died or
//! hung) is claimable again, so a stuck job never holds the queue. Claims are atomic:
//! on PostgreSQL with `FOR UPDATE SKIP LOCKED` (many workers, many processes, one
//! database), on SQLite through its single writer.

use async_trait::async_trait;

use super::Result;

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    /// This claim's attempt number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The lease this claim holds: only its holder may end the job.
    pub lease: JobLease,
}

/// Who holds a running job, and until when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub worker: String,
    pub until: i64,
}

/// A job as the queue records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_after: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A job to queue as part of another change's transaction (a release's verification
/// with the release), so no crash between the two can leave the change without its job.
/// Queued unless an open (queued or running) job of its kind and subject exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: String,
    pub subject: String,
    pub max_attempts: u32,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Queued again, to run at this time (Unix ms).
    At(i64),
    /// Out of attempts: failed for good.
    GaveUp,
    /// The lease was lost (another worker claimed the job after it expired): nothing
    /// was changed.
    LeaseLost,
}

/// The wait before attempt `attempt + 1` after attempt `attempt` failed: 2 s doubled per
/// attempt, at most an hour.
pub fn backoff_ms(attempt: u32) -> i64 {
    let doublings = attempt.saturating_sub(1).min(11);
    (2_000i64 << doublings).min(3_600_000)
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues `kind` for `subject` unless an open (queued or running) one exists; returns
    /// the open job's id either way.
    async fn enqueue_job(&self, kind: &str, subject: &str, max_attempts: u32) -> Result<i64>;

    /// Claims the next due job (queued and due, or running with an expired lease), for
    /// `lease_ms`, as `worker`. `kinds` limits which kinds (empty: any).
    async fn claim_job(
        &self,
        worker: &str,
        kinds: &[&str],
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>>;

    /// Extends a held lease; false when it is no longer held.
    async fn extend_job_lease(&self, job: &ClaimedJob, lease_ms: i64) -> Result<bool>;

    /// Ends a held job as done; false when the lease was lost (nothing changed).
    async fn complete_job(&self, job: &ClaimedJob) -> Result<bool>;

    /// Reports a failed attempt: queued again after [`backoff_ms`], or failed for good
    /// when its attempts are spent.
    async fn fail_job(&self, job: &ClaimedJob, error: &str) -> Result<Retry>;

    /// A job as recorded.
    async fn job(&self, id: i64) -> Result<Option<JobRecord>>;

    /// Jobs of `kind`, newest first, at most `limit`.
    async fn jobs(&self, kind: &str, limit: u32) -> Result<Vec<JobRecord>>;
}
