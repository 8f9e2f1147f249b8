//! Installing with dependencies: the newest compatible set, every member verified and
//! pinned in agora.lock; conflicts explained in words, with nothing installed.

mod support;

use support::*;

fn lock_versions(dir: &std::path::Path) -> Vec<(String, String)> {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("agora.lock")).unwrap()).unwrap();
    lock["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn dependencies_resolve_to_the_newest_compatible_set() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    for v in ["1.0.0", "1.4.0", "2.0.0"] {
        publish_acme(&alice, work.path(), "http", v, &[]);
    }
    publish_acme(&alice, work.path(), "tls", "0.3.0", &[]);
    publish_acme(
        &alice,
        work.path(),
        "app",
        "1.0.0",
        &[("acme/http", "^1.0"), ("acme/tls", "~0.3")],
    );
    let anon = server.cli(None);

    let out = anon
        .run_in(
            work.path(),
            &["--json", "install", "acme/app", "--dir", "first"],
        )
        .json();
    assert_eq!(out["version"], "1.0.0");
    assert_eq!(out["dependencies"].as_array().unwrap().len(), 2);
    let expected: Vec<(String, String)> = [
        ("acme/app", "1.0.0"),
        ("acme/http", "1.4.0"),
        ("acme/tls", "0.3.0"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(lock_versions(&work.path().join("first")), expected);
    assert!(work.path().join("first/acme/http/plugin.wasm").exists());
    anon.run_in(work.path(), &["verify", "--installed", "--dir", "first"])
        .ok();

    alice.run(&["yank", "acme/http@1.4.0"]).ok();
    anon.run_in(work.path(), &["install", "acme/app", "--dir", "second"])
        .ok();
    assert!(
        lock_versions(&work.path().join("second")).contains(&("acme/http".into(), "1.0.0".into())),
        "yanked versions are not chosen"
    );
}

#[test]
fn conflicts_and_missing_dependencies_are_explained_and_install_nothing() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    publish_acme(&alice, work.path(), "c", "1.0.0", &[]);
    publish_acme(&alice, work.path(), "c", "2.0.0", &[]);
    publish_acme(&alice, work.path(), "a", "1.0.0", &[("acme/c", "^1")]);
    publish_acme(&alice, work.path(), "b", "1.0.0", &[("acme/c", "^2")]);
    publish_acme(
        &alice,
        work.path(),
        "bundle",
        "1.0.0",
        &[("acme/a", "^1"), ("acme/b", "^1")],
    );
    publish_acme(
        &alice,
        work.path(),
        "orphan",
        "1.0.0",
        &[("acme/ghost", "^1")],
    );
    let anon = server.cli(None);

    let err = anon
        .run_in(work.path(), &["install", "acme/bundle", "--dir", "plugins"])
        .fails();
    assert!(
        err.contains("no set of versions satisfies every requirement"),
        "{err}"
    );
    for name in ["acme/a", "acme/b", "acme/c"] {
        assert!(err.contains(name), "{name} is not named: {err}");
    }
    assert!(
        !work.path().join("plugins/agora.lock").exists(),
        "nothing is installed"
    );

    let err = anon
        .run_in(work.path(), &["install", "acme/orphan", "--dir", "plugins"])
        .fails();
    assert!(err.contains("acme/ghost"), "{err}");
    assert!(!work.path().join("plugins/acme").exists());
}

