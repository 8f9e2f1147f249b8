//! The fuzz targets' regressions on stable Rust: every input under
//! `fuzz/regressions/TARGET/` (inputs that once crashed a parser or broke a property, and
//! the seeds each target starts from) goes through the target's own check
//! (`fuzz/src/checks.rs`, compiled here as a module), so a crash the fuzzers found fails
//! the ordinary test suite if it comes back, without nightly or cargo-fuzz.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_regression_input_passes_its_target_s_check() {
    let mut failures = Vec::new();
    for (target, check) in checks::TARGETS {
        let dir = fuzz_dir().join("regressions").join(target);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "{} is empty: every target keeps at least one input",
            dir.display()
        );
        for input in inputs {
            let data = std::fs::read(&input).expect("a regression input reads");
            let outcome = std::panic::catch_unwind(|| check(&data));
            if let Err(panic) = outcome {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", input.display()));
            }
        }
    }
    assert!(failures.is_empty(), "failed:\n{}", failures.join("\n"));
}

/// The fuzz workspace builds one binary per check, each calling its check, and keeps a
/// regressions directory for each: a target added in one place is added in all.
#[test]
fn every_fuzz_target_has_its_binary_check_and_regressions() {
    let cargo = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut binaries: Vec<&str> = cargo
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| !name.starts_with("agora"))
        .collect();
    binaries.sort_unstable();
    let mut targets: Vec<&str> = checks::TARGETS.iter().map(|(name, _)| *name).collect();
    targets.sort_unstable();
    assert_eq!(
        binaries, targets,
        "fuzz/Cargo.toml's binaries and checks::TARGETS"
    );
    for target in targets {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("agora_fuzz::checks::{target}(data)")),
            "{} does not call its check",
            source.display()
        );
        assert!(
            fuzz_dir().join("regressions").join(target).is_dir(),
            "{target}"
        );
    }
}
