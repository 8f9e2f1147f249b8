//! The registry attacked through the real binary, as an outsider, a malicious publisher
//! and a holder of narrow tokens would: each hole the attack found is a property here,
//! and the ones about data and authorization run on SQLite and PostgreSQL alike.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

struct World {
    server: Server,
    admin: Cli,
    /// acme's owner, with every scope a session has.
    alice: Cli,
    work: tempfile::TempDir,
}

fn token(admin: &Cli, user: &str, scopes: &[&str]) -> String {
    admin.token_for(user, scopes)
}

fn world_with(backend: Backend, env: &[(&str, &str)]) -> World {
    let server = Server::start_with(backend, env);
    let admin = server.admin();
    for user in ["alice", "bob", "mallory"] {
        admin
            .run(&["user", "create", user, "--role", "publisher"])
            .ok();
    }
    let alice_token = token(
        &admin,
        "alice",
        &[
            "read:private",
            "review",
            "publish:*",
            "members:*",
            "tenant:*",
        ],
    );
    let mut alice = server.cli(Some(&alice_token));
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    World {
        server,
        admin,
        alice,
        work: tempfile::tempdir().unwrap(),
    }
}

fn world(backend: Backend) -> World {
    world_with(backend, &[])
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// A JSON request; returns the status and the parsed answer (null when none).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = (!body.is_null()).then(|| body.to_string().into_bytes());
        let (status, _, answer) = http_with(
            method,
            &self.url(path),
            token,
            &[("content-type", "application/json")],
            body,
        );
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null),
        )
    }

    fn publish(&self, cli: &Cli, publisher: &str, name: &str, version: &str, extra: &str) {
        let dir = plugin_dir(
            self.work.path(),
            publisher,
            name,
            version,
            extra,
            format!("{name} {version}").as_bytes(),
        );
        cli.run(&["publish", dir.to_str().unwrap()]).ok();
    }

    /// A publisher of its own for `user`, with a signing key; returns their CLI.
    fn publisher_of(&self, user: &str, publisher: &str) -> Cli {
        let t = token(
            &self.admin,
            user,
            &["publish:*", "members:*", "read:private"],
        );
        let mut cli = self.server.cli(Some(&t));
        cli.run(&["publisher", "create", publisher]).ok();
        cli.sign_for(publisher);
        cli
    }

    fn alice_token(&self) -> String {
        self.alice.token.clone().unwrap()
    }
}

fn field_of(problem: &serde_json::Value) -> String {
    problem["errors"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )* }
        mod on_postgres { $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )* }
    };
}

on_both_backends!(
    a_private_blob_cannot_be_made_public_by_naming_its_digest,
    narrow_tokens_cannot_take_over_a_publisher,
    child_tokens_never_outlive_or_outrank_their_parent,
    private_releases_are_sealed_in_the_log,
    control_characters_are_refused_naming_the_field,
    each_field_keeps_its_own_text_rule_and_nothing_is_written,
    no_range_of_an_empty_blob_is_satisfiable,
    concurrent_publishes_with_mixed_visibility_all_succeed,
    a_revocation_hidden_by_the_registry_is_caught,
);

/// Item 1 (and 5): knowing a private blob's digest and size gives nothing.
fn a_private_blob_cannot_be_made_public_by_naming_its_digest(backend: Backend) {
    let w = world(backend);
    let secret = plugin_dir(
        w.work.path(),
        "acme",
        "secret",
        "1.0.0",
        "visibility: private\n",
        b"secret module",
    );
    w.alice.run(&["publish", secret.to_str().unwrap()]).ok();
    let manifest = secret.join("plugin.yaml");
    let digest = sha256_file(&manifest);
    let size = std::fs::metadata(&manifest).unwrap().len();
    let mallory = w.publisher_of("mallory", "evil");
    let mallory_token = mallory.token.clone().unwrap();

    // Existence and size are not disclosed to another publisher, nor to anyone else.
    let blob = format!("/api/v1/blobs/{digest}");
    let (status, _, _) = http("HEAD", &w.url(&blob), Some(&mallory_token), None);
    assert_eq!(status, 404, "HEAD by another publisher");
    let (status, _, _) = http("GET", &w.url(&blob), None, None);
    assert_eq!(status, 404);

    // A release naming the digest is refused: mallory never sent those bytes.
    let module = b"evil module".to_vec();
    let module_digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module))
    );
    let (status, _, _) = http(
        "PUT",
        &w.url(&format!("/api/v1/blobs/{module_digest}")),
        Some(&mallory_token),
        Some(module.clone()),
    );
    assert_eq!(status, 201);
    let request = |readme_digest: &str| {
        serde_json::json!({
            "manifest": "api_version: agora/v1\npublisher: evil\nname: thief\nversion: 1.0.0\n\
                         description: Reads what is not its own\nlicense: MIT\n\
                         runtime: { type: wasm, module: plugin.wasm }\n",
            "artifacts": [
                {"path": "plugin.wasm", "digest": module_digest, "size": module.len()},
                {"path": "README.md", "digest": readme_digest, "size": size},
            ],
        })
    };
    let path = "/api/v1/plugins/evil/thief/versions";
    let (status, problem) = w.call("POST", path, Some(&mallory_token), request(&digest));
    assert_eq!(status, 422, "{problem}");
    assert_eq!(field_of(&problem), "artifacts[1].digest", "{problem}");
    assert!(
        problem.to_string().contains("not been uploaded by you"),
        "{problem}"
    );

    // Claiming to upload it with other bytes proves nothing and changes nothing.
    let (status, _, answer) = http(
        "PUT",
        &w.url(&blob),
        Some(&mallory_token),
        Some(b"guess".to_vec()),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    let (status, problem) = w.call("POST", path, Some(&mallory_token), request(&digest));
    assert_eq!(
        (status, field_of(&problem)),
        (422, "artifacts[1].digest".into())
    );

    // Whoever does hold the same bytes proves it by sending them (then only the missing
    // signature stands in the way): possession is the rule, not the digest.
    let bytes = std::fs::read(&manifest).unwrap();
    let (status, _, _) = http("PUT", &w.url(&blob), Some(&mallory_token), Some(bytes));
    assert_eq!(status, 200);
    let (status, problem) = w.call("POST", path, Some(&mallory_token), request(&digest));
    assert_eq!(
        (status, field_of(&problem)),
        (422, "signature".into()),
        "{problem}"
    );

    // Still private for everyone else.
    let (status, _, _) = http("GET", &w.url(&blob), None, None);
    assert_eq!(status, 404);
}

