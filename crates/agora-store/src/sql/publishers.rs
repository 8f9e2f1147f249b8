//! Publishers, members, invitations and keys on SQL. Membership changes lock the
//! publisher's row, so a publisher can never lose its last owner to two concurrent changes.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::rows::*;
use super::{Dialect, SqlStore};
use crate::metadata::*;
use crate::{StoreError, now_ms};
use agora_core::audit::AuditAction;

impl SqlStore {
    /// Locks a publisher's row for a membership change (PostgreSQL; SQLite has one writer),
    /// so two concurrent demotions cannot both see the other owner; returns its name.
    pub(super) async fn lock_publisher(
        &self,
        tx: &mut Transaction<'static, Any>,
        publisher_id: i64,
    ) -> Result<String> {
        let sql = match self.dialect {
            Dialect::Postgres => "SELECT name FROM publishers WHERE id = $1 FOR UPDATE",
            Dialect::Sqlite => "SELECT name FROM publishers WHERE id = $1",
        };
        sqlx::query_scalar(sql)
            .bind(publisher_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("publisher id {publisher_id}")))
    }
    /// Refuses a membership change that leaves the publisher without an owner.
    pub(super) async fn keep_an_owner(
        tx: &mut Transaction<'static, Any>,
        publisher_id: i64,
        name: &str,
    ) -> Result<()> {
        let owners: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM publisher_members WHERE publisher_id = $1 AND role = 'owner'",
        )
        .bind(publisher_id)
        .fetch_one(&mut **tx)
        .await?;
        if owners == 0 {
            return Err(StoreError::Conflict(format!(
                "publisher {name} must keep at least one owner; make another member an owner first"
            )));
        }
        Ok(())
    }
    pub(super) async fn add_key_once(
        &self,
        publisher_id: i64,
        key: &KeyRecord,
        log_entry: Option<&LogWriter>,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_logged(log_entry.is_some()).await?;
        let name: String = sqlx::query_scalar("SELECT name FROM publishers WHERE id = $1")
            .bind(publisher_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO publisher_keys (publisher_id, id, algorithm, public_key, comment, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(publisher_id)
        .bind(&key.id)
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(key.comment.as_deref())
        .bind(key.created_at)
        .bind(&key.created_by)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, || format!("publisher {name} already has key {}", key.id)))?;
        Self::audit(
            &mut tx,
            &key.created_by,
            AuditAction::KeyAdd,
            &name,
            Some(key.id.clone()),
        )
        .await?;
        let mut index = None;
        if let Some(writer) = log_entry {
            let (idx, record) = Self::append_log(&mut tx, writer, publisher_id, None).await?;
            sqlx::query(
                "UPDATE publisher_keys SET log_index = $1 WHERE publisher_id = $2 AND id = $3",
            )
            .bind(idx)
            .bind(publisher_id)
            .bind(&key.id)
            .execute(&mut *tx)
            .await?;
            Self::set_key_head(&mut tx, publisher_id, idx, &record.leaf).await?;
            index = Some(idx);
        }
        tx.commit().await?;
        Ok(index)
    }
}

