//! Plugins, their versions (releases) and artifacts, lifecycle and visibility, and who
//! may see which.

use agora_core::{Digest, Lifecycle, Manifest, Visibility, manifest::ArtifactRole};
use async_trait::async_trait;

use super::{LogWriter, NewJob, Result};

#[derive(Debug, Clone)]
pub struct PluginRecord {
    pub id: i64,
    pub publisher_id: i64,
    pub publisher: String,
    pub name: String,
    pub visibility: Visibility,
    pub display_name: String,
    pub description: String,
    pub provider: Option<String>,
    pub runtime: String,
    pub latest_version: Option<String>,
    /// The version the listing comes from and its state: the latest, else (every version
    /// yanked or insecure) the newest that is not removed (`agora_core::listing::listed`).
    /// A listing shows it and marks it when it is not active.
    pub listed_version: Option<String>,
    pub listed_state: Option<Lifecycle>,
    pub downloads: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub tags: Vec<String>,
    pub categories: Vec<String>,
    pub capabilities: Vec<String>,
    /// Its publisher is verified.
    pub verified: bool,
    /// Visible reviews and the sum of their ratings.
    pub rating_count: i64,
    pub rating_sum: i64,
    /// What "top rated" orders by: the Bayesian average x 1000.
    pub rating_rank: i64,
    /// The verdict of the latest version: its newest verification run's outcome, `None`
    /// until its first run.
    pub latest_verification: Option<agora_core::verification::Outcome>,
}

impl PluginRecord {
    /// The average rating of its visible reviews, when it has any.
    pub fn rating(&self) -> Option<f64> {
        (self.rating_count > 0).then(|| self.rating_sum as f64 / self.rating_count as f64)
    }
}

#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub id: i64,
    pub plugin_id: i64,
    pub version: String,
    /// The validated manifest as JSON.
    pub manifest: String,
    pub manifest_digest: Digest,
    pub signature: Option<String>,
    pub state: Lifecycle,
    pub state_reason: Option<String>,
    pub replacement: Option<String>,
    pub downloads: i64,
    pub published_at: i64,
    pub published_by: String,
    /// Id of the key whose signature the server verified at publish time.
    pub signer_key: Option<String>,
    /// Index of the release's entry in the transparency log.
    pub log_index: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub path: String,
    pub role: ArtifactRole,
    pub digest: Digest,
    pub size: i64,
}

/// Everything needed to create a version, already validated by the caller.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub publisher_id: i64,
    pub manifest: Manifest,
    pub manifest_digest: Digest,
    pub signature: Option<String>,
    pub signer_key: Option<String>,
    /// The transparency log entry recording this release, appended in the same transaction.
    pub log_entry: Option<LogWriter>,
    /// Every file of the release including the manifest itself.
    pub artifacts: Vec<ArtifactRecord>,
    pub published_by: i64,
    pub actor: String,
    /// Jobs queued in the release's transaction (its verification): a release is never
    /// stored without them, whenever the server dies.
    pub jobs: Vec<NewJob>,
}

#[derive(Debug, Clone)]
pub struct LifecycleChange {
    pub version_id: i64,
    pub state: Lifecycle,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    pub actor: String,
    /// The transparency log entry recording the change, appended in the same transaction.
    pub log_entry: Option<LogWriter>,
}

/// Who is looking: decides which private plugins exist for them.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// Sees everything.
    pub admin: bool,
    /// Publishers whose private plugins this viewer may see.
    pub private_publishers: Vec<i64>,
    /// Tenants whose entitlements this viewer holds: it sees the private plugins offered
    /// to them (a member whose token holds a `tenant:` scope for them, or an instance).
    pub tenants: Vec<i64>,
}

impl Viewer {
    pub fn anonymous() -> Viewer {
        Viewer::default()
    }

    /// Whether this viewer sees public plugins only (not an admin, no private publisher,
    /// no tenant): what anyone at all sees, so answers for it may be shared.
    pub fn sees_only_public(&self) -> bool {
        !self.admin && self.private_publishers.is_empty() && self.tenants.is_empty()
    }

    /// Whether this viewer sees the plugin without asking the store about entitlements
    /// (public, or its publisher's insider). A viewer holding tenants may see more:
    /// [`ReleaseStore::plugin_visible_to`] answers for them.
    pub fn can_see(&self, plugin: &PluginRecord) -> bool {
        self.admin
            || plugin.visibility == Visibility::Public
            || self.private_publishers.contains(&plugin.publisher_id)
    }

    /// The viewer of a tenant's instances: public plugins and those offered to the tenant.
    pub fn of_tenant(tenant_id: i64) -> Viewer {
        Viewer {
            tenants: vec![tenant_id],
            ..Viewer::default()
        }
    }

    /// The ids a visibility condition binds, in order: private publishers, then tenants.
    pub fn visibility_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.private_publishers
            .iter()
            .chain(self.tenants.iter())
            .copied()
    }

    /// Whether this viewer sees the publisher from inside: an administrator, or a member
    /// who may see its private plugins. Insiders also see the plugins listings leave out.
    pub fn is_insider(&self, publisher_id: i64) -> bool {
        self.admin || self.private_publishers.contains(&publisher_id)
    }
}

/// Plugins, versions, artifacts, lifecycle and visibility.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    async fn plugin(&self, publisher: &str, name: &str) -> Result<Option<PluginRecord>>;
    /// The plugin if it exists and `viewer` may see it. A plugin the viewer may not see
    /// costs the same work as a missing one, so timing does not tell them apart.
    async fn visible_plugin(
        &self,
        publisher: &str,
        name: &str,
        viewer: &Viewer,
    ) -> Result<Option<PluginRecord>>;
    /// The publisher's plugins that listings leave out because no version can be chosen
    /// by a range (every one yanked or insecure; not those whose versions were all
    /// removed), by name, at most `limit`: only for a viewer who
    /// [is an insider](Viewer::is_insider) of the publisher, else none.
    async fn unlisted_plugins(
        &self,
        publisher_id: i64,
        viewer: &Viewer,
        limit: u32,
    ) -> Result<Vec<PluginRecord>>;
    /// Whether the plugin with this id exists and `viewer` may see it.
    async fn plugin_visible_to(&self, plugin_id: i64, viewer: &Viewer) -> Result<bool>;
    /// Changes a plugin's visibility; with `log_entry`, the change is logged.
    async fn set_visibility(
        &self,
        plugin_id: i64,
        visibility: Visibility,
        actor: &str,
        log_entry: Option<LogWriter>,
    ) -> Result<()>;
    /// Every version of a plugin, newest first by semver precedence.
    async fn versions(&self, plugin_id: i64) -> Result<Vec<VersionRecord>>;
    async fn version(&self, plugin_id: i64, version: &str) -> Result<Option<VersionRecord>>;
    async fn artifacts(&self, version_id: i64) -> Result<Vec<ArtifactRecord>>;
    /// Creates a version (and its plugin on first publish). `Conflict` if it exists.
    async fn publish(&self, release: NewRelease) -> Result<VersionRecord>;
    /// Changes a version's state. For a removal, returns the digests no longer referenced
    /// by any downloadable version, whose bytes the caller should delete.
    async fn set_lifecycle(&self, change: LifecycleChange) -> Result<(VersionRecord, Vec<Digest>)>;
}
