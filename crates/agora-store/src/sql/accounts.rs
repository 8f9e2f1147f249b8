//! Users, tokens and sessions on SQL.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use super::rows::*;
use crate::metadata::*;
use crate::{StoreError, now_ms};
use agora_core::audit::AuditAction;

/// How long a revoked token stays listed (as history) before it is deleted.
const REVOKED_TOKENS_KEPT_MS: i64 = 30 * 24 * 3600 * 1000;

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_user(&self, username: &str, role: Role) -> Result<UserRecord> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, role, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(username)
        .bind(role.as_str())
        .bind(now)
        // To its end: a failed commit is an error (see the module's notes).
        .fetch_all(&self.write)
        .await
        .map_err(|e| {
            StoreError::conflict_on_unique(e, || format!("user {username} already exists"))
        })?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("a new user's id was not returned".into()))?;
        Ok(UserRecord {
            id,
            username: username.to_owned(),
            role,
            created_at: now,
        })
    }
    async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>> {
        let row = sqlx::query(
            "SELECT id, username, role, created_at, password_hash FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }
    async fn set_password(&self, user_id: i64, hash: Option<&str>, actor: &str) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING username",
        )
        .bind(hash)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user id {user_id}")))?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let action = if hash.is_some() {
            AuditAction::UserPasswordSet
        } else {
            AuditAction::UserPasswordClear
        };
        Self::audit(&mut tx, actor, action, &name, None).await?;
        tx.commit().await?;
        Ok(())
    }
    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_ms();
        // Expired sessions go when new ones come, so the table never grows without bound.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.write)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }
    async fn session(&self, id_hash: &str) -> Result<Option<(SessionRecord, UserRecord)>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.csrf, s.created_at AS session_created_at, s.expires_at, \
             u.id, u.username, u.role, u.created_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok((
                SessionRecord {
                    user_id: row.try_get("user_id")?,
                    csrf: row.try_get("csrf")?,
                    created_at: row.try_get("session_created_at")?,
                    expires_at: row.try_get("expires_at")?,
                },
                user_from_row(&row)?,
            ))
        })
        .transpose()
    }
    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row =
            sqlx::query("SELECT id, username, role, created_at FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows =
            sqlx::query("SELECT id, username, role, created_at FROM users ORDER BY username")
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(user_from_row).collect()
    }
    async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        let now = now_ms();
        // Tokens revoked long ago go when new ones come, so creating and revoking in a loop
        // cannot grow the table. (A token's descendants are revoked no later than it is,
        // so none outlives its parent's row.)
        sqlx::query(
            "DELETE FROM tokens WHERE user_id = $1 AND revoked_at IS NOT NULL AND revoked_at < $2",
        )
        .bind(token.user_id)
        .bind(now - REVOKED_TOKENS_KEPT_MS)
        .execute(&self.write)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (user_id, name, hash, prefix, scopes, created_at, expires_at, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.hash)
        .bind(&token.prefix)
        .bind(&token.scopes)
        .bind(now)
        .bind(token.expires_at)
        .bind(token.parent_id)
        // To its end: a failed commit is an error (see the module's notes).
        .fetch_all(&self.write)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, || "token already exists".into()))?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("a new token's id was not returned".into()))?;
        let row = sqlx::query(token_select("t.id = $1"))
            .bind(id)
            .fetch_one(&self.write)
            .await?;
        token_from_row(&row)
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenRecord, UserRecord)>> {
        let Some(row) = sqlx::query(token_select("t.hash = $1"))
            .bind(hash)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let user = UserRecord {
            id: token.user_id,
            username: token.username.clone(),
            role: Role::parse(&row.try_get::<String, _>("user_role")?)
                .ok_or_else(|| StoreError::Corrupt("unknown user role".into()))?,
            created_at: row.try_get("user_created_at")?,
        };
        Ok(Some((token, user)))
    }
    async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenRecord>> {
        let rows = match user_id {
            Some(uid) => {
                sqlx::query(token_select("t.user_id = $1 ORDER BY t.id"))
                    .bind(uid)
                    .fetch_all(&self.read)
                    .await?
            }
            None => {
                sqlx::query(token_select("1 = 1 ORDER BY t.id"))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }
    async fn revoke_token(&self, id: i64, owner: Option<i64>, at: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let result = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             AND ($3 = 0 OR user_id = $4)",
        )
        .bind(at)
        .bind(id)
        .bind(i64::from(owner.is_some()))
        .bind(owner.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        // What it minted, and what those minted: a child never outlives its parent.
        sqlx::query(
            "WITH RECURSIVE minted (id) AS ( \
                SELECT id FROM tokens WHERE parent_id = $1 \
                UNION SELECT t.id FROM tokens t JOIN minted m ON t.parent_id = m.id) \
             UPDATE tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND id IN (SELECT id FROM minted)",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
    async fn touch_token(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
