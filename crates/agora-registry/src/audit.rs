//! The audit log of changes: who changed what (administrators only).

use agora_store::AuditRecord;

use crate::Registry;
use crate::caller::Caller;
use crate::error::{Result, one_line_opt};

/// Most events listed at once.
pub const MAX_EVENTS: u32 = 1000;

/// Events whose target starts with `target`, newest first, at most `limit`.
pub async fn events(
    registry: &Registry,
    caller: &Caller,
    target: Option<&str>,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    caller.require_admin()?;
    one_line_opt("target", target)?;
    Ok(registry
        .meta
        .audit_events(target, limit.clamp(1, MAX_EVENTS))
        .await?)
}
