//! `agora conformance` through the real binary: it runs a plugin under the host policy
//! it is given (`--policy`, `AGORA_RUNNER_POLICY`, the user's `policy.toml`), and under
//! one made from the manifest without.

mod support;

use support::*;

/// The `error: ` line of a failed run, without its prefix and line break.
fn error_line(run: &Run) -> String {
    let err = run.fails();
    err.trim_end()
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("no `error: ` prefix: {err}"))
        .to_owned()
}

#[test]
fn conformance_runs_under_the_policy_it_is_given() {
    let work = tempfile::tempdir().unwrap();
    let hello = example_plugin("hello-wasm", work.path());
    let cli = Cli {
        registry: "http://127.0.0.1:9".into(),
        token: None,
        home: tempfile::tempdir().unwrap(),
        key: None,
        env: Vec::new(),
    };
    let state = work.path().join("runner");
    let conformance = |extra: &[&str]| {
        let mut args = vec![
            "conformance",
            hello.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cli.run_in(work.path(), &args)
    };
    std::fs::write(work.path().join("open.toml"), "mode = \"open\"\n").unwrap();
    std::fs::write(
        work.path().join("deny.toml"),
        "mode = \"open\"\ndeny = [\"examples/*\"]\n",
    )
    .unwrap();
    std::fs::write(
        work.path().join("tight.toml"),
        "mode = \"open\"\n[limits]\ntimeout_ms = 100\n[defaults]\ntimeout_ms = 100\n",
    )
    .unwrap();

    // No policy: judged against its own declaration.
    let text = conformance(&[]).ok();
    assert!(
        text.contains("under a policy made from its manifest"),
        "{text}"
    );
    assert!(text.contains("passed: all"), "{text}");

    // A policy that admits it: run under it, and the report says which.
    let text = conformance(&["--policy", "open.toml"]).ok();
    assert!(text.contains("under the host policy open.toml"), "{text}");

    // A policy that refuses it: the policy check fails with the refusal.
    let run = conformance(&["--policy", "deny.toml"]);
    let err = error_line(&run);
    assert!(
        err.starts_with("examples/hello-wasm does not conform: policy: refused by the host policy: deny: examples/hello-wasm matches"),
        "{err}"
    );
    let report = run.stdout();
    assert!(report.contains("FAIL policy"), "{report}");
    assert!(
        report.contains("under the host policy deny.toml"),
        "{report}"
    );

    // The policy's ceilings count too; AGORA_RUNNER_POLICY names it as --policy does.
    let mut with_env = Cli {
        registry: cli.registry.clone(),
        token: None,
        home: tempfile::tempdir().unwrap(),
        key: None,
        env: vec![("AGORA_RUNNER_POLICY".into(), "tight.toml".into())],
    };
    let args = [
        "--json",
        "conformance",
        hello.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let run = with_env.run_in(work.path(), &args);
    let err = error_line(&run);
    assert!(
        err.contains("resources.timeout_ms: asks for 2000 ms; this host allows at most 100 ms"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["policy"], "the host policy tight.toml");

    // The user's policy.toml, when present, is the default.
    with_env.env.clear();
    let config = with_env.home.path().join("config/agora");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::copy(work.path().join("deny.toml"), config.join("policy.toml")).unwrap();
    let err = error_line(&with_env.run_in(work.path(), &args));
    assert!(err.contains("deny: examples/hello-wasm matches"), "{err}");
}
