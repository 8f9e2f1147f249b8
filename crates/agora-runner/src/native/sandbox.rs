//! The sandbox a native plugin runs in, prepared before the fork and entered by the
//! launch's pre-exec hook: the work directory (a tmpfs), the control directory, the host
//! directories hidden from the plugin, the Landlock ruleset, and [`SandboxSetup::enter`]
//! (namespaces, mounts, rlimits, uid switch, Landlock, seccomp) with the keeper that
//! waits for the plugin as its parent.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Gid, Uid};

use super::seccomp;
use crate::RunError;

/// Inside the sandbox: the work directory, and the plugin directory beneath it.
pub(super) const INSIDE_WORK: &str = "/tmp";
pub(super) const INSIDE_PLUGIN: &str = "/tmp/plugin";
pub(super) const PLUGIN_SOCKET: &str = "plugin.sock";
pub(super) const PROXY_SOCKET: &str = "egress.sock";
pub(super) const CORE_SOCKET: &str = "core.sock";
/// Largest file a native plugin may write.
pub(super) const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Address space beyond the memory limit (thread stacks, allocator arenas, mappings);
/// resident memory is held to the limit by the cgroup.
pub(super) const ADDRESS_SPACE_SLACK: u64 = 1024 * 1024 * 1024;
/// System paths a plugin may read and execute (libraries, loader cache, CA roots).
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/etc/ld.so.cache",
    "/etc/ssl/certs",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
];

pub(super) fn cstring(path: &Path) -> Result<CString, RunError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| RunError::Sandbox(format!("{} contains a NUL byte", path.display())))
}

/// The work directory belongs to the sandbox user; `plugin/` inside it is the mount
/// point of the plugin directory. Sockets of an earlier launch are removed.
pub(super) fn prepare_workdir(
    workdir: &Path,
    uid: u32,
    gid: u32,
    disk_mb: u32,
) -> Result<(), RunError> {
    let io =
        |e: std::io::Error| RunError::Sandbox(format!("cannot prepare {}: {e}", workdir.display()));
    std::fs::create_dir_all(workdir).map_err(io)?;
    nix::mount::mount(
        Some("tmpfs"),
        workdir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(format!("size={disk_mb}m,mode=0700,uid={uid},gid={gid}").as_str()),
    )
    .map_err(|e| io(std::io::Error::from_raw_os_error(e as i32)))?;
    std::fs::create_dir(workdir.join("plugin")).map_err(io)?;
    Ok(())
}

/// Host directories a plugin must not see into: where services keep their sockets, home
/// directories, and the runner's own state (other launches' sockets among them).
const HIDDEN: &[&str] = &[
    "/run", "/var", "/home", "/root", "/srv", "/mnt", "/media", "/opt", "/dev/shm", "/sys",
];

/// `launch_parent` is the plugin's directory under `<state>/runs`.
pub(super) fn hidden_dirs(launch_parent: &Path) -> Result<Vec<CString>, RunError> {
    let workdir = launch_parent;
    let state = workdir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut dirs: Vec<PathBuf> = HIDDEN.iter().map(PathBuf::from).collect();
    // The state directory, unless something mounted before it covers it already: the
    // work directory's bind on /tmp, or one of the directories above.
    let covered = |d: &Path| {
        d.starts_with(INSIDE_WORK) || HIDDEN.iter().any(|h| d != Path::new(h) && d.starts_with(h))
    };
    if !covered(&state) {
        dirs.push(state);
    }
    dirs.iter()
        .filter(|d| {
            std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) && d.as_os_str().len() > 1
        })
        .map(|d| cstring(d))
        .collect()
}

/// `<runs>/<launch>.ctl`: root's, next to the work directory, never inside the sandbox.
pub(super) fn control_dir(workdir: &Path) -> PathBuf {
    let mut name = workdir.file_name().unwrap_or_default().to_os_string();
    name.push(".ctl");
    workdir.with_file_name(name)
}

pub(super) fn prepare_control_dir(control: &Path) -> Result<(), RunError> {
    let io =
        |e: std::io::Error| RunError::Sandbox(format!("cannot prepare {}: {e}", control.display()));
    std::fs::create_dir_all(control).map_err(io)?;
    std::fs::set_permissions(control, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    let _ = std::fs::remove_file(control.join(PLUGIN_SOCKET));
    Ok(())
}

/// Landlock: read-only system libraries, read/execute the plugin directory, everything
/// in the work directory, nothing else; from ABI 6, no signals or abstract sockets
/// reaching outside the sandbox. The rules are built for exactly `abi` (the kernel's
/// best, capped by policy) and the kernel must enforce all of them.
pub(super) fn landlock_ruleset(
    plugin_dir: &Path,
    workdir: &Path,
    abi: u8,
) -> Result<RulesetCreated, RunError> {
    let abi = ABI::from(i32::from(abi));
    let landlock = |e: landlock::RulesetError| RunError::Sandbox(format!("Landlock: {e}"));
    let system: Vec<&str> = SYSTEM_READ
        .iter()
        .copied()
        .filter(|p| Path::new(p).exists())
        .collect();
    let mut ruleset = landlock::Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(landlock)?;
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(landlock)?;
    }
    let ruleset = ruleset
        .create()
        .map_err(landlock)?
        .add_rules(path_beneath_rules(&system, AccessFs::from_read(abi)))
        .map_err(landlock)?
        .add_rules(path_beneath_rules([plugin_dir], AccessFs::from_read(abi)))
        .map_err(landlock)?
        .add_rules(path_beneath_rules([workdir], AccessFs::from_all(abi)))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(["/dev/null"], AccessFs::from_file(abi)))
        .map_err(landlock)?;
    Ok(ruleset)
}

