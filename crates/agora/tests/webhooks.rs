//! Webhooks through the real binary and a local receiver: a publisher's hook receives
//! `release.published` and `verification.completed` signed as the Standard Webhooks
//! specification says; a registry-wide hook receives a lifecycle change; a receiver that
//! answers 500 gets the delivery again and the history shows both attempts; a member
//! who is not an owner cannot create a hook, and a bad URL or event is a 422 naming it.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use hmac::{Hmac, Mac};
use support::*;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A tiny HTTP receiver on 127.0.0.1 that records every request. Paths starting with
/// `/flaky` answer 500 the first time and 200 after; every other path answers 204.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let status = {
                    let mut got = record.lock().unwrap();
                    let before = got.iter().filter(|r| r.path == request.path).count();
                    let status = match (request.path.starts_with("/flaky"), before) {
                        (true, 0) => "500 Internal Server Error",
                        (true, _) => "200 OK",
                        _ => "204 No Content",
                    };
                    got.push(request);
                    status
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { url, got }
    }

    /// Waits until `count` requests to `path` satisfy `keep`.
    fn wait_for(
        &self,
        path: &str,
        count: usize,
        keep: impl Fn(&Received) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let matching: Vec<Received> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.path == path && keep(r))
                .cloned()
                .collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(
                Instant::now() < deadline,
                "{count} request(s) to {path} did not come; got {:?}",
                self.got
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|r| (
                        r.path.clone(),
                        String::from_utf8_lossy(&r.body).into_owned()
                    ))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        headers,
        body,
    })
}

