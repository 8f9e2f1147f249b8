//! Which downloads count. A download of a release counts once per client address and
//! release per period, so nobody moves the ranking by fetching the same file again and
//! again (or in 1-byte ranges). Kept in memory, in two rotating windows of hashed keys:
//! bounded, and nothing written per request.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agora_core::Digest;

/// How long one client's repeated downloads of one release count as one.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(3600);
/// Most (client, release) pairs remembered per window; a fuller window starts the next one
/// early, so memory stays bounded (8 bytes a pair) whatever the traffic.
pub const DEFAULT_MAX_PAIRS: usize = 200_000;

pub struct DownloadCounter {
    period: Duration,
    max_pairs: usize,
    keys: RandomState,
    windows: Mutex<Windows>,
}

struct Windows {
    started: Instant,
    current: HashSet<u64>,
    previous: HashSet<u64>,
}

/// The part of an address that identifies a client: all of an IPv4 address, the /64
/// network of an IPv6 one (a single host commonly holds a whole /64).
fn client_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) | (1 << 127),
        },
    }
}

impl Default for DownloadCounter {
    fn default() -> Self {
        DownloadCounter::new(DEFAULT_PERIOD, DEFAULT_MAX_PAIRS)
    }
}

impl DownloadCounter {
    pub fn new(period: Duration, max_pairs: usize) -> DownloadCounter {
        DownloadCounter {
            period,
            max_pairs: max_pairs.max(1),
            keys: RandomState::new(),
            windows: Mutex::new(Windows {
                started: Instant::now(),
                current: HashSet::new(),
                previous: HashSet::new(),
            }),
        }
    }

    /// Whether this download of `digest` by `client` counts (the first in the period).
    /// Without a known address every download counts.
    pub fn counts(&self, client: Option<IpAddr>, digest: &Digest) -> bool {
        let Some(ip) = client else {
            return true;
        };
        let mut hasher = self.keys.build_hasher();
        client_key(ip).hash(&mut hasher);
        digest.as_bytes().hash(&mut hasher);
        let key = hasher.finish();
        let Ok(mut w) = self.windows.lock() else {
            return true;
        };
        if w.started.elapsed() >= self.period || w.current.len() >= self.max_pairs {
            let full = std::mem::take(&mut w.current);
            w.previous = full;
            w.started = Instant::now();
        }
        if w.previous.contains(&key) {
            return false;
        }
        w.current.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_client_counts_once_per_release_and_period() {
        let counter = DownloadCounter::new(Duration::from_millis(80), 1000);
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert!(counter.counts(ip("10.0.0.1"), &a));
        assert!(!counter.counts(ip("10.0.0.1"), &a), "again: not counted");
        assert!(counter.counts(ip("10.0.0.1"), &b), "another release counts");
        assert!(counter.counts(ip("10.0.0.2"), &a), "another client counts");
        assert!(
            !counter.counts(ip("2001:db8::1"), &a) || !counter.counts(ip("2001:db8::2"), &a),
            "one IPv6 /64 is one client"
        );
        assert!(counter.counts(None, &a) && counter.counts(None, &a));
        std::thread::sleep(Duration::from_millis(90));
        // One period later the previous window still remembers it...
        assert!(!counter.counts(ip("10.0.0.1"), &a));
        std::thread::sleep(Duration::from_millis(90));
        // ...and after two it counts again.
        assert!(counter.counts(ip("10.0.0.1"), &a));
    }

    #[test]
    fn memory_is_bounded_by_the_window_size() {
        let counter = DownloadCounter::new(DEFAULT_PERIOD, 10);
        let d = Digest::of(b"x");
        for i in 0..1000u32 {
            counter.counts(Some(IpAddr::from(i.to_be_bytes())), &d);
        }
        let w = counter.windows.lock().unwrap();
        assert!(w.current.len() <= 10 && w.previous.len() <= 10);
    }
}