/// Everything the pre-exec hook needs, prepared before the fork.
pub(super) struct SandboxSetup {
    pub(super) listen_fd: std::os::fd::RawFd,
    /// Host directories covered by empty tmpfs mounts inside the sandbox.
    pub(super) hidden: Vec<CString>,
    pub(super) cgroup_procs: Vec<CString>,
    pub(super) plugin_dir: CString,
    pub(super) plugin_mount: CString,
    pub(super) workdir: CString,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) max_fds: u64,
    pub(super) address_space: u64,
    pub(super) cpu_secs: u64,
    pub(super) ruleset: Mutex<Option<RulesetCreated>>,
    pub(super) seccomp: Arc<seccomp::Filters>,
}

fn os_err(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

impl SandboxSetup {
    /// Runs in the forked child before exec. Returns only in the plugin process; the
    /// keeper never returns (it waits for the plugin and exits with its status).
    pub(super) fn enter(&self) -> std::io::Result<()> {
        use nix::mount::{MsFlags, mount};
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(os_err)?;
        nix::unistd::setsid().map_err(os_err)?;
        for procs in &self.cgroup_procs {
            // SAFETY: a valid C string and a constant buffer.
            unsafe {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
        }
        nix::sched::unshare(
            CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWCGROUP,
        )
        .map_err(os_err)?;
        // SAFETY: the child only makes system calls before it executes the plugin.
        match unsafe { nix::unistd::fork() }.map_err(os_err)? {
            ForkResult::Parent { child } => keep(child),
            ForkResult::Child => {}
        }
        // The plugin: PID 1 of its namespace.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(os_err)?;
        // Its listening socket, as descriptor 3, kept across exec.
        // SAFETY: plain descriptor calls on a descriptor this process holds.
        unsafe {
            let fd = agora_contract::PLUGIN_FD;
            let rc = if self.listen_fd == fd {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(self.listen_fd, fd)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let none: Option<&str> = None;
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(os_err)?;
        mount(
            Some(self.plugin_dir.as_c_str()),
            self.plugin_mount.as_c_str(),
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(os_err)?;
        mount(
            none,
            self.plugin_mount.as_c_str(),
            none,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV,
            none,
        )
        .map_err(os_err)?;
        mount(
            Some(self.workdir.as_c_str()),
            INSIDE_WORK,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(os_err)?;
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        )
        .map_err(os_err)?;
        // Landlock does not govern connecting to Unix sockets by path: hide every
        // place the host keeps them (and the runner's own state) under empty,
        // read-only tmpfs mounts.
        for hidden in &self.hidden {
            mount(
                Some("tmpfs"),
                hidden.as_c_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,mode=555"),
            )
            .map_err(os_err)?;
        }
        nix::unistd::sethostname("agora-plugin").map_err(os_err)?;
        for (resource, limit) in [
            (Resource::RLIMIT_NOFILE, self.max_fds),
            (Resource::RLIMIT_AS, self.address_space),
            (Resource::RLIMIT_FSIZE, MAX_FILE_BYTES),
            (Resource::RLIMIT_CORE, 0),
        ] {
            nix::sys::resource::setrlimit(resource, limit, limit).map_err(os_err)?;
        }
        nix::sys::resource::setrlimit(Resource::RLIMIT_CPU, self.cpu_secs, self.cpu_secs + 1)
            .map_err(os_err)?;
        nix::unistd::chdir(INSIDE_WORK).map_err(os_err)?;
        nix::unistd::setgroups(&[]).map_err(os_err)?;
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        nix::unistd::setresgid(gid, gid, gid).map_err(os_err)?;
        nix::unistd::setresuid(uid, uid, uid).map_err(os_err)?;
        let ruleset = self
            .ruleset
            .lock()
            .map_err(|_| std::io::Error::other("landlock ruleset lock"))?
            .take()
            .ok_or_else(|| std::io::Error::other("landlock ruleset already used"))?;
        let status = ruleset
            .restrict_self()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))?;
        if status.ruleset == RulesetStatus::NotEnforced {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
        }
        self.seccomp.apply()?;
        Ok(())
    }
}

/// The keeper: waits for the plugin and exits with its status (128+N for signal N).
fn keep(child: nix::unistd::Pid) -> ! {
    use nix::sys::wait::{WaitStatus, waitpid};
    // Hold no descriptor: the spawner waits for its exec-status channel to close, and
    // the plugin's pipes must end when the plugin does.
    // SAFETY: closes this process's descriptors from 3 up; it uses none of them.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let code = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                // Die of the same signal, so that the runner sees a signal, never an exit
                // code a plugin could have chosen; no core file.
                // SAFETY: plain system calls on this process.
                unsafe {
                    let none = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::setrlimit(libc::RLIMIT_CORE, &none);
                    libc::signal(signal as i32, libc::SIG_DFL);
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut all);
                    libc::sigaddset(&mut all, signal as i32);
                    libc::sigprocmask(libc::SIG_UNBLOCK, &all, std::ptr::null_mut());
                    libc::raise(signal as i32);
                }
                break 128 + signal as i32;
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break 127,
        }
    };
    // SAFETY: ends the keeper without running the runner's exit handlers.
    unsafe { libc::_exit(code) }
}
