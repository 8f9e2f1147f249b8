//! Garbage collection of blobs (`agora gc`, and the scheduled `blobs.gc` job): deletes
//! the blobs nothing refers to, safely against a publish in flight.
//!
//! A run walks the blob store in pages and asks the metadata store about each page
//! ([`agora_store::GcStore`]). A blob that is unreferenced and older than the grace
//! period (by its bytes and its newest upload) is *marked*; one marked by an earlier run
//! at least the grace period ago is deleted, through a transaction that checks again that
//! it is unreferenced and not uploaded since, and removes its upload records first — so a
//! publish can no longer name it — before its bytes go. A publish, an upload, an OCI link
//! or a publisher's HEAD removes a mark; a publish or upload of a blob whose deletion has
//! begun is refused (a conflict: upload it again). Blobs younger than the grace period
//! are never touched. What remains of the race is in `docs/operations.md`.

use std::sync::Arc;
use std::time::Duration;

use agora_core::Digest;
use agora_store::{GcState, MAX_GC_BATCH, StoredBlob, now_ms};

use crate::Registry;
use crate::error::{RegistryError, Result};

/// The job kind of the scheduled collection.
pub const GC_JOB: &str = "blobs.gc";
/// The shortest grace period accepted: long enough for any publish to go from its first
/// upload to its release.
pub const MIN_GRACE: Duration = Duration::from_secs(3600);
/// The default grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Who the audit log names for deletions.
pub const ACTOR: &str = "agora-gc";
/// A deletion begun this long ago and not ended was cut off (its run stopped between the
/// metadata and the bytes); the next run finishes it.
const STALE_DELETION: Duration = Duration::from_secs(3600);
/// Blobs listed, and asked about, per page.
const PAGE: usize = MAX_GC_BATCH;

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Nothing younger than this is touched, and a mark must be this old to delete.
    pub grace: Duration,
    /// Report what a run would do, changing nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            grace: DEFAULT_GRACE,
            dry_run: false,
        }
    }
}

/// What a run did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// The grace period, in seconds.
    pub grace_secs: u64,
    /// Blobs the store holds, and their bytes.
    pub scanned: u64,
    pub scanned_bytes: u64,
    /// Of those, referenced by metadata.
    pub referenced: u64,
    /// Unreferenced but younger than the grace period: left alone.
    pub young: u64,
    /// Unreferenced and marked by this run (deleted by a run a grace period later).
    pub marked: u64,
    /// Marked by an earlier run, less than a grace period ago.
    pub waiting: u64,
    /// Deleted, and their bytes.
    pub deleted: u64,
    pub deleted_bytes: u64,
    /// Candidates that were used again before their deletion began (kept).
    pub kept_in_use: u64,
    /// Deletions an earlier run began and this one finished.
    pub finished: u64,
    /// Upload leftovers (temporary files of cut-off uploads) removed.
    pub partials_removed: u64,
    /// Blobs whose bytes could not be deleted (retried by the next run).
    pub failed: u64,
}

/// Checks a grace period given by an operator.
pub fn check_grace(field: &str, grace: Duration) -> Result<Duration> {
    if grace < MIN_GRACE {
        return Err(RegistryError::field(
            field,
            format!(
                "{} seconds is shorter than the shortest grace period",
                grace.as_secs()
            ),
            Some("at least 1 hour: a publish in flight holds its uploads that long"),
        ));
    }
    Ok(grace)
}

