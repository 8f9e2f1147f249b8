//! `pack`, `publish` and the lifecycle commands.

use std::path::Path;

use agora_client::ReleaseFiles;
use agora_client::publish::{self, Signer};
use agora_core::Lifecycle;
use agora_core::api::LifecycleRequest;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Session, split_at};
use crate::cli::LifecycleArgs;

pub fn new(s: &Session, name: &str, runtime: &str, publisher: Option<&str>) -> anyhow::Result<()> {
    let (from_name, name) = match name.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, name),
    };
    let publisher = publisher.or(from_name).unwrap_or("my-publisher");
    let runtime = agora_core::manifest::RuntimeKind::parse(runtime)
        .ok_or_else(|| anyhow::anyhow!("--runtime {runtime:?}: expected wasm or exec"))?;
    let dir = Path::new(name);
    let files = agora_client::scaffold::scaffold(dir, publisher, name, runtime)?;
    let report = serde_json::json!({
        "plugin": format!("{publisher}/{name}"),
        "dir": dir,
        "files": files,
    });
    s.out.show(&report, |_| {
        let mut text = format!(
            "Created {publisher}/{name} in ./{name} ({} files). Next:\n  cd {name}\n",
            files.len()
        );
        if runtime == agora_core::manifest::RuntimeKind::Wasm {
            text.push_str("  rustup target add wasm32-wasip2   # once\n");
        }
        text.push_str("  agora build\n  agora conformance .\n  agora publish .");
        if publisher == "my-publisher" {
            text.push_str(
                "\n(first set `publisher` in plugin.yaml to your namespace, or use --publisher)",
            );
        }
        text
    })
}

/// `agora audit PATH`: a plugin directory, or a bundle: its archive first (paths, links,
/// modes, sizes), then, when it is safe to unpack, its contents.
pub fn audit(s: &Session, path: &Path) -> anyhow::Result<()> {
    use agora_core::verification::{Outcome, StageReport, decide};
    let mut stages = Vec::new();
    let unpacked;
    let dir = if path.is_dir() {
        path
    } else {
        let archive = StageReport::of("archive", 0, bundle_findings(path)?);
        let refused = refusals(&archive.findings);
        stages.push(archive);
        if !refused.is_empty() {
            let label = path.display().to_string();
            show_audit(s, &label, None, Outcome::Rejected, &stages)?;
            anyhow::bail!(
                "{label} would be rejected, and agora publish refuses it: {refused} (see the findings above)"
            );
        }
        unpacked = tempfile::tempdir().context("cannot create a temporary directory")?;
        ReleaseFiles::from_bundle(path, unpacked.path())?;
        unpacked.path()
    };
    let manifest_path = dir.join(agora_core::manifest::MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = agora_core::Manifest::from_yaml_to_publish(&text)
        .with_context(|| format!("{} is not a valid manifest", manifest_path.display()))?;
    let read = |relative: &str| -> Option<Vec<u8>> {
        agora_core::manifest::relative_path_problem(relative)
            .is_none()
            .then(|| std::fs::read(dir.join(relative)).ok())
            .flatten()
    };
    stages.extend(agora_registry::verification::audit_local(&manifest, read));
    if path.is_dir() {
        // The files as they are on disk: links, modes (a bundle's were checked above).
        let on_disk = agora_client::bundle::audit_dir_files(dir, &manifest);
        if let Some(files) = stages.iter_mut().find(|st| st.stage == "files") {
            let mut findings = std::mem::take(&mut files.findings);
            findings.extend(on_disk);
            *files = StageReport::of("files", files.duration_ms, findings);
        }
    }
    let outcome = decide(&stages);
    let label = format!("{}@{}", manifest.plugin_ref(), manifest.version);
    show_audit(s, &label, Some(&label), outcome, &stages)?;
    anyhow::ensure!(
        outcome != Outcome::Rejected,
        "{label} would be rejected (see the findings above)"
    );
    Ok(())
}

/// Prints what `agora audit` found.
fn show_audit(
    s: &Session,
    label: &str,
    plugin: Option<&str>,
    outcome: agora_core::verification::Outcome,
    stages: &[agora_core::verification::StageReport],
) -> anyhow::Result<()> {
    let report = serde_json::json!({
        "plugin": plugin,
        "outcome": outcome,
        "stages": stages,
    });
    s.out.show(&report, |_| {
        let mut lines = vec![format!(
            "{label}: {} (what the registry would decide from these stages; it also re-hashes \
             every file and checks the signature)",
            outcome.as_str()
        )];
        for stage in stages {
            lines.push(format!("  {:<9} {:?}", stage.stage, stage.status).to_lowercase());
            for f in &stage.findings {
                lines.push(format!("    {}", f.line()));
            }
        }
        lines.join("\n")
    })
}

/// The archive audit of a bundle file ([`agora_registry::archive_audit`]), read whole
/// within the audits' size cap.
fn bundle_findings(path: &Path) -> anyhow::Result<Vec<agora_core::verification::Finding>> {
    use agora_registry::verification::MAX_AUDITED_FILE;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_AUDITED_FILE,
        "{} is {size} bytes; bundles are audited up to {MAX_AUDITED_FILE} bytes",
        path.display()
    );
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        agora_registry::archive_audit::sniff(&bytes).is_some(),
        "{} is neither a plugin directory nor a bundle (.agora)",
        path.display()
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(agora_registry::archive_audit::audit(&bytes, &name))
}

