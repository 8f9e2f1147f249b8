//! The one way end-to-end tests drive a real browser: a headless Chromium, controlled
//! over the DevTools protocol with `chromiumoxide`.
//!
//! ```ignore
//! mod browser_support;
//! use browser_support::Browser;
//!
//! #[tokio::test]
//! async fn search_form() {
//!     let browser = Browser::start().await;
//!     let page = browser.page().await;
//!     page.goto(&format!("{base}/")).await;
//!     page.fill("#q", "hello").await;
//!     page.click("button[type=submit]").await; // waits for the results page to load
//!     assert!(page.text("h1").await.contains("Results"));
//!     page.screenshot("results").await;
//!     page.assert_clean().await;
//!     browser.close().await;
//! }
//! ```
//!
//! Chromium must be installed (`apt-get install chromium`): it is looked up as
//! `$AGORA_TEST_CHROMIUM`, else `chromium` on `PATH`; the tests fail, never skip, without
//! it. Every [`Page`] records what a user would see go wrong: console errors and failed
//! assertions, uncaught exceptions, browser log errors (Content-Security-Policy
//! violations, resources that failed to load) and JavaScript dialogs (which are
//! dismissed so the page cannot hang). [`Page::problems`] returns them and
//! [`Page::assert_clean`] fails the test if there are any.
//!
//! Every operation fails the test (panics) instead of returning errors, and gives up
//! after [`DEFAULT_TIMEOUT`] (see [`Page::set_timeout`]) so that a hung page fails the
//! test instead of hanging CI. Screenshots go to `$AGORA_TEST_ARTIFACTS`, else
//! `screenshots/` in the test's target tmpdir (`$CARGO_TARGET_TMPDIR`, by default
//! `target/tmp/screenshots/`). Pages start at [`VIEWPORT`]; [`Page::set_viewport`]
//! narrows one to a phone's width.

#![allow(dead_code)]

pub mod layout;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::{
    EventEntryAdded, LogEntry, LogEntryLevel, LogEntrySource,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, DialogType, EventJavascriptDialogOpening,
    EventLoadEventFired, GetLayoutMetricsParams, HandleJavaScriptDialogParams, Viewport,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EvaluateParams, EventConsoleApiCalled, EventExceptionThrown,
    ExceptionDetails, RemoteObject,
};
use chromiumoxide::listeners::EventStream;
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinHandle;

/// How long any single operation (launching the browser, a navigation, a click and the
/// page load it triggers, an evaluation...) may take before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The size of the browser window and of every page's viewport, in CSS pixels.
pub const VIEWPORT: (u32, u32) = (1280, 900);

/// A headless Chromium with its own throw-away profile. Dropping it kills the browser;
/// [`Browser::close`] shuts it down cleanly.
pub struct Browser {
    // Field order is drop order: the browser process goes before its profile directory.
    inner: chromiumoxide::Browser,
    handler: JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Launches Chromium in (new) headless mode, without sandbox (tests run as root),
    /// with a temporary user-data-dir and a 1280x900 window (and viewport).
    pub async fn start() -> Browser {
        let executable = chromium_executable();
        let profile = tempfile::Builder::new()
            .prefix("agora-chromium-")
            .tempdir()
            .expect("create a temporary Chromium profile directory");
        let config = chromiumoxide::BrowserConfig::builder()
            .chrome_executable(&executable)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(VIEWPORT.0, VIEWPORT.1)
            // chromiumoxide's default emulation also turns touch on; each page sets its
            // own viewport instead.
            .viewport(None)
            .launch_timeout(Duration::from_secs(30))
            // The harness applies its own, shorter, timeouts around every operation.
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|e| panic!("Chromium configuration: {e}"));
        let (inner, mut handler) = chromiumoxide::Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("launch Chromium ({}): {e}", executable.display()));
        // The handler drives the DevTools connection; nothing works unless it is polled.
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    break; // the connection is gone (the browser exited)
                }
            }
        });
        Browser {
            inner,
            handler,
            _profile: profile,
        }
    }

    /// Opens a new tab on `about:blank`, with problem collection already listening, so
    /// nothing that happens during the first [`Page::goto`] is missed.
    pub async fn page(&self) -> Page {
        let inner = within(DEFAULT_TIMEOUT, "open a new tab", async {
            self.inner.new_page("about:blank").await
        })
        .await
        .unwrap_or_else(|e| panic!("open a new tab: {e}"));
        Page::attach(inner).await
    }

    /// Asks the browser to exit and waits for it; use at the end of a test so the
    /// profile directory can be removed cleanly. (Dropping a `Browser` kills it.)
    pub async fn close(mut self) {
        let closed = tokio::time::timeout(Duration::from_secs(5), self.inner.close()).await;
        if !matches!(closed, Ok(Ok(_))) {
            let _ = self.inner.kill().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.wait()).await;
    }
}

