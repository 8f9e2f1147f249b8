//! Rate limits, trusted proxies and the shared sign-in throttle, against the real binary:
//! quotas per class and subject answered with 429, Retry-After and the RateLimit fields;
//! forwarded addresses believed only from trusted proxies; wrong credentials counted
//! against their address; and counts and sign-in failures shared by replicas on one
//! PostgreSQL database.

mod support;

use std::net::IpAddr;

use support::*;

/// A blocking request from local address `from` (127.0.0.x are all this machine), with
/// `headers`; returns the status, the headers and the body.
fn from(
    from: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<IpAddr>().unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    })
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Limits on, an hour's window (so no test straddles a window's end in a way that
/// matters: the previous window weighs in fully at its start), and small quotas.
fn limited(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![
        ("AGORA_RATE_LIMITS__ENABLED", "true"),
        ("AGORA_RATE_LIMITS__WINDOW_SECS", "3600"),
        ("AGORA_RATE_LIMITS__READS", "5"),
        ("AGORA_RATE_LIMITS__SEARCHES", "3"),
        ("AGORA_RATE_LIMITS__WRITES", "50"),
        ("AGORA_RATE_LIMITS__SIGN_IN", "3"),
    ];
    env.extend_from_slice(extra);
    env
}

#[test]
fn each_class_has_its_quota_per_address_and_token_answered_with_429() {
    let server = Server::start_with(Backend::Sqlite, &limited(&[]));
    let read = format!("{}/api/v1/plugins/acme/nothing", server.url);
    for left in (0..5).rev() {
        let (status, headers, _) = from("127.0.0.2", "GET", &read, &[]);
        assert_eq!(status, 404, "an unknown plugin, still a read");
        assert_eq!(header(&headers, "ratelimit-policy"), "\"reads\";q=5;w=3600");
        let limit = header(&headers, "ratelimit");
        assert!(
            limit.starts_with(&format!("\"reads\";r={left};t=")),
            "{limit}"
        );
    }
    let (status, headers, body) = from("127.0.0.2", "GET", &read, &[]);
    assert_eq!(status, 429, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:agora:problem:too-many-requests");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 5 per 3600 s"),
        "{problem}"
    );
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=7200).contains(&retry), "Retry-After {retry}");
    assert!(header(&headers, "ratelimit").starts_with("\"reads\";r=0;t="));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "content-type"), "application/problem+json");

    // Other addresses, other classes, tokens and probes are counted apart.
    assert_eq!(from("127.0.0.3", "GET", &read, &[]).0, 404);
    let search = format!("{}/api/v1/plugins?q=anything", server.url);
    for _ in 0..3 {
        let (status, headers, _) = from("127.0.0.2", "GET", &search, &[]);
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "ratelimit-policy"),
            "\"searches\";q=3;w=3600"
        );
    }
    assert_eq!(from("127.0.0.2", "GET", &search, &[]).0, 429);
    let bearer = format!("Bearer {}", server.admin_token);
    let (status, headers, _) = from(
        "127.0.0.2",
        "GET",
        &read,
        &[("authorization", bearer.as_str())],
    );
    assert_eq!(status, 404, "a token has its own quota");
    assert!(header(&headers, "ratelimit").starts_with("\"reads\";r=4;"));
    for path in ["/health", "/ready", "/metrics", "/static/app.css"] {
        let (status, headers, _) = from("127.0.0.2", "GET", &format!("{}{path}", server.url), &[]);
        assert_ne!(status, 429, "{path} is never limited");
        assert!(header(&headers, "ratelimit").is_empty(), "{path}");
    }
    // The refusals are counted by class.
    let (_, _, metrics) = from("127.0.0.4", "GET", &format!("{}/metrics", server.url), &[]);
    assert!(
        metrics.contains("agora_rate_limited_total{class=\"reads\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("agora_rate_limited_total{class=\"searches\"} 1"));
}

#[test]
fn wrong_credentials_use_up_their_address_sign_in_quota() {
    let server = Server::start_with(Backend::Sqlite, &limited(&[]));
    let url = format!("{}/api/v1/me", server.url);
    // Each made-up token would get a fresh quota of its own; its 401 counts against the
    // address instead.
    for i in 0..3 {
        let token = format!("Bearer agora_made_up_{i}");
        let (status, _, _) = from("127.0.0.5", "GET", &url, &[("authorization", &token)]);
        assert_eq!(status, 401);
    }
    let (status, headers, body) = from(
        "127.0.0.5",
        "GET",
        &url,
        &[("authorization", "Bearer agora_made_up_again")],
    );
    assert_eq!(status, 429, "{body}");
    assert!(header(&headers, "ratelimit-policy").starts_with("\"sign_in\";q=3;"));
    // Even a real token from that address waits: its credentials are not looked at.
    let bearer = format!("Bearer {}", server.admin_token);
    assert_eq!(
        from("127.0.0.5", "GET", &url, &[("authorization", &bearer)]).0,
        429
    );
    // Without credentials, the address still reads; elsewhere, the token works.
    assert_eq!(
        from(
            "127.0.0.5",
            "GET",
            &format!("{}/api/v1/plugins", server.url),
            &[]
        )
        .0,
        200
    );
    assert_eq!(
        from("127.0.0.6", "GET", &url, &[("authorization", &bearer)]).0,
        200
    );
}

