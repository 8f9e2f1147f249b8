//! Periodic jobs that run once per period across every worker and replica (the advisory
//! re-check, garbage collection): each process queues the job when the last one ended a
//! period ago, and whichever claims it through the job queue runs it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::Registry;
use crate::error::Result;
use agora_store::now_ms;

/// Queues a job of `kind` unless one is queued or running, or the last one ended less
/// than `every` ago; true when it queued one.
pub async fn schedule(registry: &Registry, kind: &str, every: Duration) -> Result<bool> {
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    let last = registry.meta.jobs(kind, 1).await?;
    let due = match last.first() {
        None => true,
        Some(job) => job
            .finished_at
            .is_some_and(|ended| now_ms().saturating_sub(ended) >= every),
    };
    if due {
        registry.meta.enqueue_job(kind, "all", 3).await?;
    }
    Ok(due)
}

/// Runs the queued job of `kind` with `work` if `worker` claims it (ended done, or failed
/// with the error for a retry after the queue's backoff); true when it ran one.
pub async fn work<F, Fut>(
    registry: &Registry,
    worker: &str,
    kind: &str,
    lease: Duration,
    work: F,
) -> Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let Some(job) = registry.meta.claim_job(worker, &[kind], lease).await? else {
        return Ok(false);
    };
    match work().await {
        Ok(()) => {
            registry.meta.complete_job(&job).await?;
        }
        Err(e) => {
            let retry = registry.meta.fail_job(&job, &e.to_string()).await?;
            tracing::warn!(job = kind, error = %e, ?retry, "a scheduled job failed");
        }
    }
    Ok(true)
}

/// The loop `agora serve` and `agora worker` run for a periodic job: every minute (or
/// `every`, if shorter) it queues the job when due and runs `run` if this worker claims
/// it. Runs until its task is dropped.
pub async fn run_every<F, Fut>(
    registry: Arc<Registry>,
    worker: String,
    kind: &'static str,
    every: Duration,
    lease: Duration,
    run: F,
) where
    F: Fn(Arc<Registry>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let tick = every.min(Duration::from_secs(60));
    loop {
        let step = async {
            schedule(&registry, kind, every).await?;
            work(&registry, &worker, kind, lease, || run(registry.clone())).await
        };
        if let Err(e) = step.await {
            tracing::warn!(job = kind, error = %e, "a scheduled job could not run");
        }
        tokio::time::sleep(tick).await;
    }
}
