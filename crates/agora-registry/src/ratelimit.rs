//! Request rate limits (`[rate_limits]`): counts per route class and subject (a token, or
//! a client address) over a sliding window ([`agora_core::ratelimit`]), decided in memory
//! so a request never waits for the database.
//!
//! Across replicas the counts are summed through the database: every `sync` interval each
//! replica adds what it counted to the shared window rows and reads back the totals of the
//! subjects it saw ([`agora_store::LimitStore`]). A subject spreading its requests over
//! replicas is therefore held to its quota too, give or take what it sends within one
//! interval. On SQLite (one server process) the counts are exact and stay in memory.
//!
//! Bounded: at most [`MAX_SUBJECTS`] subjects are tracked per window; beyond that, new
//! subjects of a class share one overflow counter (so a flood of made-up subjects limits
//! itself instead of growing the table), and windows older than the previous are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_core::ratelimit::{self, Decision, Quotas, RouteClass, Subject};
use agora_store::{MAX_COUNT_KEYS, MetadataStore, WindowTotals};

/// Most subjects counted per window in one process.
pub const MAX_SUBJECTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub quotas: Quotas,
    /// How often counts are summed with the other replicas'.
    pub sync: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            quotas: Quotas::default(),
            sync: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    /// The previous window's total, as last known.
    previous: u64,
    /// This window's total across replicas, as last read back.
    shared: u64,
    /// Counted here and not yet added to the shared total.
    unsynced: u64,
}

#[derive(Default)]
struct Windows {
    /// Start (seconds) of the current window.
    start: i64,
    counters: HashMap<String, Counter>,
    /// The previous window's totals of the subjects seen then.
    previous: HashMap<String, u64>,
    /// Counts of the previous window not yet synced when it ended.
    closing: Vec<(String, u64)>,
    closing_start: i64,
}

/// The limiter of one process.
pub struct Limiter {
    settings: RateLimitSettings,
    windows: Mutex<Windows>,
    refused: [AtomicU64; 4],
    /// Windows starting before this are pruned from the store already.
    pruned_before: std::sync::atomic::AtomicI64,
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn class_index(class: RouteClass) -> usize {
    match class {
        RouteClass::Read => 0,
        RouteClass::Search => 1,
        RouteClass::Write => 2,
        RouteClass::SignIn => 3,
    }
}

/// Off: a registry built without settings (tests driving routers) limits nothing.
impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(RateLimitSettings {
            enabled: false,
            ..RateLimitSettings::default()
        })
    }
}

