//! Release verification through the real binaries: a publish queues a run; the server's
//! own worker, or an `agora worker` process started later, runs the stages on what is
//! stored and records the outcome, served by the API.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn report(server: &Server, release: &str) -> (u16, serde_json::Value) {
    let (plugin, version) = release.split_once('@').unwrap();
    let (status, _, body) = http(
        "GET",
        &format!(
            "{}/api/v1/plugins/{plugin}/versions/{version}/verification",
            server.url
        ),
        None,
        None,
    );
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// The newest `verification` entry of the transparency log about `name@version`.
fn verdict_in_log(server: &Server, name: &str, version: &str) -> serde_json::Value {
    let (status, _, body) = http(
        "GET",
        &format!("{}/api/v1/log/entries?limit=1000", server.url),
        None,
        None,
    );
    assert_eq!(status, 200);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    entries
        .iter()
        .rev()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e["body"].as_str()?).ok())
        .find(|e| e["kind"] == "verification" && e["name"] == name && e["version"] == version)
        .unwrap_or_else(|| panic!("no verification of {name}@{version} in the log"))
}

/// `sha256:<hex>` of the verification report exactly as the API serves it.
fn served_report_digest(server: &Server, release: &str) -> String {
    use sha2::Digest;
    let (plugin, version) = release.split_once('@').unwrap();
    let (status, _, body) = http(
        "GET",
        &format!(
            "{}/api/v1/plugins/{plugin}/versions/{version}/verification",
            server.url
        ),
        None,
        None,
    );
    assert_eq!(status, 200);
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))
}

