//! The deployment artifacts (`deploy/`, `docs/operations.md`): the container image built
//! by `deploy/image/build.sh` from this test's own `agora` binary, run with podman the
//! way the docs say (a read-only root filesystem, the image's non-root user, the data
//! directory a volume) until `/ready` answers; and the Kubernetes manifests validated
//! against Kubernetes' own schemas by `kubernetes-validate`. Both fail, never skip, when
//! their tools are missing (scripts/test and .ci/run install them).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_agora");
/// The image's user (deploy/image/Containerfile; the Kubernetes manifests' runAsUser).
const UID: &str = "65532";
/// How long the container may take to answer `/ready` (a hang guard; it takes a second).
const READY_WITHIN: Duration = Duration::from_secs(60);
/// The Kubernetes versions the manifests are checked against: the oldest the docs
/// support, and the newest kubernetes-validate 1.37.0 knows offline.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `program` on PATH (or in /usr/sbin, where Debian puts runc), else a failure that
/// says what to install.
fn require(program: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!("{program} is not installed; this test needs it: {install} (scripts/test and .ci/run do)")
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A name no other run of this test uses at the same time.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// A TCP port on 127.0.0.1 that nothing listens on.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
    listener.local_addr().expect("its address").port()
}

/// `--ulimit NAME=N:N` for podman, N this process's hard limit of `resource` (as
/// /proc/self/limits names it) or `at_most`, the lower. podman's defaults may exceed the
/// hard limits, and raising one needs a capability CI sandboxes lack.
fn ulimit(name: &str, resource: &str, at_most: u64) -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = limits
        .lines()
        .find_map(|line| line.strip_prefix(resource))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .map_or(at_most, |hard| hard.parse().unwrap_or(u64::MAX));
    let n = hard.min(at_most);
    format!("{name}={n}:{n}")
}

/// One `GET path` on 127.0.0.1:port: the status code, or why there was none.
fn get(port: u16, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).unwrap_or_default();
    status
        .parse()
        .map_err(|_| format!("not an HTTP answer: {:?}", answer.lines().next()))
}

/// The container and the image, removed however the test ends.
struct Cleanup {
    podman: PathBuf,
    container: String,
    image: String,
}

impl Cleanup {
    fn podman(&self, args: &[&str]) -> Output {
        run(Command::new(&self.podman)
            .args(["--runtime", "runc"])
            .args(args))
    }

