//! The control plane's pages in a real headless Chromium against the real binary. A tenant
//! administrator opens a plugin's page, chooses "Install for TENANT", reads on the
//! confirmation page what the release will reach and that the tenant's instance can run
//! it, approves it and lands on the tenant's page; the Updates page shows the newer
//! versions with their changelog, what each asks beyond the approval, and the tenant
//! policy's refusal of one; "Apply" moves the pin, "Roll back" moves it back, "Apply all
//! updates" moves it again, and the API says the same at each step. The Fleet page shows
//! what the instance reported.
//!
//! Every tenant page is laid out at 400 and 320 px and on a desktop without sideways
//! scrolling, and no page logs a problem. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/screenshots/` (`browser_tenants--*.png`).

mod browser_support;
mod support;

use std::time::{Duration, Instant};

use browser_support::layout::at_phone_and_desktop;
use browser_support::{Browser, Page};
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const PLUGIN: &str = "examples/hello-wasm";
const CHANGELOG: &str = "# Changelog\n\n## 1.2.0\n\n- Greets through a remote service.\n\n\
     ## 1.1.0\n\n- Greets **faster**, keeping a scratch file.\n\
     - Its script is removed: <script>alert('changelog')</script>\n";

/// The version `tenant` has approved of [`PLUGIN`], as the API says.
fn approved_version(server: &Server, tenant: &str) -> String {
    let path = format!("/api/v1/tenants/{tenant}/plugins");
    let set = api(server, &server.admin_token, "GET", &path, None, 200);
    let entry = set["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin"] == PLUGIN)
        .unwrap_or_else(|| panic!("{PLUGIN} is not approved: {set}"));
    entry["version"].as_str().unwrap().to_owned()
}

/// Runs `f`, which blocks on its own runtime (the API helpers), outside the browser's.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

