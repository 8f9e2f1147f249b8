//! Publishing a release: upload every file the registry does not have yet (streamed,
//! hashed), sign the release statement, and submit it. What `agora publish` and the
//! benchmarks both run.

use agora_core::api::{ArtifactRef, PublishRequest, PublishResponse};

use crate::api::{Client, ClientError};
use crate::bundle::{ReleaseFile, ReleaseFiles};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("uploading {path}: {source}")]
    Upload { path: String, source: ClientError },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Gpg(#[from] crate::gpg::GpgError),
}

/// How a release is signed.
pub enum Signer<'a> {
    /// An Ed25519 (OpenSSH) key in hand.
    Key(&'a agora_trust::SigningKey),
    /// A GnuPG key, by id, fingerprint or e-mail, signed through the `gpg` program.
    Gpg(&'a str),
}

impl Signer<'_> {
    pub fn sign(&self, release: &ReleaseFiles) -> Result<agora_trust::Envelope, PublishError> {
        Ok(match self {
            Signer::Key(key) => agora_trust::sign_release(&release.claim(), key),
            Signer::Gpg(id) => crate::gpg::sign(&release.claim(), id)?,
        })
    }
}

/// The files of `release` the registry does not have yet (asked with `HEAD`).
pub async fn missing<'r>(
    client: &Client,
    release: &'r ReleaseFiles,
) -> Result<Vec<&'r ReleaseFile>, ClientError> {
    let mut missing = Vec::new();
    for f in &release.files {
        if !client.has_blob(&f.digest).await? {
            missing.push(f);
        }
    }
    Ok(missing)
}

/// Uploads `files`, reporting each file's name as it starts and every chunk's size sent.
pub async fn upload(
    client: &Client,
    files: &[&ReleaseFile],
    on_file: impl Fn(&str),
    progress: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> Result<(), PublishError> {
    for f in files {
        on_file(&f.path);
        client
            .upload_blob(&f.digest, &f.source, f.size, progress.clone())
            .await
            .map_err(|source| PublishError::Upload {
                path: f.path.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Submits a release whose files are all uploaded, with its signature.
pub async fn submit(
    client: &Client,
    release: &ReleaseFiles,
    signature: &agora_trust::Envelope,
) -> Result<PublishResponse, PublishError> {
    let plugin = release.manifest.plugin_ref();
    let request = PublishRequest {
        manifest: release.manifest_text.clone(),
        artifacts: release
            .files
            .iter()
            .map(|f| ArtifactRef {
                path: f.path.clone(),
                digest: f.digest,
                size: f.size,
            })
            .collect(),
        signature: Some(serde_json::to_value(signature).expect("an envelope always serializes")),
    };
    Ok(client
        .publish(plugin.publisher.as_str(), plugin.name.as_str(), &request)
        .await?)
}