/// Item 2: every write checks the token's scopes as well as the user's role.
fn narrow_tokens_cannot_take_over_a_publisher(backend: Backend) {
    let w = world(backend);
    let members = "/api/v1/publishers/acme/members";
    let add = |token: &str, user: &str, role: &str| {
        w.call(
            "POST",
            members,
            Some(token),
            serde_json::json!({"username": user, "role": role}),
        )
    };
    // acme's owner, through tokens that do not carry a members scope for acme.
    for scopes in [
        &["read:private"][..],
        &["publish:evil"],
        &["publish:acme"],
        &["members:evil"],
    ] {
        let t = token(&w.admin, "alice", scopes);
        let (status, problem) = add(&t, "mallory", "owner");
        assert_eq!(status, 403, "{scopes:?}: {problem}");
    }
    let read_only = token(&w.admin, "alice", &["read:private"]);
    let (status, _) = w.call(
        "POST",
        "/api/v1/publishers",
        Some(&read_only),
        serde_json::json!({"name": "grabbed"}),
    );
    assert_eq!(status, 403, "a read-only token creates no publisher");
    let narrow = token(&w.admin, "alice", &["publish:acme"]);
    let (status, _) = w.call(
        "POST",
        "/api/v1/publishers",
        Some(&narrow),
        serde_json::json!({"name": "other"}),
    );
    assert_eq!(status, 403, "publish:acme creates no other publisher");
    // Nothing of that was written.
    let (_, list) = w.call("GET", "/api/v1/publishers", None, serde_json::Value::Null);
    assert!(!list.to_string().contains("grabbed") && !list.to_string().contains("\"other\""));

    // With members:acme the owner invites; the answer does not tell whether the account
    // exists.
    let owner = token(&w.admin, "alice", &["members:acme"]);
    let (status, real) = add(&owner, "bob", "member");
    assert_eq!(status, 200, "{real}");
    let (status, ghost) = add(&owner, "ghost", "member");
    assert_eq!(status, 200, "{ghost}");
    assert_eq!(real["outcome"], "invited");
    assert_eq!(ghost["outcome"], "invited");
    assert_eq!(real["members"], ghost["members"]);
    assert!(!ghost.to_string().contains("no user"));

    // bob joins only by accepting, with a token that may change his memberships.
    let bob_read = token(&w.admin, "bob", &["read:private"]);
    let accept = "/api/v1/publishers/acme/invitations/accept";
    let (status, _) = w.call("POST", accept, Some(&bob_read), serde_json::Value::Null);
    assert_eq!(status, 403);
    let bob = token(&w.admin, "bob", &["members:acme", "publish:acme"]);
    let (status, joined) = w.call("POST", accept, Some(&bob), serde_json::Value::Null);
    assert_eq!(status, 200, "{joined}");
    assert!(joined.to_string().contains("bob"));

    // A member is not an owner: he removes and demotes no one.
    let (status, _) = w.call(
        "DELETE",
        &format!("{members}/alice"),
        Some(&bob),
        serde_json::Value::Null,
    );
    assert_eq!(status, 403);
    let (status, _) = add(&bob, "alice", "member");
    assert_eq!(status, 403);
    let (status, _) = add(&bob, "bob", "owner");
    assert_eq!(status, 403, "no promoting oneself");

    // The last owner stays, even by their own hand.
    let (status, problem) = w.call(
        "DELETE",
        &format!("{members}/alice"),
        Some(&owner),
        serde_json::Value::Null,
    );
    assert_eq!(status, 409, "{problem}");
    let (status, _) = add(&owner, "alice", "member");
    assert_eq!(status, 409);
    // With another owner, an owner may step down; then the new owner runs acme.
    let (status, _) = add(&owner, "bob", "owner");
    assert_eq!(status, 200);
    let (status, _) = w.call(
        "DELETE",
        &format!("{members}/alice"),
        Some(&owner),
        serde_json::Value::Null,
    );
    assert_eq!(status, 200);
    let (_, list) = w.call("GET", members, None, serde_json::Value::Null);
    assert_eq!(
        list,
        serde_json::json!([{"username": "bob", "role": "owner"}])
    );
}

