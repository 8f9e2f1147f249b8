//! The counts behind rate limits and the sign-in throttle, shared by every replica that
//! uses the same database.

use async_trait::async_trait;

use super::Result;

/// Most keys one call of [`LimitStore::add_request_counts`] takes.
pub const MAX_COUNT_KEYS: usize = 20_000;

/// A key's totals in the window asked about and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowTotals {
    pub previous: u64,
    pub current: u64,
}

/// Failed sign-ins under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInFailures {
    pub count: u32,
    /// Milliseconds since the epoch of the last failure.
    pub last_at: i64,
}

#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Adds each key's count to the window starting at `start` (seconds), in one
    /// transaction, and returns every key's totals in that window and in the one starting
    /// at `previous` (keys with a zero count are only read). At most [`MAX_COUNT_KEYS`].
    async fn add_request_counts(
        &self,
        start: i64,
        previous: i64,
        counts: &[(String, u64)],
    ) -> Result<Vec<WindowTotals>>;

    /// Drops the counts of windows starting before `before`; returns how many rows went.
    async fn prune_request_counts(&self, before: i64) -> Result<u64>;

    /// The failures recorded under each key, if any.
    async fn sign_in_failures(&self, keys: &[String]) -> Result<Vec<Option<SignInFailures>>>;

    /// Counts one more failure under each key at `now` (ms): a key whose last failure is
    /// `forget_ms` or more ago starts again from one. Then forgets keys idle that long, and
    /// when more than `max_keys` remain, the ones with the fewest failures (an attacker's
    /// own keys are the busiest, so flooding the table does not reset them).
    async fn record_sign_in_failure(
        &self,
        keys: &[String],
        now: i64,
        forget_ms: i64,
        max_keys: u64,
    ) -> Result<()>;

    /// A successful sign-in: forgets `pair` and takes one failure back from `client`.
    async fn clear_sign_in_failure(&self, pair: &str, client: &str) -> Result<()>;
}
