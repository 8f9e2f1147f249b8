//! What this host's kernel can enforce for native plugins, and what the native sandbox
//! loses on an older kernel.
//!
//! The native sandbox stacks namespaces, cgroup v2 limits, rlimits, an unprivileged uid,
//! Landlock and seccomp. Landlock grew over kernel releases, one ABI version at a time;
//! the runner uses the strongest ABI the kernel offers (capped by the policy's
//! `sandbox.landlock_max_abi`) and [`SandboxLayers`] says which of its layers that leaves
//! out. Whether a weaker sandbox may run at all is the policy's call
//! ([`crate::policy::WeakerSandbox`]).
//!
//! [`HostSupport::probe`] reads the facts (`agora doctor` prints them); the rest is pure.

use serde::Serialize;

/// The Landlock ABI the full native sandbox is built for (Linux 6.10).
pub const FULL_LANDLOCK_ABI: u8 = 5;
pub use agora_core::policy::NEWEST_LANDLOCK_ABI;

/// One Landlock layer: the ABI that brought it and what it confines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LandlockLayer {
    pub abi: u8,
    /// Linux release that brought it.
    pub linux: &'static str,
    pub name: &'static str,
    /// What the layer confines.
    pub confines: &'static str,
    /// What holds without it (empty: nothing, the sandbox is weaker).
    pub without: &'static str,
}

/// Every Landlock layer the runner uses, oldest first.
pub const LANDLOCK_LAYERS: [LandlockLayer; 6] = [
    LandlockLayer {
        abi: 1,
        linux: "5.13",
        name: "filesystem",
        confines: "reads, writes and executions outside the plugin and work directories",
        without: "",
    },
    LandlockLayer {
        abi: 2,
        linux: "5.19",
        name: "refer",
        confines: "links and renames between directories",
        without: "every link or rename between directories is refused, which is stricter",
    },
    LandlockLayer {
        abi: 3,
        linux: "6.2",
        name: "truncate",
        confines: "truncating files outside the work directory",
        without: "",
    },
    LandlockLayer {
        abi: 4,
        linux: "6.7",
        name: "network",
        confines: "TCP bind and connect",
        without: "the network namespace has no interface: nothing is reachable but the egress proxy",
    },
    LandlockLayer {
        abi: 5,
        linux: "6.10",
        name: "ioctl-dev",
        confines: "ioctl on device files",
        without: "",
    },
    LandlockLayer {
        abi: 6,
        linux: "6.12",
        name: "scope",
        confines: "signals and abstract Unix sockets reaching outside the sandbox",
        without: "the PID and network namespaces keep both inside",
    },
];

/// The Landlock layers one launch gets, and those it does without.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxLayers {
    /// The Landlock ABI the rules are built for (0: none).
    pub landlock_abi: u8,
    /// What the kernel offers (0: Landlock is not available).
    pub kernel_landlock_abi: u8,
    pub active: Vec<&'static str>,
    /// Layers left out whose absence nothing else makes up for.
    pub missing: Vec<&'static str>,
    /// Layers left out that other parts of the sandbox make up for.
    pub covered: Vec<&'static str>,
}

impl SandboxLayers {
    /// The layers for a kernel offering `kernel_abi`, used up to `cap`.
    pub fn new(kernel_abi: u8, cap: Option<u8>) -> SandboxLayers {
        let abi = kernel_abi
            .min(cap.unwrap_or(NEWEST_LANDLOCK_ABI))
            .min(NEWEST_LANDLOCK_ABI);
        let mut layers = SandboxLayers {
            landlock_abi: abi,
            kernel_landlock_abi: kernel_abi,
            active: Vec::new(),
            missing: Vec::new(),
            covered: Vec::new(),
        };
        for layer in LANDLOCK_LAYERS {
            if layer.abi <= abi {
                layers.active.push(layer.name);
            } else if layer.without.is_empty() {
                layers.missing.push(layer.name);
            } else {
                layers.covered.push(layer.name);
            }
        }
        layers
    }

    /// Below the full sandbox: some confinement is missing.
    pub fn is_weaker(&self) -> bool {
        !self.missing.is_empty()
    }