/// Waits for the server's worker to record a report.
fn verified(server: &Server, release: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = report(server, release);
        if status == 200 {
            return body;
        }
        assert_eq!(status, 404, "{body}");
        assert!(
            Instant::now() < deadline,
            "{release} not verified within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rules(report: &serde_json::Value) -> Vec<String> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_server_verifies_what_is_published_and_audits_wasm_imports() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);
    let hello = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", hello.to_str().unwrap()]).ok();

    let report = verified(&server, "examples/hello-wasm@1.0.0");
    assert_eq!(report["outcome"], "verified", "{report}");
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "manifest",
            "integrity",
            "signature",
            "files",
            "wasm",
            "behaviour",
            "sbom",
            "vulnerabilities"
        ]
    );
    assert!(rules(&report).is_empty(), "{report}");
    // The verdict is in the transparency log, committed to the report as served.
    let logged = verdict_in_log(&server, "hello-wasm", "1.0.0");
    assert_eq!(logged["outcome"], "verified", "{logged}");
    assert_eq!(logged["publisher"], "examples");
    assert_eq!(
        logged["report_digest"],
        served_report_digest(&server, "examples/hello-wasm@1.0.0"),
        "{logged}"
    );
    assert!(logged.get("reviewer").is_none(), "{logged}");

    // A component that imports outgoing HTTP and the file system: with outbound_http
    // declared, only the file system is questioned; with no capability, both.
    let hostile = example_plugin("hostile-wasm", work.path());
    alice.run(&["publish", hostile.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/hostile-wasm@1.0.0");
    assert_eq!(
        stage_rules(&report, "wasm"),
        ["wasm.undeclared-filesystem"],
        "{report}"
    );
    assert_eq!(report["outcome"], "needs-review");
    let yaml = std::fs::read_to_string(hostile.join("plugin.yaml")).unwrap();
    let undeclared = yaml
        .replace("version: 1.0.0", "version: 1.0.1")
        .replace("capabilities: [outbound_http]\n", "")
        .replace("network: { outbound_hosts: ['localhost:18081'] }\n", "");
    std::fs::write(hostile.join("plugin.yaml"), undeclared).unwrap();
    alice.run(&["publish", hostile.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/hostile-wasm@1.0.1");
    let found = rules(&report);
    assert!(
        found.contains(&"wasm.undeclared-outbound-http".to_owned())
            && found.contains(&"wasm.undeclared-filesystem".to_owned()),
        "{report}"
    );
    // An administrator decides on the one that needs review; nobody else may.
    let url = format!(
        "{}/api/v1/plugins/examples/hostile-wasm/versions/1.0.0/verification/review",
        server.url
    );
    let decide = |token: Option<&str>, body: &str| {
        let (status, _, answer) = http_with(
            "POST",
            &url,
            token,
            &[("content-type", "application/json")],
            Some(body.as_bytes().to_vec()),
        );
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&answer).unwrap_or_default(),
        )
    };
    let approve = r#"{"outcome":"verified","reason":"the file system is only its /tmp"}"#;
    alice
        .run(&["user", "create", "pat", "--role", "publisher"])
        .ok();
    let pat = alice.token_for("pat", &["publish:*"]);
    assert_eq!(decide(Some(&pat), approve).0, 403);
    let admin_read_only = alice.token_for("admin", &["read:private"]);
    assert_eq!(
        decide(Some(&admin_read_only), approve).0,
        403,
        "the admin scope is needed too"
    );
    let (status, problem) = decide(
        Some(&server.admin_token),
        r#"{"outcome":"needs-review","reason":"x"}"#,
    );
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = decide(
        Some(&server.admin_token),
        r#"{"outcome":"verified","reason":""}"#,
    );
    assert_eq!(status, 422, "{problem}");
    let (status, decided) = decide(Some(&server.admin_token), approve);
    assert_eq!(status, 200, "{decided}");
    let (_, now) = self::report(&server, "examples/hostile-wasm@1.0.0");
    assert_eq!(now["outcome"], "verified", "{now}");
    let logged = verdict_in_log(&server, "hostile-wasm", "1.0.0");
    assert_eq!(
        logged["outcome"], "verified",
        "the review is logged: {logged}"
    );
    assert_eq!(logged["reviewer"], "admin", "{logged}");
    assert_eq!(
        logged["report_digest"],
        served_report_digest(&server, "examples/hostile-wasm@1.0.0")
    );
    assert!(
        rules(&now).contains(&"review.approved".to_owned()),
        "the decision is a stage of the report: {now}"
    );
    let (_, _, events) = http(
        "GET",
        &format!("{}/api/v1/audit?target=examples/hostile-wasm", server.url),
        Some(&server.admin_token),
        None,
    );
    let events = String::from_utf8(events).unwrap();
    assert!(
        events.contains("version.review") && events.contains("the file system is only its /tmp"),
        "{events}"
    );

    let wasm = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "wasm")
        .unwrap();
    assert_eq!(wasm["status"], "failed");
    assert!(
        wasm["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not declare the capability"),
        "{wasm}"
    );
}

