//! The runtime spec (`config.json`) of one OCI launch, built with `oci-spec`'s types.
//!
//! What it asks of the runtime, and why each holds on these hosts:
//! - new PID, mount, IPC, UTS, cgroup and network namespaces; the network namespace is
//!   empty (only loopback, down), so the egress proxy's Unix socket in the work
//!   directory is the only way out. No user namespace: the plugin already runs as an
//!   unprivileged uid with no capabilities, and `unshare`, `setns` and `clone` into a
//!   new user namespace are killed by seccomp;
//! - the image's root file system read-only, the launch's size-capped tmpfs work
//!   directory on `/tmp` and the plugin directory read-only on `/tmp/plugin` (as for a
//!   native plugin), a fresh `/proc`, a small `/dev` tmpfs (the runtime adds `null`,
//!   `zero`, `full`, `random`, `urandom` and `tty`), runc's masked and read-only paths;
//! - uid and gid 65534 (whatever the image's config says), no supplementary groups, no
//!   capabilities in any set, `noNewPrivileges`;
//! - rlimits as the native sandbox sets them, each lowered to the runner's own hard
//!   limit: an unprivileged runtime (no `CAP_SYS_RESOURCE`) cannot raise one;
//! - the launch's cgroup (made by the runner, joined by the runtime) with the memory,
//!   process and CPU limits of the grant;
//! - the native sandbox's seccomp filter, as a profile (`native::seccomp`'s lists).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscallBuilder, Mount, MountBuilder,
    PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder, get_default_maskedpaths, get_default_readonly_paths,
};

use crate::RunError;
use crate::native::seccomp::FORBIDDEN;

/// Inside the container, as inside the native sandbox.
pub(crate) const INSIDE_WORK: &str = "/tmp";
pub(crate) const INSIDE_PLUGIN: &str = "/tmp/plugin";
/// Largest file a plugin may write (as native).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Address space beyond the memory limit (as native).
const ADDRESS_SPACE_SLACK: u64 = 1024 * 1024 * 1024;
/// CPU bandwidth: one core's worth of time per period (as native).
const CPU_PERIOD_US: u64 = 100_000;

/// What one launch's spec is made of.
pub(crate) struct SpecInputs<'a> {
    /// The image's root file system (read-only, shared by launches of that image).
    pub rootfs: &'a Path,
    /// The launch's work directory (a tmpfs the runner mounted).
    pub workdir: &'a Path,
    pub plugin_dir: &'a Path,
    /// The image config's `Entrypoint` followed by its `Cmd`.
    pub args: Vec<String>,
    /// `NAME=value`: the contract's variables and granted secrets, nothing else.
    pub env: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub memory_bytes: u64,
    pub max_processes: u32,
    pub max_fds: u64,
    pub cpu_secs: u64,
    /// The launch's cgroup, relative to each hierarchy's root (`/agora/<name>`).
    pub cgroups_path: PathBuf,
}

fn spec_error(e: oci_spec::OciSpecError) -> RunError {
    RunError::Sandbox(format!("cannot build the OCI runtime spec: {e}"))
}

