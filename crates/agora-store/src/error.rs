use agora_core::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Text the database cannot store (PostgreSQL refuses NUL); the edges refuse control
    /// characters first, this is the backstop that keeps such input from being a 500.
    #[error("the text contains a character the database cannot store")]
    InvalidText,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
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
            _ => StoreError::from(err),
        }
    }

    /// A transaction lost a race on PostgreSQL (serialization failure, deadlock) and may
    /// simply be run again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("40001" | "40P01")))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        match &err {
            // character_not_in_repertoire, untranslatable_character (NUL in text).
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                StoreError::InvalidText
            }
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
    #[error("blob storage location `{location}`: {reason}")]
    BadLocation { location: String, reason: String },
}
