//! The registry end to end, through the real binary and its CLI, on SQLite and on
//! PostgreSQL: accounts, publishing, search, details, install with digest checks,
//! immutability, yanking and private plugins.

mod support;

fn agora_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

use support::*;

fn registry_scenario(backend: Backend) {
    let server = Server::start(backend);
    let admin = server.admin();
    let anon = server.cli(None);
    let work = tempfile::tempdir().unwrap();

    // Accounts: alice publishes, mallory is an outsider with a valid token.
    admin
        .run(&["user", "create", "alice", "--role", "publisher"])
        .ok();
    admin.run(&["user", "create", "mallory"]).ok();
    let token_of = |user: &str, scopes: &[&str]| admin.token_for(user, scopes);
    let mut alice = server.cli(Some(&token_of("alice", &["publish:*", "read:private"])));
    let mallory = server.cli(Some(&token_of("mallory", &["read:private"])));
    alice.run(&["publisher", "create", "examples"]).ok();
    alice.sign_for("examples");
    let me = alice.run(&["--json", "whoami"]).json();
    assert_eq!(me["publishers"], serde_json::json!(["examples"]));

    // Publish the two example plugins: one from its directory, one through a bundle.
    let echo = example_plugin("echo-native", work.path());
    let hello = example_plugin("hello-wasm", work.path());
    let published = alice
        .run(&["--json", "publish", echo.to_str().unwrap()])
        .json();
    assert_eq!(published["version"], "1.0.0");
    alice
        .run_in(
            work.path(),
            &["pack", hello.to_str().unwrap(), "--out", "hello.agora"],
        )
        .ok();
    alice.run_in(work.path(), &["publish", "hello.agora"]).ok();

    // Search with a text query and filters.
    let found = anon
        .run(&[
            "--json",
            "search",
            "echo",
            "--runtime",
            "exec",
            "--category",
            "testing",
        ])
        .json();
    assert_eq!(names(&found), ["echo-native"]);
    let found = anon
        .run(&["--json", "search", "--tag", "wasm", "--provider", "agora"])
        .json();
    assert_eq!(names(&found), ["hello-wasm"]);
    let found = anon
        .run(&["--json", "search", "example", "--sort", "name"])
        .json();
    assert_eq!(names(&found), ["echo-native", "hello-wasm"]);
    assert!(
        names(
            &anon
                .run(&["--json", "search", "example", "--runtime", "oci"])
                .json()
        )
        .is_empty()
    );

    // Details.
    let info = anon.run(&["--json", "info", "examples/hello-wasm"]).json();
    assert_eq!(info["latest_version"], "1.0.0");
    assert_eq!(
        info["latest"]["manifest"]["entrypoints"]["greet"]["path"],
        "/greet"
    );
    let detail = anon
        .run(&["--json", "info", "examples/hello-wasm@1.0.0"])
        .json();
    let module = detail["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "module")
        .unwrap()
        .clone();
    assert_eq!(
        module["digest"].as_str().unwrap(),
        sha256_file(&hello.join("plugin.wasm"))
    );
    assert!(
        anon.run(&["info", "examples/hello-wasm"])
            .ok()
            .contains("agora install examples/hello-wasm")
    );

    // Install: every byte checked, the lockfile pins every digest.
    anon.run_in(
        work.path(),
        &["install", "examples/hello-wasm", "--dir", "plugins"],
    )
    .ok();
    let installed = work.path().join("plugins/examples/hello-wasm");
    assert_eq!(
        sha256_file(&installed.join("plugin.wasm")),
        module["digest"].as_str().unwrap()
    );
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("plugins/agora.lock")).unwrap())
            .unwrap();
    assert_eq!(lock["plugins"][0]["name"], "examples/hello-wasm");
    assert_eq!(
        lock["plugins"][0]["manifest_digest"],
        detail["manifest_digest"]
    );
    let listed = anon
        .run_in(work.path(), &["--json", "list", "--dir", "plugins"])
        .json();
    assert_eq!(listed[0]["version"], "1.0.0");
    anon.run_in(
        work.path(),
        &["install", "examples/echo-native", "--dir", "plugins"],
    )
    .ok();
    let binary = work
        .path()
        .join("plugins/examples/echo-native/bin/echo-native");
    assert_eq!(
        sha256_file(&binary),
        sha256_file(&echo.join("bin/echo-native"))
    );
    eventually("installs to be counted as downloads", || {
        let info = anon.run(&["--json", "info", "examples/hello-wasm"]).json();
        (info["downloads"].as_u64().unwrap() >= 1).then_some(())
    });

    // A published version never changes.
    std::fs::write(echo.join("README.md"), "# changed").unwrap();
    let err = alice.run(&["publish", echo.to_str().unwrap()]).fails();
    assert!(
        err.contains("already published") && err.contains("409"),
        "{err}"
    );
    let again = anon
        .run(&["--json", "info", "examples/echo-native@1.0.0"])
        .json();
    assert_eq!(again["manifest_digest"], published["manifest_digest"]);

    // Yank hides a version from resolution; an exact pin still installs it.
    let v1 = plugin_dir(
        work.path(),
        "examples",
        "widget",
        "1.0.0",
        "",
        b"widget one",
    );
    let v2 = plugin_dir(
        work.path(),
        "examples",
        "widget",
        "1.1.0",
        "",
        b"widget two",
    );
    alice.run(&["publish", v1.to_str().unwrap()]).ok();
    alice.run(&["publish", v2.to_str().unwrap()]).ok();
    let err = mallory.run(&["yank", "examples/widget@1.1.0"]).fails();
    assert!(err.contains("not a member"), "{err}");
    let before = anon
        .run(&["--json", "info", "examples/widget@1.1.0"])
        .json();
    assert_eq!(before["state"], "active");
    alice
        .run(&["yank", "examples/widget@1.1.0", "--reason", "broken"])
        .ok();
    let after = anon
        .run(&["--json", "info", "examples/widget@1.1.0"])
        .json();
    assert_eq!(
        after["state"], "yanked",
        "a cached version detail must not hide a yank"
    );
    let got = anon
        .run_in(
            work.path(),
            &["--json", "install", "examples/widget", "--dir", "plugins"],
        )
        .json();
    assert_eq!(got["version"], "1.0.0");
    let err = anon
        .run_in(
            work.path(),
            &["install", "examples/widget@^1.1", "--dir", "plugins"],
        )
        .fails();
    assert!(
        err.contains("no version of examples/widget matches ^1.1") && err.contains("=VERSION"),
        "{err}"
    );
    let got = anon
        .run_in(
            work.path(),
            &[
                "--json",
                "install",
                "examples/widget@=1.1.0",
                "--dir",
                "plugins",
            ],
        )
        .json();
    assert_eq!(got["version"], "1.1.0");
    assert_eq!(
        anon.run(&["--json", "search", "widget"]).json()["items"][0]["latest_version"],
        "1.0.0"
    );
    alice.run(&["unyank", "examples/widget@1.1.0"]).ok();
    assert_eq!(
        anon.run(&["--json", "search", "widget"]).json()["items"][0]["latest_version"],
        "1.1.0"
    );
    let versions = anon.run(&["--json", "versions", "examples/widget"]).json();
    assert_eq!(versions["versions"][0]["version"], "1.1.0");

    // A private plugin does not exist for outsiders, anywhere.
    let secret = plugin_dir(
        work.path(),
        "examples",
        "secret-tool",
        "1.0.0",
        "visibility: private\ntags: [hidden]\n",
        b"top secret",
    );
    alice.run(&["publish", secret.to_str().unwrap()]).ok();
    let digest = sha256_file(&secret.join("plugin.wasm"));
    for (who, cli) in [("anonymous", &anon), ("mallory", &mallory)] {
        assert!(
            names(&cli.run(&["--json", "search", "secret"]).json()).is_empty(),
            "{who} searched"
        );
        assert!(
            names(&cli.run(&["--json", "search", "--tag", "hidden"]).json()).is_empty(),
            "{who} filtered"
        );
        for args in [
            &["info", "examples/secret-tool"][..],
            &["info", "examples/secret-tool@1.0.0"],
            &["versions", "examples/secret-tool"],
        ] {
            let err = cli.run(args).fails();
            assert!(
                err.contains("not found") && err.contains("404"),
                "{who} {args:?}: {err}"
            );
        }
        let err = cli
            .run_in(
                work.path(),
                &["install", "examples/secret-tool", "--dir", "outsider"],
            )
            .fails();
        assert!(err.contains("404"), "{who}: {err}");
        let (status, _, _) = http(
            "GET",
            &format!("{}/api/v1/blobs/{digest}", server.url),
            cli.token.as_deref(),
            None,
        );
        assert_eq!(status, 404, "{who} downloaded a private blob");
    }
    assert_eq!(
        names(&alice.run(&["--json", "search", "secret"]).json()),
        ["secret-tool"]
    );
    alice
        .run_in(
            work.path(),
            &["install", "examples/secret-tool", "--dir", "insider"],
        )
        .ok();
    // A member reads the private blob, marked for their own cache only: a shared cache
    // or CDN would hand it to anyone asking for the URL.
    let caching_for_alice = || {
        let (status, headers, _) = http(
            "GET",
            &format!("{}/api/v1/blobs/{digest}", server.url),
            alice.token.as_deref(),
            None,
        );
        assert_eq!(status, 200);
        headers["cache-control"].to_str().unwrap().to_owned()
    };
    assert_eq!(caching_for_alice(), "private, max-age=31536000, immutable");
    let err = mallory
        .run(&["visibility", "examples/secret-tool", "public"])
        .fails();
    assert!(
        err.contains("404"),
        "an outsider cannot even find it: {err}"
    );
    alice
        .run(&["visibility", "examples/secret-tool", "public"])
        .ok();
    assert_eq!(
        caching_for_alice(),
        "public, max-age=31536000, immutable",
        "public now: any cache may keep it"
    );
    assert_eq!(
        names(&anon.run(&["--json", "search", "secret"]).json()),
        ["secret-tool"]
    );
}

