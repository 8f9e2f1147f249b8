//! Test setup: builds the example plugins from source and starts runners on temporary
//! state directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use agora_runner::audit::AuditLog;
use agora_runner::policy::{HostPolicy, Mode, NetworkPolicy};
use agora_runner::{Plugin, PluginSource, Runner, RunnerConfig};
use tempfile::TempDir;

/// Builds `examples/plugins/<name>` (with `features`) and lays it out as an installed
/// plugin directory. wasm plugins need `rustup target add wasm32-wasip2`.
pub fn example(name: &str, features: &[&str], dest: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins")
        .join(name);
    let wasm = name.ends_with("-wasm");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "examples{}",
        features.iter().map(|f| format!("-{f}")).collect::<String>()
    ));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--release", "--manifest-path"])
        .arg(source.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    if wasm {
        cmd.args(["--target", "wasm32-wasip2"]);
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building example {name} failed (wasm examples need `rustup target add wasm32-wasip2`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = dest.join(format!("{name}{}", features.join("-")));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("plugin.yaml"), dir.join("plugin.yaml")).unwrap();
    let (built, placed) = if wasm {
        (
            format!("wasm32-wasip2/release/{}.wasm", name),
            "plugin.wasm".to_owned(),
        )
    } else {
        (format!("release/{name}"), format!("bin/{name}"))
    };
    let placed = dir.join(placed);
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::copy(target_dir.join(built), &placed).unwrap();
    dir
}

/// An open policy that lets plugins reach `localhost:18080` and `:18081` (but not internal
/// addresses unless `allow_private`).
pub fn policy(allow_private: bool) -> HostPolicy {
    HostPolicy {
        mode: Mode::Open,
        network: NetworkPolicy {
            allowed_hosts: vec!["localhost:18080".into(), "localhost:18081".into()],
            allow_private_addresses: allow_private,
        },
        ..HostPolicy::default()
    }
}

pub struct Harness {
    pub state: TempDir,
    pub plugins: TempDir,
    pub runner: Runner,
}

impl Harness {
    pub fn new(policy: HostPolicy) -> Harness {
        Harness::with_config(policy, |_| {})
    }

    /// A harness whose runner's configuration `adjust` changes last (a core link, ...).
    pub fn with_config(policy: HostPolicy, adjust: impl FnOnce(&mut RunnerConfig)) -> Harness {
        let state = tempfile::tempdir().unwrap();
        let plugins = tempfile::tempdir().unwrap();
        let mut config = RunnerConfig::new(state.path().to_path_buf());
        config.policy = policy;
        config.audit = AuditLog::open(&state.path().join("audit.jsonl")).unwrap();
        adjust(&mut config);
        let runner = Runner::new(config).unwrap();
        Harness {
            state,
            plugins,
            runner,
        }
    }

    pub fn source(&self, name: &str, features: &[&str]) -> PluginSource {
        PluginSource::from_dir(&example(name, features, self.plugins.path())).unwrap()
    }

    pub async fn load(&self, name: &str) -> Plugin {
        self.runner.load(self.source(name, &[])).await.unwrap()
    }

    /// The audit events so far.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn has_event(&self, event: &str, denied: Option<&str>) -> bool {
        self.audit().iter().any(|e| {
            e["event"] == event && denied.is_none_or(|d| e["denied"] == d || e["limit"] == d)
        })
    }
}

/// A plain HTTP/1.1 server on `127.0.0.1:port` answering `200 ok` to every request and
/// recording each request's `Host` header. It reads each request whole (a chunked body
/// to its end) and closes only after the client has: closing with unread bytes would
/// make the kernel reset the connection before the client reads the answer.
pub fn http_server(port: u16) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} must be free for this test: {e}"));
    let hosts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hosts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut chunked, mut line) = (false, String::new());
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    let lower = line.to_ascii_lowercase();
                    if let Some(host) = lower.strip_prefix("host:") {
                        seen.lock().unwrap().push(host.trim().to_owned());
                    }
                    chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
                    line.clear();
                }
                if chunked {
                    line.clear();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.starts_with('0')
                    {
                        line.clear();
                    }
                    let _ = reader.read_line(&mut line);
                }
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let _ = reader.read_to_end(&mut Vec::new());
            });
        }
    });
    hosts
}

/// Builds `examples/plugins/<name>` as a static (musl) executable and lays it out as an
/// OCI plugin's source tree: `plugin.yaml` (the example's, its runtime replaced by
/// `type: oci` pinning the image) and `image/`, an OCI image layout of a `FROM
/// scratch`-style image holding only `/bin/<name>`, run as 65534. Needs `rustup target
/// add x86_64-unknown-linux-musl`.
pub fn oci_example(name: &str, features: &[&str], dest: &Path) -> PathBuf {
    use sha2::Digest as _;
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins")
        .join(name);
    let target = "x86_64-unknown-linux-musl";
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "examples-static{}",
        features.iter().map(|f| format!("-{f}")).collect::<String>()
    ));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--release", "--target", target])
        .arg("--manifest-path")
        .arg(source.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building {name} for {target} failed (it needs `rustup target add {target}`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = dest.join(format!("{name}{}-oci", features.join("-")));
    let blobs = dir.join("image/blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    // The layer: bin/<name>, owned by root, mode 0755.
    let root = dir.join("layer-root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(
        target_dir.join(target).join("release").join(name),
        root.join("bin").join(name),
    )
    .unwrap();
    let tar = Command::new("tar")
        .args([
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-C",
        ])
        .arg(&root)
        .args(["-cf", "-", "bin"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    std::fs::remove_dir_all(&root).unwrap();
    let layer = put(&tar.stdout);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "65534:65534", "Entrypoint": [format!("/bin/{name}")]},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": tar.stdout.len()}],
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    std::fs::write(
        dir.join("image/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("image/index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len()}]})
        .to_string(),
    )
    .unwrap();
    let yaml = std::fs::read_to_string(source.join("plugin.yaml")).unwrap();
    let start = yaml.find("runtime:").unwrap();
    let end = start + yaml[start..].find("entrypoints:").unwrap();
    let yaml = format!(
        "{}runtime:\n  type: oci\n  image: localhost/examples/{name}@{manifest_digest}\n{}",
        &yaml[..start],
        &yaml[end..]
    );
    std::fs::write(dir.join("plugin.yaml"), yaml).unwrap();
    dir
}

/// `policy(allow_private)` admitting images from `localhost`, with runc as the runtime.
pub fn oci_policy(allow_private: bool) -> HostPolicy {
    let mut policy = policy(allow_private);
    policy.runtimes.push(agora_core::RuntimeKind::Oci);
    policy.oci.allowed_registries = vec!["localhost".into()];
    policy
}

/// The containers runc holds under a runner's state directory.
pub fn containers(state: &Path) -> Vec<String> {
    let runc =
        agora_runner::oci::runc::find(None).expect("runc is installed (apt-get install runc)");
    runc.list(&state.join("oci/runc"))
}
