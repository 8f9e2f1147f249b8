//! What the transparency log records: every accepted release, every key registration and
//! revocation, every lifecycle and visibility change, every verification verdict, as canonical JSON whose sha256 is
//! the Merkle leaf.
//!
//! Two properties are built into the entries themselves:
//!
//! - **Key history is a hash chain.** Each key event names the publisher's previous key
//!   event (`prev`: its index and leaf hash), and each release names the key event that
//!   was the head when the registry accepted it (`key_head`). A client that checks a
//!   release walks the chain back from that head, so a registry cannot hide a revocation
//!   that came before the release: the release commits to it.
//! - **Private entries are sealed.** An entry about a private plugin is logged as
//!   `{"kind":"sealed","commitment":...}`: a hash of a random nonce and the entry in clear.
//!   The log stays publicly verifiable (every leaf is still a hash of public bytes), the
//!   sealed entry names nothing, and readers who may see the plugin get the opening (nonce
//!   and entry) and check it against the commitment.

use agora_core::Digest;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::log::Hash;

/// A reference to another entry: its index and its leaf hash (sha256 of its body, hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRef {
    pub index: u64,
    pub leaf: String,
}

impl EntryRef {
    /// Whether `body` is the entry this refers to.
    pub fn matches(&self, body: &str) -> bool {
        hex::encode(LogEntry::leaf_of(body)) == self.leaf
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum LogEntry {
    #[serde(rename = "release")]
    Release {
        publisher: String,
        name: String,
        version: String,
        manifest_digest: Digest,
        /// sha256 of the signature envelope as stored.
        envelope_digest: Digest,
        signer_key: String,
        /// The publisher's newest key event when the release was accepted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_head: Option<EntryRef>,
        at_ms: i64,
    },
    #[serde(rename = "key.add")]
    KeyAdded {
        publisher: String,
        key_id: String,
        public_key: String,
        /// The publisher's previous key event; none for its first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev: Option<EntryRef>,
        at_ms: i64,
    },
    #[serde(rename = "key.revoke")]
    KeyRevoked {
        publisher: String,
        key_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev: Option<EntryRef>,
        at_ms: i64,
    },
    /// A version's lifecycle state changed (deprecated, insecure, yanked, removed, active).
    #[serde(rename = "lifecycle")]
    Lifecycle {
        publisher: String,
        name: String,
        version: String,
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        at_ms: i64,
    },
    /// A plugin became public or private.
    #[serde(rename = "visibility")]
    Visibility {
        publisher: String,
        name: String,
        visibility: String,
        at_ms: i64,
    },
    /// A verification's verdict on a release: the pipeline's outcome, or an
    /// administrator's review (`reviewer`). The report it concluded from is committed to
    /// by digest, so a verdict and its findings cannot be changed later unseen.
    #[serde(rename = "verification")]
    Verification {
        publisher: String,
        name: String,
        version: String,
        /// `verified`, `needs-review` or `rejected`.
        outcome: String,
        /// sha256 of the report as served (`VerificationReport` JSON).
        report_digest: Digest,
        findings: agora_core::verification::SeverityCounts,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reviewer: Option<String>,
        at_ms: i64,
    },
    /// A tenant's approved set changed: a plugin approved, its pin moved (by an
    /// administrator, automatically, or back), or removed. Always sealed, since it names
    /// the tenant; the tenant's members and instances get the opening.
    #[serde(rename = "approval")]
    Approval {
        tenant: String,
        publisher: String,
        name: String,
        /// `approve`, `update`, `auto-update`, `rollback` or `remove`.
        action: String,
        /// The version and manifest digest pinned (none after a removal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest_digest: Option<Digest>,
        /// What the approval grants.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reach: Option<agora_core::tenant::Reach>,
        /// The administrator (or `auto-update`).
        by: String,
        at_ms: i64,
    },
    /// An entry about a private plugin, committed to without naming it (see [`seal`]).
    #[serde(rename = "sealed")]
    Sealed { commitment: Digest },
}

impl LogEntry {
    /// The entry's canonical bytes (field order is the struct's; no whitespace).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("log entries always serialize")
    }

    pub fn parse(body: &str) -> Result<LogEntry, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The Merkle leaf input of an entry body: its sha256.
    pub fn leaf_of(body: &str) -> Hash {
        sha2::Sha256::digest(body.as_bytes()).into()
    }

    /// The publisher an entry is about (none for a sealed entry).
    pub fn publisher(&self) -> Option<&str> {
        match self {
            LogEntry::Release { publisher, .. }
            | LogEntry::KeyAdded { publisher, .. }
            | LogEntry::KeyRevoked { publisher, .. }
            | LogEntry::Lifecycle { publisher, .. }
            | LogEntry::Visibility { publisher, .. }
            | LogEntry::Verification { publisher, .. } => Some(publisher),
            LogEntry::Approval { .. } | LogEntry::Sealed { .. } => None,
        }
    }

    /// For a key event, the previous key event of its publisher.
    pub fn key_prev(&self) -> Option<Option<&EntryRef>> {
        match self {
            LogEntry::KeyAdded { prev, .. } | LogEntry::KeyRevoked { prev, .. } => {
                Some(prev.as_ref())
            }
            _ => None,
        }
    }
}

/// A sealed entry: the body that goes into the log and the opening kept for readers who
/// may see what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub body: String,
    pub opening: String,
}

