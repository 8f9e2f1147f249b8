use agora_core::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn conflict_on_unique(
        err: sqlx::Error,
        what: impl FnOnce() -> String,
    ) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
            _ => StoreError::Database(err),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("content size {actual} does not match the declared size {declared}")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("upload was interrupted: {0}")]
    Interrupted(std::io::Error),
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("blob storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("object storage failed: {0}")]
    Object(#[from] object_store::Error),
}
