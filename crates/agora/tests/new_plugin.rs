//! `agora new` through the real binary: the scaffold builds with `agora build`, passes
//! `agora conformance` in the sandbox, and publishes, installs and runs as is.

mod support;

use std::path::Path;

use support::*;

/// `cli` with a shared cargo target directory, so the plugin's dependencies are
/// compiled once per test run.
fn with_cargo_target(cli: &mut Cli) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold");
    cli.env
        .push(("CARGO_TARGET_DIR".into(), target.display().to_string()));
}

fn agora_in(cli: &Cli, cwd: &Path, args: &[&str]) -> Run {
    cli.run_in(cwd, args)
}

#[test]
fn a_new_wasm_plugin_builds_conforms_publishes_and_runs() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    with_cargo_target(&mut alice);
    let work = tempfile::tempdir().unwrap();

    let out = agora_in(
        &alice,
        work.path(),
        &["new", "acme/greeter", "--runtime", "wasm"],
    )
    .ok();
    assert!(out.contains("Created acme/greeter in ./greeter"), "{out}");
    let dir = work.path().join("greeter");
    for file in [
        "plugin.yaml",
        "Cargo.toml",
        "src/main.rs",
        "README.md",
        "LICENSE",
    ] {
        assert!(dir.join(file).is_file(), "{file} is missing");
    }
    let err = agora_in(
        &alice,
        work.path(),
        &["new", "greeter", "--runtime", "wasm"],
    )
    .fails();
    assert!(err.contains("already exists"), "{err}");

    let built = agora_in(&alice, &dir, &["build"]).ok();
    assert!(
        built.contains("Built") && built.contains("plugin.wasm"),
        "{built}"
    );
    let again = agora_in(&alice, &dir, &["build"]).ok();
    assert!(again.contains("Unchanged"), "{again}");

    // --sbom writes the bill of materials where plugin.yaml names it, with cargo-cyclonedx;
    // without an `sbom` field it says what to add.
    let refused = agora_in(&alice, &dir, &["build", "--sbom"]).fails();
    assert!(
        refused.contains("sbom is missing") && refused.contains("sbom: sbom.cdx.json"),
        "{refused}"
    );
    let yaml = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    std::fs::write(
        dir.join("plugin.yaml"),
        format!("{yaml}sbom: sbom.cdx.json\n"),
    )
    .unwrap();
    let built = agora_in(&alice, &dir, &["build", "--sbom"]).ok();
    assert!(built.contains("sbom.cdx.json"), "{built}");
    let sbom: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sbom.cdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    assert!(
        sbom["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/"))),
        "the plugin's crates are listed: {sbom}"
    );
    assert!(
        !dir.join(".agora-sbom.json").exists(),
        "the generator's own file is moved into place"
    );
    let audit = agora_in(&alice, &dir, &["--json", "audit", "."]).json();
    let sbom_stage = audit["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "sbom")
        .unwrap_or_else(|| panic!("no sbom stage: {audit}"));
    assert_eq!(sbom_stage["findings"], serde_json::json!([]), "{audit}");
    agora_in(&alice, &dir, &["conformance", "."]).ok();
    agora_in(&alice, &dir, &["publish", "."]).ok();
    agora_in(
        &alice,
        work.path(),
        &["install", "acme/greeter", "--dir", "plugins"],
    )
    .ok();
    let answer = agora_in(
        &alice,
        work.path(),
        &[
            "run",
            "acme/greeter",
            "greet",
            "--input",
            r#"{"name":"Ada"}"#,
            "--dir",
            "plugins",
        ],
    )
    .ok();
    assert!(answer.contains("Hello, Ada!"), "{answer}");
}

/// Needs root, like every native plugin run.
#[test]
fn a_new_exec_plugin_builds_and_conforms() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    with_cargo_target(&mut alice);
    let work = tempfile::tempdir().unwrap();
    agora_in(
        &alice,
        work.path(),
        &["new", "echoer", "--runtime", "exec", "--publisher", "acme"],
    )
    .ok();
    let dir = work.path().join("echoer");
    let built = agora_in(&alice, &dir, &["build"]).ok();
    assert!(built.contains("bin/echoer"), "{built}");
    let report = agora_in(&alice, &dir, &["--json", "conformance", "."]).json();
    assert_eq!(report["passed"], true, "{report}");
}

/// docs/ci/publish-plugin.yml stays true: each of its `run: agora …` steps, run in order
/// on a new plugin against a live registry, builds, audits, signs and publishes it.
#[test]
fn the_example_ci_workflow_builds_audits_signs_and_publishes() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    let key = alice.sign_for("acme");
    with_cargo_target(&mut alice);
    let work = tempfile::tempdir().unwrap();
    agora_in(
        &alice,
        work.path(),
        &["new", "acme/ci-greeter", "--runtime", "wasm"],
    )
    .ok();
    let dir = work.path().join("ci-greeter");
    let yaml = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    std::fs::write(
        dir.join("plugin.yaml"),
        format!("{yaml}sbom: sbom.cdx.json\n"),
    )
    .unwrap();

    let workflow = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ci/publish-plugin.yml"),
    )
    .unwrap();
    let steps: Vec<&str> = workflow
        .lines()
        .filter_map(|l| l.trim().strip_prefix("run: "))
        .filter(|run| run.starts_with("agora "))
        .collect();
    assert_eq!(steps.len(), 4, "{steps:?}");
    let bin = Path::new(env!("CARGO_BIN_EXE_agora")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let home = tempfile::tempdir().unwrap();
    for step in steps {
        let out = std::process::Command::new("sh")
            .args(["-c", step])
            .current_dir(&dir)
            .env("PATH", &path)
            .env("HOME", home.path())
            .env("AGORA_REGISTRY", &server.url)
            .env("AGORA_TOKEN", &server.admin_token)
            .env("AGORA_SIGNING_KEY", &key)
            .envs(alice.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{step}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let audit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("agora-audit.json")).unwrap())
            .unwrap();
    assert!(
        audit["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stage"] == "sbom"),
        "{audit}"
    );
    let info = alice.run(&["--json", "info", "acme/ci-greeter"]).json();
    assert_eq!(info["latest_version"], "0.1.0", "{info}");
}
