//! OCI plugins under runc: the example passes the conformance harness, a timed-out
//! plugin is killed, and nothing is left behind (containers, mounts, cgroups). These
//! tests need root and runc (`apt-get install runc`); they fail without them.

mod support;

use std::time::{Duration, Instant};

use agora_runner::{PluginSource, RunError, Runner, RunnerConfig, conformance};
use support::{Harness, containers, oci_example, oci_policy};

fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&*dir.to_string_lossy()))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oci_example_conforms_under_runc() {
    let dest = tempfile::tempdir().unwrap();
    let dir = oci_example("echo-native", &[], dest.path());
    let source = PluginSource::from_dir(&dir).unwrap();
    let entrypoints = source.manifest.entrypoints.len();
    let state = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(state.path().to_path_buf());
    // The harness's policy admits the oci runtime and the image's registry itself.
    config.policy = conformance::policy_for(&source.manifest);
    let runner = Runner::new(config).unwrap();
    let report = conformance::run(&runner, source).await.unwrap();
    let text = report.to_text();
    assert!(report.passed, "{text}");
    assert_eq!(report.checks.len(), 8 + entrypoints, "{text}");
    assert!(containers(state.path()).is_empty());
    assert!(mounts_under(state.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_plugin_answers_with_the_contract_and_leaves_nothing_behind() {
    let h = Harness::new(oci_policy(false));
    let dir = oci_example("echo-native", &[], h.plugins.path());
    let source = PluginSource::from_dir(&dir).unwrap();
    // The pinned digest is the image manifest's.
    let image = source.manifest.runtime.image.clone().unwrap();
    assert!(image.ends_with(&source.digest.to_string()), "{image}");
    let plugin = h.runner.load(source).await.unwrap();
    let answer = plugin.call("echo", br#"{"a":1}"#).await.unwrap();
    assert_eq!(answer["a"], 1, "{answer}");
    let running = containers(h.state.path());
    assert_eq!(running.len(), 1, "{running:?}");
    let start = h
        .audit()
        .into_iter()
        .find(|e| e["event"] == "start")
        .unwrap();
    assert_eq!(start["sandbox"], "oci", "{start}");
    assert_eq!(start["container"], running[0].as_str(), "{start}");
    assert_eq!(start["uid"], 65534);
    drop(plugin);
    assert!(containers(h.state.path()).is_empty());
    assert!(mounts_under(h.state.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_oci_plugin_is_killed_and_its_container_deleted() {
    let h = Harness::new(oci_policy(false));
    let dir = oci_example("hostile-native", &[], h.plugins.path());
    let plugin = h
        .runner
        .load(PluginSource::from_dir(&dir).unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let err = plugin.call("spin", b"{}").await.unwrap_err();
    assert!(matches!(err, RunError::Timeout { ms: 300 }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(h.has_event("denial", Some("timeout")));
    // Killed with its container; the next call starts a new one.
    assert!(containers(h.state.path()).is_empty());
    assert_eq!(plugin.health().await.unwrap().status, 200);
    assert_eq!(containers(h.state.path()).len(), 1);
    drop(plugin);
    assert!(containers(h.state.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_missing_from_the_cache_or_tampered_with_is_refused() {
    let dest = tempfile::tempdir().unwrap();
    let dir = oci_example("echo-native", &[], dest.path());
    let source = PluginSource::from_dir(&dir).unwrap();
    // Pinned elsewhere than what is there.
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let err = source.clone().pinned(&other.parse().unwrap()).unwrap_err();
    assert!(matches!(err, RunError::Tampered { .. }), "{err}");
    // A layer changed after the install.
    let h = Harness::new(oci_policy(false));
    let blobs = dir.join("image/blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&layer, bytes).unwrap();
    let Err(err) = h.runner.load(source).await else {
        panic!("a tampered layer was used");
    };
    assert!(matches!(err, RunError::Tampered { .. }), "{err}");
    // No image at all.
    std::fs::remove_dir_all(dir.join("image")).unwrap();
    let err = PluginSource::from_dir(&dir).unwrap_err();
    assert!(
        err.to_string().contains("run `agora install` again"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_oci_runtime_an_oci_plugin_is_refused_saying_what_to_install() {
    let h = Harness::with_config(oci_policy(false), |c| {
        c.oci_runtime = Some("no-such-runc".into());
    });
    let dir = oci_example("echo-native", &[], h.plugins.path());
    let Err(err) = h.runner.load(PluginSource::from_dir(&dir).unwrap()).await else {
        panic!("loaded without a runtime");
    };
    let text = err.to_string();
    assert!(text.contains("`no-such-runc` is not on PATH"), "{text}");
    assert!(text.contains("apt-get install runc"), "{text}");
    assert!(h.has_event("refused", None));
}