impl Drop for Browser {
    /// Without [`Browser::close`] (a failed test), kill the browser and give it a moment
    /// to exit, so that its profile directory can be removed.
    fn drop(&mut self) {
        if let Some(child) = self.inner.get_mut_child()
            && matches!(child.inner.try_wait(), Ok(None))
        {
            let _ = child.inner.start_kill();
            for _ in 0..100 {
                if !matches!(child.inner.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.handler.abort();
    }
}

/// Where the browser is: `$AGORA_TEST_CHROMIUM`, else `chromium` on `PATH`.
fn chromium_executable() -> PathBuf {
    if let Some(path) = std::env::var_os("AGORA_TEST_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "AGORA_TEST_CHROMIUM={} does not exist; point it at a Chromium executable \
             or unset it and install Chromium with `apt-get install chromium`",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser tests need Chromium, and there is no `chromium` on PATH: \
                 install it with `apt-get install chromium` (or set AGORA_TEST_CHROMIUM \
                 to a Chromium executable)"
            )
        })
}

/// One browser tab. Every method fails the test on error or after the page's timeout.
pub struct Page {
    inner: chromiumoxide::Page,
    timeout: Duration,
    problems: Arc<Mutex<Vec<String>>>,
    listeners: Mutex<Listeners>,
    dialogs: JoinHandle<()>,
}

/// Event streams drained on demand by [`Page::problems`]: the events are queued in
/// arrival order, so draining after a round trip to the page sees everything the page
/// reported before it.
struct Listeners {
    console: EventStream<EventConsoleApiCalled>,
    exceptions: EventStream<EventExceptionThrown>,
    log: EventStream<EventEntryAdded>,
}

impl Page {
    async fn attach(inner: chromiumoxide::Page) -> Page {
        // chromiumoxide enables the Page, Runtime and Log domains when it sets up a
        // tab; the listeners below are registered before any navigation.
        let listen = async {
            Ok::<_, chromiumoxide::error::CdpError>((
                inner.event_listener::<EventConsoleApiCalled>().await?,
                inner.event_listener::<EventExceptionThrown>().await?,
                inner.event_listener::<EventEntryAdded>().await?,
                inner
                    .event_listener::<EventJavascriptDialogOpening>()
                    .await?,
            ))
        };
        let (console, exceptions, log, mut dialogs) =
            within(DEFAULT_TIMEOUT, "listen to the page's events", listen)
                .await
                .unwrap_or_else(|e| panic!("listen to the page's events: {e}"));
        inner
            .enable_log()
            .await
            .unwrap_or_else(|e| panic!("enable the Log domain: {e}"));

        // A fixed viewport (no touch or mobile emulation): in headless mode the window
        // size includes emulated browser UI, so the page would get less than the window.
        let viewport = SetDeviceMetricsOverrideParams::new(VIEWPORT.0, VIEWPORT.1, 1.0, false);
        within(DEFAULT_TIMEOUT, "set the viewport", inner.execute(viewport))
            .await
            .unwrap_or_else(|e| panic!("set the viewport: {e}"));

        let problems = Arc::new(Mutex::new(Vec::new()));
        // A dialog blocks the page (and its load event) until it is answered, so it is
        // handled right away rather than when problems are next read.
        let dialog_page = inner.clone();
        let dialog_problems = Arc::clone(&problems);
        let dialogs = tokio::spawn(async move {
            while let Some(dialog) = dialogs.next().await {
                dialog_problems.lock().unwrap().push(format!(
                    "JavaScript {} dialog opened: {:?} ({})",
                    dialog.r#type.as_ref(),
                    dialog.message,
                    dialog.url
                ));
                // Dismiss (alert closes, confirm answers false, prompt answers null),
                // but let a beforeunload prompt go through so navigation can proceed.
                let accept = dialog.r#type == DialogType::Beforeunload;
                let _ = dialog_page
                    .execute(HandleJavaScriptDialogParams::new(accept))
                    .await;
            }
        });

        Page {
            inner,
            timeout: DEFAULT_TIMEOUT,
            problems,
            listeners: Mutex::new(Listeners {
                console,
                exceptions,
                log,
            }),
            dialogs,
        }
    }

