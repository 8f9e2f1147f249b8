//! The sign-in throttle: slows password guessing without letting anyone lock a user out.
//! Failures count per (user name, client address) pair and per client address, and each
//! attempt beyond the free ones waits twice as long as the last. The real owner, signing in
//! from their own address, is never held up by someone else's failures; made-up names from
//! one address hit that address's own limit; the tables are bounded and flooding them does
//! not reset anyone's wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins one client may make for one user name before each further attempt
/// must wait (1 s, then 2 s, 4 s, ... up to [`MAX_DELAY`]).
const FREE_PER_PAIR: u32 = 5;
/// Failed sign-ins one client may make across all names before it must wait the same way,
/// so flooding made-up names neither escapes the throttle nor flushes it.
const FREE_PER_CLIENT: u32 = 30;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// An entry is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Entries kept per table; when full, the one with the fewest failures goes (an
/// attacker's own entries are the busiest, so flooding the table does not reset them).
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long until the next attempt is allowed, given `free` failures without waiting.
    fn wait(&self, free: u32, now: Instant) -> Option<Duration> {
        let over = self.count.checked_sub(free)?;
        let delay = Duration::from_secs(1u64 << over.min(20)).min(MAX_DELAY);
        (self.last + delay)
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }
}

/// A bounded table of failures by key.
struct Table<K> {
    entries: HashMap<K, Failures>,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    fn record(&mut self, key: &K, now: Instant) {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_TRACKED {
            self.entries
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if self.entries.len() >= MAX_TRACKED
                && let Some(quietest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, f)| (f.count, f.last))
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&quietest);
            }
        }
        let f = self.entries.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
    }

    fn wait(&self, key: &K, free: u32, now: Instant) -> Option<Duration> {
        self.entries.get(key)?.wait(free, now)
    }
}

/// Slows password guessing without letting anyone lock a user out: failures count per
/// (user name, client address) pair and per client address, and each attempt beyond the
/// free ones waits twice as long as the last. The real owner, signing in from their own
/// address, is never held up by someone else's failures.
pub struct SignInThrottle {
    tables: Mutex<Tables>,
}

/// Failures per (user name, client address), and per client address.
type Tables = (Table<(String, IpAddr)>, Table<IpAddr>);

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            tables: Mutex::new((Table::new(), Table::new())),
        }
    }
}

/// Stands for clients whose address is not known (tests drive the router without a
/// connection).
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

impl SignInThrottle {
    /// How long this client must wait before trying this name again, if at all.
    pub fn wait(&self, user: &str, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let tables = self.tables.lock().ok()?;
        let pair = tables
            .0
            .wait(&(user.to_owned(), client), FREE_PER_PAIR, now);
        let all = tables.1.wait(&client, FREE_PER_CLIENT, now);
        pair.max(all)
    }

    /// Counts an attempt as a failure before the password is checked, so concurrent
    /// guesses cannot all slip in; [`SignInThrottle::succeed`] takes it back.
    pub fn fail(&self, user: &str, client: IpAddr) {
        let now = Instant::now();
        if let Ok(mut tables) = self.tables.lock() {
            tables.0.record(&(user.to_owned(), client), now);
            tables.1.record(&client, now);
        }
    }

    pub fn succeed(&self, user: &str, client: IpAddr) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.0.entries.remove(&(user.to_owned(), client));
            if let Some(f) = tables.1.entries.get_mut(&client) {
                f.count = f.count.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failures_from_one_client_never_lock_out_another() {
        let t = SignInThrottle::default();
        let attacker = ip("203.0.113.9");
        for _ in 0..FREE_PER_PAIR {
            assert!(t.wait("admin", attacker).is_none());
            t.fail("admin", attacker);
        }
        let wait = t.wait("admin", attacker).expect("the attacker waits");
        assert!(wait <= Duration::from_secs(1));
        assert!(
            t.wait("admin", ip("198.51.100.7")).is_none(),
            "the owner, elsewhere, signs in"
        );
        // Each further failure doubles the wait, up to the ceiling.
        t.fail("admin", attacker);
        t.fail("admin", attacker);
        let longer = t.wait("admin", attacker).unwrap();
        assert!(longer > Duration::from_secs(2) && longer <= Duration::from_secs(4));
        for _ in 0..40 {
            t.fail("admin", attacker);
        }
        assert!(t.wait("admin", attacker).unwrap() <= MAX_DELAY);
    }

    #[test]
    fn made_up_names_hit_the_per_client_limit_and_cannot_flush_the_table() {
        let t = SignInThrottle::default();
        let attacker = ip("203.0.113.9");
        t.fail("admin", attacker);
        for i in 0..FREE_PER_CLIENT {
            t.fail(&format!("junk{i}"), attacker);
        }
        assert!(
            t.wait("someone-new", attacker).is_some(),
            "a new name from a flooding client waits too"
        );
        // A table flooded past its bound keeps the busiest entries.
        let mut table = Table::new();
        let now = Instant::now();
        for _ in 0..10 {
            table.record(&"busy".to_owned(), now);
        }
        for i in 0..MAX_TRACKED + 50 {
            table.record(&format!("junk{i}"), now + Duration::from_millis(1));
        }
        assert!(table.entries.len() <= MAX_TRACKED);
        assert_eq!(table.entries.get("busy").map(|f| f.count), Some(10));
    }
}
