//! The client's side of the transparency log: the registry's log key is pinned (on first
//! use, or given), every installed release must be provably in the log, and the log must
//! be consistent with the last checkpoint this client saw of that registry, so a registry
//! can neither show different histories to different clients nor roll a plugin back.

use std::path::Path;

use futures_util::{StreamExt as _, TryStreamExt as _};

use agora_core::Digest;
use agora_core::api::{InclusionProofResponse, VersionDetail};
use agora_trust::log::Hash;
use agora_trust::{Checkpoint, EntryRef, LogEntry, TreeHead, verify_consistency, verify_inclusion};
use serde::{Deserialize, Serialize};

use crate::api::{Client, ClientError};

#[derive(Debug, thiserror::Error)]
pub enum LogCheckError {
    #[error("{0} is not in the registry's transparency log; nothing was installed")]
    NotLogged(String),
    #[error(
        "the registry's checkpoint is not signed by the log key pinned for it ({pinned}); if the registry really changed its key, re-pin with --repin-log-key; nothing was installed"
    )]
    KeyChanged { pinned: String },
    #[error("{label}: {source}; nothing was installed")]
    Proof {
        label: String,
        source: agora_trust::LogError,
    },
    #[error(
        "{label}: its log entry does not describe this release ({what}); nothing was installed"
    )]
    EntryMismatch { label: String, what: String },
    #[error("{label}: {what}; nothing was installed")]
    KeyHistory { label: String, what: String },
    #[error("the registry's log answer is malformed: {0}")]
    Malformed(String),
    /// What a monitor found wrong with the log as a whole.
    #[error("the registry's log: {0}")]
    Log(agora_trust::LogError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot keep the log state in {path}: {source}")]
    State {
        path: String,
        source: std::io::Error,
    },
}

/// What this client remembers of one registry's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    pub verifier_key: String,
    pub size: u64,
    /// Hex root hash at `size`.
    pub root: String,
}

/// Reads a client state file (JSON); `None` when there is none yet.
pub(crate) fn load_state<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, LogCheckError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LogCheckError::Malformed(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LogCheckError::State {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes a client state file atomically (temporary file, fsync, rename).
pub(crate) fn save_state<T: Serialize>(path: &Path, state: &T) -> Result<(), LogCheckError> {
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer_pretty(temp.as_file(), state).map_err(std::io::Error::other)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|source| LogCheckError::State {
        path: path.display().to_string(),
        source,
    })
}

impl LogState {
    pub fn load(path: &Path) -> Result<Option<LogState>, LogCheckError> {
        load_state(path)
    }

    pub fn save(&self, path: &Path) -> Result<(), LogCheckError> {
        save_state(path, self)
    }

    fn head(&self) -> Result<TreeHead, LogCheckError> {
        let root = hex::decode(&self.root).ok().and_then(|r| r.try_into().ok());
        let root = root.ok_or_else(|| LogCheckError::Malformed("stored root hash".into()))?;
        Ok(TreeHead {
            size: self.size,
            root,
        })
    }
}

fn hashes(hex_hashes: &[String]) -> Result<Vec<Hash>, LogCheckError> {
    hex_hashes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| LogCheckError::Malformed("proof hash".into()))
        })
        .collect()
}

/// How the log key is chosen.
#[derive(Debug, Clone, Default)]
pub struct Pinning {
    /// A key given by configuration: always used, never replaced.
    pub configured_key: Option<String>,
    /// Accept the registry's current key, replacing the pinned one.
    pub repin: bool,
}

/// Most key events followed back from a release; a longer chain is refused as malformed.
const MAX_KEY_EVENTS: usize = 10_000;

