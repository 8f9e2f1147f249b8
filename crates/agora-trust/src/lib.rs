//! Agora's trust chain.
//!
//! - [`keys`]: publisher signing keys. Ed25519, stored in OpenSSH's key format (so
//!   `ssh-keygen -t ed25519` keys work too), optionally passphrase-encrypted; a key's id
//!   is its OpenSSH SHA256 fingerprint.
//! - [`release`]: the signed release statement: an in-toto Statement v1 whose subjects
//!   are the manifest digest and every artifact digest, in a DSSE envelope.
//!
//! - [`log`]: the transparency log's RFC 6962 Merkle tree, inclusion and consistency
//!   proofs, and their checks on the client.
//!
//! Architecture invariant: no I/O; callers read and write the files.

pub mod checkpoint;
pub mod entry;
pub mod keys;
pub mod log;
pub mod release;

pub use checkpoint::{Checkpoint, CheckpointError, generate_log_key};
pub use entry::{EntryRef, LogEntry, OpenError, Sealed, open, seal};
pub use keys::{KeyError, PublicKey, SigningKey};
pub use log::{Frontier, LogError, MerkleLog, TreeHead, verify_consistency, verify_inclusion};
pub use release::{
    Envelope, ReleaseClaim, VerifyError, sign_release, sign_release_with, verify_release,
};
