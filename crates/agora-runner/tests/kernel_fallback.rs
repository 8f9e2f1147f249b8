//! Native plugins on older kernels: the runner builds Landlock rules for the strongest ABI
//! it may use, says which layers that leaves out, and the policy decides whether such a
//! weaker sandbox runs (with a warning in the audit log) or is refused. Older kernels are
//! stood in for by capping the ABI (`sandbox.landlock_max_abi`); the confinement that the
//! oldest ABI still gives is attacked for real. Needs root, like every native test.

mod support;

use agora_runner::RunError;
use agora_runner::kernel::{FULL_LANDLOCK_ABI, landlock_abi};
use agora_runner::policy::{HostPolicy, SandboxPolicy, WeakerSandbox};
use serde_json::json;
use support::{Harness, policy};

fn capped(abi: u8, weaker: WeakerSandbox) -> HostPolicy {
    HostPolicy {
        sandbox: SandboxPolicy {
            weaker,
            landlock_max_abi: Some(abi),
        },
        ..policy(false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landlock_abi_1_runs_with_a_warning_and_still_confines_files() {
    let (kernel_abi, _) = landlock_abi();
    assert!(
        kernel_abi >= 1,
        "this test needs a kernel with Landlock (found none)"
    );
    let h = Harness::new(capped(1, WeakerSandbox::Warn));
    let plugin = h.load("hostile-native").await;
    let layers = plugin
        .sandbox()
        .expect("a native plugin reports its sandbox");
    assert_eq!(layers.landlock_abi, 1);
    assert_eq!(layers.kernel_landlock_abi, kernel_abi);
    assert_eq!(layers.active, ["filesystem"]);
    assert_eq!(layers.missing, ["truncate", "ioctl-dev"]);
    assert!(layers.is_weaker());

    // The warning is in the audit log, with what is missing.
    let warned = h
        .audit()
        .into_iter()
        .find(|e| e["event"] == "weaker_sandbox")
        .expect("a weaker_sandbox audit event");
    let reason = warned["reason"].as_str().unwrap();
    assert!(reason.contains("Landlock ABI 1"), "{reason}");
    assert!(reason.contains("not confined: truncate"), "{reason}");

    // ABI 1 still confines reads and writes to the plugin's own directories.
    for path in [
        "/etc/passwd",
        "/root/.bashrc",
        "/tmp/plugin/../../etc/shadow",
    ] {
        let answer = plugin
            .call("read", json!({"path": path}).to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(answer["ok"], false, "{path} must not be readable: {answer}");
    }
    for path in ["/etc/agora-owned", "/usr/owned", "/tmp/plugin/plugin.yaml"] {
        let answer = plugin
            .call("write", json!({"path": path}).to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(answer["ok"], false, "{path} must not be writable: {answer}");
    }
    assert!(!std::path::Path::new("/etc/agora-owned").exists());
    let own = plugin
        .call(
            "write",
            json!({"path": "/tmp/scratch"}).to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(own["ok"], true, "the work directory stays writable: {own}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weaker_sandbox_is_refused_when_the_policy_says_so() {
    let h = Harness::new(capped(FULL_LANDLOCK_ABI - 1, WeakerSandbox::Refuse));
    let err = match h.runner.load(h.source("echo-native", &[])).await {
        Ok(_) => panic!("a weaker sandbox must be refused under weaker = \"refuse\""),
        Err(e) => e,
    };
    let RunError::Sandbox(message) = &err else {
        panic!("expected a sandbox refusal, got {err}");
    };
    assert!(
        message.contains("cannot build the full sandbox"),
        "{message}"
    );
    assert!(message.contains("not confined: ioctl-dev"), "{message}");
    assert!(message.contains("weaker = \"refuse\""), "{message}");
    let refused = h
        .audit()
        .into_iter()
        .find(|e| e["event"] == "refused")
        .expect("the refusal is audited");
    assert_eq!(refused["field"], "sandbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_sandbox_passes_a_refusing_policy() {
    let (kernel_abi, _) = landlock_abi();
    assert!(
        kernel_abi >= FULL_LANDLOCK_ABI,
        "this test needs Linux 6.10 or newer (Landlock ABI {FULL_LANDLOCK_ABI}); found ABI {kernel_abi}"
    );
    let h = Harness::new(capped(FULL_LANDLOCK_ABI, WeakerSandbox::Refuse));
    let plugin = h.load("echo-native").await;
    assert!(!plugin.sandbox().unwrap().is_weaker());
    let answer = plugin.call("echo", br#"{"hello":"world"}"#).await.unwrap();
    assert_eq!(answer["hello"], "world", "{answer}");
    assert!(!h.audit().iter().any(|e| e["event"] == "weaker_sandbox"));
}
