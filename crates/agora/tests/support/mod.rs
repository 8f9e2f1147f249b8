//! The one way end-to-end tests start the real `agora` binary, run its CLI, and build
//! the example plugins. PostgreSQL runs need `AGORA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and fail, never skip, without it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_agora");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).unwrap();
    hex::encode(buf)
}

pub fn postgres_url() -> String {
    std::env::var("AGORA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `sql`; returns what it printed, rows as `a|b` lines.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .unwrap_or_else(|e| panic!("psql is needed to prepare PostgreSQL tests: {e}"));
    assert!(
        out.status.success(),
        "PostgreSQL is required and `{sql}` failed at {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Server {
    child: Child,
    pub url: String,
    pub admin_token: String,
    pub data: tempfile::TempDir,
    schema: Option<String>,
    /// Whether dropping this server drops `schema` (a replica shares its first's).
    owns_schema: bool,
    env: Vec<(String, String)>,
}

/// The environment that puts a server's blobs in a fresh place (a new prefix) of the
/// test bucket on the S3 server at `AGORA_TEST_S3_ENDPOINT` (scripts/test starts the
/// moto server); fails, never skips, without one.
pub fn s3_storage_env() -> Vec<(String, String)> {
    let endpoint = std::env::var("AGORA_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("these tests need an S3-compatible server: set AGORA_TEST_S3_ENDPOINT (scripts/test starts the moto server)")
    });
    let bucket = "agora-e2e";
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("{endpoint}/{bucket}"))
        .output()
        .unwrap_or_else(|e| panic!("curl is needed to create the test bucket: {e}"));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status == "200" || status == "409",
        "cannot create the test bucket at {endpoint}: HTTP {status}"
    );
    vec![
        (
            "AGORA_STORAGE_URL".into(),
            format!(
                "s3://{bucket}/{}?endpoint={endpoint}&region=us-east-1",
                random_hex(8)
            ),
        ),
        (
            "AWS_ACCESS_KEY_ID".into(),
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "agora-test".into()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "agora-test".into()),
        ),
    ]
}

/// Starts `agora serve` on `listen` with its data under `dir`; returns it and its URL.
fn spawn(dir: &Path, listen: &str, env: &[(String, String)]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir.join("data"))
        .current_dir(dir)
        .env("AGORA_LOG__FORMAT", "json")
        // Tests send many requests from one address; the rate-limit tests turn them on.
        .env("AGORA_RATE_LIMITS__ENABLED", "false")
        .env_remove("AGORA_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap(),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the agora binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return (child, rest.trim().to_owned());
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("agora serve did not start: {log}");
            }
        }
    }
}

impl Server {
    pub fn start(backend: Backend) -> Server {
        Self::start_with(backend, &[])
    }

    pub fn start_with(backend: Backend, env: &[(&str, &str)]) -> Server {
        Self::start_replicas_on(backend, 1, env).pop().unwrap()
    }

    /// `count` servers started at the same moment on one fresh PostgreSQL schema (they
    /// race to migrate it and to create the administrator) with `env`: replicas from
    /// their first start. The first owns the schema.
    pub fn start_replicas(count: usize, env: &[(&str, &str)]) -> Vec<Server> {
        Self::start_replicas_on(Backend::Postgres, count, env)
    }

