//! The registry's transparency log: entries live in the metadata store (appended in the
//! same transaction as the change they record); this keeps the Merkle tree over them in
//! memory, catches up with entries other replicas appended, and signs checkpoints.

use agora_core::api::{ConsistencyProofResponse, InclusionProofResponse};
use agora_store::{LogContext, LogRecord, LogRow, LogWriter, MetadataStore, StoreError, Viewer};
use agora_trust::log::Hash;
use agora_trust::{Checkpoint, EntryRef, LogEntry, MerkleLog};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::RegistryError;

/// The stored form of an entry: in clear, or sealed when it is about a private plugin
/// (the log then commits to it without naming it; see `agora_trust::entry`).
pub fn record(entry: &LogEntry, private: bool) -> LogRecord {
    let clear = entry.to_json();
    let (body, opening) = if private {
        let sealed = agora_trust::seal(&clear);
        (sealed.body, Some(sealed.opening))
    } else {
        (clear, None)
    };
    LogRecord {
        leaf: hex::encode(LogEntry::leaf_of(&body)),
        body,
        opening,
    }
}

/// The publisher's key head as an entry reference.
pub fn key_head(context: &LogContext) -> Option<EntryRef> {
    context.key_head.as_ref().map(|(index, leaf)| EntryRef {
        index: *index as u64,
        leaf: leaf.clone(),
    })
}

/// A writer for an entry that does not depend on the key history (lifecycle, visibility).
pub fn writer(entry: LogEntry) -> LogWriter {
    LogWriter::new(move |context: &LogContext| record(&entry, context.private))
}

/// A sealed entry's opening, for a viewer who may see the plugin it is about (admins see
/// every plugin); `None` for entries in clear and for everyone else.
pub async fn opening(
    meta: &dyn MetadataStore,
    viewer: &Viewer,
    row: &LogRow,
) -> Result<Option<String>, StoreError> {
    let Some(opening) = &row.opening else {
        return Ok(None);
    };
    let may = viewer.admin
        || match row.plugin_id {
            Some(id) => meta.plugin_visible_to(id, viewer).await?,
            None => false,
        };
    Ok(may.then(|| opening.clone()))
}

pub struct TransparencyLog {
    origin: String,
    signer_key: String,
    verifier_key: String,
    tree: Mutex<MerkleLog>,
}

fn hex_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

impl TransparencyLog {
    /// Loads (or on first start creates) the log key, and builds the tree.
    pub async fn open(
        meta: &dyn MetadataStore,
        origin: &str,
    ) -> Result<TransparencyLog, StoreError> {
        let (skey, vkey) = agora_trust::generate_log_key(origin);
        let (origin, signer_key, verifier_key) = meta.ensure_log_key(origin, &skey, &vkey).await?;
        let log = TransparencyLog {
            origin,
            signer_key,
            verifier_key,
            tree: Mutex::new(MerkleLog::new()),
        };
        drop(log.synced(meta).await?);
        Ok(log)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// The tree, caught up with every entry in the store, locked for a consistent answer.
    async fn synced(
        &self,
        meta: &dyn MetadataStore,
    ) -> Result<MutexGuard<'_, MerkleLog>, StoreError> {
        let mut tree = self.tree.lock().await;
        loop {
            let batch = meta.log_entries(tree.size() as i64, 10_000).await?;
            if batch.is_empty() {
                return Ok(tree);
            }
            for row in batch {
                if row.index as u64 != tree.size() {
                    return Err(StoreError::Corrupt(format!(
                        "log entry {} follows entry {}",
                        row.index,
                        tree.size() as i64 - 1
                    )));
                }
                tree.append(LogEntry::leaf_of(&row.body));
            }
        }
    }

    fn sign(&self, tree: &MerkleLog) -> Result<String, RegistryError> {
        Checkpoint {
            origin: self.origin.clone(),
            head: tree.head(),
        }
        .sign(&self.signer_key)
        .map_err(|e| RegistryError::internal("could not sign a checkpoint", e))
    }

    /// The tree's size and root, caught up with the store.
    pub async fn head(
        &self,
        meta: &dyn MetadataStore,
    ) -> Result<agora_trust::TreeHead, StoreError> {
        Ok(self.synced(meta).await?.head())
    }

    pub async fn checkpoint(&self, meta: &dyn MetadataStore) -> Result<String, RegistryError> {
        let tree = self.synced(meta).await?;
        self.sign(&tree)
    }

    /// Proves entry `index` is in the log; a sealed entry comes with its opening when
    /// `viewer` may see the plugin it is about.
    pub async fn prove_inclusion(
        &self,
        meta: &dyn MetadataStore,
        index: u64,
        viewer: &Viewer,
    ) -> Result<InclusionProofResponse, RegistryError> {
        let tree = self.synced(meta).await?;
        let hashes = tree
            .prove_inclusion(index)
            .map_err(|e| RegistryError::field("index", e.to_string(), None))?;
        let row = meta
            .log_entries(index as i64, 1)
            .await?
            .pop()
            .filter(|r| r.index as u64 == index)
            .ok_or_else(|| {
                RegistryError::internal("a log entry is missing from the store", index)
            })?;
        let opening = opening(meta, viewer, &row).await?;
        Ok(InclusionProofResponse {
            checkpoint: self.sign(&tree)?,
            index,
            size: tree.size(),
            entry: row.body,
            opening,
            hashes: hex_all(&hashes),
        })
    }

    pub async fn prove_consistency(
        &self,
        meta: &dyn MetadataStore,
        from: u64,
    ) -> Result<ConsistencyProofResponse, RegistryError> {
        let tree = self.synced(meta).await?;
        let hashes = tree
            .prove_consistency(from)
            .map_err(|e| RegistryError::field("from", e.to_string(), None))?;
        Ok(ConsistencyProofResponse {
            checkpoint: self.sign(&tree)?,
            from,
            size: tree.size(),
            hashes: hex_all(&hashes),
        })
    }
}