/// The rules of the findings that stop a bundle before it is unpacked (high or worse),
/// comma-separated; empty when there are none.
fn refusals(findings: &[agora_core::verification::Finding]) -> String {
    let mut rules: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity >= agora_core::verification::Severity::High)
        .map(|f| f.rule.as_str())
        .collect();
    rules.sort_unstable();
    rules.dedup();
    rules.join(", ")
}

pub fn build(s: &Session, dir: &Path, platforms: &[String], sbom: bool) -> anyhow::Result<()> {
    if sbom {
        agora_client::build::sbom_file(dir)?;
    }
    let mut built = agora_client::build::build(dir, platforms)?;
    if sbom {
        built.push(agora_client::build::sbom(dir)?);
    }
    s.out.show(&built, |built| {
        built
            .iter()
            .map(|b| {
                format!(
                    "{} {} for {} ({} bytes, {})",
                    if b.unchanged { "Unchanged" } else { "Built" },
                    dir.join(&b.path).display(),
                    b.target,
                    b.size,
                    b.digest
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub fn pack(s: &Session, dir: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let release = ReleaseFiles::from_dir(dir)?;
    let target = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(&release.bundle_name()).to_path_buf());
    release.write_bundle(&target)?;
    let summary = serde_json::json!({
        "bundle": target,
        "plugin": release.manifest.plugin_ref().to_string(),
        "version": release.manifest.version.to_string(),
        "files": release.files.iter().map(|f| serde_json::json!({ "path": f.path, "digest": f.digest, "size": f.size })).collect::<Vec<_>>(),
    });
    s.out.show(&summary, |_| {
        format!(
            "Packed {}@{} ({} files) into {}",
            release.manifest.plugin_ref(),
            release.manifest.version,
            release.files.len() + 1,
            target.display()
        )
    })
}

pub async fn publish(s: &Session, path: &Path, key: &crate::cli::KeyArgs) -> anyhow::Result<()> {
    let signing_key = match &key.gpg {
        Some(_) => None,
        None => Some(super::keys::signing_key(key)?),
    };
    let signer = match (&key.gpg, &signing_key) {
        (Some(gpg), _) => Signer::Gpg(gpg),
        (None, Some(k)) => Signer::Key(k),
        (None, None) => anyhow::bail!("no signing key"),
    };
    let unpacked;
    let release = if path.is_dir() {
        ReleaseFiles::from_dir(path)?
    } else {
        let refused = refusals(&bundle_findings(path)?);
        anyhow::ensure!(
            refused.is_empty(),
            "{} is refused: {refused} (agora audit {} shows why)",
            path.display(),
            path.display()
        );
        unpacked = tempfile::tempdir().context("cannot create a temporary directory")?;
        ReleaseFiles::from_bundle(path, unpacked.path())?
    };
    let client = s.client()?;
    let missing = publish::missing(&client, &release).await?;
    let total: u64 = missing.iter().map(|f| f.size).sum();
    let bar = if s.out.quiet || s.out.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let b = bar.clone();
    publish::upload(
        &client,
        &missing,
        |name| bar.set_message(name.to_owned()),
        move |n| b.inc(n),
    )
    .await?;
    bar.finish_and_clear();
    let signature = signer.sign(&release)?;
    let response = publish::submit(&client, &release, &signature).await?;
    s.out.show(&response, |r| {
        format!(
            "Published {}/{}@{} ({} files, {} uploaded, manifest {})",
            r.publisher,
            r.name,
            r.version,
            r.artifacts.len(),
            missing.len(),
            r.manifest_digest
        )
    })
}

pub async fn lifecycle(s: &Session, args: LifecycleArgs, state: Lifecycle) -> anyhow::Result<()> {
    let (plugin, version) = split_at(&args.release)?;
    let version = version.context("name the version: PUBLISHER/NAME@VERSION")?;
    let request = LifecycleRequest {
        state,
        reason: args.reason,
        replacement: args.replacement,
    };
    let detail = s
        .client()?
        .set_lifecycle(
            plugin.publisher.as_str(),
            plugin.name.as_str(),
            &version,
            &request,
        )
        .await?;
    s.out.show(&detail, |d| {
        format!(
            "{}/{}@{} is now {}",
            d.publisher,
            d.name,
            d.version,
            d.state.as_str()
        )
    })
}

pub async fn visibility(s: &Session, plugin: &str, visibility: &str) -> anyhow::Result<()> {
    let plugin: agora_core::PluginRef = plugin.parse()?;
    let visibility =
        agora_core::Visibility::parse(visibility).context("visibility is public or private")?;
    let detail = s
        .client()?
        .set_visibility(plugin.publisher.as_str(), plugin.name.as_str(), visibility)
        .await?;
    s.out.show(&detail, |d| {
        format!(
            "{}/{} is now {}",
            d.summary.publisher,
            d.summary.name,
            d.summary.visibility.as_str()
        )
    })
}
