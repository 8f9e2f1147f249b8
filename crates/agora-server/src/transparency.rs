//! The registry's transparency log: entries live in the metadata store (appended in the
//! same transaction as the change they record); this keeps the Merkle tree over them in
//! memory, catches up with entries other replicas appended, and signs checkpoints.

use agora_core::api::{ConsistencyProofResponse, InclusionProofResponse};
use agora_store::{MetadataStore, StoreError};
use agora_trust::log::Hash;
use agora_trust::{Checkpoint, LogEntry, MerkleLog};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::ApiError;

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
            for (idx, body) in batch {
                if idx as u64 != tree.size() {
                    return Err(StoreError::Corrupt(format!(
                        "log entry {idx} follows entry {}",
                        tree.size() as i64 - 1
                    )));
                }
                tree.append(LogEntry::leaf_of(&body));
            }
        }
    }

    fn sign(&self, tree: &MerkleLog) -> Result<String, ApiError> {
        Checkpoint {
            origin: self.origin.clone(),
            head: tree.head(),
        }
        .sign(&self.signer_key)
        .map_err(|e| ApiError::internal("could not sign a checkpoint", e))
    }

    pub async fn checkpoint(&self, meta: &dyn MetadataStore) -> Result<String, ApiError> {
        let tree = self.synced(meta).await?;
        self.sign(&tree)
    }

    pub async fn prove_inclusion(
        &self,
        meta: &dyn MetadataStore,
        index: u64,
    ) -> Result<InclusionProofResponse, ApiError> {
        let tree = self.synced(meta).await?;
        let hashes = tree
            .prove_inclusion(index)
            .map_err(|e| ApiError::field("index", e.to_string(), None))?;
        let entry = meta
            .log_entries(index as i64, 1)
            .await?
            .pop()
            .filter(|(i, _)| *i as u64 == index)
            .map(|(_, body)| body)
            .ok_or_else(|| ApiError::internal("a log entry is missing from the store", index))?;
        Ok(InclusionProofResponse {
            checkpoint: self.sign(&tree)?,
            index,
            size: tree.size(),
            entry,
            hashes: hex_all(&hashes),
        })
    }

    pub async fn prove_consistency(
        &self,
        meta: &dyn MetadataStore,
        from: u64,
    ) -> Result<ConsistencyProofResponse, ApiError> {
        let tree = self.synced(meta).await?;
        let hashes = tree
            .prove_consistency(from)
            .map_err(|e| ApiError::field("from", e.to_string(), None))?;
        Ok(ConsistencyProofResponse {
            checkpoint: self.sign(&tree)?,
            from,
            size: tree.size(),
            hashes: hex_all(&hashes),
        })
    }
}
