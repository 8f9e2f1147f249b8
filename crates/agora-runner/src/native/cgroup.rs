//! One cgroup per native launch: a memory limit and a process-count limit, and the
//! counters that tell the runner a limit was hit. cgroup v2 where the memory and pids
//! controllers are on the unified hierarchy; v1 (separate `memory` and `pids`
//! hierarchies) otherwise.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::RunError;

const ROOT: &str = "/sys/fs/cgroup";
/// CPU bandwidth period; a launch gets one period of CPU time per period (one core).
const CPU_PERIOD_US: u64 = 100_000;

pub(crate) struct Cgroup {
    /// `memory` and `pids` directories (one directory on v2).
    dirs: Vec<PathBuf>,
    memory: PathBuf,
    pids: PathBuf,
    v2: bool,
    /// `cgroup.procs` of each directory, ready for the child to join with `0`.
    pub procs: Vec<CString>,
}

fn write(path: &Path, value: &str) -> Result<(), RunError> {
    std::fs::write(path, value)
        .map_err(|e| RunError::Sandbox(format!("cannot write {value} to {}: {e}", path.display())))
}

fn read_counter(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

fn mkdir(dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RunError::Sandbox(format!("cannot create the cgroup {}: {e}", dir.display())))
}

impl Cgroup {
    pub fn create(name: &str, memory_bytes: u64, max_processes: u32) -> Result<Cgroup, RunError> {
        let root = Path::new(ROOT);
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        let cgroup = if has("memory") && has("pids") {
            let base = root.join("agora");
            mkdir(&base)?;
            write(&root.join("cgroup.subtree_control"), "+memory +pids")?;
            write(&base.join("cgroup.subtree_control"), "+memory +pids")?;
            let dir = base.join(name);
            mkdir(&dir)?;
            write(&dir.join("memory.max"), &memory_bytes.to_string())?;
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            write(&dir.join("pids.max"), &max_processes.to_string())?;
            if has("cpu") {
                // At most one core's worth of time, however many processes it forks.
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
                let _ = std::fs::write(base.join("cgroup.subtree_control"), "+cpu");
                let _ = std::fs::write(
                    dir.join("cpu.max"),
                    format!("{CPU_PERIOD_US} {CPU_PERIOD_US}"),
                );
            }
            Cgroup {
                dirs: vec![dir.clone()],
                memory: dir.clone(),
                pids: dir,
                v2: true,
                procs: Vec::new(),
            }
        } else if root.join("memory").is_dir() && root.join("pids").is_dir() {
            let memory = root.join("memory/agora").join(name);
            let pids = root.join("pids/agora").join(name);
            mkdir(&memory)?;
            mkdir(&pids)?;
            write(
                &memory.join("memory.limit_in_bytes"),
                &memory_bytes.to_string(),
            )?;
            // Without swap accounting this file does not exist; the limit above still holds.
            let _ = std::fs::write(
                memory.join("memory.memsw.limit_in_bytes"),
                memory_bytes.to_string(),
            );
            write(&pids.join("pids.max"), &max_processes.to_string())?;
            let mut dirs = vec![memory.clone(), pids.clone()];
            let cpu = root.join("cpu/agora").join(name);
            if root.join("cpu/cpu.cfs_quota_us").exists() && std::fs::create_dir_all(&cpu).is_ok() {
                // At most one core's worth of time, however many processes it forks.
                write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &CPU_PERIOD_US.to_string())?;
                dirs.push(cpu);
            }
            Cgroup {
                dirs,
                memory,
                pids,
                v2: false,
                procs: Vec::new(),
            }
        } else {
            return Err(RunError::Sandbox(
                "no cgroup memory and pids controllers are mounted under /sys/fs/cgroup".into(),
            ));
        };
        let mut cgroup = cgroup;
        cgroup.procs = cgroup
            .dirs
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|e| RunError::Sandbox(e.to_string()))?;
        Ok(cgroup)
    }

    /// Whether the kernel killed a process of this cgroup for memory.
    pub fn oom_killed(&self) -> bool {
        if self.v2 {
            read_counter(&self.memory.join("memory.events"), "oom_kill") > 0
        } else {
            read_counter(&self.memory.join("memory.oom_control"), "oom_kill") > 0
        }
    }

    /// How many times a fork was refused for the process limit.
    pub fn fork_refusals(&self) -> u64 {
        read_counter(&self.pids.join("pids.events"), "max")
    }

    fn members(&self) -> Vec<i32> {
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// Kills every process still in the cgroup.
    pub fn kill_all(&self) {
        for _ in 0..50 {
            let members = self.members();
            if members.is_empty() {
                return;
            }
            for pid in members {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Where launch cgroups live: the v2 directory and the v1 hierarchies.
fn bases() -> Vec<PathBuf> {
    ["agora", "memory/agora", "pids/agora", "cpu/agora"]
        .iter()
        .map(|b| Path::new(ROOT).join(b))
        .collect()
}

/// The name of a launch's cgroup: `r<runner pid>-<launch>`, so that a later runner can
/// tell which cgroups belong to a runner that is gone.
pub(crate) fn launch_name(launch: &str) -> String {
    format!("r{}-{launch}", std::process::id())
}

/// Kills what is left in the cgroups of runners that are no longer running, and removes
/// those cgroups. A plugin is PID 1 of its namespace and does not die with its keeper
/// when a runner is killed outright; the next runner on the host ends it.
pub fn sweep_stale() -> usize {
    let mut swept = 0;
    for base in bases() {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix('r'))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new("/proc").join(pid.to_string()).exists() {
                continue;
            }
            let stale = Cgroup {
                dirs: vec![entry.path()],
                memory: entry.path(),
                pids: entry.path(),
                v2: false,
                procs: Vec::new(),
            };
            drop(stale); // kills its processes, then removes it
            swept += 1;
        }
    }
    swept
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}
