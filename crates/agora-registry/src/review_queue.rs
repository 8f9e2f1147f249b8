//! The review queue: releases whose newest verification run has one outcome (by default
//! `needs-review`), newest run first, each with what that run found, for administrators
//! to decide on with `verification::review`. Paged by an opaque cursor (the last run's id,
//! bound to the outcome asked for).

use agora_core::verification::{
    Outcome, QueuedRelease, ReviewQueuePage, SeverityCounts, VerificationReport,
};

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result, one_line_opt, truncate};

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub const MAX_LIMIT: u32 = 200;
/// Longest cursor accepted (the server's own are far shorter).
const MAX_CURSOR_CHARS: usize = 128;

/// What the queue is asked for, as the API and the page receive it.
#[derive(Debug, Clone, Default)]
pub struct QueueParams {
    /// `needs-review` (default), `rejected` or `verified`.
    pub outcome: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One page of the review queue (administrators only: role and the `admin` scope).
pub async fn queue(
    registry: &Registry,
    caller: &Caller,
    params: QueueParams,
) -> Result<ReviewQueuePage> {
    caller.require_admin()?;
    one_line_opt("outcome", params.outcome.as_deref())?;
    one_line_opt("cursor", params.cursor.as_deref())?;
    let outcome = match params.outcome.as_deref().map(str::trim) {
        None | Some("") => Outcome::NeedsReview,
        Some(o) => Outcome::parse(o).ok_or_else(|| {
            RegistryError::field(
                "outcome",
                format!("unknown outcome {:?}", truncate(o)),
                Some("needs-review, rejected or verified"),
            )
        })?,
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(RegistryError::field(
            "limit",
            format!("{limit} is out of range"),
            Some(&format!("1 to {MAX_LIMIT}")),
        ));
    }
    let before = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_cursor(c, outcome)?),
        None => None,
    };
    // One more than the page, to know whether another page follows.
    let mut rows = registry
        .meta
        .verification_queue(outcome.as_str(), before, limit + 1)
        .await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|q| encode_cursor(outcome, q.run.id))
    } else {
        None
    };
    let mut items = Vec::with_capacity(rows.len());
    for q in rows {
        let report: VerificationReport = serde_json::from_str(&q.run.report).map_err(|e| {
            RegistryError::internal("a stored verification report does not parse", e)
        })?;
        let findings: Vec<_> = report.stages.into_iter().flat_map(|s| s.findings).collect();
        items.push(QueuedRelease {
            release: format!("{}/{}@{}", q.publisher, q.name, q.version),
            outcome,
            checked_at: crate::time::rfc3339(q.run.checked_at),
            counts: SeverityCounts::of(&findings),
            findings,
        });
    }
    Ok(ReviewQueuePage { items, next_cursor })
}

/// The cursor of the page after the run `run_id` (public for the fuzz targets).
pub fn encode_cursor(outcome: Outcome, run_id: i64) -> String {
    hex::encode(format!("q|{}|{run_id}", outcome.as_str()))
}

/// The run id a cursor from [`encode_cursor`] carries, if it was issued for `outcome`.
pub fn decode_cursor(cursor: &str, outcome: Outcome) -> Result<i64> {
    let bad = || {
        RegistryError::field(
            "cursor",
            "not a cursor this server issued",
            Some("the next_cursor value of the previous page, with the same outcome"),
        )
    };
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let plain = String::from_utf8(hex::decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    match plain.split('|').collect::<Vec<_>>()[..] {
        ["q", o, id] if o == outcome.as_str() => id.parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_outcome() {
        let c = encode_cursor(Outcome::NeedsReview, 42);
        assert_eq!(decode_cursor(&c, Outcome::NeedsReview).unwrap(), 42);
        assert!(decode_cursor(&c, Outcome::Rejected).is_err());
        assert!(decode_cursor("zz", Outcome::NeedsReview).is_err());
        assert!(decode_cursor(&hex::encode("q|needs-review|x"), Outcome::NeedsReview).is_err());
        assert!(decode_cursor(&"a".repeat(200), Outcome::NeedsReview).is_err());
    }
}