fn digests_under(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(digests_under(&path));
        } else if path.file_name().unwrap() != "agora.lock" {
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                sha256_file(&path),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn a_lockfile_reproduces_the_same_bytes_or_refuses() {
    // The database is edited behind the server's back below: no response cache.
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_CACHE__METADATA_TTL_MS", "0")]);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    publish_acme(&alice, work.path(), "http", "1.0.0", &[]);
    publish_acme(&alice, work.path(), "app", "1.0.0", &[("acme/http", "^1")]);
    let anon = server.cli(None);
    anon.run_in(work.path(), &["install", "acme/app", "--dir", "first"])
        .ok();
    // Newer versions appear; the lockfile still pins the old ones.
    publish_acme(&alice, work.path(), "http", "1.1.0", &[]);
    std::fs::create_dir_all(work.path().join("again")).unwrap();
    std::fs::copy(
        work.path().join("first/agora.lock"),
        work.path().join("again/agora.lock"),
    )
    .unwrap();
    anon.run_in(work.path(), &["install", "--locked", "--dir", "again"])
        .ok();
    assert_eq!(
        digests_under(&work.path().join("again")),
        digests_under(&work.path().join("first"))
    );
    assert_eq!(
        lock_versions(&work.path().join("again")),
        lock_versions(&work.path().join("first"))
    );

    // The registry now claims other files for a pinned version.
    let db = server.data.path().join("data/agora.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE artifacts SET size = size + 1 WHERE path = 'plugin.wasm' AND version_id = (SELECT v.id FROM versions v JOIN plugins p ON p.id = v.plugin_id WHERE p.name = 'http' AND v.version = '1.0.0')")
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::create_dir_all(work.path().join("third")).unwrap();
    std::fs::copy(
        work.path().join("first/agora.lock"),
        work.path().join("third/agora.lock"),
    )
    .unwrap();
    let err = anon
        .run_in(work.path(), &["install", "--locked", "--dir", "third"])
        .fails();
    assert!(
        err.contains("acme/http@1.0.0") && err.contains("other files than agora.lock pins"),
        "{err}"
    );
    assert!(!work.path().join("third/acme/http").exists());
}

#[test]
fn releases_the_host_cannot_run_are_not_chosen_and_the_reason_is_given() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let publish_with = |name: &str, version: &str, compat: &str| {
        let dir = plugin_dir(
            work.path(),
            "acme",
            name,
            version,
            &format!("compatibility: {compat}\n"),
            version.as_bytes(),
        );
        alice.run(&["publish", dir.to_str().unwrap()]).ok();
    };
    publish_with("future", "1.0.0", "{ runner_api: v1 }");
    publish_with("future", "2.0.0", "{ runner_api: v2 }");
    publish_with("modern", "1.0.0", "{ min_core: 3.0.0 }");
    let anon = server.cli(None);

    let got = anon
        .run_in(
            work.path(),
            &["--json", "install", "acme/future", "--dir", "plugins"],
        )
        .json();
    assert_eq!(
        got["version"], "1.0.0",
        "the newest version needs a runner API this host lacks"
    );
    let err = anon
        .run_in(
            work.path(),
            &["install", "acme/future@^2", "--dir", "other"],
        )
        .fails();
    assert!(
        err.contains("acme/future 2.0.0: needs runner API v2 (this host speaks v1)"),
        "{err}"
    );

    let err = anon
        .run_in(
            work.path(),
            &[
                "install",
                "acme/modern",
                "--dir",
                "other",
                "--core-version",
                "2.5.0",
            ],
        )
        .fails();
    assert!(
        err.contains("needs core 3.0.0 or newer (the host is 2.5.0)"),
        "{err}"
    );
    anon.run_in(
        work.path(),
        &[
            "install",
            "acme/modern",
            "--dir",
            "other",
            "--core-version",
            "3.1.0",
        ],
    )
    .ok();
}

/// How many requests the server has answered on routes whose template ends with `suffix`
/// (its `/metrics`, every status).
fn answered(server: &Server, suffix: &str) -> u64 {
    let (_, _, body) = http("GET", &format!("{}/metrics", server.url), None, None);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("agora_http_requests_total{"))
        .filter(|l| l.contains(&format!("{suffix}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn an_install_asks_for_each_thing_once_and_one_bad_dependency_stops_it_all() {
    // No verification worker: the log holds only the key and the releases, so every proof
    // leads to one head and the counts below are exact.
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WORKER__IN_PROCESS", "false")]);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let leaves: Vec<String> = (0..6).map(|i| format!("leaf-{i}")).collect();
    for leaf in &leaves {
        publish_acme(&alice, work.path(), leaf, "1.0.0", &[]);
    }
    let deps: Vec<(String, &str)> = leaves.iter().map(|l| (format!("acme/{l}"), "^1")).collect();
    let deps: Vec<(&str, &str)> = deps.iter().map(|(d, r)| (d.as_str(), *r)).collect();
    publish_acme(&alice, work.path(), "app", "1.0.0", &deps);
    let anon = server.cli(None);

    let routes = ["/keys", "/log/proof/inclusion", "/log/proof/consistency"];
    let count = || routes.map(|r| answered(&server, r));
    for (dir, consistency) in [("first", 0), ("second", 1)] {
        let before = count();
        anon.run_in(work.path(), &["install", "acme/app", "--dir", dir])
            .ok();
        let after = count();
        let asked: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        // Seven releases of one publisher: its keys once; seven inclusion proofs and one
        // for the key event they share; the first install pins the log (nothing to be
        // consistent with), the second proves the log extends what the first saw, once.
        assert_eq!(
            asked,
            vec![1, 8, consistency],
            "{dir}: keys, inclusion, consistency"
        );
        assert_eq!(lock_versions(&work.path().join(dir)).len(), 7);
    }

    // One leaf's module is damaged on the server: the whole install stops, and nothing of
    // the releases checked and downloaded beside it is left.
    let digest = anon.module_digest("acme/leaf-3@1.0.0");
    let blob = server.blob_path(&digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let err = anon
        .run_in(work.path(), &["install", "acme/app", "--dir", "third"])
        .fails();
    assert!(
        err.contains(digest.trim_start_matches("sha256:")),
        "the damaged blob is named: {err}"
    );
    let third = work.path().join("third");
    assert!(
        !third.join("agora.lock").exists(),
        "the lockfile was written"
    );
    assert!(!third.join("acme").exists(), "something was installed");
    assert!(
        !third.join(".agora-tmp").exists(),
        "staging files were left"
    );
}
