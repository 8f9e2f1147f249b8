//! OCI plugins (`runtime.type: oci`): an image pinned by manifest digest, its layers
//! unpacked once into a read-only root file system, started by a real OCI runtime
//! (runc) under a runtime spec the runner writes for each launch.
//!
//! A launch is supervised exactly as a native one (`native::NativePlugin`: the same
//! start-up wait on `GET /healthz`, timeouts, limit reports, audit lines, and the same
//! launch cgroup, which the runtime joins through `linux.cgroupsPath`); only the process
//! it starts differs:
//!
//! ```text
//! runner ── runc run --bundle <launch>.ctl/bundle --preserve-fds 1 agora-r<pid>-<launch>
//!             └── plugin = PID 1 of the container (Entrypoint + Cmd of the image)
//! ```
//!
//! The contract is the native one: the listening socket the runner bound is descriptor 3
//! (`--preserve-fds 1`), the work directory (the launch's size-capped tmpfs, holding the
//! egress proxy's and the callbacks' Unix sockets) is `/tmp`, the plugin directory is
//! `/tmp/plugin`, and the environment holds only the contract's variables and granted
//! secrets. What the spec confines is said in `spec.rs`.
//!
//! runc keeps its state under `<state>/oci/runc` (`--root`), never the host's default,
//! so `runc --root <state>/oci/runc list` shows the runner's containers and nothing
//! else. A container is killed and deleted when its launch ends, times out, crashes or
//! is dropped; a runner that starts deletes the containers of runners that are gone.

pub mod image;
pub mod runc;
mod spec;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

pub use image::{BlobDir, PreparedImage, pinned_digest};
pub use runc::OciRuntime;

use crate::RunError;

/// What every launch of one OCI plugin shares.
pub(crate) struct OciLaunch {
    pub runtime: OciRuntime,
    /// runc's `--root`.
    pub state: PathBuf,
    pub image: PreparedImage,
}

/// One launch's container: killed and deleted on drop.
pub(crate) struct Container {
    runtime: OciRuntime,
    state: PathBuf,
    pub id: String,
}

impl Container {
    pub fn kill(&self) {
        self.runtime
            .quietly(&self.state, &["kill", &self.id, "KILL"]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.runtime.remove(&self.state, &self.id);
    }
}

/// What one launch hands to [`OciLaunch::command`].
pub(crate) struct LaunchSpec<'a> {
    pub control: &'a Path,
    pub workdir: &'a Path,
    pub plugin_dir: &'a Path,
    pub env: Vec<(String, String)>,
    pub uid: u32,
    pub gid: u32,
    pub memory_bytes: u64,
    pub max_processes: u32,
    pub max_fds: u64,
    pub cpu_secs: u64,
    /// The launch cgroup's name (`r<pid>-<launch>`), under `/agora` in each hierarchy.
    pub cgroup_name: &'a str,
    pub listen_fd: RawFd,
}

impl OciLaunch {
    /// Writes the launch's bundle and returns the `runc run` command that starts it,
    /// with the listening socket as its descriptor 3, and the container it will be.
    pub fn command(
        &self,
        launch: LaunchSpec,
    ) -> Result<(tokio::process::Command, Container), RunError> {
        let bundle = launch.control.join("bundle");
        let io = |e: std::io::Error| {
            RunError::Sandbox(format!("cannot write the bundle {}: {e}", bundle.display()))
        };
        std::fs::create_dir_all(&bundle).map_err(io)?;
        // runc reads a relative mount source (`agora run --dir plugins`) as relative to
        // the bundle, not to the runner's working directory.
        let absolute = |path: &Path| {
            std::path::absolute(path).map_err(|e| {
                RunError::Sandbox(format!("cannot make {} absolute: {e}", path.display()))
            })
        };
        let spec = spec::runtime_spec(&spec::SpecInputs {
            rootfs: &absolute(&self.image.rootfs)?,
            workdir: &absolute(launch.workdir)?,
            plugin_dir: &absolute(launch.plugin_dir)?,
            args: self.image.args.clone(),
            env: launch.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            uid: launch.uid,
            gid: launch.gid,
            memory_bytes: launch.memory_bytes,
            max_processes: launch.max_processes,
            max_fds: launch.max_fds,
            cpu_secs: launch.cpu_secs,
            cgroups_path: Path::new("/agora").join(launch.cgroup_name),
        })?;
        let json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| RunError::Sandbox(format!("cannot write the runtime spec: {e}")))?;
        std::fs::write(bundle.join("config.json"), json).map_err(io)?;
        std::fs::create_dir_all(&self.state).map_err(io)?;
        let container = Container {
            runtime: self.runtime.clone(),
            state: self.state.clone(),
            id: runc::container_id(launch.cgroup_name),
        };
        // A container of that id left by an earlier runner with the same pid.
        self.runtime.remove(&self.state, &container.id);
        let mut command = tokio::process::Command::new(&self.runtime.path);
        command
            .arg("--root")
            .arg(&self.state)
            .args(["run", "--no-new-keyring", "--preserve-fds", "1", "--bundle"])
            .arg(&bundle)
            .arg(&container.id)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let fd = launch.listen_fd;
        // SAFETY: between fork and exec, plain descriptor calls on a descriptor the
        // runner holds; nothing is allocated.
        unsafe {
            command.pre_exec(move || {
                let target = agora_contract::PLUGIN_FD;
                let rc = if fd == target {
                    libc::fcntl(target, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, target)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok((command, container))
    }
}

/// The exit status `runc run` reports for a container process killed by signal N is
/// 128+N; this is that status as if the process itself had been waited for, so the
/// supervisor tells a signal from an exit the same way for both kinds of launch.
pub(crate) fn container_status(runc: std::process::ExitStatus) -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match runc.code() {
        Some(code) if (129..=128 + 64).contains(&code) => {
            std::process::ExitStatus::from_raw(code - 128)
        }
        _ => runc,
    }
}
