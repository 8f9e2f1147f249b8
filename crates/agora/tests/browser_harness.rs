//! Tests of the browser harness itself (`browser_support`): it drives plain HTML forms,
//! and it fails when a page misbehaves. The pages come from a tiny HTTP server inside
//! the test.

mod browser_support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use browser_support::Browser;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FORM: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Form</title>
<style>body { font-family: sans-serif; } .tall { height: 1500px; }</style></head>
<body>
<h1>Search</h1>
<form action="/result" method="get">
  <input id="q" name="q">
  <select id="color" name="color"><option value="red">Red</option><option value="blue">Blue</option></select>
  <textarea id="note" name="note"></textarea>
  <input id="agree" name="agree" type="checkbox">
  <button id="toggle" type="button" onclick="document.getElementById('status').textContent = 'toggled'">Toggle</button>
  <button id="go" type="submit">Go</button>
</form>
<p id="status">idle</p>
<p><a id="to-console-error" href="/console-error">a page that logs an error</a></p>
<p><a id="to-slow" href="/slow">a slow page</a></p>
<div class="tall"></div>
<p id="bottom">bottom</p>
</body></html>"#;

const RESULT: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Result</title></head>
<body><h1>Received</h1></body></html>"#;

const POST_FORM: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>New plugin</title></head>
<body>
<form action="/submit" method="post">
  <input id="title" name="title" required>
  <select id="kind" name="kind"><option value="a">A</option><option value="b">B</option></select>
  <button id="save" type="submit">Save</button>
</form>
</body></html>"#;

const SLOW: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Slow</title></head>
<body><h1>Slow</h1></body></html>"#;

const CONSOLE_ERROR: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Console</title></head>
<body><p>console</p><script>console.error("boom", 42)</script></body></html>"#;

const EXCEPTION: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Exception</title></head>
<body><p>exception</p><script>throw new Error("kaboom")</script></body></html>"#;

const XSS: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Comment</title></head>
<body><p>Comment: <script>alert('xss')</script></p><p id="after">after the payload</p></body></html>"#;

const CSP: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>CSP</title></head>
<body><p>csp</p><script>document.title = "inline script ran"</script></body></html>"#;

const WIDE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Wide</title></head>
<body style="margin: 0"><div id="wide" style="width: 600px">six hundred pixels</div></body></html>"#;

const MISSING_CSS: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Styles</title>
<link rel="stylesheet" href="/static/missing.css"></head>
<body><p>unstyled</p></body></html>"#;

/// A minimal HTTP/1.1 server for the pages above; every response closes its connection.
/// `/slow` answers after 1.5 s, `/hang` never does. It records each request as
/// `METHOD target body`.
struct Site {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Site {
    async fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(respond(stream, Arc::clone(&log)));
            }
        });
        Site { base, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn respond(mut stream: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let content_length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + content_length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&request[head_end..]);
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    log.lock()
        .unwrap()
        .push(format!("{method} {target} {body}").trim().to_owned());

    let path = target.split('?').next().unwrap_or("/");
    let (status, extra, body) = match (method.as_str(), path) {
        ("GET", "/form") => ("200 OK", "", FORM),
        ("GET", "/result") => ("200 OK", "", RESULT),
        ("GET", "/post-form") => ("200 OK", "", POST_FORM),
        ("POST", "/submit") => ("303 See Other", "Location: /result?posted\r\n", ""),
        ("GET", "/slow") => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            ("200 OK", "", SLOW)
        }
        ("GET", "/console-error") => ("200 OK", "", CONSOLE_ERROR),
        ("GET", "/exception") => ("200 OK", "", EXCEPTION),
        ("GET", "/xss") => ("200 OK", "", XSS),
        ("GET", "/csp") => (
            "200 OK",
            "Content-Security-Policy: default-src 'none'\r\n",
            CSP,
        ),
        ("GET", "/missing-css") => ("200 OK", "", MISSING_CSS),
        ("GET", "/wide") => ("200 OK", "", WIDE),
        ("GET", "/hang") => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        _ => ("404 Not Found", "", "not found"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Runs `future`, which must panic, and returns its panic message.
async fn panic_message(future: impl Future) -> String {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(_) => panic!("expected a failure, but it succeeded"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}

fn assert_reported(problems: &[String], needles: &[&str]) {
    assert!(
        problems
            .iter()
            .any(|p| needles.iter().all(|needle| p.contains(needle))),
        "expected a problem mentioning {needles:?}, got {problems:#?}"
    );
}

#[tokio::test]
async fn drives_a_plain_form_and_reports_nothing_on_a_clean_site() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;

    page.goto(&site.url("/form")).await;
    assert_eq!(page.url().await, site.url("/form"));
    assert_eq!(page.eval::<u32>("window.innerWidth").await, 1280);
    assert_eq!(page.eval::<u32>("window.innerHeight").await, 900);
    assert!(page.exists("form #q").await);
    assert!(!page.exists("#no-such-element").await);
    assert_eq!(page.text("h1").await, "Search");

    // A click that does not navigate returns once the click is handled.
    page.click("#toggle").await;
    assert_eq!(page.text("#status").await, "toggled");
    assert_eq!(page.url().await, site.url("/form"));

    page.fill("#q", "hello world").await;
    page.fill("#note", "first line\nsecond line").await;
    page.select("#color", "blue").await;
    assert_eq!(
        page.eval::<String>("document.querySelector('#q').value")
            .await,
        "hello world"
    );
    let failure = panic_message(page.select("#color", "green")).await;
    assert!(failure.contains("no option"), "{failure}");
    let failure = panic_message(page.fill("#agree", "yes")).await;
    assert!(failure.contains("click it instead"), "{failure}");

    let shot = page.screenshot("form").await;
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        shot.display()
    );
    // Full page: the image is taller than the 900px window.
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(height > 900, "screenshot is {height}px high");

    page.click("#go").await;
    assert_eq!(
        page.url().await,
        site.url("/result?q=hello+world&color=blue&note=first+line%0D%0Asecond+line")
    );
    assert_eq!(page.text("h1").await, "Received");
    assert!(page.screenshot("result").await.is_file());

    assert_eq!(page.problems().await, Vec::<String>::new());
    page.assert_clean().await;
    assert!(
        site.requests()
            .iter()
            .any(|r| r.starts_with("GET /result?q=hello+world")),
        "{:?}",
        site.requests()
    );
    browser.close().await;
}

#[tokio::test]
async fn the_viewport_narrows_to_a_phone_and_overflow_shows_in_the_scroll_width() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.set_viewport(400, 800).await;
    page.goto(&site.url("/wide")).await;
    assert_eq!(page.eval::<u32>("window.innerWidth").await, 400);
    assert_eq!(page.eval::<u32>("window.innerHeight").await, 800);
    // No zooming out to fit: a 600 px element makes the page scroll sideways.
    assert_eq!(
        page.eval::<u32>("document.documentElement.scrollWidth")
            .await,
        600
    );
    let shot = std::fs::read(page.screenshot("wide-phone").await).unwrap();
    assert_eq!(u32::from_be_bytes(shot[16..20].try_into().unwrap()), 600);
    page.set_viewport(1280, 900).await;
    assert_eq!(page.eval::<u32>("window.innerWidth").await, 1280);
    assert_eq!(
        page.eval::<u32>("document.documentElement.scrollWidth")
            .await,
        1280
    );
    page.assert_clean().await;
    browser.close().await;
}