/// The spec for `inputs`.
pub(crate) fn runtime_spec(inputs: &SpecInputs) -> Result<Spec, RunError> {
    let no_capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(Capabilities::new())
        .effective(Capabilities::new())
        .inheritable(Capabilities::new())
        .permitted(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(spec_error)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(inputs.uid)
                .gid(inputs.gid)
                .additional_gids(Vec::<u32>::new())
                .build()
                .map_err(spec_error)?,
        )
        .args(inputs.args.clone())
        .env(inputs.env.clone())
        .cwd(INSIDE_WORK)
        .capabilities(no_capabilities)
        .rlimits(rlimits(inputs)?)
        .no_new_privileges(true)
        .build()
        .map_err(spec_error)?;
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(spec_error)?;
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(inputs.memory_bytes as i64)
                .build()
                .map_err(spec_error)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(i64::from(inputs.max_processes))
                .build()
                .map_err(spec_error)?,
        )
        .cpu(
            LinuxCpuBuilder::default()
                .period(CPU_PERIOD_US)
                .quota(CPU_PERIOD_US as i64)
                .build()
                .map_err(spec_error)?,
        )
        .build()
        .map_err(spec_error)?;
    let mut masked = get_default_maskedpaths();
    masked.push("/proc/sys/kernel/core_pattern".into());
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(inputs.cgroups_path.clone())
        .masked_paths(masked)
        .readonly_paths(get_default_readonly_paths())
        .seccomp(seccomp_profile()?)
        .build()
        .map_err(spec_error)?;
    SpecBuilder::default()
        .version("1.0.2")
        .hostname("agora-plugin")
        .process(process)
        .root(
            RootBuilder::default()
                .path(inputs.rootfs)
                .readonly(true)
                .build()
                .map_err(spec_error)?,
        )
        .mounts(mounts(inputs)?)
        .linux(linux)
        .build()
        .map_err(spec_error)
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, RunError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(spec_error)
}

fn mounts(inputs: &SpecInputs) -> Result<Vec<Mount>, RunError> {
    Ok(vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "noexec", "strictatime", "mode=755", "size=64k"],
        )?,
        mount(
            INSIDE_WORK,
            "bind",
            inputs.workdir,
            &["rbind", "nosuid", "nodev", "rw"],
        )?,
        mount(
            INSIDE_PLUGIN,
            "bind",
            inputs.plugin_dir,
            &["rbind", "nosuid", "nodev", "ro"],
        )?,
    ])
}

fn rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> Result<PosixRlimit, RunError> {
    PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()
        .map_err(spec_error)
}

/// The native sandbox's rlimits, each at or below the runner's own hard limit.
fn rlimits(inputs: &SpecInputs) -> Result<Vec<PosixRlimit>, RunError> {
    use nix::sys::resource::{Resource, getrlimit};
    let wanted = [
        (
            PosixRlimitType::RlimitNofile,
            Resource::RLIMIT_NOFILE,
            inputs.max_fds,
            inputs.max_fds,
        ),
        (
            PosixRlimitType::RlimitAs,
            Resource::RLIMIT_AS,
            inputs.memory_bytes + ADDRESS_SPACE_SLACK,
            inputs.memory_bytes + ADDRESS_SPACE_SLACK,
        ),
        (
            PosixRlimitType::RlimitFsize,
            Resource::RLIMIT_FSIZE,
            MAX_FILE_BYTES,
            MAX_FILE_BYTES,
        ),
        (PosixRlimitType::RlimitCore, Resource::RLIMIT_CORE, 0, 0),
        (
            PosixRlimitType::RlimitCpu,
            Resource::RLIMIT_CPU,
            inputs.cpu_secs,
            inputs.cpu_secs + 1,
        ),
    ];
    wanted
        .into_iter()
        .map(|(typ, resource, soft, hard)| {
            let (_, current_hard) = getrlimit(resource)
                .map_err(|e| RunError::Sandbox(format!("getrlimit {resource:?}: {e}")))?;
            let hard = hard.min(current_hard);
            rlimit(typ, soft.min(hard), hard)
        })
        .collect()
}

fn seccomp_arch() -> Result<Arch, RunError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(Arch::ScmpArchX86_64),
        "aarch64" => Ok(Arch::ScmpArchAarch64),
        other => Err(RunError::Sandbox(format!("no seccomp profile for {other}"))),
    }
}

