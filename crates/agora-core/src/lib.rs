//! Agora's pure domain: plugin names, versions and requirements, the plugin manifest
//! (`plugin.yaml`) and its JSON Schema, content digests, lifecycle states, token scopes,
//! and the wire types of the HTTP API shared by server and client.
//!
//! Architecture invariant: nothing in this crate does I/O. Callers hand it bytes and
//! values; it hands back validated types or errors that name the field at fault.

pub mod advisory;
pub mod analytics;
pub mod api;
pub mod audit;
pub mod digest;
pub mod field;
pub mod lifecycle;
pub mod listing;
pub mod manifest;
pub mod name;
pub mod net;
pub mod oci;
pub mod policy;
pub mod problem;
pub mod ratelimit;
pub mod resolve;
pub mod scope;
pub mod search;
pub mod tenant;
pub mod text;
pub mod verification;
pub mod webhook;

pub use digest::{Digest, DigestError, Sha256Hasher};
pub use field::FieldError;
pub use lifecycle::{Lifecycle, LifecycleError};
pub use manifest::{Manifest, ManifestError, Runtime, RuntimeKind, Visibility};
pub use name::{NameError, PluginRef, Slug};
pub use problem::ProblemKind;
pub use scope::{SCOPE_SYNTAX, Scope, ScopeError};