#[test]
fn a_worker_started_later_finishes_what_was_queued_and_catches_a_changed_blob() {
    // No worker in the server: runs wait in the queue, as after a crash.
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WORKER__IN_PROCESS", "false")]);
    let (alice, work) = examples_publisher(&server);
    let good = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", good.to_str().unwrap()]).ok();
    let bad = plugin_dir(work.path(), "examples", "bad", "1.0.0", "", b"bad 1.0.0");
    alice.run(&["publish", bad.to_str().unwrap()]).ok();
    let (status, body) = report(&server, "examples/hello-wasm@1.0.0");
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not been checked yet")
    );
    let anon = server.cli(None);
    let err = anon
        .run_in(
            work.path(),
            &[
                "install",
                "examples/hello-wasm",
                "--require-verified",
                "--dir",
                "early",
            ],
        )
        .fails();
    assert!(err.contains("is not verified (not checked yet)"), "{err}");
    let info = anon.run(&["info", "examples/hello-wasm@1.0.0"]).ok();
    assert!(info.contains("verification: not checked yet"), "{info}");
    let (_, _, body) = http(
        "GET",
        &format!("{}/plugins/examples/hello-wasm", server.url),
        None,
        None,
    );
    assert!(String::from_utf8(body).unwrap().contains("Not checked yet"));

    // The storage changes a byte of one release after it was published.
    server.flip_stored_blob(b"bad 1.0.0");

    let data_dir = server.blob_dir().parent().unwrap().to_path_buf();
    let worker = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["worker", "--once", "--data-dir"])
        .arg(&data_dir)
        .env_remove("AGORA_DATABASE_URL")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&worker.stdout);
    assert!(
        worker.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    assert!(said.contains("Verified 2 release(s)"), "{said}");

    let (status, good) = report(&server, "examples/hello-wasm@1.0.0");
    assert_eq!(
        (status, good["outcome"].as_str()),
        (200, Some("verified")),
        "{good}"
    );
    let (status, bad) = report(&server, "examples/bad@1.0.0");
    assert_eq!(
        (status, bad["outcome"].as_str()),
        (200, Some("rejected")),
        "{bad}"
    );
    let integrity = bad["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "integrity")
        .unwrap();
    assert_eq!(integrity["status"], "failed");
    assert_eq!(
        integrity["findings"][0]["rule"],
        "integrity.digest-mismatch"
    );
    assert_eq!(integrity["findings"][0]["severity"], "critical");
    assert_eq!(integrity["findings"][0]["location"], "plugin.wasm");

    // So does the plugin page.
    let page = |path: &str| {
        let (status, _, body) = http("GET", &format!("{}{path}", server.url), None, None);
        assert_eq!(status, 200, "{path}");
        String::from_utf8(body).unwrap()
    };
    let bad_page = page("/plugins/examples/bad");
    assert!(
        bad_page.contains("✗ Rejected") && bad_page.contains("integrity.digest-mismatch"),
        "{bad_page}"
    );
    assert!(page("/plugins/examples/hello-wasm").contains("✓ Verified"));

    // The CLI shows the verdict, and installs only what was verified when asked to.
    let info = anon.run(&["info", "examples/bad@1.0.0"]).ok();
    assert!(
        info.contains("verification: rejected")
            && info.contains("integrity.digest-mismatch")
            && info.contains("(plugin.wasm)"),
        "{info}"
    );
    let err = anon
        .run_in(
            work.path(),
            &[
                "install",
                "examples/bad",
                "--require-verified",
                "--dir",
                "strict",
            ],
        )
        .fails();
    assert!(
        err.contains("examples/bad@1.0.0 is not verified (rejected)"),
        "{err}"
    );
    assert!(!work.path().join("strict/agora.lock").exists());
    anon.run_in(
        work.path(),
        &[
            "install",
            "examples/hello-wasm",
            "--require-verified",
            "--dir",
            "strict",
        ],
    )
    .ok();

    // Nothing is left to run: a second worker finds the queue empty.
    let again = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["worker", "--once", "--data-dir"])
        .arg(&data_dir)
        .env_remove("AGORA_DATABASE_URL")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("Verified 0 release(s)"));
}

