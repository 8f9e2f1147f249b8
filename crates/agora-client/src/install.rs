//! Installing a plugin version into a plugin directory: choose the version, download
//! every artifact while checking its digest, and only then move it into place and record
//! it in `agora.lock`. Nothing unverified ever lands in the plugin directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use agora_core::api::VersionDetail;
use agora_core::manifest::{ArtifactRole, relative_path_problem};
use agora_core::resolve::Candidate;
use agora_core::{Lifecycle, Manifest, PluginRef};
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::api::{Client, ClientError, io_error};
use crate::lockfile::{LockEntry, Lockfile, LockfileError};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    #[error(transparent)]
    Trust(#[from] crate::verify::TrustError),
    #[error(transparent)]
    Log(#[from] crate::logcheck::LogCheckError),
    #[error(transparent)]
    Resolve(#[from] agora_core::resolve::ResolveError),
    #[error(
        "invalid version requirement {0:?}: expected e.g. ^1.2, ~1.2.3, >=1.0, <2 or =1.2.3 for an exact version"
    )]
    Requirement(String),
    #[error("no version of {plugin} matches {requirement}{}", available_hint(.available))]
    NoMatch {
        plugin: String,
        requirement: String,
        available: Vec<String>,
    },
    #[error("the registry served an unsafe artifact path {0:?}; nothing was installed")]
    UnsafePath(String),
    #[error(
        "the registry's manifest for {0} does not match what was asked for or is invalid: {1}; nothing was installed"
    )]
    ManifestMismatch(String, String),
    #[error(
        "the registry now serves {0} with other files than agora.lock pins; nothing more was installed"
    )]
    LockMismatch(String),
    #[error("{0} is not installed in this plugin directory")]
    NotInstalled(String),
    #[error(
        "{release} is marked insecure: {reason}; install another version, or pass --allow-insecure to install it anyway"
    )]
    Insecure { release: String, reason: String },
    #[error(
        "{release} is not verified ({outcome}) and --require-verified was given; nothing was installed"
    )]
    NotVerified { release: String, outcome: String },
    #[error("cannot pull the OCI image of {release}: {source}; nothing was installed")]
    Oci {
        release: String,
        #[source]
        source: agora_oci::OciError,
    },
}

fn available_hint(available: &[String]) -> String {
    if available.is_empty() {
        " (it has no installable version)".into()
    } else {
        format!(
            " (installable: {}; yanked versions need an exact =VERSION)",
            available.join(", ")
        )
    }
}

/// What an install did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub entry: LockEntry,
    pub path: PathBuf,
    /// The version that was installed before (None: newly installed).
    pub previous: Option<String>,
    /// Nothing changed: this version was installed already and its files are intact.
    pub unchanged: bool,
    /// The dependencies installed with it.
    pub dependencies: Vec<Changed>,
    /// Deprecated versions in the set, with their reasons and replacements.
    pub warnings: Vec<String>,
}

/// One plugin an install put in place (or found already in place).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Changed {
    #[serde(flatten)]
    pub entry: LockEntry,
    /// The version installed before (None: newly installed).
    pub previous: Option<String>,
    /// Already installed, intact: nothing was downloaded.
    pub unchanged: bool,
}

/// What the user asked of an install beyond the plugin and its requirement.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    /// Install a version marked insecure (only ever by exact pin).
    pub allow_insecure: bool,
    /// Install only releases the registry's verification found `verified`.
    pub require_verified: bool,
}

