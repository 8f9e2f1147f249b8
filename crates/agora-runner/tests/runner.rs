//! The runner on real plugins built from source: the contract, the policy, the cache and
//! the audit trail, for WASM and native plugins.

mod support;

use agora_runner::{PluginSource, RunError};
use serde_json::json;
use support::{Harness, policy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_plugin_answers_signed_requests_from_its_sandbox() {
    let h = Harness::new(policy(false));
    let echo = h.load("echo-native").await;
    let answer = echo.call("echo", br#"{"hello":"sandbox"}"#).await.unwrap();
    assert_eq!(answer, json!({"hello": "sandbox"}));
    let err = echo.call("echo", b"not json").await.unwrap_err();
    assert!(matches!(err, RunError::BadInput(_)), "{err}");
    let err = echo.call("shout", b"{}").await.unwrap_err();
    assert!(err.to_string().contains("declares: echo"), "{err}");
    assert!(h.has_event("pull", None));
    assert!(h.has_event("start", None));
    let request = h
        .audit()
        .into_iter()
        .find(|e| e["event"] == "request")
        .unwrap();
    assert_eq!(request["plugin"], "examples/echo-native");
    assert_eq!(request["status"], 200);
    assert!(request["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_plugin_answers_and_is_compiled_once() {
    let h = Harness::new(policy(false));
    let hello = h.load("hello-wasm").await;
    let answer = hello.call("greet", br#"{"name":"Ada"}"#).await.unwrap();
    assert_eq!(answer, json!({"greeting": "Hello, Ada!"}));
    let err = hello.call("greet", br#"{"nom":"Ada"}"#).await.unwrap_err();
    match err {
        RunError::Failed { status, body } => {
            assert_eq!(status, 400);
            assert!(body.contains("\"status\":400"), "{body}");
        }
        other => panic!("expected the plugin's problem, got {other}"),
    }
    let again = h.load("hello-wasm").await;
    again.call("greet", br#"{"name":"Bo"}"#).await.unwrap();
    let cached: Vec<_> = std::fs::read_dir(h.state.path().join("cache/wasm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one compiled module per digest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_refuses_a_plugin_before_it_starts() {
    let mut strict = policy(false);
    strict.limits.memory_mb = 16;
    strict.defaults.memory_mb = 16;
    let h = Harness::new(strict);
    let err = h
        .runner
        .load(h.source("echo-native", &[]))
        .await
        .err()
        .expect("refused");
    let RunError::Refused(refusal) = err else {
        panic!("expected a refusal, got {err}")
    };
    assert_eq!(refusal.field, "resources.memory_mb");
    assert_eq!(
        refusal.reason,
        "asks for 32 MiB; this host allows at most 16 MiB"
    );
    assert!(h.has_event("refused", None));
    assert!(!h.has_event("start", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_changed_since_install_is_refused() {
    let h = Harness::new(policy(false));
    let source = h.source("echo-native", &[]);
    let pinned = source.digest;
    std::fs::write(&source.code, b"#!/bin/sh\necho owned\n").unwrap();
    let err = PluginSource::from_dir(&source.dir)
        .unwrap()
        .pinned(&pinned)
        .unwrap_err();
    assert!(matches!(err, RunError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("reinstall"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_secrets_reach_the_plugin_and_nothing_else_does() {
    let mut with_secret = policy(false);
    with_secret.secrets.push(agora_runner::policy::SecretGrant {
        plugin: "examples/hostile-native".into(),
        name: "API_TOKEN".into(),
        from_env: None,
        from_file: Some(String::new()),
    });
    let h = Harness::new(with_secret.clone());
    let secret_file = h.state.path().join("token");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    with_secret.secrets[0].from_file = Some(secret_file.display().to_string());
    let h = Harness {
        runner: agora_runner::Runner::new({
            let mut c = agora_runner::RunnerConfig::new(h.state.path().join("r"));
            c.policy = with_secret;
            c
        })
        .unwrap(),
        ..h
    };
    let dir = support::example("hostile-native", &[], h.plugins.path());
    let manifest = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    std::fs::write(
        dir.join("plugin.yaml"),
        manifest.replace(
            "capabilities: [outbound_http]",
            "capabilities: [outbound_http, secrets_read]\nsecrets: [API_TOKEN]",
        ),
    )
    .unwrap();
    let plugin = h
        .runner
        .load(PluginSource::from_dir(&dir).unwrap())
        .await
        .unwrap();
    let env = plugin.call("env", b"{}").await.unwrap();
    let names: Vec<&str> = env["result"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "AGORA_EGRESS_PROXY",
            "AGORA_PLUGIN_FD",
            "AGORA_PLUGIN_KEY",
            "API_TOKEN",
            "HOME",
            "TMPDIR"
        ]
    );
    assert_eq!(env["result"]["API_TOKEN"], "s3cret");
}

#[test]
fn sandboxes_left_by_a_dead_runner_are_ended() {
    // A cgroup as a runner with pid 4194303 (above any pid in use here) would leave it,
    // with a process still inside.
    let dir = std::path::Path::new("/sys/fs/cgroup/pids/agora/r4194303-test-0");
    std::fs::create_dir_all(dir).unwrap();
    let mut orphan = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    std::fs::write(dir.join("cgroup.procs"), orphan.id().to_string()).unwrap();
    assert!(agora_runner::sweep_stale_sandboxes() >= 1);
    let status = orphan.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!dir.exists());
}