    fn start_replicas_on(backend: Backend, count: usize, env: &[(&str, &str)]) -> Vec<Server> {
        let admin_token = format!("agora_test_{}", random_hex(24));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("AGORA_ADMIN_TOKEN".into(), admin_token.clone()));
        let mut schema = None;
        if backend == Backend::Postgres {
            let name = format!(
                "agora_e2e_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            );
            let base = postgres_url();
            psql(&base, &format!("CREATE SCHEMA {name}"));
            let sep = if base.contains('?') { '&' } else { '?' };
            env.push((
                "AGORA_DATABASE_URL".into(),
                format!("{base}{sep}options=-c%20search_path%3D{name}"),
            ));
            schema = Some(name);
        }
        let start = std::sync::Barrier::new(count);
        std::thread::scope(|scope| {
            let starting: Vec<_> = (0..count)
                .map(|_| {
                    let (start, env) = (&start, &env);
                    scope.spawn(move || {
                        let data = tempfile::tempdir().unwrap();
                        start.wait();
                        let (child, url) = spawn(data.path(), "127.0.0.1:0", env);
                        (child, url, data)
                    })
                })
                .collect();
            starting
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let (child, url, data) = s.join().unwrap();
                    Server {
                        child,
                        url,
                        admin_token: admin_token.clone(),
                        data,
                        schema: schema.clone(),
                        owns_schema: i == 0,
                        env: env.clone(),
                    }
                })
                .collect()
        })
    }

    /// Another `agora serve` process on this one's database and blob store (with its
    /// own address and data directory): a replica.
    pub fn replica(&self) -> Server {
        self.replica_with(&[])
    }

    /// A replica with `extra` environment on top of this server's.
    pub fn replica_with(&self, extra: &[(&str, &str)]) -> Server {
        assert!(
            self.schema.is_some(),
            "replicas share a PostgreSQL database: start the first with Backend::Postgres"
        );
        let data = tempfile::tempdir().unwrap();
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (child, url) = spawn(data.path(), "127.0.0.1:0", &env);
        Server {
            child,
            url,
            admin_token: self.admin_token.clone(),
            data,
            schema: self.schema.clone(),
            owns_schema: false,
            env,
        }
    }

    /// Kills the server process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and starts it again on the same address and data.
    pub fn restart(&mut self) {
        self.restart_after(|_| {});
    }

    /// Stops the server, runs `meanwhile` with its data directory, and starts it again.
    pub fn restart_after(&mut self, meanwhile: impl FnOnce(&Path)) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        meanwhile(&self.data.path().join("data"));
        let listen = self
            .url
            .split_once("://")
            .map_or(&*self.url, |(_, a)| a)
            .to_owned();
        let (child, url) = spawn(self.data.path(), &listen, &self.env);
        self.child = child;
        self.url = url;
    }

    /// The server process's id, to signal it (SIGSTOP freezes it mid-work).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL) and starts it again on the same address and data with
    /// `extra` environment on top of its own, from now on.
    pub fn restart_with(&mut self, extra: &[(&str, &str)]) {
        self.env
            .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.restart();
    }

    /// Runs SQL against the server's database behind its back (as an attacker with
    /// access to the storage would), on whichever backend it uses.
    pub fn sql(&self, sql: &str) {
        self.query(sql);
    }

    /// Runs SQL against the server's database; returns the rows it printed, one line
    /// each, columns joined by `|`.
    pub fn query(&self, sql: &str) -> String {
        match &self.schema {
            Some(schema) => psql(
                &postgres_url(),
                &format!("SET search_path TO {schema}; {sql}"),
            ),
            None => {
                let db = self.data.path().join("data/agora.db");
                // The server writes meanwhile (its worker records verifications): wait
                // for its write lock rather than fail with "database is locked".
                let out = Command::new("sqlite3")
                    .args(["-cmd", ".timeout 10000"])
                    .arg(&db)
                    .arg(sql)
                    .output()
                    .expect("sqlite3 is needed for these tests");
                assert!(
                    out.status.success(),
                    "{sql}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        }
    }

    /// An `agora worker` process's command on this server's database and blob store,
    /// with `args` (`--once`, `--concurrency N`); its log goes to `<name>.log` beside the
    /// server's.
    pub fn worker(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("worker")
            .args(args)
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .current_dir(self.data.path())
            .env("AGORA_LOG__FORMAT", "json")
            .env_remove("AGORA_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.data.path().join(format!("{name}.log"))).unwrap());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `agora ARGS --data-dir <this server's>`, an operator's command run on this
    /// server's database and blob store with its environment; returns its output.
    pub fn operator(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .current_dir(self.data.path())
            .env_remove("AGORA_DATABASE_URL")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// The log of the worker started as `name`.
    pub fn worker_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data.path().join("data").join("blobs")
    }

    /// Where the filesystem blob store keeps the blob `sha256:HEX`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.blob_dir().join("sha256").join(&hex[..2]).join(hex)
    }

    /// Flips one bit of the stored blob holding exactly `content` (as the storage going
    /// bad would); calling it again restores it.
    pub fn flip_stored_blob(&self, content: &[u8]) {
        use sha2::Digest;
        let hex = hex::encode(sha2::Sha256::digest(content));
        let blob = self.blob_dir().join("sha256").join(&hex[..2]).join(&hex);
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[0] ^= 0x01;
        std::fs::write(&blob, bytes).unwrap();
    }

    /// Runs the CLI against this server with `token` (none: anonymous).
    pub fn cli(&self, token: Option<&str>) -> Cli {
        Cli {
            registry: self.url.clone(),
            token: token.map(str::to_owned),
            home: tempfile::tempdir().unwrap(),
            key: None,
            env: Vec::new(),
        }
    }

    pub fn admin(&self) -> Cli {
        self.cli(Some(&self.admin_token))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(schema) = self.schema.as_ref().filter(|_| self.owns_schema) {
            psql(&postgres_url(), &format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

/// The command-line client, with its own empty user configuration.
pub struct Cli {
    pub registry: String,
    pub token: Option<String>,
    pub home: tempfile::TempDir,
    /// The signing key `publish` uses, once `sign_for` made one.
    pub key: Option<PathBuf>,
    /// Extra environment for every run (e.g. GNUPGHOME).
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub output: Output,
    pub args: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert!(
            self.output.status.success(),
            "`agora {}` failed:\n{}{}",
            self.args,
            self.stderr(),
            self.stdout()
        );
        self.stdout()
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok()).unwrap_or_else(|e| {
            panic!(
                "`agora {}` printed no JSON ({e}): {}",
                self.args,
                self.stdout()
            )
        })
    }

    /// Asserts failure and returns stderr, which must be one line.
    pub fn fails(&self) -> String {
        assert!(
            !self.output.status.success(),
            "`agora {}` should have failed:\n{}",
            self.args,
            self.stdout()
        );
        let err = self.stderr();
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "errors are one line: {err}"
        );
        err
    }
}

impl Cli {
    /// The digest (`sha256:HEX`) of the module of `release` (`PUBLISHER/NAME@VERSION`).
    pub fn module_digest(&self, release: &str) -> String {
        self.run(&["--json", "info", release]).json()["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["role"] == "module")
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A new token for `user` with `scopes`, made with this (administrator's) CLI.
    pub fn token_for(&self, user: &str, scopes: &[&str]) -> String {
        let mut args = vec!["--json", "token", "create", "--user", user, "--name", "e2e"];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        self.run(&args).json()["token"].as_str().unwrap().to_owned()
    }

    /// Makes a key, registers it for `publisher`, and signs later publishes with it.
    pub fn sign_for(&mut self, publisher: &str) -> PathBuf {
        let key = self.home.path().join(format!("{publisher}_ed25519"));
        self.run(&["keygen", "--out", key.to_str().unwrap()]).ok();
        self.run(&["key", "add", publisher, &format!("{}.pub", key.display())])
            .ok();
        self.key = Some(key.clone());
        key
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.home.path(), args)
    }

    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .env("AGORA_REGISTRY", &self.registry)
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        match &self.token {
            Some(t) => cmd.env("AGORA_TOKEN", t),
            None => cmd.env_remove("AGORA_TOKEN"),
        };
        match &self.key {
            Some(k) => cmd.env("AGORA_SIGNING_KEY", k),
            None => cmd.env_remove("AGORA_SIGNING_KEY"),
        };
        cmd.env_remove("AGORA_KEY_PASSPHRASE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Run {
            output: cmd.output().expect("the agora binary runs"),
            args: args.join(" "),
        }
    }
}

/// Builds an example plugin from `examples/plugins/NAME` and returns a copy of its
/// directory, ready to publish, in `dest`.
pub fn example_plugin(name: &str, dest: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins")
        .join(name);
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples");
    let (target, built, placed) = match name {
        "hello-wasm" => (
            Some("wasm32-wasip2"),
            "wasm32-wasip2/release/hello-wasm.wasm",
            "plugin.wasm",
        ),
        "hostile-wasm" => (
            Some("wasm32-wasip2"),
            "wasm32-wasip2/release/hostile-wasm.wasm",
            "plugin.wasm",
        ),
        "echo-native" => (None, "release/echo-native", "bin/echo-native"),
        "sneaky-wasm" => (
            Some("wasm32-wasip2"),
            "wasm32-wasip2/release/sneaky-wasm.wasm",
            "plugin.wasm",
        ),
        other => panic!("unknown example {other}"),
    };
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--release", "--manifest-path"])
        .arg(source.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "building example {name} failed (for hello-wasm: `rustup target add wasm32-wasip2`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = dest.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["plugin.yaml", "README.md", "sbom.cdx.json"] {
        if file == "plugin.yaml" || source.join(file).exists() {
            std::fs::copy(source.join(file), dir.join(file)).unwrap();
        }
    }
    let placed = dir.join(placed);
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::copy(target_dir.join(built), &placed).unwrap();
    dir
}

/// Publishes `acme/NAME@VERSION` with `deps` (`publisher/name`, requirement) and a module
/// whose bytes are "NAME VERSION".
pub fn publish_acme(alice: &Cli, work: &Path, name: &str, version: &str, deps: &[(&str, &str)]) {
    let extra = if deps.is_empty() {
        String::new()
    } else {
        let list = deps
            .iter()
            .map(|(d, r)| format!("\"{d}\": \"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!("dependencies: {{ {list} }}\n")
    };
    let module = format!("{name} {version}");
    let dir = plugin_dir(work, "acme", name, version, &extra, module.as_bytes());
    alice.run(&["publish", dir.to_str().unwrap()]).ok();
}

/// Writes a minimal plugin directory with a module of `module_bytes` bytes.
pub fn plugin_dir(
    dest: &Path,
    publisher: &str,
    name: &str,
    version: &str,
    extra: &str,
    module: &[u8],
) -> PathBuf {
    let dir = dest.join(format!("{publisher}-{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        "api_version: agora/v1\npublisher: {publisher}\nname: {name}\nversion: {version}\n\
         description: The {name} plugin\nlicense: MIT\nruntime: {{ type: wasm, module: plugin.wasm }}\n{extra}"
    );
    std::fs::write(dir.join("plugin.yaml"), manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), module).unwrap();
    dir
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    )
}

/// A blocking HTTP request for tests that need to look below the CLI.
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    http_with(method, url, token, &[], body)
}

/// [`http`] with extra request headers.
pub fn http_with(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap().to_vec())
    })
}

/// Names of the plugins in a `--json search` answer.
pub fn names(search: &serde_json::Value) -> Vec<String> {
    search["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The administrator as owner of publisher `examples`, with a signing key registered,
/// and a work directory.
pub fn examples_publisher(server: &Server) -> (Cli, tempfile::TempDir) {
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "examples"]).ok();
    alice.sign_for("examples");
    (alice, tempfile::tempdir().unwrap())
}

/// `METHOD path` on the API with `token` and `body` (JSON): the answer's JSON (`null`
/// when empty), which must come with `status`.
pub fn api(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    status: u16,
) -> serde_json::Value {
    let (got, _, answer) = http_with(
        method,
        &format!("{}{path}", server.url),
        Some(token),
        &[("content-type", "application/json")],
        body.map(|b| b.to_string().into_bytes()),
    );
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_slice(&answer).unwrap_or_default()
}

/// Polls `check` until it gives a value (for what the server writes in the background,
/// such as analytics, flushed every second); fails after 15 s naming `what`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `GET path` on `server`, anonymously, expecting 200 and JSON.
pub fn get_json(server: &Server, path: &str) -> serde_json::Value {
    let (status, _, body) = http("GET", &format!("{}{path}", server.url), None, None);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// The `hashes` of a log proof answer.
pub fn proof_hashes(v: &serde_json::Value) -> Vec<agora_trust::log::Hash> {
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

/// Publishes the plugin directory `dir` signed with `key` through the client library, as
/// `agora publish` does: the files the registry lacks uploaded, then the release
/// submitted. The error says which step failed.
pub async fn publish_signed(
    client: &agora_client::Client,
    key: &agora_trust::SigningKey,
    dir: &Path,
) -> Result<agora_core::api::PublishResponse, agora_client::publish::PublishError> {
    let release = agora_client::ReleaseFiles::from_dir(dir).unwrap();
    let signature = agora_client::publish::Signer::Key(key).sign(&release)?;
    let missing = agora_client::publish::missing(client, &release).await?;
    agora_client::publish::upload(client, &missing, |_| {}, |_| {}).await?;
    agora_client::publish::submit(client, &release, &signature).await
}

/// `v` percent-encoded for a form body (every byte but unreserved ones).
pub fn form_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in on the web form at `server_url` as a browser would: fetches `/login` (from
/// local address `page_from`, e.g. `127.0.0.9`, if given) for its CSRF cookie and token,
/// then posts the form body `fields` (already encoded, e.g. `username=admin&password=...`)
/// from `post_from`. Returns the status, the headers and the page.
pub fn sign_in_on_form(
    server_url: &str,
    page_from: Option<&str>,
    post_from: Option<&str>,
    fields: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = |from: Option<&str>| {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(from) = from {
            b = b.local_address(from.parse::<std::net::IpAddr>().unwrap());
        }
        b.build().unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let login = format!("{server_url}/login");
        let page = client(page_from).get(&login).send().await.unwrap();
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ");
        let html = page.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let answer = client(post_from)
            .post(&login)
            .header("cookie", cookie)
            .header("origin", server_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}&{fields}", form_value(&csrf)))
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        (status, headers, answer.text().await.unwrap())
    })
}
