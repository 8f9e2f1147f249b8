//! Secrets are never logged: a full run of the real binary on PostgreSQL and S3, with the
//! log at `debug`, that uses every kind of secret the server sees (the database URL's
//! password, the S3 secret key, the administrator's token and password, passwords that
//! are set, right and wrong, new tokens, made-up tokens, a webhook's signing secret, an
//! instance's token, a browser session cookie), then greps every line the server wrote
//! for each of them.
//!
//! One test in this file: it sets the PostgreSQL URL for the process (with a password,
//! which trust authentication ignores).

mod support;

use support::*;

fn secret(what: &str) -> String {
    let mut buf = [0u8; 12];
    getrandom::fill(&mut buf).unwrap();
    format!("{what}-{}", hex::encode(buf))
}

/// Signs in on the web form; returns the status and the session cookie if one was set.
fn sign_in(server: &Server, user: &str, password: &str) -> (u16, Option<String>) {
    let fields = format!(
        "username={}&password={}",
        form_value(user),
        form_value(password)
    );
    let (status, headers, _) = sign_in_on_form(&server.url, None, None, &fields);
    let session = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| k.ends_with("agora_session"))
        .map(|(_, v)| v.to_owned());
    (status, session)
}

#[test]
fn no_secret_the_server_sees_reaches_its_log() {
    let db_password = secret("dbpass");
    let base = postgres_url();
    let with_password = base.replacen("postgres@", &format!("postgres:{db_password}@"), 1);
    assert_ne!(
        with_password, base,
        "the test's PostgreSQL URL names the postgres user"
    );
    // SAFETY: this file holds one test, so no other thread reads the environment.
    unsafe { std::env::set_var("AGORA_TEST_POSTGRES_URL", &with_password) };

    let s3_secret = secret("s3secret");
    let admin_password = secret("adminpass");
    let mut env: Vec<(String, String)> = s3_storage_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_SECRET_ACCESS_KEY" {
                (k, s3_secret.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    env.push(("AGORA_ADMIN_PASSWORD".into(), admin_password.clone()));
    env.push(("AGORA_LOG__LEVEL".into(), "debug".into()));
    // The webhook below points at this machine (nothing listens there: its deliveries
    // fail and are logged, which is the point).
    env.push(("AGORA_WEBHOOKS__ALLOW_PRIVATE".into(), "true".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(Backend::Postgres, &env);
    let admin = server.admin_token.clone();
    let mut secrets = vec![
        ("the database password", db_password),
        ("the S3 secret key", s3_secret),
        ("the admin password", admin_password.clone()),
        ("the admin token", admin.clone()),
    ];

    // Users, passwords (right and wrong) and browser sessions.
    api(
        &server,
        &admin,
        "POST",
        "/api/v1/users",
        Some(serde_json::json!({"username": "carol", "role": "publisher"})),
        201,
    );
    let carol_password = secret("carolpass");
    api(
        &server,
        &admin,
        "PUT",
        "/api/v1/users/carol/password",
        Some(serde_json::json!({"password": carol_password})),
        204,
    );
    let wrong = secret("wrongpass");
    assert_eq!(sign_in(&server, "carol", &wrong).0, 401);
    assert_eq!(sign_in(&server, "nobody-at-all", &wrong).0, 401);
    let (status, session) = sign_in(&server, "carol", &carol_password);
    assert_eq!(status, 303);
    let session = session.expect("a session cookie");
    let (status, _, _) = http_with(
        "GET",
        &format!("{}/account", server.url),
        None,
        &[("cookie", &format!("agora_session={session}"))],
        None,
    );
    assert_eq!(status, 200);
    let (admin_status, admin_session) = sign_in(&server, "admin", &admin_password);
    assert_eq!(admin_status, 303);
    secrets.extend([
        ("carol's password", carol_password),
        ("a wrong password", wrong),
        ("carol's session", session),
        ("the admin's session", admin_session.unwrap()),
    ]);

    // Tokens: created, used, made up.
    let created = api(
        &server,
        &admin,
        "POST",
        "/api/v1/tokens",
        Some(serde_json::json!({"name": "ci", "scopes": "publish:*", "for_user": "carol"})),
        201,
    );
    let carol_token = created["token"].as_str().unwrap().to_owned();
    api(&server, &carol_token, "GET", "/api/v1/me", None, 200);
    let made_up = format!("agora_{}", secret("madeup"));
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/me", server.url),
        Some(&made_up),
        None,
    );
    assert_eq!(status, 401);
    secrets.extend([("carol's token", carol_token), ("a made-up token", made_up)]);

    // A publish with it, a webhook's secret, a tenant instance's token and its report.
    let (alice, work) = examples_publisher(&server);
    let dir = plugin_dir(
        work.path(),
        "examples",
        "quiet",
        "1.0.0",
        "",
        b"quiet bytes",
    );
    alice.run(&["publish", dir.to_str().unwrap()]).ok();
    let hook = api(
        &server,
        &admin,
        "POST",
        "/api/v1/webhooks",
        Some(
            serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": ["release.published"]}),
        ),
        201,
    );
    secrets.push((
        "a webhook secret",
        hook["secret"].as_str().unwrap().to_owned(),
    ));
    api(
        &server,
        &admin,
        "POST",
        "/api/v1/tenants",
        Some(serde_json::json!({"name": "acme-corp"})),
        201,
    );
    let instance = api(
        &server,
        &admin,
        "POST",
        "/api/v1/tenants/acme-corp/instances",
        Some(serde_json::json!({"name": "edge-1"})),
        201,
    );
    let instance_token = instance["token"].as_str().unwrap().to_owned();
    api(
        &server,
        &instance_token,
        "GET",
        "/api/v1/instance/desired",
        None,
        200,
    );
    secrets.push(("an instance token", instance_token));

    // Let background work (verification, webhook attempts) log what it logs.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let log = server.log();
    let lines = log.lines().count();
    assert!(lines > 20, "the debug log is short ({lines} lines): {log}");
    // The log did see what happened (the grep below reads the lines that matter).
    for seen in ["failed sign-in", "carol"] {
        assert!(log.contains(seen), "the log never mentions {seen:?}");
    }
    for (what, value) in &secrets {
        assert!(value.len() >= 16, "{what} is too short to grep for");
        for (n, line) in log.lines().enumerate() {
            assert!(
                !line.contains(value.as_str()),
                "{what} is in log line {}: {line}",
                n + 1
            );
        }
    }
}
