//! Publisher signing keys: anyone may read them (to verify releases); members with a
//! publish right add and revoke them.

use agora_core::api::{AddKey, PublisherKey, RevokeKey};
use agora_store::{KeyRecord, LogWriter, now_ms};
use agora_trust::{LogEntry, PublicKey};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::publishers::{publisher_or_404, valid_name};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::time::rfc3339;
use crate::transparency;

pub fn key_view(k: KeyRecord) -> PublisherKey {
    PublisherKey {
        id: k.id,
        algorithm: k.algorithm,
        public_key: k.public_key,
        comment: k.comment,
        created_at: rfc3339(k.created_at),
        created_by: k.created_by,
        revoked_at: k.revoked_at.map(rfc3339),
        revoked_by: k.revoked_by,
        revocation_reason: k.revocation_reason,
        log_index: k.log_index.map(|i| i as u64),
        revoked_log_index: k.revoked_log_index.map(|i| i as u64),
    }
}

/// A publisher's keys, revoked ones included (with when and why).
#[utoipa::path(get, path = "/api/v1/publishers/{publisher}/keys", tag = "publishers",
    params(("publisher" = String, Path)),
    responses((status = 200, body = Vec<PublisherKey>), (status = 404, body = agora_core::api::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<PublisherKey>>, ApiError> {
    let p = publisher_or_404(&state, valid_name(&name)?.as_str()).await?;
    Ok(Json(
        state
            .meta
            .keys(p.id)
            .await?
            .into_iter()
            .map(key_view)
            .collect(),
    ))
}

/// Register a signing key (an OpenSSH Ed25519 public key line).
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/keys", tag = "publishers",
    params(("publisher" = String, Path)), request_body = AddKey, security(("token" = [])),
    responses(
        (status = 201, body = PublisherKey),
        (status = 403, body = agora_core::api::Problem),
        (status = 409, description = "The key is registered already", body = agora_core::api::Problem),
        (status = 422, body = agora_core::api::Problem)
    ))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AddKey>,
) -> Result<(StatusCode, Json<PublisherKey>), ApiError> {
    let p = publisher_or_404(&state, valid_name(&name)?.as_str()).await?;
    caller.require_publish(&p)?;
    if request.public_key.len() > 65536 {
        return Err(ApiError::field(
            "public_key",
            "is longer than 65536 characters",
            Some("an OpenSSH public key line or an armored OpenPGP public key"),
        ));
    }
    let key = PublicKey::parse(&request.public_key).map_err(|e| {
        ApiError::field(
            "public_key",
            e.to_string(),
            Some("an OpenSSH Ed25519 public key line (ssh-ed25519 AAAA... comment) or an armored OpenPGP public key (gpg --armor --export)"),
        )
    })?;
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
            prev: transparency::key_head(context),
            at_ms,
        };
        transparency::record(&entry, false)
    });
    let log_index = state.meta.add_key(p.id, &record, Some(entry)).await?;
    tracing::info!(publisher = %p.name, key = %record.id, by = %caller.user.username, "key added");
    let record = KeyRecord {
        log_index,
        ..record
    };
    Ok((StatusCode::CREATED, Json(key_view(record))))
}

/// Revoke a key: releases it signed stay, new releases signed with it are refused.
#[utoipa::path(post, path = "/api/v1/publishers/{publisher}/keys/revoke", tag = "publishers",
    params(("publisher" = String, Path)), request_body = RevokeKey, security(("token" = [])),
    responses((status = 200, body = PublisherKey), (status = 403, body = agora_core::api::Problem), (status = 404, body = agora_core::api::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<RevokeKey>,
) -> Result<Json<PublisherKey>, ApiError> {
    let p = publisher_or_404(&state, valid_name(&name)?.as_str()).await?;
    caller.require_publish(&p)?;
    if let Some(reason) = &request.reason
        && reason.chars().count() > 1000
    {
        return Err(ApiError::field(
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
            prev: transparency::key_head(context),
            at_ms: now,
        };
        transparency::record(&entry, false)
    });
    if !state
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
        return Err(ApiError::not_found(format!(
            "publisher {} has no active key {:?}; `agora key list {}` shows its keys",
            p.name,
            crate::extract::truncate(&request.id),
            p.name
        )));
    }
    let key = state
        .meta
        .keys(p.id)
        .await?
        .into_iter()
        .find(|k| k.id == request.id);
    let key = key.ok_or_else(|| ApiError::internal("a revoked key vanished", &request.id))?;
    tracing::info!(publisher = %p.name, key = %key.id, by = %caller.user.username, "key revoked");
    Ok(Json(key_view(key)))
}