/// Waits for the registry's verification of `version` to be drawn.
fn wait_verified(server: &Server, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!(
        "{}/api/v1/plugins/{PLUGIN}/versions/{version}/verification",
        server.url
    );
    while http("GET", &url, None, None).0 != 200 {
        assert!(Instant::now() < deadline, "{version} not verified in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// hello-wasm 1.0.0; 1.1.0 with a changelog and a new capability; 1.2.0 reaching a host
/// the tenant's policy does not allow. A tenant `ops` administered by `tara` (who signs
/// in with [`PASSWORD`]), with one instance `edge-1` that has reported its platform.
/// Returns the instance's credential.
fn setup(server: &Server) -> String {
    let (admin, work) = examples_publisher(server);
    let dir = example_plugin("hello-wasm", work.path());
    admin.run(&["publish", dir.to_str().unwrap()]).ok();
    let manifest = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    std::fs::write(dir.join("CHANGELOG.md"), CHANGELOG).unwrap();
    for (version, extra) in [
        ("1.1.0", "capabilities: [filesystem_temp]\n"),
        (
            "1.2.0",
            "capabilities: [outbound_http]\nnetwork: { outbound_hosts: [api.example.com] }\n",
        ),
    ] {
        let text = manifest.replace("version: 1.0.0", &format!("version: {version}"));
        std::fs::write(dir.join("plugin.yaml"), format!("{text}{extra}")).unwrap();
        admin.run(&["publish", dir.to_str().unwrap()]).ok();
    }
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        wait_verified(server, version);
    }

    admin.run(&["user", "create", "tara"]).ok();
    let password = serde_json::json!({ "password": PASSWORD });
    let path = "/api/v1/users/tara/password";
    api(
        server,
        &server.admin_token,
        "PUT",
        path,
        Some(password),
        204,
    );
    admin
        .run(&[
            "tenant",
            "create",
            "ops",
            "--display-name",
            "Operations",
            "--admin",
            "tara",
        ])
        .ok();
    let registered = admin
        .run(&["--json", "tenant", "instance", "register", "ops", "edge-1"])
        .json();
    let token = registered["token"].as_str().unwrap().to_owned();
    report(server, &token, &[]);
    token
}

/// Reports, as the instance holding `token`, that it runs `plugins` (`version`, `digest`)
/// of [`PLUGIN`], for the tenant's current generation.
fn report(server: &Server, token: &str, plugins: &[(&str, &str)]) {
    let desired = api(server, token, "GET", "/api/v1/instance/desired", None, 200);
    let runs: Vec<_> = plugins
        .iter()
        .map(|(version, digest)| {
            serde_json::json!({ "plugin": PLUGIN, "version": version, "manifest_digest": digest })
        })
        .collect();
    let report = serde_json::json!({
        "core_version": "0.1.0",
        "runner_version": "0.1.0",
        "platform": "linux-x86_64",
        "generation": desired["generation"],
        "plugins": runs,
    });
    api(
        server,
        token,
        "POST",
        "/api/v1/instance/report",
        Some(report),
        204,
    );
}

#[test]
fn a_tenant_admin_installs_updates_and_rolls_back_in_chromium() {
    let server = Server::start(Backend::Sqlite);
    let instance_token = setup(&server);
    let base = server.url.trim_end_matches('/').to_owned();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(&server, &base, &instance_token));
}

async fn shot(page: &Page, name: &str) {
    page.screenshot(name).await;
    page.assert_clean().await;
}

/// The text of the page's notice, which must be there.
async fn notice(page: &Page) -> String {
    assert!(
        page.exists(".notice.ok").await,
        "no notice on {}",
        page.url().await
    );
    page.text(".notice.ok").await
}

async fn scenario(server: &Server, base: &str, instance_token: &str) {
    let browser = Browser::start().await;
    let page = browser.page().await;
    let plugin_page = format!("{base}/plugins/{PLUGIN}");

    // Sign in as the tenant's administrator, coming back to version 1.0.0's page.
    page.goto(&format!(
        "{base}/login?next=/plugins/{PLUGIN}%3Fversion%3D1.0.0"
    ))
    .await;
    page.fill("#username", "tara").await;
    page.fill("#password", PASSWORD).await;
    page.click("form.stack button[type=submit]").await;
    assert!(
        page.url().await.ends_with("?version=1.0.0"),
        "{}",
        page.url().await
    );
    shot(&page, "01-plugin-install-for").await;
    let install = ".tenant-actions a.button";
    assert_eq!(page.text(install).await, "Install for ops");

    // The confirmation: what 1.0.0 reaches, that edge-1 can run it, the policy admits it.
    page.click(install).await;
    assert!(
        page.url()
            .await
            .ends_with("/tenants/ops/install/examples/hello-wasm?version=1.0.0"),
        "{}",
        page.url().await
    );
    shot(&page, "02-install-confirm").await;
    let reach = page.text(".reach").await;
    for words in ["no network access", "none: pure computation", "wasm"] {
        assert!(reach.contains(words), "{words:?} in {reach}");
    }
    let facts = page.text(".release-facts").await;
    assert!(
        facts.contains("active") && facts.contains("Verified"),
        "{facts}"
    );
    let fits = page.text(".fits").await;
    assert!(fits.contains("edge-1 can run it"), "{fits}");
    assert!(
        page.text("main")
            .await
            .contains("The policy of ops admits it")
    );
    let install_url = page.url().await;
    at_phone_and_desktop(&page, &install_url, "tenant-install").await;
    page.assert_clean().await;

    // Approve: the tenant's page says so and lists the pin; the API agrees.
    page.click("button.approve").await;
    assert!(
        page.url().await.ends_with("/tenants/ops"),
        "{}",
        page.url().await
    );
    shot(&page, "03-tenant-approved").await;
    let said = notice(&page).await;
    assert!(
        said.contains("examples/hello-wasm 1.0.0 is approved for ops"),
        "{said}"
    );
    let approved = page.text("table.approved").await;
    assert!(
        approved.contains(PLUGIN) && approved.contains("1.0.0") && approved.contains("tara"),
        "{approved}"
    );
    let digest: String = page
        .eval("document.querySelector('table.approved code').title")
        .await;
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(page.text("table.instances").await.contains("linux-x86_64"));
    assert_eq!(off_runtime(|| approved_version(server, "ops")), "1.0.0");
    // The notice is said once.
    page.goto(&format!("{base}/tenants/ops")).await;
    assert!(!page.exists(".notice.ok").await, "the notice came back");
    at_phone_and_desktop(&page, &format!("{base}/tenants/ops"), "tenant").await;
    page.assert_clean().await;

    // The instance converges; the fleet shows it current on the approved digest.
    off_runtime(|| report(server, instance_token, &[("1.0.0", &digest)]));
    page.goto(&format!("{base}/tenants/ops/fleet")).await;
    shot(&page, "04-fleet-current").await;
    let fleet = page.text("table.fleet-instances").await;
    assert!(
        fleet.contains("edge-1") && fleet.contains("current") && fleet.contains("hello-wasm@1.0.0"),
        "{fleet}"
    );
    assert!(page.text("table.fleet-plugins").await.contains("edge-1"));

    // The plugin's latest page offers the update and says what runs now; its
    // confirmation shows the policy's refusal and no approve button.
    page.goto(&plugin_page).await;
    let offer = page.text(".tenant-actions").await;
    assert!(
        offer.contains("Update ops to 1.2.0") && offer.contains("ops runs 1.0.0"),
        "{offer}"
    );
    page.click(install).await;
    shot(&page, "05-install-refused").await;
    let refusal = page.text(".refusal").await;
    assert!(
        refusal.contains("refuses") && refusal.contains("api.example.com"),
        "{refusal}"
    );
    assert!(page.text(".asks-more").await.contains("api.example.com"));
    assert!(!page.exists("button.approve").await);

    // Updates: both newer versions, newest first, with the changelog and the difference.
    page.click("nav[aria-label=Tenant] a[href='/tenants/ops/updates']")
        .await;
    shot(&page, "06-updates").await;
    assert_eq!(page.text(".current-version").await, "1.0.0");
    let versions: Vec<String> = page
        .eval("Array.from(document.querySelectorAll('.update h3 a')).map(a => a.textContent)")
        .await;
    assert_eq!(versions, ["1.2.0", "1.1.0"]);
    let newest = page.text(".update:nth-of-type(1)").await;
    assert!(
        newest.contains("Asks for more: hosts api.example.com; capabilities outbound_http")
            && newest.contains("The policy of ops refuses it"),
        "{newest}"
    );
    let next: String = page
        .eval("document.querySelectorAll('.update')[1].textContent")
        .await;
    assert!(
        next.contains("Asks for more: capabilities filesystem_temp")
            && next.contains("Greets faster, keeping a scratch file")
            && next.contains("Its script is removed")
            && !next.contains("alert("),
        "{next}"
    );
    assert!(!page.exists(".update .readme script").await);
    assert!(
        page.exists(".update .readme strong").await,
        "Markdown is rendered"
    );
    at_phone_and_desktop(
        &page,
        &format!("{base}/tenants/ops/updates"),
        "tenant-updates",
    )
    .await;
    page.assert_clean().await;

    // Apply: the newest applicable version is 1.1.0 (the policy refuses 1.2.0).
    page.click("button.apply").await;
    shot(&page, "07-applied").await;
    let said = notice(&page).await;
    assert!(
        said.contains("Moved examples/hello-wasm from 1.0.0 to 1.1.0"),
        "{said}"
    );
    assert_eq!(page.text(".current-version").await, "1.1.0");
    assert_eq!(off_runtime(|| approved_version(server, "ops")), "1.1.0");

    // Roll back to 1.0.0.
    assert_eq!(page.text("button.rollback").await, "Roll back to 1.0.0");
    page.click("button.rollback").await;
    shot(&page, "08-rolled-back").await;
    assert!(
        notice(&page)
            .await
            .contains("Rolled examples/hello-wasm back to 1.0.0"),
    );
    assert_eq!(page.text(".current-version").await, "1.0.0");
    assert_eq!(off_runtime(|| approved_version(server, "ops")), "1.0.0");
    page.goto(&format!("{base}/tenants/ops")).await;
    assert!(page.text("table.approved").await.contains("1.0.0"));

    // Apply all updates, from the Updates page again.
    page.goto(&format!("{base}/tenants/ops/updates")).await;
    page.click("form.apply-all button").await;
    assert!(notice(&page).await.contains("to 1.1.0"));
    assert_eq!(off_runtime(|| approved_version(server, "ops")), "1.1.0");

    // The fleet: edge-1 still runs 1.0.0, behind the approved set.
    at_phone_and_desktop(&page, &format!("{base}/tenants/ops/fleet"), "tenant-fleet").await;
    page.assert_clean().await;
    let fleet = page.text("table.fleet-instances").await;
    assert!(fleet.contains("behind"), "{fleet}");
    let plugins = page.text("table.fleet-plugins").await;
    assert!(
        plugins.contains("1.1.0") && plugins.contains("edge-1"),
        "{plugins}"
    );

    // The list of the visitor's tenants, linked from the account page.
    page.goto(&format!("{base}/account")).await;
    page.click("main a[href='/tenants']").await;
    assert!(page.text("main table").await.contains("Operations"));
    at_phone_and_desktop(&page, &format!("{base}/tenants"), "tenants").await;
    page.assert_clean().await;
    browser.close().await;
    let shots = browser_support::artifacts_dir();
    println!("screenshots: {}", shots.display());
}
