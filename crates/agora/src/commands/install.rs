//! `install`, `list`, `remove`.

use std::path::Path;

use agora_client::{Lockfile, install as installer};

use super::{Session, split_at};

/// Where the log state of the session's registry lives, and how its key is pinned.
pub(super) fn trust_config(
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
        oci: installer::OciPulls::from_policy(&super::run::default_policy()?),
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
    options: installer::InstallOptions,
) -> anyhow::Result<()> {
    let (plugin, requirement) = split_at(spec)?;
    let trust = trust_config(s, log)?;
    let installed = installer::install(
        &s.client()?,
        &trust,
        &plugin,
        requirement.as_deref(),
        dir,
        options,
    )
    .await?;
    show_installed(s, &installed)
}

/// What changed, in words ("updated 0.1.0 → 0.2.0", "already up to date") or JSON.
fn show_installed(s: &Session, installed: &installer::Installed) -> anyhow::Result<()> {
    if !s.out.quiet {
        for w in &installed.warnings {
            eprintln!("warning: {}", crate::output::shown(w));
        }
    }
    let root = installer::Changed {
        entry: installed.entry.clone(),
        previous: installed.previous.clone(),
        unchanged: installed.unchanged,
    };
    let mut report = serde_json::to_value(&root)?;
    report["dependencies"] = serde_json::to_value(&installed.dependencies)?;
    report["warnings"] = serde_json::to_value(&installed.warnings)?;
    s.out.show(&report, |_| {
        let mut lines = vec![describe(&root, Some(&installed.path))];
        for d in &installed.dependencies {
            lines.push(format!("  with {}", describe(d, None)));
        }
        lines.join("\n")
    })
}

fn describe(change: &installer::Changed, path: Option<&Path>) -> String {
    let e = &change.entry;
    let files = e.artifacts.len();
    match (&change.previous, change.unchanged) {
        (_, true) => format!("{} {} is already up to date", e.name, e.version),
        (Some(previous), false) if *previous != e.version => format!(
            "{}: updated {previous} \u{2192} {} ({files} files verified)",
            e.name, e.version
        ),
        (Some(_), false) => format!(
            "{}@{}: reinstalled ({files} files verified)",
            e.name, e.version
        ),
        (None, false) => match path {
            Some(path) => format!(
                "Installed {}@{} into {} ({files} files verified)",
                e.name,
                e.version,
                path.display()
            ),
            None => format!("{}@{} ({files} files verified)", e.name, e.version),
        },
    }
}

/// One row of `outdated` (and the extra columns of `list`).
#[derive(serde::Serialize)]
struct Status {
    name: String,
    installed: String,
    /// Newest resolvable version within the recorded requirement.
    wanted: Option<String>,
    /// Newest resolvable version.
    latest: Option<String>,
    /// The installed version's lifecycle state on the registry.
    state: String,
    requirement: Option<String>,
    /// Why the state is what it is (deprecation or advisory text).
    reason: Option<String>,
}

async fn statuses(s: &Session, lock: &Lockfile) -> anyhow::Result<Vec<Status>> {
    let client = s.client()?;
    let mut rows = Vec::new();
    for entry in &lock.plugins {
        let plugin: agora_core::PluginRef = entry.name.parse()?;
        let list = client
            .versions(plugin.publisher.as_str(), plugin.name.as_str())
            .await?;
        let parse = |v: &str| semver::Version::parse(v).ok();
        let resolvable: Vec<semver::Version> = list
            .versions
            .iter()
            .filter(|v| v.state.resolvable())
            .filter_map(|v| parse(&v.version))
            .collect();
        let req = entry
            .requirement
            .as_deref()
            .and_then(|r| semver::VersionReq::parse(r).ok());
        let wanted = req.as_ref().and_then(|req| {
            resolvable
                .iter()
                .filter(|v| req.matches(v))
                .max()
                .map(ToString::to_string)
        });
        let mine = list.versions.iter().find(|v| v.version == entry.version);
        rows.push(Status {
            name: entry.name.clone(),
            installed: entry.version.clone(),
            wanted,
            latest: resolvable.iter().max().map(ToString::to_string),
            state: mine.map_or("unknown", |v| v.state.as_str()).to_owned(),
            requirement: entry.requirement.clone(),
            reason: mine.and_then(|v| v.state_reason.clone()),
        });
    }
    Ok(rows)
}

fn newer(row: &Status) -> bool {
    let installed = semver::Version::parse(&row.installed).ok();
    let newer_than = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| semver::Version::parse(v).ok())
            .is_some_and(|v| installed.as_ref().is_none_or(|i| v > *i))
    };
    newer_than(&row.wanted) || newer_than(&row.latest)
}

