//! The native audit: a release's Linux executable read with `object`'s ELF reader and
//! held against what the sandbox relies on: the architecture its platform key names, a
//! position-independent executable, a non-executable stack, RELRO, and the system's
//! dynamic loader (or none). Pure: bytes in, findings out.

use agora_core::verification::{Finding, Severity};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};

/// Dynamic loaders a Linux plugin may name.
const LOADERS: [&str; 4] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-aarch64.so.1",
];

/// What the executable for `platform` (`linux-x86_64`) tells.
pub fn audit(bytes: &[u8], platform: &str, location: &str) -> Vec<Finding> {
    let finding = |severity, rule: &str, message: String| Finding {
        severity,
        rule: rule.to_owned(),
        message,
        location: Some(location.to_owned()),
    };
    let Some(arch) = platform.strip_prefix("linux-") else {
        return vec![finding(
            Severity::Info,
            "native.not-audited",
            format!("{platform} binaries are not audited (only linux-*)"),
        )];
    };
    let file = match ElfFile64::<object::Endianness, _>::parse(bytes) {
        Ok(f) => f,
        Err(e) => {
            return vec![finding(
                Severity::Critical,
                "native.not-elf",
                format!("not a 64-bit ELF executable: {e}"),
            )];
        }
    };
    let endian = file.endian();
    let header = file.elf_header();
    let mut findings = Vec::new();
    let expected = match arch {
        "x86_64" => Some(elf::EM_X86_64),
        "aarch64" => Some(elf::EM_AARCH64),
        _ => None,
    };
    let machine = header.e_machine(endian);
    if expected.is_some_and(|m| m != machine) {
        findings.push(finding(
            Severity::Critical,
            "native.wrong-architecture",
            format!("built for ELF machine {machine}, but listed as {platform}"),
        ));
    }
    if header.e_type(endian) != elf::ET_DYN {
        findings.push(finding(
            Severity::High,
            "native.not-pie",
            "not a position-independent executable: its addresses are not randomized".into(),
        ));
    }
    let segments = file.elf_program_headers();
    let stack = segments
        .iter()
        .find(|s| s.p_type(endian) == elf::PT_GNU_STACK);
    if stack.is_none_or(|s| s.p_flags(endian) & elf::PF_X != 0) {
        findings.push(finding(
            Severity::High,
            "native.executable-stack",
            "its stack is executable (no PT_GNU_STACK without PF_X)".into(),
        ));
    }
    if !segments
        .iter()
        .any(|s| s.p_type(endian) == elf::PT_GNU_RELRO)
    {
        findings.push(finding(
            Severity::Medium,
            "native.no-relro",
            "no RELRO segment: relocated data stays writable".into(),
        ));
    }
    for segment in segments {
        if let Ok(Some(interp)) = segment.interpreter(endian, bytes) {
            let interp = String::from_utf8_lossy(interp);
            if !LOADERS.contains(&interp.as_ref()) {
                findings.push(finding(
                    Severity::High,
                    "native.unexpected-interpreter",
                    format!("names {interp:?} as its loader; expected one of {LOADERS:?} or none"),
                ));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_passes_and_garbage_does_not() {
        // The test binary itself: a PIE with a non-executable stack and RELRO, as Rust
        // builds them on Linux.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let platform = format!("linux-{}", std::env::consts::ARCH);
        assert_eq!(audit(&me, &platform, "bin/x"), Vec::new());
        let wrong = if std::env::consts::ARCH == "x86_64" {
            "linux-aarch64"
        } else {
            "linux-x86_64"
        };
        assert_eq!(
            audit(&me, wrong, "bin/x")[0].rule,
            "native.wrong-architecture"
        );
        assert_eq!(
            audit(b"#!/bin/sh\n", &platform, "bin/x")[0].rule,
            "native.not-elf"
        );
        assert_eq!(
            audit(&me, "macos-aarch64", "bin/x")[0].rule,
            "native.not-audited"
        );
    }
}
