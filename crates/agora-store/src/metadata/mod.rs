//! The metadata store's contract, split by aggregate: each part a trait with its records
//! (accounts, publishers, releases, reviews, the log, blob metadata, search, audit, jobs,
//! verifications, advisories, webhooks, tenants, entitlements, OCI, blob references for gc and fsck), all
//! of them together the [`MetadataStore`]. Callers bring the parts they use into scope
//! (`use agora_store::prelude::*` brings all).

mod accounts;
mod advisories;
mod analytics;
mod audit;
mod blobs;
mod entitlements;
mod gc;
mod jobs;
mod limits;
mod log;
mod oci;
mod publishers;
mod releases;
mod reviews;
mod search;
mod tenants;
mod verifications;
mod webhooks;

use async_trait::async_trait;

use crate::StoreError;

pub use accounts::*;
pub use advisories::*;
pub use analytics::*;
pub use audit::*;
pub use blobs::*;
pub use entitlements::*;
pub use gc::*;
pub use jobs::*;
pub use limits::*;
pub use log::*;
pub use oci::*;
pub use publishers::*;
pub use releases::*;
pub use reviews::*;
pub use search::*;
pub use tenants::*;
pub use verifications::*;
pub use webhooks::*;

pub use agora_core::listing::{PRIOR_RATING, PRIOR_WEIGHT, rating_rank, version_key};
pub use agora_core::search::{
    MAX_QUERY_WORDS, MAX_TEXT_MATCHES, MIN_PREFIX_CHARS, SearchSort, matches_as_prefix, query_words,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The whole metadata store. Every method that changes more than one row is one
/// transaction.
#[async_trait]
pub trait MetadataStore:
    AccountStore
    + PublisherStore
    + ReleaseStore
    + ReviewStore
    + LogStore
    + BlobIndex
    + CatalogStore
    + AuditStore
    + JobQueue
    + VerificationStore
    + AdvisoryStore
    + WebhookStore
    + TenantStore
    + EntitlementStore
    + OciStore
    + GcStore
    + AnalyticsStore
    + LimitStore
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
}

/// Every part of the store's contract, for callers that use several.
pub mod prelude {
    pub use super::{
        AccountStore, AdvisoryStore, AnalyticsStore, AuditStore, BlobIndex, CatalogStore,
        EntitlementStore, GcStore, JobQueue, LimitStore, LogStore, MetadataStore, OciStore,
        PublisherStore, ReleaseStore, ReviewStore, TenantStore, VerificationStore, WebhookStore,
    };
}
