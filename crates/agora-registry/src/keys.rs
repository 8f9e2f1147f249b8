//! Publisher signing keys: anyone may read them (to verify releases); members with a
//! publish right register and revoke them. Every registration and revocation is a log
//! entry that chains to the publisher's previous key event (its key history).

use agora_core::api::{AddKey, RevokeKey};
use agora_store::{KeyRecord, LogWriter, now_ms};
use agora_trust::{LogEntry, PublicKey};

use crate::Registry;
use crate::caller::Caller;
use crate::error::{RegistryError, Result, multi_line, one_line, one_line_opt, truncate};
use crate::log;

/// Longest public key accepted (an armored OpenPGP key with its signatures).
pub const MAX_PUBLIC_KEY_CHARS: usize = 65536;
/// Longest revocation reason.
pub const MAX_REASON_CHARS: usize = 1000;

/// A publisher's keys, revoked ones included (with when and why).
pub async fn list(registry: &Registry, publisher: &str) -> Result<Vec<KeyRecord>> {
    let p = crate::publishers::get(registry, publisher).await?;
    Ok(registry.meta.keys(p.id).await?)
}

/// Registers a signing key (an OpenSSH Ed25519 public key line or an armored OpenPGP key).
pub async fn add(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    request: AddKey,
) -> Result<KeyRecord> {
    // An armored OpenPGP key spans lines; its comment (an OpenSSH key's) is one line.
    multi_line("public_key", &request.public_key)?;
    let p = crate::publishers::get(registry, publisher).await?;
    caller.require_publish(&p)?;
    if request.public_key.len() > MAX_PUBLIC_KEY_CHARS {
        return Err(RegistryError::field(
            "public_key",
            "is longer than 65536 characters",
            Some("an OpenSSH public key line or an armored OpenPGP public key"),
        ));
    }
    let key = PublicKey::parse(&request.public_key).map_err(|e| {
        RegistryError::field(
            "public_key",
            e.to_string(),
            Some("an OpenSSH Ed25519 public key line (ssh-ed25519 AAAA... comment) or an armored OpenPGP public key (gpg --armor --export)"),
        )
    })?;
    one_line("public_key", key.comment())?;
    let record = KeyRecord {
        id: key.id().to_owned(),
        algorithm: key.algorithm().into(),
        public_key: key.to_openssh(),
        comment: Some(key.comment().to_owned()).filter(|c| !c.is_empty()),
        created_at: now_ms(),
        created_by: caller.user.username.clone(),
        revoked_at: None,
        revoked_by: None,
        revocation_reason: None,
        log_index: None,
        revoked_log_index: None,
    };
    let (publisher, key_id, public_key, at_ms) = (
        p.name.clone(),
        record.id.clone(),
        record.public_key.clone(),
        record.created_at,
    );
    let entry = LogWriter::new(move |context| {
        let entry = LogEntry::KeyAdded {
            publisher: publisher.clone(),
            key_id: key_id.clone(),
            public_key: public_key.clone(),
            prev: log::key_head(context),
            at_ms,
        };
        log::record(&entry, false)
    });
    let log_index = registry.meta.add_key(p.id, &record, Some(entry)).await?;
    tracing::info!(publisher = %p.name, key = %record.id, by = %caller.user.username, "key added");
    let record = KeyRecord {
        log_index,
        ..record
    };
    Ok(record)
}

/// Revokes a key: releases it signed stay, new releases signed with it are refused.
pub async fn revoke(
    registry: &Registry,
    caller: &Caller,
    publisher: &str,
    request: RevokeKey,
) -> Result<KeyRecord> {
    one_line("id", &request.id)?;
    one_line_opt("reason", request.reason.as_deref())?;
    let p = crate::publishers::get(registry, publisher).await?;
    caller.require_publish(&p)?;
    if let Some(reason) = &request.reason
        && reason.chars().count() > MAX_REASON_CHARS
    {
        return Err(RegistryError::field(
            "reason",
            "is longer than 1000 characters",
            Some("at most 1000 characters"),
        ));
    }
    let now = now_ms();
    let (publisher, key_id) = (p.name.clone(), request.id.clone());
    let entry = LogWriter::new(move |context| {
        let entry = LogEntry::KeyRevoked {
            publisher: publisher.clone(),
            key_id: key_id.clone(),
            prev: log::key_head(context),
            at_ms: now,
        };
        log::record(&entry, false)
    });
    if !registry
        .meta
        .revoke_key(
            p.id,
            &request.id,
            &caller.user.username,
            request.reason.as_deref(),
            now,
            Some(entry),
        )
        .await?
    {
        return Err(RegistryError::not_found(format!(
            "publisher {} has no active key {:?}; `agora key list {}` shows its keys",
            p.name,
            truncate(&request.id),
            p.name
        )));
    }
    let key = registry
        .meta
        .keys(p.id)
        .await?
        .into_iter()
        .find(|k| k.id == request.id);
    let key = key.ok_or_else(|| RegistryError::internal("a revoked key vanished", &request.id))?;
    tracing::info!(publisher = %p.name, key = %key.id, by = %caller.user.username, "key revoked");
    Ok(key)
}