    /// One line: the ABI used and what is missing, for warnings and refusals.
    pub fn summary(&self) -> String {
        if self.landlock_abi == 0 {
            return "Landlock is not available on this kernel".to_owned();
        }
        let mut text = format!(
            "Landlock ABI {} (the full sandbox uses {FULL_LANDLOCK_ABI}",
            self.landlock_abi
        );
        if self.kernel_landlock_abi != self.landlock_abi {
            text.push_str(&format!(
                "; the kernel offers {}, the policy caps it",
                self.kernel_landlock_abi
            ));
        }
        text.push(')');
        if !self.missing.is_empty() {
            let missing: Vec<String> = LANDLOCK_LAYERS
                .iter()
                .filter(|l| self.missing.contains(&l.name))
                .map(|l| format!("{} ({}, Linux {})", l.name, l.confines, l.linux))
                .collect();
            text.push_str(&format!("; not confined: {}", missing.join(", ")));
        }
        text
    }
}

/// What this host can enforce, as read from the kernel.
#[derive(Debug, Clone, Serialize)]
pub struct HostSupport {
    /// `uname -r`.
    pub kernel: String,
    /// Landlock ABI version the kernel offers (0: not built in or not enabled).
    pub landlock_abi: u8,
    /// Why Landlock is unavailable, when it is.
    pub landlock_problem: Option<String>,
    /// Namespaces the sandbox unshares, and whether this kernel has each.
    pub namespaces: Vec<(String, bool)>,
    /// 2 when the unified hierarchy has the controllers the sandbox needs, 1 when the
    /// legacy per-controller hierarchies do, 0 when neither is mounted.
    pub cgroup_version: u8,
    /// Controllers available on that hierarchy.
    pub cgroup_controllers: Vec<String>,
    /// The kernel filters system calls with seccomp (mode 2).
    pub seccomp: bool,
    /// Root is needed to build the sandbox (namespaces, cgroups, the uid switch).
    pub root: bool,
    /// The OCI runtime OCI plugins start with (runc on `PATH` or in the sbin
    /// directories), when it is there and answers `--version`.
    pub oci_runtime: Option<crate::oci::OciRuntime>,
    /// Why there is none, when there is none.
    pub oci_runtime_problem: Option<String>,
}

/// Namespaces the native sandbox unshares.
const NAMESPACES: [&str; 6] = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];
/// Cgroup controllers the sandbox sets limits with.
pub const NEEDED_CONTROLLERS: [&str; 2] = ["memory", "pids"];

impl HostSupport {
    /// Reads what the running kernel offers. Never fails: what cannot be read is absent.
    pub fn probe() -> HostSupport {
        let (landlock_abi, landlock_problem) = landlock_abi();
        // The runner uses v2 when the unified hierarchy has the memory and pids
        // controllers, else the v1 `memory` and `pids` hierarchies.
        let root = std::path::Path::new("/sys/fs/cgroup");
        let unified: Vec<String> = std::fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let v1: Vec<String> = ["memory", "pids", "cpu"]
            .iter()
            .filter(|c| root.join(c).is_dir())
            .map(|c| (*c).to_owned())
            .collect();
        let on_v2 = NEEDED_CONTROLLERS
            .iter()
            .all(|c| unified.iter().any(|have| have == c));
        let (cgroup_version, controllers) = if on_v2 || v1.is_empty() && !unified.is_empty() {
            (2, unified)
        } else if !v1.is_empty() {
            (1, v1)
        } else {
            (0, Vec::new())
        };
        HostSupport {
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            landlock_abi,
            landlock_problem,
            namespaces: NAMESPACES
                .iter()
                .map(|ns| {
                    let present = std::path::Path::new("/proc/self/ns").join(ns).exists();
                    ((*ns).to_owned(), present)
                })
                .collect(),
            cgroup_version,
            cgroup_controllers: controllers,
            seccomp: seccomp_available(),
            root: is_root(),
            oci_runtime: None,
            oci_runtime_problem: None,
        }
        .with_oci_runtime(crate::oci::runc::find(None))
    }

    fn with_oci_runtime(mut self, found: Result<crate::oci::OciRuntime, String>) -> HostSupport {
        match found {
            Ok(runtime) => self.oci_runtime = Some(runtime),
            Err(problem) => self.oci_runtime_problem = Some(problem),
        }
        self
    }

    /// What keeps OCI plugins from running on this host at all, if anything: no
    /// runtime, or what the runtime's sandbox needs (root, namespaces, cgroups, seccomp).
    pub fn oci_blockers(&self) -> Vec<String> {
        let mut blockers: Vec<String> = self.oci_runtime_problem.iter().cloned().collect();
        blockers.extend(
            self.native_blockers()
                .into_iter()
                .filter(|b| !b.starts_with("Landlock")),
        );
        blockers
    }

