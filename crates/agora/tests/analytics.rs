//! Analytics through the real binaries: two `agora serve` replicas on one PostgreSQL
//! database and one S3 bucket take downloads, searches and an instance's reports (one of
//! them carrying yesterday's runs, arriving late; one sent twice, to each replica, as an
//! agent retrying does). Every report — the registry's, the publisher's, the plugin's
//! and the tenant's, JSON and CSV — then holds exactly the counts that were made; who may
//! read which is enforced; `/metrics` grows no label from any of it. Needs PostgreSQL and
//! an S3 server, and fails, never skips, without them.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::*;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `2026-12-05` for a time in ms.
fn day(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// `GET path` with `token`: the status and the body.
fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let (status, _, body) = http("GET", &format!("{}{path}", server.url), token, None);
    (status, body)
}

fn get_ok(server: &Server, path: &str, token: &str) -> Value {
    let (status, body) = get(server, path, Some(token));
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn report(server: &Server, instance: &str, body: &Value) {
    let (status, _, answer) = http_with(
        "POST",
        &format!("{}/api/v1/instance/report", server.url),
        Some(instance),
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    );
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
}

fn durations(slots: &[(usize, u64)]) -> Vec<u64> {
    let mut d = vec![0u64; 16];
    for (slot, n) in slots {
        d[*slot] = *n;
    }
    d
}

#[test]
fn analytics_add_up_exactly_across_replicas_late_and_retried() {
    let env = s3_storage_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut servers = Server::start_replicas(2, &env);
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    let admin = a.admin();
    let mut alice = a.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    publish_acme(&alice, work.path(), "tool", "1.0.0", &[]);
    publish_acme(&alice, work.path(), "tool", "1.1.0", &[]);
    let info = alice.run(&["--json", "info", "acme/tool@1.0.0"]).json();
    let manifest = info["manifest_digest"].as_str().unwrap().to_owned();
    let info = alice.run(&["--json", "info", "acme/tool@1.1.0"]).json();
    let manifest_11 = info["manifest_digest"].as_str().unwrap().to_owned();

    // Downloads: one client counts once per release and hour on each replica.
    for server in [&a, &a, &b] {
        let (status, _) = get(server, &format!("/api/v1/blobs/{manifest}"), None);
        assert_eq!(status, 200);
    }
    // Searches, split over both replicas; the first page of each counts.
    for (server, q, times) in [
        (&a, "tool", 12),
        (&b, "tool", 8),
        (&a, "nothing-at-all", 3),
        (&b, "Nothing-At-All ", 2),
    ] {
        for _ in 0..times {
            let (status, _) = get(
                server,
                &format!("/api/v1/plugins?q={}", q.replace(' ', "+")),
                None,
            );
            assert_eq!(status, 200);
        }
    }

    // An instance reports to a: it runs 1.0.0, and yesterday's runs arrive now (late).
    admin.run(&["tenant", "create", "corp"]).ok();
    let instance = admin
        .run(&["-q", "tenant", "instance", "register", "corp", "edge-1"])
        .ok()
        .trim()
        .to_owned();
    let now = now_ms();
    let yesterday = now - DAY_MS;
    let first = json!({
        "core_version": "1.0.0", "runner_version": "0.1.0", "platform": "linux-x86_64",
        "generation": 1,
        "plugins": [{"plugin": "acme/tool", "version": "1.0.0", "manifest_digest": manifest}],
        "executions": [{
            "plugin": "acme/tool", "version": "1.0.0", "at": yesterday,
            "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "calls": 7, "failures": 1, "total_ms": 140,
            "durations": durations(&[(0, 6), (6, 1)]),
            "errors": [{"class": "trap", "count": 1, "message": "wasm trap: unreachable"}]
        }],
        "batch": 100
    });
    report(&a, &instance, &first);
    // The agent did not hear back and sends it again, to the other replica: counted once.
    report(&b, &instance, &first);
    // Then it moves to 1.1.0 and reports today's runs to b.
    let second = json!({
        "core_version": "1.0.0", "runner_version": "0.1.0", "platform": "linux-x86_64",
        "generation": 2,
        "plugins": [{"plugin": "acme/tool", "version": "1.1.0", "manifest_digest": manifest_11}],
        "executions": [{
            "plugin": "acme/tool", "version": "1.1.0", "at": now,
            "calls": 3, "failures": 0, "total_ms": 9,
            "durations": durations(&[(2, 3)]),
            "errors": []
        }],
        "batch": 101
    });
    report(&b, &instance, &second);

    // Bad reports are refused with the field at fault, and count nothing.
    let mut bad = second.clone();
    bad["batch"] = json!(102);
    bad["executions"][0]["errors"] = json!([{"class": "Not A Class", "count": 1}]);
    let mut bad_digest = second.clone();
    bad_digest["batch"] = json!(103);
    bad_digest["executions"][0]["digest"] = json!("md5:abc");
    let (status, _, body) = http_with(
        "POST",
        &format!("{}/api/v1/instance/report", a.url),
        Some(&instance),
        &[("content-type", "application/json")],
        Some(bad.to_string().into_bytes()),
    );
    assert_eq!(status, 422);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        problem["errors"][0]["field"], "executions[0].errors[0].class",
        "{problem}"
    );

    // Wait for both replicas' buffers (flushed every second) to reach the database.
    let registry = eventually("both replicas' downloads and searches", || {
        let r = get_ok(&a, "/api/v1/analytics?days=2", &a.admin_token);
        let today = r["daily"]
            .as_array()?
            .iter()
            .find(|d| d["day"] == day(now))?
            .clone();
        (today["downloads"] == 2 && today["searches"] == 25).then_some(r)
    });
    let (yesterday_name, today_name) = (day(yesterday), day(now));
    assert_eq!(
        registry["daily"],
        json!([
            {"day": yesterday_name, "plugin": "*", "version": "*", "downloads": 0, "installs": 0,
             "removals": 0, "calls": 7, "failures": 1, "searches": 0},
            {"day": today_name, "plugin": "*", "version": "*", "downloads": 2, "installs": 2,
             "removals": 1, "calls": 3, "failures": 0, "searches": 25},
        ]),
        "{registry}"
    );
    assert_eq!(
        registry["searches"],
        json!([
            {"query": "tool", "count": 20, "zero_results": 0},
            {"query": "nothing-at-all", "count": 5, "zero_results": 5},
        ])
    );
    assert_eq!(
        registry["zero_searches"],
        json!([{"query": "nothing-at-all", "count": 5, "zero_results": 5}])
    );
    let versions = registry["versions"].as_array().unwrap();
    let v10 = versions.iter().find(|v| v["version"] == "1.0.0").unwrap();
    let v11 = versions.iter().find(|v| v["version"] == "1.1.0").unwrap();
    for (field, want) in [
        ("downloads", json!(2)),
        ("installs", json!(1)),
        ("removals", json!(1)),
        ("active_instances", json!(0)),
        ("calls", json!(7)),
        ("failures", json!(1)),
        ("success_rate", json!(85.7)),
        ("p50_ms", json!(1)),
        ("p99_ms", json!(100)),
    ] {
        assert_eq!(v10[field], want, "1.0.0 {field}: {v10}");
    }
    for (field, want) in [
        ("downloads", json!(0)),
        ("installs", json!(1)),
        ("active_instances", json!(1)),
        ("calls", json!(3)),
        ("success_rate", json!(100.0)),
        ("p50_ms", json!(5)),
    ] {
        assert_eq!(v11[field], want, "1.1.0 {field}: {v11}");
    }
    assert_eq!(
        registry["errors"],
        json!([{"plugin": "acme/tool", "class": "trap", "count": 1, "first_seen": yesterday,
                "last_seen": yesterday, "versions": ["1.0.0"], "sample": "wasm trap: unreachable"}])
    );

    // The raw events: every download and search, one install/removal each, and the two
    // run batches (the retried one once), the crash report naming the code's digest and
    // the instance.
    let raw = a.query("SELECT kind, COUNT(*) FROM analytics_events GROUP BY kind ORDER BY kind");
    assert_eq!(
        raw.split_whitespace().collect::<Vec<_>>(),
        ["download|2", "install|2", "removal|1", "run|2", "search|25"],
        "{raw}"
    );
    let crash = a.query(
        "SELECT e.detail, i.name FROM analytics_events e JOIN instances i ON i.id = e.instance_id \
         WHERE e.kind = 'run' AND e.failures > 0",
    );
    assert!(
        crash.contains("sha256:0000") && crash.contains("trap") && crash.contains("edge-1"),
        "{crash}"
    );

    // The tenant's view: its instance's installs, removals and runs, no downloads.
    let tenant = get_ok(&b, "/api/v1/tenants/corp/analytics?days=2", &a.admin_token);
    assert_eq!(
        tenant["daily"],
        json!([
            {"day": yesterday_name, "plugin": "acme/tool", "version": "*", "downloads": 0,
             "installs": 0, "removals": 0, "calls": 7, "failures": 1, "searches": 0},
            {"day": today_name, "plugin": "acme/tool", "version": "*", "downloads": 0,
             "installs": 2, "removals": 1, "calls": 3, "failures": 0, "searches": 0},
        ])
    );
    assert_eq!(tenant["searches"], json!([]), "searches are the operators'");
    // The same as CSV.
    let (status, headers, csv) = http(
        "GET",
        &format!(
            "{}/api/v1/tenants/corp/analytics?days=2&format=csv&table=daily",
            a.url
        ),
        Some(&a.admin_token),
        None,
    );
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("text/csv"),
        "{headers:?}"
    );
    assert!(header("content-disposition").contains("agora-tenant-corp-daily.csv"));
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        format!(
            "day,plugin,version,downloads,installs,removals,calls,failures,searches\r\n\
             {yesterday_name},acme/tool,*,0,0,0,7,1,0\r\n\
             {today_name},acme/tool,*,0,2,1,3,0,0\r\n"
        )
    );

    // The plugin's view, per version: adoption of 1.1.0 after its release.
    let plugin = get_ok(
        &a,
        "/api/v1/plugins/acme/tool/analytics?days=2",
        &a.admin_token,
    );
    let today_rows: Vec<(String, u64, u64, u64)> = plugin["daily"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["day"] == today_name)
        .map(|r| {
            (
                r["version"].as_str().unwrap().to_owned(),
                r["downloads"].as_u64().unwrap(),
                r["installs"].as_u64().unwrap(),
                r["removals"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        today_rows,
        [("1.0.0".to_owned(), 2, 1, 1), ("1.1.0".to_owned(), 0, 1, 0)]
    );
    // The publisher's view, per plugin: downloads as well as its instances' use.
    let publisher = get_ok(
        &b,
        "/api/v1/publishers/acme/analytics?days=2",
        &a.admin_token,
    );
    assert_eq!(
        publisher["daily"],
        json!([
            {"day": yesterday_name, "plugin": "acme/tool", "version": "*", "downloads": 0,
             "installs": 0, "removals": 0, "calls": 7, "failures": 1, "searches": 0},
            {"day": today_name, "plugin": "acme/tool", "version": "*", "downloads": 2,
             "installs": 2, "removals": 1, "calls": 3, "failures": 0, "searches": 0},
        ])
    );

    // Who may read what.
    let (status, _) = get(&a, "/api/v1/analytics", None);
    assert_eq!(status, 401);
    admin.run(&["user", "create", "bob"]).ok();
    let bob = admin.token_for("bob", &["publish:*", "tenant:*"]);
    for path in [
        "/api/v1/analytics",
        "/api/v1/publishers/acme/analytics",
        "/api/v1/plugins/acme/tool/analytics",
    ] {
        let (status, body) = get(&a, path, Some(&bob));
        assert_eq!(status, 403, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _) = get(&a, "/api/v1/tenants/corp/analytics", Some(&bob));
    assert_eq!(status, 404, "not a member: no such tenant");
    for (query, field) in [
        ("days=0", "days"),
        ("days=400", "days"),
        ("until=yesterday", "until"),
        ("format=xml", "format"),
        ("format=csv&table=secrets", "table"),
    ] {
        let (status, body) = get(
            &a,
            &format!("/api/v1/analytics?{query}"),
            Some(&a.admin_token),
        );
        assert_eq!(status, 422, "{query}");
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }

    // /metrics counts the intake with fixed labels, and no query or plugin becomes one.
    let (_, _, metrics) = http("GET", &format!("{}/metrics", a.url), None, None);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("agora_analytics_events_total{outcome=\"written\"}"),
        "{metrics}"
    );
    for leak in ["nothing-at-all", "acme/tool", "corp", "edge-1"] {
        assert!(!metrics.contains(leak), "/metrics names {leak}");
    }
}