/// Item 4.
fn child_tokens_never_outlive_or_outrank_their_parent(backend: Backend) {
    let w = world(backend);
    let (_, created) = w.call(
        "POST",
        "/api/v1/tokens",
        Some(&w.admin_token()),
        serde_json::json!({"name": "short", "scopes": "publish:acme", "expires_in_seconds": 60, "for_user": "alice"}),
    );
    let parent = created["token"].as_str().unwrap().to_owned();
    let parent_expiry = created["info"]["expires_at"].as_str().unwrap().to_owned();
    let mint = |body: serde_json::Value| w.call("POST", "/api/v1/tokens", Some(&parent), body);
    let (status, problem) = mint(
        serde_json::json!({"name": "long", "scopes": "publish:acme", "expires_in_seconds": 86400}),
    );
    assert_eq!(
        (status, field_of(&problem)),
        (422, "expires_in_seconds".into()),
        "{problem}"
    );
    let (status, _) = mint(serde_json::json!({"name": "wide", "scopes": "publish:*"}));
    assert_eq!(status, 403, "never more than the parent holds");
    let (status, child) = mint(serde_json::json!({"name": "child", "scopes": "publish:acme"}));
    assert_eq!(status, 201, "{child}");
    assert_eq!(child["info"]["expires_at"].as_str().unwrap(), parent_expiry);
    let child_secret = child["token"].as_str().unwrap().to_owned();
    let (status, grandchild) = w.call(
        "POST",
        "/api/v1/tokens",
        Some(&child_secret),
        serde_json::json!({"name": "grandchild", "scopes": "publish:acme"}),
    );
    assert_eq!(status, 201);
    let grandchild = grandchild["token"].as_str().unwrap().to_owned();
    // A narrow token cannot revoke a wider one of the same user...
    let alice_wide = token(&w.admin, "alice", &["read:private", "publish:*"]);
    let (_, me) = w.call(
        "GET",
        "/api/v1/tokens",
        Some(&alice_wide),
        serde_json::Value::Null,
    );
    let wide_id = me
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["scopes"] == "read:private publish:*")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = w.call(
        "DELETE",
        &format!("/api/v1/tokens/{wide_id}"),
        Some(&child_secret),
        serde_json::Value::Null,
    );
    assert_eq!(status, 403);
    // ...and revoking a token revokes what it minted, all the way down.
    let parent_id = created["info"]["id"].as_i64().unwrap();
    let (status, _) = w.call(
        "DELETE",
        &format!("/api/v1/tokens/{parent_id}"),
        Some(&parent),
        serde_json::Value::Null,
    );
    assert_eq!(status, 204);
    for t in [&child_secret, &grandchild] {
        let (status, _) = w.call("GET", "/api/v1/me", Some(t), serde_json::Value::Null);
        assert_eq!(status, 401, "a minted token died with its parent");
    }
    let (status, _) = w.call(
        "GET",
        "/api/v1/me",
        Some(&alice_wide),
        serde_json::Value::Null,
    );
    assert_eq!(status, 200, "other tokens live on");
}

impl World {
    fn admin_token(&self) -> String {
        self.server.admin_token.clone()
    }
}

