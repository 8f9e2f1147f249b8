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

    /// Why the database cannot serve at the moment, when that is the trouble rather than
    /// the request or a bug: it is down or unreachable (connections refused or cut, none
    /// free within the pool's wait, the server shutting down), or its storage is full
    /// (SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`). The same request may succeed
    /// later, unchanged. `None` for every other error.
    pub fn outage(&self) -> Option<&'static str> {
        const UNREACHABLE: &str = "the database is unreachable";
        let StoreError::Database(err) = self else {
            return None;
        };
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Some(UNREACHABLE),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("13" | "53100") => Some("the database's storage is full"),
                // connection_exception (08xxx), admin_shutdown, crash_shutdown,
                // cannot_connect_now, too_many_connections.
                Some(code)
                    if code.starts_with("08")
                        || matches!(code, "57P01" | "57P02" | "57P03" | "53300") =>
                {
                    Some(UNREACHABLE)
                }
                _ => None,
            },
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_an_outage_and_a_bad_query_is_not() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ] {
            assert_eq!(
                StoreError::Database(err).outage(),
                Some("the database is unreachable")
            );
        }
        assert_eq!(
            StoreError::Database(sqlx::Error::RowNotFound).outage(),
            None
        );
        assert_eq!(StoreError::Conflict("taken".into()).outage(), None);
    }
}