    /// What keeps native plugins from running on this host at all, if anything.
    pub fn native_blockers(&self) -> Vec<String> {
        let mut blockers = Vec::new();
        if !self.root {
            blockers.push(
                "not running as root (the sandbox needs namespaces, cgroups and a uid switch)"
                    .to_owned(),
            );
        }
        if self.landlock_abi == 0 {
            blockers.push(format!(
                "Landlock is not available ({}): add `landlock` to the kernel's `lsm=` boot parameter, or use Linux 5.13 or newer",
                self.landlock_problem.as_deref().unwrap_or("unknown reason")
            ));
        }
        let missing_ns: Vec<&str> = self
            .namespaces
            .iter()
            .filter(|(_, present)| !present)
            .map(|(ns, _)| ns.as_str())
            .collect();
        if !missing_ns.is_empty() {
            blockers.push(format!("namespaces missing: {}", missing_ns.join(", ")));
        }
        if self.cgroup_version == 0 {
            blockers.push("no cgroup hierarchy is mounted at /sys/fs/cgroup".to_owned());
        } else {
            let missing: Vec<&str> = NEEDED_CONTROLLERS
                .iter()
                .copied()
                .filter(|c| !self.cgroup_controllers.iter().any(|have| have == c))
                .collect();
            if !missing.is_empty() {
                blockers.push(format!(
                    "cgroup v{} controllers missing: {}",
                    self.cgroup_version,
                    missing.join(", ")
                ));
            }
        }
        if !self.seccomp {
            blockers.push("seccomp filtering is not available".to_owned());
        }
        blockers
    }
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(not(target_os = "linux"))]
fn is_root() -> bool {
    false
}

/// The Landlock ABI version the kernel offers, or 0 and why not.
#[cfg(target_os = "linux")]
pub fn landlock_abi() -> (u8, Option<String>) {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no attribute pointer and returns a number.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if version > 0 {
        return (u8::try_from(version).unwrap_or(u8::MAX), None);
    }
    let why = match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => "built into the kernel but not enabled at boot",
        Some(libc::ENOSYS) => "not built into this kernel",
        _ => "the kernel refused the version query",
    };
    (0, Some(why.to_owned()))
}

#[cfg(not(target_os = "linux"))]
pub fn landlock_abi() -> (u8, Option<String>) {
    (0, Some("not Linux".to_owned()))
}

fn seccomp_available() -> bool {
    // `Seccomp:` in /proc/self/status exists when the kernel has seccomp; the filter
    // actions list exists when it has mode 2 (filters).
    std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_follow_the_abi_and_the_cap() {
        let full = SandboxLayers::new(6, None);
        assert_eq!(full.landlock_abi, 6);
        assert!(!full.is_weaker());
        assert!(full.covered.is_empty() && full.missing.is_empty());

        // A newer kernel than the runner knows: the runner's newest rules.
        assert_eq!(
            SandboxLayers::new(9, None).landlock_abi,
            NEWEST_LANDLOCK_ABI
        );

        // Linux 6.10/6.11: the scopes are made up for by the namespaces.
        let five = SandboxLayers::new(5, None);
        assert!(!five.is_weaker());
        assert_eq!(five.covered, ["scope"]);

        // Ubuntu 24.04 (6.8): ABI 4, no ioctl confinement.
        let four = SandboxLayers::new(4, None);
        assert!(four.is_weaker());
        assert_eq!(four.missing, ["ioctl-dev"]);

        // Ubuntu 22.04 (5.15): ABI 1.
        let one = SandboxLayers::new(1, None);
        assert_eq!(one.active, ["filesystem"]);
        assert_eq!(one.missing, ["truncate", "ioctl-dev"]);
        assert_eq!(one.covered, ["refer", "network", "scope"]);
        assert!(
            one.summary().contains("not confined: truncate"),
            "{}",
            one.summary()
        );

        // The policy's cap wins over the kernel and is said.
        let capped = SandboxLayers::new(6, Some(2));
        assert_eq!(capped.landlock_abi, 2);
        assert!(
            capped
                .summary()
                .contains("the kernel offers 6, the policy caps it")
        );

        let none = SandboxLayers::new(0, None);
        assert_eq!(none.landlock_abi, 0);
        assert!(none.is_weaker());
        assert!(none.active.is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_probe_reads_this_kernel() {
        let host = HostSupport::probe();
        assert_ne!(host.kernel, "unknown");
        assert_eq!(host.namespaces.len(), NAMESPACES.len());
        let (abi, problem) = landlock_abi();
        assert_eq!(abi == 0, problem.is_some());
    }
}
