//! The seccomp filters of a native plugin, compiled once with seccompiler.
//!
//! Two filters: system calls no plugin has business making (tracing other processes,
//! loading kernel code, mounting, changing namespaces, BPF, keyrings, ...) kill the
//! plugin with `SIGSYS`, which the runner reports as a syscall denial; sockets of any
//! family but `AF_UNIX` fail with `EAFNOSUPPORT` (the network namespace has no
//! interface anyway; the egress proxy is a Unix socket).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::RunError;

/// `(number, name)` of each system call listed: the number for this filter, the name for
/// an OCI runtime spec's profile.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name)),)*]
    };
}

/// Killed on sight.
pub(crate) const FORBIDDEN: &[(i64, &str)] = syscalls![
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_kcmp,
    SYS_pidfd_getfd,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_unshare,
    SYS_setns,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_clock_adjtime,
    SYS_adjtimex,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_quotactl,
    SYS_syslog,
    SYS_vhangup,
    SYS_io_uring_setup,
    SYS_fsopen,
    SYS_fsmount,
    SYS_move_mount,
    SYS_open_tree,
];

pub(crate) struct Filters {
    forbidden: BpfProgram,
    sockets: BpfProgram,
    no_clone3: BpfProgram,
    no_x32: BpfProgram,
}

/// Kills any system call numbered in the x32 range (bit 30 set): seccompiler's filters
/// match syscall numbers exactly, and x32 calls share the x86-64 architecture value.
fn no_x32() -> BpfProgram {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const KILL_PROCESS: u32 = 0x8000_0000;
    const ALLOW: u32 = 0x7fff_0000;
    let insn = |code, jt, jf, k| seccompiler::sock_filter { code, jt, jf, k };
    vec![
        insn(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        insn(JGE_K, 0, 1, 0x4000_0000),
        insn(RET_K, 0, 0, KILL_PROCESS),
        insn(RET_K, 0, 0, ALLOW),
    ]
}

fn arch() -> Result<TargetArch, RunError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| RunError::Sandbox(format!("no seccomp filter for {}", std::env::consts::ARCH)))
}

fn compile(
    filter: Result<SeccompFilter, seccompiler::BackendError>,
) -> Result<BpfProgram, RunError> {
    filter
        .and_then(BpfProgram::try_from)
        .map_err(|e| RunError::Sandbox(format!("seccomp: {e}")))
}

impl Filters {
    pub fn new() -> Result<Filters, RunError> {
        let arch = arch()?;
        let mut forbidden_rules: BTreeMap<i64, Vec<SeccompRule>> =
            FORBIDDEN.iter().map(|&(nr, _)| (nr, Vec::new())).collect();
        // clone(2) into a new user namespace (unshare is forbidden above).
        let new_user = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
            libc::CLONE_NEWUSER as u64,
        )
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| RunError::Sandbox(format!("seccomp: {e}")))?;
        forbidden_rules.insert(libc::SYS_clone, vec![new_user]);
        let forbidden = compile(SeccompFilter::new(
            forbidden_rules,
            SeccompAction::Allow,
            SeccompAction::KillProcess,
            arch,
        ))?;
        let not_unix = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| RunError::Sandbox(format!("seccomp: {e}")))?;
        let mut rules = BTreeMap::new();
        rules.insert(libc::SYS_socket, vec![not_unix.clone()]);
        rules.insert(libc::SYS_socketpair, vec![not_unix]);
        let sockets = compile(SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
            arch,
        ))?;
        // clone3 takes its flags in memory, out of a filter's reach: answer ENOSYS, and
        // the C library falls back to clone, whose flags are checked.
        let no_clone3 = compile(SeccompFilter::new(
            BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        ))?;
        Ok(Filters {
            forbidden,
            sockets,
            no_clone3,
            no_x32: no_x32(),
        })
    }

    /// Installs both filters on the calling thread (and what it executes).
    pub fn apply(&self) -> std::io::Result<()> {
        for program in [
            &self.no_x32,
            &self.no_clone3,
            &self.sockets,
            &self.forbidden,
        ] {
            seccompiler::apply_filter(program)
                .map_err(|e| std::io::Error::other(format!("seccomp: {e}")))?;
        }
        Ok(())
    }
}
