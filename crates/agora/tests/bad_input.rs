//! Bad input against the real server: each case gets a problem+json answer naming what
//! was wrong, and leaves nothing half-written behind.

mod support;

use std::io::{Read, Write};

use serde_json::{Value, json};
use support::*;

const GOOD_MANIFEST: &str = "api_version: agora/v1\npublisher: acme\nname: widget\nversion: 1.0.0\n\
    description: A widget\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n";

fn problem(
    expected: u16,
    (status, headers, body): (u16, reqwest::header::HeaderMap, Vec<u8>),
) -> Value {
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, expected, "{text}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{text}"
    );
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["status"], expected);
    assert!(
        p["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:agora:problem:"),
        "{p}"
    );
    assert!(
        !text.contains("panicked") && !text.contains("src/"),
        "no internals leak: {text}"
    );
    p
}

fn fields(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn json_body(v: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&v).unwrap())
}

fn setup() -> Server {
    let server = Server::start(Backend::Sqlite);
    server.admin().run(&["publisher", "create", "acme"]).ok();
    server
}

/// The admin's CLI, signing for acme with a fresh registered key.
fn signing_admin(server: &Server) -> Cli {
    let mut admin = server.admin();
    admin.sign_for("acme");
    admin
}

fn publish_raw(
    server: &Server,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    post_json(
        &format!("{}/api/v1/plugins/{path}/versions", server.url),
        &server.admin_token,
        body,
    )
}

fn post_json(url: &str, token: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    http_with(
        "POST",
        url,
        Some(token),
        &[("content-type", "application/json")],
        json_body(body),
    )
}

fn nothing_published(server: &Server) {
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/plugins/acme/widget", server.url),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 404, "a failed publish left a plugin behind");
    let temp = std::fs::read_dir(server.blob_dir().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(temp, 0, "temporary upload files left behind");
}

fn upload(server: &Server, bytes: &[u8]) -> String {
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    );
    let (status, _, body) = http(
        "PUT",
        &format!("{}/api/v1/blobs/{digest}", server.url),
        Some(&server.admin_token),
        Some(bytes.to_vec()),
    );
    assert!(
        status == 201 || status == 200,
        "{}",
        String::from_utf8_lossy(&body)
    );
    digest
}

