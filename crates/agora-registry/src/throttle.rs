//! The sign-in throttle: slows password guessing without letting anyone lock a user out.
//! Failures count per (user name, client address) pair and per client address, and each
//! attempt beyond the free ones waits twice as long as the last. The real owner, signing in
//! from their own address, is never held up by someone else's failures; made-up names from
//! one address hit that address's own limit.
//!
//! The failures live in the database ([`agora_store::LimitStore`]), so every replica sees
//! the same ones: a guesser spreading attempts over replicas gains nothing. The table is
//! bounded: entries are forgotten [`FORGET_AFTER`] after their last failure, and beyond
//! [`MAX_TRACKED`] the quietest go first (an attacker's own entries are the busiest, so
//! flooding the table does not reset them). IPv6 clients count by their /64.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_core::ratelimit::Subject;
use agora_store::{MetadataStore, SignInFailures, StoreError, now_ms};
use sha2::{Digest as _, Sha256};

/// Failed sign-ins one client may make for one user name before each further attempt
/// must wait (1 s, then 2 s, 4 s, ... up to [`MAX_DELAY`]).
pub const FREE_PER_PAIR: u32 = 5;
/// Failed sign-ins one client may make across all names before it must wait the same way,
/// so flooding made-up names neither escapes the throttle nor flushes it.
pub const FREE_PER_CLIENT: u32 = 30;
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// An entry is forgotten this long after its last failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Entries kept; when more, the ones with the fewest failures go.
pub const MAX_TRACKED: u64 = 100_000;

/// How long until the next attempt is allowed after `failures`, given `free` failures
/// without waiting, at `now` (ms since the epoch).
pub fn wait_after(failures: &SignInFailures, free: u32, now: i64) -> Option<Duration> {
    let over = failures.count.checked_sub(free)?;
    let delay = Duration::from_secs(1u64 << over.min(20)).min(MAX_DELAY);
    let elapsed = Duration::from_millis(u64::try_from(now - failures.last_at).unwrap_or(0));
    if elapsed >= FORGET_AFTER {
        return None;
    }
    delay.checked_sub(elapsed).filter(|d| !d.is_zero())
}

/// Stands for clients whose address is not known (tests drive the router without a
/// connection).
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// The keys of a (name, client) pair and of the client alone. The name is kept only as a
/// digest, so the table holds no user names and every key has the same bounded length.
fn keys(user: &str, client: IpAddr) -> (String, String) {
    let client = match Subject::address(client) {
        Subject::Address(ip) => ip,
        Subject::Token(_) => client,
    };
    let name = hex::encode(&Sha256::digest(user.as_bytes())[..16]);
    (format!("p:{client}:{name}"), format!("c:{client}"))
}

/// The throttle over the shared store.
pub struct SignInThrottle {
    meta: Arc<dyn MetadataStore>,
}

impl SignInThrottle {
    pub fn new(meta: Arc<dyn MetadataStore>) -> SignInThrottle {
        SignInThrottle { meta }
    }

    /// How long this client must wait before trying this name again, if at all.
    pub async fn wait(&self, user: &str, client: IpAddr) -> Result<Option<Duration>, StoreError> {
        let (pair, all) = keys(user, client);
        let found = self.meta.sign_in_failures(&[pair, all]).await?;
        let now = now_ms();
        let pair = found[0].and_then(|f| wait_after(&f, FREE_PER_PAIR, now));
        let all = found[1].and_then(|f| wait_after(&f, FREE_PER_CLIENT, now));
        Ok(pair.max(all))
    }

    /// Counts an attempt as a failure before the password is checked, so concurrent
    /// guesses cannot all slip in; [`SignInThrottle::succeed`] takes it back.
    pub async fn fail(&self, user: &str, client: IpAddr) -> Result<(), StoreError> {
        let (pair, all) = keys(user, client);
        self.meta
            .record_sign_in_failure(
                &[pair, all],
                now_ms(),
                FORGET_AFTER.as_millis() as i64,
                MAX_TRACKED,
            )
            .await
    }

