//! `agora run` and `agora conformance` through the real binary: plugins published to a
//! real server, installed, then run in the sandbox from their pinned digests.

mod support;

use support::*;

#[test]
fn installed_plugins_run_in_the_sandbox_and_conform() {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    let work = tempfile::tempdir().unwrap();
    admin
        .run(&["user", "create", "alice", "--role", "publisher"])
        .ok();
    let token = admin
        .run(&[
            "--json",
            "token",
            "create",
            "--user",
            "alice",
            "--name",
            "run",
            "--scope",
            "publish:*",
        ])
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut alice = server.cli(Some(&token));
    alice.run(&["publisher", "create", "examples"]).ok();
    alice.sign_for("examples");
    let echo = example_plugin("echo-native", work.path());
    let hello = example_plugin("hello-wasm", work.path());
    for dir in [&echo, &hello] {
        alice.run(&["publish", dir.to_str().unwrap()]).ok();
    }
    for plugin in ["examples/echo-native", "examples/hello-wasm"] {
        alice
            .run_in(work.path(), &["install", plugin, "--dir", "plugins"])
            .ok();
    }
    let state = work.path().join("runner");
    let state = state.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend(["--dir", "plugins", "--state-dir", state]);
        alice.run_in(work.path(), &all)
    };

    let echoed: serde_json::Value =
        serde_json::from_str(&run(&["examples/echo-native", "echo", "--input", r#"{"n":1}"#]).ok())
            .unwrap();
    assert_eq!(echoed, serde_json::json!({"n": 1}));
    std::fs::write(work.path().join("in.json"), r#"{"name":"Ada"}"#).unwrap();
    let greeted: serde_json::Value =
        serde_json::from_str(&run(&["examples/hello-wasm", "greet", "--input", "@in.json"]).ok())
            .unwrap();
    assert_eq!(greeted["greeting"], "Hello, Ada!");

    // The plugin's own error, as the problem it sent.
    let err = run(&["examples/hello-wasm", "greet", "--input", "{}"]).fails();
    assert!(
        err.contains("answered 400: Bad Request: send a JSON object"),
        "{err}"
    );
    let err = run(&["examples/hello-wasm", "shout"]).fails();
    assert!(
        err.contains("has no entrypoint `shout` (it declares: greet)"),
        "{err}"
    );
    // A core for callbacks needs its URL and its secret, which is never echoed.
    let err = run(&["examples/echo-native", "echo", "--core-secret-file", "s"]).fails();
    assert!(err.contains("--core-secret-file needs --core-url"), "{err}");
    let err = run(&[
        "examples/echo-native",
        "echo",
        "--core-url",
        "http://127.0.0.1:9",
    ])
    .fails();
    assert!(err.contains("AGORA_CORE_SECRET"), "{err}");
    std::fs::write(work.path().join("short.secret"), "not-long-enough\n").unwrap();
    let err = run(&[
        "examples/echo-native",
        "echo",
        "--core-url",
        "http://127.0.0.1:9",
        "--core-secret-file",
        "short.secret",
    ])
    .fails();
    assert!(err.contains("at least 32 are needed"), "{err}");
    assert!(!err.contains("not-long-enough"), "{err}");
    let err = run(&["examples/echo-native", "echo", "--core-url", "ftp://core"]).fails();
    assert!(err.contains("must start with http:// or https://"), "{err}");
    // A plugin granted no callback gets neither the key nor the socket.
    let err = run(&[
        "examples/echo-native",
        "callback",
        "--input",
        r#"{"name":"notes.add"}"#,
    ])
    .fails();
    assert!(err.contains("AGORA_CORE_SOCKET is not set"), "{err}");
    let err = run(&["examples/echo-native@9.9.9", "echo"]).fails();
    assert!(
        err.contains("examples/echo-native@9.9.9 is not installed"),
        "{err}"
    );
    assert!(err.contains("examples/echo-native@1.0.0 is"), "{err}");
    let err = run(&["examples/nope", "x"]).fails();
    assert!(err.contains("examples/nope is not installed"), "{err}");

    // A policy that refuses it, with the reason.
    std::fs::write(
        work.path().join("policy.toml"),
        "mode = \"open\"\ndeny = [\"examples/echo-native\"]\n",
    )
    .unwrap();
    let err = run(&["examples/echo-native", "echo", "--policy", "policy.toml"]).fails();
    assert!(
        err.contains("refused by the host policy: deny: examples/echo-native matches"),
        "{err}"
    );
    // An older kernel, stood in for by capping the Landlock ABI: a warning naming what
    // is not confined, or a refusal when the policy says so; `doctor` says the same.
    std::fs::write(
        work.path().join("old-kernel.toml"),
        "mode = \"open\"\n[sandbox]\nlandlock_max_abi = 2\n",
    )
    .unwrap();
    let weaker = run(&[
        "examples/echo-native",
        "echo",
        "--input",
        r#"{"n":2}"#,
        "--policy",
        "old-kernel.toml",
    ]);
    assert_eq!(weaker.ok().trim(), "{\n  \"n\": 2\n}");
    let warning = weaker.stderr();
    assert!(
        warning.contains("warning: examples/echo-native runs in a weaker sandbox")
            && warning.contains("Landlock ABI 2")
            && warning.contains("not confined: truncate"),
        "{warning}"
    );
    std::fs::write(
        work.path().join("refuse.toml"),
        "mode = \"open\"\n[sandbox]\nlandlock_max_abi = 2\nweaker = \"refuse\"\n",
    )
    .unwrap();
    let err = run(&["examples/echo-native", "echo", "--policy", "refuse.toml"]).fails();
    assert!(
        err.contains("cannot build the full sandbox") && err.contains("weaker = \"refuse\""),
        "{err}"
    );
    let doctor = alice
        .run_in(
            work.path(),
            &["--json", "doctor", "--policy", "refuse.toml"],
        )
        .json();
    assert_eq!(doctor["native"], "refused", "{doctor}");
    assert_eq!(doctor["sandbox"]["landlock_abi"], 2);
    let doctor = alice.run_in(work.path(), &["--json", "doctor"]).json();
    assert_eq!(doctor["native"], "full", "{doctor}");
    assert!(doctor["host"]["landlock_abi"].as_u64().unwrap() >= 5);
    // A directory an agent keeps for a tenant: the tenant's [sandbox] counts too.
    let fleet = work.path().join("fleet/.agora");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(
        fleet.join("tenant-policy.toml"),
        "[sandbox]\nlandlock_max_abi = 2\nweaker = \"refuse\"\n",
    )
    .unwrap();
    let doctor = alice
        .run_in(work.path(), &["--json", "doctor", "--dir", "fleet"])
        .json();
    assert_eq!(doctor["native"], "refused", "{doctor}");
    assert!(
        doctor["blockers"][0]
            .as_str()
            .unwrap()
            .contains("the tenant policy's sandbox.weaker"),
        "{doctor}"
    );
    assert!(doctor["tenant_policy"].as_str().is_some(), "{doctor}");

    std::fs::write(work.path().join("bad.toml"), "mode = \"lax\"\n").unwrap();
    let err = run(&["examples/echo-native", "echo", "--policy", "bad.toml"]).fails();
    assert!(
        err.contains("bad.toml") && err.contains("unknown variant"),
        "{err}"
    );

    // Code changed after install does not run.
    std::fs::write(
        work.path().join("plugins/examples/hello-wasm/plugin.wasm"),
        b"\0asm garbage",
    )
    .unwrap();
    let err = run(&["examples/hello-wasm", "greet"]).fails();
    assert!(
        err.contains("does not match the digest it was installed with"),
        "{err}"
    );

    // Everything went to the audit log.
    let audit = std::fs::read_to_string(work.path().join("runner/audit.jsonl")).unwrap();
    for event in ["\"pull\"", "\"start\"", "\"request\"", "\"refused\""] {
        assert!(audit.contains(event), "{event} missing from {audit}");
    }

    // Conformance of a source directory and of an installed plugin.
    let text = alice
        .run_in(
            work.path(),
            &["conformance", hello.to_str().unwrap(), "--state-dir", state],
        )
        .ok();
    assert!(text.contains("passed: all"), "{text}");
    let report = alice
        .run_in(
            work.path(),
            &[
                "--json",
                "conformance",
                "examples/echo-native@1.0.0",
                "--dir",
                "plugins",
                "--state-dir",
                state,
            ],
        )
        .json();
    assert_eq!(report["passed"], true, "{report}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "runner_api",
            "health",
            "entrypoint callback",
            "entrypoint echo",
            "auth: unsigned",
            "auth: wrong key",
            "auth: stale timestamp",
            "errors: bad input",
            "errors: problem+json",
            "timeout"
        ]
    );
}
