//! The web pages through the real router, store and blob store (SQLite in a temporary
//! directory): escaping, sanitizing, sign-in, CSRF, reviews, private plugins and the
//! private-registry mode. The browser tests in `crates/agora/tests/browser.rs` drive the
//! same pages in Chromium.

use agora_store::prelude::*;
use std::sync::Arc;

use agora_core::manifest::ArtifactRole;
use agora_core::{Digest, Manifest};
use agora_registry::{Limits, Registry, TransparencyLog};
use agora_server::{AppState, CacheConfig, HttpLimits};
use agora_store::{ArtifactRecord, BlobStore, FsBlobStore, NewRelease, Role, SqlStore};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const XSS: &str = "<script>alert('xss')</script>";

struct Site {
    app: axum::Router,
    registry: Arc<Registry>,
    meta: Arc<SqlStore>,
    blobs: Arc<FsBlobStore>,
    _dir: tempfile::TempDir,
}

async fn site(sign_in_required: bool) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("agora.db").display());
    let meta = SqlStore::connect(&url).await.unwrap();
    let blobs = FsBlobStore::open(dir.path().join("blobs")).await.unwrap();
    let hash = agora_registry::password::hash(PASSWORD.into())
        .await
        .unwrap();
    let alice = meta.create_user("alice", Role::Publisher).await.unwrap();
    meta.set_password(alice.id, Some(&hash), "test")
        .await
        .unwrap();
    let admin = meta.create_user("admin", Role::Admin).await.unwrap();
    meta.set_password(admin.id, Some(&hash), "test")
        .await
        .unwrap();
    let acme = meta
        .create_publisher("acme", Some("ACME"), &alice)
        .await
        .unwrap();
    for (name, visibility, readme) in [
        (
            "jira",
            "public",
            format!("# Jira\n\nFiles tickets. {XSS}\n\n<img src=x onerror=\"alert('readme')\">\n"),
        ),
        ("secret-tool", "private", "# Secret\n".to_owned()),
    ] {
        let text = format!(
            "api_version: agora/v1\npublisher: acme\nname: {name}\nversion: 1.0.0\n\
             description: \"Tickets {XSS}\"\nlicense: MIT\nvisibility: {visibility}\ncategories: [ticketing]\n\
             capabilities: [outbound_http]\nnetwork: {{ outbound_hosts: [api.atlassian.com] }}\n\
             runtime: {{ type: wasm, module: plugin.wasm }}\n"
        );
        publish_with_readme(&meta, &blobs, &acme, &alice, &text, &readme).await;
    }
    let log = TransparencyLog::open(&meta, "test").await.unwrap();
    let meta = Arc::new(meta);
    let blobs = Arc::new(blobs);
    let registry = Arc::new(
        Registry::new(meta.clone(), blobs.clone(), log, Limits::default())
            .with_sign_in_required(sign_in_required),
    );
    // The pages sit behind a proxy on 10.0.0.0/8 in the tests that send a peer address.
    let state = AppState::new(
        registry.clone(),
        HttpLimits::default(),
        CacheConfig::default(),
    )
    .with_trusted_proxies(agora_server::client::TrustedProxies::parse(&["10.0.0.0/8"]).unwrap());
    Site {
        app: agora_web::app(state, agora_web::WebConfig::default()),
        registry,
        meta,
        blobs,
        _dir: dir,
    }
}

/// Publishes a release of `manifest` (text) with `readme` as its README, as `user`.
async fn publish_with_readme(
    meta: &SqlStore,
    blobs: &FsBlobStore,
    publisher: &agora_store::PublisherRecord,
    user: &agora_store::UserRecord,
    manifest: &str,
    readme: &str,
) {
    let docs = [("README.md", ArtifactRole::Readme, readme)];
    publish_with_docs(meta, blobs, publisher, user, manifest, &docs).await;
}

/// Publishes a release of `manifest` (text) with `docs` (path, role, text), as `user`.
async fn publish_with_docs(
    meta: &SqlStore,
    blobs: &FsBlobStore,
    publisher: &agora_store::PublisherRecord,
    user: &agora_store::UserRecord,
    manifest: &str,
    docs: &[(&str, ArtifactRole, &str)],
) {
    let manifest_digest = Digest::of(manifest.as_bytes());
    let mut artifacts = vec![ArtifactRecord {
        path: "plugin.yaml".into(),
        role: ArtifactRole::Manifest,
        digest: manifest_digest,
        size: manifest.len() as i64,
    }];
    for (path, role, text) in docs {
        let digest = Digest::of(text.as_bytes());
        let body = futures_util::stream::iter([Ok(axum::body::Bytes::from(text.to_string()))]);
        blobs.put(&digest, Box::pin(body), 1 << 20).await.unwrap();
        artifacts.push(ArtifactRecord {
            path: path.to_string(),
            role: *role,
            digest,
            size: text.len() as i64,
        });
    }
    meta.publish(NewRelease {
        publisher_id: publisher.id,
        manifest: Manifest::from_yaml(manifest).unwrap(),
        manifest_digest,
        signature: None,
        signer_key: None,
        log_entry: None,
        artifacts,
        published_by: user.id,
        actor: user.username.clone(),
        jobs: Vec::new(),
    })
    .await
    .unwrap();
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Site {
    async fn request(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: &str) -> Answer {
        let mut r = Request::get(path);
        if !cookie.is_empty() {
            r = r.header(header::COOKIE, cookie);
        }
        self.request(r.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Answer {
        let mut r = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "registry.test")
            .header(header::ORIGIN, "http://registry.test");
        if !cookie.is_empty() {
            r = r.header(header::COOKIE, cookie);
        }
        let body = serde_urlencoded::to_string(form).unwrap();
        self.request(r.body(Body::from(body)).unwrap()).await
    }

    /// Signs in through the form; returns the session cookie (`name=value`).
    async fn sign_in(&self, user: &str) -> String {
        let form = self.get("/login", "").await;
        let login_cookie = cookie_of(&form, "agora_login_csrf");
        let csrf = hidden(&form.body, "csrf");
        let done = self
            .post(
                "/login",
                &login_cookie,
                &[
                    ("csrf", &csrf),
                    ("username", user),
                    ("password", PASSWORD),
                    ("next", "/account"),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.headers[header::LOCATION], "/account");
        cookie_of(&done, "agora_session")
    }
}

fn cookie_of(answer: &Answer, name: &str) -> String {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", answer.headers))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The value of the first hidden input named `name`.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn user_text_is_escaped_and_readme_html_is_sanitized() {
    let site = site(false).await;
    let page = site.get("/plugins/acme/jira", "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Tickets &lt;script&gt;alert(&#x27;xss&#x27;)&lt;&#x2f;script&gt;")
            || page.body.contains("Tickets &#60;script&#62;"),
        "description escaped: {}",
        &page.body[..2000.min(page.body.len())]
    );
    assert!(!page.body.contains(XSS), "no raw script anywhere");
    assert!(
        !page.body.contains("onerror"),
        "README event handlers removed"
    );
    assert!(page.body.contains("<h1>Jira</h1>"), "README rendered");
    assert!(
        page.body.contains("api.atlassian.com"),
        "outbound hosts shown"
    );
    assert!(page.body.contains("agora install acme/jira@=1.0.0"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    let search = site.get("/search?q=tickets", "").await;
    assert!(search.body.contains("/plugins/acme/jira"));
    assert!(!search.body.contains(XSS));
}

#[tokio::test]
async fn private_plugins_never_appear_to_outsiders() {
    let site = site(false).await;
    for path in [
        "/",
        "/search?q=secret",
        "/search?category=ticketing",
        "/publishers/acme",
    ] {
        let page = site.get(path, "").await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains("secret-tool"),
            "{path} shows the private plugin"
        );
    }
    assert_eq!(
        site.get("/plugins/acme/secret-tool", "").await.status,
        StatusCode::NOT_FOUND
    );
    // Its publisher's member sees it.
    let alice = site.sign_in("alice").await;
    assert!(
        site.get("/search?q=secret", &alice)
            .await
            .body
            .contains("secret-tool")
    );
    assert_eq!(
        site.get("/plugins/acme/secret-tool", &alice).await.status,
        StatusCode::OK
    );
    // The home page's shelves are kept for public-only visitors: never handed to a
    // member, and what a member sees never reaches the next outsider.
    assert!(site.get("/", &alice).await.body.contains("secret-tool"));
    assert!(!site.get("/", "").await.body.contains("secret-tool"));
    assert!(site.get("/", &alice).await.body.contains("secret-tool"));
}

#[tokio::test]
async fn sign_in_sets_a_safe_cookie_and_wrong_passwords_are_refused_then_throttled() {
    let site = site(false).await;
    let form = site.get("/login", "").await;
    let login_cookie = cookie_of(&form, "agora_login_csrf");
    let csrf = hidden(&form.body, "csrf");
    let wrong = site
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", "nope-nope-nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password"));
    // Without the double-submit cookie, even the right password is refused.
    let forged = site
        .post(
            "/login",
            "",
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let done = site
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let set = done.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");

    for _ in 0..5 {
        site.post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", "wrong-password"),
            ],
        )
        .await;
    }
    let throttled = site
        .post(
            "/login",
            &login_cookie,
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);

    // `next` may only be a path on this site (a tab would become `//evil.test`).
    for next in ["//evil.test", "https://evil.test", "/%5Cevil.test"] {
        let form = site.get(&format!("/login?next={next}"), "").await;
        assert_eq!(hidden(&form.body, "next"), "/", "{next}");
    }
    // A control character (a tab would turn `/<TAB>/evil.test` into `//evil.test`) is
    // refused outright, naming the parameter.
    let tab = site.get("/login?next=/%09/evil.test", "").await;
    assert_eq!(tab.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(tab.body.contains("next"), "{}", tab.body);

    // A client cannot claim HTTPS itself: from a peer that is not a trusted proxy the
    // header is ignored.
    let claimed = Request::get("/login")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let claimed = site.request(claimed).await;
    let set = claimed.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(!set.contains("Secure"), "{set}");
    // Behind a trusted TLS proxy the cookie is Secure with the __Host- prefix.
    let mut request = Request::get("/login")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [10, 0, 0, 1],
            4711,
        ))));
    let over_tls = site.request(request).await;
    let set = over_tls.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("__Host-agora_login_csrf=") && set.contains("; Secure"),
        "{set}"
    );
}