/// Item 3: the log names no private release in clear; readers who may see it open it.
fn private_releases_are_sealed_in_the_log(backend: Backend) {
    let w = world(backend);
    w.publish(
        &w.alice,
        "acme",
        "secret-sauce",
        "1.0.0",
        "visibility: private\n",
    );
    // Its verification verdict is logged sealed too, once the worker has run it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while w
        .call(
            "GET",
            "/api/v1/plugins/acme/secret-sauce/versions/1.0.0/verification",
            Some(&w.alice_token()),
            serde_json::Value::Null,
        )
        .0
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "never verified");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, entries) = w.call(
        "GET",
        "/api/v1/log/entries?from=0&limit=100",
        None,
        serde_json::Value::Null,
    );
    let last = entries.as_array().unwrap().last().unwrap().clone();
    let index = last["index"].as_u64().unwrap();
    let body = last["body"].as_str().unwrap();
    assert!(
        body.starts_with(r#"{"kind":"sealed","commitment":"sha256:"#),
        "{body}"
    );
    assert!(!body.contains("secret") && !body.contains("acme"), "{body}");
    assert!(last.get("opening").is_none(), "no opening for outsiders");
    let proof = format!("/api/v1/log/proof/inclusion?index={index}");
    let (_, anonymous) = w.call("GET", &proof, None, serde_json::Value::Null);
    assert!(anonymous.get("opening").is_none());
    let outsider = w.publisher_of("mallory", "evil");
    let (_, theirs) = w.call(
        "GET",
        &proof,
        outsider.token.as_deref(),
        serde_json::Value::Null,
    );
    assert!(
        theirs.get("opening").is_none(),
        "another publisher cannot open it"
    );
    let (_, mine) = w.call(
        "GET",
        &proof,
        Some(&w.alice_token()),
        serde_json::Value::Null,
    );
    let clear = agora_trust::open(body, mine["opening"].as_str().unwrap()).unwrap();
    assert!(clear.contains(r#""name":"secret-sauce""#), "{clear}");

    // A member installs it, checking the opened entry like any other.
    w.alice
        .run_in(
            w.work.path(),
            &["install", "acme/secret-sauce", "--dir", "plugins"],
        )
        .ok();
    // Anyone can still monitor the whole log (the sealed entry counts, unread).
    let report = w.server.cli(None).run(&["--json", "log", "monitor"]).json();
    assert_eq!(report["sealed"], 2, "the release and its verdict: {report}");
    assert_eq!(report["problems"], serde_json::json!([]));
    // Made public, the change is logged in clear.
    w.alice
        .run(&["visibility", "acme/secret-sauce", "public"])
        .ok();
    let (_, entries) = w.call(
        "GET",
        &format!("/api/v1/log/entries?from={}", index + 1),
        None,
        serde_json::Value::Null,
    );
    let flipped =
        r#""kind":"visibility","publisher":"acme","name":"secret-sauce","visibility":"public""#;
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["body"].as_str().unwrap().contains(flipped)),
        "{entries}"
    );
    // ...and what was sealed before opens for everyone now that anyone may see it.
    let (_, now) = w.call("GET", &proof, None, serde_json::Value::Null);
    assert!(now["opening"].is_string());
}

/// Item 13: no control character reaches the database or a page; a 422 names the field
/// (never a 500 on PostgreSQL), and nothing is written.
fn control_characters_are_refused_naming_the_field(backend: Backend) {
    let w = world(backend);
    w.publish(&w.alice, "acme", "widget", "1.0.0", "");
    let t = w.alice_token();
    let t = Some(t.as_str());
    let nul = "a\u{0}b";
    let cases: Vec<(&str, String, serde_json::Value, &str)> = vec![
        (
            "POST",
            "/api/v1/plugins/acme/widget/versions".into(),
            serde_json::json!({"manifest": "api_version: agora/v1\npublisher: acme\nname: widget\nversion: 2.0.0\ndescription: \"nul \\0 here\"\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n", "artifacts": []}),
            "manifest.description",
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            serde_json::json!({"name": nul, "scopes": "review"}),
            "name",
        ),
        (
            "POST",
            "/api/v1/publishers".into(),
            serde_json::json!({"name": nul}),
            "name",
        ),
        (
            "PATCH",
            "/api/v1/plugins/acme/widget/versions/1.0.0".into(),
            serde_json::json!({"state": "yanked", "reason": nul}),
            "reason",
        ),
        (
            "POST",
            "/api/v1/publishers/acme/keys/revoke".into(),
            serde_json::json!({"id": "SHA256:x", "reason": nul}),
            "reason",
        ),
        (
            "POST",
            "/api/v1/reviews/1/hide".into(),
            serde_json::json!({"reason": nul}),
            "reason",
        ),
        (
            "PUT",
            "/api/v1/plugins/acme/widget/reviews/mine".into(),
            serde_json::json!({"rating": 4, "version": nul}),
            "version",
        ),
        (
            "PUT",
            "/api/v1/plugins/acme/widget/reviews/mine".into(),
            serde_json::json!({"rating": 4, "body": "colour \u{1b}[31m"}),
            "body",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, problem) = w.call(method, &path, t, body);
        assert_eq!(status, 422, "{method} {path}: {problem}");
        assert_eq!(field_of(&problem), field, "{method} {path}: {problem}");
        assert!(problem.to_string().contains("U+00"), "{problem}");
    }
    // Anonymous, in query strings and paths of the API and the pages.
    for (path, field) in [
        ("/api/v1/plugins?tag=a%00b", "tag"),
        ("/api/v1/plugins?provider=a%00b", "provider"),
        ("/api/v1/plugins?category=a%00b", "category"),
        ("/api/v1/plugins?capability=a%00b", "capability"),
        ("/api/v1/plugins?publisher=a%00b", "publisher"),
        ("/api/v1/plugins/a%00b/c", "path"),
        ("/search?tag=a%00b", "tag"),
        ("/plugins/a%00b/c", "path"),
        ("/publishers/a%00b", "path"),
    ] {
        let (status, _, body) = http("GET", &w.url(path), None, None);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body.contains(field) && body.contains("U+0000"),
            "{path}: {body}"
        );
    }
    let (status, _, _) = http_with(
        "POST",
        &w.url("/login"),
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"csrf=x&username=ad%00min&password=whatever-it-is".to_vec()),
    );
    assert_eq!(status, 422, "sign-in with a NUL in the name");
    // Nothing was written by any of it.
    let (_, versions) = w.call(
        "GET",
        "/api/v1/plugins/acme/widget/versions",
        None,
        serde_json::Value::Null,
    );
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    assert_eq!(versions["versions"][0]["state"], "active");
    assert!(!w.server.log().contains("\"status\":500"));
}

