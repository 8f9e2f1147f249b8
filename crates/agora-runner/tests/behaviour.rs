//! The behavioural run of `agora_runner::behaviour` on real plugins: a good one is clean,
//! one that calls a host it does not declare and one that breaks the contract are not.

mod support;

use agora_core::manifest::Manifest;
use agora_runner::behaviour::BehaviourRun;

fn rules(findings: &[agora_core::verification::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

async fn run(dir: &std::path::Path) -> Vec<agora_core::verification::Finding> {
    let manifest =
        Manifest::from_yaml(&std::fs::read_to_string(dir.join("plugin.yaml")).unwrap()).unwrap();
    let state = tempfile::tempdir().unwrap();
    BehaviourRun::new(state.path().to_path_buf())
        .check(dir, &manifest)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_and_failed_checks_become_findings() {
    let dest = tempfile::tempdir().unwrap();
    let hello = support::example("hello-wasm", &[], dest.path());
    let findings = run(&hello).await;
    assert!(findings.is_empty(), "{findings:?}");

    let sneaky = support::example("sneaky-wasm", &[], dest.path());
    let findings = run(&sneaky).await;
    assert_eq!(
        rules(&findings),
        ["behaviour.undeclared-host"],
        "{findings:?}"
    );
    assert!(
        findings[0].message.contains("telemetry.example.net:80"),
        "{findings:?}"
    );

    let yaml = std::fs::read_to_string(sneaky.join("plugin.yaml")).unwrap();
    std::fs::write(
        sneaky.join("plugin.yaml"),
        yaml.replace(
            "  sync: { path: /sync, timeout_ms: 5000 }",
            "  report: { path: /report, timeout_ms: 5000 }",
        ),
    )
    .unwrap();
    let findings = run(&sneaky).await;
    assert_eq!(
        rules(&findings),
        ["conformance.entrypoint-report"],
        "{findings:?}"
    );
    assert_eq!(findings[0].location.as_deref(), Some("entrypoints.report"));
}
