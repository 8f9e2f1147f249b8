//! The README's "Using it" block, run line by line as a newcomer types it, against a
//! real server: so the quick start can never drift from what works.
//!
//! Each line runs in `bash` from a copy of the repository's `examples/` (and the
//! contract crate the examples build against), with the `agora` under test first on
//! PATH, a fresh HOME and XDG_CONFIG_HOME, and AGORA_REGISTRY pointing at the server (the
//! README's default, 127.0.0.1:8080, may be taken). What a person would paste at a prompt
//! comes on standard input: the admin token for `agora login`, a password for
//! `agora user password alice`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shell lines of the first ```sh block after `heading`, comments and blanks dropped.
fn block_after(markdown: &str, heading: &str) -> Vec<String> {
    let start = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?} section"));
    let rest = &markdown[start..];
    let open = rest.find("```sh\n").expect("a ```sh block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();

    // The first screen: the two commands a newcomer runs.
    let first = block_after(&readme, "# Agora");
    assert!(
        first.contains(&"cargo run --release -p agora -- serve".to_owned()),
        "{first:?}"
    );
    assert!(first.contains(&"scripts/test".to_owned()), "{first:?}");
    assert!(repo().join("scripts/test").exists());

    let lines = block_after(&readme, "## Using it");
    assert!(lines.len() > 10, "{lines:?}");
    let server = Server::start(Backend::Sqlite);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("agora");
    copy_tree(&repo().join("examples"), &root.join("examples"));
    copy_tree(
        &repo().join("crates/agora-contract"),
        &root.join("crates/agora-contract"),
    );
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_agora")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut outputs = Vec::new();
    for line in &lines {
        let command = line.split('#').next().unwrap_or(line).trim();
        let stdin = if command == "agora login" {
            Some(format!("{}\n", server.admin_token))
        } else if command == "agora user password alice" {
            Some("correct horse battery staple\n".to_owned())
        } else {
            None
        };
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", line])
            .current_dir(&root)
            .env("PATH", &path)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("AGORA_REGISTRY", &server.url)
            .env_remove("AGORA_TOKEN")
            .env_remove("AGORA_SIGNING_KEY")
            .env_remove("AGORA_RUNNER_POLICY")
            .env_remove("CARGO_TARGET_DIR")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "README line failed: {line}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        outputs.push((line.clone(), stdout));
    }
    let output_of = |prefix: &str| -> &str {
        &outputs
            .iter()
            .find(|(l, _)| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("the README no longer runs {prefix:?}"))
            .1
    };

    // What the block promises happened.
    assert!(output_of("agora search greet").contains("examples/hello-wasm"));
    assert!(output_of("agora run examples/hello-wasm greet").contains("Hello, Ada!"));
    assert!(
        output_of("agora install examples/hello-wasm")
            .contains("Installed examples/hello-wasm@1.0.0")
    );
    let lock = std::fs::read_to_string(root.join("plugins/agora.lock")).unwrap();
    assert!(lock.contains("examples/hello-wasm"), "{lock}");
    let token = std::fs::read_to_string(root.join("alice.token")).unwrap();
    assert_eq!(
        token.trim().lines().count(),
        1,
        "`-q token create` prints the token alone: {token:?}"
    );
    // The last login was alice's.
    let me = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["--json", "whoami"])
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("AGORA_REGISTRY", &server.url)
        .env_remove("AGORA_TOKEN")
        .output()
        .unwrap();
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["username"], "alice", "{me}");
}
