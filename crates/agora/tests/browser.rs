//! The web UI in a real headless Chromium against the real binary: browse, search and
//! filter, open a plugin page, sign in, write a review and see it, hide it as an
//! administrator; every page must log no console error, exception, CSP violation or
//! failed load. XSS attempts in a description, a README and a review must show as text
//! and never run (a dialog opened by `alert` is recorded as a problem).
//!
//! The main pages are also laid out at a phone's width (400 px, and 320 px) and on a
//! desktop (1280 px): nothing may make the page scroll sideways, the header's Search
//! button and the install box's Copy button must be whole on screen, and each page is
//! screenshotted at both widths (`phone-*.png`, `desktop-*.png` in
//! `$CARGO_TARGET_TMPDIR/screenshots/`, by default `target/tmp/screenshots/`; the test
//! prints the directory).

mod browser_support;
mod support;

use browser_support::layout::{DESKTOP, PHONE, assert_inside, at_phone_and_desktop};
use browser_support::{Browser, Page};
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const XSS_DESC: &str = "Files tickets <script>alert('description')</script>";
const XSS_REVIEW: &str =
    "Works well <img src=x onerror=alert('review')> <script>alert('review2')</script>";
/// A support address far wider than the plugin page's side column.
const SUPPORT_URL: &str = "https://support.example.org/help-center/plugins/acme/jira-tickets/troubleshooting-installation-and-configuration?from=agora";

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
         capabilities: [outbound_http]\nnetwork: { outbound_hosts: [api.atlassian.com] }\n\
         contact: { support: \"SUPPORT\", security: security@example.org }\n"
            .replace("SUPPORT", SUPPORT_URL)
            .as_str(),
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
    alice
        .run(&[
            "deprecate",
            "acme/slack-notify@0.3.0",
            "--reason",
            "Slack retired this API",
            "--replacement",
            "acme/jira",
        ])
        .ok();
    // Its only version yanked: out of listings, but not out of its publisher's sight.
    let legacy = plugin_dir(
        work,
        "acme",
        "legacy-sync",
        "0.1.0",
        "categories: [ticketing]\n",
        b"\0asm\x01\0\0\0",
    );
    alice.run(&["publish", legacy.to_str().unwrap()]).ok();
    alice
        .run(&[
            "yank",
            "acme/legacy-sync@0.1.0",
            "--reason",
            "corrupts the sync state",
        ])
        .ok();
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
    // The deprecated plugin carries the word on its card; the yanked-only one is not listed.
    let marker = page
        .text(".card:has(a[href='/plugins/acme/slack-notify']) .badge.state-deprecated")
        .await;
    assert_eq!(marker, "deprecated");
    assert!(!page.text("main").await.contains("legacy-sync"));
    at_phone_and_desktop(&page, &format!("{base}/"), "home").await;
    page.assert_clean().await;

    // Search from the header, then narrow by a facet and remove the filter again.
    page.fill("#q", "tickets").await;
    page.click(".searchbox button[type=submit]").await;
    page.screenshot("02-search").await;
    page.assert_clean().await;
    assert!(page.text(".results").await.contains("Jira Tickets"));
    assert!(!page.text(".results").await.contains("internal-audit"));
    at_phone_and_desktop(&page, &format!("{base}/search?q=tickets"), "search").await;
    page.assert_clean().await;
    page.goto(&format!("{base}/search?category=messaging"))
        .await;
    assert_eq!(
        page.text(".card:has(a[href='/plugins/acme/slack-notify']) .badge.state-deprecated")
            .await,
        "deprecated",
        "a marker in words, not colour alone"
    );
    page.goto(&format!("{base}/search?category=ticketing"))
        .await;
    assert!(!page.text(".results").await.contains("legacy-sync"));
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

    // At a phone's width and on a desktop: nothing scrolls sideways, Search and Copy are
    // whole on screen, and the long support address is a link that stays in its card.
    let plugin_url = format!("{base}/plugins/acme/jira");
    at_phone_and_desktop(&page, &plugin_url, "plugin").await;
    page.assert_clean().await;
    let support = format!("a[href='{SUPPORT_URL}']");
    assert_eq!(page.text(&support).await, SUPPORT_URL);
    let rel: String = page
        .eval(&format!(
            "document.querySelector({}).rel",
            serde_json::to_string(&support).unwrap()
        ))
        .await;
    assert!(
        rel.contains("nofollow") && rel.contains("noopener"),
        "{rel}"
    );
    assert!(
        page.exists("a[href='mailto:security@example.org']").await,
        "an e-mail address is a mailto: link"
    );
    assert_inside(&page, &support, ".plugin-side section", "desktop").await;
    page.set_viewport(PHONE.0, PHONE.1).await;
    page.goto(&plugin_url).await;
    assert_inside(&page, &support, ".plugin-side section", "phone").await;
    page.set_viewport(DESKTOP.0, DESKTOP.1).await;

    // The other pages a visitor sees, at both widths: the publisher's (the yanked-only
    // plugin is not there for outsiders), sign-in, signing out, a missing page.
    at_phone_and_desktop(&page, &format!("{base}/publishers/acme"), "publisher").await;
    page.assert_clean().await;
    assert!(!page.text("main").await.contains("legacy-sync"));
    at_phone_and_desktop(&page, &format!("{base}/login"), "sign-in").await;
    page.assert_clean().await;
    at_phone_and_desktop(&page, &format!("{base}/logout"), "logout-signed-out").await;
    page.assert_clean().await;
    assert!(page.text("main").await.contains("You are signed out"));
    at_phone_and_desktop(&page, &format!("{base}/plugins/acme/nothing"), "not-found").await;
    let problems = page.take_problems().await;
    assert!(
        !problems.is_empty() && problems.iter().all(|p| p.contains("404")),
        "{problems:?}"
    );
    assert!(page.text("header.top nav").await.contains("Sign in"));
    page.goto(&plugin_url).await;

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
    assert!(
        page.text(".rating-big")
            .await
            .contains("4.0 out of 5 · 1 review")
    );
    assert!(!page.text("main").await.contains("1 reviews"));
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
    // Its members still see the plugin whose only version is yanked, marked so.
    assert_eq!(
        page.text(".card:has(a[href='/plugins/acme/legacy-sync']) .badge.state-yanked")
            .await,
        "yanked"
    );
    at_phone_and_desktop(
        &page,
        &format!("{base}/publishers/acme"),
        "publisher-member",
    )
    .await;
    page.assert_clean().await;
    at_phone_and_desktop(&page, &format!("{base}/account"), "account").await;
    page.assert_clean().await;
    at_phone_and_desktop(&page, &plugin_url, "plugin-signed-in").await;
    page.assert_clean().await;

    // An error page shows who is signed in, like every other page.
    at_phone_and_desktop(&page, &format!("{base}/nowhere"), "not-found-signed-in").await;
    let problems = page.take_problems().await;
    assert!(problems.iter().all(|p| p.contains("404")), "{problems:?}");
    let nav = page.text("header.top nav").await;
    assert!(
        nav.contains("alice") && nav.contains("Sign out") && !nav.contains("Sign in"),
        "{nav}"
    );

    // Sign out from the address bar: /logout offers the button that does it.
    at_phone_and_desktop(&page, &format!("{base}/logout"), "logout").await;
    page.assert_clean().await;
    assert!(page.text("main").await.contains("signed in as alice"));
    page.click("main form[action='/logout'] button").await;
    assert!(page.text("header.top nav").await.contains("Sign in"));

    // The administrator hides the review and verifies the publisher.
    visit(&page, &format!("{base}/login"), "10-sign-in-admin").await;
    page.fill("#username", "admin").await;
    page.fill("#password", PASSWORD).await;
    page.click("form.stack button[type=submit]").await;
    visit(&page, &format!("{base}/admin"), "11-admin").await;
    // Lifecycle changes in words: state, reason, replacement; no JSON.
    let lifecycle = page.text("section[aria-labelledby=life-h]").await;
    for words in [
        "deprecated",
        "Slack retired this API",
        "replaced by acme/jira",
        "yanked",
        "corrupts the sync state",
    ] {
        assert!(lifecycle.contains(words), "{words:?} in {lifecycle}");
    }
    assert!(
        !lifecycle.contains('{') && !lifecycle.contains("\"state\""),
        "{lifecycle}"
    );
    at_phone_and_desktop(&page, &format!("{base}/admin"), "admin").await;
    page.assert_clean().await;
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
    println!(
        "screenshots (phone-*.png at {}px, desktop-*.png at {}px): {}",
        PHONE.0,
        DESKTOP.0,
        browser_support::artifacts_dir().display()
    );
}