#[tokio::test]
async fn click_waits_for_slow_pages_and_follows_post_redirects() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;

    page.goto(&site.url("/form")).await;
    let started = std::time::Instant::now();
    page.click("#to-slow").await;
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(page.text("h1").await, "Slow");

    page.goto(&site.url("/post-form")).await;
    // The browser refuses to submit with the required field empty: no navigation.
    page.click("#save").await;
    assert_eq!(page.url().await, site.url("/post-form"));
    page.fill("#title", "A & B").await;
    page.select("#kind", "b").await;
    page.click("#save").await;
    assert_eq!(page.url().await, site.url("/result?posted"));
    assert_eq!(page.text("h1").await, "Received");
    let requests = site.requests();
    assert!(
        requests.contains(&"POST /submit title=A+%26+B&kind=b".to_owned()),
        "{requests:?}"
    );
    page.assert_clean().await;
    browser.close().await;
}

#[tokio::test]
async fn reports_console_errors_after_a_link_click() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.goto(&site.url("/form")).await;
    page.click("#to-console-error").await;
    assert_eq!(page.url().await, site.url("/console-error"));

    assert_reported(&page.problems().await, &["console.error", "boom 42"]);
    let failure = panic_message(page.assert_clean()).await;
    assert!(failure.contains("boom"), "{failure}");
    browser.close().await;
}

#[tokio::test]
async fn reports_uncaught_exceptions() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.goto(&site.url("/exception")).await;
    assert_reported(
        &page.problems().await,
        &["exception", "Uncaught", "Error: kaboom"],
    );
    browser.close().await;
}

#[tokio::test]
async fn reports_and_dismisses_javascript_dialogs() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    // The alert would block the page's load forever if it were not dismissed.
    page.goto(&site.url("/xss")).await;
    assert_eq!(page.text("#after").await, "after the payload");
    assert_reported(&page.problems().await, &["alert", "xss"]);
    browser.close().await;
}

#[tokio::test]
async fn reports_content_security_policy_violations() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.goto(&site.url("/csp")).await;
    assert_eq!(page.eval::<String>("document.title").await, "CSP");
    assert_reported(&page.problems().await, &["Content Security Policy"]);
    browser.close().await;
}

#[tokio::test]
async fn reports_resources_that_fail_to_load() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.goto(&site.url("/missing-css")).await;
    assert_reported(&page.problems().await, &["404", "/static/missing.css"]);
    browser.close().await;
}

#[tokio::test]
async fn an_error_status_is_a_problem_until_taken() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let page = browser.page().await;
    page.goto(&site.url("/no-such-page")).await;
    assert_reported(&page.take_problems().await, &["404", "/no-such-page"]);
    assert_eq!(page.problems().await, Vec::<String>::new());
    page.goto(&site.url("/form")).await;
    page.assert_clean().await;
    browser.close().await;
}

#[tokio::test]
async fn a_page_that_never_loads_fails_instead_of_hanging() {
    let site = Site::start().await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.set_timeout(Duration::from_secs(2));
    let failure = panic_message(page.goto(&site.url("/hang"))).await;
    assert!(failure.contains("timed out"), "{failure}");
    browser.close().await;
}
