//! Advisories through the real binaries: a release's SBOM is read by its verification
//! run; an OSV record imported later marks the releases whose components it affects
//! insecure, and `agora install` refuses them naming the advisory; a release published
//! after the import is stopped by its `vulnerabilities` stage.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn report(server: &Server, plugin: &str, version: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, body) = http(
            "GET",
            &format!(
                "{}/api/v1/plugins/{plugin}/versions/{version}/verification",
                server.url
            ),
            None,
            None,
        );
        if status == 200 {
            return serde_json::from_slice(&body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{plugin}@{version} not verified in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stage<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no {name} stage: {report}"))
}

/// A crate the SBOM lists, with its version.
fn a_crate_of(sbom: &std::path::Path) -> (String, semver::Version) {
    let sbom: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sbom).unwrap()).unwrap();
    sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let purl = c["purl"].as_str()?;
            if !purl.starts_with("pkg:cargo/") {
                return None;
            }
            Some((c["name"].as_str()?.to_owned(), c["version"].as_str()?))
        })
        .find_map(|(name, v)| Some((name, semver::Version::parse(v).ok()?)))
        .expect("the SBOM lists a crate")
}

fn osv(id: &str, name: &str, fixed: &str) -> serde_json::Value {
    serde_json::json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": "2026-12-01T00:00:00Z",
        "published": "2026-12-01T00:00:00Z",
        "summary": "Memory corruption in a test crate",
        "affected": [{
            "package": {"ecosystem": "crates.io", "name": name, "purl": format!("pkg:cargo/{name}")},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
        }],
        "database_specific": {"severity": "HIGH"},
    })
}

#[test]
fn an_imported_advisory_marks_affected_releases_insecure_and_installs_refuse_them() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);
    let hello = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", hello.to_str().unwrap()]).ok();

    // The example ships the SBOM cargo-cyclonedx wrote: read, nothing matches yet.
    let first = report(&server, "examples/hello-wasm", "1.0.0");
    assert_eq!(first["outcome"], "verified", "{first}");
    assert_eq!(stage(&first, "sbom")["findings"], serde_json::json!([]));
    assert_eq!(
        stage(&first, "vulnerabilities")["findings"],
        serde_json::json!([])
    );

    // An advisory for one of its crates, fixed in the next patch version.
    let (name, version) = a_crate_of(&hello.join("sbom.cdx.json"));
    let fixed = semver::Version::new(version.major, version.minor, version.patch + 1);
    let advisories = work.path().join("osv");
    std::fs::create_dir_all(advisories.join("crates.io")).unwrap();
    std::fs::write(
        advisories.join("crates.io/RUSTSEC-2026-9001.json"),
        osv("RUSTSEC-2026-9001", &name, &fixed.to_string()).to_string(),
    )
    .unwrap();
    // An advisory for a version it does not use matches nothing.
    std::fs::write(
        advisories.join("other.json"),
        serde_json::json!([osv("RUSTSEC-2026-9002", &name, "0.0.1")]).to_string(),
    )
    .unwrap();

    // A user installs 1.0.0 before anyone knows.
    let user = server.cli(None);
    let plugins = work.path().join("plugins");
    user.run(&[
        "install",
        "examples/hello-wasm@=1.0.0",
        "--dir",
        plugins.to_str().unwrap(),
    ])
    .ok();

    // Only administrators import; a record that is not OSV is named before anything is sent.
    alice.run(&["user", "create", "bob"]).ok();
    let bob = server.cli(Some(&alice.token_for("bob", &["publish:*"])));
    let refused = bob
        .run(&["advisories", "import", advisories.to_str().unwrap()])
        .fails();
    assert!(refused.contains("admin"), "{refused}");
    let bad = work.path().join("bad.json");
    std::fs::write(&bad, r#"{"id": "X-1", "modified": "yesterday"}"#).unwrap();
    let refused = alice
        .run(&["advisories", "import", bad.to_str().unwrap()])
        .fails();
    assert!(
        refused.contains("bad.json") && refused.contains("RFC 3339"),
        "{refused}"
    );

    let imported = alice
        .run(&["advisories", "import", advisories.to_str().unwrap()])
        .ok();
    assert!(
        imported.contains("examples/hello-wasm@1.0.0 marked insecure: RUSTSEC-2026-9001")
            && imported.contains(&format!("fixed in {fixed}")),
        "{imported}"
    );
    assert!(!imported.contains("RUSTSEC-2026-9002 ("), "{imported}");
    // Importing again changes nothing.
    let again = alice
        .run(&[
            "--json",
            "advisories",
            "import",
            advisories.to_str().unwrap(),
        ])
        .json();
    assert_eq!(again["changed"], serde_json::json!([]), "{again}");
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 2);

    // The version is insecure, with the advisory as its reason, in the API and the log.
    let (_, _, body) = http(
        "GET",
        &format!(
            "{}/api/v1/plugins/examples/hello-wasm/versions/1.0.0",
            server.url
        ),
        None,
        None,
    );
    let detail: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(detail["state"], "insecure", "{detail}");
    assert!(
        detail["state_reason"]
            .as_str()
            .unwrap()
            .starts_with("RUSTSEC-2026-9001"),
        "{detail}"
    );

    // The installed copy shows as insecure with the advisory, and an install refuses
    // it, naming the advisory.
    let outdated = user
        .run(&["outdated", "--dir", plugins.to_str().unwrap()])
        .ok();
    assert!(
        outdated.contains("examples/hello-wasm")
            && outdated.contains("insecure: RUSTSEC-2026-9001"),
        "{outdated}"
    );
    let elsewhere = work.path().join("elsewhere");
    let refused = user
        .run(&[
            "install",
            "examples/hello-wasm@=1.0.0",
            "--dir",
            elsewhere.to_str().unwrap(),
        ])
        .fails();
    assert!(
        refused.contains("insecure") && refused.contains("RUSTSEC-2026-9001"),
        "{refused}"
    );

    // A release published after the import is stopped by its vulnerabilities stage,
    // with the fixed version named, and is insecure at once.
    let yaml = std::fs::read_to_string(hello.join("plugin.yaml")).unwrap();
    std::fs::write(
        hello.join("plugin.yaml"),
        yaml.replace("version: 1.0.0", "version: 1.0.1"),
    )
    .unwrap();
    alice.run(&["publish", hello.to_str().unwrap()]).ok();
    let second = report(&server, "examples/hello-wasm", "1.0.1");
    let findings = &stage(&second, "vulnerabilities")["findings"];
    assert_eq!(findings[0]["rule"], "vulnerability.advisory", "{second}");
    assert_eq!(findings[0]["severity"], "high");
    let message = findings[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("RUSTSEC-2026-9001")
            && message.contains(&format!("pkg:cargo/{name}@{version}"))
            && message.contains(&format!("fixed in {fixed}")),
        "{message}"
    );
    assert_eq!(second["outcome"], "needs-review");
    let (_, _, body) = http(
        "GET",
        &format!(
            "{}/api/v1/plugins/examples/hello-wasm/versions/1.0.1",
            server.url
        ),
        None,
        None,
    );
    let detail: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(detail["state"], "insecure", "{detail}");
}