/// Picks the version to install: the newest resolvable one matching `requirement`, or
/// exactly `=X.Y.Z` (which may be yanked or insecure, never removed).
pub fn choose_version(
    plugin: &str,
    versions: &[(String, Lifecycle)],
    requirement: Option<&str>,
) -> Result<String, InstallError> {
    let requirement = requirement.unwrap_or("*").trim();
    let parsed: Vec<(semver::Version, Lifecycle)> = versions
        .iter()
        .filter_map(|(v, s)| Some((semver::Version::parse(v).ok()?, *s)))
        .collect();
    if let Some(exact) = requirement
        .strip_prefix('=')
        .and_then(|v| semver::Version::parse(v.trim()).ok())
    {
        if let Some((v, _)) = parsed
            .iter()
            .find(|(v, s)| *v == exact && *s != Lifecycle::Removed)
        {
            return Ok(v.to_string());
        }
    } else {
        let req = semver::VersionReq::parse(requirement)
            .map_err(|_| InstallError::Requirement(requirement.to_owned()))?;
        if let Some((v, _)) = parsed
            .iter()
            .filter(|(v, s)| s.resolvable() && req.matches(v))
            .max_by(|a, b| a.0.cmp(&b.0))
        {
            return Ok(v.to_string());
        }
    }
    let mut available: Vec<_> = parsed
        .iter()
        .filter(|(_, s)| s.resolvable())
        .map(|(v, _)| v.clone())
        .collect();
    available.sort();
    Err(InstallError::NoMatch {
        plugin: plugin.to_owned(),
        requirement: requirement.to_owned(),
        available: available.iter().rev().map(ToString::to_string).collect(),
    })
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Installs `plugin` matching `requirement`, and every plugin it depends on, into `dir`
/// (e.g. `./plugins`): the newest versions that fit together, each verified.
pub async fn install(
    client: &Client,
    trust: &TrustConfig,
    plugin: &PluginRef,
    requirement: Option<&str>,
    dir: &Path,
    options: InstallOptions,
) -> Result<Installed, InstallError> {
    let (publisher, name) = (plugin.publisher.as_str(), plugin.name.as_str());
    let list = client.versions(publisher, name).await?;
    let candidates: Vec<_> = list
        .versions
        .iter()
        .map(|v| (v.version.clone(), v.state))
        .collect();
    // Explains a requirement nothing matches in the user's words, before resolving.
    let chosen = choose_version(&plugin.to_string(), &candidates, requirement)?;
    let exact = requirement.is_some_and(|r| r.trim().starts_with('='));
    let root_req = if exact {
        semver::VersionReq::parse(&format!("={chosen}"))
            .map_err(|_| InstallError::Requirement(chosen.clone()))?
    } else {
        semver::VersionReq::parse(requirement.unwrap_or("*").trim())
            .map_err(|_| InstallError::Requirement(requirement.unwrap_or("").to_owned()))?
    };
    let (catalog, details, excluded) = collect_candidates(
        client,
        &trust.host,
        plugin,
        exact.then_some(chosen.as_str()),
    )
    .await?;
    let selected = agora_core::resolve::resolve(&plugin.to_string(), &root_req, &catalog).map_err(
        |e| match e {
            agora_core::resolve::ResolveError::NoSolution(why) if !excluded.is_empty() => {
                agora_core::resolve::ResolveError::NoSolution(format!(
                    "{why}\nLeft out as incompatible with this host: {}",
                    excluded.join("; ")
                ))
            }
            other => other,
        },
    )?;
    // The requirement recorded for `agora update`: what was asked, or `^VERSION` of
    // what was chosen when nothing was (as cargo and npm record it).
    let recorded = match requirement
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "*")
    {
        Some(r) => r.to_owned(),
        None => format!("^{chosen}"),
    };
    let mut chosen_details = Vec::new();
    let mut warnings = Vec::new();
    for (dep, version) in &selected {
        let detail = details
            .get(&(dep.clone(), version.to_string()))
            .ok_or_else(|| InstallError::NoMatch {
                plugin: dep.clone(),
                requirement: version.to_string(),
                available: vec![],
            })?;
        let dep_ref: PluginRef = dep
            .parse()
            .map_err(|_| InstallError::UnsafePath(dep.clone()))?;
        let label = format!("{dep}@{version}");
        match detail.state {
            Lifecycle::Insecure if !options.allow_insecure => {
                return Err(InstallError::Insecure {
                    release: label,
                    reason: detail.state_reason.clone().unwrap_or_default(),
                });
            }
            Lifecycle::Deprecated => warnings.push(deprecation(&label, detail)),
            _ => {}
        }
        if options.require_verified {
            let report = client
                .verification(
                    dep_ref.publisher.as_str(),
                    dep_ref.name.as_str(),
                    version.to_string().as_str(),
                )
                .await?;
            let outcome = report.map(|r| r.outcome);
            if outcome != Some(agora_core::verification::Outcome::Verified) {
                return Err(InstallError::NotVerified {
                    release: label,
                    outcome: outcome.map_or("not checked yet", |o| o.as_str()).to_owned(),
                });
            }
        }
        let requirement = (dep_ref == *plugin).then(|| recorded.clone());
        chosen_details.push((dep_ref, detail.clone(), requirement));
    }
    let mut changes = install_set(client, trust, dir, chosen_details).await?;
    let root = changes
        .iter()
        .position(|c| c.entry.name == plugin.to_string())
        .ok_or_else(|| InstallError::NoMatch {
            plugin: plugin.to_string(),
            requirement: root_req.to_string(),
            available: vec![],
        })?;
    let root = changes.remove(root);
    Ok(Installed {
        path: dir
            .join(plugin.publisher.as_str())
            .join(plugin.name.as_str()),
        previous: root.previous,
        unchanged: root.unchanged,
        entry: root.entry,
        dependencies: changes,
        warnings,
    })
}