#[tokio::test]
async fn reviews_need_the_csrf_token_and_show_escaped() {
    let site = site(false).await;
    let alice = site.sign_in("alice").await;
    let page = site.get("/plugins/acme/jira", &alice).await;
    let csrf = hidden(&page.body, "csrf");
    let review = [
        ("csrf", csrf.as_str()),
        ("rating", "4"),
        ("version", "1.0.0"),
        ("body", XSS),
    ];

    let mut forged = review;
    forged[0].1 = "0000";
    let refused = site
        .post("/plugins/acme/jira/review", &alice, &forged)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let request = Request::post("/plugins/acme/jira/review")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "registry.test")
        .header(header::ORIGIN, "https://evil.test")
        .header(header::COOKIE, &alice)
        .body(Body::from(serde_urlencoded::to_string(review).unwrap()))
        .unwrap();
    assert_eq!(
        site.request(request).await.status,
        StatusCode::FORBIDDEN,
        "cross-site post"
    );
    let bad = site
        .post(
            "/plugins/acme/jira/review",
            &alice,
            &[("csrf", &csrf), ("rating", "9"), ("body", "x")],
        )
        .await;
    // The status the API answers for the same problem.
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("rating"), "{}", bad.body);
    assert_eq!(
        bad.body.matches("rating:").count(),
        1,
        "the field error is said once: {}",
        bad.body
    );

    let posted = site
        .post("/plugins/acme/jira/review", &alice, &review)
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let page = site.get("/plugins/acme/jira", "").await;
    assert!(page.body.contains("4.0"), "the rating shows");
    assert!(page.body.contains("&lt;script&gt;") || page.body.contains("&#60;script"));
    assert!(!page.body.contains(XSS));

    // An administrator hides it with a reason; the rating goes with it.
    let admin = site.sign_in("admin").await;
    let page = site.get("/plugins/acme/jira", &admin).await;
    let csrf = hidden(&page.body, "csrf");
    let id = page
        .body
        .split("/reviews/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let hidden_ok = site
        .post(
            &format!("/reviews/{id}/hide"),
            &admin,
            &[
                ("csrf", &csrf),
                ("reason", "spam"),
                ("back", "/plugins/acme/jira"),
            ],
        )
        .await;
    assert_eq!(
        hidden_ok.status,
        StatusCode::SEE_OTHER,
        "{}",
        hidden_ok.body
    );
    let page = site.get("/plugins/acme/jira", "").await;
    assert!(page.body.contains("No reviews yet"));
    assert!(
        site.get("/plugins/acme/jira", &admin)
            .await
            .body
            .contains("Hidden by admin: spam")
    );
    // Not an administrator: refused.
    let page = site.get("/plugins/acme/jira", &alice).await;
    let csrf = hidden(&page.body, "csrf");
    let refused = site
        .post(
            &format!("/reviews/{id}/show"),
            &alice,
            &[("csrf", &csrf), ("back", "/")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_private_registry_shows_nothing_before_sign_in() {
    let site = site(true).await;
    let home = site.get("/", "").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.headers[header::LOCATION], "/login?next=%2F");
    let page = site.get("/plugins/acme/jira", "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(site.get("/login", "").await.status, StatusCode::OK);
    let api = site.get("/api/v1/plugins", "").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(api.body.contains("private registry"));
    assert_eq!(site.get("/health", "").await.status, StatusCode::OK);
    let alice = site.sign_in("alice").await;
    assert_eq!(site.get("/", &alice).await.status, StatusCode::OK);
    assert!(
        site.get("/plugins/acme/jira", &alice)
            .await
            .body
            .contains("Jira")
    );
}

#[tokio::test]
async fn unknown_pages_are_html_and_unknown_api_paths_are_problems() {
    let site = site(false).await;
    let page = site.get("/nowhere", "").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let api = site.get("/api/v1/nowhere", "").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.body.contains("urn:agora:problem:not-found"));
    // The API's answers carry its own security headers, the pages theirs.
    let csp = |got: &Answer| {
        got.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned()
    };
    for got in [&api, &site.get("/api/v1/plugins", "").await] {
        assert_eq!(csp(got), agora_server::headers::API_CSP);
        assert_eq!(got.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    assert!(csp(&page).contains("script-src 'self'"), "{}", csp(&page));
    assert!(csp(&site.get("/", "").await).contains("script-src 'self'"));
    let bad = site.get("/search?min_rating=lots", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("min_rating"));
    // Readable but invalid: the API's status for the same problem.
    let bad = site.get("/search?compatible_with=banana", "").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("compatible_with"));
}

#[tokio::test]
async fn facet_counts_follow_a_change_to_the_catalog_at_once() {
    let site = site(false).await;
    let count = |body: &str| {
        let at = body
            .find("<span>ticketing</span>")
            .expect("a ticketing facet");
        body[at..]
            .split("class=\"count\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(count(&site.get("/search", "").await.body), "1");
    assert!(!site.get("/", "").await.body.contains("/plugins/acme/more"));
    let alice = site.meta.user_by_name("alice").await.unwrap().unwrap();
    let acme = site.meta.publisher_by_name("acme").await.unwrap().unwrap();
    let text = "api_version: agora/v1\npublisher: acme\nname: more\nversion: 1.0.0\n\
                description: More tickets\nlicense: MIT\ncategories: [ticketing]\n\
                runtime: { type: wasm, module: plugin.wasm }\n";
    let digest = Digest::of(text.as_bytes());
    site.meta
        .publish(NewRelease {
            publisher_id: acme.id,
            manifest: Manifest::from_yaml(text).unwrap(),
            manifest_digest: digest,
            signature: None,
            signer_key: None,
            log_entry: None,
            artifacts: vec![ArtifactRecord {
                path: "plugin.yaml".into(),
                role: ArtifactRole::Manifest,
                digest,
                size: text.len() as i64,
            }],
            published_by: alice.id,
            actor: "alice".into(),
            jobs: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(count(&site.get("/search", "").await.body), "2");
    // The home page's shelves, kept for anonymous visitors, follow at once too.
    assert!(site.get("/", "").await.body.contains("/plugins/acme/more"));
}

#[tokio::test]
async fn control_characters_in_paths_queries_and_forms_are_refused_by_name() {
    let site = site(false).await;
    for (path, field) in [
        ("/search?tag=a%00b", "tag"),
        ("/search?q=%1B%5B2J", "q"),
        ("/plugins/a%00b/c", "path"),
        ("/publishers/a%00b", "path"),
    ] {
        let page = site.get(path, "").await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert!(
            page.body.contains(field) && page.body.contains("control character"),
            "{path}: {}",
            page.body
        );
        assert!(page.headers.contains_key("content-security-policy"));
    }
    let form = site.get("/login", "").await;
    let login_cookie = cookie_of(&form, "agora_login_csrf");
    let csrf = hidden(&form.body, "csrf");
    let refused = site
        .post(
            "/login",
            &login_cookie,
            &[("csrf", &csrf), ("username", "ad\0min"), ("password", "x")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("username"), "{}", refused.body);
    // A review may hold line breaks, not escape sequences.
    let cookie = site.sign_in("alice").await;
    let account = site.get("/account", &cookie).await;
    let session_csrf = hidden(&account.body, "csrf");
    let review = site
        .post(
            "/plugins/acme/jira/review",
            &cookie,
            &[
                ("csrf", &session_csrf),
                ("rating", "4"),
                ("body", "line one\nline two \u{1b}[31m"),
            ],
        )
        .await;
    assert_eq!(review.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(review.body.contains("body"), "{}", review.body);
}

#[tokio::test]
async fn a_readme_built_to_explode_renders_cut_and_bounded() {
    let site = site(false).await;
    // A two-thousand-column header and twenty thousand one-cell rows: 60 KB that, padded,
    // would be forty million cells.
    let mut readme = String::from("|");
    readme.push_str(&"h|".repeat(2_000));
    readme.push_str("\n|");
    readme.push_str(&"-|".repeat(2_000));
    readme.push('\n');
    readme.push_str(&"|x\n".repeat(20_000));
    let text = "api_version: agora/v1\npublisher: acme\nname: bomb\nversion: 1.0.0\n\
                description: A big table\nlicense: MIT\nruntime: { type: wasm, module: plugin.wasm }\n";
    let alice = site.meta.user_by_name("alice").await.unwrap().unwrap();
    let acme = site.meta.publisher_by_name("acme").await.unwrap().unwrap();
    publish_with_readme(&site.meta, &site.blobs, &acme, &alice, text, &readme).await;
    for _ in 0..3 {
        let page = site.get("/plugins/acme/bomb", "").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.len() < 2 * 1024 * 1024,
            "{} bytes",
            page.body.len()
        );
        assert!(
            page.body.contains("too large or complex"),
            "the cut is announced"
        );
        assert!(page.body.contains("<table>"), "what fits is shown");
    }
}

#[tokio::test]
async fn an_invited_user_accepts_on_the_account_page() {
    let site = site(false).await;
    let admin = site.meta.user_by_name("admin").await.unwrap().unwrap();
    let acme = site.meta.publisher_by_name("acme").await.unwrap().unwrap();
    let now = agora_store::now_ms();
    site.meta
        .invite_member(
            &agora_store::InvitationRecord {
                publisher: "acme".into(),
                username: "admin".into(),
                role: "member".into(),
                invited_by: "alice".into(),
                created_at: now,
                expires_at: now + 60_000,
            },
            acme.id,
            10,
        )
        .await
        .unwrap();
    let cookie = site.sign_in("admin").await;
    let account = site.get("/account", &cookie).await;
    assert!(account.body.contains("Invitations"), "{}", account.body);
    assert!(account.body.contains("/account/invitations/acme/accept"));
    let csrf = hidden(&account.body, "csrf");
    // Without the session's CSRF token nothing happens.
    let forged = site
        .post(
            "/account/invitations/acme/accept",
            &cookie,
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let accepted = site
        .post(
            "/account/invitations/acme/accept",
            &cookie,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert!(
        site.meta
            .memberships(admin.id)
            .await
            .unwrap()
            .iter()
            .any(|(_, n)| n == "acme")
    );
    let again = site
        .post(
            "/account/invitations/acme/accept",
            &cookie,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "used up");
}

impl Site {
    /// Publishes `acme/NAME@VERSION` (public, a README) with `extra` manifest lines, as
    /// alice.
    async fn publish(&self, name: &str, version: &str, extra: &str) {
        self.publish_with_changelog(name, version, extra, None)
            .await;
    }

    /// [`Site::publish`], with `changelog` as the release's CHANGELOG.md when given.
    async fn publish_with_changelog(
        &self,
        name: &str,
        version: &str,
        extra: &str,
        changelog: Option<&str>,
    ) {
        let alice = self.meta.user_by_name("alice").await.unwrap().unwrap();
        let acme = self.meta.publisher_by_name("acme").await.unwrap().unwrap();
        let text = format!(
            "api_version: agora/v1\npublisher: acme\nname: {name}\nversion: {version}\n\
             description: The {name} plugin\nlicense: MIT\n\
             runtime: {{ type: wasm, module: plugin.wasm }}\n{extra}"
        );
        let readme = format!("# {name}\n");
        let mut docs = vec![("README.md", ArtifactRole::Readme, readme.as_str())];
        docs.extend(changelog.map(|c| ("CHANGELOG.md", ArtifactRole::Changelog, c)));
        publish_with_docs(&self.meta, &self.blobs, &acme, &alice, &text, &docs).await;
    }

    /// Sets the state of `acme/NAME@VERSION` as the store does for a lifecycle change.
    async fn set_state(
        &self,
        name: &str,
        version: &str,
        state: agora_core::Lifecycle,
        reason: &str,
        replacement: Option<&str>,
    ) {
        let p = self.meta.plugin("acme", name).await.unwrap().unwrap();
        let v = self.meta.version(p.id, version).await.unwrap().unwrap();
        self.meta
            .set_lifecycle(agora_store::LifecycleChange {
                version_id: v.id,
                state,
                reason: Some(reason.to_owned()),
                replacement: replacement.map(str::to_owned),
                actor: "alice".into(),
                log_entry: None,
            })
            .await
            .unwrap();
    }
}

/// The page's `<header class="top">…</header>`: the site's frame, with who is signed in.
fn frame(body: &str) -> &str {
    let start = body
        .find("<header class=\"top\">")
        .expect("the page has the frame");
    let end = start + body[start..].find("</header>").unwrap();
    &body[start..end]
}

/// An HTML attribute value as the browser reads it (askama escapes `/`, `'`, `&`...).
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

#[tokio::test]
async fn error_pages_show_the_signed_in_header_like_every_page() {
    let site = site(false).await;
    let alice = site.sign_in("alice").await;
    for (path, status) in [
        ("/nowhere", 404),
        ("/plugins/acme/nothing", 404),
        ("/search?min_rating=lots", 400),
        ("/admin", 403),
        ("/search?q=%1B%5B2J", 422),
        // The framework's own answers: a page that only takes posts, a form it cannot read.
        ("/account/tokens", 405),
    ] {
        let page = site.get(path, &alice).await;
        assert_eq!(page.status.as_u16(), status, "{path}: {}", page.body);
        assert!(
            page.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let top = frame(&page.body);
        assert!(
            top.contains("href=\"&#x2f;account\">alice</a>")
                || top.contains("href=\"/account\">alice</a>"),
            "{path}: {top}"
        );
        assert!(top.contains("Sign out"), "{path}: {top}");
        assert!(!top.contains("Sign in"), "{path}: {top}");
        assert!(page.body.contains(&format!("Error {status}")), "{path}");
        assert!(
            page.headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{path}"
        );
    }
    let not_allowed = site.get("/account/tokens", &alice).await;
    assert_eq!(not_allowed.headers[header::ALLOW], "POST");
    // A form post the server refuses (a forged CSRF token): signed in all the same.
    let forged = site.post("/logout", &alice, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(frame(&forged.body).contains("Sign out"));
    // A form the framework cannot read (no csrf field at all).
    let unreadable = site.post("/account/tokens", &alice, &[("name", "x")]).await;
    assert!(unreadable.status.is_client_error(), "{}", unreadable.status);
    assert!(
        frame(&unreadable.body).contains("Sign out"),
        "{}",
        unreadable.body
    );
    // Signed out, the same pages offer to sign in.
    let page = site.get("/nowhere", "").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let top = frame(&page.body);
    assert!(
        top.contains("Sign in") && !top.contains("Sign out"),
        "{top}"
    );
}

#[tokio::test]
async fn get_logout_offers_a_sign_out_button_instead_of_an_empty_answer() {
    let site = site(false).await;
    let signed_out = site.get("/logout", "").await;
    assert_eq!(signed_out.status, StatusCode::OK);
    assert!(signed_out.body.contains("You are signed out"));
    assert!(unescape(&signed_out.body).contains("<a href=\"/login\">Sign in</a>"));

    let alice = site.sign_in("alice").await;
    let page = site.get("/logout", &alice).await;
    assert_eq!(page.status, StatusCode::OK);
    let main = unescape(&page.body[page.body.find("<main").unwrap()..]);
    assert!(
        main.contains("signed in as <strong>alice</strong>"),
        "{main}"
    );
    assert!(
        main.contains("<form action=\"/logout\" method=\"post\""),
        "{main}"
    );
    let csrf = hidden(&main, "csrf");
    let account = site.get("/account", &alice).await;
    assert_eq!(
        csrf,
        hidden(&account.body, "csrf"),
        "the session's own token"
    );
    let done = site.post("/logout", &alice, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        site.get("/account", &alice).await.status,
        StatusCode::SEE_OTHER,
        "signed out: the account page sends to sign-in"
    );
}

#[tokio::test]
async fn contacts_are_links_only_when_they_are_http_urls_or_email_addresses() {
    let site = site(false).await;
    let long = "https://support.example.org/help-center/plugins/acme/helpdesk/a-very-long-path-without-any-spaces-at-all?topic=installation-and-configuration";
    site.publish(
        "helpdesk",
        "1.0.0",
        &format!("contact: {{ support: \"{long}\", security: security@example.org }}\n"),
    )
    .await;
    site.publish(
        "sneaky",
        "1.0.0",
        "contact: { support: \"javascript:alert(1)\", security: \"data:text/html,<b>x</b>\" }\n",
    )
    .await;
    let page = unescape(&site.get("/plugins/acme/helpdesk", "").await.body);
    assert!(
        page.contains(&format!(
            "<a href=\"{long}\" rel=\"nofollow noopener noreferrer\">{long}</a>"
        )),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"mailto:security@example.org\" rel=\"nofollow noopener noreferrer\">security@example.org</a>"),
        "{page}"
    );
    let page = site.get("/plugins/acme/sneaky", "").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = unescape(&page.body);
    assert!(!text.contains("href=\"javascript:"), "no javascript: link");
    assert!(!text.contains("href=\"data:text"), "no data: link");
    assert!(
        text.contains("<dd>javascript:alert(1)</dd>"),
        "shown as text"
    );
    assert!(!page.body.contains("<b>x</b>"), "escaped");
}

#[tokio::test]
async fn the_admin_page_tells_lifecycle_changes_in_words() {
    let site = site(false).await;
    site.set_state(
        "jira",
        "1.0.0",
        agora_core::Lifecycle::Deprecated,
        "moved to the cloud API",
        Some("acme/jira-cloud"),
    )
    .await;
    let admin = site.sign_in("admin").await;
    let page = site.get("/admin", &admin).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = unescape(&page.body);
    let start = body.find("id=\"life-h\"").unwrap();
    let section = &body[start..start + body[start..].find("</section>").unwrap()];
    assert!(
        section.contains("<span class=\"state state-deprecated\">deprecated</span>"),
        "{section}"
    );
    assert!(
        section.contains("reason:</span> moved to the cloud API"),
        "{section}"
    );
    assert!(
        section.contains("replaced by <a href=\"/plugins/acme/jira-cloud\">acme/jira-cloud</a>"),
        "{section}"
    );
    assert!(!section.contains("\"state\""), "no raw JSON: {section}");
    assert!(!section.contains('{'), "no raw JSON: {section}");
}

#[tokio::test]
async fn counts_read_in_the_singular_for_one() {
    let site = site(false).await;
    let jira = site.meta.plugin("acme", "jira").await.unwrap().unwrap();
    let v = site.meta.version(jira.id, "1.0.0").await.unwrap().unwrap();
    let download = agora_store::AnalyticsEvent::Download {
        at: agora_store::now_ms(),
        manifest_digest: v.manifest_digest.to_string(),
    };
    site.meta
        .record_events(agora_store::now_ms(), &[download])
        .await
        .unwrap();
    let alice = site.sign_in("alice").await;
    let page = site.get("/plugins/acme/jira", &alice).await;
    let csrf = hidden(&page.body, "csrf");
    let posted = site
        .post(
            "/plugins/acme/jira/review",
            &alice,
            &[
                ("csrf", &csrf),
                ("rating", "5"),
                ("version", "1.0.0"),
                ("body", "ok"),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);

    let home = site.get("/", "").await.body;
    assert!(home.contains("<p>1 plugin. Every release"), "{home}");
    let plugin = site.get("/plugins/acme/jira", "").await.body;
    let search = site.get("/search?q=tickets", "").await.body;
    let publisher = site.get("/publishers/acme", "").await.body;
    for (page, body) in [
        ("home", &home),
        ("plugin", &plugin),
        ("search", &search),
        ("publisher", &publisher),
    ] {
        assert!(body.contains("1 download"), "{page}");
        for wrong in ["1 downloads", "1 reviews", "1 versions", "1 plugins"] {
            assert!(!body.contains(wrong), "{page} says {wrong:?}");
        }
    }
    assert!(home.contains("(1 review)") && search.contains("(1 review)"));
    assert!(plugin.contains("from 1 review") && plugin.contains("5.0 out of 5 · 1 review"));
    assert!(
        plugin.contains("1 version</span>"),
        "version history counted"
    );
    assert!(publisher.contains("1 plugin · 1 download"), "{publisher}");
    assert!(search.contains("1 plugin for"), "results counted");
    let none = site.get("/search?q=nothing-matches-this", "").await.body;
    assert!(none.contains("0 plugins for"));
}

#[tokio::test]
async fn listings_mark_versions_not_to_use_and_members_still_see_yanked_only_plugins() {
    let site = site(false).await;
    // Deprecated is still the latest: listed, marked in words.
    site.set_state(
        "jira",
        "1.0.0",
        agora_core::Lifecycle::Deprecated,
        "use jira-cloud",
        None,
    )
    .await;
    let marker = "<span class=\"badge state-deprecated\" title=\"Version 1.0.0 is deprecated\">deprecated</span>";
    for path in ["/", "/search?q=tickets", "/publishers/acme"] {
        let body = site.get(path, "").await.body;
        assert!(body.contains(marker), "{path}: {body}");
    }
    // Yanked-only and insecure-only plugins: out of every listing for outsiders...
    site.publish("old", "0.1.0", "").await;
    site.set_state(
        "old",
        "0.1.0",
        agora_core::Lifecycle::Yanked,
        "broken",
        None,
    )
    .await;
    site.publish("leaky", "2.0.0", "").await;
    site.set_state(
        "leaky",
        "2.0.0",
        agora_core::Lifecycle::Insecure,
        "CVE-2099-0001",
        None,
    )
    .await;
    let alice = site.sign_in("alice").await;
    for cookie in ["", alice.as_str()] {
        for path in ["/", "/search", "/search?q=old", "/search?q=leaky"] {
            let body = site.get(path, cookie).await.body;
            assert!(
                !body.contains("/plugins/acme/old") && !body.contains("/plugins/acme/leaky"),
                "{path} ({cookie:?}) lists an unlisted plugin"
            );
        }
    }
    let outside = site.get("/publishers/acme", "").await.body;
    assert!(!outside.contains("/plugins/acme/old") && !outside.contains("/plugins/acme/leaky"));
    assert!(outside.contains("1 plugin ·"), "{outside}");
    // ...but the publisher's members still find them on its page, marked.
    let inside = site.get("/publishers/acme", &alice).await.body;
    let inside_text = unescape(&inside);
    assert!(
        inside_text.contains("href=\"/plugins/acme/old\""),
        "{inside}"
    );
    assert!(inside.contains(
        "<span class=\"badge state-yanked\" title=\"Version 0.1.0 is yanked\">yanked</span>"
    ));
    assert!(inside.contains(
        "<span class=\"badge state-insecure\" title=\"Version 2.0.0 is insecure\">insecure</span>"
    ));
    assert!(
        inside.contains("4 plugins ·"),
        "jira, secret-tool, old, leaky: {inside}"
    );
    // So does an administrator; a plugin whose versions were all removed is gone for all.
    site.set_state(
        "old",
        "0.1.0",
        agora_core::Lifecycle::Removed,
        "malware",
        None,
    )
    .await;
    let admin = site.sign_in("admin").await;
    let body = unescape(&site.get("/publishers/acme", &admin).await.body);
    assert!(
        body.contains("href=\"/plugins/acme/leaky\"")
            && !body.contains("href=\"/plugins/acme/old\"")
    );
}

/// Records a run of `acme/NAME@1.0.0` with `outcome` and one finding (text with markup).
async fn record_run(site: &Site, name: &str, outcome: agora_core::verification::Outcome) {
    use agora_core::verification::{Finding, Severity, StageReport, VerificationReport};
    let plugin = site.meta.plugin("acme", name).await.unwrap().unwrap();
    let v = site
        .meta
        .version(plugin.id, "1.0.0")
        .await
        .unwrap()
        .unwrap();
    let report = VerificationReport {
        release: format!("acme/{name}@1.0.0"),
        outcome,
        checked_at: "2026-01-01T00:00:00.000Z".into(),
        stages: vec![StageReport::of(
            "manifest",
            1,
            vec![Finding {
                severity: Severity::Medium,
                rule: "manifest.broad-host".into(),
                message: format!("reaches any host {XSS}"),
                location: Some("plugin.yaml".into()),
            }],
        )],
    };
    site.meta
        .record_verification(
            v.id,
            outcome.as_str(),
            &serde_json::to_string(&report).unwrap(),
            1,
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn admins_approve_or_reject_from_the_review_queue_and_search_shows_the_verdict() {
    use agora_core::verification::Outcome;
    let site = site(false).await;
    record_run(&site, "jira", Outcome::NeedsReview).await;
    let admin = site.sign_in("admin").await;

    let admin_page = site.get("/admin", &admin).await;
    assert!(admin_page.body.contains("href=\"/admin/reviews\""));
    let page = site.get("/admin/reviews", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("acme/jira@1.0.0"), "{}", page.body);
    assert!(page.body.contains("manifest.broad-host"));
    assert!(page.body.contains("medium 1"));
    assert!(!page.body.contains(XSS), "findings are escaped");
    assert!(
        page.body
            .contains("action=\"/admin/reviews/acme/jira/1.0.0\"")
    );

    // Search: not verified yet, so the filter finds nothing and no card says so.
    let search = site.get("/search?verified_release=true", &admin).await;
    assert_eq!(search.status, StatusCode::OK);
    assert!(
        !search.body.contains("/plugins/acme/jira\""),
        "{}",
        search.body
    );
    assert!(
        !site
            .get("/search", &admin)
            .await
            .body
            .contains("✓ verified release")
    );

    // No CSRF token: refused. Not an admin: refused.
    let csrf = hidden(&page.body, "csrf");
    let forged = site
        .post(
            "/admin/reviews/acme/jira/1.0.0",
            &admin,
            &[("csrf", "wrong"), ("outcome", "verified"), ("reason", "ok")],
        )
        .await;
    assert_ne!(forged.status, StatusCode::SEE_OTHER);
    let alice = site.sign_in("alice").await;
    assert_eq!(
        site.get("/admin/reviews", &alice).await.status,
        StatusCode::FORBIDDEN
    );
    let alice_csrf = hidden(&site.get("/account", &alice).await.body, "csrf");
    let refused = site
        .post(
            "/admin/reviews/acme/jira/1.0.0",
            &alice,
            &[
                ("csrf", &alice_csrf),
                ("outcome", "verified"),
                ("reason", "mine"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // A decision needs a reason.
    let no_reason = site
        .post(
            "/admin/reviews/acme/jira/1.0.0",
            &admin,
            &[("csrf", &csrf), ("outcome", "verified"), ("reason", " ")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Approved: out of the queue, in the verified tab, and search shows and finds it.
    let approved = site
        .post(
            "/admin/reviews/acme/jira/1.0.0",
            &admin,
            &[
                ("csrf", &csrf),
                ("outcome", "verified"),
                ("reason", "read the code"),
                ("back", "/admin/reviews?outcome=needs-review"),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert_eq!(
        approved.headers[header::LOCATION],
        "/admin/reviews?outcome=needs-review"
    );
    let page = site.get("/admin/reviews", &admin).await;
    assert!(!page.body.contains("acme/jira@1.0.0"), "{}", page.body);
    let verified = site.get("/admin/reviews?outcome=verified", &admin).await;
    assert!(verified.body.contains("acme/jira@1.0.0"));
    let search = site.get("/search?verified_release=true", "").await;
    assert!(
        search.body.contains("/plugins/acme/jira\""),
        "{}",
        search.body
    );
    assert!(search.body.contains("✓ verified release"));
    let all = site.get("/search", "").await;
    assert!(all.body.contains("Latest version verified"), "{}", all.body);
}

impl Site {
    /// A user who signs in with [`PASSWORD`].
    async fn user(&self, name: &str) -> agora_store::UserRecord {
        let user = self.meta.create_user(name, Role::User).await.unwrap();
        let hash = agora_registry::password::hash(PASSWORD.into())
            .await
            .unwrap();
        self.meta
            .set_password(user.id, Some(&hash), "test")
            .await
            .unwrap();
        user
    }

    /// The registry administrator, as a caller of the registry's use cases.
    async fn admin_caller(&self) -> agora_registry::Caller {
        let admin = self.meta.user_by_name("admin").await.unwrap().unwrap();
        agora_registry::Caller::for_session(admin, Vec::new(), Vec::new())
    }

    /// Tenant `ops` (its display name tries XSS), administered by alice, with the
    /// instance `edge-1`, which has not reported yet.
    async fn tenant_ops(&self) {
        use agora_registry::tenants;
        let admin = self.admin_caller().await;
        let request = agora_core::tenant::CreateTenant {
            name: "ops".into(),
            display_name: Some(format!("Ops {XSS}")),
            admin: Some("alice".into()),
        };
        tenants::create(&self.registry, &admin, &request)
            .await
            .unwrap();
        tenants::register_instance(&self.registry, &admin, "ops", "edge-1")
            .await
            .unwrap();
    }

    /// [`Site::tenant_ops`], with bob as its member and carol in no tenant.
    async fn tenant_ops_with_bob_and_carol(&self) {
        self.tenant_ops().await;
        let admin = self.admin_caller().await;
        self.user("bob").await;
        self.user("carol").await;
        agora_registry::tenants::set_member(
            &self.registry,
            &admin,
            "ops",
            "bob",
            Some(agora_core::tenant::TenantRole::Member),
        )
        .await
        .unwrap();
    }

    /// The version tenant `ops` approved of `acme/NAME`, if any.
    async fn approved(&self, name: &str) -> Option<String> {
        let admin = self.admin_caller().await;
        agora_registry::tenants::approvals(&self.registry, &admin, "ops")
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.plugin == format!("acme/{name}"))
            .map(|a| a.version)
    }

    /// Posts `form` as `cookie`, which must redirect to `to`; returns the page it leads to,
    /// with the notice the post left.
    async fn post_and_follow(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
        to: &str,
    ) -> Answer {
        let done = self.post(path, cookie, form).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{path}: {}", done.body);
        assert_eq!(done.headers[header::LOCATION], to);
        let notice = cookie_of(&done, "agora_notice");
        self.get(to, &format!("{cookie}; {notice}")).await
    }
}

#[tokio::test]
async fn tenant_admins_install_update_roll_back_and_remove_through_the_pages() {
    let site = site(false).await;
    site.publish("notes", "1.0.0", "").await;
    let alice = site.sign_in("alice").await;
    let page = site.get("/plugins/acme/notes", &alice).await;
    assert!(!page.body.contains("Install for"), "no tenant yet");
    site.tenant_ops().await;

    // The plugin's page offers the install for the version viewed; not for a private one.
    let page = site.get("/plugins/acme/notes", &alice).await;
    assert!(
        page.body
            .contains("href=\"/tenants/ops/install/acme/notes?version=1.0.0\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("Install for ops"));
    let private = site.get("/plugins/acme/secret-tool", &alice).await;
    assert!(!private.body.contains("Install for"));
    let missing = site
        .get("/tenants/ops/install/acme/secret-tool", &alice)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // jira reaches a host the new tenant's policy does not allow: refused, no button.
    let refused = site
        .get("/tenants/ops/install/acme/jira?version=1.0.0", &alice)
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(refused.body.contains("The policy of ops refuses it"));
    assert!(refused.body.contains("api.atlassian.com"));
    assert!(!refused.body.contains("Approve for ops"));

    // The confirmation: reach, the instance, the digest it posts back; names escaped.
    let preview = site
        .get("/tenants/ops/install/acme/notes?version=1.0.0", &alice)
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("no network access"));
    assert!(preview.body.contains("edge-1"));
    assert!(preview.body.contains("has not reported yet"));
    assert!(preview.body.contains("not verified yet"));
    assert!(preview.body.contains("Approve for ops"));
    assert!(!preview.body.contains(XSS), "the display name is escaped");
    let csrf = hidden(&preview.body, "csrf");
    let digest = hidden(&preview.body, "manifest_digest");
    let approve = "/tenants/ops/install/acme/notes";
    let forged = site
        .post(
            approve,
            &alice,
            &[
                ("csrf", "x"),
                ("version", "1.0.0"),
                ("manifest_digest", &digest),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let other = format!("sha256:{}", "0".repeat(64));
    let changed = site
        .post(
            approve,
            &alice,
            &[
                ("csrf", &csrf),
                ("version", "1.0.0"),
                ("manifest_digest", &other),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(changed.body.contains("manifest_digest"), "{}", changed.body);
    assert_eq!(site.approved("notes").await, None);

    // Approved: the tenant's page says so once, and lists the pin.
    let form = [
        ("csrf", csrf.as_str()),
        ("version", "1.0.0"),
        ("manifest_digest", digest.as_str()),
    ];
    let done = site.post(approve, &alice, &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.headers[header::LOCATION], "/tenants/ops");
    let notice = cookie_of(&done, "agora_notice");
    let tenant = site
        .get("/tenants/ops", &format!("{alice}; {notice}"))
        .await;
    assert!(
        tenant.body.contains("acme/notes 1.0.0 is approved for ops"),
        "{}",
        tenant.body
    );
    let cleared = tenant
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("agora_notice=;"));
    assert!(cleared, "the notice is removed once shown");
    assert!(tenant.body.contains(&format!("title=\"{digest}\"")));
    assert!(tenant.body.contains("Remove acme/notes"));
    assert!(!tenant.body.contains(XSS));
    assert_eq!(site.approved("notes").await.as_deref(), Some("1.0.0"));
    // Another session cannot read (nor plant) it.
    let admin = site.sign_in("admin").await;
    let theirs = site
        .get("/tenants/ops", &format!("{admin}; {notice}"))
        .await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(!theirs.body.contains("is approved for ops"));

    // A newer version: the plugin's page offers the update and says what runs.
    let changelog = format!("# Changes\n\n## 1.1.0\n\n- **Faster** {XSS}\n");
    site.publish_with_changelog(
        "notes",
        "1.1.0",
        "capabilities: [filesystem_temp]\n",
        Some(&changelog),
    )
    .await;
    let page = site.get("/plugins/acme/notes", &alice).await;
    assert!(page.body.contains("Update ops to 1.1.0"), "{}", page.body);
    assert!(page.body.contains("ops runs 1.0.0"));
    let page = site.get("/plugins/acme/notes?version=1.0.0", &alice).await;
    assert!(page.body.contains("✓ ops runs 1.0.0"));
    assert!(!page.body.contains("/tenants/ops/install/acme/notes"));

    // Updates: the changelog rendered and sanitised, what 1.1.0 asks for beyond 1.0.0.
    let updates = site.get("/tenants/ops/updates", &alice).await;
    assert_eq!(updates.status, StatusCode::OK, "{}", updates.body);
    assert!(
        updates.body.contains("<strong>Faster</strong>"),
        "{}",
        updates.body
    );
    assert!(!updates.body.contains(XSS));
    assert!(
        updates
            .body
            .contains("Asks for more: capabilities filesystem_temp")
    );
    assert!(!updates.body.contains("Roll back to"));
    let csrf = hidden(&updates.body, "csrf");
    let back = "/tenants/ops/updates";
    let apply = "/tenants/ops/updates/apply";
    let page = site
        .post_and_follow(
            apply,
            &alice,
            &[("csrf", &csrf), ("plugin", "acme/notes")],
            back,
        )
        .await;
    assert!(
        page.body.contains("Moved acme/notes from 1.0.0 to 1.1.0."),
        "{}",
        page.body
    );
    assert_eq!(site.approved("notes").await.as_deref(), Some("1.1.0"));
    assert!(page.body.contains("Roll back to 1.0.0"));
    let rollback = "/tenants/ops/plugins/acme/notes/rollback";
    let page = site
        .post_and_follow(rollback, &alice, &[("csrf", &csrf)], back)
        .await;
    assert!(
        page.body.contains("Rolled acme/notes back to 1.0.0"),
        "{}",
        page.body
    );
    assert_eq!(site.approved("notes").await.as_deref(), Some("1.0.0"));
    let page = site
        .post_and_follow(apply, &alice, &[("csrf", &csrf)], back)
        .await;
    assert!(page.body.contains("to 1.1.0."), "{}", page.body);
    let page = site
        .post_and_follow(apply, &alice, &[("csrf", &csrf)], back)
        .await;
    assert!(
        page.body
            .contains("Nothing to apply: every approved plugin is on its newest version."),
        "{}",
        page.body
    );

    // The fleet and the list of tenants.
    let fleet = site.get("/tenants/ops/fleet", &alice).await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.body);
    assert!(fleet.body.contains("edge-1") && fleet.body.contains("never reported"));
    let list = site.get("/tenants", &alice).await;
    assert!(list.body.contains("href=\"/tenants/ops\""));
    assert!(!list.body.contains(XSS));
    assert!(
        site.get("/account", &alice)
            .await
            .body
            .contains("href=\"/tenants\"")
    );

    // Remove.
    let page = site
        .post_and_follow(
            "/tenants/ops/plugins/acme/notes/remove",
            &alice,
            &[("csrf", &csrf)],
            "/tenants/ops",
        )
        .await;
    assert!(
        page.body
            .contains("acme/notes is no longer approved for ops")
    );
    assert_eq!(site.approved("notes").await, None);
}

#[tokio::test]
async fn tenant_pages_are_for_members_and_their_buttons_for_administrators() {
    let site = site(false).await;
    site.publish("notes", "1.0.0", "").await;
    site.tenant_ops_with_bob_and_carol().await;
    let alice = site.sign_in("alice").await;
    let preview = site
        .get("/tenants/ops/install/acme/notes?version=1.0.0", &alice)
        .await;
    let form = [
        ("csrf", hidden(&preview.body, "csrf")),
        ("version", "1.0.0".to_owned()),
        ("manifest_digest", hidden(&preview.body, "manifest_digest")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = site
        .post("/tenants/ops/install/acme/notes", &alice, &form)
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

    // Signed out: to the sign-in page, and back.
    let out = site.get("/tenants/ops/updates", "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        out.headers[header::LOCATION],
        "/login?next=%2Ftenants%2Fops%2Fupdates"
    );

    // Not a member: the tenant does not exist, whatever the page or form.
    let carol = site.sign_in("carol").await;
    let csrf = hidden(&site.get("/account", &carol).await.body, "csrf");
    for path in [
        "/tenants/ops",
        "/tenants/ops/updates",
        "/tenants/ops/fleet",
        "/tenants/ops/install/acme/notes",
    ] {
        let page = site.get(path, &carol).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("no tenant named ops"), "{path}");
    }
    let post = site
        .post("/tenants/ops/updates/apply", &carol, &[("csrf", &csrf)])
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    assert!(
        !site
            .get("/tenants", &carol)
            .await
            .body
            .contains("/tenants/ops")
    );

    // A member sees the set, the updates and the fleet, without the buttons.
    let bob = site.sign_in("bob").await;
    let page = site.get("/tenants/ops", &bob).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("acme/notes"));
    assert!(!page.body.contains("Remove acme/notes"));
    let updates = site.get("/tenants/ops/updates", &bob).await;
    assert_eq!(updates.status, StatusCode::OK);
    assert!(
        !updates
            .body
            .contains("action=\"/tenants/ops/updates/apply\"")
    );
    assert!(
        !site
            .get("/plugins/acme/notes", &bob)
            .await
            .body
            .contains("Install for")
    );
    let csrf = hidden(&site.get("/account", &bob).await.body, "csrf");
    for path in [
        "/tenants/ops/updates/apply",
        "/tenants/ops/plugins/acme/notes/remove",
    ] {
        let post = site.post(path, &bob, &[("csrf", &csrf)]).await;
        assert_eq!(post.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            post.body.contains("not one of its administrators"),
            "{path}"
        );
    }
    let preview = site.get("/tenants/ops/install/acme/notes", &bob).await;
    assert_eq!(preview.status, StatusCode::FORBIDDEN);
    assert_eq!(site.approved("notes").await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn publishers_offer_a_private_plugin_to_a_tenant_whose_members_alone_then_see_it() {
    let site = site(false).await;
    site.tenant_ops_with_bob_and_carol().await;
    let alice = site.sign_in("alice").await;
    let bob = site.sign_in("bob").await;
    let carol = site.sign_in("carol").await;
    let plugin = "/plugins/acme/secret-tool";

    // Not offered yet: the publisher sees the section; ops's member sees nothing.
    let page = site.get(plugin, &alice).await;
    assert!(page.body.contains("Offered to tenants"), "{}", page.body);
    assert!(page.body.contains("Offered to no tenant"));
    assert!(!page.body.contains("Install for"));
    assert_eq!(site.get(plugin, &bob).await.status, StatusCode::NOT_FOUND);

    let csrf = hidden(&page.body, "csrf");
    let grant = format!("{plugin}/entitlements");
    let forged = site
        .post(&grant, &alice, &[("csrf", "x"), ("tenant", "ops")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let unknown = site
        .post(&grant, &alice, &[("csrf", &csrf), ("tenant", "nope")])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let done = site
        .post(&grant, &alice, &[("csrf", &csrf), ("tenant", "ops")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.headers[header::LOCATION],
        format!("{plugin}#entitlements")
    );
    let notice = cookie_of(&done, "agora_notice");
    let page = site.get(plugin, &format!("{alice}; {notice}")).await;
    assert!(
        page.body
            .contains("acme/secret-tool is offered to tenant ops"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Install for ops"), "ops's administrator");
    assert!(page.body.contains("Withdraw"));

    // ops's member sees it, in search and on the tenant's page; an outsider does not.
    let seen = site.get(plugin, &bob).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(!seen.body.contains("Offered to tenants"), "not an insider");
    assert!(!seen.body.contains("Install for"), "not an administrator");
    let search = site.get("/search?q=secret", &bob).await;
    assert!(search.body.contains("/plugins/acme/secret-tool\""));
    let tenant = site.get("/tenants/ops", &bob).await;
    assert!(tenant.body.contains("Private plugins offered to ops"));
    assert!(tenant.body.contains("acme/secret-tool"));
    assert_eq!(site.get(plugin, &carol).await.status, StatusCode::NOT_FOUND);
    let search = site.get("/search?q=secret", &carol).await;
    assert!(!search.body.contains("/plugins/acme/secret-tool\""));
    // Only the publisher grants.
    let bob_csrf = hidden(&seen.body, "csrf");
    let refused = site
        .post(&grant, &bob, &[("csrf", &bob_csrf), ("tenant", "ops")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    // Withdrawn: ops sees it no more.
    let done = site
        .post(
            &format!("{plugin}/entitlements/ops/revoke"),
            &alice,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(site.get(plugin, &bob).await.status, StatusCode::NOT_FOUND);
    let page = site.get(plugin, &alice).await;
    assert!(page.body.contains("Offered to no tenant"));
}

/// Feeds the analytics store as the intake and an instance's report would: 7 downloads of
/// acme/notes 1.0.0 and 3 of 1.1.0, six searches (two finding nothing), and edge-1 of
/// tenant `ops` running notes 1.1.0 and jira 1.0.0 with 200 calls of notes, 5 failed.
async fn analytics_data(site: &Site) -> i64 {
    use agora_store::{AnalyticsEvent, InstalledRecord, InstanceAnalytics, RunsRecord};
    site.publish("notes", "1.0.0", "").await;
    site.publish("notes", "1.1.0", "").await;
    site.tenant_ops_with_bob_and_carol().await;
    let now = agora_store::now_ms();
    let notes = site.meta.plugin("acme", "notes").await.unwrap().unwrap();
    let mut events = Vec::new();
    for (version, n) in [("1.0.0", 7), ("1.1.0", 3)] {
        let v = site.meta.version(notes.id, version).await.unwrap().unwrap();
        for _ in 0..n {
            events.push(AnalyticsEvent::Download {
                at: now,
                manifest_digest: v.manifest_digest.to_string(),
            });
        }
    }
    for (query, results, n) in [("notes", 1, 4), ("kubernetes", 0, 2)] {
        for _ in 0..n {
            events.push(AnalyticsEvent::Search {
                at: now,
                query: query.into(),
                results,
            });
        }
    }
    site.meta.record_events(now, &events).await.unwrap();
    let tenant = site.meta.tenant("ops").await.unwrap().unwrap();
    let instance = site.meta.instances(tenant.id).await.unwrap().remove(0);
    let installed = |name: &str, version: &str| InstalledRecord {
        publisher: "acme".into(),
        name: name.into(),
        version: version.into(),
    };
    let mut durations = vec![0u64; agora_core::analytics::DURATION_SLOTS];
    durations[3] = 150;
    durations[6] = 50;
    site.meta
        .record_instance_analytics(&InstanceAnalytics {
            instance_id: instance.id,
            tenant_id: tenant.id,
            at: now,
            installed: vec![installed("notes", "1.1.0"), installed("jira", "1.0.0")],
            batch: Some(1),
            runs: vec![RunsRecord {
                publisher: "acme".into(),
                name: "notes".into(),
                version: "1.1.0".into(),
                digest: None,
                at: now,
                calls: 200,
                failures: 5,
                total_ms: 4_000,
                durations,
                errors: vec![("timeout".into(), 5, Some(format!("timed out {XSS}")))],
            }],
        })
        .await
        .unwrap();
    now
}

#[tokio::test]
async fn analytics_pages_chart_what_was_counted_for_those_allowed() {
    let site = site(false).await;
    let now = analytics_data(&site).await;
    let today = humantime_day(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now as u64));

    // The registry's page: charts with the numbers fed, and every table's numbers.
    let admin = site.sign_in("admin").await;
    assert!(
        site.get("/admin", &admin)
            .await
            .body
            .contains("href=\"/admin/analytics\"")
    );
    let page = site.get("/admin/analytics", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<svg role=\"img\""), "{body}");
    assert!(
        body.contains(&format!("<title>Downloads, {today}: 10</title>")),
        "a dot says the day's downloads: {body}"
    );
    assert!(body.contains("<dt>Downloads</dt><dd>10</dd>"), "{body}");
    assert!(body.contains("<dt>Installs</dt><dd>2</dd>"), "{body}");
    assert!(body.contains("<dt>Calls</dt><dd>200</dd>"), "{body}");
    assert!(body.contains("<dt>Searches</dt><dd>6</dd>"), "{body}");
    assert!(
        body.contains("<dt>Success rate</dt><dd>97.5%</dd>"),
        "{body}"
    );
    assert!(body.contains(&format!("<td>{today}</td><td>10</td><td>2</td><td>0</td>")));
    // Top searches and those that found nothing, linked to the search.
    assert!(
        body.contains("<title>kubernetes: 2 searches</title>"),
        "{body}"
    );
    assert!(body.contains("<a href=\"/search?q=kubernetes\">kubernetes</a>"));
    // Versions: success rate, percentiles; errors with their sample escaped.
    assert!(
        body.contains("<title>acme/notes@1.1.0: 97.5%</title>"),
        "{body}"
    );
    assert!(body.contains("≤ 10 ms") && body.contains("≤ 100 ms"));
    assert!(body.contains("<td>timeout</td><td>5</td>"), "{body}");
    assert!(body.contains("timed out &#60;script&#62;"), "{body}");
    assert!(!body.contains(XSS));
    assert!(
        body.contains("<title>acme/jira + acme/notes: 1 instances</title>"),
        "{body}"
    );
    // The period selector and CSV links.
    assert!(body.contains("<option value=\"30\" selected>"));
    assert!(body.contains("href=\"/admin/analytics.csv?table=zero_searches&amp;days=30\""));
    let week = site.get("/admin/analytics?days=7", &admin).await;
    assert!(week.body.contains("<option value=\"7\" selected>"));
    assert_eq!(
        site.get("/admin/analytics?days=lots", &admin).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        site.get("/admin/analytics?days=999", &admin).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // CSV: the report's table as a file.
    let csv = site
        .get("/admin/analytics.csv?table=versions&days=7", &admin)
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"agora-registry-versions-7d.csv\""
    );
    assert!(
        csv.body.starts_with(
            "plugin,version,published_at,downloads,installs,removals,active_instances,calls,failures,success_rate,p50_ms,p90_ms,p99_ms\r\n"
        ),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("acme/notes,1.0.0,"));
    let daily = site.get("/admin/analytics.csv", &admin).await;
    assert!(daily.body.starts_with("day,plugin,version,downloads"));
    assert!(
        daily
            .body
            .contains(&format!("{today},*,*,10,2,0,200,5,6\r\n")),
        "{}",
        daily.body
    );
    assert_eq!(
        site.get("/admin/analytics.csv?table=users", &admin)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // The publisher's and the plugin's pages, for its member; per plugin and per version.
    let alice = site.sign_in("alice").await;
    assert!(
        site.get("/publishers/acme", &alice)
            .await
            .body
            .contains("href=\"/publishers/acme/analytics\"")
    );
    let page = site.get("/publishers/acme/analytics", &alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<svg role=\"img\""));
    assert!(
        page.body
            .contains(&format!("<title>acme/notes, {today}: 11</title>")),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Top searches"));
    let page = site.get("/plugins/acme/notes/analytics", &alice).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<title>1.0.0, {today}: 7</title>")),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("<title>1.1.0, {today}: 4</title>"))
    );
    // Adoption: the one instance that installed 1.1.0 today runs it at the end of today.
    let at = page
        .body
        .find("Instances running each version")
        .unwrap_or(0);
    let running = &page.body[at..];
    assert!(
        running.contains(&format!("<title>1.1.0, {today}: 1</title>")),
        "{running}"
    );
    let csv = site
        .get("/plugins/acme/notes/analytics.csv?table=errors", &alice)
        .await;
    assert!(csv.body.starts_with("plugin,class,count,first_seen"));
    assert!(csv.body.contains("acme/notes,timeout,5,"), "{}", csv.body);
    assert!(
        site.get("/plugins/acme/notes", &alice)
            .await
            .body
            .contains("href=\"/plugins/acme/notes/analytics\"")
    );

    // Anyone else: refused (signed out: to the sign-in page first).
    let carol = site.sign_in("carol").await;
    for path in [
        "/admin/analytics",
        "/publishers/acme/analytics",
        "/plugins/acme/notes/analytics",
        "/publishers/acme/analytics.csv?table=daily",
    ] {
        assert_eq!(
            site.get(path, &carol).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert!(
        !site
            .get("/publishers/acme", &carol)
            .await
            .body
            .contains("/publishers/acme/analytics")
    );
    assert!(
        !site
            .get("/plugins/acme/notes", &carol)
            .await
            .body
            .contains("/plugins/acme/notes/analytics")
    );
    let out = site.get("/publishers/acme/analytics", "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        out.headers[header::LOCATION],
        "/login?next=%2Fpublishers%2Facme%2Fanalytics%3Fdays%3D30"
    );

    // The tenant's page, for its members, with its tabs; not for anyone else.
    let bob = site.sign_in("bob").await;
    let page = site.get("/tenants/ops/analytics", &bob).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("<strong aria-current=\"page\">Analytics</strong>")
    );
    assert!(
        page.body.contains("<dt>Installs</dt><dd>2</dd>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("<title>acme/notes, {today}: 1</title>")),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<dt>Downloads</dt>"));
    assert!(
        site.get("/tenants/ops/fleet", &bob)
            .await
            .body
            .contains("href=\"/tenants/ops/analytics\"")
    );
    assert_eq!(
        site.get("/tenants/ops/analytics", &carol).await.status,
        StatusCode::NOT_FOUND
    );
    let csv = site
        .get("/tenants/ops/analytics.csv?table=together", &bob)
        .await;
    assert_eq!(
        csv.body,
        "first,second,instances\r\nacme/jira,acme/notes,1\r\n"
    );
}

/// `2026-12-05` for a time (UTC).
fn humantime_day(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[tokio::test]
async fn the_plugin_page_tells_its_record_from_real_runs() {
    let site = site(false).await;
    analytics_data(&site).await;
    let page = site.get("/plugins/acme/notes", "").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("From real runs"), "{body}");
    assert!(
        body.contains("<dt>Instances running it</dt><dd>1</dd>"),
        "{body}"
    );
    assert!(body.contains("<dt>Installs in 30 days</dt><dd>1</dd>"));
    assert!(body.contains("<dt>Success rate</dt><dd>97.5% of 200 calls</dd>"));
    assert!(body.contains("<dt>Issues</dt><dd>25 per 1,000 calls</dd>"));
    assert!(body.contains("not checked yet"));
    assert!(
        !body.contains("/plugins/acme/notes/analytics"),
        "not for visitors"
    );
    // Runs not reported yet; checked by the verification pipeline.
    record_run(&site, "jira", agora_core::verification::Outcome::Verified).await;
    let page = site.get("/plugins/acme/jira", "").await;
    assert!(
        page.body
            .contains("<dt>Instances running it</dt><dd>1</dd>")
    );
    assert!(page.body.contains("no runs reported yet"), "{}", page.body);
    // (`record_run` records its run at 1 ms past the epoch.)
    assert!(
        page.body
            .contains("<dt>Last checked</dt><dd>1970-01-01</dd>"),
        "{}",
        page.body
    );
}
