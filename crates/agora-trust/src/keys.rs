//! Ed25519 publisher keys in OpenSSH format.

use ed25519_dalek::{Signer, Verifier};
use ssh_key::{Algorithm, HashAlg, LineEnding};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an OpenSSH key: {0}")]
    Invalid(String),
    #[error(
        "the key is {0}; Agora signs with Ed25519 keys (make one with `agora keygen` or `ssh-keygen -t ed25519`)"
    )]
    NotEd25519(String),
    #[error("the key is protected by a passphrase; give the passphrase")]
    PassphraseRequired,
    #[error("wrong passphrase for this key")]
    WrongPassphrase,
    #[error("could not encode the key: {0}")]
    Encoding(String),
}

/// A public key of a publisher: Ed25519 (OpenSSH format) or OpenPGP (armored, as
/// `gpg --armor --export` writes it).
#[derive(Clone, Debug)]
pub struct PublicKey {
    kind: KeyKind,
    id: String,
}

#[derive(Clone, Debug)]
enum KeyKind {
    Ed25519 {
        key: ed25519_dalek::VerifyingKey,
        openssh: Box<ssh_key::PublicKey>,
    },
    OpenPgp {
        key: Box<pgp::composed::SignedPublicKey>,
        armored: String,
        user: String,
    },
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.to_text() == other.to_text()
    }
}

impl Eq for PublicKey {}

const PGP_PUBLIC_BLOCK: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

impl PublicKey {
    fn from_ssh(openssh: ssh_key::PublicKey) -> Result<PublicKey, KeyError> {
        let Some(raw) = openssh.key_data().ed25519() else {
            return Err(KeyError::NotEd25519(openssh.algorithm().to_string()));
        };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&raw.0)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let id = openssh.fingerprint(HashAlg::Sha256).to_string();
        Ok(PublicKey {
            kind: KeyKind::Ed25519 {
                key,
                openssh: Box::new(openssh),
            },
            id,
        })
    }

    /// Parses an OpenSSH public key line: `ssh-ed25519 AAAA... comment`.
    pub fn from_openssh(line: &str) -> Result<PublicKey, KeyError> {
        let parsed = ssh_key::PublicKey::from_openssh(line.trim())
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::from_ssh(parsed)
    }

    /// Parses an armored OpenPGP public key; its id is the primary key's fingerprint (hex).
    pub fn from_openpgp(armored: &str) -> Result<PublicKey, KeyError> {
        use pgp::composed::Deserializable;
        use pgp::types::KeyDetails;
        let (key, _) = pgp::composed::SignedPublicKey::from_string(armored.trim())
            .map_err(|e| KeyError::Invalid(format!("not an armored OpenPGP public key: {e}")))?;
        key.verify_bindings().map_err(|e| {
            KeyError::Invalid(format!(
                "the OpenPGP key's self-signatures do not verify: {e}"
            ))
        })?;
        let id = hex::encode_upper(key.fingerprint().as_bytes());
        let user = key
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .unwrap_or_default();
        Ok(PublicKey {
            kind: KeyKind::OpenPgp {
                key: Box::new(key),
                armored: armored.trim().to_owned(),
                user,
            },
            id,
        })
    }

    /// Parses either kind of key from its text form.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        if text.trim_start().starts_with(PGP_PUBLIC_BLOCK) {
            Self::from_openpgp(text)
        } else {
            Self::from_openssh(text)
        }
    }

    /// `ed25519` or `openpgp`.
    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            KeyKind::Ed25519 { .. } => "ed25519",
            KeyKind::OpenPgp { .. } => "openpgp",
        }
    }

    /// The key's text form: an OpenSSH line or an armored OpenPGP block.
    pub fn to_text(&self) -> String {
        match &self.kind {
            KeyKind::Ed25519 { openssh, .. } => openssh.to_openssh().unwrap_or_default(),
            KeyKind::OpenPgp { armored, .. } => armored.clone(),
        }
    }

    /// The OpenSSH public key line (for an OpenPGP key: its armored block).
    pub fn to_openssh(&self) -> String {
        self.to_text()
    }

    /// The key's id: for Ed25519 its OpenSSH SHA256 fingerprint (as `ssh-keygen -lf`
    /// shows it), for OpenPGP its fingerprint in hex (as `gpg --fingerprint` shows it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The OpenSSH comment, or the OpenPGP key's first user id.
    pub fn comment(&self) -> &str {
        match &self.kind {
            KeyKind::Ed25519 { openssh, .. } => openssh.comment(),
            KeyKind::OpenPgp { user, .. } => user,
        }
    }

    /// Checks a signature over `message`: 64 raw bytes for Ed25519, a binary OpenPGP
    /// detached signature (by the primary key or a subkey) for OpenPGP.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.kind {
            KeyKind::Ed25519 { key, .. } => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                    return false;
                };
                key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .is_ok()
            }
            KeyKind::OpenPgp { key, .. } => {
                use pgp::composed::Deserializable;
                let Ok(sig) = pgp::composed::DetachedSignature::from_bytes(signature) else {
                    return false;
                };
                sig.signature.verify(&key.primary_key, message).is_ok()
                    || key
                        .public_subkeys
                        .iter()
                        .any(|sub| sig.signature.verify(&sub.key, message).is_ok())
            }
        }
    }
}

