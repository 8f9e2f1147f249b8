//! Verification runs of releases: each run's outcome and report, the newest one being
//! the release's current verdict.

use async_trait::async_trait;

use super::{ClaimedJob, LogWriter, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRecord {
    pub id: i64,
    pub version_id: i64,
    /// `verified`, `needs-review` or `rejected`.
    pub outcome: String,
    /// The report as JSON (`agora_core::verification::VerificationReport`).
    pub report: String,
    pub checked_at: i64,
}

#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// Records a run; with `log_entry`, its verdict is appended to the transparency log in
    /// the same transaction.
    async fn record_verification(
        &self,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
        log_entry: Option<&LogWriter>,
    ) -> Result<i64>;

    /// Records a worker's run of `job` and ends the job as done, in one transaction, only
    /// while the worker still holds `job`'s lease: a run that outlived its lease (another
    /// worker took the job over) records nothing and returns `None`, so each job's report
    /// is recorded once however often it was started. `log_entry` as for
    /// [`VerificationStore::record_verification`].
    async fn record_verification_job(
        &self,
        job: &ClaimedJob,
        version_id: i64,
        outcome: &str,
        report: &str,
        checked_at: i64,
        log_entry: Option<&LogWriter>,
    ) -> Result<Option<i64>>;

    /// Records an administrator's decision as the version's newest run, with its audit
    /// event (`version.review` on `target`, detail `reason`), in one transaction.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<i64>;

    /// The newest run of a version, if it was checked yet.
    async fn latest_verification(&self, version_id: i64) -> Result<Option<VerificationRecord>>;

    /// The review queue: the versions (not removed) whose newest run has `outcome`, that
    /// run first by newest, from the run before the run id `before`, at most `limit`.
    async fn verification_queue(
        &self,
        outcome: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<QueuedVerification>>;
}

/// A version in the review queue and its newest run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedVerification {
    pub publisher: String,
    pub name: String,
    pub version: String,
    pub run: VerificationRecord,
}