/// Item 13, field by field: names, descriptions, reasons, contacts and every string of a
/// manifest being published are one line (NUL, a line break, a tab, an escape refused,
/// naming the field and the character); a review's body may span lines, nothing else. The
/// use cases check before the store sees the value, so SQLite and PostgreSQL answer alike
/// and nothing is written, whichever door the text came through.
fn each_field_keeps_its_own_text_rule_and_nothing_is_written(backend: Backend) {
    let w = world(backend);
    w.publish(&w.alice, "acme", "widget", "1.0.0", "");
    let alice = w.alice_token();
    let admin = w.admin.token.clone().unwrap();
    let (alice, admin) = (Some(alice.as_str()), Some(admin.as_str()));
    let manifest = |name: &str, description: &str, extra: &str| {
        serde_json::json!({
            "manifest": format!(
                "api_version: agora/v1\npublisher: acme\nname: {name}\nversion: 1.0.0\n\
                 description: {description}\nlicense: MIT\nruntime: {{ type: wasm, module: plugin.wasm }}\n{extra}"
            ),
            "artifacts": [],
        })
    };
    let publish = "/api/v1/plugins/acme/gadget/versions";
    let review = "/api/v1/plugins/acme/widget/reviews/mine";
    // (method, path, token, body, the field named, the character shown)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        serde_json::Value,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            publish,
            alice,
            manifest("gadget", "\"nul \\0 here\"", ""),
            "manifest.description",
            "U+0000",
        ),
        (
            "POST",
            publish,
            alice,
            manifest("gadget", ">\n  folded onto\n  two lines\n", ""),
            "manifest.description",
            "U+000A",
        ),
        (
            "POST",
            publish,
            alice,
            manifest("gadget", "\"tab\\there\"", ""),
            "manifest.description",
            "U+0009",
        ),
        (
            "POST",
            publish,
            alice,
            manifest("gadget", "A gadget", "display_name: \"\\e[2Jverified\"\n"),
            "manifest.display_name",
            "U+001B",
        ),
        (
            "POST",
            publish,
            alice,
            manifest("gadget", "A gadget", "display_name: \"Gad\\rget\"\n"),
            "manifest.display_name",
            "U+000D",
        ),
        (
            "POST",
            publish,
            alice,
            manifest("\"gad\\x07get\"", "A gadget", ""),
            "manifest.name",
            "U+0007",
        ),
        (
            "POST",
            publish,
            alice,
            manifest(
                "gadget",
                "A gadget",
                "contact: { support: \"help\\u0085@example.com\" }\n",
            ),
            "manifest.contact.support",
            "U+0085",
        ),
        (
            "PUT",
            review,
            alice,
            serde_json::json!({"rating": 2, "body": "nul \u{0} here"}),
            "body",
            "U+0000",
        ),
        (
            "PUT",
            review,
            alice,
            serde_json::json!({"rating": 2, "version": "1.0.0\n"}),
            "version",
            "U+000A",
        ),
        (
            "PATCH",
            "/api/v1/publishers/acme",
            alice,
            serde_json::json!({"email": "security@example.com\n"}),
            "email",
            "U+000A",
        ),
        (
            "PATCH",
            "/api/v1/publishers/acme",
            alice,
            serde_json::json!({"email": "sec\u{0}@example.com"}),
            "email",
            "U+0000",
        ),
        (
            "PATCH",
            "/api/v1/publishers/acme",
            alice,
            serde_json::json!({"url": "https://example.com/\u{7}"}),
            "url",
            "U+0007",
        ),
        (
            "POST",
            "/api/v1/publishers",
            alice,
            serde_json::json!({"name": "beta", "display_name": "Beta\nCorp"}),
            "display_name",
            "U+000A",
        ),
        (
            "POST",
            "/api/v1/publishers/acme/members",
            alice,
            serde_json::json!({"username": "bob\n"}),
            "username",
            "U+000A",
        ),
        (
            "POST",
            "/api/v1/tokens",
            alice,
            serde_json::json!({"name": "ci\tbot", "scopes": "review"}),
            "name",
            "U+0009",
        ),
        (
            "PATCH",
            "/api/v1/plugins/acme/widget/versions/1.0.0",
            alice,
            serde_json::json!({"state": "deprecated", "reason": "old\rverified: yes"}),
            "reason",
            "U+000D",
        ),
        (
            "POST",
            "/api/v1/publishers/acme/keys/revoke",
            alice,
            serde_json::json!({"id": "SHA256:x", "reason": "lost\nkey"}),
            "reason",
            "U+000A",
        ),
        (
            "POST",
            "/api/v1/reviews/1/hide",
            admin,
            serde_json::json!({"reason": "spam\tspam"}),
            "reason",
            "U+0009",
        ),
        (
            "POST",
            "/api/v1/users",
            admin,
            serde_json::json!({"username": "eve\n"}),
            "username",
            "U+000A",
        ),
    ];
    for (method, path, token, body, field, shown) in cases {
        let (status, problem) = w.call(method, path, token, body);
        assert_eq!(status, 422, "{method} {path}: {problem}");
        assert_eq!(field_of(&problem), field, "{method} {path}: {problem}");
        // The text rule's error (a name also breaks the slug rule: two errors).
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["field"] == field
                && e["problem"].as_str().unwrap().contains(shown)
                && e["expected"]
                    .as_str()
                    .unwrap()
                    .contains("without control characters")),
            "{method} {path}: {problem}"
        );
    }
    // The pages apply the same rules (a form field may hold a line break at the door;
    // the use case refuses it in a one-line field), with the API's status, 422, naming
    // the field and the character once.
    let (status, page) = sign_in_form(&w, "ad%0Amin");
    assert!(
        status == 422 && page.contains("username") && page.matches("U+000A").count() == 1,
        "{status}: {page}"
    );

    // Nothing was written by any of it.
    let get = |path: &str, token: Option<&str>| w.call("GET", path, token, serde_json::Value::Null);
    assert_eq!(get("/api/v1/plugins/acme/gadget", alice).0, 404);
    assert_eq!(get("/api/v1/publishers/beta", alice).0, 404);
    let (_, acme) = get("/api/v1/publishers/acme", alice);
    assert!(acme["email"].is_null() && acme["url"].is_null(), "{acme}");
    let members: Vec<_> = acme["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].clone())
        .collect();
    assert_eq!(members, [serde_json::json!("alice")]);
    let (_, invitations) = get("/api/v1/publishers/acme/invitations", alice);
    assert_eq!(invitations, serde_json::json!([]));
    let (_, reviews) = get("/api/v1/plugins/acme/widget/reviews", None);
    assert_eq!(reviews["items"], serde_json::json!([]), "{reviews}");
    let (_, tokens) = get("/api/v1/tokens", alice);
    assert!(!tokens.to_string().contains("bot"), "{tokens}");
    let (_, versions) = get("/api/v1/plugins/acme/widget/versions", None);
    assert_eq!(versions["versions"][0]["state"], "active", "{versions}");
    assert!(!w.server.log().contains("\"status\":500"));

    // What the rules allow still goes through: a review over several lines, a contact.
    let (status, written) = w.call(
        "PUT",
        review,
        alice,
        serde_json::json!({"rating": 4, "body": "Works well.\n\n\tIndented: fine."}),
    );
    assert_eq!(status, 200, "{written}");
    let (status, acme) = w.call(
        "PATCH",
        "/api/v1/publishers/acme",
        alice,
        serde_json::json!({"email": "security@example.com"}),
    );
    assert_eq!(
        (status, acme["email"].as_str()),
        (200, Some("security@example.com")),
        "{acme}"
    );
}

