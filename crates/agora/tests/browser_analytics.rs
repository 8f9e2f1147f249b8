//! The analytics pages in a real headless Chromium against the real binary, fed with real
//! traffic through the running server: two versions of a plugin and a second plugin are
//! published; the releases are downloaded from several client addresses (each counts once
//! per hour); the catalog is searched through the API, once for words nothing matches; a
//! tenant's instance reports what it runs and its runs (calls, failures, durations, an
//! error class) as its agent would. Once the flusher has written the counts, the
//! administrator opens the registry's, the publisher's, the plugin's and the tenant's
//! analytics pages and the plugin page: the SVG charts are there and say the exact
//! numbers made (a dot's `<title>`, the tables), the CSV link answers the table for the browser's session, the plugin
//! page tells its record from real runs.
//!
//! Every page is laid out at 400 and 320 px and on a desktop without sideways scrolling,
//! and no page logs a problem. Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots/`
//! (`browser_analytics--*.png`).

mod browser_support;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use browser_support::layout::at_phone_and_desktop;
use browser_support::{Browser, Page};
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const PLUGIN: &str = "examples/hello-wasm";
const TWIN: &str = "examples/hello-twin";
/// Downloads made of each version, each from its own client address.
const DOWNLOADS: [(&str, u8); 2] = [("1.0.0", 3), ("1.1.0", 2)];
const CALLS: u64 = 120;
const FAILURES: u64 = 3;

/// `GET url` anonymously from the local address `from` (a client of its own): the status.
fn get_from(from: IpAddr, url: &str) -> u16 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = reqwest::Client::builder()
                .local_address(from)
                .build()
                .unwrap();
            let response = client.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            response.bytes().await.unwrap();
            status
        })
}