#[async_trait]
impl PublisherStore for SqlStore {
    async fn create_publisher(
        &self,
        name: &str,
        display_name: Option<&str>,
        owner: &UserRecord,
    ) -> Result<PublisherRecord> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO publishers (name, display_name, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(display_name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, || format!("publisher {name} already exists")))?;
        sqlx::query(
            "INSERT INTO publisher_members (publisher_id, user_id, role) VALUES ($1, $2, 'owner')",
        )
        .bind(id)
        .bind(owner.id)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &owner.username,
            AuditAction::PublisherCreate,
            name,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(PublisherRecord {
            id,
            name: name.to_owned(),
            display_name: display_name.map(str::to_owned),
            created_at: now,
            verified_at: None,
            email: None,
            url: None,
        })
    }
    async fn publisher_by_name(&self, name: &str) -> Result<Option<PublisherRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PUBLISHER_COLUMNS} FROM publishers WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(publisher_from_row).transpose()
    }
    async fn list_publishers(&self) -> Result<Vec<PublisherRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PUBLISHER_COLUMNS} FROM publishers ORDER BY name LIMIT 1000"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(publisher_from_row).collect()
    }
    async fn set_publisher_verified(
        &self,
        publisher_id: i64,
        verified: bool,
        actor: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE publishers SET verified_at = $1 WHERE id = $2 RETURNING name",
        )
        .bind(verified.then_some(now))
        .bind(publisher_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher id {publisher_id}")))?;
        sqlx::query("UPDATE plugins SET verified = $1 WHERE publisher_id = $2")
            .bind(i64::from(verified))
            .bind(publisher_id)
            .execute(&mut *tx)
            .await?;
        let action = if verified {
            AuditAction::PublisherVerify
        } else {
            AuditAction::PublisherUnverify
        };
        Self::audit(&mut tx, actor, action, &name, None).await?;
        tx.commit().await?;
        Ok(())
    }
    async fn set_publisher_contacts(
        &self,
        publisher_id: i64,
        email: Option<&str>,
        url: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE publishers SET email = $1, url = $2 WHERE id = $3 RETURNING name",
        )
        .bind(email)
        .bind(url)
        .bind(publisher_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("publisher id {publisher_id}")))?;
        let detail = format!("email={} url={}", email.unwrap_or("-"), url.unwrap_or("-"));
        Self::audit(
            &mut tx,
            actor,
            AuditAction::PublisherContacts,
            &name,
            Some(detail),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    async fn members(&self, publisher_id: i64) -> Result<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT u.username, m.role FROM publisher_members m JOIN users u ON u.id = m.user_id \
             WHERE m.publisher_id = $1 ORDER BY u.username",
        )
        .bind(publisher_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemberRecord {
                    username: r.try_get("username")?,
                    role: r.try_get("role")?,
                })
            })
            .collect()
    }
    async fn add_member(
        &self,
        publisher_id: i64,
        user: &UserRecord,
        role: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        sqlx::query(
            "INSERT INTO publisher_members (publisher_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (publisher_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(publisher_id)
        .bind(user.id)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        Self::keep_an_owner(&mut tx, publisher_id, &name).await?;
        Self::audit(
            &mut tx,
            actor,
            AuditAction::PublisherAddMember,
            &name,
            Some(format!("{} as {role}", user.username)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    async fn change_member(
        &self,
        publisher_id: i64,
        username: &str,
        change: MemberChange<'_>,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        let user_id: Option<i64> = sqlx::query_scalar(
            "SELECT m.user_id FROM publisher_members m JOIN users u ON u.id = m.user_id \
             WHERE m.publisher_id = $1 AND u.username = $2",
        )
        .bind(publisher_id)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user_id) = user_id else {
            return Ok(false);
        };
        let (action, detail) = match change {
            MemberChange::Role(role) => {
                sqlx::query(
                    "UPDATE publisher_members SET role = $1 WHERE publisher_id = $2 AND user_id = $3",
                )
                .bind(role)
                .bind(publisher_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                (
                    AuditAction::PublisherMemberRole,
                    format!("{username} as {role}"),
                )
            }
            MemberChange::Remove => {
                sqlx::query(
                    "DELETE FROM publisher_members WHERE publisher_id = $1 AND user_id = $2",
                )
                .bind(publisher_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                (AuditAction::PublisherRemoveMember, username.to_owned())
            }
        };
        Self::keep_an_owner(&mut tx, publisher_id, &name).await?;
        Self::audit(&mut tx, actor, action, &name, Some(detail)).await?;
        tx.commit().await?;
        Ok(true)
    }
    async fn memberships(&self, user_id: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name FROM publisher_members m JOIN publishers p ON p.id = m.publisher_id \
             WHERE m.user_id = $1 ORDER BY p.name",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }
    async fn invite_member(
        &self,
        invitation: &InvitationRecord,
        publisher_id: i64,
        max_pending: usize,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        // Expired invitations go when new ones come: the table stays bounded.
        sqlx::query("DELETE FROM publisher_invitations WHERE expires_at <= $1")
            .bind(invitation.created_at)
            .execute(&mut *tx)
            .await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM publisher_invitations WHERE publisher_id = $1 AND username <> $2",
        )
        .bind(publisher_id)
        .bind(&invitation.username)
        .fetch_one(&mut *tx)
        .await?;
        if pending as usize >= max_pending {
            return Err(StoreError::Conflict(format!(
                "publisher {name} has {pending} open invitations already (at most {max_pending}); withdraw some or wait until they expire"
            )));
        }
        sqlx::query(
            "INSERT INTO publisher_invitations (publisher_id, username, role, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (publisher_id, username) DO UPDATE SET \
             role = excluded.role, invited_by = excluded.invited_by, created_at = excluded.created_at, \
             expires_at = excluded.expires_at",
        )
        .bind(publisher_id)
        .bind(&invitation.username)
        .bind(&invitation.role)
        .bind(&invitation.invited_by)
        .bind(invitation.created_at)
        .bind(invitation.expires_at)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &invitation.invited_by,
            AuditAction::PublisherInvite,
            &name,
            Some(format!("{} as {}", invitation.username, invitation.role)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    async fn invitations(
        &self,
        publisher_id: Option<i64>,
        username: Option<&str>,
    ) -> Result<Vec<InvitationRecord>> {
        let rows = sqlx::query(
            "SELECT p.name AS publisher, i.username, i.role, i.invited_by, i.created_at, i.expires_at \
             FROM publisher_invitations i JOIN publishers p ON p.id = i.publisher_id \
             WHERE i.expires_at > $1 AND ($2 = 0 OR i.publisher_id = $3) AND ($4 = 0 OR i.username = $5) \
             ORDER BY p.name, i.username LIMIT 1000",
        )
        .bind(now_ms())
        .bind(i64::from(publisher_id.is_some()))
        .bind(publisher_id.unwrap_or(0))
        .bind(i64::from(username.is_some()))
        .bind(username.unwrap_or(""))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InvitationRecord {
                    publisher: r.try_get("publisher")?,
                    username: r.try_get("username")?,
                    role: r.try_get("role")?,
                    invited_by: r.try_get("invited_by")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }
    async fn accept_invitation(
        &self,
        publisher_id: i64,
        user: &UserRecord,
    ) -> Result<Option<String>> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        let role: Option<String> = sqlx::query_scalar(
            "DELETE FROM publisher_invitations WHERE publisher_id = $1 AND username = $2 AND expires_at > $3 \
             RETURNING role",
        )
        .bind(publisher_id)
        .bind(&user.username)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(role) = role else {
            return Ok(None);
        };
        // Joining never demotes: an owner who accepts a member invitation stays an owner.
        sqlx::query(
            "INSERT INTO publisher_members (publisher_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (publisher_id, user_id) DO UPDATE SET role = CASE \
             WHEN publisher_members.role = 'owner' THEN 'owner' ELSE excluded.role END",
        )
        .bind(publisher_id)
        .bind(user.id)
        .bind(&role)
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &user.username,
            AuditAction::PublisherJoin,
            &name,
            Some(format!("{} as {role}", user.username)),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(role))
    }
    async fn cancel_invitation(
        &self,
        publisher_id: i64,
        username: &str,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let name = self.lock_publisher(&mut tx, publisher_id).await?;
        let done = sqlx::query(
            "DELETE FROM publisher_invitations WHERE publisher_id = $1 AND username = $2",
        )
        .bind(publisher_id)
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            Self::audit(
                &mut tx,
                actor,
                AuditAction::PublisherUninvite,
                &name,
                Some(username.to_owned()),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }
    async fn add_key(
        &self,
        publisher_id: i64,
        key: &KeyRecord,
        log_entry: Option<LogWriter>,
    ) -> Result<Option<i64>> {
        self.retrying(|| self.add_key_once(publisher_id, key, log_entry.as_ref()))
            .await
    }
    async fn keys(&self, publisher_id: i64) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT id, algorithm, public_key, comment, created_at, created_by, revoked_at, revoked_by, \
             revocation_reason, log_index, revoked_log_index FROM publisher_keys WHERE publisher_id = $1 ORDER BY created_at, id",
        )
        .bind(publisher_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(key_from_row).collect()
    }
    async fn revoke_key(
        &self,
        publisher_id: i64,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        at: i64,
        log_entry: Option<LogWriter>,
    ) -> Result<bool> {
        self.retrying(|| async {
            let mut tx = self.begin_logged(log_entry.is_some()).await?;
            let result = sqlx::query(
            "UPDATE publisher_keys SET revoked_at = $1, revoked_by = $2, revocation_reason = $3 \
             WHERE publisher_id = $4 AND id = $5 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(actor)
        .bind(reason)
        .bind(publisher_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 1 {
            let name: String = sqlx::query_scalar("SELECT name FROM publishers WHERE id = $1")
                .bind(publisher_id)
                .fetch_one(&mut *tx)
                .await?;
            Self::audit(&mut tx, actor, AuditAction::KeyRevoke, &name, Some(id.to_owned())).await?;
            if let Some(writer) = &log_entry {
                let (idx, record) = Self::append_log(&mut tx, writer, publisher_id, None).await?;
                sqlx::query("UPDATE publisher_keys SET revoked_log_index = $1 WHERE publisher_id = $2 AND id = $3")
                    .bind(idx)
                    .bind(publisher_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::set_key_head(&mut tx, publisher_id, idx, &record.leaf).await?;
            }
        }
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
        })
        .await
    }
}
