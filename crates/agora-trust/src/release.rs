//! The signed release statement: an in-toto Statement v1 naming every file of a release
//! by digest, wrapped in a DSSE envelope and signed with a publisher key.
//!
//! Specs: in-toto Statement v1 (`https://in-toto.io/Statement/v1`) and DSSE v1, whose
//! signature covers the pre-authentication encoding (PAE) of payload type and payload.

use std::collections::BTreeMap;

use agora_core::Digest;
use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, SigningKey};

/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// What the statement claims: "this is the release PUBLISHER/NAME@VERSION".
pub const PREDICATE_TYPE: &str = "urn:agora:release:v1";
/// Largest envelope accepted, in bytes of JSON.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Base64 of the statement's JSON.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signing key's id (OpenSSH SHA256 fingerprint).
    pub keyid: String,
    /// Base64 of the Ed25519 signature over the PAE.
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: ReleasePredicate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReleasePredicate {
    publisher: String,
    name: String,
    version: String,
}

/// What a release statement says: which plugin version consists of which files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseClaim {
    pub publisher: String,
    pub name: String,
    pub version: String,
    /// Every file of the release, `plugin.yaml` included, by path and digest.
    pub files: BTreeMap<String, Digest>,
}

impl ReleaseClaim {
    /// The claim over one release, made the same way by the publisher who signs it, the
    /// registry that checks it on publish and the client that checks it on install: the
    /// manifest by the digest of its exact bytes under `plugin.yaml`, and every other file
    /// by path and digest. (A `plugin.yaml` among `files` is replaced by `manifest`.)
    pub fn new(
        publisher: impl Into<String>,
        name: impl Into<String>,
        version: impl Into<String>,
        manifest: Digest,
        files: impl IntoIterator<Item = (String, Digest)>,
    ) -> ReleaseClaim {
        let mut files: BTreeMap<String, Digest> = files.into_iter().collect();
        files.insert(agora_core::manifest::MANIFEST_FILE.to_owned(), manifest);
        ReleaseClaim {
            publisher: publisher.into(),
            name: name.into(),
            version: version.into(),
            files,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature envelope is malformed: {0}")]
    Malformed(String),
    #[error("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    #[error("the envelope carries {0:?}, not an in-toto statement ({PAYLOAD_TYPE})")]
    PayloadType(String),
    #[error(
        "no signature is by a key of this publisher (signed by: {signed_by}; publisher keys: {known})"
    )]
    UnknownKey { signed_by: String, known: String },
    #[error(
        "the signature by key {0} does not verify: the statement was altered or signed with another key"
    )]
    BadSignature(String),
    #[error("the signed statement does not match this release: {0}")]
    Mismatch(String),
}

/// DSSE's pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn statement_of(claim: &ReleaseClaim) -> Statement {
    Statement {
        kind: STATEMENT_TYPE.into(),
        subject: claim
            .files
            .iter()
            .map(|(path, digest)| Subject {
                name: path.clone(),
                digest: BTreeMap::from([("sha256".to_owned(), digest.hex())]),
            })
            .collect(),
        predicate_type: PREDICATE_TYPE.into(),
        predicate: ReleasePredicate {
            publisher: claim.publisher.clone(),
            name: claim.name.clone(),
            version: claim.version.clone(),
        },
    }
}

/// Signs a release claim with `key`.
pub fn sign_release(claim: &ReleaseClaim, key: &SigningKey) -> Envelope {
    let signed: Result<Envelope, std::convert::Infallible> =
        sign_release_with(claim, key.public().id(), |pae| Ok(key.sign(pae).to_vec()));
    match signed {
        Ok(envelope) => envelope,
        Err(never) => match never {},
    }
}