/// The native filter as a profile: the forbidden calls and `clone` into a new user
/// namespace kill the process; sockets of any family but `AF_UNIX` fail with
/// `EAFNOSUPPORT`; `clone3` fails with `ENOSYS` (its flags are out of a filter's reach,
/// and the C library falls back to `clone`). Only the native architecture is listed:
/// calls of any other ABI (x32, i386) meet libseccomp's bad-architecture action.
pub(crate) fn seccomp_profile() -> Result<LinuxSeccomp, RunError> {
    let names = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let forbidden: Vec<String> = FORBIDDEN
        .iter()
        .map(|(_, name)| name.trim_start_matches("SYS_").to_owned())
        .collect();
    let kill = LinuxSyscallBuilder::default()
        .names(forbidden)
        .action(LinuxSeccompAction::ScmpActKillProcess)
        .build()
        .map_err(spec_error)?;
    let new_user = libc::CLONE_NEWUSER as u64;
    let clone_new_user = LinuxSyscallBuilder::default()
        .names(names(&["clone"]))
        .action(LinuxSeccompAction::ScmpActKillProcess)
        .args(vec![
            LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(new_user)
                .value_two(new_user)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .map_err(spec_error)?,
        ])
        .build()
        .map_err(spec_error)?;
    let not_unix = LinuxSyscallBuilder::default()
        .names(names(&["socket", "socketpair"]))
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EAFNOSUPPORT as u32)
        .args(vec![
            LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(libc::AF_UNIX as u64)
                .op(LinuxSeccompOperator::ScmpCmpNe)
                .build()
                .map_err(spec_error)?,
        ])
        .build()
        .map_err(spec_error)?;
    let no_clone3 = LinuxSyscallBuilder::default()
        .names(names(&["clone3"]))
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::ENOSYS as u32)
        .build()
        .map_err(spec_error)?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![seccomp_arch()?])
        .syscalls(vec![kill, clone_new_user, not_unix, no_clone3])
        .build()
        .map_err(spec_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> SpecInputs<'static> {
        SpecInputs {
            rootfs: Path::new("/var/lib/agora/oci/rootfs/abc"),
            workdir: Path::new("/var/lib/agora/runs/x/launch-0"),
            plugin_dir: Path::new("/plugins/acme/echo"),
            args: vec!["/echo".into(), "--serve".into()],
            env: vec!["AGORA_PLUGIN_FD=3".into()],
            uid: 65534,
            gid: 65534,
            memory_bytes: 64 << 20,
            max_processes: 16,
            max_fds: 32,
            cpu_secs: 30,
            cgroups_path: "/agora/r1-x-0".into(),
        }
    }

    #[test]
    fn the_spec_confines_as_the_native_sandbox_does() {
        let spec = runtime_spec(&inputs()).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["process"]["user"]["uid"], 65534);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(json["process"]["capabilities"][set], serde_json::json!([]));
        }
        let namespaces: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            namespaces,
            ["pid", "mount", "ipc", "uts", "network", "cgroup"]
        );
        assert!(namespaces.iter().all(|n| *n != "user"), "no user namespace");
        assert!(
            json["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n.get("path").is_none()),
            "every namespace is new, the network one empty"
        );
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 16);
        let seccomp = &json["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ALLOW");
        let killed = seccomp["syscalls"][0]["names"].as_array().unwrap();
        assert!(killed.iter().any(|n| n == "ptrace"));
        assert!(killed.iter().any(|n| n == "unshare"));
        assert_eq!(seccomp["syscalls"][2]["errnoRet"], libc::EAFNOSUPPORT);
        let mounts: Vec<&str> = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, ["/proc", "/dev", "/tmp", "/tmp/plugin"]);
        assert!(
            json["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "/proc/kcore")
        );
    }

    #[test]
    fn no_rlimit_is_above_the_runners_own() {
        let spec = runtime_spec(&inputs()).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        let (_, nofile) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        for limit in json["process"]["rlimits"].as_array().unwrap() {
            assert!(limit["soft"].as_u64() <= limit["hard"].as_u64(), "{limit}");
            if limit["type"] == "RLIMIT_NOFILE" {
                assert!(limit["hard"].as_u64().unwrap() <= nofile);
                assert_eq!(limit["hard"], 32);
            }
        }
    }
}