    /// Changes how long each later operation on this page may take (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Resizes this tab's viewport to `width` x `height` CSS pixels, as a phone or a
    /// desktop window would be, for the pages loaded after it (and the one shown, which
    /// lays out again). No mobile emulation: a page must fit the width by its own layout,
    /// never by the browser zooming out.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let what = format!("set the viewport to {width}x{height}");
        let viewport = SetDeviceMetricsOverrideParams::new(width, height, 1.0, false);
        within(self.timeout, &what, self.inner.execute(viewport))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// The underlying chromiumoxide page, for what this harness does not cover.
    pub fn raw(&self) -> &chromiumoxide::Page {
        &self.inner
    }

    /// Navigates to `url` and waits for its load event. Fails on network errors; an
    /// HTTP error status loads like any page, but the browser logs it, so it counts
    /// as a [problem](Page::problems).
    pub async fn goto(&self, url: &str) {
        let what = format!("navigate to {url}");
        within(self.timeout, &what, self.inner.goto(url))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// Sets the value of the `<input>` or `<textarea>` matching `selector`, as typing
    /// would (`input` and `change` events are fired). Fails if the field is missing,
    /// hidden, disabled, read-only, or does not accept the value (e.g. a number field).
    /// Constraints like `maxlength` or `pattern` are not applied: the form's own
    /// validation runs when it is submitted.
    pub async fn fill(&self, selector: &str, text: &str) {
        self.act(
            &format!("fill {selector}"),
            r#"(sel, text) => {
                const el = document.querySelector(sel);
                if (!el) return `no element matches ${sel}`;
                if (el.tagName !== 'INPUT' && el.tagName !== 'TEXTAREA')
                    return `${sel} is a <${el.tagName.toLowerCase()}>, not an <input> or <textarea>`;
                if (['checkbox', 'radio', 'file', 'submit', 'button', 'reset', 'image'].includes(el.type))
                    return `${sel} is an <input type=${el.type}>: click it instead`;
                if (el.disabled) return `${sel} is disabled`;
                if (el.readOnly) return `${sel} is read-only`;
                if (!el.checkVisibility()) return `${sel} is not visible`;
                el.focus();
                el.value = text;
                el.dispatchEvent(new Event('input', { bubbles: true }));
                el.dispatchEvent(new Event('change', { bubbles: true }));
                if (el.value !== text)
                    return `${sel} did not accept the value (it holds ${JSON.stringify(el.value)})`;
                return null;
            }"#,
            &[selector.into(), text.into()],
        )
        .await;
    }

