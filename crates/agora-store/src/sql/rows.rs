//! Decoding rows into records; every stored enum is checked on the way out.

use agora_core::manifest::ArtifactRole;
use agora_core::{Digest, Lifecycle, Visibility};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::StoreError;
use crate::metadata::*;

pub(super) const PLUGIN_COLUMNS: &str = "p.id, p.publisher_id, p.publisher, p.name, p.visibility, p.display_name, \
     p.description, p.provider, p.runtime, p.latest_version, p.downloads, p.created_at, p.updated_at, \
     p.verified, p.rating_count, p.rating_sum, p.rating_rank, p.latest_verification";

pub(super) const PUBLISHER_COLUMNS: &str =
    "id, name, display_name, created_at, verified_at, email, url";

pub(super) const REVIEW_SELECT: &str = "SELECT r.id, r.plugin_id, u.username, r.version, r.rating, r.body, \
     r.created_at, r.updated_at, r.hidden_at, r.hidden_by, r.hidden_reason FROM reviews r JOIN users u ON u.id = r.user_id";

pub(super) fn token_select(condition: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "SELECT t.id, t.user_id, u.username, t.name, t.prefix, t.scopes, t.created_at, t.expires_at, \
         t.revoked_at, t.last_used_at, t.parent_id, u.role AS user_role, u.created_at AS user_created_at \
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE {condition}"
    ))
}

pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} {value:?} in the database"))
}

pub(super) fn parse_version(s: &str) -> Result<semver::Version> {
    semver::Version::parse(s).map_err(|_| corrupt("version", s))
}

pub(super) fn parse_state(s: &str) -> Result<Lifecycle> {
    Lifecycle::parse(s).map_err(|_| corrupt("lifecycle state", s))
}

pub(super) fn parse_digest(s: &str) -> Result<Digest> {
    s.parse().map_err(|_| corrupt("digest", s))
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<UserRecord> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        parent_id: row.try_get("parent_id")?,
    })
}

pub(super) fn publisher_from_row(row: &AnyRow) -> Result<PublisherRecord> {
    Ok(PublisherRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get("created_at")?,
        verified_at: row.try_get("verified_at")?,
        email: row.try_get("email")?,
        url: row.try_get("url")?,
    })
}

pub(super) fn plugin_from_row(row: &AnyRow) -> Result<PluginRecord> {
    let visibility: String = row.try_get("visibility")?;
    Ok(PluginRecord {
        id: row.try_get("id")?,
        publisher_id: row.try_get("publisher_id")?,
        publisher: row.try_get("publisher")?,
        name: row.try_get("name")?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| corrupt("visibility", &visibility))?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        provider: row.try_get("provider")?,
        runtime: row.try_get("runtime")?,
        latest_version: row.try_get("latest_version")?,
        listed_version: None,
        listed_state: None,
        downloads: row.try_get("downloads")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        tags: Vec::new(),
        categories: Vec::new(),
        capabilities: Vec::new(),
        verified: row.try_get::<i64, _>("verified")? != 0,
        rating_count: row.try_get("rating_count")?,
        rating_sum: row.try_get("rating_sum")?,
        rating_rank: row.try_get("rating_rank")?,
        latest_verification: match row.try_get::<Option<String>, _>("latest_verification")? {
            Some(o) => Some(
                agora_core::verification::Outcome::parse(&o)
                    .ok_or_else(|| corrupt("latest_verification", &o))?,
            ),
            None => None,
        },
    })
}

pub(super) fn review_from_row(row: &AnyRow) -> Result<ReviewRecord> {
    Ok(ReviewRecord {
        id: row.try_get("id")?,
        plugin_id: row.try_get("plugin_id")?,
        username: row.try_get("username")?,
        version: row.try_get("version")?,
        rating: row.try_get("rating")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        hidden_at: row.try_get("hidden_at")?,
        hidden_by: row.try_get("hidden_by")?,
        hidden_reason: row.try_get("hidden_reason")?,
    })
}

pub(super) fn version_from_row(row: &AnyRow) -> Result<VersionRecord> {
    Ok(VersionRecord {
        id: row.try_get("id")?,
        plugin_id: row.try_get("plugin_id")?,
        version: row.try_get("version")?,
        manifest: row.try_get("manifest")?,
        manifest_digest: parse_digest(&row.try_get::<String, _>("manifest_digest")?)?,
        signature: row.try_get("signature")?,
        state: parse_state(&row.try_get::<String, _>("state")?)?,
        state_reason: row.try_get("state_reason")?,
        replacement: row.try_get("replacement")?,
        downloads: row.try_get("downloads")?,
        published_at: row.try_get("published_at")?,
        published_by: row.try_get("published_by")?,
        signer_key: row.try_get("signer_key")?,
        log_index: row.try_get("log_index")?,
    })
}

pub(super) fn artifact_from_row(row: &AnyRow) -> Result<ArtifactRecord> {
    let role: String = row.try_get("role")?;
    Ok(ArtifactRecord {
        path: row.try_get("path")?,
        role: ArtifactRole::parse(&role).ok_or_else(|| corrupt("artifact role", &role))?,
        digest: parse_digest(&row.try_get::<String, _>("digest")?)?,
        size: row.try_get("size")?,
    })
}

pub(super) fn key_from_row(row: &AnyRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        id: row.try_get("id")?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
        revocation_reason: row.try_get("revocation_reason")?,
        log_index: row.try_get("log_index")?,
        revoked_log_index: row.try_get("revoked_log_index")?,
    })
}
