//! Attack tests: a hostile plugin (native, then WASM) tries each escape a malicious
//! plugin would; each is contained, audited where the runner can see it, and the runner
//! keeps serving another plugin afterwards.

mod support;

use std::time::{Duration, Instant};

use agora_runner::{Plugin, RunError};
use serde_json::{Value, json};
use support::{Harness, policy};

struct Scene {
    h: Harness,
    hostile: Plugin,
    bystander: Plugin,
    bystander_entry: &'static str,
    bystander_input: &'static [u8],
}

async fn scene(hostile: &str, allow_private: bool) -> Scene {
    let h = Harness::new(policy(allow_private));
    let hostile = h.load(hostile).await;
    let (bystander, entry, input): (_, &'static str, &'static [u8]) =
        if hostile.manifest().runtime.kind.as_str() == "exec" {
            (
                h.load("echo-native").await,
                "echo",
                br#"{"still":"serving"}"#,
            )
        } else {
            (
                h.load("hello-wasm").await,
                "greet",
                br#"{"name":"still serving"}"#,
            )
        };
    Scene {
        h,
        hostile,
        bystander,
        bystander_entry: entry,
        bystander_input: input,
    }
}

impl Scene {
    async fn attack(&self, entry: &str, input: Value) -> Result<Value, RunError> {
        self.hostile.call(entry, input.to_string().as_bytes()).await
    }

    /// The other plugin still answers, and so does the hostile one (restarted if needed).
    async fn still_serving(&self) {
        self.bystander
            .call(self.bystander_entry, self.bystander_input)
            .await
            .expect("the runner still serves another plugin");
        let health = self
            .hostile
            .health()
            .await
            .expect("the hostile plugin can be used again");
        assert_eq!(health.status, 200);
    }
}

fn refused(answer: &Value) -> String {
    assert_eq!(answer["ok"], false, "the attempt must fail: {answer}");
    answer["error"].as_str().unwrap_or_default().to_owned()
}

