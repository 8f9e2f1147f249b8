//! The conformance harness on good plugins and on plugins that break the contract.

mod support;

use agora_runner::conformance;
use agora_runner::{PluginSource, Runner, RunnerConfig};

async fn check(dir: &std::path::Path) -> conformance::Report {
    let source = PluginSource::from_dir(dir).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(state.path().to_path_buf());
    config.policy = conformance::policy_for(&source.manifest);
    let runner = Runner::new(config).unwrap();
    conformance::run(&runner, source).await.unwrap()
}

/// hostile-native built with `features`, declaring only its harmless `env` entrypoint.
fn misbehaving(features: &[&str], dest: &std::path::Path) -> std::path::PathBuf {
    let dir = support::example("hostile-native", features, dest);
    let manifest = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    let start = manifest.find("entrypoints:").unwrap();
    let end = manifest.find("compatibility:").unwrap();
    let manifest = format!(
        "{}entrypoints:\n  env: {{ path: /env }}\n{}",
        &manifest[..start],
        &manifest[end..]
    );
    std::fs::write(dir.join("plugin.yaml"), manifest).unwrap();
    dir
}

fn failed(report: &conformance::Report) -> Vec<&str> {
    report.failed().map(|c| c.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_good_examples_conform() {
    let dest = tempfile::tempdir().unwrap();
    for name in ["echo-native", "hello-wasm"] {
        let dir = support::example(name, &[], dest.path());
        // Eight checks, and one per entrypoint (echo-native has two, hello-wasm one).
        let all = 8 + PluginSource::from_dir(&dir)
            .unwrap()
            .manifest
            .entrypoints
            .len();
        let report = check(&dir).await;
        let text = report.to_text();
        assert!(report.passed, "{text}");
        assert_eq!(report.checks.len(), all, "{text}");
        // The timeout check passes only on a cut it saw (a 1 ms deadline, forced with a
        // 1 MB body when `{}` is answered at once); else it says it saw none.
        let timeout = report.checks.iter().find(|c| c.name == "timeout").unwrap();
        if timeout.skipped {
            assert!(!timeout.passed, "{text}");
            assert!(timeout.detail.starts_with("not observed: "), "{text}");
            assert!(text.contains("skip timeout"), "{text}");
            assert!(
                text.contains(&format!(
                    "passed: all {} checks that could run; skipped: timeout",
                    all - 1
                )),
                "{text}"
            );
        } else {
            assert!(timeout.passed, "{text}");
            assert!(timeout.detail.contains("was cut after"), "{text}");
            assert!(
                text.contains(&format!("passed: all {all} checks")),
                "{text}"
            );
        }
    }
    let clean = check(&misbehaving(&[], dest.path())).await;
    assert!(clean.passed, "{}", clean.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_skips_auth_fails_naming_the_check() {
    let dest = tempfile::tempdir().unwrap();
    let report = check(&misbehaving(&["skip-auth"], dest.path())).await;
    assert!(!report.passed);
    assert_eq!(
        failed(&report),
        ["auth: unsigned", "auth: wrong key", "auth: stale timestamp"],
        "{}",
        report.to_text()
    );
    let text = report.to_text();
    assert!(text.contains("FAIL auth: unsigned"), "{text}");
    assert!(text.contains("it must be refused with 401"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_with_html_errors_fails_naming_the_check() {
    let dest = tempfile::tempdir().unwrap();
    let report = check(&misbehaving(&["html-errors"], dest.path())).await;
    let failed = failed(&report);
    assert!(
        failed.contains(&"errors: problem+json"),
        "{}",
        report.to_text()
    );
    assert!(
        failed.contains(&"errors: bad input"),
        "{}",
        report.to_text()
    );
    assert!(
        report.to_text().contains("not application/problem+json"),
        "{}",
        report.to_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_entrypoint_is_cut_at_its_timeout() {
    let dest = tempfile::tempdir().unwrap();
    let dir = support::example("hostile-native", &[], dest.path());
    let manifest = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
    let start = manifest.find("entrypoints:").unwrap();
    let end = manifest.find("compatibility:").unwrap();
    let manifest = format!(
        "{}entrypoints:\n  spin: {{ path: /spin, timeout_ms: 200 }}\n{}",
        &manifest[..start],
        &manifest[end..]
    );
    std::fs::write(dir.join("plugin.yaml"), manifest).unwrap();
    let report = check(&dir).await;
    let timeout = report.checks.iter().find(|c| c.name == "timeout").unwrap();
    assert!(timeout.passed, "{}", report.to_text());
    assert!(
        timeout.detail.contains("200 ms timeout was cut"),
        "{}",
        timeout.detail
    );
    assert_eq!(failed(&report), ["entrypoint spin"], "{}", report.to_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_the_policy_refuses_fails_the_policy_check_with_the_refusal() {
    let dest = tempfile::tempdir().unwrap();
    let dir = support::example("hello-wasm", &[], dest.path());
    let source = PluginSource::from_dir(&dir).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(state.path().to_path_buf());
    // It asks for 2000 ms (resources.timeout_ms); this host allows 100.
    config.policy = conformance::policy_for(&source.manifest);
    config.policy.limits.timeout_ms = 100;
    let runner = Runner::new(config).unwrap();
    let report = conformance::run(&runner, source).await.unwrap();
    let text = report.to_text();
    assert!(!report.passed, "{text}");
    assert_eq!(failed(&report), ["policy"], "{text}");
    assert!(
        text.contains("FAIL policy")
            && text.contains("refused by the host policy: resources.timeout_ms: asks for 2000 ms; this host allows at most 100 ms"),
        "{text}"
    );
}