/// Posts the sign-in form as a browser would (with its session cookie and CSRF token),
/// `username` already form-encoded; returns the status and the page.
fn sign_in_form(w: &World, username: &str) -> (u16, String) {
    let fields = format!("username={username}&password=whatever-it-is");
    let (status, _, page) = sign_in_on_form(&w.server.url, None, None, &fields);
    (status, page)
}

/// Item 16: `Range` on an empty blob (a release's empty README): no range is satisfiable
/// (RFC 9110 §14.1.2), so `bytes=-N` is a 416 with `Content-Range: bytes */0`, never an
/// underflow; a header the server ignores gets the whole, empty, blob.
fn no_range_of_an_empty_blob_is_satisfiable(backend: Backend) {
    let w = world(backend);
    let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let d = plugin_dir(w.work.path(), "acme", "widget", "1.0.0", "", b"m");
    std::fs::write(d.join("README.md"), "").unwrap();
    w.alice.run(&["publish", d.to_str().unwrap()]).ok();
    let url = w.url(&format!("/api/v1/blobs/{empty}"));
    for method in ["GET", "HEAD"] {
        for range in [
            "bytes=-1",
            "bytes=-18446744073709551615",
            "bytes=-0",
            "bytes=0-",
            "bytes=0-0",
        ] {
            let (status, headers, body) = http_with(method, &url, None, &[("range", range)], None);
            assert_eq!(
                status,
                416,
                "{method} {range}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(headers["content-range"], "bytes */0", "{method} {range}");
        }
        for range in [None, Some("bytes=x-y"), Some("bytes=0-1,2-3")] {
            let headers: Vec<(&str, &str)> = range.map(|r| ("range", r)).into_iter().collect();
            let (status, answer, body) = http_with(method, &url, None, &headers, None);
            assert_eq!((status, body.len()), (200, 0), "{method} {range:?}");
            assert_eq!(answer["content-length"], "0", "{method} {range:?}");
        }
    }
    let log = w.server.log();
    assert!(
        !log.contains("panicked") && !log.contains("\"status\":500"),
        "{log}"
    );
}

/// Item 15: concurrent publishes of one plugin's versions, public and private mixed, take
/// their locks in one order and are retried on a lost race: every one succeeds.
fn concurrent_publishes_with_mixed_visibility_all_succeed(backend: Backend) {
    let w = world(backend);
    let dirs: Vec<String> = (0..24)
        .map(|i| {
            let extra = if i % 2 == 0 {
                "visibility: private\n"
            } else {
                ""
            };
            plugin_dir(
                w.work.path(),
                "acme",
                "racer",
                &format!("1.0.{i}"),
                extra,
                format!("racer {i}").as_bytes(),
            )
            .to_str()
            .unwrap()
            .to_owned()
        })
        .collect();
    std::thread::scope(|scope| {
        let runs: Vec<_> = dirs
            .iter()
            .map(|dir| scope.spawn(|| w.alice.run(&["publish", dir])))
            .collect();
        for run in runs {
            run.join().unwrap().ok();
        }
    });
    let (_, versions) = w.call(
        "GET",
        "/api/v1/plugins/acme/racer/versions",
        Some(&w.alice_token()),
        serde_json::Value::Null,
    );
    assert_eq!(versions["versions"].as_array().unwrap().len(), 24);
    assert!(!w.server.log().contains("deadlock"));
    // The log stayed dense and every release is in it once.
    let (_, entries) = w.call(
        "GET",
        "/api/v1/log/entries?from=0&limit=1000",
        Some(&w.alice_token()),
        serde_json::Value::Null,
    );
    let entries = entries.as_array().unwrap();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["index"].as_u64(), Some(i as u64));
    }
    // Verification verdicts are appended as the worker gets to them (a sealed one's
    // opening names its report digest too).
    let changes = entries
        .iter()
        .filter(|e| !e.to_string().contains("report_digest"))
        .count();
    assert_eq!(changes, 1 + 24, "the key, then 24 releases");
}