// ---- native ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_read_outside_its_directories() {
    let s = scene("hostile-native", false).await;
    for path in [
        "/etc/passwd",
        "../../../../etc/passwd",
        "/tmp/plugin/../../etc/shadow",
        "/root/.bashrc",
        "/proc/1/environ",
    ] {
        let answer = s.attack("read", json!({"path": path})).await.unwrap();
        let error = refused(&answer);
        assert!(
            error.contains("ermission denied") || error.contains("No such file"),
            "{path}: {error}"
        );
    }
    // Its own files are readable.
    let own = s
        .attack("read", json!({"path": "/tmp/plugin/plugin.yaml"}))
        .await
        .unwrap();
    assert_eq!(own["ok"], true, "{own}");
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_write_outside_its_work_directory() {
    let s = scene("hostile-native", false).await;
    for path in [
        "/etc/agora-owned",
        "/tmp/../etc/owned",
        "/tmp/plugin/bin/hostile-native",
        "/usr/owned",
        "/dev/shm/owned",
    ] {
        let answer = s.attack("write", json!({"path": path})).await.unwrap();
        refused(&answer);
    }
    assert!(!std::path::Path::new("/etc/agora-owned").exists());
    let ok = s
        .attack("write", json!({"path": "/tmp/scratch"}))
        .await
        .unwrap();
    assert_eq!(ok["ok"], true, "the work directory is writable: {ok}");
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_reaches_only_declared_hosts_through_the_proxy() {
    let s = scene("hostile-native", false).await;
    for target in ["example.com:443", "93.184.216.34:80", "localhost:22"] {
        let answer = s
            .attack("connect", json!({"target": target}))
            .await
            .unwrap();
        assert!(
            answer["result"].as_str().unwrap().contains("403"),
            "{target}: {answer}"
        );
    }
    // Declared, but resolves to loopback, which this policy keeps out.
    let answer = s
        .attack("connect", json!({"target": "localhost:18080"}))
        .await
        .unwrap();
    assert!(
        answer["result"].as_str().unwrap().contains("403"),
        "{answer}"
    );
    // No network of its own: a direct connection fails.
    let direct = s
        .attack("direct", json!({"target": "93.184.216.34:80"}))
        .await
        .unwrap();
    refused(&direct);
    let denials: Vec<Value> =
        s.h.audit()
            .into_iter()
            .filter(|e| e["denied"] == "host")
            .collect();
    assert_eq!(denials.len(), 4, "{denials:?}");
    assert!(denials.iter().any(|d| d["target"] == "93.184.216.34:80"));
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_reaches_a_declared_host_when_policy_allows() {
    let hosts = support::http_server(18080);
    let s = scene("hostile-native", true).await;
    let answer = s
        .attack("connect", json!({"target": "localhost:18080"}))
        .await
        .unwrap();
    assert_eq!(answer["result"], "HTTP/1.1 200 OK", "{answer}");
    assert_eq!(*hosts.lock().unwrap(), ["localhost:18080"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_fork_bomb_hits_the_process_limit() {
    let s = scene("hostile-native", false).await;
    let answer = s.attack("fork-bomb", json!({})).await.unwrap();
    let forks = answer["forks"].as_u64().unwrap();
    assert!(forks < 16, "forks are capped by the cgroup: {answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("temporarily unavailable"),
        "{answer}"
    );
    assert!(s.h.has_event("denial", Some("processes")));
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_allocation_past_the_memory_cap_is_stopped() {
    let s = scene("hostile-native", false).await;
    for mb in [96u64, 512, 4096] {
        let err = s.attack("alloc", json!({"mb": mb})).await.unwrap_err();
        assert!(matches!(err, RunError::Limit { .. }), "{mb} MiB: {err}");
        assert!(err.to_string().contains("memory (64 MiB)"), "{err}");
    }
    let ok = s.attack("alloc", json!({"mb": 8})).await.unwrap();
    assert_eq!(ok["ok"], true);
    assert!(s.h.has_event("denial", Some("memory")));
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_spinning_forever_is_killed_at_its_timeout() {
    let s = scene("hostile-native", false).await;
    let started = Instant::now();
    let err = s.attack("spin", json!({})).await.unwrap_err();
    assert!(matches!(err, RunError::Timeout { ms: 300 }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(s.h.has_event("denial", Some("timeout")));
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_exhaust_file_descriptors() {
    let s = scene("hostile-native", false).await;
    let answer = s.attack("fds", json!({})).await.unwrap();
    assert!(answer["opened"].as_u64().unwrap() < 32, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("Too many open files"),
        "{answer}"
    );
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sees_neither_the_runners_environment_nor_its_processes() {
    let s = scene("hostile-native", false).await;
    let env = s.attack("env", json!({})).await.unwrap();
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
            "HOME",
            "TMPDIR"
        ]
    );
    let processes = s.attack("processes", json!({})).await.unwrap();
    assert_eq!(
        processes["pid"], 1,
        "PID 1 of its own namespace: {processes}"
    );
    refused(&processes["listing"]);
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_ptrace_or_kill_the_runner() {
    let s = scene("hostile-native", false).await;
    let runner = std::process::id();
    let killed = s.attack("kill", json!({"pid": runner})).await.unwrap();
    refused(&killed);
    let err = s
        .attack("ptrace", json!({"pid": runner}))
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Syscall), "{err}");
    assert!(s.h.has_event("denial", Some("syscall")));
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_reach_host_or_sibling_unix_sockets() {
    let s = scene("hostile-native", false).await;
    // The bystander's egress proxy socket, in the runner's state directory.
    s.bystander
        .call(s.bystander_entry, s.bystander_input)
        .await
        .unwrap();
    let runs = s.h.state.path().join("runs");
    let sibling = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .filter(|e| e.path().to_string_lossy().contains("echo-native"))
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .map(|launch| launch.path().join("egress.sock"))
        .find(|p| p.exists())
        .expect("the bystander's proxy socket");
    let mut targets = vec![sibling.display().to_string()];
    for host_socket in [
        "/var/run/postgresql/.s.PGSQL.5432",
        "/run/postgresql/.s.PGSQL.5432",
    ] {
        if std::path::Path::new(host_socket).exists() {
            targets.push(host_socket.to_owned());
        }
    }
    assert!(
        targets.len() >= 2,
        "PostgreSQL's socket is expected on the test machines"
    );
    for path in targets {
        let answer = s.attack("unix", json!({"path": path})).await.unwrap();
        refused(&answer);
    }
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_slip_past_seccomp() {
    let s = scene("hostile-native", false).await;
    for entry in ["x32", "userns"] {
        let err = s.attack(entry, json!({})).await.unwrap_err();
        assert!(matches!(err, RunError::Syscall), "{entry}: {err}");
    }
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cannot_fill_the_disk() {
    let mut small = policy(false);
    small.defaults.disk_mb = 16;
    let h = Harness::new(small);
    let hostile = h.load("hostile-native").await;
    let answer = hostile.call("fill", b"{}").await.unwrap();
    assert!(answer["written_mb"].as_u64().unwrap() <= 16, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("No space left"),
        "{answer}"
    );
    // The host's state directory holds nothing of it.
    let on_disk: u64 = walk_size(&h.state.path().join("runs"));
    assert!(
        on_disk < 1024 * 1024,
        "{on_disk} bytes landed on the host's disk"
    );
    assert_eq!(hostile.health().await.unwrap().status, 200);
}

/// Bytes in regular files under `dir`, not crossing into mounted file systems.
fn walk_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(dir).map(|m| m.dev()).unwrap_or(0);
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != device {
                continue;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

// ---- wasm ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_cannot_touch_files_outside_its_tmp() {
    let s = scene("hostile-wasm", false).await;
    for path in [
        "/etc/passwd",
        "../etc/passwd",
        "/tmp/../../etc/passwd",
        "/proc/self/environ",
    ] {
        let answer = s.attack("read", json!({"path": path})).await.unwrap();
        refused(&answer);
    }
    for path in ["/etc/owned", "/tmp/../owned", "owned"] {
        let answer = s.attack("write", json!({"path": path})).await.unwrap();
        refused(&answer);
    }
    let ok = s
        .attack("write", json!({"path": "/tmp/scratch"}))
        .await
        .unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_reaches_no_undeclared_host() {
    let s = scene("hostile-wasm", false).await;
    for url in [
        "http://example.com/",
        "http://93.184.216.34/",
        "http://localhost:18081/",
    ] {
        let answer = s.attack("fetch", json!({"url": url})).await.unwrap();
        refused(&answer);
    }
    let denials: Vec<Value> =
        s.h.audit()
            .into_iter()
            .filter(|e| e["denied"] == "host")
            .collect();
    assert_eq!(denials.len(), 3, "{denials:?}");
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_memory_spin_and_handles_are_capped() {
    let s = scene("hostile-wasm", false).await;
    let err = s.attack("alloc", json!({"mb": 64})).await.unwrap_err();
    assert!(matches!(err, RunError::Limit { .. }), "{err}");
    let started = Instant::now();
    let err = s.attack("spin", json!({})).await.unwrap_err();
    assert!(matches!(err, RunError::Timeout { ms: 300 }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = s.attack("fds", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("open handles (32"), "{err}");
    assert!(s.h.has_event("denial", Some("handles")));
    assert!(s.h.has_event("denial", Some("memory")));
    assert!(s.h.has_event("denial", Some("timeout")));
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_sees_only_the_contract_environment() {
    let s = scene("hostile-wasm", false).await;
    let env = s.attack("env", json!({})).await.unwrap();
    let names: Vec<&str> = env["result"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["AGORA_PLUGIN_KEY", "TMPDIR"]);
    s.still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_waiting_on_the_host_is_cut_at_its_timeout() {
    let s = scene("hostile-wasm", false).await;
    let started = Instant::now();
    let err = s.attack("sleep", json!({})).await.unwrap_err();
    assert!(matches!(err, RunError::Timeout { ms: 300 }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(s.h.has_event("denial", Some("timeout")));
    s.still_serving().await;
}
