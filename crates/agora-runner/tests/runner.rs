//! The runner on real plugins built from source: the contract, the policy, the cache and
//! the audit trail, for WASM and native plugins.

mod support;

use std::sync::{Arc, Mutex};

use agora_contract::Rejection;
use agora_runner::callbacks::{
    CoreAnswer, CoreCall, CoreFuture, CoreHandler, CoreLink, CoreSecret,
};
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
    assert!(
        err.to_string().contains("declares: callback, echo"),
        "{err}"
    );
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

/// The host's core as a test sees it: it checks every callback's signature itself, with
/// the key it derives from its secret and the launch (the runner vouches for nothing).
struct TestCore {
    secret: Vec<u8>,
    seen: Mutex<Vec<(CoreCall, Result<(), Rejection>)>>,
}

impl CoreHandler for TestCore {
    fn call(&self, call: CoreCall) -> CoreFuture<'_> {
        Box::pin(async move {
            let key = agora_contract::derive_launch_key(
                &self.secret,
                &call.launch,
                &call.plugin_version(),
                &call.digest,
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let verdict = key.verify_callback(
                "POST",
                &agora_contract::callback_path(&call.name),
                Some(&call.timestamp),
                Some(&call.signature),
                &call.body,
                now,
            );
            let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
            let answer = json!({"verified": verdict.is_ok(), "got": body});
            self.seen.lock().unwrap().push((call, verdict));
            Ok(CoreAnswer {
                status: if verdict.is_ok() { 200 } else { 401 },
                content_type: None,
                body: answer.to_string().into(),
            })
        })
    }
}

fn test_core(secret: &[u8]) -> Arc<TestCore> {
    Arc::new(TestCore {
        secret: secret.to_vec(),
        seen: Mutex::new(Vec::new()),
    })
}

/// A harness whose runner has `core` and allows `notes.*`, and the example `name` (built
/// with `features`) declaring the callback `notes.add` and the entrypoint `callback`.
async fn callback_plugin(
    core: &Arc<TestCore>,
    name: &str,
    features: &[&str],
) -> (Harness, PluginSource) {
    let mut allowed = policy(false);
    allowed.callbacks = vec!["notes.*".into()];
    let core = core.clone();
    let h = Harness::with_config(allowed, |config| {
        config.core = Some(CoreLink {
            secret: CoreSecret::new(&core.secret).unwrap(),
            handler: core,
        });
    });
    let dir = support::example(name, features, h.plugins.path());
    let manifest = dir.join("plugin.yaml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    if !text.contains("/callback") {
        text = text.replace(
            "entrypoints:\n",
            "entrypoints:\n  callback: { path: /callback }\n",
        );
    }
    std::fs::write(&manifest, format!("{text}callbacks: [notes.add]\n")).unwrap();
    let source = PluginSource::from_dir(&dir).unwrap();
    (h, source)
}

/// The example `name` calls `notes.add` (the core verifies it and sees who called, with
/// the body `sent`), `notes.delete` (403, audited) and `notes.add` with a forged key (401,
/// audited); only the first reaches the core.
async fn callbacks_reach_the_core_signed_and_only_those(
    name: &str,
    features: &[&str],
    sent: serde_json::Value,
) {
    let core = test_core(b"a core secret of at least thirty-two bytes");
    let (h, source) = callback_plugin(&core, name, features).await;
    let digest = source.digest.to_string();
    let plugin = h.runner.load(source).await.unwrap();
    assert_eq!(plugin.grant().callbacks, ["notes.add"]);

    // Declared and granted: the core sees a signature it verifies, and who called.
    let input = json!({"name": "notes.add", "body": sent}).to_string();
    let answer = plugin.call("callback", input.as_bytes()).await.unwrap();
    assert_eq!(
        answer,
        json!({"status": 200, "answer": {"verified": true, "got": sent}})
    );
    {
        let seen = core.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (call, verdict) = &seen[0];
        assert_eq!(*verdict, Ok(()));
        assert_eq!(call.plugin, format!("examples/{name}"));
        assert_eq!(call.plugin_version(), format!("examples/{name}@1.0.0"));
        assert_eq!(call.digest, digest);
        assert_eq!(call.launch, plugin.launch_id());
        assert_eq!(call.name, "notes.add");
    }

    // Not declared: refused by the runner, audited, never forwarded.
    let answer = plugin
        .call("callback", br#"{"name":"notes.delete","body":{}}"#)
        .await
        .unwrap();
    assert_eq!(answer["status"], 403, "{answer}");
    assert_eq!(answer["answer"]["status"], 403, "{answer}");
    // Signed with another key: refused as unauthenticated.
    let answer = plugin
        .call("callback", br#"{"name":"notes.add","forge":true}"#)
        .await
        .unwrap();
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(core.seen.lock().unwrap().len(), 1);

    let events = h.audit();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["event"] == kind).collect()
    };
    let called = of("callback");
    assert_eq!(called.len(), 1, "{events:?}");
    assert_eq!(called[0]["callback"], "notes.add");
    assert_eq!(called[0]["status"], 200);
    assert_eq!(called[0]["plugin"], format!("examples/{name}"));
    let denied = of("callback_denied");
    assert_eq!(denied.len(), 2, "{events:?}");
    assert_eq!(denied[0]["callback"], "notes.delete");
    assert_eq!(denied[0]["status"], 403);
    let reason = |i: usize| denied[i]["reason"].as_str().unwrap();
    assert!(reason(0).contains("not among those this plugin declares"));
    assert_eq!(denied[1]["callback"], "notes.add");
    assert_eq!(denied[1]["status"], 401);
    assert!(reason(1).contains("Agora-Signature"), "{}", reason(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_callbacks_reach_the_core_signed_and_undeclared_or_forged_ones_are_refused() {
    callbacks_reach_the_core_signed_and_only_those("echo-native", &[], json!({"text": "hi"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_callbacks_reach_the_core_signed_and_undeclared_or_forged_ones_are_refused() {
    // hello-wasm sends a fixed body, whatever the input says.
    callbacks_reach_the_core_signed_and_only_those(
        "hello-wasm",
        &["callback"],
        json!({"from": "hello-wasm"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_declaring_a_callback_the_policy_does_not_allow_never_starts() {
    let core = test_core(&[1; 32]);
    let (_plugins, source) = callback_plugin(&core, "echo-native", &[]).await;
    let h = Harness::new(policy(false));
    let Err(err) = h.runner.load(source).await else {
        panic!("a callback the policy does not allow was admitted");
    };
    let RunError::Refused(refusal) = &err else {
        panic!("expected a refusal, got {err}");
    };
    assert_eq!(refusal.field, "callbacks[0]");
    assert!(err.to_string().contains("`notes.add`"), "{err}");
    assert!(err.to_string().contains("`callbacks`"), "{err}");
    assert!(h.has_event("refused", None));
}
