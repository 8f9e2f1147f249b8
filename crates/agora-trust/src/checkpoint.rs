//! Checkpoints: the log's size and root hash, signed by the log's key in the C2SP
//! signed-note format (the format of Go's checksum database and of tlog-checkpoint):
//!
//! ```text
//! <origin>
//! <size>
//! <base64 root hash>
//!
//! — <key name> <base64 signature>
//! ```

use base64ct::{Base64, Encoding};
use signed_note::{Note, Signer as _, StandardSigner, StandardVerifier, VerifierList};

use crate::log::TreeHead;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("invalid log key: {0}")]
    Key(String),
    #[error("the checkpoint is not signed by the log key {0} this client trusts")]
    Unverified(String),
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
}

/// A log key pair in signed-note form: `PRIVATE+KEY+<name>+<hash>+<key>` and
/// `<name>+<hash>+<key>`. The name is the log's origin.
pub fn generate_log_key(origin: &str) -> (String, String) {
    signed_note::generate_key(&mut rand_core::OsRng, origin)
}

/// The origin (name) inside a verifier key string.
pub fn key_name(verifier_key: &str) -> &str {
    verifier_key.split('+').next().unwrap_or("")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub head: TreeHead,
}

impl Checkpoint {
    fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.head.size,
            Base64::encode_string(&self.head.root)
        )
    }

    /// The signed note for this checkpoint.
    pub fn sign(&self, signer_key: &str) -> Result<String, CheckpointError> {
        let signer =
            StandardSigner::new(signer_key).map_err(|e| CheckpointError::Key(e.to_string()))?;
        if signer.name() != self.origin {
            return Err(CheckpointError::Key(format!(
                "the key is for {}, not {}",
                signer.name(),
                self.origin
            )));
        }
        let mut note = Note::new(self.text().as_bytes(), &[])
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        note.add_sigs(&[&signer])
            .map_err(|e| CheckpointError::Key(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))
    }

    /// Verifies a signed note with `verifier_key` and reads the checkpoint in it.
    pub fn open(note: &str, verifier_key: &str) -> Result<Checkpoint, CheckpointError> {
        let verifier =
            StandardVerifier::new(verifier_key).map_err(|e| CheckpointError::Key(e.to_string()))?;
        let parsed = Note::from_bytes(note.as_bytes())
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        parsed
            .verify(&VerifierList::new(vec![Box::new(verifier)]))
            .map_err(|_| CheckpointError::Unverified(verifier_key.to_owned()))?;
        let text = std::str::from_utf8(parsed.text())
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let mut lines = text.lines();
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Malformed(
                "expected origin, size and root hash lines".into(),
            ));
        };
        if origin != key_name(verifier_key) {
            return Err(CheckpointError::Malformed(format!(
                "origin {origin} is not the key's log {}",
                key_name(verifier_key)
            )));
        }
        let size = size
            .parse()
            .map_err(|_| CheckpointError::Malformed(format!("size {size:?}")))?;
        let root = Base64::decode_vec(root)
            .map_err(|_| CheckpointError::Malformed("root hash is not base64".into()))?;
        let root = root
            .try_into()
            .map_err(|_| CheckpointError::Malformed("root hash is not 32 bytes".into()))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            head: TreeHead { size, root },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "registry.example/log".into(),
            head: TreeHead {
                size: 42,
                root: [7; 32],
            },
        }
    }

    #[test]
    fn checkpoints_round_trip_in_the_signed_note_format() {
        let (skey, vkey) = generate_log_key("registry.example/log");
        let note = checkpoint().sign(&skey).unwrap();
        assert!(note.starts_with("registry.example/log\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n— registry.example/log "), "{note}");
        assert_eq!(Checkpoint::open(&note, &vkey).unwrap(), checkpoint());
    }

    #[test]
    fn another_key_or_an_edited_note_is_refused() {
        let (skey, vkey) = generate_log_key("registry.example/log");
        let (_, other) = generate_log_key("registry.example/log");
        let note = checkpoint().sign(&skey).unwrap();
        assert!(matches!(
            Checkpoint::open(&note, &other),
            Err(CheckpointError::Unverified(_))
        ));
        let edited = note.replace("\n42\n", "\n43\n");
        assert_ne!(edited, note);
        assert!(matches!(
            Checkpoint::open(&edited, &vkey),
            Err(CheckpointError::Unverified(_))
        ));
    }

    #[test]
    fn a_key_for_another_log_cannot_sign() {
        let (skey, _) = generate_log_key("other.example/log");
        assert!(matches!(
            checkpoint().sign(&skey),
            Err(CheckpointError::Key(_))
        ));
    }
}
