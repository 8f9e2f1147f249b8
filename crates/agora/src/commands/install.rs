//! `install`, `list`, `remove`.

use std::path::Path;

use agora_client::{Lockfile, install as installer};

use super::{Session, split_at};

pub async fn install(s: &Session, spec: &str, dir: &Path) -> anyhow::Result<()> {
    let (plugin, requirement) = split_at(spec)?;
    let installed = installer::install(&s.client()?, &plugin, requirement.as_deref(), dir).await?;
    if !installed.dependencies.is_empty() {
        s.out.note(&format!(
            "note: {} declares dependencies ({}); install them too — automatic resolution is not available yet",
            installed.entry.name,
            installed.dependencies.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        ));
    }
    s.out.show(&installed.entry, |e| {
        format!(
            "Installed {}@{} into {} ({} files verified)",
            e.name,
            e.version,
            installed.path.display(),
            e.artifacts.len()
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

pub async fn verify_release(s: &Session, spec: &str) -> anyhow::Result<()> {
    let (plugin, version) = split_at(spec)?;
    let version = anyhow::Context::context(version, "name the version: PUBLISHER/NAME@VERSION")?;
    let client = s.client()?;
    let detail = client
        .version(plugin.publisher.as_str(), plugin.name.as_str(), &version)
        .await?;
    let scratch = tempfile::tempdir()?;
    let signer = installer::fetch_verified(&client, &detail, scratch.path()).await?;
    let report = serde_json::json!({
        "release": format!("{plugin}@{}", detail.version),
        "signer_key": signer,
        "files": detail.artifacts.len(),
        "bytes": detail.artifacts.iter().map(|a| a.size).sum::<u64>(),
    });
    s.out.show(&report, |_| {
        format!(
            "{plugin}@{}: signed by {signer}; {} files, every byte matches its digest",
            detail.version,
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