#[test]
fn forwarded_addresses_count_only_from_trusted_proxies() {
    let direct = Server::start_with(Backend::Sqlite, &limited(&[]));
    let proxied = Server::start_with(
        Backend::Sqlite,
        &limited(&[("AGORA_PROXY__TRUSTED", "127.0.0.1/32,10.0.0.0/8")]),
    );
    let read = |server: &Server, client: &str| {
        from(
            "127.0.0.1",
            "GET",
            &format!("{}/api/v1/plugins/acme/x", server.url),
            &[("x-forwarded-for", client)],
        )
        .0
    };
    // Untrusted: the header is ignored, every "client" is the one peer.
    for i in 0..5 {
        assert_eq!(read(&direct, &format!("198.51.100.{i}")), 404);
    }
    assert_eq!(read(&direct, "198.51.100.99"), 429);
    // Trusted: each forwarded client has its own quota; a client-written first entry
    // does not choose the address (the right-most untrusted hop does).
    for i in 0..5 {
        assert_eq!(read(&proxied, "198.51.100.7"), 404, "request {i}");
    }
    assert_eq!(read(&proxied, "198.51.100.7"), 429);
    assert_eq!(read(&proxied, "203.0.113.1, 198.51.100.7"), 429);
    assert_eq!(read(&proxied, "198.51.100.8"), 404);
    assert_eq!(read(&proxied, "198.51.100.7, 10.1.2.3"), 429);
    // A bad setting is refused at start, naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("AGORA_PROXY__TRUSTED", "10.0.0.0/8,proxy.internal")
        .env("AGORA_RATE_LIMITS__READS", "0")
        .current_dir(direct.data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rate_limits.reads") || err.contains("proxy.trusted"),
        "{err}"
    );
}

#[test]
fn replicas_share_rate_limit_counts_and_sign_in_failures() {
    let env = limited(&[
        ("AGORA_RATE_LIMITS__SYNC_MS", "100"),
        ("AGORA_RATE_LIMITS__SIGN_IN", "100"),
        ("AGORA_ADMIN_PASSWORD", "the admin's own passphrase"),
    ]);
    let replicas = Server::start_replicas(2, &env);
    let (a, b) = (&replicas[0], &replicas[1]);
    let read = |server: &Server| {
        from(
            "127.0.0.7",
            "GET",
            &format!("{}/api/v1/plugins/acme/x", server.url),
            &[],
        )
        .0
    };
    for _ in 0..5 {
        assert_eq!(read(a), 404);
    }
    // Once a's counts reach the database (a sync), b holds the client to the same
    // quota: its first request is decided on b's own count (it has not seen this client
    // yet), and once b has synced, it refuses.
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(read(b), 404, "decided on what b had counted itself");
    eventually("the other replica to refuse", || {
        (read(b) == 429).then_some(())
    });
    assert_eq!(read(a), 429);

    // Sign-in failures count on every replica: five wrong guesses spread over both, and
    // the sixth waits on either.
    let sign_in = |server: &Server, attempt: u8, password: &str| -> u16 {
        // The form is fetched from elsewhere each time (fetching is a read, with its own
        // quota); the attempts all come from 127.0.0.8.
        let fields = format!("username=admin&password={}", form_value(password));
        let page_from = format!("127.0.1.{attempt}");
        sign_in_on_form(&server.url, Some(&page_from), Some("127.0.0.8"), &fields).0
    };
    for i in 0..5 {
        let replica = if i % 2 == 0 { a } else { b };
        assert_eq!(sign_in(replica, i, "a wrong guess"), 401, "guess {i}");
    }
    assert_eq!(
        sign_in(a, 10, "a wrong guess"),
        429,
        "throttled on one replica"
    );
    assert_eq!(sign_in(b, 11, "a wrong guess"), 429, "and on the other");
    // The failures are kept as digests: no user name or address in clear.
    let kept = a.query("SELECT key FROM sign_in_failures ORDER BY key");
    assert!(!kept.contains("admin"), "{kept}");
}

#[test]
fn a_body_that_trickles_is_cut_while_a_fair_one_is_taken() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let server = Server::start_with(
        Backend::Sqlite,
        &[
            ("AGORA_LIMITS__HEADER_TIMEOUT_SECS", "1"),
            ("AGORA_LIMITS__MIN_BODY_BYTES_PER_SEC", "1000"),
        ],
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let digest = format!("sha256:{}", "0".repeat(64));
    let head = format!(
        "PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
        server.admin_token
    );
    // 10 bytes every 200 ms: 50 bytes/s, never idle for the 30 s idle timeout.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(15) {
        if slow.write_all(&[b'x'; 10]).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let cut_after = started.elapsed();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        cut_after < Duration::from_secs(8),
        "the trickle went on for {cut_after:?}: {answer}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let (_, _, metrics) = http("GET", &format!("{}/metrics", server.url), None, None);
    assert!(
        String::from_utf8_lossy(&metrics).contains("agora_slow_bodies_cut_total 1"),
        "the cut is counted"
    );
    // A body sent at once is taken (its digest does not match: a 400 naming that, not a
    // cut).
    let (status, _, body) = http(
        "PUT",
        &format!("{}/api/v1/blobs/{digest}", server.url),
        Some(&server.admin_token),
        Some(vec![b'x'; 100_000]),
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("digest-mismatch"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}
