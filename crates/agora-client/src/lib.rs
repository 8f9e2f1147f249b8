//! The client side of Agora: a typed client of the registry API, release bundles
//! (`agora pack`), and installation into a plugin directory with its `agora.lock`.
//! Used by the CLI, and by tests and tools that talk to a registry.

pub mod agent;
pub mod api;
pub mod build;
pub mod bundle;
pub mod gpg;
pub mod install;
pub mod lockfile;
pub mod logcheck;
pub mod monitor;
mod once_map;
pub mod publish;
pub mod scaffold;
pub mod verify;

pub use api::{Client, ClientError};
pub use bundle::{BundleError, ReleaseFiles};
pub use install::{Changed, InstallError, InstallOptions, Installed};
pub use lockfile::{LockEntry, Lockfile};
pub use logcheck::{LogCheckError, LogState, Pinning, verify_logged};
pub use monitor::{MonitorReport, monitor};
pub use verify::{
    Finding, InstalledReport, TrustError, verify_installed, verify_release_signature,
};
