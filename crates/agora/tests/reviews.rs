//! Ratings and reviews, web passwords, publisher settings and the private-registry mode
//! through the real binary's API.

mod support;

use support::*;

fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = (!body.is_null()).then(|| body.to_string().into_bytes());
    let (status, _, answer) = http_with(
        method,
        &format!("{}{path}", server.url),
        token,
        &[("content-type", "application/json")],
        body,
    );
    let json = serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn token_for(admin: &Cli, user: &str, scopes: &[&str]) -> String {
    admin.token_for(user, scopes)
}

#[test]
fn reviews_ratings_passwords_and_publisher_settings_over_the_api() {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    admin
        .run(&["user", "create", "alice", "--role", "publisher"])
        .ok();
    admin.run(&["user", "create", "bob"]).ok();
    let alice_token = token_for(&admin, "alice", &["publish:*"]);
    let bob = token_for(&admin, "bob", &["read:private", "review"]);
    let bob_read_only = token_for(&admin, "bob", &["read:private"]);
    let mut alice = server.cli(Some(&alice_token));
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    for v in ["1.0.0", "1.1.0"] {
        let dir = plugin_dir(
            work.path(),
            "acme",
            "jira",
            v,
            "categories: [ticketing]\n",
            b"\0asm\x01\0\0\0",
        );
        alice.run(&["publish", dir.to_str().unwrap()]).ok();
    }

    // A review needs a token, a rating of 1 to 5 and an existing version.
    let mine = "/api/v1/plugins/acme/jira/reviews/mine";
    let put_mine = |token: Option<&str>, body| call(&server, "PUT", mine, token, body);
    let reviews = |token: Option<&str>| {
        call(
            &server,
            "GET",
            "/api/v1/plugins/acme/jira/reviews",
            token,
            serde_json::Value::Null,
        )
    };
    let set_password = |user: &str, token: Option<&str>, password: &str| {
        let path = format!("/api/v1/users/{user}/password");
        call(
            &server,
            "PUT",
            &path,
            token,
            serde_json::json!({ "password": password }),
        )
    };
    let patch_acme =
        |token: Option<&str>, body| call(&server, "PATCH", "/api/v1/publishers/acme", token, body);
    let (status, _) = put_mine(None, serde_json::json!({ "rating": 4 }));
    assert_eq!(status, 401);
    // Writing a review is a write: a read-only token may not.
    let (status, problem) = put_mine(Some(&bob_read_only), serde_json::json!({ "rating": 4 }));
    assert_eq!(status, 403);
    assert!(
        problem["detail"].as_str().unwrap().contains("review"),
        "{problem}"
    );
    let (status, problem) = put_mine(Some(&bob), serde_json::json!({ "rating": 0 }));
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "rating");
    let (status, problem) = put_mine(
        Some(&bob),
        serde_json::json!({ "rating": 3, "version": "9.9.9" }),
    );
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "version");
    let (status, problem) = put_mine(
        Some(&bob),
        serde_json::json!({ "rating": 3, "body": "x".repeat(4001) }),
    );
    assert_eq!(status, 422, "{problem}");

    let (status, review) = put_mine(
        Some(&bob),
        serde_json::json!({ "rating": 2, "body": "meh", "version": "1.0.0" }),
    );
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["version"], "1.0.0");
    // Editing replaces it; the latest version is the default.
    let (_, edited) = put_mine(
        Some(&bob),
        serde_json::json!({ "rating": 5, "body": "great now" }),
    );
    assert_eq!(edited["id"], review["id"]);
    assert_eq!(edited["version"], "1.1.0");
    let alice_reviews = token_for(&admin, "alice", &["review"]);
    let (status, _) = put_mine(Some(&alice_reviews), serde_json::json!({ "rating": 3 }));
    assert_eq!(status, 200);

    let (_, list) = reviews(None);
    assert_eq!(list["rating_count"], 2);
    assert_eq!(list["rating"], 4.0);
    let search = anon_search(&server);
    assert_eq!(search["items"][0]["rating"], 4.0);
    assert_eq!(search["items"][0]["rating_count"], 2);

    // Only administrators hide, with a reason; hidden reviews leave the rating.
    let hide = format!("/api/v1/reviews/{}/hide", review["id"]);
    let hide_as = |token: Option<&str>, body| call(&server, "POST", &hide, token, body);
    let (status, _) = hide_as(Some(&bob), serde_json::json!({ "reason": "mine" }));
    assert_eq!(status, 403);
    let (status, _) = hide_as(
        Some(&server.admin_token),
        serde_json::json!({ "reason": "" }),
    );
    assert_eq!(status, 422);
    let (status, _) = hide_as(
        Some(&server.admin_token),
        serde_json::json!({ "reason": "spam" }),
    );
    assert_eq!(status, 204);
    let (_, list) = reviews(None);
    assert_eq!(
        (
            list["rating_count"].as_u64(),
            list["items"].as_array().unwrap().len()
        ),
        (Some(1), 1)
    );
    let (_, list) = reviews(Some(&server.admin_token));
    let hidden = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["author"] == "bob")
        .unwrap();
    assert_eq!(hidden["hidden"]["reason"], "spam");
    let (status, _) = call(
        &server,
        "DELETE",
        &hide,
        Some(&server.admin_token),
        serde_json::Value::Null,
    );
    assert_eq!(status, 204);
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/reviews/999/hide",
        Some(&server.admin_token),
        serde_json::json!({ "reason": "x" }),
    );
    assert_eq!(status, 404);

    // Passwords: one's own, or anyone's for an administrator; at least 12 characters.
    // A narrow token cannot set its account's password (a session gets every right).
    let (status, problem) = set_password("bob", Some(&bob), "a long passphrase");
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("publish:*"),
        "{problem}"
    );
    let bob_full = token_for(
        &admin,
        "bob",
        &[
            "read:private",
            "review",
            "publish:*",
            "members:*",
            "tenant:*",
        ],
    );
    let (status, problem) = set_password("bob", Some(&bob_full), "short");
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "password");
    let (status, _) = set_password("bob", Some(&bob_full), "a long passphrase");
    assert_eq!(status, 204);
    let (status, _) = set_password("alice", Some(&bob_full), "a long passphrase");
    assert_eq!(status, 403);

    // Publisher contacts (owners) and verification (administrators).
    let (status, _) = patch_acme(Some(&alice_token), serde_json::json!({ "verified": true }));
    assert_eq!(status, 403);
    let (status, problem) = patch_acme(
        Some(&alice_token),
        serde_json::json!({ "email": "not an address" }),
    );
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "email");
    let (status, p) = patch_acme(
        Some(&alice_token),
        serde_json::json!({ "email": "ops@acme.test", "url": "https://acme.test" }),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["email"], "ops@acme.test");
    let (_, p) = patch_acme(
        Some(&server.admin_token),
        serde_json::json!({ "verified": true }),
    );
    assert_eq!(p["verified"], true);
    assert_eq!(anon_search(&server)["items"][0]["verified_publisher"], true);
}

