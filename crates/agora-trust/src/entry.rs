//! What the transparency log records: every accepted release and every key registration
//! and revocation, as canonical JSON whose sha256 is the Merkle leaf.

use agora_core::Digest;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::log::Hash;

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
        at_ms: i64,
    },
    #[serde(rename = "key.add")]
    KeyAdded {
        publisher: String,
        key_id: String,
        public_key: String,
        at_ms: i64,
    },
    #[serde(rename = "key.revoke")]
    KeyRevoked {
        publisher: String,
        key_id: String,
        at_ms: i64,
    },
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_their_leaf_is_the_hash_of_the_exact_bytes() {
        let e = LogEntry::KeyRevoked {
            publisher: "acme".into(),
            key_id: "SHA256:x".into(),
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
}
