//! Native plugins: a separate process in a Linux sandbox, speaking the contract over a
//! listening Unix socket the runner binds and hands over as descriptor 3.
//!
//! The process tree, built by the pre-exec hook of the launch:
//!
//! ```text
//! runner ── keeper (old PID namespace; waits, forwards the exit status)
//!             └── plugin = PID 1 of a new PID namespace (dies with the keeper)
//! ```
//!
//! The keeper joins the launch's cgroup, unshares mount, PID, network, IPC, UTS and
//! cgroup namespaces, and forks the plugin. The plugin makes its mounts private, binds
//! its work directory on `/tmp` and the plugin directory read-only on `/tmp/plugin`,
//! mounts a fresh `/proc`, sets rlimits (open files, address space, CPU time, file
//! size, no core), drops to the unprivileged uid and gid with no groups, applies
//! Landlock (read-only system libraries, read/execute plugin directory, writable work
//! directory, nothing else; signals scoped to the sandbox) and a seccomp filter, then
//! executes the plugin with only the contract's variables and granted secrets in its
//! environment. The network namespace has no interface: the only way out is the
//! runner's egress proxy, a Unix socket in the work directory.
//!
//! Killing the keeper kills the plugin (parent-death signal), which as PID 1 takes its
//! whole namespace with it; the cgroup is emptied as well before it is removed.
//!
//! OCI plugins are supervised here too ([`NativePlugin::oci`]): the same work directory,
//! socket, cgroup, egress proxy, start-up wait, timeouts and reports, with `runc run`
//! (`crate::oci`) in place of the keeper and the sandbox it builds.

mod cgroup;
mod sandbox;
pub(crate) mod seccomp;

pub use cgroup::sweep_stale;

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::audit::{Denied, Kind};
use crate::egress::{ProxyHandle, spawn_proxy};
use crate::transport::{ExchangeError, exchange};
use crate::{LaunchContext, PluginSource, RunError, START_TIMEOUT};
use cgroup::Cgroup;
use sandbox::{
    ADDRESS_SPACE_SLACK, CORE_SOCKET, INSIDE_PLUGIN, INSIDE_WORK, MAX_FILE_BYTES, PLUGIN_SOCKET,
    PROXY_SOCKET, SandboxSetup, control_dir, cstring, hidden_dirs, landlock_ruleset,
    prepare_control_dir, prepare_workdir,
};

const STDERR_TAIL: usize = 4096;

fn check_host(uid: u32, gid: u32) -> Result<(), RunError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(RunError::Sandbox(
            "native and OCI plugins need the runner to run as root to build their sandbox \
             (namespaces, cgroups, the switch to an unprivileged uid); run WASM plugins instead, \
             or run the runner as root"
                .into(),
        ));
    }
    if uid == 0 || gid == 0 {
        return Err(RunError::Sandbox(
            "the sandbox uid and gid must not be 0".into(),
        ));
    }
    Ok(())
}

pub(crate) struct NativePlugin {
    context: Arc<LaunchContext>,
    plugin_dir: PathBuf,
    uid: u32,
    gid: u32,
    how: Launcher,
    instance: tokio::sync::Mutex<Option<Arc<Instance>>>,
    launches: std::sync::atomic::AtomicU32,
}

/// What starts a launch's process.
enum Launcher {
    /// The runner's own sandbox (`sandbox.rs`).
    Sandbox {
        /// The executable, relative to the plugin directory.
        binary: PathBuf,
        /// The Landlock ABI the rules are built for (the kernel's best, capped by policy).
        landlock_abi: u8,
        seccomp: Arc<seccomp::Filters>,
    },
    /// An OCI runtime.
    Oci(crate::oci::OciLaunch),
}

