//! The registry's transparency log: entries live in the metadata store (appended in the
//! same transaction as the change they record); this keeps the Merkle tree over them in
//! memory, catches up with entries other replicas appended, and signs checkpoints.

use agora_core::api::{ConsistencyProofResponse, InclusionProofResponse};
use agora_store::{
    LogContext, LogLeaf, LogRecord, LogRow, LogWriter, MetadataStore, StoreError, Viewer,
};
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
    /// The last checkpoint signed, with its tree size.
    signed: std::sync::Mutex<Option<(u64, String)>>,
}

/// Entries read from the store at a time.
const BATCH: u32 = 10_000;

/// Digests computed from bodies (entries stored before digests were), to store: index
/// and hex digest.
type Computed = Vec<(i64, String)>;

/// The entry digests of a batch of leaves that must start at index `next`, and those
/// computed from bodies.
fn digests(next: u64, batch: Vec<(i64, LogLeaf)>) -> Result<(Vec<Hash>, Computed), StoreError> {
    let mut digests = Vec::with_capacity(batch.len());
    let mut computed = Vec::new();
    for (index, leaf) in batch {
        let expected = next + digests.len() as u64;
        if index as u64 != expected {
            return Err(StoreError::Corrupt(format!(
                "log entry {index} follows entry {}",
                expected as i64 - 1
            )));
        }
        let digest = match leaf {
            LogLeaf::Digest(hex_digest) => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&hex_digest, &mut digest).map_err(|_| {
                    StoreError::Corrupt(format!("log entry {index} has a malformed digest"))
                })?;
                digest
            }
            LogLeaf::Body(body) => {
                let digest = LogEntry::leaf_of(&body);
                computed.push((index, hex::encode(digest)));
                digest
            }
        };
        digests.push(digest);
    }
    Ok((digests, computed))
}

/// The tree of every entry in the store, built at once from their stored digests (no
/// body read, `2n` hashes); digests missing from entries stored before they were kept are
/// computed from the bodies and stored, once.
async fn build(meta: &dyn MetadataStore) -> Result<MerkleLog, StoreError> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut all: Vec<Hash> = Vec::new();
    let mut filled = 0;
    // Batches read at once as the store advises, each on its own connection, handed
    // over in order. The first batch that is not full ends the build (later ones may
    // hold entries appended meanwhile, after a gap): `synced` reads the rest.
    let mut batches = futures_util::stream::iter(0..)
        .map(|k: i64| meta.log_leaves(k * i64::from(BATCH), BATCH))
        .buffered(meta.log_read_ahead().max(1));
    while let Some(batch) = batches.try_next().await? {
        let full = batch.len() == BATCH as usize;
        let (digests, computed) = digests(all.len() as u64, batch)?;
        if !computed.is_empty() {
            filled += meta.fill_log_leaves(&computed).await?;
        }
        all.extend(digests);
        if !full {
            break;
        }
    }
    if filled > 0 {
        tracing::info!(
            entries = filled,
            "stored the digests of earlier log entries"
        );
    }
    Ok(MerkleLog::from_entries(all))
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
            tree: Mutex::new(build(meta).await?),
            signed: std::sync::Mutex::new(None),
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
            let batch = meta.log_leaves(tree.size() as i64, BATCH).await?;
            if batch.is_empty() {
                return Ok(tree);
            }
            let (digests, _) = digests(tree.size(), batch)?;
            for digest in digests {
                tree.append(digest);
            }
        }
    }

    /// The checkpoint of the tree's head, signed once per head: Ed25519 signatures are
    /// deterministic, so the one made for a size is the one every request for it gets.
    fn sign(&self, tree: &MerkleLog) -> Result<String, RegistryError> {
        let head = tree.head();
        let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((size, note)) = signed.as_ref()
            && *size == head.size
        {
            return Ok(note.clone());
        }
        let note = Checkpoint {
            origin: self.origin.clone(),
            head,
        }
        .sign(&self.signer_key)
        .map_err(|e| RegistryError::internal("could not sign a checkpoint", e))?;
        *signed = Some((head.size, note.clone()));
        Ok(note)
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
        let (hashes, checkpoint, size) = {
            let tree = self.synced(meta).await?;
            let hashes = tree
                .prove_inclusion(index)
                .map_err(|e| RegistryError::field("index", e.to_string(), None))?;
            (hashes, self.sign(&tree)?, tree.size())
        };
        // The tree is free again: the entry's row is read without holding it up.
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
            checkpoint,
            index,
            size,
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