/// Item 17: the release's entry commits to its publisher's key history; a registry that
/// hides a revocation from what it serves is caught at install, on either backend.
fn a_revocation_hidden_by_the_registry_is_caught(backend: Backend) {
    let w = world(backend);
    w.publish(&w.alice, "acme", "widget", "1.0.0", "");
    let id = w.alice.run(&["--json", "key", "list", "acme"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.alice
        .run(&["key", "revoke", "acme", &id, "--reason", "stolen"])
        .ok();
    w.server.sql(
        "UPDATE publisher_keys SET revoked_at = NULL, revoked_by = NULL, revocation_reason = NULL, \
         revoked_log_index = NULL",
    );
    w.publish(&w.alice, "acme", "widget", "1.1.0", "");
    let anon = w.server.cli(None);
    let err = anon
        .run_in(
            w.work.path(),
            &["install", "acme/widget@=1.1.0", "--dir", "plugins"],
        )
        .fails();
    // The entry's index depends on whether the worker logged 1.0.0's verdict first.
    assert!(
        err.contains(&format!("key {id} was revoked in the log (entry "))
            && err.contains("before this release"),
        "{err}"
    );
    assert!(!w.work.path().join("plugins/acme/widget").exists());
    anon.run_in(
        w.work.path(),
        &["install", "acme/widget@=1.0.0", "--dir", "plugins"],
    )
    .ok();
}

// ---- The rest of the items, where the rule does not depend on the database. ----

/// Item 6: a release that makes a plugin private clears every cached public answer.
#[test]
fn making_a_plugin_private_empties_the_anonymous_cache_at_once() {
    let w = world_with(
        Backend::Sqlite,
        &[("AGORA_CACHE__METADATA_TTL_MS", "60000")],
    );
    w.publish(&w.alice, "acme", "widget", "1.0.0", "");
    let detail = "/api/v1/plugins/acme/widget/versions/1.0.0";
    assert_eq!(w.call("GET", detail, None, serde_json::Value::Null).0, 200);
    assert_eq!(
        w.call("GET", detail, None, serde_json::Value::Null).0,
        200,
        "cached"
    );
    w.publish(&w.alice, "acme", "widget", "1.1.0", "visibility: private\n");
    assert_eq!(w.call("GET", detail, None, serde_json::Value::Null).0, 404);
}

/// Item 8: metrics labels come from a bounded set.
#[test]
fn made_up_methods_create_no_metrics_series() {
    let w = world(Backend::Sqlite);
    for i in 0..50 {
        let method = format!("X{}{i}", "M".repeat(500));
        http(&method, &w.url("/health"), None, None);
    }
    let (_, _, metrics) = http("GET", &w.url("/metrics"), None, None);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(!metrics.contains("MMMM"), "a method became a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(metrics.len() < 200_000, "{} bytes", metrics.len());
}

/// Item 9: slow and idle connections are closed; connections over the cap are refused
/// while the server keeps answering others.
#[test]
fn slow_and_idle_connections_time_out_and_connections_are_capped() {
    let w = world_with(
        Backend::Sqlite,
        &[
            ("AGORA_LIMITS__HEADER_TIMEOUT_SECS", "1"),
            ("AGORA_LIMITS__MAX_CONNECTIONS_PER_CLIENT", "4"),
        ],
    );
    let addr = w.server.url.trim_start_matches("http://").to_owned();
    let closed_within = |stream: &mut TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 4096];
        let started = std::time::Instant::now();
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return started.elapsed() < limit,
            }
        }
    };
    // Half a request head, then silence.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "a half-sent head"
    );
    // Silence from the start.
    let mut silent = TcpStream::connect(&addr).unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a silent connection"
    );
    // One request, then an idle keep-alive connection.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "an idle keep-alive"
    );

    // Four connections held open: a fifth from the same client is refused with a 503.
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = http("GET", &w.url("/health"), None, None);
    assert_eq!(
        status, 200,
        "the server answers once the held connections are gone"
    );
}