fn deprecation(label: &str, detail: &VersionDetail) -> String {
    let mut text = format!("{label} is deprecated");
    if let Some(reason) = detail.state_reason.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(&format!(": {reason}"));
    }
    if let Some(replacement) = detail.replacement.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(&format!(" (use {replacement} instead)"));
    }
    text
}

/// The registry's verification outcome of a release (`verified`, `needs-review`,
/// `rejected`), none before its first run: what `agora.lock` records.
async fn outcome_of(
    client: &Client,
    plugin: &PluginRef,
    version: &str,
) -> Result<Option<String>, InstallError> {
    Ok(client
        .verification(plugin.publisher.as_str(), plugin.name.as_str(), version)
        .await?
        .map(|r| r.outcome.as_str().to_owned()))
}

/// Puts a set of releases in place all or nothing: every release not already installed
/// intact is downloaded and verified into a staging area first; only when all are, they
/// are moved into place and `agora.lock` is written once. A failure at any point leaves
/// the plugin directory and its lockfile exactly as they were.
async fn install_set(
    client: &Client,
    trust: &TrustConfig,
    dir: &Path,
    set: Vec<(PluginRef, VersionDetail, Option<String>)>,
) -> Result<Vec<Changed>, InstallError> {
    let old = Lockfile::load(dir)?;
    let installed = |name: &str| {
        old.as_ref()
            .and_then(|l| l.plugins.iter().find(|p| p.name == name))
    };
    let staging = Staging::create(dir).await?;
    let checks = Checks::open(client, trust).await?;
    let (staging_ref, checks_ref) = (&staging, &checks);
    // Every release is checked and downloaded concurrently, a few at a time, in the set's
    // order; the first failure stops the rest and nothing is moved into place.
    let results: Vec<(Changed, Option<Staged>)> =
        futures_util::stream::iter(set.into_iter().map(|(plugin, detail, requirement)| {
            let previous = installed(&plugin.to_string()).cloned();
            async move {
                let requirement =
                    requirement.or_else(|| previous.as_ref().and_then(|p| p.requirement.clone()));
                if let Some(prev) = &previous
                    && prev.version == detail.version
                    && prev.manifest_digest == detail.manifest_digest
                    && crate::verify::entry_intact(dir, prev)
                {
                    // The verdict may have changed since (a review, a re-run): recorded
                    // afresh.
                    let verification = outcome_of(client, &plugin, &prev.version).await?;
                    let entry = LockEntry {
                        requirement,
                        verification,
                        ..prev.clone()
                    };
                    let previous = Some(prev.version.clone());
                    return Ok::<_, InstallError>((
                        Changed {
                            entry,
                            previous,
                            unchanged: true,
                        },
                        None,
                    ));
                }
                let release = staging_ref
                    .stage_checked(checks_ref, trust, plugin, &detail, requirement)
                    .await?;
                let changed = Changed {
                    entry: release.entry.clone(),
                    previous: previous.map(|p| p.version),
                    unchanged: false,
                };
                Ok((changed, Some(release)))
            }
        }))
        .buffered(PARALLEL_RELEASES)
        .try_collect()
        .await?;
    checks.finish().await?;
    let (changes, staged): (Vec<Changed>, Vec<Option<Staged>>) = results.into_iter().unzip();
    let staged: Vec<Staged> = staged.into_iter().flatten().collect();
    if changes.iter().all(|c| c.unchanged)
        && changes
            .iter()
            .all(|c| installed(&c.entry.name).is_some_and(|p| p.requirement == c.entry.requirement))
    {
        return Ok(changes);
    }
    let mut lock = old.unwrap_or_else(|| Lockfile::new(client.registry()));
    for change in &changes {
        lock.upsert(change.entry.clone());
    }
    staging.commit(dir, &staged, &[], &lock)?;
    Ok(changes)
}

/// `<dir>/.agora-tmp/<unique>`: where one transaction stages its downloads (and keeps what
/// it replaces or removes until the new lockfile is written). Removed when dropped.
///
/// `agora install` and `agora update` stage releases and commit them; the agent
/// (`crate::agent`) also takes plugins out in the same commit.
pub struct Staging {
    dir: PathBuf,
    area: PathBuf,
    slots: AtomicUsize,
}