    /// Selects the `<option>` with the given `value` in the `<select>` matching
    /// `selector` (`input` and `change` events are fired).
    pub async fn select(&self, selector: &str, value: &str) {
        self.act(
            &format!("select {value:?} in {selector}"),
            r#"(sel, value) => {
                const el = document.querySelector(sel);
                if (!el) return `no element matches ${sel}`;
                if (el.tagName !== 'SELECT')
                    return `${sel} is a <${el.tagName.toLowerCase()}>, not a <select>`;
                if (el.disabled) return `${sel} is disabled`;
                if (!el.checkVisibility()) return `${sel} is not visible`;
                const option = Array.from(el.options).find(o => o.value === value);
                if (!option)
                    return `${sel} has no option with that value; it has ` +
                        JSON.stringify(Array.from(el.options).map(o => o.value));
                if (option.disabled) return `that option of ${sel} is disabled`;
                el.focus();
                option.selected = true;
                el.dispatchEvent(new Event('input', { bubbles: true }));
                el.dispatchEvent(new Event('change', { bubbles: true }));
                return null;
            }"#,
            &[selector.into(), value.into()],
        )
        .await;
    }

    /// Clicks (with the mouse, at its centre, after scrolling it into view) the element
    /// matching `selector`. If the click starts a navigation to another document (a link,
    /// a form submission, a script setting `location`), waits until the new page has
    /// loaded. A form that the browser refuses to submit (a `required` field is empty)
    /// does not navigate.
    pub async fn click(&self, selector: &str) {
        let what = format!("click {selector}");
        // Arm a detector for navigations started by the page (the Navigation API's
        // `navigate` event fires for links, form submissions and `location` changes)
        // and mark the current document so its replacement can be recognised.
        self.act(
            &what,
            r#"(sel) => {
                if (!document.querySelector(sel)) return `no element matches ${sel}`;
                if (!window.__agoraHarnessArmed) {
                    window.__agoraHarnessArmed = true;
                    navigation.addEventListener('navigate', e => {
                        if (!e.destination.sameDocument && !e.downloadRequest)
                            window.__agoraHarnessNavigating = true;
                    });
                }
                window.__agoraHarnessNavigating = false;
                return null;
            }"#,
            &[selector.into()],
        )
        .await;
        // Subscribed before the click: a load that follows cannot be missed.
        let mut loads = within(self.timeout, &what, async {
            self.inner.event_listener::<EventLoadEventFired>().await
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));

        within(self.timeout, &what, async {
            self.inner.find_element(selector).await?.click().await?;
            Ok::<_, chromiumoxide::error::CdpError>(())
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));

