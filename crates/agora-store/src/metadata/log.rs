//! The transparency log's rows: entries appended in the same transaction as the change
//! they record (built by a [`LogWriter`] under the log's lock), and the log's key.

use async_trait::async_trait;

use super::Result;

/// What the store knows when it appends a transparency log entry, for the writer to
/// build the entry from (under the log's lock, so no other append interleaves).
#[derive(Debug, Clone, PartialEq)]
pub struct LogContext {
    /// The index the entry gets.
    pub index: i64,
    /// The publisher's newest key event, as (index, leaf hash in hex), if it has any.
    pub key_head: Option<(i64, String)>,
    /// The entry concerns a private plugin: it must not name it in clear.
    pub private: bool,
}

/// A log entry as stored: the body the Merkle tree commits to (its leaf is the sha256 of
/// these bytes), and for a sealed entry the opening only permitted readers get.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub body: String,
    pub opening: Option<String>,
    /// sha256 of `body`, hex.
    pub leaf: String,
}

/// Builds the entry a change appends to the log, from what the store knows at that moment.
#[derive(Clone)]
pub struct LogWriter(pub std::sync::Arc<dyn Fn(&LogContext) -> LogRecord + Send + Sync>);

impl LogWriter {
    pub fn new(f: impl Fn(&LogContext) -> LogRecord + Send + Sync + 'static) -> LogWriter {
        LogWriter(std::sync::Arc::new(f))
    }

    pub fn write(&self, context: &LogContext) -> LogRecord {
        (self.0)(context)
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

/// One stored transparency log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub index: i64,
    pub body: String,
    /// A sealed entry's opening; give it only to readers who may see `plugin_id`.
    pub opening: Option<String>,
    /// The plugin a release, lifecycle or visibility entry is about.
    pub plugin_id: Option<i64>,
}

/// What the Merkle tree needs of one entry: its digest (the leaf input, hex) as stored
/// with it, or for an entry written before digests were stored, its body to hash.
#[derive(Debug, Clone, PartialEq)]
pub enum LogLeaf {
    Digest(String),
    Body(String),
}

/// The log's entries and key.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Transparency log entries from index `from`, in order, at most `limit`.
    async fn log_entries(&self, from: i64, limit: u32) -> Result<Vec<LogRow>>;
    /// What the tree needs of the entries from index `from`, in order, at most `limit`
    /// (index and leaf): the stored digest, so a server builds its tree without reading
    /// the bodies.
    async fn log_leaves(&self, from: i64, limit: u32) -> Result<Vec<(i64, LogLeaf)>>;
    /// Stores the digests of entries written before digests were stored (index, hex
    /// digest); an entry that has one keeps it. Returns how many were filled in.
    async fn fill_log_leaves(&self, leaves: &[(i64, String)]) -> Result<u64>;
    /// How many `log_leaves` batches a reader of the whole log should ask for at once.
    /// More pays where the database works in its own processes (PostgreSQL: 1.3 s instead
    /// of 2.3–2.7 s for 10^6 entries on 2 cores); on SQLite it gains nothing and each
    /// extra connection keeps the pages it read (140 MiB more at 10^6 entries).
    fn log_read_ahead(&self) -> usize;
    /// The log's key: the stored one, or this candidate if none is stored yet (first
    /// writer wins). Returns (origin, signer key, verifier key).
    async fn ensure_log_key(
        &self,
        origin: &str,
        signer_key: &str,
        verifier_key: &str,
    ) -> Result<(String, String, String)>;
}