/// The manifest digest of `plugin@version`, as the API says.
fn digest_of(server: &Server, plugin: &str, version: &str) -> String {
    let versions = get_json(server, &format!("/api/v1/plugins/{plugin}/versions"));
    versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("{plugin}@{version} in {versions}"))["manifest_digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for the registry's verification of `plugin@version` to be drawn.
fn wait_verified(server: &Server, plugin: &str, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!(
        "{}/api/v1/plugins/{plugin}/versions/{version}/verification",
        server.url
    );
    while http("GET", &url, None, None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "{plugin}@{version} not verified in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Real traffic: publishes, downloads, searches, a tenant's instance reporting. Returns
/// today's date (UTC, `YYYY-MM-DD`) as the report names it.
fn traffic(server: &Server) -> String {
    let (admin, work) = examples_publisher(server);
    for (name, version) in [
        ("hello-wasm", "1.0.0"),
        ("hello-wasm", "1.1.0"),
        ("hello-twin", "1.0.0"),
    ] {
        let module = format!("{name} {version}");
        let dir = plugin_dir(
            work.path(),
            "examples",
            name,
            version,
            "",
            module.as_bytes(),
        );
        admin.run(&["publish", dir.to_str().unwrap()]).ok();
    }
    wait_verified(server, PLUGIN, "1.1.0");

    // Downloads: each from its own address on the loopback network.
    let mut host = 1u8;
    for (version, count) in DOWNLOADS {
        let digest = digest_of(server, PLUGIN, version);
        for _ in 0..count {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
            let url = format!("{}/api/v1/blobs/{digest}", server.url);
            assert_eq!(get_from(from, &url), 200, "{url} from {from}");
            host += 1;
        }
    }
    // Searches: three that find hello-wasm, two that find nothing.
    for q in ["hello", "hello", "twin", "zebra-unicorn", "zebra-unicorn"] {
        get_json(server, &format!("/api/v1/plugins?q={q}"));
    }

    // A tenant with an instance running both plugins, reporting runs of hello-wasm 1.1.0.
    admin.run(&["user", "create", "tara"]).ok();
    admin
        .run(&["tenant", "create", "ops", "--admin", "tara"])
        .ok();
    let registered = admin
        .run(&["--json", "tenant", "instance", "register", "ops", "edge-1"])
        .json();
    let token = registered["token"].as_str().unwrap().to_owned();
    let desired = api(server, &token, "GET", "/api/v1/instance/desired", None, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut durations = vec![0u64; 16];
    durations[3] = 100; // ≤ 10 ms
    durations[6] = 19; // ≤ 100 ms
    durations[9] = 1; // ≤ 1 s
    let report = serde_json::json!({
        "core_version": "0.1.0",
        "runner_version": "0.1.0",
        "platform": "linux-x86_64",
        "generation": desired["generation"],
        "plugins": [
            { "plugin": PLUGIN, "version": "1.1.0", "manifest_digest": digest_of(server, PLUGIN, "1.1.0") },
            { "plugin": TWIN, "version": "1.0.0", "manifest_digest": digest_of(server, TWIN, "1.0.0") },
        ],
        "executions": [{
            "plugin": PLUGIN, "version": "1.1.0", "at": now,
            "calls": CALLS, "failures": FAILURES, "total_ms": 2_400,
            "durations": durations,
            "errors": [{ "class": "timeout", "count": FAILURES, "message": "the call timed out after 2s" }],
        }],
        "batch": 1,
    });
    api(
        server,
        &token,
        "POST",
        "/api/v1/instance/report",
        Some(report.clone()),
        204,
    );
    // Sent again (the agent did not hear the answer): counted once.
    api(
        server,
        &token,
        "POST",
        "/api/v1/instance/report",
        Some(report),
        204,
    );

    // The counts are written in the background, once a second.
    let downloads: u64 = DOWNLOADS.iter().map(|(_, n)| u64::from(*n)).sum();
    eventually("the downloads and searches to be counted", || {
        let report = api(
            server,
            &server.admin_token,
            "GET",
            "/api/v1/analytics?days=7",
            None,
            200,
        );
        let sum = |field: &str| -> u64 {
            report["daily"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d[field].as_u64().unwrap())
                .sum()
        };
        (sum("downloads") == downloads && sum("searches") == 5 && sum("calls") == CALLS)
            .then(|| report["daily"][0]["day"].as_str().unwrap().to_owned())
    })
}

#[test]
fn analytics_pages_chart_real_traffic_in_chromium() {
    let server = Server::start(Backend::Sqlite);
    let body = serde_json::json!({ "password": PASSWORD });
    api(
        &server,
        &server.admin_token,
        "PUT",
        "/api/v1/users/admin/password",
        Some(body),
        204,
    );
    let today = traffic(&server);
    let base = server.url.trim_end_matches('/').to_owned();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(&base, &today));
}

/// Opens `url`, lays it out at phone and desktop widths, screenshots it as `name` and
/// checks nothing was logged.
async fn visit(page: &Page, url: &str, name: &str) {
    at_phone_and_desktop(page, url, name).await;
    page.goto(url).await;
    page.screenshot(name).await;
    page.assert_clean().await;
}

/// The `<title>`s of the chart dots and bars in `selector`.
async fn tooltips(page: &Page, selector: &str) -> Vec<String> {
    page.eval(&format!(
        "Array.from(document.querySelectorAll(\"{selector} svg[role=img] circle title, {selector} svg[role=img] g.chart-row > title\")).map(t => t.textContent)"
    ))
    .await
}

/// The text in `selector`, shown or not (a table in a closed `<details>` has no
/// `innerText`).
async fn content(page: &Page, selector: &str) -> String {
    page.eval(&format!(
        "document.querySelector(\"{selector}\").textContent"
    ))
    .await
}

async fn scenario(base: &str, today: &str) {
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.goto(&format!("{base}/login?next=/admin")).await;
    page.fill("#username", "admin").await;
    page.fill("#password", PASSWORD).await;
    page.click("form.stack button[type=submit]").await;
    assert!(page.url().await.ends_with("/admin"), "{}", page.url().await);

    // The registry's page, reached from the administration page.
    page.click("main a[href='/admin/analytics']").await;
    let admin_url = format!("{base}/admin/analytics");
    visit(&page, &admin_url, "browser_analytics--admin").await;
    let charts: u32 = page
        .eval("document.querySelectorAll('svg[role=img].chart').length")
        .await;
    assert!(charts >= 7, "{charts} charts");
    let dots = tooltips(&page, "#downloads").await;
    assert!(
        dots.contains(&format!("Downloads, {today}: 5"))
            && dots.contains(&format!("Installs, {today}: 2")),
        "{dots:?}"
    );
    let totals = page.text(".analytics-totals").await;
    for fact in [
        "Downloads\n5",
        "Installs\n2",
        "Calls\n120",
        "Failures\n3",
        "Success rate\n97.5%",
        "Searches\n5",
    ] {
        let (what, n) = fact.split_once('\n').unwrap();
        assert!(
            totals.contains(what) && totals.contains(n),
            "{fact} in {totals}"
        );
    }
    let zero = tooltips(&page, "#zero-searches").await;
    assert_eq!(zero, ["zebra-unicorn: 2 searches"]);
    let searches = tooltips(&page, "#searches").await;
    assert!(
        searches.contains(&"hello: 2 searches".to_owned()),
        "{searches:?}"
    );
    let versions = tooltips(&page, "#versions").await;
    assert!(
        versions.contains(&format!("{PLUGIN}@1.1.0: 97.5%")),
        "{versions:?}"
    );
    let together = tooltips(&page, "#together").await;
    assert_eq!(together, [format!("{PLUGIN} + {TWIN}: 1 instances")]);
    // The numbers are in the tables too (inside <details>, read without opening them).
    let table = content(&page, "#downloads table").await;
    assert!(table.contains(today) && table.contains('5'), "{table}");
    let errors = page.text("#errors table").await;
    assert!(
        errors.contains("timeout") && errors.contains("the call timed out after 2s"),
        "{errors}"
    );
    // The CSV link answers the table for the browser's session.
    let href: String = page
        .eval("document.querySelector('#zero-searches a[download]').href")
        .await;
    let cookie = page
        .raw()
        .get_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join("; ");
    let (status, headers, body) = std::thread::scope(|s| {
        s.spawn(|| http_with("GET", &href, None, &[("cookie", &cookie)], None))
            .join()
            .unwrap()
    });
    assert_eq!(status, 200, "{href}");
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert!(header("content-type").starts_with("text/csv"));
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"agora-registry-zero_searches-30d.csv\""
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "query,count,zero_results\r\nzebra-unicorn,2,2\r\n"
    );
    // The period selector is a plain form.
    page.select("#days", "7").await;
    page.click("form.period button[type=submit]").await;
    assert!(
        page.url().await.ends_with("/admin/analytics?days=7"),
        "{}",
        page.url().await
    );
    assert!(
        tooltips(&page, "#downloads")
            .await
            .contains(&format!("Downloads, {today}: 5"))
    );

    // The publisher's page: one line per plugin.
    page.goto(&format!("{base}/publishers/examples")).await;
    page.click("main a[href='/publishers/examples/analytics']")
        .await;
    visit(
        &page,
        &format!("{base}/publishers/examples/analytics"),
        "browser_analytics--publisher",
    )
    .await;
    let dots = tooltips(&page, "#downloads").await;
    // hello-wasm: 5 downloads and 1 install; hello-twin: 1 install.
    assert!(
        dots.contains(&format!("{PLUGIN}, {today}: 6"))
            && dots.contains(&format!("{TWIN}, {today}: 1")),
        "{dots:?}"
    );

    // The plugin's page: adoption of each version after its release.
    page.goto(&format!("{base}/plugins/{PLUGIN}")).await;
    page.click(&format!("main a[href='/plugins/{PLUGIN}/analytics']"))
        .await;
    visit(
        &page,
        &format!("{base}/plugins/{PLUGIN}/analytics"),
        "browser_analytics--plugin",
    )
    .await;
    let dots = tooltips(&page, "#downloads").await;
    assert!(
        dots.contains(&format!("1.0.0, {today}: 3"))
            && dots.contains(&format!("1.1.0, {today}: 3")),
        "{dots:?}"
    );
    let versions = content(&page, "#versions table").await;
    assert!(
        versions.contains("≤ 10 ms") && versions.contains("≤ 100 ms") && versions.contains("97.5%"),
        "{versions}"
    );

    // The tenant's page, from its tabs.
    page.goto(&format!("{base}/tenants/ops")).await;
    page.click("nav[aria-label=Tenant] a[href='/tenants/ops/analytics']")
        .await;
    visit(
        &page,
        &format!("{base}/tenants/ops/analytics"),
        "browser_analytics--tenant",
    )
    .await;
    let dots = tooltips(&page, "#downloads").await;
    assert!(
        dots.contains(&format!("{PLUGIN}, {today}: 1"))
            && dots.contains(&format!("{TWIN}, {today}: 1")),
        "{dots:?}"
    );
    assert!(content(&page, "#runs table").await.contains("120"));

    // The plugin page's record from real runs, for everyone.
    let plugin_url = format!("{base}/plugins/{PLUGIN}");
    visit(&page, &plugin_url, "browser_analytics--reputation").await;
    let runs = page.text(".reputation").await;
    for words in [
        "Instances running it",
        "Installs in 30 days",
        "97.5% of 120 calls",
        "25 per 1,000 calls",
        today,
    ] {
        assert!(runs.contains(words), "{words:?} in {runs}");
    }
    browser.close().await;
    let shots = browser_support::artifacts_dir();
    println!("screenshots: {}", shots.display());
}