/// One collection: finishes deletions an earlier run left, removes upload leftovers older
/// than the grace period, then marks and deletes as the module says.
pub async fn run(registry: &Registry, options: GcOptions) -> Result<GcReport> {
    check_grace("grace", options.grace)?;
    let start = now_ms();
    let grace_ms = i64::try_from(options.grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff = start.saturating_sub(grace_ms);
    let mut report = GcReport {
        dry_run: options.dry_run,
        grace_secs: options.grace.as_secs(),
        ..GcReport::default()
    };
    if !options.dry_run {
        finish_stale(registry, start, &mut report).await?;
        report.partials_removed = registry.blobs.sweep_partials(options.grace).await?;
    }
    let mut after: Option<Digest> = None;
    loop {
        let page = registry.blobs.list(after.as_ref(), PAGE).await?;
        let digests: Vec<Digest> = page.iter().map(|b| b.digest).collect();
        let uses = registry.meta.blob_uses(&digests).await?;
        let (mut to_mark, mut to_unmark, mut candidates) = (Vec::new(), Vec::new(), Vec::new());
        for (blob, used) in page.iter().zip(&uses) {
            report.scanned += 1;
            report.scanned_bytes += blob.size;
            let mark = used.mark;
            if used.referenced {
                report.referenced += 1;
                if mark.is_some_and(|m| m.state == GcState::Marked) {
                    to_unmark.push(blob.digest);
                }
                continue;
            }
            if mark.is_some_and(|m| m.state == GcState::Deleting) {
                continue;
            }
            let newest = blob.modified_ms.max(used.last_upload_ms.unwrap_or(0));
            if newest > cutoff {
                report.young += 1;
                continue;
            }
            match mark {
                None => {
                    report.marked += 1;
                    to_mark.push(blob.digest);
                }
                Some(m) if m.marked_at <= cutoff => candidates.push(blob.clone()),
                Some(_) => report.waiting += 1,
            }
        }
        let full = page.len() >= PAGE;
        if !options.dry_run {
            registry.meta.gc_unmark(&to_unmark).await?;
            registry.meta.gc_mark(&to_mark, start).await?;
            let upto = if full { digests.last() } else { None };
            registry
                .meta
                .gc_forget_absent(after.as_ref(), upto, &digests)
                .await?;
        }
        for blob in candidates {
            delete(registry, &blob, cutoff, options.dry_run, &mut report).await?;
        }
        if !full {
            break;
        }
        after = digests.last().copied();
    }
    tracing::info!(
        scanned = report.scanned,
        deleted = report.deleted,
        deleted_bytes = report.deleted_bytes,
        marked = report.marked,
        dry_run = report.dry_run,
        "blob garbage collection"
    );
    Ok(report)
}

/// Deletes one candidate if the metadata store still agrees it may go.
async fn delete(
    registry: &Registry,
    blob: &StoredBlob,
    cutoff: i64,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    if dry_run {
        report.deleted += 1;
        report.deleted_bytes += blob.size;
        return Ok(());
    }
    let begun = registry
        .meta
        .gc_begin_delete(&blob.digest, cutoff, cutoff, blob.size, ACTOR)
        .await?;
    if !begun {
        report.kept_in_use += 1;
        return Ok(());
    }
    match registry.blobs.delete(&blob.digest).await {
        Ok(()) => {
            registry.meta.gc_end_delete(&blob.digest).await?;
            report.deleted += 1;
            report.deleted_bytes += blob.size;
        }
        Err(e) => {
            tracing::warn!(digest = %blob.digest, error = %e, "could not delete a collected blob's bytes; the next run retries");
            report.failed += 1;
        }
    }
    Ok(())
}

/// Finishes deletions begun long ago and never ended.
async fn finish_stale(registry: &Registry, start: i64, report: &mut GcReport) -> Result<()> {
    let stale = i64::try_from(STALE_DELETION.as_millis()).unwrap_or(i64::MAX);
    loop {
        let pending = registry
            .meta
            .gc_deleting(start.saturating_sub(stale), PAGE as u32)
            .await?;
        let mut progress = false;
        for digest in &pending {
            match registry.blobs.delete(digest).await {
                Ok(()) => {
                    registry.meta.gc_end_delete(digest).await?;
                    report.finished += 1;
                    progress = true;
                }
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "could not finish a blob's deletion");
                    report.failed += 1;
                }
            }
        }
        if pending.len() < PAGE || !progress {
            return Ok(());
        }
    }
}

/// The scheduled collection (`[gc] every_hours`): queued through the job queue so one
/// worker across every replica runs it per period. Runs until its task is dropped.
pub async fn run_scheduled(
    registry: Arc<Registry>,
    worker: String,
    every: Duration,
    grace: Duration,
    lease: Duration,
) {
    crate::scheduled::run_every(
        registry,
        worker,
        GC_JOB,
        every,
        lease,
        move |registry| async move {
            run(
                &registry,
                GcOptions {
                    grace,
                    dry_run: false,
                },
            )
            .await
            .map(|_| ())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grace_period_shorter_than_an_hour_is_refused_with_its_field() {
        let err = check_grace("gc.grace_hours", Duration::from_secs(60)).unwrap_err();
        assert_eq!(err.errors[0].field, "gc.grace_hours");
        assert!(err.errors[0].problem.contains("60 seconds"), "{err:?}");
        assert_eq!(check_grace("grace", MIN_GRACE).unwrap(), MIN_GRACE);
    }
}
