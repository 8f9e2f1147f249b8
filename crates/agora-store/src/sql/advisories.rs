//! Advisories and release components on SQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use super::rows::parse_state;
use crate::metadata::*;

/// Packages looked up per query (two bound values each).
const PACKAGES_PER_QUERY: usize = 200;
/// Component rows inserted per statement (five bound values each).
const COMPONENTS_PER_INSERT: usize = 400;

fn advisory_from_row(r: &AnyRow) -> Result<AdvisoryRecord> {
    Ok(AdvisoryRecord {
        id: r.try_get("id")?,
        modified: r.try_get("modified")?,
        withdrawn: r.try_get("withdrawn")?,
        summary: r.try_get("summary")?,
        document: r.try_get("document")?,
        imported_at: r.try_get("imported_at")?,
    })
}

#[async_trait]
impl AdvisoryStore for SqlStore {
    async fn import_advisories(
        &self,
        advisories: &[NewAdvisory],
        actor: &str,
    ) -> Result<AdvisoryImport> {
        let mut tx = self.write.begin().await?;
        let mut outcome = AdvisoryImport::default();
        for a in advisories {
            let r = &a.record;
            let stored: Option<String> =
                sqlx::query_scalar("SELECT modified FROM advisories WHERE id = $1")
                    .bind(&r.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            // RFC 3339 in UTC compares as text.
            if stored.as_deref().is_some_and(|m| m >= r.modified.as_str()) {
                outcome.unchanged.push(r.id.clone());
                continue;
            }
            sqlx::query(
                "INSERT INTO advisories (id, modified, withdrawn, summary, document, imported_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                 modified = excluded.modified, withdrawn = excluded.withdrawn, \
                 summary = excluded.summary, document = excluded.document, \
                 imported_at = excluded.imported_at",
            )
            .bind(&r.id)
            .bind(&r.modified)
            .bind(&r.withdrawn)
            .bind(&r.summary)
            .bind(&r.document)
            .bind(r.imported_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM advisory_packages WHERE advisory_id = $1")
                .bind(&r.id)
                .execute(&mut *tx)
                .await?;
            for (ecosystem, name) in &a.packages {
                sqlx::query(
                    "INSERT INTO advisory_packages (advisory_id, ecosystem, name) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&r.id)
                .bind(ecosystem)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            outcome.changed.push(r.id.clone());
        }
        if !outcome.changed.is_empty() {
            let detail = format!(
                "{} new or changed, {} unchanged",
                outcome.changed.len(),
                outcome.unchanged.len()
            );
            let target = outcome.changed.first().cloned().unwrap_or_default();
            SqlStore::audit(
                &mut tx,
                actor,
                agora_core::audit::AuditAction::AdvisoryImport,
                &target,
                Some(detail),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn advisory(&self, id: &str) -> Result<Option<AdvisoryRecord>> {
        let row = sqlx::query(
            "SELECT id, modified, withdrawn, summary, document, imported_at FROM advisories WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(advisory_from_row).transpose()
    }

    async fn advisories_in_use(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AdvisoryRecord>> {
        let rows = sqlx::query(
            "SELECT a.id, a.modified, a.withdrawn, a.summary, a.document, a.imported_at \
             FROM advisories a WHERE a.id > $1 AND EXISTS (SELECT 1 FROM advisory_packages p \
             JOIN release_components c ON c.ecosystem = p.ecosystem AND c.name = p.name \
             WHERE p.advisory_id = a.id) ORDER BY a.id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(advisory_from_row).collect()
    }

    async fn advisories_for(&self, packages: &[(String, String)]) -> Result<Vec<AdvisoryRecord>> {
        let mut found: Vec<AdvisoryRecord> = Vec::new();
        for chunk in packages.chunks(PACKAGES_PER_QUERY) {
            let condition = (0..chunk.len())
                .map(|i| format!("(p.ecosystem = ${} AND p.name = ${})", 2 * i + 1, 2 * i + 2))
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql = format!(
                "SELECT DISTINCT a.id, a.modified, a.withdrawn, a.summary, a.document, a.imported_at \
                 FROM advisories a JOIN advisory_packages p ON p.advisory_id = a.id WHERE {condition}"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (ecosystem, name) in chunk {
                query = query.bind(ecosystem).bind(name);
            }
            for row in query.fetch_all(&self.read).await? {
                let record = advisory_from_row(&row)?;
                if !found.iter().any(|a| a.id == record.id) {
                    found.push(record);
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    async fn set_release_components(
        &self,
        version_id: i64,
        components: &[ComponentRecord],
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM release_components WHERE version_id = $1")
            .bind(version_id)
            .execute(&mut *tx)
            .await?;
        for chunk in components.chunks(COMPONENTS_PER_INSERT) {
            let values = (0..chunk.len())
                .map(|i| {
                    let b = 5 * i;
                    format!(
                        "(${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO release_components (version_id, ecosystem, name, version, purl) VALUES {values}"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in chunk {
                query = query
                    .bind(version_id)
                    .bind(&c.ecosystem)
                    .bind(&c.name)
                    .bind(&c.version)
                    .bind(&c.purl);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn releases_using(&self, ecosystem: &str, name: &str) -> Result<Vec<ComponentUse>> {
        let rows = sqlx::query(
            "SELECT c.version_id, p.publisher, p.name AS plugin, v.version, v.state, \
             c.version AS component_version, c.purl \
             FROM release_components c JOIN versions v ON v.id = c.version_id \
             JOIN plugins p ON p.id = v.plugin_id \
             WHERE c.ecosystem = $1 AND c.name = $2 AND v.state <> 'removed' \
             ORDER BY c.version_id",
        )
        .bind(ecosystem)
        .bind(name)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ComponentUse {
                    version_id: r.try_get("version_id")?,
                    publisher: r.try_get("publisher")?,
                    plugin: r.try_get("plugin")?,
                    version: r.try_get("version")?,
                    state: parse_state(&r.try_get::<String, _>("state")?)?,
                    component_version: r.try_get("component_version")?,
                    purl: r.try_get("purl")?,
                })
            })
            .collect()
    }
}