impl Limiter {
    pub fn new(settings: RateLimitSettings) -> Limiter {
        Limiter {
            settings,
            windows: Mutex::new(Windows::default()),
            refused: Default::default(),
            pruned_before: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// Counts a request of `class` by `subject` and decides it; `None` when limits are off.
    pub fn check(&self, class: RouteClass, subject: &Subject) -> Option<Decision> {
        self.check_at(class, subject, now_secs())
    }

    fn check_at(&self, class: RouteClass, subject: &Subject, now: f64) -> Option<Decision> {
        if !self.settings.enabled {
            return None;
        }
        let limit = self.settings.quotas.of(class);
        let window = self.settings.quotas.window_secs();
        let (index, into) = ratelimit::window_of(now, window);
        let mut windows = self.windows.lock().ok()?;
        let counter = windows.counter(index * window as i64, window, class, subject);
        let decision = ratelimit::decide(
            limit,
            window,
            counter.previous,
            counter.shared + counter.unsynced,
            into,
        );
        if decision.allowed {
            counter.unsynced += 1;
        } else {
            self.refused[class_index(class)].fetch_add(1, Ordering::Relaxed);
        }
        Some(decision)
    }

    /// Counts one more request of `class` by `subject` without deciding anything (a wrong
    /// credential counted against the address that sent it).
    pub fn charge(&self, class: RouteClass, subject: &Subject) {
        if !self.settings.enabled {
            return;
        }
        let window = self.settings.quotas.window_secs();
        let (index, _) = ratelimit::window_of(now_secs(), window);
        if let Ok(mut windows) = self.windows.lock() {
            windows
                .counter(index * window as i64, window, class, subject)
                .unsynced += 1;
        }
    }

    /// Whether `subject` has no room left in `class` now (without counting anything).
    pub fn exhausted(&self, class: RouteClass, subject: &Subject) -> Option<Decision> {
        if !self.settings.enabled {
            return None;
        }
        let limit = self.settings.quotas.of(class);
        let window = self.settings.quotas.window_secs();
        let (index, into) = ratelimit::window_of(now_secs(), window);
        let mut windows = self.windows.lock().ok()?;
        let counter = windows.counter(index * window as i64, window, class, subject);
        let decision = ratelimit::decide(
            limit,
            window,
            counter.previous,
            counter.shared + counter.unsynced,
            into,
        );
        (!decision.allowed).then_some(decision)
    }

    /// Requests refused so far, per class.
    pub fn refused(&self) -> [(RouteClass, u64); 4] {
        RouteClass::ALL.map(|c| (c, self.refused[class_index(c)].load(Ordering::Relaxed)))
    }

    /// Adds what this process counted to the shared totals and reads back everyone's.
    pub async fn sync(&self, meta: &dyn MetadataStore) -> Result<(), agora_store::StoreError> {
        self.sync_at(meta, now_secs()).await
    }

    async fn sync_at(
        &self,
        meta: &dyn MetadataStore,
        now: f64,
    ) -> Result<(), agora_store::StoreError> {
        let window = self.settings.quotas.window_secs() as i64;
        let (start, batch, closing, closing_start) = {
            let Ok(mut windows) = self.windows.lock() else {
                return Ok(());
            };
            // Roll over to the present even when no request came lately.
            let (index, _) = ratelimit::window_of(now, window as u64);
            windows.roll(index * window, window as u64);
            let batch: Vec<(String, u64)> = windows
                .counters
                .iter_mut()
                .filter(|(_, c)| c.unsynced > 0)
                .map(|(k, c)| (k.clone(), std::mem::take(&mut c.unsynced)))
                .collect();
            let closing = std::mem::take(&mut windows.closing);
            (windows.start, batch, closing, windows.closing_start)
        };
        let mut failed = None;
        for chunk in closing.chunks(MAX_COUNT_KEYS) {
            if let Err(e) = meta
                .add_request_counts(closing_start, closing_start - window, chunk)
                .await
            {
                failed = Some(e);
            }
        }
        let mut totals: Vec<WindowTotals> = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_COUNT_KEYS) {
            match meta.add_request_counts(start, start - window, chunk).await {
                Ok(t) => totals.extend(t),
                Err(e) => {
                    // Kept for the next sync; the decisions go on with local counts.
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Ok(mut windows) = self.windows.lock()
            && windows.start == start
        {
            for (i, (key, n)) in batch.iter().enumerate() {
                if let Some(counter) = windows.counters.get_mut(key) {
                    match totals.get(i) {
                        Some(t) => {
                            counter.shared = t.current.max(counter.shared + n);
                            counter.previous = counter.previous.max(t.previous);
                        }
                        None => counter.unsynced += n,
                    }
                }
            }
        }
        // Once per window: rows older than the previous window are no one's any more.
        if self
            .pruned_before
            .fetch_max(start - window, Ordering::Relaxed)
            < start - window
        {
            meta.prune_request_counts(start - window).await?;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sums counts with the other replicas every `sync` interval, for as long as the
    /// server runs (nothing to do when limits are off).
    pub async fn run(self: std::sync::Arc<Self>, meta: std::sync::Arc<dyn MetadataStore>) {
        if !self.settings.enabled {
            return;
        }
        let mut failing = false;
        loop {
            tokio::time::sleep(self.settings.sync).await;
            match self.sync(meta.as_ref()).await {
                Ok(()) if failing => {
                    tracing::info!("rate-limit counts are shared with other replicas again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "could not share rate-limit counts; limiting with this replica's counts");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}

impl Windows {
    /// Moves to the window starting at `start`, keeping the ending window's totals as the
    /// previous ones when they are adjacent.
    fn roll(&mut self, start: i64, window: u64) {
        if start == self.start {
            return;
        }
        let adjacent = start == self.start + window as i64;
        let ended = std::mem::take(&mut self.counters);
        self.previous.clear();
        if adjacent {
            for (key, c) in &ended {
                self.previous.insert(key.clone(), c.shared + c.unsynced);
            }
        }
        // What the ended window counted and never synced still belongs to it.
        let mut closing: Vec<(String, u64)> = ended
            .into_iter()
            .filter(|(_, c)| c.unsynced > 0)
            .map(|(k, c)| (k, c.unsynced))
            .collect();
        if self.closing_start == self.start {
            closing.append(&mut self.closing);
        }
        self.closing = closing;
        self.closing_start = self.start;
        self.start = start;
    }

    fn counter(
        &mut self,
        start: i64,
        window: u64,
        class: RouteClass,
        subject: &Subject,
    ) -> &mut Counter {
        self.roll(start, window);
        let mut key = subject.key(class);
        if !self.counters.contains_key(&key) && self.counters.len() >= MAX_SUBJECTS {
            key = format!("{class}:overflow");
        }
        let previous = self.previous.get(&key).copied().unwrap_or(0);
        self.counters.entry(key).or_insert(Counter {
            previous,
            ..Counter::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn limiter(reads: u32) -> Limiter {
        Limiter::new(RateLimitSettings {
            enabled: true,
            quotas: Quotas {
                reads,
                window: Duration::from_secs(60),
                ..Quotas::default()
            },
            sync: Duration::from_millis(10),
        })
    }

    fn addr(s: &str) -> Subject {
        Subject::address(s.parse().unwrap())
    }

    #[test]
    fn each_subject_and_class_has_its_own_quota() {
        let l = limiter(3);
        let a = addr("192.0.2.1");
        let at = 6000.0 * 60.0 + 1.0;
        for left in [2, 1, 0] {
            let d = l.check_at(RouteClass::Read, &a, at).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let refused = l.check_at(RouteClass::Read, &a, at).unwrap();
        assert!(!refused.allowed);
        assert!(refused.reset_secs >= 59, "{refused:?}");
        assert!(
            l.check_at(RouteClass::Read, &addr("192.0.2.2"), at)
                .unwrap()
                .allowed
        );
        assert!(l.check_at(RouteClass::Search, &a, at).unwrap().allowed);
        assert_eq!(l.refused()[0], (RouteClass::Read, 1));
        // Half the next window later, half of the full previous window still counts.
        let later = at + 60.0 + 29.0;
        assert!(l.check_at(RouteClass::Read, &a, later).unwrap().allowed);
        assert!(!l.check_at(RouteClass::Read, &a, later).unwrap().allowed);
    }

    #[test]
    fn a_flood_of_subjects_shares_one_overflow_counter() {
        let l = limiter(5);
        let at = 7000.0 * 60.0;
        {
            let mut w = l.windows.lock().unwrap();
            for i in 0..MAX_SUBJECTS {
                w.counter(
                    7000 * 60,
                    60,
                    RouteClass::Read,
                    &Subject::Token(i.to_string()),
                );
            }
        }
        let mut allowed = 0;
        for i in 0..20 {
            let s = Subject::Token(format!("new-{i}"));
            if l.check_at(RouteClass::Read, &s, at).unwrap().allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
        assert_eq!(l.windows.lock().unwrap().counters.len(), MAX_SUBJECTS + 1);
    }

    #[test]
    fn limits_that_are_off_decide_nothing() {
        let l = Limiter::new(RateLimitSettings {
            enabled: false,
            ..RateLimitSettings::default()
        });
        assert!(l.check(RouteClass::Read, &addr("192.0.2.1")).is_none());
    }

    #[tokio::test]
    async fn replicas_sum_their_counts_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("agora.db").display());
        let meta: Arc<dyn MetadataStore> =
            Arc::new(agora_store::SqlStore::connect(&url).await.unwrap());
        let (one, two) = (limiter(10), limiter(10));
        let a = addr("198.51.100.4");
        let at = 8000.0 * 60.0 + 5.0;
        for _ in 0..6 {
            assert!(one.check_at(RouteClass::Read, &a, at).unwrap().allowed);
        }
        one.sync_at(meta.as_ref(), at).await.unwrap();
        // The other replica saw this subject once, then learns of the six.
        assert!(two.check_at(RouteClass::Read, &a, at).unwrap().allowed);
        two.sync_at(meta.as_ref(), at).await.unwrap();
        let allowed = (0..10)
            .filter(|_| two.check_at(RouteClass::Read, &a, at).unwrap().allowed)
            .count();
        assert_eq!(allowed, 3, "7 of 10 were used on the two replicas together");
        two.sync_at(meta.as_ref(), at).await.unwrap();
        // In the next window, the first request is decided on what this replica knew of
        // the previous one (its own 6); once synced, the shared total of 10 weighs in.
        let next = at + 60.0;
        assert!(one.check_at(RouteClass::Read, &a, next).unwrap().allowed);
        one.sync_at(meta.as_ref(), next).await.unwrap();
        let left = (0..10)
            .filter(|_| one.check_at(RouteClass::Read, &a, next).unwrap().allowed)
            .count();
        // 10 × 55/60 = 9.17 from the previous window and 1 in this one: none left.
        assert_eq!(left, 0);
    }
}