#[test]
fn malformed_manifests_are_refused_naming_the_field() {
    let server = setup();
    let module = upload(&server, b"module");
    let artifacts = json!([{ "path": "plugin.wasm", "digest": module, "size": 6 }]);
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9u8 {
        let (p, n) = ((b'a' + i) as char, (b'a' + i + 1) as char);
        bomb.push_str(&format!(
            "{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    let cases: Vec<(String, &str)> = vec![
        ("name: [unclosed".into(), "manifest"),
        (bomb, "manifest"),
        (
            format!("{GOOD_MANIFEST}favourite_colour: blue\n"),
            "manifest",
        ),
        (
            GOOD_MANIFEST.replace("publisher: acme", "publisher: Acme"),
            "manifest.publisher",
        ),
        (
            GOOD_MANIFEST.replace("version: 1.0.0", "version: one"),
            "manifest.version",
        ),
        (
            GOOD_MANIFEST.replace("type: wasm", "type: python"),
            "manifest.runtime.type",
        ),
        (
            format!("{GOOD_MANIFEST}tags: [\"{}\"]\n", "t".repeat(500)),
            "manifest.tags[0]",
        ),
        (
            format!("{GOOD_MANIFEST}# {}\n", "x".repeat(70_000)),
            "manifest",
        ),
        (
            GOOD_MANIFEST.replace("name: widget", "name: other"),
            "manifest.publisher",
        ),
    ];
    for (manifest, field) in cases {
        let p = problem(
            422,
            publish_raw(
                &server,
                "acme/widget",
                json!({ "manifest": manifest, "artifacts": artifacts }),
            ),
        );
        assert!(
            fields(&p).iter().any(|f| f == field),
            "expected {field}: {p}"
        );
        nothing_published(&server);
    }
    let p = problem(
        422,
        publish_raw(
            &server,
            "acme/widget",
            json!({ "manifest": GOOD_MANIFEST, "artifacts": artifacts, "extra": 1 }),
        ),
    );
    assert!(p["detail"].as_str().unwrap().contains("extra"), "{p}");
    let p = problem(
        422,
        publish_raw(&server, "acme/widget", json!("not an object")),
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("expected struct PublishRequest"),
        "{p}"
    );
    let url = format!("{}/api/v1/plugins/acme/widget/versions", server.url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&server.admin_token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("urn:agora:problem:invalid-body"), "{body}");
    nothing_published(&server);
}

#[test]
fn releases_with_missing_unsafe_or_foreign_artifacts_are_refused() {
    let server = setup();
    let module = upload(&server, b"module");
    let notes = upload(&server, b"notes");
    let never = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (json!([]), "artifacts"),
        (
            json!([{ "path": "plugin.wasm", "digest": never, "size": 6 }]),
            "artifacts[0].digest",
        ),
        (
            json!([{ "path": "plugin.wasm", "digest": module, "size": 7 }]),
            "artifacts[0].size",
        ),
        (
            json!([{ "path": "plugin.wasm", "digest": module, "size": 6 }, { "path": "../../etc/passwd", "digest": notes, "size": 5 }]),
            "artifacts[1].path",
        ),
        (
            json!([{ "path": "plugin.wasm", "digest": module, "size": 6 }, { "path": "notes.txt", "digest": notes, "size": 5 }]),
            "artifacts[1].path",
        ),
        (
            json!([{ "path": "plugin.wasm", "digest": module, "size": 6 }, { "path": "plugin.wasm", "digest": module, "size": 6 }]),
            "artifacts[1].path",
        ),
    ];
    for (artifacts, field) in cases {
        let p = problem(
            422,
            publish_raw(
                &server,
                "acme/widget",
                json!({ "manifest": GOOD_MANIFEST, "artifacts": artifacts }),
            ),
        );
        assert!(
            fields(&p).iter().any(|f| f == field),
            "expected {field}: {p}"
        );
        nothing_published(&server);
    }
    let p = problem(
        422,
        publish_raw(
            &server,
            "acme/widget",
            json!({ "manifest": GOOD_MANIFEST, "artifacts": [{ "path": "plugin.wasm", "digest": "sha256:xyz", "size": 1 }] }),
        ),
    );
    assert!(p["detail"].as_str().unwrap().contains("digest"), "{p}");
    let p = problem(
        404,
        publish_raw(
            &server,
            "nobody/widget",
            json!({ "manifest": GOOD_MANIFEST.replace("acme", "nobody"), "artifacts": [] }),
        ),
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("agora publisher create nobody"),
        "{p}"
    );
}

#[test]
fn uploads_that_do_not_match_their_digest_leave_nothing() {
    let server = setup();
    let claimed = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"promised"))
    );
    let p = problem(
        400,
        http(
            "PUT",
            &format!("{}/api/v1/blobs/{claimed}", server.url),
            Some(&server.admin_token),
            Some(b"delivered".to_vec()),
        ),
    );
    assert_eq!(p["type"], "urn:agora:problem:digest-mismatch");
    let (status, _, _) = http(
        "HEAD",
        &format!("{}/api/v1/blobs/{claimed}", server.url),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 404);
    nothing_published(&server);
    let p = problem(
        422,
        http(
            "PUT",
            &format!("{}/api/v1/blobs/md5:abc", server.url),
            Some(&server.admin_token),
            Some(b"x".to_vec()),
        ),
    );
    assert_eq!(fields(&p), ["digest"]);
}

