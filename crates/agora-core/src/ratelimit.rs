//! Request rate limits: which class a request belongs to, who it is counted against, and
//! whether a count over a sliding window leaves room for it. No I/O: the registry keeps
//! the counts (per process, summed across replicas through the database) and the HTTP
//! layer answers with `429`, `Retry-After` and the `RateLimit`/`RateLimit-Policy` fields.
//!
//! The window slides: the estimate of the last `window` seconds is the current fixed
//! window's count plus the previous window's count weighted by how much of it still lies
//! inside the sliding window. This never lets a subject send twice its quota around a
//! window's boundary, as plain fixed windows do, and keeps two numbers per subject.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What kind of work a request asks for; each class has its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    /// Reading metadata, pages and blobs.
    Read,
    /// Searching the catalog (each search may count and rank thousands of rows).
    Search,
    /// Anything that changes state: publishing, reviewing, pushing, reporting.
    Write,
    /// Signing in, and presenting credentials that turn out to be wrong.
    SignIn,
}

impl RouteClass {
    pub const ALL: [RouteClass; 4] = [
        RouteClass::Read,
        RouteClass::Search,
        RouteClass::Write,
        RouteClass::SignIn,
    ];

    /// The class's name in headers, keys, metrics and settings.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Read => "reads",
            RouteClass::Search => "searches",
            RouteClass::Write => "writes",
            RouteClass::SignIn => "sign_in",
        }
    }

    /// Which class a request is in, from its method, path and whether it has a query
    /// string; `None` for requests that are never limited (probes, metrics, static assets
    /// and CORS preflights, which carry no credentials and do no work).
    pub fn of(method: &str, path: &str, has_query: bool) -> Option<RouteClass> {
        if method == "OPTIONS"
            || path == "/health"
            || path == "/ready"
            || path == "/metrics"
            || path.starts_with("/static/")
        {
            return None;
        }
        if method == "POST" && path == "/login" {
            return Some(RouteClass::SignIn);
        }
        if method != "GET" && method != "HEAD" {
            return Some(RouteClass::Write);
        }
        let searching = path == "/search"
            || path == "/"
            || (path == "/api/v1/plugins" && has_query)
            || path == "/v2/_catalog";
        Some(if searching {
            RouteClass::Search
        } else {
            RouteClass::Read
        })
    }
}

impl fmt::Display for RouteClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many requests of one class one subject may make per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub reads: u32,
    pub searches: u32,
    pub writes: u32,
    pub sign_in: u32,
    pub window: Duration,
}

impl Default for Quotas {
    /// Per subject per minute: a person browsing or a CI job installing a dependency tree
    /// stays far below them; a scraper or a guesser does not.
    fn default() -> Self {
        Quotas {
            reads: 1200,
            searches: 300,
            writes: 120,
            sign_in: 20,
            window: Duration::from_secs(60),
        }
    }
}

impl Quotas {
    pub fn of(&self, class: RouteClass) -> u32 {
        match class {
            RouteClass::Read => self.reads,
            RouteClass::Search => self.searches,
            RouteClass::Write => self.writes,
            RouteClass::SignIn => self.sign_in,
        }
    }

    /// The window in whole seconds (at least one).
    pub fn window_secs(&self) -> u64 {
        self.window.as_secs().max(1)
    }
}

/// Who a request is counted against: the token it carries, or else the client's address
/// (an IPv6 client by its /64, which one subscriber usually holds whole).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A token, by a short digest of it (the token itself is never kept).
    Token(String),
    Address(IpAddr),
}

