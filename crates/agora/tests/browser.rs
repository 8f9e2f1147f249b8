//! The web UI in a real headless Chromium against the real binary: browse, search and
//! filter, open a plugin page, sign in, write a review and see it, hide it as an
//! administrator; every page is screenshotted (target/test-artifacts/browser/) and must
//! log no console error, exception, CSP violation or failed load. XSS attempts in a
//! description, a README and a review must show as text and never run (a dialog opened
//! by `alert` is recorded as a problem).

mod browser_support;
mod support;

use browser_support::{Browser, Page};
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const XSS_DESC: &str = "Files tickets <script>alert('description')</script>";
const XSS_REVIEW: &str =
    "Works well <img src=x onerror=alert('review')> <script>alert('review2')</script>";

fn set_password(server: &Server, user: &str) {
    let body = serde_json::json!({ "password": PASSWORD }).to_string();
    let (status, _, answer) = http_with(
        "PUT",
        &format!("{}/api/v1/users/{user}/password", server.url),
        Some(&server.admin_token),
        &[("content-type", "application/json")],
        Some(body.into_bytes()),
    );
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
}

/// alice publishes a signed plugin whose description and README try XSS, plus a second
/// plugin in another category and a private one.
fn catalog(server: &Server, work: &std::path::Path) {
    let admin = server.admin();
    admin
        .run(&["user", "create", "alice", "--role", "publisher"])
        .ok();
    set_password(server, "alice");
    let token = admin
        .run(&[
            "--json",
            "token",
            "create",
            "--user",
            "alice",
            "--name",
            "e2e",
            "--scope",
            "publish:*",
            "--scope",
            "read:private",
        ])
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut alice = server.cli(Some(&token));
    alice
        .run(&["publisher", "create", "acme", "--display-name", "ACME Corp"])
        .ok();
    alice.sign_for("acme");
    let jira = plugin_dir(
        work,
        "acme",
        "jira",
        "1.2.0",
        "display_name: Jira Tickets\ncategories: [ticketing]\ntags: [tickets, atlassian]\nprovider: atlassian\n\
         capabilities: [outbound_http]\nnetwork: { outbound_hosts: [api.atlassian.com] }\n",
        b"\0asm\x01\0\0\0",
    );
    let manifest = std::fs::read_to_string(jira.join("plugin.yaml"))
        .unwrap()
        .replace(
            "description: The jira plugin",
            &format!("description: \"{XSS_DESC}\""),
        );
    std::fs::write(jira.join("plugin.yaml"), manifest).unwrap();
    std::fs::write(
        jira.join("README.md"),
        "# Jira Tickets\n\nCreates **tickets** from events.\n\n<script>alert('readme')</script>\n\n\
         <img src=\"x\" onerror=\"alert('readme-img')\">\n\n[click me](javascript:alert('link'))\n\n\
         | Setting | Meaning |\n|---|---|\n| project | where tickets go |\n",
    )
    .unwrap();
    alice.run(&["publish", jira.to_str().unwrap()]).ok();
    let slack = plugin_dir(
        work,
        "acme",
        "slack-notify",
        "0.3.0",
        "categories: [messaging]\ntags: [chat]\nprovider: slack\n",
        b"\0asm\x01\0\0\0",
    );
    alice.run(&["publish", slack.to_str().unwrap()]).ok();
    let private = plugin_dir(
        work,
        "acme",
        "internal-audit",
        "1.0.0",
        "visibility: private\ncategories: [ticketing]\n",
        b"\0asm\x01\0\0\0",
    );
    alice.run(&["publish", private.to_str().unwrap()]).ok();
}

async fn visit(page: &Page, url: &str, shot: &str) {
    page.goto(url).await;
    page.screenshot(shot).await;
    page.assert_clean().await;
}

#[test]
fn browse_search_sign_in_review_and_moderate_in_chromium() {
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_ADMIN_PASSWORD", PASSWORD)]);
    let work = tempfile::tempdir().unwrap();
    catalog(&server, work.path());
    let base = server.url.trim_end_matches('/').to_owned();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(&base));
}

