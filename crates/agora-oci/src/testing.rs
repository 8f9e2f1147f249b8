//! A real registry for tests (feature `testing`): Debian's `docker-registry`
//! (distribution v2) started on a free loopback port over a temporary storage directory,
//! and images pushed into it from an OCI layout with `skopeo`. Both tools are required:
//! a test that needs them fails, never skips, when one is missing.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::layout::{self, BuiltImage, File, ImageSpec};

/// A running `docker-registry`, stopped when dropped.
pub struct LocalRegistry {
    child: Child,
    /// `127.0.0.1:PORT`, as references name it.
    pub address: String,
    dir: tempfile::TempDir,
}

impl LocalRegistry {
    /// Starts `docker-registry serve` on a free loopback port. Panics, naming the
    /// missing tool, when it cannot.
    pub fn start() -> LocalRegistry {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                storage.display()
            ),
        )
        .expect("the registry's configuration");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `docker-registry` ({e}); install Debian's docker-registry package (.ci/run does)"
                )
            });
        let mut registry = LocalRegistry {
            child,
            address,
            dir,
        };
        let started = Instant::now();
        while TcpStream::connect(&registry.address).is_err() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited at start: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen on {} within 20 s",
                registry.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Copies the image tagged `tag` of the OCI layout `layout` to `repository:tag`,
    /// digests preserved.
    pub fn push_layout(&self, layout: &Path, repository: &str, tag: &str) {
        let output = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repository}:{tag}", self.address))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `skopeo` ({e}); install Debian's skopeo package (.ci/run does)")
            });
        assert!(
            output.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Writes an image from `files` and `spec` and pushes it to `repository:tag`;
    /// returns what was built (its manifest digest pins it).
    pub fn push_image(
        &self,
        repository: &str,
        tag: &str,
        files: &[File],
        spec: &ImageSpec,
    ) -> BuiltImage {
        let layout_dir = self
            .dir
            .path()
            .join(format!("layout-{}", repository.replace('/', "-")));
        let image = layout::write(&layout_dir, tag, files, spec).expect("an image layout");
        self.push_layout(&layout_dir, repository, tag);
        image
    }

    /// `127.0.0.1:PORT/REPOSITORY@DIGEST`.
    pub fn reference(&self, repository: &str, digest: &str) -> String {
        format!("{}/{repository}@{digest}", self.address)
    }

    /// Where the registry keeps the blob `digest` (to tamper with it in tests).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry: whatever is pulled afterwards must come from a cache.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