        // A form is submitted in a task queued after the click: let it run, then ask.
        // The answer may come from the next document already (no marker), or not come
        // at all because the document went away: both mean a navigation happened.
        let check = self.evaluate(
            "new Promise(resolve => setTimeout(() => resolve(\
             window.__agoraHarnessArmed !== true || window.__agoraHarnessNavigating === true\
             ), 50))",
            true,
        );
        let check = within(self.timeout, &what, check).await;
        let navigating = match check {
            Ok(value) => value == Value::Bool(true),
            Err(_) => true,
        };
        if !navigating {
            return;
        }
        let wait = async {
            while loads.next().await.is_some() {
                // A load event of the old document would still carry the marker.
                if let Ok(Value::Null) = self.evaluate("window.__agoraHarnessArmed", true).await {
                    return Ok(());
                }
            }
            Err("the browser went away")
        };
        let what = format!("{what}: wait for the page it navigates to to load");
        within(self.timeout, &what, wait)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// The rendered text (`innerText`) of the first element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        let value = self
            .call(
                &format!("read the text of {selector}"),
                r#"(sel) => {
                    const el = document.querySelector(sel);
                    return el ? { text: el.innerText } : { missing: `no element matches ${sel}` };
                }"#,
                &[selector.into()],
            )
            .await;
        match value.get("text").and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => panic!("read the text of {selector}: {}", value["missing"]),
        }
    }

    /// Whether some element matches `selector`.
    pub async fn exists(&self, selector: &str) -> bool {
        self.call(
            &format!("look for {selector}"),
            "(sel) => document.querySelector(sel) !== null",
            &[selector.into()],
        )
        .await
            == Value::Bool(true)
    }

    /// The address of the document shown (`location.href`).
    pub async fn url(&self) -> String {
        self.eval("location.href").await
    }

    /// Evaluates the JavaScript expression `js` in the page (awaiting it if it is a
    /// promise) and deserializes its value; `undefined` reads as `null`, so
    /// `eval::<()>` suits statements. Fails if it throws.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        let what = format!("evaluate `{js}`");
        let value = within(self.timeout, &what, self.evaluate(js, false))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{what}: unexpected result {value}: {e}"))
    }

    /// Saves a PNG of the whole page (not just the viewport) as `<name>.png` in the
    /// artifacts directory, prefixed with the name of the running test, and returns its
    /// path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let what = format!("take screenshot {name:?}");
        let png = within(self.timeout, &what, async {
            let metrics = self.inner.execute(GetLayoutMetricsParams {}).await?;
            let size = &metrics.result.css_content_size;
            let params = CaptureScreenshotParams {
                format: Some(CaptureScreenshotFormat::Png),
                clip: Some(Viewport {
                    x: 0.0,
                    y: 0.0,
                    width: size.width.ceil(),
                    height: size.height.ceil(),
                    scale: 1.0,
                }),
                capture_beyond_viewport: Some(true),
                ..Default::default()
            };
            self.inner.screenshot(params).await
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));

        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(screenshot_file_name(name));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Everything that went wrong in this tab so far, in a readable form: console
    /// errors and failed `console.assert`s, uncaught exceptions, browser log errors
    /// (CSP violations, failed resource loads...), and JavaScript dialogs.
    pub async fn problems(&self) -> Vec<String> {
        self.collect_problems().await;
        self.problems.lock().unwrap().clone()
    }

    /// Returns [`problems`](Page::problems) and forgets them: for a test that expects
    /// some (visiting an error page answers 4xx, which the browser logs as a failed
    /// load) and checks them before going on.
    pub async fn take_problems(&self) -> Vec<String> {
        self.collect_problems().await;
        std::mem::take(&mut *self.problems.lock().unwrap())
    }

    /// Moves the events received so far into `self.problems`.
    async fn collect_problems(&self) {
        // A round trip to the page: whatever it reported before answering has arrived.
        let _ = tokio::time::timeout(self.timeout, self.evaluate("0", true)).await;
        let mut problems = self.problems.lock().unwrap();
        let mut listeners = self.listeners.lock().unwrap();
        while let Some(Some(event)) = listeners.console.next().now_or_never() {
            let kind = match event.r#type {
                ConsoleApiCalledType::Error => "console.error",
                ConsoleApiCalledType::Assert => "console.assert failed",
                _ => continue,
            };
            let args: Vec<String> = event.args.iter().map(describe).collect();
            problems.push(format!("{kind}: {}", args.join(" ")));
        }
        while let Some(Some(event)) = listeners.exceptions.next().now_or_never() {
            problems.push(format!(
                "JavaScript exception: {}",
                describe_exception(&event.exception_details)
            ));
        }
        while let Some(Some(event)) = listeners.log.next().now_or_never() {
            let entry = &event.entry;
            if entry.level != LogEntryLevel::Error || is_favicon_probe(entry) {
                continue;
            }
            let mut problem = format!("browser log ({}): {}", entry.source.as_ref(), entry.text);
            if let Some(url) = entry.url.as_deref().filter(|url| !entry.text.contains(url)) {
                problem.push_str(&format!(" [{url}]"));
            }
            problems.push(problem);
        }
    }

    /// Fails the test, listing them, if this tab had any [`problems`](Page::problems).
    pub async fn assert_clean(&self) {
        let problems = self.problems().await;
        if !problems.is_empty() {
            let url = self.url().await;
            panic!(
                "the browser reported {} problem(s) (page now at {url}):\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            );
        }
    }

    /// Calls the JavaScript function `function` with `args`; it returns `null` on
    /// success or a message saying why the action is impossible, which fails the test.
    async fn act(&self, what: &str, function: &str, args: &[Value]) {
        match self.call(what, function, args).await {
            Value::Null => {}
            Value::String(why) => panic!("{what}: {why}"),
            other => panic!("{what}: unexpected result {other}"),
        }
    }

    /// Calls the JavaScript function `function` with `args` (as JSON) and returns its
    /// result; fails the test if it throws or times out.
    async fn call(&self, what: &str, function: &str, args: &[Value]) -> Value {
        let args: Vec<String> = args.iter().map(Value::to_string).collect();
        let js = format!("({function})({})", args.join(", "));
        within(self.timeout, what, self.evaluate(&js, true))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// `Runtime.evaluate` in the main frame's document: awaits promises, returns the
    /// value as JSON. `internal` evaluations are silent: their exceptions are not
    /// reported to the page's problem listeners.
    async fn evaluate(&self, js: &str, internal: bool) -> Result<Value, String> {
        let mut params = EvaluateParams::new(js);
        params.await_promise = Some(true);
        params.return_by_value = Some(true);
        params.silent = Some(internal);
        let result = self
            .inner
            .execute(params)
            .await
            .map_err(|e| e.to_string())?
            .result;
        if let Some(exception) = result.exception_details {
            return Err(describe_exception(&exception));
        }
        Ok(result.result.value.unwrap_or(Value::Null))
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.dialogs.abort();
    }
}

/// Runs `future`, failing the test if it takes longer than `timeout`.
async fn within<F: Future>(timeout: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {timeout:?}"))
}

/// A console argument as the console would print it.
fn describe(object: &RemoteObject) -> String {
    match (
        &object.value,
        &object.unserializable_value,
        &object.description,
    ) {
        (Some(Value::String(s)), _, _) => s.clone(),
        (Some(value), _, _) => value.to_string(),
        (None, Some(value), _) => value.as_ref().to_owned(),
        (None, None, Some(description)) => description.clone(),
        (None, None, None) => object.r#type.as_ref().to_owned(),
    }
}

/// `Uncaught: Error: message` with its stack, or where it was thrown if it has none.
fn describe_exception(details: &ExceptionDetails) -> String {
    let message = match &details.exception {
        Some(exception) => format!("{}: {}", details.text, describe(exception)),
        None => details.text.clone(),
    };
    match &details.url {
        Some(url) if !message.contains(url.as_str()) => format!(
            "{message} (at {url}:{}:{})",
            details.line_number + 1,
            details.column_number + 1
        ),
        _ => message,
    }
}

/// Whether a log entry is the failure of the browser's own `/favicon.ico` request. The
/// browser asks for it after the page has loaded, so whether its failure is seen at all
/// depends on timing: counting it would make clean pages fail at random.
fn is_favicon_probe(entry: &LogEntry) -> bool {
    entry.source == LogEntrySource::Network
        && entry.url.as_deref().is_some_and(|url| {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            path.ends_with("/favicon.ico")
        })
}

/// Where screenshots go: `$AGORA_TEST_ARTIFACTS`, else `screenshots/` in the test's
/// target tmpdir (`$CARGO_TARGET_TMPDIR`, which Cargo gives integration tests: by
/// default `target/tmp`).
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AGORA_TEST_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// `<test name>--<name>.png` with anything unusual replaced, so that tests running in
/// parallel do not overwrite each other's screenshots.
fn screenshot_file_name(name: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = clean(name.strip_suffix(".png").unwrap_or(name));
    match std::thread::current().name() {
        Some(test) if test != "main" => format!("{}--{name}.png", clean(test)),
        _ => format!("{name}.png"),
    }
}