pub async fn outdated(s: &Session, dir: &Path) -> anyhow::Result<()> {
    let lock = Lockfile::load(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no agora.lock: nothing is installed there",
            dir.display()
        )
    })?;
    let rows: Vec<Status> = statuses(s, &lock)
        .await?
        .into_iter()
        .filter(|r| newer(r) || r.state != "active")
        .collect();
    s.out.show(&rows, |rows| {
        if rows.is_empty() {
            return format!("Every plugin in {} is up to date", dir.display());
        }
        let mut lines = vec![format!(
            "{:<40} {:<12} {:<12} {:<12} {}",
            "PLUGIN", "INSTALLED", "WANTED", "LATEST", "STATE"
        )];
        for r in rows {
            lines.push(format!(
                "{:<40} {:<12} {:<12} {:<12} {}{}",
                r.name,
                r.installed,
                r.wanted.as_deref().unwrap_or("-"),
                r.latest.as_deref().unwrap_or("-"),
                r.state,
                r.reason
                    .as_deref()
                    .map(|why| format!(": {}", crate::output::shown(why)))
                    .unwrap_or_default()
            ));
        }
        lines.join("\n")
    })
}

pub async fn update(
    s: &Session,
    plugin: Option<&str>,
    latest: bool,
    dir: &Path,
    log: &crate::cli::TrustArgs,
) -> anyhow::Result<()> {
    let lock = Lockfile::load(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no agora.lock: nothing is installed there",
            dir.display()
        )
    })?;
    let targets: Vec<&agora_client::LockEntry> = match plugin {
        Some(name) => {
            let wanted: agora_core::PluginRef = name.parse()?;
            let wanted = wanted.to_string();
            vec![
                lock.plugins
                    .iter()
                    .find(|p| p.name == wanted)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{wanted} is not installed in {}", dir.display())
                    })?,
            ]
        }
        // Plugins installed by name; their dependencies follow them.
        None => lock
            .plugins
            .iter()
            .filter(|p| p.requirement.is_some())
            .collect(),
    };
    anyhow::ensure!(
        !targets.is_empty(),
        "nothing in {} was installed by name; name the plugin to update",
        dir.display()
    );
    let trust = trust_config(s, log)?;
    let client = s.client()?;
    for entry in targets {
        let plugin: agora_core::PluginRef = entry.name.parse()?;
        let requirement = if latest {
            None
        } else {
            Some(entry.requirement.clone().unwrap_or_else(|| "*".to_owned()))
        };
        let installed = installer::install(
            &client,
            &trust,
            &plugin,
            requirement.as_deref(),
            dir,
            installer::InstallOptions::default(),
        )
        .await?;
        show_installed(s, &installed)?;
    }
    Ok(())
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

pub async fn list(s: &Session, dir: &Path) -> anyhow::Result<()> {
    let lock = Lockfile::load(dir)?.unwrap_or_else(|| Lockfile::new(&s.registry));
    // The registry's view (state, newer versions) when it answers; the lockfile alone
    // when it does not.
    let statuses = match statuses(s, &lock).await {
        Ok(rows) => Some(rows),
        Err(e) => {
            if !s.out.quiet && !lock.plugins.is_empty() {
                eprintln!(
                    "note: cannot ask {} for states and newer versions: {}",
                    s.registry,
                    crate::output::one_line(&e)
                );
            }
            None
        }
    };
    #[derive(serde::Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        entry: &'a agora_client::LockEntry,
        state: Option<&'a str>,
        newer: Option<&'a str>,
    }
    let rows: Vec<Row> = lock
        .plugins
        .iter()
        .map(|entry| {
            let status = statuses
                .as_ref()
                .and_then(|all| all.iter().find(|r| r.name == entry.name));
            Row {
                entry,
                state: status.map(|r| r.state.as_str()),
                newer: status
                    .filter(|r| newer(r))
                    .and_then(|r| r.latest.as_deref()),
            }
        })
        .collect();
    s.out.show(&rows, |rows| {
        if rows.is_empty() {
            return format!("No plugins installed in {}", dir.display());
        }
        rows.iter()
            .map(|r| {
                let mut line = format!(
                    "{:<40} {:<12} {:<11} {}",
                    r.entry.name,
                    r.entry.version,
                    r.state.unwrap_or("?"),
                    r.entry.manifest_digest
                );
                if let Some(newer) = r.newer {
                    line.push_str(&format!("  ({newer} available)"));
                }
                line
            })
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