struct Instance {
    child: Mutex<tokio::process::Child>,
    pid: u32,
    socket: PathBuf,
    cgroup: Cgroup,
    fork_refusals: std::sync::atomic::AtomicU64,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    _proxy: ProxyHandle,
    /// Serves the plugin's callbacks on `AGORA_CORE_SOCKET` (when it may make any).
    _core: Option<ProxyHandle>,
    /// An OCI launch's container, deleted before the work directory goes.
    container: Option<crate::oci::Container>,
    /// Dropped after the processes are killed (fields drop after `Drop::drop`).
    _work: WorkMount,
}

/// A launch's tmpfs work directory, unmounted and removed on drop.
struct WorkMount(PathBuf);

impl Drop for WorkMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Instance {
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let status = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_wait()
            .ok()
            .flatten()?;
        Some(match self.container {
            Some(_) => crate::oci::container_status(status),
            None => status,
        })
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>()).into_owned()
    }

    fn kill(&self) {
        let _ = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_kill();
        if let Some(container) = &self.container {
            container.kill();
        }
        self.cgroup.kill_all();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        if let Some(control) = self.socket.parent() {
            let _ = std::fs::remove_dir_all(control);
        }
    }
}

impl NativePlugin {
    pub fn new(
        source: &PluginSource,
        context: LaunchContext,
        uid: u32,
        gid: u32,
        landlock_abi: u8,
    ) -> Result<NativePlugin, RunError> {
        check_host(uid, gid)?;
        let binary = source
            .code
            .strip_prefix(&source.dir)
            .map(Path::to_path_buf)
            .map_err(|_| {
                RunError::Sandbox("the executable is outside the plugin directory".into())
            })?;
        let mode = std::fs::metadata(&source.code)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o001 == 0 {
            return Err(RunError::Source {
                path: source.code.clone(),
                problem: format!(
                    "the executable has mode {:o}; the sandbox user needs it executable by others (e.g. 0755)",
                    mode & 0o7777
                ),
            });
        }
        let how = Launcher::Sandbox {
            binary,
            landlock_abi,
            seccomp: Arc::new(seccomp::Filters::new()?),
        };
        Ok(NativePlugin::with(source, context, uid, gid, how))
    }

    /// An OCI plugin, started by `launch`'s runtime.
    pub fn oci(
        source: &PluginSource,
        context: LaunchContext,
        uid: u32,
        gid: u32,
        launch: crate::oci::OciLaunch,
    ) -> Result<NativePlugin, RunError> {
        check_host(uid, gid)?;
        Ok(NativePlugin::with(
            source,
            context,
            uid,
            gid,
            Launcher::Oci(launch),
        ))
    }

    fn with(
        source: &PluginSource,
        context: LaunchContext,
        uid: u32,
        gid: u32,
        how: Launcher,
    ) -> NativePlugin {
        NativePlugin {
            context: Arc::new(context),
            plugin_dir: source.dir.clone(),
            uid,
            gid,
            how,
            instance: tokio::sync::Mutex::new(None),
            launches: std::sync::atomic::AtomicU32::new(0),
        }
    }

