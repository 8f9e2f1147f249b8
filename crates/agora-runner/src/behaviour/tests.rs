//! The denial → finding mapping, the conformance → finding mapping, and the policy a
//! behavioural run gets.

use serde_json::json;

use super::*;

fn manifest(extra: &str) -> Manifest {
    Manifest::from_yaml(&format!(
        "api_version: agora/v1\npublisher: acme\nname: sync\nversion: 1.0.0\n\
         description: Syncs\nlicense: MIT\nruntime:\n  type: wasm\n  module: plugin.wasm\n\
         entrypoints:\n  sync: {{ path: /sync, timeout_ms: 60000 }}\n\
         compatibility: {{ runner_api: v1 }}\n{extra}"
    ))
    .unwrap()
}

fn with_network() -> Manifest {
    manifest(
        "capabilities: [outbound_http, secrets_read]\n\
         network: { outbound_hosts: ['api.example.com', 'localhost:18081'] }\n\
         secrets: [API_TOKEN]\nresources: { memory_mb: 4096, timeout_ms: 90000 }\n",
    )
}

fn denial(fields: serde_json::Value) -> Value {
    let mut event = json!({"event": "denial", "plugin": "acme/sync", "version": "1.0.0"});
    event
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    event
}

fn rules(findings: &[Finding]) -> Vec<(&str, Severity)> {
    findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity))
        .collect()
}

#[test]
fn refused_callbacks_become_findings_unless_only_the_core_was_missing() {
    let m = manifest("callbacks: [notes.add]\n");
    let refused = |status: u16, callback: &str, reason: &str| {
        json!({"event": "callback_denied", "status": status, "callback": callback,
               "reason": reason})
    };
    let events = [
        refused(503, "notes.add", "this runner has no core to call back"),
        refused(403, "kv.put", "not among those this plugin declares"),
        refused(
            401,
            "notes.add",
            "Agora-Signature does not match the request",
        ),
        json!({"event": "callback", "status": 200, "callback": "notes.add"}),
    ];
    let findings = denial_findings(&events, 0, &m);
    assert_eq!(
        rules(&findings),
        [
            ("behaviour.undeclared-callback", Severity::High),
            ("behaviour.callback-refused", Severity::Medium),
        ]
    );
    assert!(
        findings[0].message.contains("kv.put"),
        "{}",
        findings[0].message
    );
    assert!(
        findings[0].message.contains("callbacks: notes.add"),
        "{}",
        findings[0].message
    );
    assert_eq!(findings[0].location.as_deref(), Some("callbacks"));
    assert!(
        findings[1].message.contains("Agora-Signature"),
        "{}",
        findings[1].message
    );
}

#[test]
fn every_denial_becomes_a_finding_naming_what_was_denied() {
    let m = with_network();
    let events = [
        json!({"event": "start", "sandbox": "wasmtime"}),
        denial(
            json!({"denied": "host", "target": "telemetry.example.net:80",
                      "reason": "not among the plugin's granted outbound hosts"}),
        ),
        denial(json!({"denied": "host", "target": "localhost:18081",
                      "reason": "resolves to the internal address 127.0.0.1"})),
        denial(json!({"denied": "host", "target": "api.example.com:8443", "reason": "x"})),
        denial(json!({"denied": "file", "target": "/etc/shadow", "reason": "EACCES"})),
        denial(json!({"denied": "syscall", "reason": "a forbidden system call (seccomp)"})),
        denial(json!({"denied": "limit", "limit": "memory", "memory_mb": 32})),
        denial(json!({"denied": "limit", "limit": "timeout", "timeout_ms": 300})),
        denial(json!({"denied": "auth"})),
        json!({"event": "request", "status": 200}),
    ];
    let findings = denial_findings(&events, 0, &m);
    assert_eq!(
        rules(&findings),
        [
            ("behaviour.undeclared-host", Severity::High),
            ("behaviour.host-refused", Severity::Low),
            ("behaviour.undeclared-host", Severity::High),
            ("behaviour.file-denied", Severity::High),
            ("behaviour.killed", Severity::High),
            ("behaviour.killed", Severity::High),
            ("behaviour.killed", Severity::High),
            ("behaviour.denied", Severity::Medium),
        ]
    );
    let message = |i: usize| findings[i].message.as_str();
    assert!(
        message(0).contains("telemetry.example.net:80")
            && message(0).contains("api.example.com, localhost:18081"),
        "{}",
        message(0)
    );
    assert_eq!(
        findings[0].location.as_deref(),
        Some("network.outbound_hosts")
    );
    assert!(message(1).contains("internal address"), "{}", message(1));
    // A declared name on a port it did not declare is undeclared.
    assert!(
        message(2).contains("api.example.com:8443"),
        "{}",
        message(2)
    );
    assert!(message(3).contains("/etc/shadow"), "{}", message(3));
    assert!(
        message(4).contains("forbidden system call"),
        "{}",
        message(4)
    );
    assert_eq!(
        message(5),
        "it was stopped at its memory limit (memory_mb 32)"
    );
    assert_eq!(
        message(6),
        "it was stopped at its timeout limit (timeout_ms 300)"
    );

    // Nothing declared: every host is undeclared, and the message says none is.
    let bare = manifest("");
    let findings = denial_findings(&events[1..2], 3, &bare);
    assert_eq!(
        rules(&findings),
        [
            ("behaviour.undeclared-host", Severity::High),
            ("behaviour.denied", Severity::Medium)
        ]
    );
    assert!(
        findings[0]
            .message
            .ends_with("(network.outbound_hosts: none)")
    );
    assert!(findings[1].message.starts_with("3 more audit events"));
    assert!(denial_findings(&events[..1], 0, &bare).is_empty());
}