/// Signs a release claim with an outside signer (e.g. `gpg --detach-sign`), which gets the
/// DSSE pre-authentication encoding to sign; `keyid` names the key it uses.
pub fn sign_release_with<E>(
    claim: &ReleaseClaim,
    keyid: &str,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Envelope, E> {
    let payload = serde_json::to_vec(&statement_of(claim)).expect("a statement always serializes");
    let sig = sign(&pae(PAYLOAD_TYPE, &payload))?;
    Ok(Envelope {
        payload: Base64::encode_string(&payload),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![EnvelopeSignature {
            keyid: keyid.to_owned(),
            sig: Base64::encode_string(&sig),
        }],
    })
}

/// Checks that `envelope` is signed by one of `keys` and states exactly `expected`.
/// Returns the id of the key whose signature verified.
pub fn verify_release(
    envelope: &Envelope,
    keys: &[PublicKey],
    expected: &ReleaseClaim,
) -> Result<String, VerifyError> {
    if envelope.payload.len() > MAX_ENVELOPE_BYTES {
        return Err(VerifyError::TooLarge);
    }
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType(
            envelope.payload_type.chars().take(80).collect(),
        ));
    }
    let payload = Base64::decode_vec(&envelope.payload)
        .map_err(|_| VerifyError::Malformed("payload is not base64".into()))?;
    let message = pae(PAYLOAD_TYPE, &payload);
    let mut signer = None;
    for s in &envelope.signatures {
        let Some(key) = keys.iter().find(|k| k.id() == s.keyid) else {
            continue;
        };
        let sig = Base64::decode_vec(&s.sig).map_err(|_| {
            VerifyError::Malformed(format!("signature by {} is not base64", s.keyid))
        })?;
        if !key.verify(&message, &sig) {
            return Err(VerifyError::BadSignature(s.keyid.clone()));
        }
        signer = Some(key.id().to_owned());
        break;
    }
    let Some(signer) = signer else {
        let list = |ids: Vec<&str>| {
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        };
        return Err(VerifyError::UnknownKey {
            signed_by: list(
                envelope
                    .signatures
                    .iter()
                    .map(|s| s.keyid.as_str())
                    .collect(),
            ),
            known: list(keys.iter().map(PublicKey::id).collect()),
        });
    };
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| VerifyError::Malformed(format!("statement is not valid JSON: {e}")))?;
    let wanted = statement_of(expected);
    if statement.kind != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(VerifyError::Mismatch(format!(
            "statement type {} / predicate {}",
            statement.kind, statement.predicate_type
        )));
    }
    if statement.predicate != wanted.predicate {
        let p = &statement.predicate;
        return Err(VerifyError::Mismatch(format!(
            "it is for {}/{}@{}",
            p.publisher, p.name, p.version
        )));
    }
    let mut got = statement.subject.clone();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    if got != wanted.subject {
        let differing = wanted
            .subject
            .iter()
            .filter(|w| !got.contains(w))
            .map(|w| w.name.as_str())
            .chain(
                got.iter()
                    .filter(|g| !wanted.subject.contains(g))
                    .map(|g| g.name.as_str()),
            )
            .collect::<std::collections::BTreeSet<_>>();
        return Err(VerifyError::Mismatch(format!(
            "files differ from what was signed: {}",
            differing.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> ReleaseClaim {
        ReleaseClaim {
            publisher: "acme".into(),
            name: "jira".into(),
            version: "1.2.0".into(),
            files: BTreeMap::from([
                ("plugin.yaml".into(), Digest::of(b"manifest")),
                ("plugin.wasm".into(), Digest::of(b"module")),
            ]),
        }
    }

    #[test]
    fn pae_follows_the_dsse_spec() {
        // The example from the DSSE v1 protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_signed_release_verifies_with_the_publisher_key() {
        let key = SigningKey::generate("alice").unwrap();
        let envelope = sign_release(&claim(), &key);
        assert_eq!(
            verify_release(&envelope, &[key.public().clone()], &claim()),
            Ok(key.public().id().to_owned())
        );
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(json.contains("\"payloadType\":\"application/vnd.in-toto+json\""));
    }

    #[test]
    fn another_publishers_key_is_refused_naming_both() {
        let key = SigningKey::generate("mallory").unwrap();
        let publisher = SigningKey::generate("alice").unwrap();
        let err = verify_release(
            &sign_release(&claim(), &key),
            &[publisher.public().clone()],
            &claim(),
        )
        .unwrap_err();
        let VerifyError::UnknownKey { signed_by, known } = err else {
            panic!("{err}")
        };
        assert_eq!(
            (signed_by.as_str(), known.as_str()),
            (key.public().id(), publisher.public().id())
        );
    }

    #[test]
    fn any_change_to_the_statement_breaks_the_signature() {
        let key = SigningKey::generate("alice").unwrap();
        let mut envelope = sign_release(&claim(), &key);
        let mut other = claim();
        other
            .files
            .insert("plugin.wasm".into(), Digest::of(b"evil"));
        envelope.payload =
            Base64::encode_string(&serde_json::to_vec(&statement_of(&other)).unwrap());
        let err = verify_release(&envelope, &[key.public().clone()], &other).unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature(_)), "{err}");
    }

    #[test]
    fn a_valid_signature_over_different_files_or_version_is_a_mismatch() {
        let key = SigningKey::generate("alice").unwrap();
        let envelope = sign_release(&claim(), &key);
        let mut tampered = claim();
        tampered
            .files
            .insert("plugin.wasm".into(), Digest::of(b"swapped"));
        let err = verify_release(&envelope, &[key.public().clone()], &tampered).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Mismatch("files differ from what was signed: plugin.wasm".into())
        );
        let mut later = claim();
        later.version = "1.3.0".into();
        let err = verify_release(&envelope, &[key.public().clone()], &later).unwrap_err();
        assert!(err.to_string().contains("acme/jira@1.2.0"), "{err}");
        let mut extra = claim();
        extra
            .files
            .insert("README.md".into(), Digest::of(b"readme"));
        assert!(matches!(
            verify_release(&envelope, &[key.public().clone()], &extra),
            Err(VerifyError::Mismatch(_))
        ));
    }

    #[test]
    fn malformed_envelopes_are_named() {
        let key = SigningKey::generate("alice").unwrap();
        let mut envelope = sign_release(&claim(), &key);
        envelope.payload_type = "text/plain".into();
        assert!(matches!(
            verify_release(&envelope, &[key.public().clone()], &claim()),
            Err(VerifyError::PayloadType(_))
        ));
        let mut envelope = sign_release(&claim(), &key);
        envelope.signatures[0].sig = "!!!".into();
        assert!(matches!(
            verify_release(&envelope, &[key.public().clone()], &claim()),
            Err(VerifyError::Malformed(_))
        ));
        let mut envelope = sign_release(&claim(), &key);
        envelope.signatures.clear();
        assert!(matches!(
            verify_release(&envelope, &[key.public().clone()], &claim()),
            Err(VerifyError::UnknownKey { .. })
        ));
    }
}
