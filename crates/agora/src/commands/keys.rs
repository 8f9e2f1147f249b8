//! `keygen`, `key add|list|revoke`, and loading the key `publish` signs with.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use agora_trust::{PublicKey, SigningKey};
use anyhow::Context;

use super::Session;
use crate::cli::{KeyArgs, KeyCommand};

/// Where `keygen` writes and `publish` looks when no key is named.
pub fn default_key_path() -> anyhow::Result<PathBuf> {
    let dir = dirs::config_dir()
        .context("cannot find your configuration directory (set XDG_CONFIG_HOME or HOME)")?;
    Ok(dir.join("agora").join("keys").join("agora_ed25519"))
}

/// The passphrase from `--passphrase-file`, else `AGORA_KEY_PASSPHRASE`, else none.
fn passphrase(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the passphrase file {}", f.display()))?;
        let line = text.lines().next().unwrap_or("").to_owned();
        anyhow::ensure!(
            !line.is_empty(),
            "the passphrase file {} is empty",
            f.display()
        );
        return Ok(Some(line));
    }
    Ok(std::env::var("AGORA_KEY_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty()))
}

fn write_new(path: &Path, contents: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() {
            format!(
                "{} exists already; pass --force to replace it",
                path.display()
            )
        } else {
            format!("cannot write {}", path.display())
        }
    })?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

pub fn keygen(
    s: &Session,
    out: Option<PathBuf>,
    passphrase_file: Option<&Path>,
    force: bool,
) -> anyhow::Result<()> {
    let path = match out {
        Some(p) => p,
        None => default_key_path()?,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let pass = passphrase(passphrase_file)?;
    let comment = format!("agora key {}", std::env::var("USER").unwrap_or_default())
        .trim()
        .to_owned();
    let key = SigningKey::generate(&comment)?;
    let private = key.to_openssh(pass.as_deref())?;
    let public_path = PathBuf::from(format!("{}.pub", path.display()));
    write_new(&path, private.as_bytes(), 0o600, force)?;
    write_new(
        &public_path,
        format!("{}\n", key.public().to_openssh()).as_bytes(),
        0o644,
        force,
    )?;
    let summary = serde_json::json!({
        "private_key": path, "public_key": public_path, "id": key.public().id(), "encrypted": pass.is_some(),
    });
    s.out.show(&summary, |_| {
        format!(
            "Wrote {} (mode 0600{}) and {}\nKey id: {}\nRegister it: agora key add PUBLISHER {}",
            path.display(),
            if pass.is_some() {
                ", passphrase-encrypted"
            } else {
                ""
            },
            public_path.display(),
            key.public().id(),
            public_path.display()
        )
    })
}

/// The key `publish` signs with.
pub fn signing_key(args: &KeyArgs) -> anyhow::Result<SigningKey> {
    let path = match &args.key {
        Some(p) => p.clone(),
        None => {
            let default = default_key_path()?;
            anyhow::ensure!(
                default.exists(),
                "releases are signed: pass --key KEY (or set AGORA_SIGNING_KEY); make a key with `agora keygen` and register it with `agora key add PUBLISHER KEY.pub`"
            );
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    let pass = passphrase(args.passphrase_file.as_deref())?;
    SigningKey::from_openssh(&text, pass.as_deref()).with_context(|| {
        format!("cannot use the signing key {} (a passphrase comes from --passphrase-file or AGORA_KEY_PASSPHRASE)", path.display())
    })
}

/// Reads a public key from FILE: an OpenSSH public key line, or a private key whose
/// public half is taken (never uploaded).
fn public_key_from(file: &Path) -> anyhow::Result<PublicKey> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if text.contains("PRIVATE KEY") {
        anyhow::bail!(
            "{} is a private key; register only its public half (agora_ed25519.pub, or gpg --armor --export KEYID)",
            file.display()
        );
    }
    PublicKey::parse(&text).with_context(|| {
        format!(
            "{} is not an OpenSSH Ed25519 public key nor an armored OpenPGP public key",
            file.display()
        )
    })
}

pub async fn key(s: &Session, cmd: KeyCommand) -> anyhow::Result<()> {
    let client = s.client()?;
    match cmd {
        KeyCommand::Add { publisher, file } => {
            let key = public_key_from(&file)?;
            let added = client.add_key(&publisher, &key.to_openssh()).await?;
            s.out.show(&added, |k| {
                format!("Registered key {} for {publisher}", k.id)
            })
        }
        KeyCommand::List { publisher } => {
            let keys = client.keys(&publisher).await?;
            s.out.show(&keys, |keys| {
                if keys.is_empty() {
                    return format!("{publisher} has no keys; register one with `agora key add {publisher} KEY.pub`");
                }
                keys.iter()
                    .map(|k| {
                        let state = match &k.revoked_at {
                            Some(at) => format!("revoked {at}{}", k.revocation_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()),
                            None => "active".into(),
                        };
                        format!("{}  {}  added {} by {}  {}", k.id, k.algorithm, k.created_at, k.created_by, state)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        KeyCommand::Revoke {
            publisher,
            id,
            reason,
        } => {
            let key = client
                .revoke_key(&publisher, &id, reason.as_deref())
                .await?;
            s.out
                .show(&key, |k| format!("Revoked key {} of {publisher}", k.id))
        }
    }
}