/// The scheduled re-check imports the operator's OSV feed directory and marks what the
/// new records cover; it runs at start and on demand (`agora advisories recheck`).
#[test]
fn the_recheck_imports_the_feed_directory_and_marks_what_it_covers() {
    let feed = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        Backend::Sqlite,
        &[
            ("AGORA_ADVISORIES__DIR", feed.path().to_str().unwrap()),
            ("AGORA_WORKER__BEHAVIOUR", "false"),
        ],
    );
    let (alice, work) = examples_publisher(&server);
    let hello = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", hello.to_str().unwrap()]).ok();
    let first = report(&server, "examples/hello-wasm", "1.0.0");
    assert_eq!(first["outcome"], "verified", "{first}");
    // The server ran the re-check when it started (nothing to do yet).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.log().contains("advisories re-checked") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let (name, version) = a_crate_of(&hello.join("sbom.cdx.json"));
    let fixed = format!("{}.{}.{}", version.major, version.minor, version.patch + 1);
    std::fs::write(
        feed.path().join("RUSTSEC-2026-9003.json"),
        osv("RUSTSEC-2026-9003", &name, &fixed).to_string(),
    )
    .unwrap();
    std::fs::write(feed.path().join("notes.txt"), "not a record").unwrap();
    let out = server.operator(&["advisories", "recheck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Imported 1 new or changed advisories")
            && stdout.contains("examples/hello-wasm@1.0.0 marked insecure: RUSTSEC-2026-9003"),
        "{stdout}"
    );
    // Again: nothing new, nothing more to mark.
    let out = server.operator(&["--json", "advisories", "recheck"]);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["flagged"], serde_json::json!([]), "{again}");
    assert_eq!(again["advisories_checked"], 1, "{again}");

    // The server sees it (its cache lives at most a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, body) = http(
            "GET",
            &format!(
                "{}/api/v1/plugins/examples/hello-wasm/versions/1.0.0",
                server.url
            ),
            None,
            None,
        );
        let detail: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if detail["state"] == "insecure" {
            assert!(
                detail["state_reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("RUSTSEC-2026-9003"),
                "{detail}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{detail}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // A feed file that is not JSON stops the re-check, naming it.
    std::fs::write(feed.path().join("broken.json"), "{").unwrap();
    let out = server.operator(&["advisories", "recheck"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("broken.json"), "{stderr}");
}