#[test]
fn long_quoted_text_is_cut() {
    let long = "a".repeat(1000);
    let events = [denial(
        json!({"denied": "host", "target": format!("{long}.com:80"), "reason": "x"}),
    )];
    let findings = denial_findings(&events, 0, &manifest(""));
    assert!(findings[0].message.len() < 400, "{}", findings[0].message);
}

fn check(name: &str, passed: bool, skipped: bool) -> conformance::Check {
    conformance::Check {
        name: name.into(),
        passed,
        skipped,
        detail: format!("{name} detail"),
    }
}

#[test]
fn failed_conformance_checks_are_findings_auth_ones_critical() {
    let report = conformance::Report {
        plugin: "acme/sync".into(),
        version: "1.0.0".into(),
        runtime: "wasm".into(),
        digest: "sha256:00".into(),
        policy: None,
        passed: false,
        checks: vec![
            check("runner_api", false, false),
            check("health", true, false),
            check("entrypoint report", false, false),
            check("auth: wrong key", false, false),
            check("errors: problem+json", false, false),
            check("timeout", false, true),
        ],
    };
    let findings = conformance_findings(&report);
    assert_eq!(
        rules(&findings),
        [
            ("conformance.runner_api", Severity::High),
            ("conformance.entrypoint-report", Severity::High),
            ("conformance.auth-wrong-key", Severity::Critical),
            ("conformance.errors-problem-json", Severity::High),
        ]
    );
    assert_eq!(
        findings[0].location.as_deref(),
        Some("compatibility.runner_api")
    );
    assert_eq!(findings[1].location.as_deref(), Some("entrypoints.report"));
    assert_eq!(findings[1].message, "entrypoint report detail");
}

#[test]
fn the_policy_grants_what_the_manifest_declares_within_the_ceilings() {
    let m = bounded(&with_network());
    assert_eq!(m.resources.timeout_ms, Some(MAX_CALL_TIMEOUT_MS));
    assert_eq!(m.resources.memory_mb, Some(MAX_MEMORY_MB));
    assert_eq!(m.entrypoints["sync"].timeout_ms, Some(MAX_CALL_TIMEOUT_MS));
    let policy = policy_for(&m, Path::new("/run/secret"));
    let grant = policy.admit(&m).unwrap();
    assert!(grant.allows_host("api.example.com", 443));
    assert!(grant.allows_host("localhost", 18081));
    assert!(!grant.allows_host("telemetry.example.net", 80));
    assert!(!grant.allow_private_addresses);
    assert_eq!(grant.secrets.len(), 1);
    assert_eq!(grant.secrets[0].from_file.as_deref(), Some("/run/secret"));
    assert_eq!(grant.timeout_ms("sync"), MAX_CALL_TIMEOUT_MS);
    // Nothing declared, nothing granted.
    let bare = bounded(&manifest(""));
    let grant = policy_for(&bare, Path::new("/x")).admit(&bare).unwrap();
    assert!(grant.hosts.is_empty() && grant.secrets.is_empty());
    assert!(grant.callbacks.is_empty());
    // Declared callbacks are granted (the run has no core: they are answered 503), in the
    // behaviour run and in conformance alike.
    let calling = bounded(&manifest("callbacks: [notes.add]\n"));
    let grant = policy_for(&calling, Path::new("/x"))
        .admit(&calling)
        .unwrap();
    assert_eq!(grant.callbacks, ["notes.add"]);
    let grant = crate::conformance::policy_for(&calling)
        .admit(&calling)
        .unwrap();
    assert_eq!(grant.callbacks, ["notes.add"]);
}

#[test]
fn a_native_plugin_without_root_is_not_run_and_says_why() {
    let why = native_needs(1000).unwrap();
    assert!(why.contains("root") && why.contains("uid 1000"), "{why}");
    assert_eq!(native_needs(0), None);
    let oci = Manifest::from_yaml(
        "api_version: agora/v1\npublisher: acme\nname: img\nversion: 1.0.0\n\
         description: An image\nlicense: MIT\nruntime:\n  type: oci\n  image: ghcr.io/acme/img\n",
    );
    if let Ok(oci) = oci {
        assert!(cannot_run_here(&oci).unwrap().contains("OCI"));
    }
    let other = Manifest::from_yaml(
        "api_version: agora/v1\npublisher: acme\nname: far\nversion: 1.0.0\n\
         description: Elsewhere\nlicense: MIT\nruntime:\n  type: exec\n  binaries:\n    \
         windows-aarch64: bin/far\n",
    )
    .unwrap();
    assert!(cannot_run_here(&other).unwrap().contains("no executable"));
}

#[test]
fn findings_are_deduplicated_and_bounded_keeping_the_worst() {
    let one = |severity, i: usize| finding(severity, "behaviour.killed", format!("m{i}"), None);
    let mut many: Vec<Finding> = (0..40).map(|i| one(Severity::Low, i)).collect();
    many.push(one(Severity::Critical, 99));
    many.push(one(Severity::Critical, 99));
    let kept = bounded_findings(dedup(many));
    assert_eq!(kept.len(), MAX_FINDINGS);
    assert_eq!(kept[0].severity, Severity::Critical);
    let last = kept.last().unwrap();
    assert_eq!(last.rule, "behaviour.more-findings");
    assert_eq!(last.message, "10 more findings are not listed");
}
