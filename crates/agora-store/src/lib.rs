//! Agora's persistence.
//!
//! - [`MetadataStore`]: users, tokens, publishers, plugins, versions, artifacts, lifecycle
//!   and audit records. [`SqlStore`] implements it for SQLite (the embedded default) and
//!   PostgreSQL with one set of queries; only migrations and full-text search differ.
//! - [`BlobStore`]: content-addressed bytes, streamed in and out. [`FsBlobStore`] keeps
//!   them in a local directory; [`ObjectBlobStore`] puts them in any `object_store`
//!   backend (S3-compatible, in-memory); [`BlobLocation`] opens the one a path or URL
//!   names.
//!
//! Invariants: a version is written in one transaction or not at all; a blob is fully
//! written and its digest checked before it becomes visible under that digest.

mod blob;
mod error;
mod metadata;
mod sql;

pub use blob::{
    BlobLocation, BlobStore, BlobStream, ByteStream, FsBlobStore, IMMUTABLE, ObjectBlobStore,
    PutOutcome, S3_URL_KEYS, StoredBlob, hash_only,
};
pub use error::{BlobError, StoreError};
pub use metadata::*;
pub use sql::{Dialect, SqlStore, StoreOptions};

/// Milliseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