/// The entry body of an inclusion proof in clear: a sealed entry (about a private
/// plugin) is opened with the opening the registry gave, which must match its commitment.
fn clear_entry(proof: &InclusionProofResponse, label: &str) -> Result<String, LogCheckError> {
    match LogEntry::parse(&proof.entry) {
        Ok(LogEntry::Sealed { .. }) => {
            let opening = proof
                .opening
                .as_deref()
                .ok_or_else(|| LogCheckError::EntryMismatch {
                    label: label.to_owned(),
                    what: "the entry is sealed and the registry gave no opening".into(),
                })?;
            agora_trust::open(&proof.entry, opening).map_err(|e| LogCheckError::EntryMismatch {
                label: label.to_owned(),
                what: format!("its sealed entry does not open: {e}"),
            })
        }
        _ => Ok(proof.entry.clone()),
    }
}

/// How often the two consistency proofs are asked for before a log that keeps growing
/// between them is reported.
const CONSISTENCY_ATTEMPTS: u32 = 5;

/// Checks that `detail` (whose signature was verified by `signer`) is in the registry's
/// log, consistent with what this client saw before, and that `signer` was a registered,
/// unrevoked key of the publisher by the log's own key history; updates the state at
/// `state_path`. Returns the release's log index. One release's [`LogSession`].
pub async fn verify_logged(
    client: &Client,
    state_path: &Path,
    pinning: &Pinning,
    detail: &VersionDetail,
    signer: &str,
) -> Result<u64, LogCheckError> {
    let session = LogSession::open(client, state_path, pinning).await?;
    let index = session.check_release(client, detail, signer).await?;
    session.finish(client).await?;
    Ok(index)
}

/// Most distinct tree heads one session's proofs may lead to (the log grows while an
/// install reads it, so a few differ; each costs a consistency proof at the end).
const MAX_HEADS: usize = 64;

/// Consistency proofs asked for at once.
const PARALLEL_PROOFS: usize = 8;

/// Most inclusion proofs one session keeps to answer again (key events shared by the
/// releases of one publisher); past it, proofs are fetched each time they are needed.
const MAX_KEPT_PROOFS: usize = 4096;

/// One install's checks against the registry's log, however many releases it holds: the
/// pinned key and the checkpoint seen before are read once; each release's inclusion is
/// proven ([`LogSession::check_release`], concurrently if the caller likes), the key events
/// that releases of one publisher share are fetched once; and [`LogSession::finish`]
/// proves once that the current log extends the checkpoint seen before and every tree head
/// a proof led to, then records the newest. Until `finish` succeeds, nothing checked in
/// the session may be installed.
pub struct LogSession {
    state_path: std::path::PathBuf,
    key: String,
    /// The head this client saw before under this key (none on first use or a re-pin).
    seen: Option<TreeHead>,
    /// Every distinct head an inclusion proof of this session led to.
    heads: std::sync::Mutex<Vec<TreeHead>>,
    proofs: crate::once_map::OnceMap<u64, InclusionProofResponse>,
}

impl LogSession {
    /// Reads the state at `state_path` and settles the log key: configured, pinned, or
    /// (on first use or a re-pin) the registry's own.
    pub async fn open(
        client: &Client,
        state_path: &Path,
        pinning: &Pinning,
    ) -> Result<LogSession, LogCheckError> {
        let stored = LogState::load(state_path)?;
        let key = match (&pinning.configured_key, &stored) {
            (Some(k), _) => k.clone(),
            (None, Some(s)) if !pinning.repin => s.verifier_key.clone(),
            _ => client.log_key().await?.verifier_key,
        };
        let seen = match stored.filter(|s| s.verifier_key == key && !pinning.repin) {
            Some(s) => Some(s.head()?),
            None => None,
        };
        Ok(LogSession {
            state_path: state_path.to_owned(),
            key,
            seen,
            heads: std::sync::Mutex::new(Vec::new()),
            proofs: crate::once_map::OnceMap::new(MAX_KEPT_PROOFS),
        })
    }

    fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, LogCheckError> {
        Checkpoint::open(note, &self.key).map_err(|_| LogCheckError::KeyChanged {
            pinned: self.key.clone(),
        })
    }