/// Checks a delivery's signature as a receiver would: HMAC-SHA256 keyed with the
/// secret's bytes over `id.timestamp.body`, base64, after `v1,`.
fn assert_signed(r: &Received, secret: &str) {
    let id = &r.headers["webhook-id"];
    let timestamp = &r.headers["webhook-timestamp"];
    let key = Base64::decode_vec(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(key.len(), 32);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", Base64::encode_string(&mac.finalize().into_bytes()));
    let signatures = &r.headers["webhook-signature"];
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "signature {signatures} is not {expected}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sent: i64 = timestamp.parse().unwrap();
    assert!(
        (now - sent).abs() < 600,
        "timestamp {sent} is not now ({now})"
    );
    assert!(id.starts_with("msg_"), "{id}");
}

fn create_hook(cli: &Cli, publisher: Option<&str>, url: &str, events: &[&str]) -> (i64, String) {
    let mut args = vec!["--json", "webhook", "create", "--url", url];
    if let Some(p) = publisher {
        args.extend(["--publisher", p]);
    }
    for e in events {
        args.extend(["--event", e]);
    }
    let created = cli.run(&args).json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    (created["id"].as_i64().unwrap(), secret)
}

fn hooks_deliver_signed_events_and_retry(backend: Backend) {
    let receiver = Receiver::start();
    let server = Server::start_with(backend, &[("AGORA_WEBHOOKS__ALLOW_PRIVATE", "true")]);
    let mut admin = server.admin();
    admin.run(&["publisher", "create", "examples"]).ok();
    admin.sign_for("examples");

    // The administrator created the publisher, so is its owner: a publisher hook, a
    // registry-wide one, and one whose receiver fails once.
    let (publisher_hook, publisher_secret) = create_hook(
        &admin,
        Some("examples"),
        &format!("{}/publisher", receiver.url),
        &["release.published", "verification.completed"],
    );
    let (_, registry_secret) = create_hook(
        &admin,
        None,
        &format!("{}/registry", receiver.url),
        &["release.lifecycle"],
    );
    let (flaky_hook, _) = create_hook(
        &admin,
        Some("examples"),
        &format!("{}/flaky", receiver.url),
        &["release.published"],
    );
    let listed = admin
        .run(&["--json", "webhook", "list", "--publisher", "examples"])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed[0].get("secret").is_none(), "{listed}");
    let registry_hooks = admin.run(&["--json", "webhook", "list"]).json();
    assert_eq!(
        registry_hooks.as_array().unwrap().len(),
        1,
        "{registry_hooks}"
    );

    let work = tempfile::tempdir().unwrap();
    let hello = example_plugin("hello-wasm", work.path());
    admin.run(&["publish", hello.to_str().unwrap()]).ok();

    // The publisher's hook: the release, then its verification's outcome and counts.
    let published = receiver.wait_for("/publisher", 1, |r| r.json()["type"] == "release.published");
    let event = published[0].json();
    assert_eq!(
        event["data"]["release"], "examples/hello-wasm@1.0.0",
        "{event}"
    );
    assert!(event["timestamp"].is_string(), "{event}");
    assert_eq!(published[0].headers["content-type"], "application/json");
    assert_signed(&published[0], &publisher_secret);
    let verified = receiver.wait_for("/publisher", 1, |r| {
        r.json()["type"] == "verification.completed"
    });
    let event = verified[0].json();
    assert_eq!(
        event["data"]["release"], "examples/hello-wasm@1.0.0",
        "{event}"
    );
    assert_eq!(event["data"]["outcome"], "verified", "{event}");
    assert!(event["data"]["counts"]["critical"].is_u64(), "{event}");
    assert_signed(&verified[0], &publisher_secret);

    // The registry-wide hook: a yank, with its reason.
    admin
        .run(&[
            "yank",
            "examples/hello-wasm@1.0.0",
            "--reason",
            "broken on hosts 2.x",
        ])
        .ok();
    let lifecycle = receiver.wait_for("/registry", 1, |_| true);
    let event = lifecycle[0].json();
    assert_eq!(event["type"], "release.lifecycle", "{event}");
    assert_eq!(event["data"]["action"], "yank", "{event}");
    assert_eq!(event["data"]["state"], "yanked", "{event}");
    assert_eq!(event["data"]["reason"], "broken on hosts 2.x", "{event}");
    assert_signed(&lifecycle[0], &registry_secret);

    // The failing receiver got the same delivery again after the backoff.
    let tries = receiver.wait_for("/flaky", 2, |_| true);
    assert_eq!(
        tries[0].headers["webhook-id"], tries[1].headers["webhook-id"],
        "a retry is the same message"
    );
    assert_eq!(tries[0].body, tries[1].body);
    let deadline = Instant::now() + Duration::from_secs(30);
    let history = loop {
        let history = admin
            .run(&["--json", "webhook", "deliveries", &flaky_hook.to_string()])
            .json();
        if history.as_array().unwrap().len() >= 2 || Instant::now() > deadline {
            break history;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let attempts = history.as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{history}");
    // Newest first.
    assert_eq!(attempts[0]["attempt"], 2, "{history}");
    assert_eq!(attempts[0]["status_code"], 200, "{history}");
    assert!(attempts[0].get("error").is_none(), "{history}");
    assert_eq!(attempts[1]["attempt"], 1, "{history}");
    assert_eq!(attempts[1]["status_code"], 500, "{history}");
    assert!(
        attempts[1]["error"].as_str().unwrap().contains("500"),
        "{history}"
    );
    assert_eq!(attempts[0]["event"], "release.published", "{history}");
    let human = admin
        .run(&["webhook", "deliveries", &flaky_hook.to_string()])
        .ok();
    assert!(
        human.contains("HTTP 500") && human.contains("HTTP 200"),
        "{human}"
    );

    // Removing a hook takes its history with it.
    admin
        .run(&["webhook", "remove", &publisher_hook.to_string()])
        .ok();
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/webhooks/{publisher_hook}/deliveries", server.url),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 404);
    // Creating and removing hooks are audited, under the publisher or `registry`.
    let (_, _, events) = http(
        "GET",
        &format!("{}/api/v1/audit?limit=1000", server.url),
        Some(&server.admin_token),
        None,
    );
    let events: serde_json::Value = serde_json::from_slice(&events).unwrap();
    let of = |action: &str, target: &str| {
        events
            .as_array()
            .or_else(|| events["items"].as_array())
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["target"] == target)
            .count()
    };
    assert_eq!(of("webhook.create", "examples"), 2, "{events}");
    assert_eq!(of("webhook.create", "registry"), 1, "{events}");
    assert_eq!(of("webhook.remove", "examples"), 1, "{events}");
}

#[test]
fn hooks_deliver_signed_events_and_retry_on_sqlite() {
    hooks_deliver_signed_events_and_retry(Backend::Sqlite);
}

#[test]
fn hooks_deliver_signed_events_and_retry_on_postgres() {
    hooks_deliver_signed_events_and_retry(Backend::Postgres);
}

fn post_json(url: &str, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (status, _, body) = http_with(
        "POST",
        url,
        Some(token),
        &[("content-type", "application/json")],
        Some(body.to_string().into_bytes()),
    );
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[test]
fn only_owners_create_publisher_hooks_and_bad_input_is_named() {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    admin.run(&["publisher", "create", "acme"]).ok();
    admin
        .run(&["user", "create", "bob", "--role", "publisher"])
        .ok();
    admin.run(&["user", "create", "carol"]).ok();
    admin.run(&["publisher", "add-member", "acme", "bob"]).ok();
    let bob = admin.token_for("bob", &["publish:acme"]);
    let carol = admin.token_for("carol", &["publish:*"]);
    let hooks = format!("{}/api/v1/publishers/acme/webhooks", server.url);
    let good = serde_json::json!({
        "url": "https://hooks.example.com/agora",
        "events": ["release.published"],
    });

    // A member who is not an owner, and a non-member, are refused.
    let (status, problem) = post_json(&hooks, &bob, good.clone());
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "urn:agora:problem:forbidden", "{problem}");
    let (status, problem) = post_json(&hooks, &carol, good.clone());
    assert_eq!(status, 403, "{problem}");
    let bob_cli = server.cli(Some(&bob));
    let err = bob_cli
        .run(&[
            "webhook",
            "create",
            "--publisher",
            "acme",
            "--url",
            "https://hooks.example.com/agora",
            "--event",
            "release.published",
        ])
        .fails();
    assert!(err.contains("owners"), "{err}");
    // Registry-wide hooks are administrators'.
    let (status, _) = post_json(
        &format!("{}/api/v1/webhooks", server.url),
        &bob,
        good.clone(),
    );
    assert_eq!(status, 403);

    // Bad input: named by field, with what is accepted.
    for (body, field) in [
        (
            serde_json::json!({"url": "ftp://hooks.example.com/", "events": ["release.published"]}),
            "url",
        ),
        (
            serde_json::json!({"url": "https://u:p@hooks.example.com/", "events": ["release.published"]}),
            "url",
        ),
        (
            serde_json::json!({"url": "http://127.0.0.1:9/", "events": ["release.published"]}),
            "url",
        ),
        (
            serde_json::json!({"url": "https://hooks.example.com/", "events": ["release.deleted"]}),
            "events[0]",
        ),
        (
            serde_json::json!({"url": "https://hooks.example.com/", "events": []}),
            "events",
        ),
    ] {
        let (status, problem) = post_json(&hooks, &server.admin_token, body.clone());
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert!(problem["errors"][0]["expected"].is_string(), "{problem}");
    }
    let (_, problem) = post_json(
        &hooks,
        &server.admin_token,
        serde_json::json!({"url": "https://hooks.example.com/", "events": ["nope"]}),
    );
    assert!(
        problem["errors"][0]["expected"]
            .as_str()
            .unwrap()
            .contains("advisory.matched"),
        "{problem}"
    );

    // The owner's hook is created, and the limit is said when reached.
    for n in 0..20 {
        let (status, created) = post_json(&hooks, &server.admin_token, good.clone());
        assert_eq!(status, 201, "hook {n}: {created}");
    }
    let (status, problem) = post_json(&hooks, &server.admin_token, good);
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("20"),
        "{problem}"
    );
}
