//! Security advisories (OSV records) and the components each release's SBOM lists, so
//! that an advisory finds the releases it affects and a release finds its advisories.

use agora_core::Lifecycle;
use async_trait::async_trait;

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryRecord {
    pub id: String,
    /// RFC 3339, as the record gives it.
    pub modified: String,
    pub withdrawn: Option<String>,
    pub summary: Option<String>,
    /// The OSV record as imported (JSON).
    pub document: String,
    pub imported_at: i64,
}

/// An advisory to store and the `(ecosystem, name)` packages it names.
#[derive(Debug, Clone)]
pub struct NewAdvisory {
    pub record: AdvisoryRecord,
    pub packages: Vec<(String, String)>,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvisoryImport {
    /// Ids stored for the first time or replaced by a newer `modified`.
    pub changed: Vec<String>,
    /// Ids already stored with the same or a newer `modified`.
    pub unchanged: Vec<String>,
}

/// A component of a release's SBOM that advisories can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRecord {
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    pub purl: String,
}

/// A release whose SBOM lists a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentUse {
    pub version_id: i64,
    pub publisher: String,
    pub plugin: String,
    pub version: String,
    pub state: Lifecycle,
    /// The component's version in that release.
    pub component_version: String,
    pub purl: String,
}

#[async_trait]
pub trait AdvisoryStore: Send + Sync {
    /// Stores advisories in one transaction with an `advisory.import` audit event: a
    /// record replaces the stored one only when its `modified` is newer.
    async fn import_advisories(
        &self,
        advisories: &[NewAdvisory],
        actor: &str,
    ) -> Result<AdvisoryImport>;

    async fn advisory(&self, id: &str) -> Result<Option<AdvisoryRecord>>;

    /// The advisories naming a package some release's SBOM lists, by id, from after
    /// `after`, at most `limit`: what a re-check of every release goes through.
    async fn advisories_in_use(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AdvisoryRecord>>;

    /// The advisories naming any of `packages` (`(ecosystem, name)`).
    async fn advisories_for(&self, packages: &[(String, String)]) -> Result<Vec<AdvisoryRecord>>;

    /// Replaces the components recorded for a release.
    async fn set_release_components(
        &self,
        version_id: i64,
        components: &[ComponentRecord],
    ) -> Result<()>;

    /// The releases whose SBOM lists the package, removed ones left out.
    async fn releases_using(&self, ecosystem: &str, name: &str) -> Result<Vec<ComponentUse>>;
}
