//! Agora's use cases: what the API (`agora-server`) and the web pages (`agora-web`) both do,
//! with the rules that decide who may do it. One module per use case; each takes the
//! [`Registry`] and a [`Caller`] and returns records or a typed [`RegistryError`] that each
//! face renders its own way. Nothing here knows HTTP.
//!
//! - [`catalog`]: searching (the one place search input is validated), plugins and versions
//!   as a viewer may see them.
//! - [`publish`]: a release's checks (manifest, artifacts the caller may name, signature by
//!   an active key) and its transactional write with its log entry; [`blobs`]: uploads
//!   (possession), who may read a blob, which downloads count.
//! - [`lifecycle`]: yank, deprecate, mark insecure, remove, visibility.
//! - [`reviews`], [`publishers`] (settings, members, invitations), [`keys`], [`tokens`],
//!   [`accounts`] (users, passwords, signing in with its throttle).
//! - [`log`]: the transparency log as the registry runs it (tree, checkpoints, proofs,
//!   sealed entries and who may open them).
//! - [`webhooks`]: signed HTTP callbacks on publish, verification, lifecycle changes and
//!   advisory matches, their deliveries through the job queue and their history.
//! - [`tenants`]: the control plane: tenants, members, instances and their credentials,
//!   the approved set (pins by manifest digest, each change a sealed log entry), updates,
//!   the desired set instances poll and the fleet their reports make.
//! - [`gc`]: garbage collection of blobs nothing refers to (two-phase, with a grace
//!   period); [`fsck`]: the blob store checked against metadata; [`scheduled`]: periodic
//!   jobs run once across replicas; [`backup`]: backup and restore of the database and
//!   the blobs.
//! - [`caller`]: who is calling and the authorization rules; [`bootstrap`]: the first
//!   administrator.

pub mod accounts;
pub mod advisories;
pub mod analytics;
pub mod archive_audit;
pub mod audit;
pub mod backup;
pub mod behaviour;
pub mod blobs;
pub mod bootstrap;
pub mod caller;
pub mod catalog;
pub mod downloads;
pub mod elf_audit;
pub mod entitlements;
mod error;
pub mod fsck;
pub mod gc;
pub mod image_audit;
pub mod keys;
pub mod lifecycle;
pub mod log;
pub mod oci;
pub mod password;
pub mod publish;
pub mod publishers;
pub mod ratelimit;
pub mod review_queue;
pub mod reviews;
pub mod sbom;
pub mod scheduled;
pub mod tenants;
pub mod throttle;
pub mod time;
pub mod tokens;
pub mod verification;
pub mod wasm_audit;
pub mod webhooks;

use std::sync::Arc;

use agora_store::{BlobStore, MetadataStore};

pub use caller::{Caller, Credential};
pub use error::{RegistryError, Result, truncate};
pub use log::TransparencyLog;

/// The limits of the use cases; every one configurable (`[limits]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest blob accepted by an upload.
    pub max_blob_bytes: u64,
    /// Most artifacts in one release.
    pub max_artifacts: usize,
    /// Largest page a list returns.
    pub max_page_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 1024 * 1024 * 1024,
            max_artifacts: 64,
            max_page_size: 100,
        }
    }
}

/// Everything the use cases work on: the stores, the transparency log, the limits and the
/// registry's in-process bookkeeping (download counting, the sign-in throttle).
pub struct Registry {
    pub meta: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub log: TransparencyLog,
    pub limits: Limits,
    /// Where the `oci` stage of a verification may pull images from ([`image_audit`]).
    pub image_audit: image_audit::ImageAuditSettings,
    /// A private registry: nothing is readable without signing in (a token, or a browser
    /// session for the web pages); only health probes and metrics stay open.
    pub sign_in_required: bool,
    /// The check the `behaviour` stage of a verification runs (none: no such stage).
    pub behaviour: Option<behaviour::Behaviour>,
    /// How webhook deliveries may reach their receivers (`[webhooks]`).
    pub webhooks: webhooks::WebhookSettings,
    /// How a verification's findings decide its outcome (`[verification]` settings).
    pub verification_policy: agora_core::verification::Policy,
    /// Per tenant, woken by every change its instances must act on (its approved set or
    /// policy), so waiting instances answer at once.
    pub tenant_changed: tenants::Wakers,
    /// The OCI distribution endpoints' settings and uploads in progress (`[oci]`).
    pub oci: oci::Oci,
    /// The analytics intake (`[analytics]`): events buffered off the hot path.
    pub analytics: Arc<analytics::Intake>,
    /// Request rate limits (`[rate_limits]`), decided in memory, summed across replicas.
    pub rate_limits: Arc<ratelimit::Limiter>,
    downloads: downloads::DownloadCounter,
    throttle: throttle::SignInThrottle,
}

impl Registry {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        log: TransparencyLog,
        limits: Limits,
    ) -> Registry {
        Registry {
            throttle: throttle::SignInThrottle::new(meta.clone()),
            meta,
            image_audit: image_audit::ImageAuditSettings::default(),
            blobs,
            log,
            limits,
            sign_in_required: false,
            behaviour: None,
            webhooks: webhooks::WebhookSettings::default(),
            verification_policy: agora_core::verification::Policy::default(),
            tenant_changed: tenants::Wakers::default(),
            oci: oci::Oci::default(),
            analytics: Arc::new(analytics::Intake::default()),
            rate_limits: Arc::new(ratelimit::Limiter::default()),
            downloads: downloads::DownloadCounter::default(),
        }
    }

    /// Buffers and keeps analytics as `settings` say.
    pub fn with_analytics(mut self, settings: analytics::AnalyticsSettings) -> Registry {
        self.analytics = Arc::new(analytics::Intake::new(settings));
        self
    }

    /// Limits request rates as `settings` say ([`ratelimit`]).
    pub fn with_rate_limits(mut self, settings: ratelimit::RateLimitSettings) -> Registry {
        self.rate_limits = Arc::new(ratelimit::Limiter::new(settings));
        self
    }

    /// Makes this a private registry (see [`Registry::sign_in_required`]).
    pub fn with_sign_in_required(mut self, required: bool) -> Registry {
        self.sign_in_required = required;
        self
    }

    /// Decides verification outcomes with `policy`.
    pub fn with_verification_policy(
        mut self,
        policy: agora_core::verification::Policy,
    ) -> Registry {
        self.verification_policy = policy;
        self
    }

    /// Sets the OCI distribution endpoints' settings ([`oci`]).
    pub fn with_oci(mut self, settings: oci::OciSettings) -> Registry {
        self.oci = oci::Oci::new(settings);
        self
    }

    /// Sets how webhook deliveries may reach their receivers ([`webhooks`]).
    pub fn with_webhooks(mut self, settings: webhooks::WebhookSettings) -> Registry {
        self.webhooks = settings;
        self
    }

    /// Runs releases' plugins in verification ([`behaviour`]), with `check`, their files
    /// materialised under `work_dir`.
    pub fn with_behaviour(
        mut self,
        check: Arc<dyn behaviour::BehaviourCheck>,
        work_dir: std::path::PathBuf,
    ) -> Registry {
        self.behaviour = Some(behaviour::Behaviour { check, work_dir });
        self
    }

    /// Lets the `oci` stage of a verification pull images as `settings` say
    /// ([`image_audit`]).
    pub fn with_image_audit(mut self, settings: image_audit::ImageAuditSettings) -> Registry {
        self.image_audit = settings;
        self
    }
}