#[test]
fn an_upload_cut_off_midway_leaves_nothing() {
    let server = setup();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 1000000\r\n\r\n",
        server.admin_token
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&[7u8; 4096]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    // The server notices the short body, answers (or closes) and removes the partial file.
    for _ in 0..50 {
        if std::fs::read_dir(server.blob_dir().join("tmp"))
            .unwrap()
            .count()
            == 0
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    nothing_published(&server);
    let (status, _, _) = http(
        "HEAD",
        &format!("{}/api/v1/blobs/{digest}", server.url),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn oversize_uploads_are_refused_before_storage() {
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_LIMITS__MAX_BLOB_BYTES", "1000")]);
    let bytes = vec![1u8; 2000];
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    let p = problem(
        413,
        http(
            "PUT",
            &format!("{}/api/v1/blobs/{digest}", server.url),
            Some(&server.admin_token),
            Some(bytes),
        ),
    );
    assert!(p["detail"].as_str().unwrap().contains("1000"), "{p}");
    assert_eq!(
        std::fs::read_dir(server.blob_dir().join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn search_parameters_are_checked_and_sql_is_inert() {
    let server = setup();
    let base = format!("{}/api/v1/plugins", server.url);
    let get = |query: &str| http("GET", &format!("{base}?{query}"), None, None);
    let (status, _, body) = get("q=%27%3B%20DROP%20TABLE%20plugins%3B--");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    for (query, field) in [
        (format!("q={}", "a".repeat(300)), "q"),
        (format!("tag={}", "t".repeat(100)), "tag"),
        ("sort=bogus".into(), "sort"),
        ("limit=0".into(), "limit"),
        ("limit=100000".into(), "limit"),
        ("runtime=python".into(), "runtime"),
        ("cursor=not-a-cursor".into(), "cursor"),
    ] {
        let p = problem(422, get(&query));
        assert_eq!(fields(&p), [field], "{query}");
    }
    let p = problem(400, get("colour=blue"));
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/publishers", server.url),
        None,
        None,
    );
    assert_eq!(status, 200, "the tables are still there");
}

#[test]
fn path_tricks_in_names_are_refused() {
    let server = setup();
    for (path, expected) in [
        ("/api/v1/plugins/ACME/widget", 422),
        ("/api/v1/plugins/acme/..%2F..%2Fetc", 422),
        ("/api/v1/plugins/acme/widget/versions/..%2F1", 422),
        ("/api/v1/blobs/sha256:..%2F..%2Fetc%2Fpasswd", 422),
        ("/api/v1/publishers/a%00b", 422),
        ("/api/v1/no/such/thing", 404),
    ] {
        problem(
            expected,
            http("GET", &format!("{}{path}", server.url), None, None),
        );
    }
    let err = server
        .admin()
        .run(&["publisher", "create", "../evil"])
        .fails();
    assert!(
        err.contains("not a valid publisher name") && err.contains("lowercase"),
        "{err}"
    );
    let err = server.admin().run(&["info", "acme/../../etc"]).fails();
    assert!(err.contains("invalid plugin name"), "{err}");
}

#[test]
fn authentication_and_authorization_failures_are_explained() {
    let server = setup();
    let admin = server.admin();
    admin
        .run(&["user", "create", "bob", "--role", "publisher"])
        .ok();
    admin.run(&["user", "create", "carol"]).ok();
    admin.run(&["publisher", "add-member", "acme", "bob"]).ok();
    let token = |user: &str, scope: &str, extra: &[&str]| {
        let mut args = vec![
            "--json", "token", "create", "--user", user, "--scope", scope,
        ];
        args.extend(extra);
        admin.run(&args).json()
    };
    let body = json!({ "manifest": GOOD_MANIFEST, "artifacts": [] });
    let url = format!("{}/api/v1/plugins/acme/widget/versions", server.url);

    let (status, headers, _) = http("POST", &url, None, json_body(body.clone()));
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let p = problem(401, post_json(&url, "agora_unknown", body.clone()));
    assert!(p["detail"].as_str().unwrap().contains("not known"), "{p}");

    let other = token("bob", "publish:other", &[])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = problem(403, post_json(&url, &other, body.clone()));
    assert!(
        p["detail"].as_str().unwrap().contains("publish:acme"),
        "{p}"
    );

    let revoked = token("bob", "publish:acme", &[]);
    let id = revoked["info"]["id"].as_i64().unwrap().to_string();
    admin.run(&["token", "revoke", &id]).ok();
    let p = problem(
        401,
        post_json(&url, revoked["token"].as_str().unwrap(), body.clone()),
    );
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");

    let expiring = token("bob", "publish:acme", &["--expires", "1s"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let p = problem(401, post_json(&url, &expiring, body.clone()));
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");

    let mut carol = server.cli(Some(
        token("carol", "publish:*", &[])["token"].as_str().unwrap(),
    ));
    let err = carol.run(&["publisher", "create", "carols"]).fails();
    let carol_key = carol.home.path().join("carol_ed25519");
    carol
        .run(&["keygen", "--out", carol_key.to_str().unwrap()])
        .ok();
    carol.key = Some(carol_key);
    assert!(err.contains("publisher role"), "{err}");
    let err = carol
        .run(&[
            "publish",
            plugin_dir(carol.home.path(), "acme", "widget", "1.0.0", "", b"m")
                .to_str()
                .unwrap(),
        ])
        .fails();
    assert!(
        err.contains("403") || err.contains("publish scope"),
        "{err}"
    );

    let bob = server.cli(Some(
        token("bob", "publish:acme", &[])["token"].as_str().unwrap(),
    ));
    let err = bob
        .run(&["token", "create", "--scope", "publish:*"])
        .fails();
    assert!(err.contains("cannot grant scope publish:*"), "{err}");
    let err = bob.run(&["user", "list"]).fails();
    assert!(err.contains("administrator"), "{err}");
}

#[test]
fn downloads_are_cacheable_and_support_ranges() {
    let server = setup();
    let work = tempfile::tempdir().unwrap();
    let module: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let dir = plugin_dir(work.path(), "acme", "widget", "1.0.0", "", &module);
    signing_admin(&server)
        .run(&["publish", dir.to_str().unwrap()])
        .ok();
    let digest = sha256_file(&dir.join("plugin.wasm"));
    let url = format!("{}/api/v1/blobs/{digest}", server.url);
    let (status, headers, body) = http("GET", &url, None, None);
    assert_eq!((status, body.len()), (200, 10_000));
    assert_eq!(headers["etag"].to_str().unwrap(), format!("\"{digest}\""));
    assert_eq!(headers["agora-digest"].to_str().unwrap(), digest);
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get_with = |name: &str, value: &str| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .header(name, value)
                .send()
                .await
                .unwrap();
            let (s, h) = (r.status().as_u16(), r.headers().clone());
            (s, h, r.bytes().await.unwrap().to_vec())
        })
    };
    let (status, _, body) = get_with("if-none-match", &format!("\"{digest}\""));
    assert_eq!((status, body.len()), (304, 0));
    let (status, headers, body) = get_with("range", "bytes=100-199");
    assert_eq!(status, 206);
    assert_eq!(body, module[100..200]);
    assert_eq!(headers["content-range"], "bytes 100-199/10000");
    let (status, _, body) = get_with("range", "bytes=-10");
    assert_eq!((status, body), (206, module[9990..].to_vec()));
    let (status, headers, _) = get_with("range", "bytes=20000-");
    assert_eq!(status, 416);
    assert_eq!(headers["content-range"], "bytes */10000");
}

#[test]
fn lifecycle_rules_are_enforced_and_removal_deletes_the_bytes() {
    let server = setup();
    let admin = signing_admin(&server);
    let work = tempfile::tempdir().unwrap();
    let dir = plugin_dir(work.path(), "acme", "widget", "1.0.0", "", b"widget bytes");
    admin.run(&["publish", dir.to_str().unwrap()]).ok();
    let err = admin.run(&["deprecate", "acme/widget@1.0.0"]).fails();
    assert!(err.contains("needs a reason"), "{err}");
    admin
        .run(&[
            "deprecate",
            "acme/widget@1.0.0",
            "--reason",
            "use gadget",
            "--replacement",
            "acme/gadget",
        ])
        .ok();
    let v = admin.run(&["--json", "info", "acme/widget@1.0.0"]).json();
    assert_eq!(
        (v["state"].as_str(), v["replacement"].as_str()),
        (Some("deprecated"), Some("acme/gadget"))
    );

    admin
        .run(&["user", "create", "bob", "--role", "publisher"])
        .ok();
    admin.run(&["publisher", "add-member", "acme", "bob"]).ok();
    let bob_token = admin
        .run(&[
            "--json",
            "token",
            "create",
            "--user",
            "bob",
            "--scope",
            "publish:acme",
        ])
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = server
        .cli(Some(&bob_token))
        .run(&["takedown", "acme/widget@1.0.0", "--reason", "malware"])
        .fails();
    assert!(
        err.contains("administrator") && err.contains("403"),
        "{err}"
    );

    let digest = sha256_file(&dir.join("plugin.wasm"));
    admin
        .run(&["takedown", "acme/widget@1.0.0", "--reason", "malware"])
        .ok();
    let v = admin.run(&["--json", "info", "acme/widget@1.0.0"]).json();
    assert_eq!(v["state"], "removed", "the tombstone stays");
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/blobs/{digest}", server.url),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 404);
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        !server
            .blob_dir()
            .join("sha256")
            .join(&hex[..2])
            .join(hex)
            .exists(),
        "the bytes are gone"
    );
    let err = admin.run(&["unyank", "acme/widget@1.0.0"]).fails();
    assert!(err.contains("removed") && err.contains("409"), "{err}");
    let (status, _, body) = http(
        "GET",
        &format!("{}/api/v1/audit?target=acme/widget", server.url),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 200);
    let actions: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a["action"] == "version.lifecycle")
            .count(),
        2
    );
}

#[test]
fn operations_endpoints_answer() {
    let server = setup();
    let get = |path: &str| http("GET", &format!("{}{path}", server.url), None, None);
    assert_eq!(get("/health").0, 200);
    assert_eq!(get("/ready").0, 200);
    get("/api/v1/plugins?q=x");
    let (_, _, metrics) = get("/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains(
            "agora_http_requests_total{method=\"GET\",route=\"/api/v1/plugins\",status=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let (_, _, doc) = get("/api/v1/openapi.json");
    let doc: Value = serde_json::from_slice(&doc).unwrap();
    for path in [
        "/api/v1/plugins",
        "/api/v1/plugins/{publisher}/{name}/versions",
        "/api/v1/blobs/{digest}",
        "/api/v1/tokens",
        "/ready",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} is missing from the OpenAPI document"
        );
    }
    let (status, headers, schema) = get("/api/v1/schema/manifest.json");
    assert_eq!(
        (status, headers["content-type"].to_str().unwrap()),
        (200, "application/schema+json")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&schema).unwrap()["properties"]["api_version"]["const"],
        "agora/v1"
    );
    problem(
        405,
        http("DELETE", &format!("{}/health", server.url), None, None),
    );
}