/// A release downloaded and verified into a [`Staging`] area, with the `agora.lock` entry
/// it gets once committed.
#[derive(Debug, Clone)]
pub struct Staged {
    pub plugin: PluginRef,
    pub entry: LockEntry,
    path: PathBuf,
}

impl Staging {
    pub async fn create(dir: &Path) -> Result<Staging, InstallError> {
        let area = dir.join(".agora-tmp").join(random_suffix());
        tokio::fs::create_dir_all(&area)
            .await
            .map_err(io_error(format!("cannot create {}", area.display())))?;
        Ok(Staging {
            dir: dir.to_owned(),
            area,
            slots: AtomicUsize::new(0),
        })
    }

    /// Checks `detail` and downloads it into a directory of its own in the staging area,
    /// on its own: one release's [`Checks`], finished before it returns. Nothing outside
    /// the staging area changes but the image cache ([`Staging::stage_checked`]).
    pub async fn stage(
        &self,
        client: &Client,
        trust: &TrustConfig,
        plugin: PluginRef,
        detail: &VersionDetail,
        requirement: Option<String>,
    ) -> Result<Staged, InstallError> {
        let checks = Checks::open(client, trust).await?;
        let staged = self
            .stage_checked(&checks, trust, plugin, detail, requirement)
            .await?;
        checks.finish().await?;
        Ok(staged)
    }

    /// Checks `detail` and downloads it into a directory of its own in the staging area
    /// ([`Checks::fetch_verified`]), with the registry's verification outcome for its lock
    /// entry; an `oci` release's image is pulled into the directory's image cache
    /// ([`pull_image`]). Nothing else outside the staging area changes. Several releases
    /// may be staged at once; none may be committed before `checks` is finished.
    pub async fn stage_checked(
        &self,
        checks: &Checks<'_>,
        trust: &TrustConfig,
        plugin: PluginRef,
        detail: &VersionDetail,
        requirement: Option<String>,
    ) -> Result<Staged, InstallError> {
        let slot = self.slots.fetch_add(1, Ordering::Relaxed);
        let path = self.area.join(format!("new-{slot}"));
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(io_error(format!("cannot create {}", path.display())))?;
        let client = checks.client;
        let (verified, verification) = futures_util::try_join!(
            checks.fetch_verified(detail, &path),
            outcome_of(client, &plugin, &detail.version)
        )?;
        let label = format!("{plugin}@{}", detail.version);
        pull_image(&trust.oci, &self.dir, &detail.manifest, &label).await?;
        let entry = LockEntry {
            name: plugin.to_string(),
            version: detail.version.clone(),
            manifest_digest: detail.manifest_digest,
            artifacts: detail.artifacts.clone(),
            signer_key: Some(verified.signer),
            log_index: Some(verified.log_index),
            requirement,
            verification,
        };
        Ok(Staged {
            plugin,
            entry,
            path,
        })
    }

    /// Moves every staged release into place and every `removed` plugin's directory out,
    /// then writes `lock`; on any failure, moves everything back as it was.
    pub fn commit(
        &self,
        dir: &Path,
        staged: &[Staged],
        removed: &[PluginRef],
        lock: &Lockfile,
    ) -> Result<(), InstallError> {
        let target_of = |plugin: &PluginRef| {
            dir.join(plugin.publisher.as_str())
                .join(plugin.name.as_str())
        };
        // (target, staged copy if any, what the target held before)
        let mut moved: Vec<(PathBuf, Option<PathBuf>, Option<PathBuf>)> = Vec::new();
        let mut swap = || -> std::io::Result<()> {
            for (i, release) in staged.iter().enumerate() {
                let target = target_of(&release.plugin);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let backup = self.area.join(format!("old-{i}"));
                let had = move_aside(&target, &backup)?;
                moved.push((
                    target.clone(),
                    Some(release.path.clone()),
                    had.then_some(backup),
                ));
                std::fs::rename(&release.path, &target)?;
            }
            for (i, plugin) in removed.iter().enumerate() {
                let target = target_of(plugin);
                let backup = self.area.join(format!("gone-{i}"));
                if move_aside(&target, &backup)? {
                    moved.push((target, None, Some(backup)));
                }
            }
            Ok(())
        };
        let result = swap()
            .map_err(|e| {
                InstallError::from(io_error(format!(
                    "cannot move the verified plugins into {}",
                    dir.display()
                ))(e))
            })
            .and_then(|()| lock.save(dir).map_err(InstallError::from));
        if result.is_err() {
            for (target, source, backup) in moved.iter().rev() {
                if let Some(source) = source
                    && !source.exists()
                {
                    let _ = std::fs::rename(target, source);
                }
                if let Some(backup) = backup {
                    let _ = std::fs::rename(backup, target);
                }
            }
        } else {
            // A publisher directory left empty by a removal goes too.
            for plugin in removed {
                let _ = std::fs::remove_dir(dir.join(plugin.publisher.as_str()));
            }
        }
        result
    }
}