/// What a reader who may see a sealed entry receives: the nonce and the entry in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Opening {
    /// 32 random bytes, hex: without them the commitment cannot be confirmed by guessing
    /// the (low-entropy) entry.
    nonce: String,
    entry: String,
}

const SEAL_DOMAIN: &[u8] = b"agora-log-seal/v1\0";

fn commitment(nonce: &[u8], entry: &str) -> Digest {
    let mut h = sha2::Sha256::new();
    h.update(SEAL_DOMAIN);
    h.update(nonce);
    h.update(entry.as_bytes());
    let bytes: [u8; 32] = h.finalize().into();
    Digest::from_bytes(bytes)
}

/// Seals an entry body with a fresh random nonce.
pub fn seal(entry: &str) -> Sealed {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    seal_with(entry, &nonce)
}

fn seal_with(entry: &str, nonce: &[u8; 32]) -> Sealed {
    let body = LogEntry::Sealed {
        commitment: commitment(nonce, entry),
    }
    .to_json();
    let opening = serde_json::to_string(&Opening {
        nonce: hex::encode(nonce),
        entry: entry.to_owned(),
    })
    .expect("openings always serialize");
    Sealed { body, opening }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the entry is not sealed")]
    NotSealed,
    #[error("the opening is malformed")]
    Malformed,
    #[error("the opening does not match the entry's commitment")]
    Mismatch,
}

/// Checks `opening` against the sealed entry `body` and returns the entry in clear.
pub fn open(body: &str, opening: &str) -> Result<String, OpenError> {
    let Ok(LogEntry::Sealed { commitment: sealed }) = LogEntry::parse(body) else {
        return Err(OpenError::NotSealed);
    };
    let opening: Opening = serde_json::from_str(opening).map_err(|_| OpenError::Malformed)?;
    let nonce = hex::decode(&opening.nonce).map_err(|_| OpenError::Malformed)?;
    if nonce.len() != 32 {
        return Err(OpenError::Malformed);
    }
    if commitment(&nonce, &opening.entry) != sealed {
        return Err(OpenError::Mismatch);
    }
    Ok(opening.entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_their_leaf_is_the_hash_of_the_exact_bytes() {
        let e = LogEntry::KeyRevoked {
            publisher: "acme".into(),
            key_id: "SHA256:x".into(),
            prev: None,
            at_ms: 5,
        };
        let body = e.to_json();
        assert_eq!(
            body,
            r#"{"kind":"key.revoke","publisher":"acme","key_id":"SHA256:x","at_ms":5}"#
        );
        assert_eq!(LogEntry::parse(&body).unwrap(), e);
        assert_ne!(
            LogEntry::leaf_of(&body),
            LogEntry::leaf_of(&body.replace("acme", "evil"))
        );
        assert!(LogEntry::parse(r#"{"kind":"release"}"#).is_err());
    }

    #[test]
    fn key_events_chain_to_their_predecessor() {
        let first = LogEntry::KeyAdded {
            publisher: "acme".into(),
            key_id: "SHA256:a".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            prev: None,
            at_ms: 1,
        }
        .to_json();
        let prev = EntryRef {
            index: 4,
            leaf: hex::encode(LogEntry::leaf_of(&first)),
        };
        assert!(prev.matches(&first));
        assert!(!prev.matches(&first.replace("SHA256:a", "SHA256:b")));
        let second = LogEntry::KeyRevoked {
            publisher: "acme".into(),
            key_id: "SHA256:a".into(),
            prev: Some(prev.clone()),
            at_ms: 2,
        };
        let parsed = LogEntry::parse(&second.to_json()).unwrap();
        assert_eq!(parsed.key_prev(), Some(Some(&prev)));
        assert_eq!(parsed.publisher(), Some("acme"));
    }

    #[test]
    fn a_sealed_entry_names_nothing_and_opens_only_with_its_opening() {
        let entry = LogEntry::Release {
            publisher: "acme".into(),
            name: "secret-sauce".into(),
            version: "1.0.0".into(),
            manifest_digest: Digest::of(b"m"),
            envelope_digest: Digest::of(b"e"),
            signer_key: "SHA256:k".into(),
            key_head: None,
            at_ms: 7,
        }
        .to_json();
        let sealed = seal(&entry);
        assert!(!sealed.body.contains("acme") && !sealed.body.contains("secret"));
        assert!(matches!(
            LogEntry::parse(&sealed.body),
            Ok(LogEntry::Sealed { .. })
        ));
        assert_eq!(open(&sealed.body, &sealed.opening).unwrap(), entry);
        // Two seals of the same entry differ (fresh nonce): equal entries are not linkable.
        assert_ne!(seal(&entry).body, sealed.body);
        // Another entry, or another nonce, does not open it.
        let other = seal_with(&entry.replace("1.0.0", "2.0.0"), &[7; 32]);
        assert_eq!(open(&sealed.body, &other.opening), Err(OpenError::Mismatch));
        assert_eq!(open(&sealed.body, "{}"), Err(OpenError::Malformed));
        assert_eq!(open(&entry, &sealed.opening), Err(OpenError::NotSealed));
    }
}