#[test]
fn native_executables_are_audited_for_pie_stack_and_architecture() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);
    let echo = example_plugin("echo-native", work.path());
    alice.run(&["publish", echo.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/echo-native@1.0.0");
    assert_eq!(report["outcome"], "verified", "{report}");
    assert_eq!(report["stages"][4]["stage"], "native", "{report}");

    // A C program linked as a fixed-address executable with an executable stack.
    let dir = work.path().join("risky");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(work.path().join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let cc = Command::new("cc")
        .args(["-no-pie", "-z", "execstack", "-o"])
        .arg(dir.join("bin/risky"))
        .arg(work.path().join("main.c"))
        .output()
        .expect("a C compiler (cc) for the native audit's test binary");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let platform = format!("linux-{}", std::env::consts::ARCH);
    std::fs::write(
        dir.join("plugin.yaml"),
        format!(
            "api_version: agora/v1\npublisher: examples\nname: risky\nversion: 1.0.0\n\
             description: A native binary built without the usual protections\nlicense: MIT\n\
             runtime:\n  type: exec\n  binaries:\n    {platform}: bin/risky\n"
        ),
    )
    .unwrap();
    // `agora audit` says the same before publishing; needing review is not a failure.
    let audit = alice
        .run(&["--json", "audit", dir.to_str().unwrap()])
        .json();
    assert_eq!(audit["outcome"], "needs-review", "{audit}");
    assert!(audit.to_string().contains("native.not-pie"), "{audit}");
    alice.run(&["publish", dir.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/risky@1.0.0");
    let found = rules(&report);
    assert!(
        found.contains(&"native.not-pie".to_owned())
            && found.contains(&"native.executable-stack".to_owned()),
        "{report}"
    );
    assert_eq!(report["outcome"], "needs-review", "{report}");

    // What the registry would reject fails the audit, before anything is published.
    std::fs::write(dir.join("bin/risky"), b"#!/bin/sh\necho not an ELF\n").unwrap();
    let err = alice.run(&["audit", dir.to_str().unwrap()]).fails();
    assert!(err.contains("would be rejected"), "{err}");
    std::fs::remove_file(dir.join("bin/risky")).unwrap();
    let err = alice.run(&["audit", dir.to_str().unwrap()]).fails();
    assert!(err.contains("would be rejected"), "{err}");
}

/// An entry of a crafted bundle: name, type, mode, link target, data.
type Crafted<'a> = (&'a str, tar::EntryType, u32, &'a str, &'a [u8]);

/// A `.agora` bundle written header by header, so hostile names, links and modes survive
/// (the tar builder would refuse them).
fn crafted_bundle(path: &std::path::Path, entries: &[Crafted<'_>]) {
    let file = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, kind, mode, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn hostile_bundles_are_stopped_by_the_archive_audit_and_refused_by_publish() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);
    let manifest = "api_version: agora/v1\npublisher: examples\nname: crafted\nversion: 1.0.0\n\
                    description: A crafted bundle\nlicense: MIT\n\
                    runtime: { type: wasm, module: plugin.wasm }\n";
    let bundles = work.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    let cases: [(&str, Crafted<'_>, &str); 3] = [
        (
            "escape",
            ("../escape", tar::EntryType::Regular, 0o644, "", b"x"),
            "archive.path-traversal",
        ),
        (
            "link",
            (
                "plugin.wasm",
                tar::EntryType::Symlink,
                0o777,
                "/etc/passwd",
                b"",
            ),
            "archive.link",
        ),
        (
            "setuid",
            ("plugin.wasm", tar::EntryType::Regular, 0o4755, "", b"\0asm"),
            "archive.setuid",
        ),
    ];
    for (name, entry, rule) in cases {
        let bundle = bundles.join(format!("{name}.agora"));
        let yaml = (
            "plugin.yaml",
            tar::EntryType::Regular,
            0o644,
            "",
            manifest.as_bytes(),
        );
        crafted_bundle(&bundle, &[yaml, entry]);
        let path = bundle.to_str().unwrap();

        let audit = alice.run(&["audit", path]);
        let err = audit.fails();
        assert!(
            err.contains("would be rejected") && err.contains(rule),
            "{name}: {err}"
        );
        let said = audit.stdout();
        assert!(
            said.contains(&format!("critical {rule}")) && said.contains(entry.0),
            "{name}: {said}"
        );
        let json = alice.run(&["--json", "audit", path]);
        json.fails();
        let report: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
        assert_eq!(report["outcome"], "rejected", "{report}");
        assert_eq!(report["stages"][0]["stage"], "archive", "{report}");
        assert_eq!(report["stages"][0]["findings"][0]["rule"], rule, "{report}");

        let err = alice.run(&["publish", path]).fails();
        assert!(
            err.contains("is refused") && err.contains(rule),
            "{name}: {err}"
        );
        assert!(!work.path().join("escape").exists());
    }
    let (status, _) = report(&server, "examples/crafted@1.0.0");
    assert_eq!(status, 404, "nothing was published");

    // A good bundle comes through its archive audit clean, and its contents are audited.
    let hello = example_plugin("hello-wasm", work.path());
    let good = bundles.join("good.agora");
    alice
        .run(&[
            "pack",
            hello.to_str().unwrap(),
            "--out",
            good.to_str().unwrap(),
        ])
        .ok();
    let audit = alice
        .run(&["--json", "audit", good.to_str().unwrap()])
        .json();
    assert_eq!(audit["outcome"], "verified", "{audit}");
    let stages = audit["stages"].as_array().unwrap();
    let names = stage_names(&audit);
    assert_eq!(
        names[..4],
        ["archive", "manifest", "files", "wasm"],
        "{audit}"
    );
    for stage in &stages[..4] {
        assert_eq!(stage["findings"], serde_json::json!([]), "{audit}");
    }
}

#[test]
fn the_files_stage_audits_archives_among_a_releases_files_and_local_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);

    // The good examples: nothing for the files stage.
    for example in ["hello-wasm", "echo-native"] {
        let dir = example_plugin(example, work.path());
        let audit = alice
            .run(&["--json", "audit", dir.to_str().unwrap()])
            .json();
        assert_eq!(audit["outcome"], "verified", "{audit}");
        let files = stage(&audit, "files");
        assert_eq!(files["findings"], serde_json::json!([]), "{audit}");
        alice.run(&["publish", dir.to_str().unwrap()]).ok();
        let report = verified(&server, &format!("examples/{example}@1.0.0"));
        assert_eq!(report["outcome"], "verified", "{report}");
        let files = stage(&report, "files");
        assert_eq!(files["findings"], serde_json::json!([]), "{report}");
    }

    // A setuid file in the plugin directory: the audit names it; publish refuses it.
    let dir = example_plugin("hello-wasm", &work.path().join("suid"));
    let module = dir.join("plugin.wasm");
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let audit = alice.run(&["--json", "audit", dir.to_str().unwrap()]);
    let err = audit.fails();
    assert!(err.contains("would be rejected"), "{err}");
    let report: serde_json::Value = serde_json::from_str(&audit.stdout()).unwrap();
    let files = stage(&report, "files");
    assert_eq!(files["findings"][0]["rule"], "files.setuid", "{report}");
    assert_eq!(files["findings"][0]["severity"], "critical", "{report}");
    assert_eq!(files["findings"][0]["location"], "plugin.wasm", "{report}");
    let err = alice.run(&["publish", dir.to_str().unwrap()]).fails();
    assert!(
        err.contains("plugin.wasm has the setuid or setgid bit"),
        "{err}"
    );
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A release whose README is a tar.gz with an escaping entry and a link out: the
    // registry's files stage reads it as an archive and rejects the release.
    let hostile = bundle_bytes(&[
        ("../escape", tar::EntryType::Regular, 0o644, "", b"x"),
        ("etc", tar::EntryType::Symlink, 0o777, "/etc", b""),
    ]);
    let yaml = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    std::fs::write(
        dir.join("plugin.yaml"),
        yaml.replace("version: 1.0.0", "version: 1.0.1"),
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), hostile).unwrap();
    alice.run(&["publish", dir.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/hello-wasm@1.0.1");
    assert_eq!(report["outcome"], "rejected", "{report}");
    let stages = stage_names(&report);
    assert_eq!(
        stages[..5],
        ["manifest", "integrity", "signature", "files", "wasm"]
    );
    let files = &report["stages"][3];
    assert_eq!(files["status"], "failed", "{report}");
    let found: Vec<(&str, &str)> = files["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("archive.path-traversal", "critical"),
            ("archive.link", "critical"),
            ("files.not-text", "medium"),
        ],
        "{report}"
    );
    assert_eq!(files["findings"][0]["location"], "README.md", "{report}");
}

/// The bytes of a crafted bundle (see [`crafted_bundle`]).
fn bundle_bytes(entries: &[Crafted<'_>]) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().unwrap();
    crafted_bundle(file.path(), entries);
    std::fs::read(file.path()).unwrap()
}

/// The stage of a report (or of `agora audit --json`) named `name`.
fn stage<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no {name} stage: {report}"))
}

/// The names of a report's stages, in order.
fn stage_names(report: &serde_json::Value) -> Vec<&str> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect()
}

/// The rules the stage `name` of a report found.
fn stage_rules(report: &serde_json::Value, name: &str) -> Vec<String> {
    let stage = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no {name} stage: {report}"));
    stage["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

/// The finding of `rule` in a report.
fn finding_of<'a>(report: &'a serde_json::Value, rule: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap())
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule}: {report}"))
}