impl Subject {
    /// The address subject of `ip`: IPv4 whole, IPv6 cut to its /64 (an IPv4-mapped
    /// address counts as the IPv4 one).
    pub fn address(ip: IpAddr) -> Subject {
        match ip {
            IpAddr::V4(_) => Subject::Address(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Subject::Address(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Subject::Address(IpAddr::V6(std::net::Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }

    /// The counter's key for `class`: `<class>:t:<digest>` or `<class>:a:<address>`.
    pub fn key(&self, class: RouteClass) -> String {
        match self {
            Subject::Token(digest) => format!("{class}:t:{digest}"),
            Subject::Address(ip) => format!("{class}:a:{ip}"),
        }
    }
}

/// The fixed window that second `now` falls in, and how far into it `now` is (0..1).
pub fn window_of(now_secs_f64: f64, window_secs: u64) -> (i64, f64) {
    let w = window_secs.max(1) as f64;
    let index = (now_secs_f64 / w).floor();
    (index as i64, (now_secs_f64 - index * w) / w)
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The quota (`q` of `RateLimit-Policy`).
    pub limit: u32,
    /// Requests left in the sliding window after this one (`r` of `RateLimit`).
    pub remaining: u32,
    /// Seconds until the estimate falls enough for one more request (when refused) or
    /// until the current window ends (`t` of `RateLimit`, and `Retry-After` when refused).
    pub reset_secs: u64,
}

/// Decides a request given the counts of the previous and current fixed windows (this
/// request not included) and how far into the current window it is.
pub fn decide(limit: u32, window_secs: u64, previous: u64, current: u64, into: f64) -> Decision {
    let into = into.clamp(0.0, 1.0);
    let estimate = previous as f64 * (1.0 - into) + current as f64;
    let window_secs = window_secs.max(1);
    let until_window_ends = ((1.0 - into) * window_secs as f64).ceil().max(1.0) as u64;
    if estimate + 1.0 <= limit as f64 {
        let remaining = (limit as f64 - estimate - 1.0).floor().max(0.0) as u32;
        return Decision {
            allowed: true,
            limit,
            remaining,
            reset_secs: until_window_ends,
        };
    }
    // Refused: when does the previous window's weight fall enough? Within this window,
    // the estimate drops by `previous / window` per second; if the current window alone
    // is full, only the next window helps (where this one becomes the previous).
    let excess = estimate + 1.0 - limit as f64;
    let wait = if previous > 0 && (current as f64 + 1.0) <= limit as f64 {
        (excess / (previous as f64 / window_secs as f64)).ceil() as u64
    } else {
        let next_excess = current as f64 + 1.0 - limit as f64;
        let into_next = if current > 0 {
            (next_excess / current as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        until_window_ends + (into_next * window_secs as f64).ceil() as u64
    };
    Decision {
        allowed: false,
        limit,
        remaining: 0,
        reset_secs: wait.clamp(1, 2 * window_secs),
    }
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): `"reads";q=1200;w=60`.
pub fn policy_header(class: RouteClass, limit: u32, window_secs: u64) -> String {
    format!("\"{class}\";q={limit};w={window_secs}")
}

/// `RateLimit`: `"reads";r=1187;t=42`.
pub fn limit_header(class: RouteClass, decision: &Decision) -> String {
    format!(
        "\"{class}\";r={};t={}",
        decision.remaining, decision.reset_secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fall_into_classes() {
        assert_eq!(RouteClass::of("GET", "/health", false), None);
        assert_eq!(RouteClass::of("GET", "/ready", false), None);
        assert_eq!(RouteClass::of("GET", "/metrics", false), None);
        assert_eq!(RouteClass::of("GET", "/static/app.css", false), None);
        assert_eq!(RouteClass::of("OPTIONS", "/api/v1/plugins", false), None);
        assert_eq!(
            RouteClass::of("POST", "/login", false),
            Some(RouteClass::SignIn)
        );
        assert_eq!(
            RouteClass::of("GET", "/login", false),
            Some(RouteClass::Read)
        );
        for path in ["/", "/search", "/v2/_catalog"] {
            assert_eq!(RouteClass::of("GET", path, false), Some(RouteClass::Search));
        }
        assert_eq!(
            RouteClass::of("GET", "/api/v1/plugins", true),
            Some(RouteClass::Search)
        );
        assert_eq!(
            RouteClass::of("GET", "/api/v1/plugins", false),
            Some(RouteClass::Read)
        );
        assert_eq!(
            RouteClass::of("HEAD", "/api/v1/blobs/sha256:00", false),
            Some(RouteClass::Read)
        );
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(
                RouteClass::of(method, "/api/v1/plugins/a/b/versions", false),
                Some(RouteClass::Write)
            );
        }
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ones_as_ipv4() {
        let a = Subject::address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Subject::address("2001:db8:1:2:ffff:1:2:3".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, Subject::address("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            Subject::address("::ffff:192.0.2.7".parse().unwrap()),
            Subject::address("192.0.2.7".parse().unwrap())
        );
        assert_eq!(a.key(RouteClass::Read), "reads:a:2001:db8:1:2::");
        assert_eq!(
            Subject::Token("ab12".into()).key(RouteClass::Write),
            "writes:t:ab12"
        );
    }

    #[test]
    fn windows_are_aligned() {
        assert_eq!(window_of(125.0, 60), (2, 5.0 / 60.0));
        assert_eq!(window_of(120.0, 60), (2, 0.0));
    }

    #[test]
    fn the_quota_holds_within_a_window() {
        let mut current = 0;
        let mut allowed = 0;
        for _ in 0..15 {
            let d = decide(10, 60, 0, current, 0.5);
            if d.allowed {
                allowed += 1;
                current += 1;
                assert_eq!(d.remaining, 10 - allowed);
                assert_eq!(d.reset_secs, 30);
            } else {
                // The current window alone is full: only the next one helps.
                assert!(d.reset_secs >= 30, "{d:?}");
            }
        }
        assert_eq!(allowed, 10);
    }

    #[test]
    fn the_previous_window_weighs_as_much_as_still_lies_in_the_sliding_window() {
        // 10 in the previous window, a quarter of the way into this one: 7.5 still count.
        assert!(decide(10, 60, 10, 0, 0.25).allowed);
        assert!(decide(10, 60, 10, 1, 0.25).allowed);
        let refused = decide(10, 60, 10, 2, 0.25);
        assert!(!refused.allowed);
        // 7.5 + 2 + 1 = 10.5: half a request over; the previous window's weight falls by
        // 10/60 a second, so 3 s.
        assert_eq!(refused.reset_secs, 3);
        assert!(decide(10, 60, 10, 2, 0.25 + 3.0 / 60.0).allowed);
        // No burst of twice the quota around a boundary.
        assert!(!decide(10, 60, 10, 0, 0.0).allowed);
    }

    #[test]
    fn headers_follow_the_draft() {
        let d = decide(1200, 60, 0, 12, 0.3);
        assert_eq!(
            policy_header(RouteClass::Read, 1200, 60),
            "\"reads\";q=1200;w=60"
        );
        assert_eq!(limit_header(RouteClass::Read, &d), "\"reads\";r=1187;t=42");
    }
}