    pub async fn handle(
        &self,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, RunError> {
        let instance = self.instance().await?;
        match tokio::time::timeout(timeout, exchange(&instance.socket, request)).await {
            Ok(Ok(response)) => {
                self.note_fork_refusals(&instance);
                Ok(response)
            }
            Ok(Err(error)) => {
                // Give a dying process a moment to be reaped, to tell why it died.
                for _ in 0..50 {
                    if let Some(status) = instance.exited() {
                        return Err(self.retire(&instance, status).await);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(match error {
                    ExchangeError::Connect(e) => {
                        RunError::Crashed(format!("cannot reach the plugin: {e}"))
                    }
                    ExchangeError::Protocol(p) => RunError::Protocol(p),
                })
            }
            Err(_) => {
                self.context.audit.record(
                    Kind::Denial,
                    &self.context.subject,
                    json!({"denied": Denied::Limit, "limit": "timeout",
                           "timeout_ms": timeout.as_millis() as u64, "pid": instance.pid}),
                );
                instance.kill();
                self.forget(&instance).await;
                self.context.audit.record(
                    Kind::Stop,
                    &self.context.subject,
                    json!({"pid": instance.pid, "reason": "killed at its timeout, with everything it started"}),
                );
                Err(RunError::Timeout {
                    ms: timeout.as_millis() as u64,
                })
            }
        }
    }

    fn note_fork_refusals(&self, instance: &Instance) {
        let now = instance.cgroup.fork_refusals();
        let before = instance
            .fork_refusals
            .swap(now, std::sync::atomic::Ordering::Relaxed);
        if now > before {
            self.context.audit.record(
                Kind::Denial,
                &self.context.subject,
                json!({"denied": Denied::Limit, "limit": "processes",
                       "max_processes": self.context.grant.limits.max_processes,
                       "refused_forks": now - before}),
            );
        }
    }

    async fn forget(&self, instance: &Arc<Instance>) {
        let mut slot = self.instance.lock().await;
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, instance))
        {
            *slot = None;
        }
    }

    /// Records why an instance ended, forgets it, and returns the error to report.
    async fn retire(&self, instance: &Arc<Instance>, status: std::process::ExitStatus) -> RunError {
        self.forget(instance).await;
        self.note_fork_refusals(instance);
        let code = status.code().unwrap_or(-1);
        // The keeper dies of the signal the plugin died of.
        let signal = status.signal().and_then(|s| Signal::try_from(s).ok());
        let stderr = instance.stderr_tail();
        let limits = &self.context.grant.limits;
        let (denied, error) = if signal == Some(Signal::SIGSYS) {
            (
                Some(
                    json!({"denied": Denied::Syscall, "reason": "a forbidden system call (seccomp)"}),
                ),
                RunError::Syscall,
            )
        } else if instance.cgroup.oom_killed()
            // Rust's allocation-failure message; as PID 1 the plugin cannot die of its
            // own SIGABRT, so the signal it ends with varies.
            || (signal.is_some() && stderr.contains("memory allocation of"))
        {
            (
                Some(
                    json!({"denied": Denied::Limit, "limit": "memory", "memory_mb": limits.memory_mb}),
                ),
                RunError::Limit {
                    what: format!("memory ({} MiB)", limits.memory_mb),
                },
            )
        } else if signal == Some(Signal::SIGXCPU) {
            (
                Some(json!({"denied": Denied::Limit, "limit": "cpu", "cpu_secs": limits.cpu_secs})),
                RunError::Limit {
                    what: format!("CPU time ({} s)", limits.cpu_secs),
                },
            )
        } else if signal == Some(Signal::SIGXFSZ) {
            (
                Some(
                    json!({"denied": Denied::Limit, "limit": "file_size", "bytes": MAX_FILE_BYTES}),
                ),
                RunError::Limit {
                    what: "file size".into(),
                },
            )
        } else {
            let how = match signal {
                Some(s) => format!("killed by {s}"),
                None => format!("exited with status {code}"),
            };
            let detail = if stderr.trim().is_empty() {
                how
            } else {
                format!("{how}; last output: {}", stderr.trim())
            };
            (None, RunError::Crashed(detail))
        };
        if let Some(denial) = denied {
            self.context
                .audit
                .record(Kind::Denial, &self.context.subject, denial);
        }
        self.context.audit.record(
            Kind::Stop,
            &self.context.subject,
            json!({"pid": instance.pid, "status": code, "signal": signal.map(|s| s.as_str()),
                   "reason": error.to_string()}),
        );
        error
    }

    /// The running instance, started if there is none.
    async fn instance(&self) -> Result<Arc<Instance>, RunError> {
        let mut slot = self.instance.lock().await;
        if let Some(current) = slot.as_ref() {
            match current.exited() {
                None => return Ok(current.clone()),
                Some(status) => {
                    let current = current.clone();
                    *slot = None;
                    drop(slot);
                    let error = self.retire(&current, status).await;
                    tracing::info!(
                        "{} ended ({error}); starting it again",
                        self.context.subject.plugin
                    );
                    slot = self.instance.lock().await;
                }
            }
        }
        let instance = Arc::new(self.launch().await?);
        *slot = Some(instance.clone());
        Ok(instance)
    }

    async fn launch(&self) -> Result<Instance, RunError> {
        let context = &self.context;
        let started = Instant::now();
        let launch = self
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Each launch gets its own size-capped tmpfs as work directory (its pages count
        // against the launch's memory cgroup too): a plugin cannot fill the host's disk.
        let workdir = &context.workdir.join(format!("launch-{launch}"));
        prepare_workdir(workdir, self.uid, self.gid, context.grant.limits.disk_mb)?;
        let mounted = WorkMount(workdir.clone());
        // The runner binds the plugin's socket in a directory only it can write, and hands
        // the listening descriptor over: the runner never connects to a path the plugin
        // could have replaced (with a link to some other socket of the host, say).
        let control = control_dir(workdir);
        prepare_control_dir(&control)?;
        let socket = control.join(PLUGIN_SOCKET);
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .map_err(|e| RunError::Sandbox(format!("cannot bind {}: {e}", socket.display())))?;
        let limits = context.grant.limits;
        let cgroup_name = format!(
            "{}-{}",
            context
                .workdir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("plugin"),
            launch
        );
        let cgroup_name = cgroup::launch_name(&cgroup_name);
        let cgroup = Cgroup::create(
            &cgroup_name,
            u64::from(limits.memory_mb) * 1024 * 1024,
            limits.max_processes,
        )?;
        let proxy = spawn_proxy(&workdir.join(PROXY_SOCKET), context.clone())
            .map_err(|e| RunError::Sandbox(format!("cannot start the egress proxy: {e}")))?;
        let core = if context.callbacks.any_granted() {
            let socket = crate::callbacks::serve_socket(
                &workdir.join(CORE_SOCKET),
                context.callbacks.clone(),
            )
            .map_err(|e| RunError::Sandbox(format!("cannot serve the callback socket: {e}")))?;
            Some(socket)
        } else {
            None
        };
        // The contract's environment, and nothing of the runner's.
        let mut environment = context.environment.clone();
        environment.extend([
            (
                agora_contract::FD_ENV.to_owned(),
                agora_contract::PLUGIN_FD.to_string(),
            ),
            (
                agora_contract::PROXY_ENV.to_owned(),
                format!("{INSIDE_WORK}/{PROXY_SOCKET}"),
            ),
        ]);
        if core.is_some() {
            environment.push((
                agora_contract::CORE_SOCKET_ENV.to_owned(),
                format!("{INSIDE_WORK}/{CORE_SOCKET}"),
            ));
        }
        environment.extend([
            ("TMPDIR".to_owned(), INSIDE_WORK.to_owned()),
            ("HOME".to_owned(), INSIDE_WORK.to_owned()),
        ]);
        let listen_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let (mut command, container, what) = match &self.how {
            Launcher::Sandbox {
                binary,
                landlock_abi,
                seccomp,
            } => {
                let ruleset = landlock_ruleset(&self.plugin_dir, workdir, *landlock_abi)?;
                let mut command =
                    tokio::process::Command::new(Path::new(INSIDE_PLUGIN).join(binary));
                command
                    .env_clear()
                    .envs(environment)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true);
                let setup = SandboxSetup {
                    listen_fd,
                    hidden: hidden_dirs(&context.workdir)?,
                    cgroup_procs: cgroup.procs.clone(),
                    plugin_dir: cstring(&self.plugin_dir)?,
                    plugin_mount: cstring(&workdir.join("plugin"))?,
                    workdir: cstring(workdir)?,
                    uid: self.uid,
                    gid: self.gid,
                    max_fds: limits.max_fds.into(),
                    address_space: u64::from(limits.memory_mb) * 1024 * 1024 + ADDRESS_SPACE_SLACK,
                    cpu_secs: limits.cpu_secs.into(),
                    ruleset: Mutex::new(Some(ruleset)),
                    seccomp: seccomp.clone(),
                };
                // SAFETY: the hook runs between fork and exec. It makes system calls
                // only, on values prepared above, and allocates nothing itself (see
                // `SandboxSetup::enter`).
                unsafe {
                    command.pre_exec(move || setup.enter());
                }
                (command, None, binary.display().to_string())
            }
            Launcher::Oci(oci) => {
                let (command, container) = oci.command(crate::oci::LaunchSpec {
                    control: &control,
                    workdir,
                    plugin_dir: &self.plugin_dir,
                    env: environment,
                    uid: self.uid,
                    gid: self.gid,
                    memory_bytes: u64::from(limits.memory_mb) * 1024 * 1024,
                    max_processes: limits.max_processes,
                    max_fds: limits.max_fds.into(),
                    cpu_secs: limits.cpu_secs.into(),
                    cgroup_name: &cgroup_name,
                    listen_fd,
                })?;
                let what = format!("the container {}", container.id);
                (command, Some(container), what)
            }
        };
        let mut child = command
            .spawn()
            .map_err(|e| RunError::Sandbox(format!("cannot start {what}: {e}")))?;
        // The plugin holds the listening socket now.
        drop(listener);
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        if let Some(mut pipe) = child.stderr.take() {
            let tail = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    tail.extend(&buf[..n]);
                    while tail.len() > STDERR_TAIL {
                        tail.pop_front();
                    }
                }
            });
        }
        let instance = Instance {
            child: Mutex::new(child),
            pid,
            socket,
            cgroup,
            fork_refusals: std::sync::atomic::AtomicU64::new(0),
            stderr,
            _proxy: proxy,
            _core: core,
            container,
            _work: mounted,
        };
        self.await_ready(&instance).await?;
        context.audit.record(
            Kind::Start,
            &context.subject,
            json!({"sandbox": if instance.container.is_some() { "oci" } else { "process" },
                   "container": instance.container.as_ref().map(|c| c.id.as_str()),
                   "pid": pid, "uid": self.uid,
                   "start_ms": started.elapsed().as_secs_f64() * 1000.0,
                   "limits": limits}),
        );
        Ok(instance)
    }

    /// Waits for the first `GET /healthz` to answer 200.
    async fn await_ready(&self, instance: &Instance) -> Result<(), RunError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut delay = Duration::from_micros(200);
        loop {
            if let Some(status) = instance.exited() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let tail = instance.stderr_tail();
                let error = if status.signal() == Some(libc::SIGSYS) {
                    RunError::Syscall
                } else {
                    RunError::Crashed(format!(
                        "the plugin ended before it was ready ({status}){}",
                        if tail.trim().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", tail.trim())
                        }
                    ))
                };
                self.context.audit.record(
                    Kind::Failure,
                    &self.context.subject,
                    json!({"error": error.to_string()}),
                );
                return Err(error);
            }
            {
                let now = crate::unix_now();
                let builder = http::Request::get("http://plugin/healthz")
                    .header(http::header::HOST, "plugin");
                let request =
                    crate::signed(builder, &self.context.key, "GET", "/healthz", now, b"")
                        .body(Bytes::new())
                        .map_err(|e| RunError::Sandbox(e.to_string()))?;
                if let Ok(Ok(response)) = tokio::time::timeout(
                    Duration::from_secs(1),
                    exchange(&instance.socket, request),
                )
                .await
                    && response.status() == http::StatusCode::OK
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                instance.kill();
                return Err(RunError::Crashed(format!(
                    "the plugin did not answer GET /healthz within {} s of starting",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(20));
        }
    }
}