/// Renames `target` to `backup`; false when there was no `target`.
fn move_aside(target: &Path, backup: &Path) -> std::io::Result<bool> {
    match std::fs::rename(target, backup) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.area);
        if let Some(root) = self.area.parent() {
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// Installs exactly what `dir/agora.lock` pins, again: same versions, and the registry
/// must serve exactly the pinned digests. Every release is verified as on a fresh install.
pub async fn install_locked(
    client: &Client,
    trust: &TrustConfig,
    dir: &Path,
) -> Result<Vec<LockEntry>, InstallError> {
    let lock = Lockfile::load(dir)?.ok_or_else(|| {
        InstallError::NotInstalled(format!(
            "anything (no {} in {})",
            crate::lockfile::LOCKFILE,
            dir.display()
        ))
    })?;
    let plugins = lock
        .plugins
        .iter()
        .map(|entry| {
            entry
                .name
                .parse::<PluginRef>()
                .map_err(|_| InstallError::UnsafePath(entry.name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let details =
        futures_util::stream::iter(lock.plugins.iter().zip(&plugins).map(|(entry, plugin)| {
            client.version(
                plugin.publisher.as_str(),
                plugin.name.as_str(),
                &entry.version,
            )
        }))
        .buffered(PARALLEL_RELEASES)
        .try_collect::<Vec<_>>()
        .await?;
    let mut set = Vec::new();
    for ((entry, plugin), detail) in lock.plugins.iter().zip(plugins).zip(details) {
        let served: BTreeMap<&str, (agora_core::Digest, u64)> = detail
            .artifacts
            .iter()
            .map(|a| (a.path.as_str(), (a.digest, a.size)))
            .collect();
        let pinned: BTreeMap<&str, (agora_core::Digest, u64)> = entry
            .artifacts
            .iter()
            .map(|a| (a.path.as_str(), (a.digest, a.size)))
            .collect();
        if detail.manifest_digest != entry.manifest_digest || served != pinned {
            return Err(InstallError::LockMismatch(format!(
                "{}@{}",
                entry.name, entry.version
            )));
        }
        set.push((plugin, detail, entry.requirement.clone()));
    }
    Ok(install_set(client, trust, dir, set)
        .await?
        .into_iter()
        .map(|c| c.entry)
        .collect())
}

/// Every installable version of `root` and of everything reachable from it, with its
/// dependencies, breadth first. Yanked, insecure and removed versions are left out, except
/// an exact pin of the root.
/// Versions the host cannot run are left out too; the third value says which and why.
async fn collect_candidates(
    client: &Client,
    host: &agora_core::resolve::HostBounds,
    root: &PluginRef,
    pinned: Option<&str>,
) -> Result<
    (
        BTreeMap<String, Vec<Candidate>>,
        BTreeMap<(String, String), VersionDetail>,
        Vec<String>,
    ),
    InstallError,
> {
    let mut catalog: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    let mut details = BTreeMap::new();
    let mut excluded = Vec::new();
    let root_name = root.to_string();
    // Breadth first, one level at a time: a level's version lists, then every listed
    // version's details, are asked for concurrently, a few at a time, in order.
    let mut level = vec![root_name.clone()];
    while !level.is_empty() {
        let room = MAX_PLUGINS_IN_TREE.saturating_sub(catalog.len());
        let names: Vec<(String, PluginRef)> = level
            .into_iter()
            .filter_map(|name| {
                let plugin = name.parse::<PluginRef>().ok()?;
                Some((name, plugin))
            })
            .take(room)
            .collect();
        let lists = futures_util::stream::iter(names.iter().map(|(_, plugin)| async move {
            match client
                .versions(plugin.publisher.as_str(), plugin.name.as_str())
                .await
            {
                Ok(list) => Ok(Some(list)),
                // A dependency that does not exist (or is private) simply has no
                // candidates; the resolver explains the consequence.
                Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Ok(None),
                Err(e) => Err(InstallError::from(e)),
            }
        }))
        .buffered(PARALLEL_RELEASES)
        .try_collect::<Vec<_>>()
        .await?;
        let mut wanted = Vec::new();
        for ((name, plugin), list) in names.iter().zip(&lists) {
            catalog.insert(name.clone(), Vec::new());
            for v in list.iter().flat_map(|l| &l.versions) {
                let pinned_here = *name == root_name && pinned == Some(v.version.as_str());
                if v.state.resolvable() || pinned_here {
                    wanted.push((name, plugin, v.version.as_str()));
                }
            }
        }
        let fetched =
            futures_util::stream::iter(wanted.iter().map(|(_, plugin, version)| async move {
                client
                    .version(plugin.publisher.as_str(), plugin.name.as_str(), version)
                    .await
            }))
            .buffered(PARALLEL_RELEASES)
            .try_collect::<Vec<_>>()
            .await?;
        let mut next = Vec::new();
        for ((name, _, version), detail) in wanted.into_iter().zip(fetched) {
            if let Some(why) = host.incompatibility(&detail.manifest) {
                excluded.push(format!("{name} {version}: {why}"));
                continue;
            }
            let dependencies: Vec<(String, semver::VersionReq)> = detail
                .manifest
                .parsed_dependencies()
                .into_iter()
                .map(|(r, req)| (r.to_string(), req))
                .collect();
            for (dep, _) in &dependencies {
                if !catalog.contains_key(dep) && !next.contains(dep) {
                    next.push(dep.clone());
                }
            }
            if let Ok(parsed) = semver::Version::parse(version)
                && let Some(candidates) = catalog.get_mut(name.as_str())
            {
                candidates.push(Candidate {
                    version: parsed,
                    dependencies,
                });
            }
            details.insert((name.clone(), version.to_owned()), detail);
        }
        level = next;
    }
    Ok((catalog, details, excluded))
}

/// Most distinct plugins one install may pull in.
const MAX_PLUGINS_IN_TREE: usize = 200;

/// Where this client keeps what it learned of `registry`'s log (under the user's data
/// directory, one folder per registry): the file of the log key and last checkpoint seen;
/// the monitor keeps `monitor.json` beside it.
pub fn log_state_path(data_dir: &std::path::Path, registry: &str) -> std::path::PathBuf {
    let id = &agora_core::Digest::of(registry.trim_end_matches('/').as_bytes()).hex()[..16];
    data_dir
        .join("agora")
        .join("registries")
        .join(id)
        .join("log.json")
}

/// Where this client keeps what it learned of a registry's log, and how it pins the key.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The file holding the log key and the last checkpoint seen (one per registry).
    pub log_state: std::path::PathBuf,
    pub pinning: crate::logcheck::Pinning,
    /// What the host offers; releases that need more are not chosen.
    pub host: agora_core::resolve::HostBounds,
    /// Where `runtime.type: oci` images may be pulled from.
    pub oci: OciPulls,
}

/// Where an install pulls `runtime.type: oci` images from: the host policy's
/// `[oci] allowed_registries` (default: none, so every OCI image is refused, naming the
/// setting). A registry on a loopback address (`127.x.x.x`, `localhost`, `[::1]`) is
/// reached over plain HTTP, as Docker does; every other over HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciPulls {
    pub allowed_registries: Vec<String>,
}

impl OciPulls {
    pub fn from_policy(policy: &agora_core::policy::HostPolicy) -> OciPulls {
        OciPulls {
            allowed_registries: policy.oci.allowed_registries.clone(),
        }
    }

    fn pull_options(&self) -> agora_oci::PullOptions {
        let loopback = |entry: &&String| {
            let host = entry.rsplit_once(':').map_or(entry.as_str(), |(h, _)| h);
            host == "localhost" || host.starts_with("127.") || host == "[::1]"
        };
        agora_oci::PullOptions {
            allowed_registries: self.allowed_registries.clone(),
            plain_http: self
                .allowed_registries
                .iter()
                .filter(loopback)
                .cloned()
                .collect(),
            ..agora_oci::PullOptions::default()
        }
    }
}

/// Pulls the image of an `oci` release into the plugin directory's shared cache,
/// `DIR/.agora/oci/` ([`agora_oci::plugin_cache_dir`]). The cache only ever gains blobs
/// whose digest matched, so a failed install leaves the plugins and `agora.lock` as they
/// were; blobs it fetched stay, verified and unreferenced.
pub async fn pull_image(
    oci: &OciPulls,
    dir: &Path,
    manifest: &Manifest,
    release: &str,
) -> Result<Option<agora_oci::LocalImage>, InstallError> {
    if manifest.runtime.kind != agora_core::RuntimeKind::Oci {
        return Ok(None);
    }
    let wrap = |source| InstallError::Oci {
        release: release.to_owned(),
        source,
    };
    let image = manifest.runtime.image.as_deref().ok_or_else(|| {
        wrap(agora_oci::OciError::Reference(
            "an oci plugin names no runtime.image".into(),
        ))
    })?;
    let cache = agora_oci::Cache::open(&agora_oci::plugin_cache_dir(dir)).map_err(wrap)?;
    let puller = agora_oci::Puller::new(oci.pull_options()).map_err(wrap)?;
    let local = puller.pull(image, &cache).await.map_err(wrap)?;
    Ok(Some(local))
}

/// What checking a release established.
#[derive(Debug, Clone)]
pub struct Verified {
    pub signer: String,
    pub log_index: u64,
}

/// Checks a release and downloads it into `dest` (an empty directory), on its own: one
/// release's [`Checks`]. On error, `dest` may hold partial files; the caller removes it.
pub async fn fetch_verified(
    client: &Client,
    trust: &TrustConfig,
    detail: &VersionDetail,
    dest: &Path,
) -> Result<Verified, InstallError> {
    let checks = Checks::open(client, trust).await?;
    let verified = checks.fetch_verified(detail, dest).await?;
    checks.finish().await?;
    Ok(verified)
}

/// Most publishers whose keys one set of checks keeps.
const MAX_KEPT_PUBLISHERS: usize = MAX_PLUGINS_IN_TREE;

/// Releases to check and download at once in one install.
const PARALLEL_RELEASES: usize = 8;

/// What one install checks of a set of releases, asking the registry for each thing once:
/// each publisher's keys, the log's key and checkpoint, the key events releases share
/// ([`crate::logcheck::LogSession`]). Releases may be checked concurrently; nothing they
/// bring may be moved into place before [`Checks::finish`] has proven the log consistent.
pub struct Checks<'a> {
    client: &'a Client,
    log: crate::logcheck::LogSession,
    keys: crate::once_map::OnceMap<String, Vec<agora_core::api::PublisherKey>>,
}

impl<'a> Checks<'a> {
    pub async fn open(client: &'a Client, trust: &TrustConfig) -> Result<Checks<'a>, InstallError> {
        Ok(Checks {
            client,
            log: crate::logcheck::LogSession::open(client, &trust.log_state, &trust.pinning)
                .await?,
            keys: crate::once_map::OnceMap::new(MAX_KEPT_PUBLISHERS),
        })
    }

    async fn keys(
        &self,
        publisher: &str,
    ) -> Result<Vec<agora_core::api::PublisherKey>, InstallError> {
        Ok(self
            .keys
            .get_or_try_init(publisher.to_owned(), || self.client.keys(publisher))
            .await?)
    }

    /// Checks a release and downloads it into `dest` (an empty directory): safe paths,
    /// the manifest digest, the signature by the publisher's key over exactly these files,
    /// its log entry and the signer's key history, every byte against its digest, and the
    /// served description against the signed plugin.yaml. On error, `dest` may hold
    /// partial files; the caller removes it.
    pub async fn fetch_verified(
        &self,
        detail: &VersionDetail,
        dest: &Path,
    ) -> Result<Verified, InstallError> {
        let label = format!("{}/{}@{}", detail.publisher, detail.name, detail.version);
        for a in &detail.artifacts {
            if relative_path_problem(&a.path).is_some() {
                return Err(InstallError::UnsafePath(a.path.clone()));
            }
        }
        let manifest_artifact = detail
            .artifacts
            .iter()
            .find(|a| a.role == ArtifactRole::Manifest)
            .ok_or_else(|| {
                InstallError::ManifestMismatch(
                    label.clone(),
                    "the release has no plugin.yaml".into(),
                )
            })?;
        if manifest_artifact.digest != detail.manifest_digest {
            return Err(InstallError::ManifestMismatch(
                label,
                "plugin.yaml's digest differs from the release's manifest digest".into(),
            ));
        }
        // The key list gives the key material for the signature; whether that key was
        // registered and unrevoked at the release comes from the log's key history.
        let keys = self.keys(&detail.publisher).await?;
        let signer = crate::verify::verify_release_signature(detail, &keys)?;
        let log_index = self.log.check_release(self.client, detail, &signer).await?;
        download_all(self.client, detail, dest, &label).await?;
        Ok(Verified { signer, log_index })
    }

    /// Proves the log consistent with everything the checks saw, and records its head.
    pub async fn finish(self) -> Result<(), InstallError> {
        Ok(self.log.finish(self.client).await?)
    }
}

async fn download_all(
    client: &Client,
    detail: &VersionDetail,
    staging: &Path,
    label: &str,
) -> Result<(), InstallError> {
    for a in &detail.artifacts {
        let dest = staging.join(&a.path);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io_error(format!("cannot create {}", parent.display())))?;
        }
        client.download_blob(&a.digest, a.size, &dest).await?;
        if a.role == ArtifactRole::Binary {
            use std::os::unix::fs::PermissionsExt;
            let _ = tokio::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).await;
        }
    }
    // The verified manifest must describe exactly what was asked for.
    let text = tokio::fs::read_to_string(staging.join("plugin.yaml"))
        .await
        .map_err(io_error("cannot read the downloaded plugin.yaml"))?;
    let manifest = Manifest::from_yaml(&text)
        .map_err(|e| InstallError::ManifestMismatch(label.to_owned(), e.to_string()))?;
    if manifest.plugin_ref().to_string() != format!("{}/{}", detail.publisher, detail.name)
        || manifest.version.to_string() != detail.version
    {
        return Err(InstallError::ManifestMismatch(
            label.to_owned(),
            format!(
                "it describes {}@{}",
                manifest.plugin_ref(),
                manifest.version
            ),
        ));
    }
    // What the registry says about the release (capabilities, hosts, dependencies) must be
    // what the signed plugin.yaml says.
    if manifest != detail.manifest {
        return Err(InstallError::ManifestMismatch(
            label.to_owned(),
            "the registry's description of the release differs from its signed plugin.yaml".into(),
        ));
    }
    Ok(())
}

