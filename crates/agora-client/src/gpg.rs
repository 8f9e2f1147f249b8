//! Signing a release through GnuPG (`gpg --detach-sign` over the DSSE pre-authentication
//! encoding), for publishers whose keys live in a GnuPG keyring or on a smart card.

use std::io::Write as _;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GpgError {
    #[error("cannot run gpg ({0}); install GnuPG to sign with --gpg")]
    Run(std::io::Error),
    #[error("gpg knows no key {key:?}: {detail}")]
    UnknownKey { key: String, detail: String },
    #[error("gpg could not sign with {key}: {detail}")]
    Sign { key: String, detail: String },
}

/// The fingerprint of a GnuPG key, as `gpg --fingerprint` knows it.
pub fn fingerprint(keyid: &str) -> Result<String, GpgError> {
    let out = Command::new("gpg")
        .args(["--batch", "--with-colons", "--fingerprint", keyid])
        .output()
        .map_err(GpgError::Run)?;
    let unknown = |detail: String| GpgError::UnknownKey {
        key: keyid.to_owned(),
        detail,
    };
    if !out.status.success() {
        return Err(unknown(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .and_then(|rest| rest.split(':').nth(8))
                .map(str::to_owned)
        })
        .ok_or_else(|| unknown("it printed no fingerprint".into()))
}

/// Signs a release with the GnuPG key `keyid`; the envelope names the key's fingerprint.
pub fn sign(
    claim: &agora_trust::ReleaseClaim,
    keyid: &str,
) -> Result<agora_trust::Envelope, GpgError> {
    let fingerprint = fingerprint(keyid)?;
    let failed = |detail: String| GpgError::Sign {
        key: keyid.to_owned(),
        detail,
    };
    agora_trust::sign_release_with(claim, &fingerprint, |pae| {
        let mut child = Command::new("gpg")
            .args([
                "--batch",
                "--yes",
                "--local-user",
                keyid,
                "--detach-sign",
                "--output",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(GpgError::Run)?;
        child
            .stdin
            .take()
            .ok_or_else(|| failed("gpg has no standard input".into()))?
            .write_all(pae)
            .map_err(|e| failed(e.to_string()))?;
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(out.stdout)
    })
}
