//! The audit log: who changed what.

use async_trait::async_trait;

use super::Result;

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

/// Audit events.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit_events(
        &self,
        target_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>>;
}