/// Item 12: a client fetching a release again and again (or in 1-byte ranges) counts once.
#[test]
fn downloads_count_once_per_client_and_not_for_later_ranges() {
    let w = world(Backend::Sqlite);
    w.publish(&w.alice, "acme", "widget", "1.0.0", "");
    let detail = w
        .server
        .cli(None)
        .run(&["--json", "info", "acme/widget@1.0.0"])
        .json();
    let manifest = detail["manifest_digest"].as_str().unwrap().to_owned();
    let blob = w.url(&format!("/api/v1/blobs/{manifest}"));
    for _ in 0..20 {
        http_with("GET", &blob, None, &[("range", "bytes=0-0")], None);
        http("GET", &blob, None, None);
    }
    http_with("GET", &blob, None, &[("range", "bytes=5-")], None);
    let downloads = || {
        let (_, versions) = w.call(
            "GET",
            "/api/v1/plugins/acme/widget/versions",
            None,
            serde_json::Value::Null,
        );
        versions["versions"][0]["downloads"].as_i64().unwrap_or(0)
    };
    eventually("the download to be counted", || {
        (downloads() > 0).then_some(())
    });
    // Counts are written in batches once a second: two more flushes change nothing.
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(downloads(), 1);
}

/// Item 11: someone guessing an account's password from one address slows only
/// themselves; the owner signs in from another.
#[test]
fn failed_sign_ins_never_lock_the_owner_out() {
    let w = world_with(
        Backend::Sqlite,
        &[("AGORA_ADMIN_PASSWORD", "the admin's own passphrase")],
    );
    let sign_in = |from: &str, password: &str| -> u16 {
        let fields = format!("username=admin&password={}", form_value(password));
        sign_in_on_form(&w.server.url, Some(from), Some(from), &fields).0
    };
    for _ in 0..5 {
        assert_eq!(sign_in("127.0.0.2", "wrong guess here"), 401);
    }
    assert_eq!(
        sign_in("127.0.0.2", "wrong guess here"),
        429,
        "the guesser waits"
    );
    assert_eq!(
        sign_in("127.0.0.1", "the admin's own passphrase"),
        303,
        "the owner, from elsewhere, signs in"
    );
}

/// Item 14: text from the registry cannot drive the user's terminal.
#[test]
fn registry_text_is_printed_with_control_characters_escaped() {
    let w = world(Backend::Sqlite);
    w.publish(&w.alice, "acme", "widget", "1.0.0", "");
    // A registry that stores what the API refuses (its database edited).
    w.server.sql(
        "UPDATE plugins SET description = 'nice' || char(27) || '[2J' || char(13) || 'verified: yes' \
         WHERE name = 'widget'",
    );
    let anon = w.server.cli(None);
    for args in [&["search", "widget"][..], &["info", "acme/widget"]] {
        let out = anon.run(args).ok();
        assert!(
            !out.contains('\u{1b}') && !out.contains('\r'),
            "{args:?}: {out:?}"
        );
        assert!(out.contains("\\u{1b}[2J"), "{args:?}: {out}");
    }
}

/// Item 16.
#[test]
fn edge_values_get_exact_answers() {
    let w = world(Backend::Sqlite);
    // (`Range` on an empty blob: `no_range_of_an_empty_blob_is_satisfiable`, both backends.)
    let (status, entries) = w.call(
        "GET",
        "/api/v1/log/entries?from=18446744073709551615",
        None,
        serde_json::Value::Null,
    );
    assert_eq!((status, entries), (200, serde_json::json!([])));
    // A key's registration answers with its log index.
    let key = w.alice.home.path().join("third");
    w.alice
        .run(&["keygen", "--out", key.to_str().unwrap()])
        .ok();
    let added = w
        .alice
        .run(&[
            "--json",
            "key",
            "add",
            "acme",
            &format!("{}.pub", key.display()),
        ])
        .json();
    assert!(added["log_index"].is_u64(), "{added}");
}