#[test]
fn the_behaviour_stage_runs_each_plugin_under_its_own_declaration() {
    let server = Server::start(Backend::Sqlite);
    let (alice, work) = examples_publisher(&server);

    // The good examples run clean: conformance passes and nothing is denied.
    let hello = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", hello.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/hello-wasm@1.0.0");
    assert_eq!(report["outcome"], "verified", "{report}");
    assert!(stage_rules(&report, "behaviour").is_empty(), "{report}");
    let echo = example_plugin("echo-native", work.path());
    alice.run(&["publish", echo.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/echo-native@1.0.0");
    assert_eq!(report["outcome"], "verified", "{report}");
    // Run in the sandbox when the worker is root; else the stage says it was not run.
    match stage_rules(&report, "behaviour").as_slice() {
        [] => {}
        [one] if one == "behaviour.not-run" => {
            let message = finding_of(&report, one)["message"].as_str().unwrap();
            assert!(message.contains("root"), "{report}");
        }
        other => panic!("{other:?}: {report}"),
    }

    // A plugin that declares api.example.com and calls telemetry.example.net: every
    // static audit is content (it does declare outbound HTTP); its run is not.
    let sneaky = example_plugin("sneaky-wasm", work.path());
    alice.run(&["publish", sneaky.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/sneaky-wasm@1.0.0");
    assert!(stage_rules(&report, "wasm").is_empty(), "{report}");
    assert_eq!(
        stage_rules(&report, "behaviour"),
        ["behaviour.undeclared-host"],
        "{report}"
    );
    let host = finding_of(&report, "behaviour.undeclared-host");
    assert_eq!(host["severity"], "high", "{report}");
    assert_eq!(host["location"], "network.outbound_hosts", "{report}");
    let message = host["message"].as_str().unwrap();
    assert!(
        message.contains("telemetry.example.net:80") && message.contains("api.example.com"),
        "{message}"
    );
    assert_eq!(report["outcome"], "needs-review", "{report}");

    // The same plugin declaring its /report entrypoint, which answers plain text: it
    // fails conformance, naming the check and the entrypoint.
    let yaml = std::fs::read_to_string(sneaky.join("plugin.yaml")).unwrap();
    let broken = yaml.replace("version: 1.0.0", "version: 1.0.1").replace(
        "  sync: { path: /sync, timeout_ms: 5000 }",
        "  report: { path: /report, timeout_ms: 5000 }",
    );
    std::fs::write(sneaky.join("plugin.yaml"), broken).unwrap();
    alice.run(&["publish", sneaky.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/sneaky-wasm@1.0.1");
    assert_eq!(
        stage_rules(&report, "behaviour"),
        ["conformance.entrypoint-report"],
        "{report}"
    );
    let check = finding_of(&report, "conformance.entrypoint-report");
    assert_eq!(check["severity"], "high", "{report}");
    assert_eq!(check["location"], "entrypoints.report", "{report}");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains("expected a JSON body"),
        "{report}"
    );
    assert_eq!(report["outcome"], "needs-review", "{report}");

    // Each release's files were materialised for its run and removed afterwards.
    let releases = server
        .blob_dir()
        .parent()
        .unwrap()
        .join("behaviour/releases");
    let left: Vec<_> = std::fs::read_dir(&releases)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?} left in {}", releases.display());
}

#[test]
fn operators_can_turn_the_behaviour_stage_off() {
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WORKER__BEHAVIOUR", "false")]);
    let (alice, work) = examples_publisher(&server);
    let sneaky = example_plugin("sneaky-wasm", work.path());
    alice.run(&["publish", sneaky.to_str().unwrap()]).ok();
    let report = verified(&server, "examples/sneaky-wasm@1.0.0");
    assert!(
        !report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stage"] == "behaviour"),
        "{report}"
    );
    assert!(
        !rules(&report)
            .iter()
            .any(|r| r.starts_with("behaviour.") || r.starts_with("conformance.")),
        "{report}"
    );
}

#[test]
fn the_operator_sets_the_policy_that_turns_findings_into_outcomes() {
    // A strict registry: anything above info is reviewed, medium and above rejected.
    let server = Server::start_with(
        Backend::Sqlite,
        &[
            ("AGORA_VERIFICATION__VERIFY_UP_TO", "info"),
            ("AGORA_VERIFICATION__REJECT_FROM", "medium"),
            ("AGORA_WORKER__BEHAVIOUR", "false"),
        ],
    );
    let (alice, work) = examples_publisher(&server);
    let hello = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", hello.to_str().unwrap()]).ok();
    let hostile = example_plugin("hostile-wasm", work.path());
    alice.run(&["publish", hostile.to_str().unwrap()]).ok();
    assert_eq!(
        verified(&server, "examples/hello-wasm@1.0.0")["outcome"],
        "verified"
    );
    let report = verified(&server, "examples/hostile-wasm@1.0.0");
    assert_eq!(
        report["outcome"], "rejected",
        "the default policy would ask for a review: {report}"
    );
    assert_eq!(
        verdict_in_log(&server, "hostile-wasm", "1.0.0")["outcome"],
        "rejected"
    );

    // A policy that contradicts itself stops the server before it listens, naming the
    // setting and what is accepted.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("AGORA_VERIFICATION__VERIFY_UP_TO", "high")
        .env("AGORA_VERIFICATION__REJECT_FROM", "medium")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reject_from (medium) must be more severe than verify_up_to (high)"),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("AGORA_VERIFICATION__REJECT_FROM", "severe")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("verification.reject_from (AGORA_VERIFICATION__REJECT_FROM)")
            && stderr.contains("expected info, low, medium, high or critical"),
        "{stderr}"
    );
}

#[test]
fn a_host_policy_can_run_only_releases_verified_when_installed() {
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_WORKER__BEHAVIOUR", "false")]);
    let (alice, work) = examples_publisher(&server);
    let hello = example_plugin("hello-wasm", work.path());
    alice.run(&["publish", hello.to_str().unwrap()]).ok();
    let hostile = example_plugin("hostile-wasm", work.path());
    alice.run(&["publish", hostile.to_str().unwrap()]).ok();
    assert_eq!(
        verified(&server, "examples/hello-wasm@1.0.0")["outcome"],
        "verified"
    );
    assert_eq!(
        verified(&server, "examples/hostile-wasm@1.0.0")["outcome"],
        "needs-review"
    );
    let user = server.cli(None);
    for plugin in ["examples/hello-wasm", "examples/hostile-wasm"] {
        user.run_in(work.path(), &["install", plugin, "--dir", "plugins"])
            .ok();
    }
    // agora.lock records each release's verdict at install.
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("plugins/agora.lock")).unwrap(),
    )
    .unwrap();
    let recorded: Vec<(&str, &str)> = lock["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["verification"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            ("examples/hello-wasm", "verified"),
            ("examples/hostile-wasm", "needs-review")
        ],
        "{lock}"
    );
    std::fs::write(
        work.path().join("strict.toml"),
        "mode = \"open\"\nrequire_verified = true\n",
    )
    .unwrap();
    let state = work.path().join("runner");
    let run = |plugin: &str, entrypoint: &str| {
        user.run_in(
            work.path(),
            &[
                "run",
                plugin,
                entrypoint,
                "--input",
                r#"{"name":"Ada"}"#,
                "--dir",
                "plugins",
                "--policy",
                "strict.toml",
                "--state-dir",
                state.to_str().unwrap(),
            ],
        )
    };
    assert!(
        run("examples/hello-wasm", "greet")
            .ok()
            .contains("Hello, Ada!")
    );
    let refused = run("examples/hostile-wasm", "fetch").fails();
    assert!(
        refused.contains("examples/hostile-wasm@1.0.0 was needs-review when it was installed")
            && refused.contains("require_verified"),
        "{refused}"
    );
}
