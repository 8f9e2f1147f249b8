//! Tenants: their members, their instances (each with a hashed credential and its last
//! report), their policy and their approved set (pins). Every pin change is one
//! transaction with its transparency log entry and audit event, and bumps the tenant's
//! generation, which instances poll.

use async_trait::async_trait;

use super::{LogWriter, Result};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: i64,
    pub name: String,
    pub display_name: Option<String>,
    /// The policy, as `agora_core::policy::HostPolicy` JSON.
    pub policy: String,
    pub auto_update: bool,
    /// Bumped by every change of the approved set or the policy.
    pub generation: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// A tenant to create, with its first administrator.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub display_name: Option<String>,
    /// The policy JSON it starts with.
    pub policy: String,
    /// The user id of its first administrator.
    pub admin_user_id: i64,
    /// Who creates it (audited).
    pub actor: String,
}

/// A member: user name and role (`admin` or `member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMemberRecord {
    pub user: String,
    pub role: String,
}

/// An instance as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub core_version: Option<String>,
    pub runner_version: Option<String>,
    pub platform: Option<String>,
    /// The generation its last report was about.
    pub generation: Option<i64>,
    /// `converged` or `failed`; `None` before its first report.
    pub state: Option<String>,
    /// Why it did not converge.
    pub detail: Option<String>,
    /// Its last report (`agora_core::tenant::InstanceReport` JSON).
    pub report: Option<String>,
}

/// An instance's report, as stored.
#[derive(Debug, Clone)]
pub struct InstanceReportRecord {
    pub at: i64,
    pub core_version: String,
    pub runner_version: String,
    pub platform: String,
    pub generation: i64,
    pub state: String,
    pub detail: Option<String>,
    /// The whole report, JSON (bounded by the caller).
    pub report: String,
}

/// One entry of a tenant's approved set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRecord {
    pub tenant_id: i64,
    pub plugin_id: i64,
    pub publisher: String,
    pub name: String,
    pub version: String,
    /// `sha256:...`.
    pub manifest_digest: String,
    /// What it grants (`agora_core::tenant::Reach` JSON).
    pub reach: String,
    pub approved_by: String,
    pub approved_at: i64,
    /// Its transparency log entry and the entry's opening.
    pub log_index: i64,
    pub log_opening: Option<String>,
    /// The pin before the last move (version, digest, reach JSON), for a rollback.
    pub previous: Option<(String, String, String)>,
}

/// A change of one pin.
#[derive(Debug, Clone)]
pub struct PinChange {
    pub tenant_id: i64,
    pub plugin_id: i64,
    /// The new pin: version, manifest digest, reach JSON. `None` removes the plugin.
    pub to: Option<(String, String, String)>,
    /// Keep the pin being replaced as `previous` (false for a rollback, which clears it).
    pub keep_previous: bool,
    /// The administrator, or `auto-update`.
    pub by: String,
    /// The audit event's target (`tenant:publisher/name@version`) and its detail.
    pub audit_target: String,
    pub audit_detail: Option<String>,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant with its first administrator, audited as `tenant.create`;
    /// a taken name is a `StoreError::Conflict`.
    async fn create_tenant(&self, tenant: &NewTenant) -> Result<TenantRecord>;

    async fn tenant(&self, name: &str) -> Result<Option<TenantRecord>>;

    /// Every tenant, by name, at most `limit`.
    async fn tenants(&self, limit: u32) -> Result<Vec<TenantRecord>>;

    /// The tenants `user_id` belongs to, with the role, by name.
    async fn tenants_of(&self, user_id: i64) -> Result<Vec<(TenantRecord, String)>>;

    /// `user_id`'s role in the tenant, if a member.
    async fn tenant_role(&self, tenant_id: i64, user_id: i64) -> Result<Option<String>>;

    /// The members, by user name.
    async fn tenant_members(&self, tenant_id: i64) -> Result<Vec<TenantMemberRecord>>;

    /// Adds a member or changes their role (`Some`), or removes them (`None`), audited
    /// as `tenant.member`; refuses (`StoreError::Conflict`) to leave the tenant without an
    /// administrator. Returns whether anything changed.
    async fn set_tenant_member(
        &self,
        tenant_id: i64,
        user_id: i64,
        role: Option<&str>,
        actor: &str,
    ) -> Result<bool>;

    /// Replaces the policy and the automatic-update setting, bumps the generation, audited
    /// as `tenant.policy`.
    async fn set_tenant_policy(
        &self,
        tenant_id: i64,
        policy: &str,
        auto_update: bool,
        actor: &str,
    ) -> Result<TenantRecord>;

    /// Registers an instance with the sha256 of its credential, audited as
    /// `instance.register`; a name taken in the tenant is a `StoreError::Conflict`.
    async fn create_instance(
        &self,
        tenant_id: i64,
        name: &str,
        token_hash: &str,
        actor: &str,
    ) -> Result<InstanceRecord>;

    /// The tenant's instances, by name (revoked ones too).
    async fn instances(&self, tenant_id: i64) -> Result<Vec<InstanceRecord>>;

    /// The instance holding this credential hash, unless revoked, with its tenant.
    async fn instance_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(InstanceRecord, TenantRecord)>>;

    /// Revokes an instance's credential, audited as `instance.revoke`; false when there is
    /// no such instance or it was already revoked.
    async fn revoke_instance(&self, tenant_id: i64, name: &str, actor: &str) -> Result<bool>;

    /// Notes that the instance asked for its set now.
    async fn touch_instance(&self, instance_id: i64, at: i64) -> Result<()>;

    /// Stores an instance's report (replacing the previous one).
    async fn record_instance_report(
        &self,
        instance_id: i64,
        report: &InstanceReportRecord,
    ) -> Result<()>;

    /// The approved set, by publisher and name.
    async fn pins(&self, tenant_id: i64) -> Result<Vec<PinRecord>>;

    async fn pin(&self, tenant_id: i64, plugin_id: i64) -> Result<Option<PinRecord>>;

    /// Applies one pin change in one transaction: the pin, the tenant's generation, the
    /// log entry `log` builds (always sealed; stored without a plugin id, so only the
    /// tenant's readers get its opening) and the `tenant.pin` audit event. Returns the
    /// pin as it is now (`None` after a removal). Refuses a new pin beyond `max_pins`
    /// (`StoreError::Conflict`).
    async fn change_pin(
        &self,
        change: &PinChange,
        log: &LogWriter,
        max_pins: u32,
    ) -> Result<Option<PinRecord>>;

    /// Tenants with automatic updates on that approve `plugin_id`, with the pin.
    async fn auto_update_pins(&self, plugin_id: i64) -> Result<Vec<(TenantRecord, PinRecord)>>;
}