fn anon_search(server: &Server) -> serde_json::Value {
    let (status, body) = call(
        server,
        "GET",
        "/api/v1/plugins?q=jira",
        None,
        serde_json::Value::Null,
    );
    assert_eq!(status, 200);
    body
}

#[test]
fn a_private_registry_answers_nothing_without_a_token() {
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WEB__REQUIRE_SIGN_IN", "true")]);
    let (status, problem) = call(
        &server,
        "GET",
        "/api/v1/plugins",
        None,
        serde_json::Value::Null,
    );
    assert_eq!(status, 401);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("private registry")
    );
    let (status, _, _) = http("GET", &format!("{}/health", server.url), None, None);
    assert_eq!(status, 200);
    // A made-up token is not a way in, even to endpoints that do not read it.
    for path in ["/api/v1/publishers", "/api/v1/log/checkpoint"] {
        let (status, _) = call(
            &server,
            "GET",
            path,
            Some("agora_bogus"),
            serde_json::Value::Null,
        );
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = call(
        &server,
        "GET",
        "/api/v1/plugins",
        Some(&server.admin_token),
        serde_json::Value::Null,
    );
    assert_eq!(status, 200);
    // The pages send the visitor to sign in (the client follows the redirect).
    let (status, _, page) = http("GET", &format!("{}/search?q=x", server.url), None, None);
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("name=\"password\"") && page.contains("value=\"/search?q=x\""),
        "{page}"
    );
}
