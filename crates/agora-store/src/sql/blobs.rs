//! Blob metadata on SQL: sizes, uploaders and readability.

use agora_core::Digest;
use async_trait::async_trait;

use super::{SqlStore, search};
use crate::metadata::*;
use crate::now_ms;

#[async_trait]
impl BlobIndex for SqlStore {
    async fn record_blob(&self, digest: &Digest, size: u64, uploaded_by: i64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write.begin().await?;
        // An upload while garbage collection deletes the blob is refused; one it had only
        // marked starts the grace period again.
        super::gc::claim_blobs(&mut tx, std::slice::from_ref(digest)).await?;
        sqlx::query("INSERT INTO blobs (digest, size, uploaded_by, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING")
            .bind(digest.to_string())
            .bind(size as i64)
            .bind(uploaded_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO blob_uploaders (digest, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest, user_id) DO NOTHING")
            .bind(digest.to_string())
            .bind(uploaded_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(size.map(|s| s as u64))
    }
    async fn blob_uploaded_by(&self, digest: &Digest, user_id: i64) -> Result<Option<u64>> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM blobs b JOIN blob_uploaders u ON u.digest = b.digest \
             WHERE b.digest = $1 AND u.user_id = $2",
        )
        .bind(digest.to_string())
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(size.map(|s| s as u64))
    }
    async fn blob_readable(&self, digest: &Digest, viewer: &Viewer) -> Result<bool> {
        let mut sql = String::from(
            "SELECT 1 FROM artifacts a JOIN versions v ON v.id = a.version_id JOIN plugins p ON p.id = v.plugin_id \
             WHERE a.digest = $1 AND v.state <> 'removed'",
        );
        if !viewer.admin {
            sql.push_str(&search::visibility_condition(viewer, 2));
        }
        sql.push_str(" LIMIT 1");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(digest.to_string());
        if !viewer.admin {
            for id in viewer.visibility_ids() {
                q = q.bind(id);
            }
        }
        Ok(q.fetch_optional(&self.read).await?.is_some())
    }
}
