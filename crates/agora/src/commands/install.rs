//! `install`, `list`, `remove`.

use std::path::Path;

use agora_client::{Lockfile, install as installer};

use super::{Session, split_at};

/// Where the log state of the session's registry lives, and how its key is pinned.
fn trust_config(
    s: &Session,
    log: &crate::cli::TrustArgs,
) -> anyhow::Result<installer::TrustConfig> {
    let data = anyhow::Context::context(
        dirs::data_dir(),
        "cannot find your data directory (set XDG_DATA_HOME or HOME)",
    )?;
    Ok(installer::TrustConfig {
        log_state: installer::log_state_path(&data, &s.registry),
        pinning: agora_client::Pinning {
            configured_key: log.log_key.clone(),
            repin: log.repin_log_key,
        },
        host: agora_core::resolve::HostBounds {
            runner_apis: vec!["v1".to_owned()],
            runner_version: semver::Version::parse(env!("CARGO_PKG_VERSION"))
                .unwrap_or_else(|_| semver::Version::new(0, 0, 0)),
            core_version: log.core_version.clone(),
        },
    })
}

/// `agora log monitor`: reads and checks the log since the last run, reports the followed
/// publishers' events, and fails if the log shows the registry misbehaving.
pub async fn monitor(
    s: &Session,
    follow: &[String],
    log: &crate::cli::TrustArgs,
) -> anyhow::Result<()> {
    for p in follow {
        anyhow::ensure!(
            agora_core::name::is_slug(p),
            "{p:?} is not a publisher name: {}",
            agora_core::name::SLUG_RULE
        );
    }
    let trust = trust_config(s, log)?;
    let state = trust.log_state.with_file_name("monitor.json");
    let report = agora_client::monitor(&s.client()?, &state, &trust.pinning, follow).await?;
    s.out.show(&report, |r| {
        let mut lines = vec![format!(
            "Read log entries {}..{}{}",
            r.from,
            r.to,
            if r.follow.is_empty() {
                String::new()
            } else {
                format!(" (following {})", r.follow.join(", "))
            }
        )];
        for e in &r.events {
            lines.push(format!(
                "  {:>6}  {:<10} {}  {}",
                e.index,
                e.kind,
                e.publisher,
                crate::output::shown(&e.detail)
            ));
        }
        if r.sealed > 0 {
            lines.push(format!(
                "  {} entries about private plugins you may not see",
                r.sealed
            ));
        }
        for p in &r.problems {
            lines.push(format!("PROBLEM: {}", crate::output::shown(p)));
        }
        lines.join("\n")
    })?;
    anyhow::ensure!(
        report.problems.is_empty(),
        "the log shows {} problem(s) with this registry (listed above)",
        report.problems.len()
    );
    Ok(())
}

pub async fn install(
    s: &Session,
    spec: &str,
    dir: &Path,
    log: &crate::cli::TrustArgs,
) -> anyhow::Result<()> {
    let (plugin, requirement) = split_at(spec)?;
    let trust = trust_config(s, log)?;
    let installed =
        installer::install(&s.client()?, &trust, &plugin, requirement.as_deref(), dir).await?;
    let mut report = serde_json::to_value(&installed.entry)?;
    report["dependencies"] = serde_json::to_value(&installed.dependencies)?;
    s.out.show(&report, |_| {
        let mut lines = vec![format!(
            "Installed {}@{} into {} ({} files verified)",
            installed.entry.name,
            installed.entry.version,
            installed.path.display(),
            installed.entry.artifacts.len()
        )];
        for d in &installed.dependencies {
            lines.push(format!(
                "  with {}@{} ({} files verified)",
                d.name,
                d.version,
                d.artifacts.len()
            ));
        }
        lines.join("\n")
    })
}

pub async fn install_locked(
    s: &Session,
    dir: &Path,
    log: &crate::cli::TrustArgs,
) -> anyhow::Result<()> {
    let trust = trust_config(s, log)?;
    let done = installer::install_locked(&s.client()?, &trust, dir).await?;
    s.out.show(&done, |done| {
        format!(
            "Installed {} plugins from {}/agora.lock, every byte as pinned",
            done.len(),
            dir.display()
        )
    })
}

pub fn list(s: &Session, dir: &Path) -> anyhow::Result<()> {
    let lock = Lockfile::load(dir)?.unwrap_or_else(|| Lockfile::new(&s.registry));
    s.out.show(&lock.plugins, |plugins| {
        if plugins.is_empty() {
            return format!("No plugins installed in {}", dir.display());
        }
        plugins
            .iter()
            .map(|p| format!("{:<40} {:<12} {}", p.name, p.version, p.manifest_digest))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub async fn remove(s: &Session, spec: &str, dir: &Path) -> anyhow::Result<()> {
    let plugin = spec.parse()?;
    let entry = installer::remove(dir, &plugin).await?;
    s.out
        .show(&entry, |e| format!("Removed {}@{}", e.name, e.version))
}

pub async fn verify_release(
    s: &Session,
    spec: &str,
    log: &crate::cli::TrustArgs,
) -> anyhow::Result<()> {
    let (plugin, version) = split_at(spec)?;
    let version = anyhow::Context::context(version, "name the version: PUBLISHER/NAME@VERSION")?;
    let client = s.client()?;
    let detail = client
        .version(plugin.publisher.as_str(), plugin.name.as_str(), &version)
        .await?;
    let scratch = tempfile::tempdir()?;
    let verified =
        installer::fetch_verified(&client, &trust_config(s, log)?, &detail, scratch.path()).await?;
    let signer = verified.signer;
    let report = serde_json::json!({
        "release": format!("{plugin}@{}", detail.version),
        "signer_key": signer,
        "log_index": verified.log_index,
        "files": detail.artifacts.len(),
        "bytes": detail.artifacts.iter().map(|a| a.size).sum::<u64>(),
    });
    s.out.show(&report, |_| {
        format!(
            "{plugin}@{}: signed by {signer}, entry {} of the transparency log; {} files, every byte matches its digest",
            detail.version,
            verified.log_index,
            detail.artifacts.len()
        )
    })
}

pub fn verify_installed(s: &Session, dir: &Path) -> anyhow::Result<()> {
    let report = agora_client::verify_installed(dir)?;
    if report.findings.is_empty() {
        return s.out.show(&report, |r| {
            format!(
                "{} plugins, {} files in {}: all match agora.lock",
                r.plugins,
                r.files,
                dir.display()
            )
        });
    }
    if s.out.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    let listed = report
        .findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    anyhow::bail!(
        "{} problem(s) in {}: {listed}",
        report.findings.len(),
        dir.display()
    )
}