/// Removes an installed plugin and its lockfile entry.
pub async fn remove(dir: &Path, plugin: &PluginRef) -> Result<LockEntry, InstallError> {
    let mut lock =
        Lockfile::load(dir)?.ok_or_else(|| InstallError::NotInstalled(plugin.to_string()))?;
    let name = plugin.to_string();
    let entry = lock
        .plugins
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| InstallError::NotInstalled(name.clone()))?;
    let target = dir
        .join(plugin.publisher.as_str())
        .join(plugin.name.as_str());
    match tokio::fs::remove_dir_all(&target).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error(format!("cannot remove {}", target.display()))(e).into());
        }
        _ => {}
    }
    lock.plugins.retain(|p| p.name != name);
    lock.save(dir)?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> Vec<(String, Lifecycle)> {
        [
            ("1.0.0", Lifecycle::Active),
            ("1.1.0", Lifecycle::Yanked),
            ("1.2.0-rc.1", Lifecycle::Active),
            ("2.0.0", Lifecycle::Removed),
            ("0.9.0", Lifecycle::Deprecated),
        ]
        .into_iter()
        .map(|(v, s)| (v.to_owned(), s))
        .collect()
    }

    #[test]
    fn the_newest_resolvable_match_wins() {
        assert_eq!(choose_version("a/b", &versions(), None).unwrap(), "1.0.0");
        assert_eq!(
            choose_version("a/b", &versions(), Some("<1.0")).unwrap(),
            "0.9.0"
        );
    }

    #[test]
    fn yanked_versions_need_an_exact_pin_and_removed_ones_never_install() {
        assert!(matches!(
            choose_version("a/b", &versions(), Some("~1.1")),
            Err(InstallError::NoMatch { .. })
        ));
        assert_eq!(
            choose_version("a/b", &versions(), Some("=1.1.0")).unwrap(),
            "1.1.0"
        );
        assert!(choose_version("a/b", &versions(), Some("=2.0.0")).is_err());
    }

    #[test]
    fn bad_requirements_are_explained() {
        let err = choose_version("a/b", &versions(), Some("latest please")).unwrap_err();
        assert!(err.to_string().contains("=1.2.3"), "{err}");
        let err = choose_version("a/b", &versions(), Some("^3")).unwrap_err();
        assert!(err.to_string().contains("1.0.0, 0.9.0"), "{err}");
    }
}