    fn logs(&self) -> String {
        let out = self.podman(&["logs", &self.container]);
        format!("{}\n{}", text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // -v: the anonymous volume podman made for the image's VOLUME /data.
        let _ = Command::new(&self.podman)
            .args(["rm", "--force", "--volumes", "--time", "2", &self.container])
            .output();
        let _ = Command::new(&self.podman)
            .args(["rmi", "--force", &self.image])
            .output();
    }
}

#[test]
fn the_image_runs_read_only_as_a_non_root_user_until_ready() {
    let install = "apt-get install buildah podman runc";
    require("buildah", install);
    let podman = require("podman", install);
    require("runc", install);

    let name = format!("agora-container-test-{}", unique());
    let cleanup = Cleanup {
        podman,
        container: name.clone(),
        image: format!("localhost/{name}:test"),
    };

    // The image, from the binary this test run built (a debug build: the script copies
    // the libraries it links into the image).
    let started = Instant::now();
    let built = run(Command::new(repo().join("deploy/image/build.sh"))
        .args(["--binary", BIN, "--tag", &cleanup.image])
        .current_dir(repo()));
    assert!(
        built.status.success(),
        "deploy/image/build.sh --binary {BIN} failed:\n{}\n{}",
        text(&built.stdout),
        text(&built.stderr)
    );
    assert_eq!(
        text(&built.stdout),
        cleanup.image,
        "the script prints the tag"
    );
    eprintln!("image built in {:.1?}", started.elapsed());

    // As docs/operations.md runs it: the root filesystem read-only, the image's user
    // asked for explicitly, no capabilities, /tmp a tmpfs, /data the image's volume.
    // runc (crun refuses some hosts' cgroup layout), and ulimits within this process's own.
    let port = free_port();
    let nofile = ulimit("nofile", "Max open files", 4096);
    let nproc = ulimit("nproc", "Max processes", 4096);
    let admin_token = format!("container-test-admin-token-{}", unique());
    let ran = cleanup.podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--read-only",
        "--user",
        &format!("{UID}:{UID}"),
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        "--tmpfs",
        "/tmp",
        "--ulimit",
        &nofile,
        "--ulimit",
        &nproc,
        "--publish",
        &format!("127.0.0.1:{port}:8080"),
        "--env",
        &format!("AGORA_ADMIN_TOKEN={admin_token}"),
        &cleanup.image,
    ]);
    assert!(
        ran.status.success(),
        "podman run failed:\n{}",
        text(&ran.stderr)
    );

    // Ready: SQLite and the blob directory on /data answer.
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let last = match get(port, "/ready") {
            Ok(200) => break,
            Ok(status) => format!("status {status}"),
            Err(e) => e,
        };
        let state = cleanup.podman(&["inspect", "--format", "{{.State.Status}}", &name]);
        let state = text(&state.stdout);
        assert!(
            state == "running" || state == "created",
            "the container stopped ({state}) before /ready answered; its log:\n{}",
            cleanup.logs()
        );
        assert!(
            Instant::now() < deadline,
            "/ready did not answer 200 within {READY_WITHIN:?} (last: {last}); the container's log:\n{}",
            cleanup.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("ready {:.1?} after the build began", started.elapsed());
    assert_eq!(get(port, "/health"), Ok(200));

    // The image's health check, and `agora probe` for readiness, as the runtime runs them.
    let health = cleanup.podman(&["healthcheck", "run", &name]);
    assert!(
        health.status.success(),
        "podman healthcheck run failed: {} {}",
        text(&health.stdout),
        text(&health.stderr)
    );
    let probe = cleanup.podman(&["exec", &name, "/usr/local/bin/agora", "probe", "/ready"]);
    assert!(
        probe.status.success(),
        "agora probe /ready in the container failed: {}",
        text(&probe.stderr)
    );

    // The server runs as the non-root user: its process, seen from the host (rootful
    // podman maps no user namespace, so the uid is the same here).
    let pid = cleanup.podman(&["inspect", "--format", "{{.State.Pid}}", &name]);
    let pid = text(&pid.stdout);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status of the container: {e}"));
    let uids: Vec<&str> = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        uids, [UID; 4],
        "real, effective, saved and fs uid of the server"
    );
    let user = cleanup.podman(&["inspect", "--format", "{{.Config.User}}", &name]);
    assert_eq!(text(&user.stdout), format!("{UID}:{UID}"));

    // The root filesystem is read-only, even for root; the data volume is writable.
    let write_root = cleanup.podman(&[
        "exec",
        "--user",
        "0:0",
        &name,
        "/usr/local/bin/agora",
        "init",
        "--config",
        "/written.toml",
    ]);
    assert!(
        !write_root.status.success() && text(&write_root.stderr).contains("Read-only file system"),
        "writing to / in the container must fail with EROFS: {} {}",
        text(&write_root.stdout),
        text(&write_root.stderr)
    );
    let write_data = cleanup.podman(&[
        "exec",
        &name,
        "/usr/local/bin/agora",
        "init",
        "--config",
        "/data/written.toml",
    ]);
    assert!(
        write_data.status.success(),
        "the image's user cannot write to its /data volume: {}",
        text(&write_data.stderr)
    );

    // It stops on SIGTERM, cleanly and soon.
    let stop = Instant::now();
    let stopped = cleanup.podman(&["stop", "--time", "10", &name]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let code = cleanup.podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(
        text(&code.stdout),
        "0",
        "exit status after SIGTERM; log:\n{}",
        cleanup.logs()
    );
    assert!(
        stop.elapsed() < Duration::from_secs(8),
        "{:?}",
        stop.elapsed()
    );
    eprintln!("done {:.1?} after the build began", started.elapsed());
}

/// Every manifest in deploy/kubernetes passes `kubernetes-validate --strict` (no field
/// the schema lacks) for each supported Kubernetes version; kustomization.yaml lists
/// every manifest but the Secret example.
#[test]
fn the_kubernetes_manifests_pass_the_schema_validator() {
    let validator = require(
        "kubernetes-validate",
        "python3 -m pip install 'kubernetes-validate==1.37.0'",
    );
    let dir = repo().join("deploy/kubernetes");
    let mut manifests: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 6, "manifests: {manifests:?}");

    for version in KUBERNETES_VERSIONS {
        let out = run(Command::new(&validator)
            .args(["--strict", "--kubernetes-version", version])
            .args(&manifests)
            .current_dir(&dir));
        let report = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version} refuses deploy/kubernetes:\n{report}"
        );
        for manifest in &manifests {
            assert!(
                report.contains(&format!("{manifest} passed")),
                "{manifest} was not validated against {version}:\n{report}"
            );
        }
    }

    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml"))
        .expect("deploy/kubernetes/kustomization.yaml");
    for manifest in manifests.iter().filter(|m| *m != "secret.example.yaml") {
        assert!(
            kustomization
                .lines()
                .any(|line| line.trim() == format!("- {manifest}")),
            "kustomization.yaml does not list {manifest}"
        );
    }
    assert!(
        !kustomization
            .lines()
            .any(|line| line.trim() == "- secret.example.yaml"),
        "kustomization.yaml lists secret.example.yaml: the Secret example holds no real \
         values, and kustomize must not apply it over the real Secret"
    );
}