async fn scenario(base: &str) {
    let browser = Browser::start().await;
    let page = browser.page().await;

    // Home: shelves and categories; the private plugin is nowhere.
    visit(&page, &format!("{base}/"), "01-home").await;
    assert!(page.text("main").await.contains("Jira Tickets"));
    assert!(!page.text("main").await.contains("internal-audit"));

    // Search from the header, then narrow by a facet and remove the filter again.
    page.fill("#q", "tickets").await;
    page.click(".searchbox button[type=submit]").await;
    page.screenshot("02-search").await;
    page.assert_clean().await;
    assert!(page.text(".results").await.contains("Jira Tickets"));
    assert!(!page.text(".results").await.contains("internal-audit"));
    page.goto(&format!("{base}/search")).await;
    page.click(".facet a[href*='category=messaging']").await;
    page.screenshot("03-search-filtered").await;
    page.assert_clean().await;
    let results = page.text(".results").await;
    assert!(
        results.contains("slack-notify") && !results.contains("Jira Tickets"),
        "{results}"
    );
    assert!(
        page.text(".active-filters")
            .await
            .contains("category: messaging")
    );
    page.click(".active-filters a").await;
    assert!(page.text(".results").await.contains("Jira Tickets"));

    // The plugin page: README rendered, the XSS shown as text, capabilities prominent.
    page.click("a.card-title[href='/plugins/acme/jira']").await;
    page.screenshot("04-plugin").await;
    page.assert_clean().await;
    assert_eq!(page.text(".readme h1").await, "Jira Tickets");
    assert!(
        page.text(".lead")
            .await
            .contains("<script>alert('description')</script>")
    );
    assert!(
        page.text(".permissions")
            .await
            .contains("api.atlassian.com")
    );
    assert!(
        page.text("#install-cmd")
            .await
            .contains("agora install acme/jira@=1.2.0")
    );
    assert!(
        page.text(".plugin-side")
            .await
            .contains("Signature verified")
    );
    assert!(!page.exists(".readme script").await);
    assert!(!page.exists(".readme img[onerror]").await);
    assert!(!page.exists(".readme a[href^='javascript']").await);

    // Sign in from the review section and come back to the plugin.
    page.click(".reviews a[href^='/login']").await;
    page.screenshot("05-sign-in").await;
    page.assert_clean().await;
    page.fill("#username", "alice").await;
    page.fill("#password", PASSWORD).await;
    page.click("form.stack button[type=submit]").await;
    assert!(
        page.url().await.ends_with("/plugins/acme/jira"),
        "{}",
        page.url().await
    );

    // Write a review (with an XSS attempt) and see it, as text.
    page.click("input[name=rating][value='4']").await;
    page.fill("#review-body", XSS_REVIEW).await;
    page.click(".review-form button[type=submit]").await;
    page.screenshot("06-plugin-reviewed").await;
    page.assert_clean().await;
    assert_eq!(page.text(".review-body").await, XSS_REVIEW);
    assert!(page.text(".rating-big").await.contains("4.0 out of 5"));
    // Edit it: still one review, now 5 stars.
    page.click("input[name=rating][value='5']").await;
    page.fill("#review-body", "Even better after the update")
        .await;
    page.click(".review-form button[type=submit]").await;
    assert_eq!(
        page.eval::<u32>("document.querySelectorAll('.review').length")
            .await,
        1
    );
    assert!(page.text(".rating-big").await.contains("5.0 out of 5"));

    // The private plugin is visible to its publisher's member, and the other pages.
    visit(&page, &format!("{base}/search?q=audit"), "07-search-member").await;
    assert!(page.text(".results").await.contains("internal-audit"));
    visit(&page, &format!("{base}/account"), "08-account").await;
    assert!(
        page.text("main").await.contains("e2e"),
        "alice's token is listed"
    );
    visit(&page, &format!("{base}/publishers/acme"), "09-publisher").await;
    assert!(page.text("main").await.contains("ACME Corp"));

    // Sign out; the administrator hides the review and verifies the publisher.
    page.click("form[action='/logout'] button").await;
    visit(&page, &format!("{base}/login"), "10-sign-in-admin").await;
    page.fill("#username", "admin").await;
    page.fill("#password", PASSWORD).await;
    page.click("form.stack button[type=submit]").await;
    visit(&page, &format!("{base}/admin"), "11-admin").await;
    page.click("form[action='/publishers/acme'] button").await;
    visit(
        &page,
        &format!("{base}/plugins/acme/jira"),
        "12-plugin-admin",
    )
    .await;
    assert!(
        page.text(".plugin-head")
            .await
            .contains("verified publisher")
    );
    page.fill(".hide-form input[name=reason]", "off-topic")
        .await;
    page.click(".hide-form button").await;
    assert!(
        page.text(".reviews")
            .await
            .contains("Hidden by admin: off-topic")
    );
    page.click("form[action='/logout'] button").await;
    visit(
        &page,
        &format!("{base}/plugins/acme/jira"),
        "13-plugin-after-moderation",
    )
    .await;
    assert!(page.text(".reviews").await.contains("No reviews yet"));

    // Nothing logged a problem on any page, and no XSS ever opened a dialog.
    assert!(
        page.problems().await.is_empty(),
        "{:?}",
        page.problems().await
    );
    browser.close().await;
}