/// A publisher's private signing key.
pub struct SigningKey {
    openssh: ssh_key::PrivateKey,
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(comment: &str) -> Result<SigningKey, KeyError> {
        let mut openssh = ssh_key::PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        openssh.set_comment(comment);
        Self::from_ssh(openssh)
    }

    fn from_ssh(openssh: ssh_key::PrivateKey) -> Result<SigningKey, KeyError> {
        let Some(pair) = openssh.key_data().ed25519() else {
            return Err(KeyError::NotEd25519(openssh.algorithm().to_string()));
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&pair.private.to_bytes());
        let public = PublicKey::from_ssh(openssh.public_key().clone())?;
        Ok(SigningKey {
            openssh,
            key,
            public,
        })
    }

    /// Reads an OpenSSH private key, decrypting it with `passphrase` when it is encrypted.
    pub fn from_openssh(text: &str, passphrase: Option<&str>) -> Result<SigningKey, KeyError> {
        let parsed = ssh_key::PrivateKey::from_openssh(text.trim())
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let parsed = if parsed.is_encrypted() {
            let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
            parsed
                .decrypt(passphrase)
                .map_err(|_| KeyError::WrongPassphrase)?
        } else {
            parsed
        };
        Self::from_ssh(parsed)
    }

    /// The key in OpenSSH format, encrypted with `passphrase` when one is given.
    pub fn to_openssh(&self, passphrase: Option<&str>) -> Result<Zeroizing<String>, KeyError> {
        let encoded = match passphrase {
            Some(p) => self
                .openssh
                .encrypt(&mut rand_core::OsRng, p)
                .and_then(|k| k.to_openssh(LineEnding::LF)),
            None => self.openssh.to_openssh(LineEnding::LF),
        };
        encoded.map_err(|e| KeyError::Encoding(e.to_string()))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_and_without_a_passphrase() {
        let key = SigningKey::generate("alice@acme").unwrap();
        let plain = key.to_openssh(None).unwrap();
        let back = SigningKey::from_openssh(&plain, None).unwrap();
        assert_eq!(back.public(), key.public());
        let sealed = key.to_openssh(Some("correct horse")).unwrap();
        assert!(matches!(
            SigningKey::from_openssh(&sealed, None),
            Err(KeyError::PassphraseRequired)
        ));
        assert!(matches!(
            SigningKey::from_openssh(&sealed, Some("wrong")),
            Err(KeyError::WrongPassphrase)
        ));
        let opened = SigningKey::from_openssh(&sealed, Some("correct horse")).unwrap();
        assert_eq!(opened.public().id(), key.public().id());
    }

    #[test]
    fn public_keys_have_openssh_fingerprints_as_ids() {
        let key = SigningKey::generate("ci").unwrap();
        let line = key.public().to_openssh();
        assert!(
            line.starts_with("ssh-ed25519 ") && line.ends_with(" ci"),
            "{line}"
        );
        let parsed = PublicKey::from_openssh(&line).unwrap();
        assert!(parsed.id().starts_with("SHA256:"));
        assert_eq!(parsed.id(), key.public().id());
    }

    #[test]
    fn signatures_verify_only_for_the_signed_bytes_and_key() {
        let key = SigningKey::generate("").unwrap();
        let other = SigningKey::generate("").unwrap();
        let sig = key.sign(b"release");
        assert!(key.public().verify(b"release", &sig));
        assert!(!key.public().verify(b"releasE", &sig));
        assert!(!other.public().verify(b"release", &sig));
        assert!(!key.public().verify(b"release", &sig[..63]));
    }

    #[test]
    fn other_algorithms_and_garbage_are_refused_by_name() {
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDC8 user";
        assert!(PublicKey::from_openssh(rsa).is_err());
        assert!(matches!(
            PublicKey::from_openssh("not a key"),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(
            SigningKey::from_openssh("-----BEGIN NOTHING-----", None),
            Err(KeyError::Invalid(_))
        ));
    }
}

#[cfg(test)]
mod interoperability {
    use super::*;

    /// Keys made by OpenSSH's own `ssh-keygen`, with a passphrase, load and sign.
    #[test]
    fn ssh_keygen_keys_load_with_their_passphrase() {
        let dir = std::env::temp_dir().join(format!("agora-trust-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "s3cret phrase",
                "-C",
                "ci@acme",
                "-f",
            ])
            .arg(&path)
            .status()
            .expect("ssh-keygen (openssh-client) is needed for this test");
        assert!(status.success());
        let private = std::fs::read_to_string(&path).unwrap();
        let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).unwrap();
        assert!(matches!(
            SigningKey::from_openssh(&private, Some("nope")),
            Err(KeyError::WrongPassphrase)
        ));
        let key = SigningKey::from_openssh(&private, Some("s3cret phrase")).unwrap();
        let registered = PublicKey::from_openssh(&public).unwrap();
        assert_eq!(registered.id(), key.public().id());
        assert_eq!(registered.comment(), "ci@acme");
        assert!(registered.verify(b"x", &key.sign(b"x")));
        let fingerprint = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dir.join("id_ed25519.pub"))
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&fingerprint.stdout);
        assert!(
            shown.contains(registered.id()),
            "ids are OpenSSH fingerprints: {shown}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