    /// Entry `index` proven included in the head its checkpoint names; the head is
    /// recorded for [`LogSession::finish`].
    async fn proven(
        &self,
        client: &Client,
        index: u64,
        label: &str,
    ) -> Result<InclusionProofResponse, LogCheckError> {
        self.proofs
            .get_or_try_init(index, || async {
                let proof = client.log_inclusion(index).await?;
                let head = self.open_checkpoint(&proof.checkpoint)?.head;
                verify_inclusion(
                    &head,
                    &LogEntry::leaf_of(&proof.entry),
                    index,
                    &hashes(&proof.hashes)?,
                )
                .map_err(|source| LogCheckError::Proof {
                    label: label.to_owned(),
                    source,
                })?;
                if let Some(seen) = self.seen
                    && seen.size > head.size
                {
                    return Err(LogCheckError::Proof {
                        label: label.to_owned(),
                        source: agora_trust::LogError::Shrank {
                            old: seen.size,
                            new: head.size,
                        },
                    });
                }
                let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
                if !heads.contains(&head) {
                    if heads.len() == MAX_HEADS {
                        return Err(LogCheckError::Malformed(format!(
                            "the registry's proofs named more than {MAX_HEADS} different log heads in one install; try again"
                        )));
                    }
                    heads.push(head);
                }
                Ok::<_, LogCheckError>(proof)
            })
            .await
    }

    /// Checks that `detail` (whose signature was verified by `signer`) is in the log, and
    /// that `signer` was a registered, unrevoked key of the publisher by the log's own key
    /// history. Returns the release's log index.
    pub async fn check_release(
        &self,
        client: &Client,
        detail: &VersionDetail,
        signer: &str,
    ) -> Result<u64, LogCheckError> {
        let label = format!("{}/{}@{}", detail.publisher, detail.name, detail.version);
        let index = detail
            .log_index
            .ok_or_else(|| LogCheckError::NotLogged(label.clone()))?;
        let inclusion = self.proven(client, index, &label).await?;
        let entry = clear_entry(&inclusion, &label)?;
        let key_head =
            check_entry(&entry, detail, signer).map_err(|what| LogCheckError::EntryMismatch {
                label: label.clone(),
                what,
            })?;
        check_signer_history(self, client, detail, signer, key_head, index, &label).await?;
        Ok(index)
    }