    pub async fn succeed(&self, user: &str, client: IpAddr) -> Result<(), StoreError> {
        let (pair, all) = keys(user, client);
        self.meta.clear_sign_in_failure(&pair, &all).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    async fn throttle() -> (tempfile::TempDir, SignInThrottle, Arc<dyn MetadataStore>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("agora.db").display());
        let meta: Arc<dyn MetadataStore> =
            Arc::new(agora_store::SqlStore::connect(&url).await.unwrap());
        (dir, SignInThrottle::new(meta.clone()), meta)
    }

    #[test]
    fn waits_double_up_to_the_ceiling_and_end_when_forgotten() {
        let at = |count| SignInFailures {
            count,
            last_at: 1_000_000,
        };
        assert_eq!(wait_after(&at(4), 5, 1_000_000), None);
        assert_eq!(
            wait_after(&at(5), 5, 1_000_000),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_after(&at(6), 5, 1_000_000),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            wait_after(&at(6), 5, 1_000_500),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(wait_after(&at(60), 5, 1_000_000), Some(MAX_DELAY));
        let forgotten = 1_000_000 + FORGET_AFTER.as_millis() as i64;
        assert_eq!(wait_after(&at(60), 5, forgotten), None);
    }

    #[tokio::test]
    async fn failures_from_one_client_never_lock_out_another() {
        let (_dir, t, _) = throttle().await;
        let attacker = ip("203.0.113.9");
        for _ in 0..FREE_PER_PAIR {
            assert!(t.wait("admin", attacker).await.unwrap().is_none());
            t.fail("admin", attacker).await.unwrap();
        }
        let wait = t.wait("admin", attacker).await.unwrap();
        assert!(
            wait.is_some_and(|w| w <= Duration::from_secs(1)),
            "{wait:?}"
        );
        assert!(
            t.wait("admin", ip("198.51.100.7")).await.unwrap().is_none(),
            "the owner, elsewhere, signs in"
        );
        // Each further failure doubles the wait, up to the ceiling.
        t.fail("admin", attacker).await.unwrap();
        t.fail("admin", attacker).await.unwrap();
        let longer = t.wait("admin", attacker).await.unwrap().unwrap();
        assert!(longer > Duration::from_secs(2) && longer <= Duration::from_secs(4));
        // A success forgets the pair.
        t.succeed("admin", attacker).await.unwrap();
        assert!(t.wait("admin", attacker).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn made_up_names_hit_the_per_client_limit_and_cannot_flush_the_table() {
        let (_dir, t, meta) = throttle().await;
        let attacker = ip("2001:db8:1:2::9");
        t.fail("admin", attacker).await.unwrap();
        for i in 0..FREE_PER_CLIENT {
            t.fail(&format!("junk{i}"), attacker).await.unwrap();
        }
        assert!(
            t.wait("someone-new", ip("2001:db8:1:2:ffff::1"))
                .await
                .unwrap()
                .is_some(),
            "a new name from the same /64 waits too"
        );
        // A table flooded past its bound keeps the busiest entries.
        let busy = vec!["c:busy".to_owned()];
        for _ in 0..10 {
            meta.record_sign_in_failure(&busy, now_ms(), 60_000, 50)
                .await
                .unwrap();
        }
        for i in 0..80 {
            meta.record_sign_in_failure(&[format!("c:junk{i}")], now_ms(), 60_000, 50)
                .await
                .unwrap();
        }
        let kept = meta.sign_in_failures(&busy).await.unwrap();
        assert_eq!(kept[0].map(|f| f.count), Some(10));
        let junk: Vec<String> = (0..80).map(|i| format!("c:junk{i}")).collect();
        let left = meta.sign_in_failures(&junk).await.unwrap();
        assert!(left.iter().flatten().count() < 50, "the table is bounded");
    }
}