#[test]
fn registry_scenario_on_sqlite() {
    registry_scenario(Backend::Sqlite);
}

#[test]
fn registry_scenario_on_postgres() {
    registry_scenario(Backend::Postgres);
}

#[test]
fn first_start_prints_a_one_time_admin_token_that_works() {
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("AGORA_ADMIN_TOKEN")
        .env_remove("AGORA_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let url = lines
        .next()
        .unwrap()
        .split("listening on ")
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(lines.next().unwrap().contains("shown only this once"));
    let login = lines.next().unwrap();
    let token = login.split("--token ").nth(1).unwrap().trim().to_owned();
    let (status, _, body) = http("GET", &format!("{url}/api/v1/me"), Some(&token), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The token is stored only as a hash: in the database file and its write-ahead log.
    let mut stored = Vec::new();
    for file in ["agora.db", "agora.db-wal"] {
        stored.extend(std::fs::read(data.path().join(file)).unwrap_or_default());
    }
    let hash = agora_hash(&token);
    assert!(
        stored.windows(hash.len()).any(|w| w == hash.as_bytes()),
        "the token's hash is stored"
    );
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored in clear"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn login_stores_the_token_privately_and_is_used_afterwards() {
    let server = Server::start(Backend::Sqlite);
    let cli = server.cli(None);
    let out = cli.run(&["login", "--token", &server.admin_token]).ok();
    assert!(out.contains("as admin"), "{out}");
    let path = cli.home.path().join("config/agora/credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(cli.run(&["whoami"]).ok().contains("admin"));
    let err = cli.run(&["login", "--token", "agora_wrong"]).fails();
    assert!(err.contains("401"), "{err}");
}

/// The CLI searches with every filter and sort the API has (one shape of a search).
#[test]
fn the_cli_searches_with_every_filter_and_sort_the_api_has() {
    let server = Server::start(Backend::Sqlite);
    let mut admin = server.admin();
    let work = tempfile::tempdir().unwrap();
    for publisher in ["acme", "other"] {
        admin.run(&["publisher", "create", publisher]).ok();
        admin.sign_for(publisher);
        let dir = plugin_dir(
            work.path(),
            publisher,
            "scanner",
            "1.0.0",
            "compatibility: { min_core: 2.0.0 }\n",
            publisher.as_bytes(),
        );
        admin.run(&["publish", dir.to_str().unwrap()]).ok();
    }
    let anon = server.cli(None);
    let search = |args: &[&str]| {
        let mut all = vec!["--json", "search", "scanner"];
        all.extend(args);
        names_by_publisher(&anon.run(&all).json())
    };
    assert_eq!(search(&[]).len(), 2);
    assert_eq!(search(&["--publisher", "acme"]), ["acme/scanner"]);
    assert!(search(&["--verified"]).is_empty(), "nobody is verified yet");
    assert!(
        search(&["--min-rating", "4"]).is_empty(),
        "nobody is rated yet"
    );
    assert!(search(&["--compatible-with", "1.9.0"]).is_empty());
    assert_eq!(search(&["--compatible-with", "2.1.0"]).len(), 2);
    assert_eq!(search(&["--sort", "rating"]).len(), 2);
    let verified = http_with(
        "PATCH",
        &format!("{}/api/v1/publishers/other", server.url),
        Some(&server.admin_token),
        &[("content-type", "application/json")],
        Some(br#"{"verified": true}"#.to_vec()),
    );
    assert_eq!(verified.0, 200);
    assert_eq!(search(&["--verified"]), ["other/scanner"]);
    let err = anon
        .run(&["search", "scanner", "--min-rating", "9"])
        .fails();
    assert!(err.contains("min_rating"), "{err}");
}

fn names_by_publisher(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["publisher"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            )
        })
        .collect()
}