    /// Proves that the current log extends the head seen before and every head this
    /// session's proofs led to, and that those answers describe one tree; records it in the
    /// state file. A session that checked nothing changes nothing.
    pub async fn finish(self, client: &Client) -> Result<(), LogCheckError> {
        let mut heads = std::mem::take(&mut *self.heads.lock().unwrap_or_else(|e| e.into_inner()));
        if heads.is_empty() {
            return Ok(());
        }
        if let Some(seen) = self.seen
            && !heads.contains(&seen)
        {
            heads.push(seen);
        }
        let proof_error = |source| LogCheckError::Proof {
            label: "the registry's log".into(),
            source,
        };
        let newest = match heads.as_slice() {
            // First use, one head: nothing to be consistent with yet.
            [only] if self.seen.is_none() => *only,
            _ => {
                // The log grows while it is read (every publish and every verification
                // verdict appends), so answers that name different current heads are
                // asked for again, a few times, before giving up.
                let mut attempt = 0;
                loop {
                    let answers: Vec<_> = futures_util::stream::iter(
                        heads.iter().map(|head| client.log_consistency(head.size)),
                    )
                    .buffered(PARALLEL_PROOFS)
                    .try_collect()
                    .await?;
                    let mut now = Vec::with_capacity(answers.len());
                    for (head, answer) in heads.iter().zip(&answers) {
                        let current = self.open_checkpoint(&answer.checkpoint)?.head;
                        verify_consistency(head, &current, &hashes(&answer.hashes)?)
                            .map_err(proof_error)?;
                        now.push(current);
                    }
                    if now.windows(2).all(|w| w[0] == w[1]) {
                        break now[0];
                    }
                    attempt += 1;
                    if attempt == CONSISTENCY_ATTEMPTS {
                        return Err(LogCheckError::Malformed(
                            "the log kept changing while it was being checked; try again".into(),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
            }
        };
        LogState {
            verifier_key: self.key,
            size: newest.size,
            root: hex::encode(newest.root),
        }
        .save(&self.state_path)
    }
}

/// The entry must be the release entry of exactly this release and signature; returns
/// the key history head it names.
fn check_entry(
    body: &str,
    detail: &VersionDetail,
    signer: &str,
) -> Result<Option<EntryRef>, String> {
    let entry = LogEntry::parse(body).map_err(|e| format!("unreadable entry: {e}"))?;
    let LogEntry::Release {
        publisher,
        name,
        version,
        manifest_digest,
        envelope_digest,
        signer_key,
        key_head,
        ..
    } = entry
    else {
        return Err("the entry is not a release".into());
    };
    let served_envelope = detail
        .signature
        .as_ref()
        .map(|s| Digest::of(s.to_string().as_bytes()));
    let checks = [
        (
            publisher == detail.publisher && name == detail.name && version == detail.version,
            "another release",
        ),
        (
            manifest_digest == detail.manifest_digest,
            "another manifest",
        ),
        (
            Some(envelope_digest) == served_envelope,
            "another signature",
        ),
        (signer_key == signer, "another signer"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err((*what).to_owned()),
        None => Ok(key_head),
    }
}

/// The signing key, as the log's own key history records it. The release's entry names
/// the head of its publisher's key history when it was accepted; each key event names the
/// one before. Walking that chain back (every entry proven in the log, every link checked
/// by hash) yields every key event before the release, whatever the registry's key list
/// says: the signer must be registered there with this very key, and not revoked.
async fn check_signer_history(
    session: &LogSession,
    client: &Client,
    detail: &VersionDetail,
    signer: &str,
    key_head: Option<EntryRef>,
    index: u64,
    label: &str,
) -> Result<(), LogCheckError> {
    let history = |what: String| LogCheckError::KeyHistory {
        label: label.to_owned(),
        what,
    };
    let mut next = key_head.ok_or_else(|| {
        history(format!(
            "the release's log entry names no key history of {} (it was logged before key \
             histories were recorded, so its signing key's revocations cannot be checked; \
             a new release can be)",
            detail.publisher
        ))
    })?;
    let (mut added, mut revoked) = (None, None);
    let mut later = index;
    for _ in 0..MAX_KEY_EVENTS {
        if next.index >= later {
            return Err(history(format!(
                "the key history points forward (entry {} from entry {later})",
                next.index
            )));
        }
        let proof = session.proven(client, next.index, label).await?;
        if !next.matches(&proof.entry) {
            return Err(history(format!(
                "log entry {} is not the key event the history names",
                next.index
            )));
        }
        let prev = match LogEntry::parse(&proof.entry) {
            Ok(LogEntry::KeyAdded {
                publisher,
                key_id,
                public_key,
                prev,
                ..
            }) if publisher == detail.publisher => {
                if key_id == signer
                    && agora_trust::PublicKey::parse(&public_key).is_ok_and(|k| k.id() == signer)
                {
                    added = Some(next.index);
                }
                prev
            }
            Ok(LogEntry::KeyRevoked {
                publisher,
                key_id,
                prev,
                ..
            }) if publisher == detail.publisher => {
                if key_id == signer {
                    revoked = Some(next.index);
                }
                prev
            }
            _ => {
                return Err(history(format!(
                    "log entry {} is not a key event of {}",
                    next.index, detail.publisher
                )));
            }
        };
        later = next.index;
        match prev {
            Some(p) => next = p,
            None => {
                return match (added, revoked) {
                    (_, Some(r)) => Err(history(format!(
                        "key {signer} was revoked in the log (entry {r}) before this release (entry {index})"
                    ))),
                    (Some(_), None) => Ok(()),
                    (None, None) => Err(history(format!(
                        "key {signer} is not registered in {}'s key history before this release (entry {index})",
                        detail.publisher
                    ))),
                };
            }
        }
    }
    Err(history(format!(
        "the key history is longer than {MAX_KEY_EVENTS} events"
    )))
}
