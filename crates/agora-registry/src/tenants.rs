//! The control plane: tenants, their members and instances, their policy (the host policy
//! model, `agora_core::policy`), and their approved set — each plugin pinned to a version
//! and its manifest digest, every change a sealed transparency-log entry.
//!
//! - Members act through [`load`]: the credential's `tenant:` scope and the user's role
//!   there (registry administrators act as tenant administrators everywhere).
//! - A tenant may approve public plugins, and private ones offered to it
//!   (`crate::entitlements`); [`withdraw`] takes one out when its offer is revoked.
//! - [`preview`] says what an approval would grant and which instances can run it;
//!   [`approve`], [`remove`], [`rollback`], [`apply`] move pins; [`updates`] lists newer
//!   versions with what they ask beyond the approval; [`after_verification`] applies the
//!   updates of tenants that let the registry do so (only releases verified and asking for
//!   nothing more).
//! - Instances authenticate with their own credential ([`authenticate_instance`]), read
//!   their [`desired`] set (a long poll on the tenant's generation) and [`report`] back;
//!   [`fleet`] is what the reports say.

use std::collections::BTreeMap;
use std::time::Duration;

use agora_core::Slug;
use agora_core::lifecycle::Lifecycle;
use agora_core::manifest::ArtifactRole;
use agora_core::manifest::Manifest;
use agora_core::policy::{HostPolicy, Refusal};
use agora_core::tenant::{
    self as domain, AppliedUpdates, ApplyUpdates, Approval, ApproveRequest, AvailableUpdate,
    CreateTenant, DesiredPlugin, DesiredSet, FleetInstance, FleetPlugin, FleetView, InstallPreview,
    Instance, InstanceFit, InstanceReport, PinAction, PluginUpdates, PolicyRefusal, Reach,
    RegisteredInstance, Tenant, TenantMember, TenantPolicy, TenantRole, UpdateList,
};
use agora_store::{
    InstanceRecord, InstanceReportRecord, NewTenant, PinChange, PinRecord, PluginRecord,
    StoreError, TenantRecord, VersionRecord, Viewer, now_ms,
};
use agora_trust::LogEntry;
use futures_util::TryStreamExt;

use crate::caller::{hash_token, token_display_prefix};
use crate::error::{RegistryError, Result, one_line_opt};
use crate::{Caller, Registry, log};

/// Who runs the pin moves a tenant's automatic updates make.
pub const AUTO_UPDATE_ACTOR: &str = "auto-update";

/// How often a waiting instance re-reads its tenant's generation, for changes another
/// replica made (changes made by this process wake it at once).
const WAIT_RECHECK: Duration = Duration::from_secs(2);

/// One wake-up per tenant for the instances long-polling its desired set: a change wakes
/// only that tenant's waiters. Entries are made for tenants an instance polls, so the map
/// holds at most one per tenant (bounded by [`domain::MAX_TENANTS`]).
#[derive(Default)]
pub struct Wakers(
    std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<tokio::sync::Notify>>>,
);

impl Wakers {
    /// The wake-up of tenant `id`.
    fn of(&self, id: i64) -> std::sync::Arc<tokio::sync::Notify> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id).or_default().clone()
    }

    /// Wakes the instances waiting on tenant `id`.
    pub fn wake(&self, id: i64) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = map.get(&id) {
            notify.notify_waiters();
        }
    }
}

/// How often an instance's `last_seen_at` is written at most (each poll would otherwise
/// be a write through SQLite's single writer).
const TOUCH_INTERVAL_MS: i64 = 30_000;

/// What the caller must be in the tenant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Member,
    Admin,
}

/// The tenant named `name` as `caller` may act in it, with the caller's role. Anyone who
/// is not a member (nor a registry administrator) is told it does not exist.
pub(crate) async fn load(
    registry: &Registry,
    caller: &Caller,
    name: &str,
    need: Need,
) -> Result<(TenantRecord, Option<TenantRole>)> {
    caller.require_tenant_scope(name)?;
    let missing = || RegistryError::not_found(format!("no tenant named {name}"));
    let tenant = registry.meta.tenant(name).await?.ok_or_else(missing)?;
    let role = registry
        .meta
        .tenant_role(tenant.id, caller.user.id)
        .await?
        .and_then(|r| TenantRole::parse(&r));
    if role.is_none() && !caller.is_admin() {
        return Err(missing());
    }
    if need == Need::Admin && role != Some(TenantRole::Admin) && !caller.is_admin() {
        return Err(RegistryError::forbidden(format!(
            "user {} is a member of tenant {name}, not one of its administrators",
            caller.user.username
        )));
    }
    Ok((tenant, role))
}

fn policy_of(tenant: &TenantRecord) -> Result<HostPolicy> {
    serde_json::from_str(&tenant.policy)
        .map_err(|e| RegistryError::internal("a stored tenant policy is unreadable", e))
}

/// The policy a new tenant starts with: any publisher's plugins may be approved (the
/// approved set is the curation), with the host policy's default ceilings, no outbound
/// host and no secret until an administrator allows them.
pub fn default_policy() -> HostPolicy {
    HostPolicy {
        mode: agora_core::policy::Mode::Open,
        ..HostPolicy::default()
    }
}

fn to_tenant(record: &TenantRecord, role: Option<TenantRole>) -> Tenant {
    Tenant {
        name: record.name.clone(),
        display_name: record.display_name.clone(),
        role,
        auto_update: record.auto_update,
        generation: record.generation,
        created_at: record.created_at,
    }
}

fn conflict_or(e: StoreError) -> RegistryError {
    match e {
        StoreError::Conflict(detail) => RegistryError::conflict(detail),
        other => other.into(),
    }
}

// ---- tenants and members ----

/// Creates a tenant (registry administrators), with `admin` (default: the caller) as its
/// first administrator.
pub async fn create(
    registry: &Registry,
    caller: &Caller,
    request: &CreateTenant,
) -> Result<Tenant> {
    caller.require_admin()?;
    Slug::parse("name", &request.name).map_err(|e| {
        RegistryError::field(
            "name",
            e.to_string(),
            Some("lowercase letters, digits and single hyphens, 1 to 64 characters"),
        )
    })?;
    one_line_opt("display_name", request.display_name.as_deref())?;
    if request
        .display_name
        .as_ref()
        .is_some_and(|d| d.chars().count() > 100)
    {
        return Err(RegistryError::field(
            "display_name",
            "is longer than 100 characters",
            Some("at most 100 characters"),
        ));
    }
    let admin = match &request.admin {
        Some(name) => registry.meta.user_by_name(name).await?.ok_or_else(|| {
            RegistryError::field(
                "admin",
                format!("there is no user named {name}"),
                Some("an existing user's name"),
            )
        })?,
        None => caller.user.clone(),
    };
    if registry.meta.tenants(domain::MAX_TENANTS).await?.len() >= domain::MAX_TENANTS as usize {
        return Err(RegistryError::conflict(format!(
            "this registry already holds {} tenants, its limit",
            domain::MAX_TENANTS
        )));
    }
    let policy = serde_json::to_string(&default_policy())
        .map_err(|e| RegistryError::internal("cannot write a policy", e))?;
    let record = registry
        .meta
        .create_tenant(&NewTenant {
            name: request.name.clone(),
            display_name: request.display_name.clone(),
            policy,
            admin_user_id: admin.id,
            actor: caller.user.username.clone(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                RegistryError::conflict(format!("a tenant named {} exists", request.name))
            }
            other => other.into(),
        })?;
    let role = (admin.id == caller.user.id).then_some(TenantRole::Admin);
    Ok(to_tenant(&record, role))
}

/// The tenants the caller belongs to (every tenant, for an administrator).
pub async fn list(registry: &Registry, caller: &Caller) -> Result<Vec<Tenant>> {
    let mine = registry.meta.tenants_of(caller.user.id).await?;
    let mut roles: BTreeMap<String, TenantRole> = BTreeMap::new();
    let mut out = Vec::new();
    for (record, role) in &mine {
        if let Some(role) = TenantRole::parse(role)
            && caller.scopes.iter().any(|s| s.allows_tenant(&record.name))
        {
            roles.insert(record.name.clone(), role);
            out.push(to_tenant(record, Some(role)));
        }
    }
    if caller.is_admin() {
        out = registry
            .meta
            .tenants(domain::MAX_TENANTS)
            .await?
            .iter()
            .map(|t| to_tenant(t, roles.get(&t.name).copied()))
            .collect();
    }
    Ok(out)
}

/// The tenants in which the caller may approve plugins (for "Install for TENANT").
pub async fn administered(registry: &Registry, caller: &Caller) -> Result<Vec<Tenant>> {
    Ok(list(registry, caller)
        .await?
        .into_iter()
        .filter(|t| t.role == Some(TenantRole::Admin))
        .collect())
}

pub async fn get(registry: &Registry, caller: &Caller, name: &str) -> Result<Tenant> {
    let (record, role) = load(registry, caller, name, Need::Member).await?;
    Ok(to_tenant(&record, role))
}

pub async fn policy(registry: &Registry, caller: &Caller, name: &str) -> Result<TenantPolicy> {
    let (record, _) = load(registry, caller, name, Need::Member).await?;
    Ok(TenantPolicy {
        policy: policy_of(&record)?,
        auto_update: record.auto_update,
    })
}

/// Replaces the tenant's policy (administrators). Checked as a tenant policy: secret
/// grants permit, hosts supply the values.
pub async fn set_policy(
    registry: &Registry,
    caller: &Caller,
    name: &str,
    policy: &TenantPolicy,
) -> Result<TenantPolicy> {
    let (record, _) = load(registry, caller, name, Need::Admin).await?;
    policy.policy.check_for_tenant().map_err(|e| {
        RegistryError::field(
            "policy",
            e.0,
            Some("the fields of a host policy file; secret grants without from_env or from_file"),
        )
    })?;
    let json = serde_json::to_string(&policy.policy)
        .map_err(|e| RegistryError::internal("cannot write a policy", e))?;
    let record = registry
        .meta
        .set_tenant_policy(record.id, &json, policy.auto_update, &caller.user.username)
        .await?;
    registry.tenant_changed.wake(record.id);
    Ok(TenantPolicy {
        policy: policy_of(&record)?,
        auto_update: record.auto_update,
    })
}

pub async fn members(
    registry: &Registry,
    caller: &Caller,
    name: &str,
) -> Result<Vec<TenantMember>> {
    let (record, _) = load(registry, caller, name, Need::Member).await?;
    members_of(registry, &record).await
}

async fn members_of(registry: &Registry, record: &TenantRecord) -> Result<Vec<TenantMember>> {
    Ok(registry
        .meta
        .tenant_members(record.id)
        .await?
        .into_iter()
        .filter_map(|m| {
            Some(TenantMember {
                role: TenantRole::parse(&m.role)?,
                user: m.user,
            })
        })
        .collect())
}

/// Adds a member or changes their role (`Some`), or removes them (`None`); a tenant
/// always keeps an administrator.
pub async fn set_member(
    registry: &Registry,
    caller: &Caller,
    name: &str,
    user: &str,
    role: Option<TenantRole>,
) -> Result<Vec<TenantMember>> {
    let (record, _) = load(registry, caller, name, Need::Admin).await?;
    let target = registry
        .meta
        .user_by_name(user)
        .await?
        .ok_or_else(|| RegistryError::not_found(format!("there is no user named {user}")))?;
    if role.is_some()
        && registry
            .meta
            .tenant_role(record.id, target.id)
            .await?
            .is_none()
        && registry.meta.tenant_members(record.id).await?.len() >= domain::MAX_MEMBERS as usize
    {
        return Err(RegistryError::conflict(format!(
            "tenant {name} has {} members, its limit",
            domain::MAX_MEMBERS
        )));
    }
    registry
        .meta
        .set_tenant_member(
            record.id,
            target.id,
            role.map(TenantRole::as_str),
            &caller.user.username,
        )
        .await
        .map_err(conflict_or)?;
    members_of(registry, &record).await
}

// ---- instances ----

fn to_instance(record: &InstanceRecord) -> Instance {
    Instance {
        name: record.name.clone(),
        created_at: record.created_at,
        revoked: record.revoked_at.is_some(),
        last_seen_at: record.last_seen_at,
        core_version: record.core_version.clone(),
        runner_version: record.runner_version.clone(),
        platform: record.platform.clone(),
        generation: record.generation,
        state: record.state.clone().unwrap_or_else(|| "unknown".to_owned()),
        detail: record.detail.clone(),
    }
}

/// A fresh instance credential: `agi_` and 64 hex digits.
fn new_instance_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{}{}", domain::INSTANCE_TOKEN_PREFIX, hex::encode(bytes))
}

/// Registers an instance (administrators); its credential is in the answer only.
pub async fn register_instance(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    name: &str,
) -> Result<RegisteredInstance> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    Slug::parse("name", name).map_err(|e| {
        RegistryError::field(
            "name",
            e.to_string(),
            Some("lowercase letters, digits and single hyphens, 1 to 64 characters"),
        )
    })?;
    if registry.meta.instances(record.id).await?.len() >= domain::MAX_INSTANCES as usize {
        return Err(RegistryError::conflict(format!(
            "tenant {tenant} has {} instances, its limit; revoke one first",
            domain::MAX_INSTANCES
        )));
    }
    let token = new_instance_token();
    let instance = registry
        .meta
        .create_instance(record.id, name, &hash_token(&token), &caller.user.username)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => RegistryError::conflict(format!(
                "tenant {tenant} already has an instance named {name}"
            )),
            other => other.into(),
        })?;
    Ok(RegisteredInstance {
        instance: to_instance(&instance),
        token,
    })
}

pub async fn instances(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
) -> Result<Vec<Instance>> {
    let (record, _) = load(registry, caller, tenant, Need::Member).await?;
    Ok(registry
        .meta
        .instances(record.id)
        .await?
        .iter()
        .map(to_instance)
        .collect())
}

/// Revokes an instance's credential (administrators): it can no longer read its set.
pub async fn revoke_instance(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    name: &str,
) -> Result<()> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    if registry
        .meta
        .revoke_instance(record.id, name, &caller.user.username)
        .await?
    {
        Ok(())
    } else {
        Err(RegistryError::not_found(format!(
            "tenant {tenant} has no active instance named {name}"
        )))
    }
}

// ---- the approved set ----

fn reach_of(pin: &PinRecord) -> Result<Reach> {
    serde_json::from_str(&pin.reach)
        .map_err(|e| RegistryError::internal("a stored approval is unreadable", e))
}

fn to_approval(pin: &PinRecord) -> Result<Approval> {
    Ok(Approval {
        plugin: format!("{}/{}", pin.publisher, pin.name),
        version: pin.version.clone(),
        manifest_digest: pin.manifest_digest.clone(),
        reach: reach_of(pin)?,
        approved_by: pin.approved_by.clone(),
        approved_at: pin.approved_at,
        log_index: pin.log_index,
        previous_version: pin.previous.as_ref().map(|(v, _, _)| v.clone()),
    })
}

pub async fn approvals(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
) -> Result<Vec<Approval>> {
    let (record, _) = load(registry, caller, tenant, Need::Member).await?;
    registry
        .meta
        .pins(record.id)
        .await?
        .iter()
        .map(to_approval)
        .collect()
}

/// A plugin a tenant may approve: one its instances may download without a user's token,
/// so public, or private and offered to the tenant (an entitlement). To anyone else a
/// private plugin does not exist.
async fn approvable_plugin(
    registry: &Registry,
    tenant: &TenantRecord,
    publisher: &str,
    name: &str,
) -> Result<PluginRecord> {
    let missing = || RegistryError::not_found(format!("no plugin {publisher}/{name}"));
    let plugin = registry
        .meta
        .plugin(publisher, name)
        .await?
        .ok_or_else(missing)?;
    if plugin.visibility != agora_core::manifest::Visibility::Public
        && !registry
            .meta
            .plugin_visible_to(plugin.id, &Viewer::of_tenant(tenant.id))
            .await?
    {
        return Err(missing());
    }
    Ok(plugin)
}

/// A plugin the tenant has approved, whatever it may see of it now (a plugin made private,
/// or whose entitlement was revoked, can still be taken out of the set).
async fn pinned_plugin(
    registry: &Registry,
    tenant: &TenantRecord,
    publisher: &str,
    name: &str,
) -> Result<(PluginRecord, PinRecord)> {
    let missing = || {
        RegistryError::not_found(format!(
            "tenant {} has not approved {publisher}/{name}",
            tenant.name
        ))
    };
    let plugin = registry
        .meta
        .plugin(publisher, name)
        .await?
        .ok_or_else(missing)?;
    let pin = registry
        .meta
        .pin(tenant.id, plugin.id)
        .await?
        .ok_or_else(missing)?;
    Ok((plugin, pin))
}

fn manifest_of(version: &VersionRecord) -> Result<Manifest> {
    serde_json::from_str(&version.manifest)
        .map_err(|e| RegistryError::internal("a stored manifest is unreadable", e))
}

/// A release an instance may newly install: not yanked, insecure or removed.
fn installable(state: Lifecycle) -> bool {
    matches!(state, Lifecycle::Active | Lifecycle::Deprecated)
}

fn refusal(
    policy: &HostPolicy,
    manifest: &Manifest,
    verification: Option<&str>,
) -> Option<PolicyRefusal> {
    if let Err(r) = policy.admit(manifest).map_err(Refusal::as_tenants) {
        return Some(PolicyRefusal {
            field: r.field,
            reason: r.reason,
        });
    }
    if policy.require_verified && verification != Some("verified") {
        return Some(PolicyRefusal {
            field: "require_verified".to_owned(),
            reason: format!(
                "the tenant runs only verified releases; this one is {}",
                verification.unwrap_or("not verified yet")
            ),
        });
    }
    None
}

async fn verification_of(registry: &Registry, version: &VersionRecord) -> Result<Option<String>> {
    Ok(registry
        .meta
        .latest_verification(version.id)
        .await?
        .map(|v| v.outcome))
}

/// The version `wanted`, or the plugin's latest.
async fn pick_version(
    registry: &Registry,
    plugin: &PluginRecord,
    wanted: Option<&str>,
) -> Result<VersionRecord> {
    let name = format!("{}/{}", plugin.publisher, plugin.name);
    let version = match wanted.or(plugin.latest_version.as_deref()) {
        Some(v) => v.to_owned(),
        None => {
            return Err(RegistryError::conflict(format!(
                "{name} has no installable version"
            )));
        }
    };
    registry
        .meta
        .version(plugin.id, &version)
        .await?
        .ok_or_else(|| RegistryError::not_found(format!("{name} has no version {version}")))
}

/// Whether `instance` can run `manifest`: its platform (native plugins), its core and
/// runner versions against the manifest's minimums.
fn fit(instance: &InstanceRecord, manifest: &Manifest) -> InstanceFit {
    let mut reasons = Vec::new();
    if manifest.runtime.kind == agora_core::manifest::RuntimeKind::Exec
        && let Some(platform) = &instance.platform
        && !manifest.runtime.binaries.contains_key(platform)
    {
        reasons.push(format!(
            "no binary for its platform {platform} (the release has {})",
            manifest
                .runtime
                .binaries
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (what, min, have) in [
        (
            "core",
            &manifest.compatibility.min_core,
            &instance.core_version,
        ),
        (
            "runner",
            &manifest.compatibility.min_runner,
            &instance.runner_version,
        ),
    ] {
        if let (Some(min), Some(have)) = (min, have)
            && let (Ok(min), Ok(have)) = (semver::Version::parse(min), semver::Version::parse(have))
            && have < min
        {
            reasons.push(format!(
                "its {what} is {have}; the release needs {min} or newer"
            ));
        }
    }
    let unknown = instance.platform.is_none();
    InstanceFit {
        instance: instance.name.clone(),
        compatible: reasons.is_empty(),
        reason: if reasons.is_empty() {
            unknown.then(|| "has not reported yet; checked when it does".to_owned())
        } else {
            Some(reasons.join("; "))
        },
    }
}

/// What approving `publisher/name` at `version` (default: its latest) would grant, and
/// who could run it. Administrators only: the answer is for deciding.
pub async fn preview(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    publisher: &str,
    name: &str,
    version: Option<&str>,
) -> Result<InstallPreview> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    let plugin = approvable_plugin(registry, &record, publisher, name).await?;
    let release = pick_version(registry, &plugin, version).await?;
    let manifest = manifest_of(&release)?;
    let policy = policy_of(&record)?;
    let verification = verification_of(registry, &release).await?;
    let reach = Reach::of(&manifest);
    let current = registry.meta.pin(record.id, plugin.id).await?;
    let beyond = match &current {
        Some(pin) => Some(reach.beyond(&reach_of(pin)?)),
        None => None,
    };
    let instances = registry
        .meta
        .instances(record.id)
        .await?
        .iter()
        .filter(|i| i.revoked_at.is_none())
        .map(|i| fit(i, &manifest))
        .collect();
    Ok(InstallPreview {
        tenant: record.name.clone(),
        plugin: format!("{publisher}/{name}"),
        version: release.version.clone(),
        manifest_digest: release.manifest_digest.to_string(),
        refusal: refusal(&policy, &manifest, verification.as_deref()),
        reach,
        beyond_approved: beyond,
        approved_version: current.map(|p| p.version),
        lifecycle: release.state.as_str().to_owned(),
        verification,
        instances,
    })
}

/// Moves (or sets, or removes) one pin with its log entry.
#[allow(clippy::too_many_arguments)]
async fn move_pin(
    registry: &Registry,
    tenant: &TenantRecord,
    plugin: &PluginRecord,
    to: Option<(&VersionRecord, &Reach)>,
    action: PinAction,
    by: &str,
    keep_previous: bool,
) -> Result<Option<PinRecord>> {
    let at_ms = now_ms();
    let reach_json = match to {
        Some((_, reach)) => Some(
            serde_json::to_string(reach)
                .map_err(|e| RegistryError::internal("cannot write a reach", e))?,
        ),
        None => None,
    };
    let entry = LogEntry::Approval {
        tenant: tenant.name.clone(),
        publisher: plugin.publisher.clone(),
        name: plugin.name.clone(),
        action: action.as_str().to_owned(),
        version: to.map(|(v, _)| v.version.clone()),
        manifest_digest: to.map(|(v, _)| v.manifest_digest),
        reach: to.map(|(_, r)| r.clone()),
        by: by.to_owned(),
        at_ms,
    };
    let target = format!(
        "{}:{}/{}{}",
        tenant.name,
        plugin.publisher,
        plugin.name,
        to.map(|(v, _)| format!("@{}", v.version))
            .unwrap_or_default()
    );
    let change = PinChange {
        tenant_id: tenant.id,
        plugin_id: plugin.id,
        to: to.map(|(v, _)| {
            (
                v.version.clone(),
                v.manifest_digest.to_string(),
                reach_json.clone().unwrap_or_default(),
            )
        }),
        keep_previous,
        by: by.to_owned(),
        audit_target: target,
        audit_detail: Some(action.as_str().to_owned()),
    };
    let pin = registry
        .meta
        .change_pin(&change, &log::writer(entry), domain::MAX_APPROVED)
        .await
        .map_err(conflict_or)?;
    registry.tenant_changed.wake(tenant.id);
    Ok(pin)
}

/// Checks a release can be pinned for the tenant: installable, admitted by its policy,
/// the digest the administrator saw.
fn check_pinnable(
    tenant: &TenantRecord,
    plugin: &PluginRecord,
    release: &VersionRecord,
    manifest: &Manifest,
    verification: Option<&str>,
    seen_digest: Option<&str>,
) -> Result<()> {
    let name = format!("{}/{}@{}", plugin.publisher, plugin.name, release.version);
    if let Some(seen) = seen_digest
        && seen != release.manifest_digest.to_string()
    {
        return Err(RegistryError::field(
            "manifest_digest",
            format!(
                "{name} has the manifest digest {}, not {seen}",
                release.manifest_digest
            ),
            Some("the digest the preview showed"),
        ));
    }
    if !installable(release.state) {
        return Err(RegistryError::conflict(format!(
            "{name} is {}{}; instances never newly install it",
            release.state.as_str(),
            release
                .state_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )));
    }
    if let Some(r) = refusal(&policy_of(tenant)?, manifest, verification) {
        return Err(RegistryError::conflict(format!(
            "the policy of tenant {} refuses {name}: {}: {}",
            tenant.name, r.field, r.reason
        )));
    }
    Ok(())
}

/// Approves `publisher/name` at `request.version` for the tenant, or moves its pin there
/// (administrators). The approval grants what the release asks for, no more.
pub async fn approve(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    publisher: &str,
    name: &str,
    request: &ApproveRequest,
) -> Result<Approval> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    let plugin = approvable_plugin(registry, &record, publisher, name).await?;
    let release = pick_version(registry, &plugin, Some(&request.version)).await?;
    let manifest = manifest_of(&release)?;
    let verification = verification_of(registry, &release).await?;
    check_pinnable(
        &record,
        &plugin,
        &release,
        &manifest,
        verification.as_deref(),
        request.manifest_digest.as_deref(),
    )?;
    let current = registry.meta.pin(record.id, plugin.id).await?;
    if let Some(pin) = &current
        && pin.manifest_digest == release.manifest_digest.to_string()
    {
        return to_approval(pin);
    }
    let action = if current.is_some() {
        PinAction::Update
    } else {
        PinAction::Approve
    };
    let pin = move_pin(
        registry,
        &record,
        &plugin,
        Some((&release, &Reach::of(&manifest))),
        action,
        &caller.user.username,
        true,
    )
    .await?
    .ok_or_else(|| RegistryError::internal("an approval", "the pin is missing after it was set"))?;
    to_approval(&pin)
}

/// Takes `publisher/name` out of the tenant's approved set (administrators); instances
/// remove it when they next converge.
pub async fn remove(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    publisher: &str,
    name: &str,
) -> Result<()> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    let (plugin, _) = pinned_plugin(registry, &record, publisher, name).await?;
    move_pin(
        registry,
        &record,
        &plugin,
        None,
        PinAction::Remove,
        &caller.user.username,
        false,
    )
    .await?;
    Ok(())
}

/// Takes a plugin out of the tenant's approved set when the tenant may no longer see it
/// (its entitlement revoked): logged like an administrator's removal, by `by`. Whether a
/// pin was removed.
pub(crate) async fn withdraw(
    registry: &Registry,
    tenant: &TenantRecord,
    plugin: &PluginRecord,
    by: &str,
) -> Result<bool> {
    if registry.meta.pin(tenant.id, plugin.id).await?.is_none()
        || registry
            .meta
            .plugin_visible_to(plugin.id, &Viewer::of_tenant(tenant.id))
            .await?
    {
        return Ok(false);
    }
    move_pin(registry, tenant, plugin, None, PinAction::Remove, by, false).await?;
    Ok(true)
}

/// Moves the pin back to the version it had before its last move (administrators).
pub async fn rollback(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    publisher: &str,
    name: &str,
) -> Result<Approval> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    let plugin = approvable_plugin(registry, &record, publisher, name).await?;
    let pin = registry
        .meta
        .pin(record.id, plugin.id)
        .await?
        .ok_or_else(|| {
            RegistryError::not_found(format!(
                "tenant {tenant} has not approved {publisher}/{name}"
            ))
        })?;
    let Some((version, _, _)) = &pin.previous else {
        return Err(RegistryError::conflict(format!(
            "{publisher}/{name} has no earlier approved version to roll back to"
        )));
    };
    let release = pick_version(registry, &plugin, Some(version)).await?;
    if release.state == Lifecycle::Removed {
        return Err(RegistryError::conflict(format!(
            "{publisher}/{name}@{version} was removed from the registry; it cannot run again"
        )));
    }
    let manifest = manifest_of(&release)?;
    let moved = move_pin(
        registry,
        &record,
        &plugin,
        Some((&release, &Reach::of(&manifest))),
        PinAction::Rollback,
        &caller.user.username,
        false,
    )
    .await?
    .ok_or_else(|| RegistryError::internal("a rollback", "the pin is missing after it was set"))?;
    to_approval(&moved)
}

async fn changelog(registry: &Registry, release: &VersionRecord) -> Option<String> {
    let artifacts = registry.meta.artifacts(release.id).await.ok()?;
    let a = artifacts
        .iter()
        .find(|a| a.role == ArtifactRole::Changelog)?;
    let len = (a.size.max(0) as u64).min(domain::MAX_CHANGELOG_BYTES as u64);
    let stream = registry.blobs.get(&a.digest, 0, len).await.ok()??;
    let chunks: Vec<bytes::Bytes> = stream.body.try_collect().await.ok()?;
    let text = String::from_utf8_lossy(&chunks.concat()).into_owned();
    Some(text)
}

/// The newer versions of every approved plugin, newest first, with what each asks beyond
/// the approval.
pub async fn updates(registry: &Registry, caller: &Caller, tenant: &str) -> Result<UpdateList> {
    let (record, _) = load(registry, caller, tenant, Need::Member).await?;
    newer_versions(registry, &record, true).await
}

/// The updates of `record`'s approved plugins; the changelogs (a blob read per version)
/// only when they are shown.
async fn newer_versions(
    registry: &Registry,
    record: &TenantRecord,
    with_changelog: bool,
) -> Result<UpdateList> {
    let policy = policy_of(record)?;
    let mut plugins = Vec::new();
    for pin in registry.meta.pins(record.id).await? {
        let granted = reach_of(&pin)?;
        let current = semver::Version::parse(&pin.version)
            .map_err(|e| RegistryError::internal("a stored pin has an unreadable version", e))?;
        let mut newer = Vec::new();
        for v in registry.meta.versions(pin.plugin_id).await? {
            let Ok(parsed) = semver::Version::parse(&v.version) else {
                continue;
            };
            if parsed <= current || v.state == Lifecycle::Removed {
                continue;
            }
            let manifest = manifest_of(&v)?;
            let reach = Reach::of(&manifest);
            let verification = verification_of(registry, &v).await?;
            newer.push((
                parsed,
                AvailableUpdate {
                    version: v.version.clone(),
                    manifest_digest: v.manifest_digest.to_string(),
                    changelog: if with_changelog {
                        changelog(registry, &v).await
                    } else {
                        None
                    },
                    refusal: refusal(&policy, &manifest, verification.as_deref()),
                    verification,
                    lifecycle: v.state.as_str().to_owned(),
                    asks_more: reach.beyond(&granted),
                    asks_less: reach.dropped(&granted),
                },
            ));
        }
        newer.sort_by(|a, b| b.0.cmp(&a.0));
        plugins.push(PluginUpdates {
            plugin: format!("{}/{}", pin.publisher, pin.name),
            current_version: pin.version.clone(),
            current_digest: pin.manifest_digest.clone(),
            previous_version: pin.previous.as_ref().map(|(v, _, _)| v.clone()),
            newer: newer.into_iter().map(|(_, u)| u).collect(),
        });
    }
    Ok(UpdateList {
        tenant: record.name.clone(),
        auto_update: record.auto_update,
        plugins,
    })
}

/// Whether an update may be applied at all: installable and admitted.
fn applicable(update: &AvailableUpdate) -> bool {
    update.refusal.is_none()
        && matches!(update.lifecycle.as_str(), "active" | "deprecated")
        && update.verification.as_deref() != Some("rejected")
}

/// Moves the pins of one plugin (or every plugin) to their newest applicable version
/// (administrators): the administrator approves what they ask beyond the approval.
pub async fn apply(
    registry: &Registry,
    caller: &Caller,
    tenant: &str,
    request: &ApplyUpdates,
) -> Result<AppliedUpdates> {
    let (record, _) = load(registry, caller, tenant, Need::Admin).await?;
    let list = newer_versions(registry, &record, false).await?;
    if let Some(wanted) = &request.plugin
        && !list.plugins.iter().any(|p| &p.plugin == wanted)
    {
        return Err(RegistryError::not_found(format!(
            "tenant {tenant} has not approved {wanted}"
        )));
    }
    let mut out = AppliedUpdates {
        applied: Vec::new(),
        skipped: Vec::new(),
    };
    for p in list.plugins {
        if request.plugin.as_ref().is_some_and(|w| w != &p.plugin) {
            continue;
        }
        let Some(update) = p.newer.iter().find(|u| applicable(u)) else {
            if let Some(newest) = p.newer.first() {
                out.skipped.push(PolicyRefusal {
                    field: p.plugin.clone(),
                    reason: match &newest.refusal {
                        Some(r) => format!("{}: {}: {}", newest.version, r.field, r.reason),
                        None => format!("{} is {}", newest.version, newest.lifecycle),
                    },
                });
            }
            continue;
        };
        let (publisher, name) = p.plugin.split_once('/').unwrap_or_default();
        let plugin = approvable_plugin(registry, &record, publisher, name).await?;
        let release = pick_version(registry, &plugin, Some(&update.version)).await?;
        let manifest = manifest_of(&release)?;
        let pin = move_pin(
            registry,
            &record,
            &plugin,
            Some((&release, &Reach::of(&manifest))),
            PinAction::Update,
            &caller.user.username,
            true,
        )
        .await?;
        if let Some(pin) = pin {
            out.applied.push(to_approval(&pin)?);
        }
    }
    Ok(out)
}

/// After a release's verification: tenants with automatic updates that approve its
/// plugin move their pin to it when it is newer, verified, admitted by their policy and
/// asks for nothing beyond the approval. Never fails the caller (errors are logged).
pub async fn after_verification(registry: &Registry, release: &str, outcome: &str) {
    if outcome != "verified" {
        return;
    }
    if let Err(e) = auto_update(registry, release).await {
        tracing::warn!(release, error = %e, "automatic tenant updates failed");
    }
}

async fn auto_update(registry: &Registry, release: &str) -> Result<()> {
    let Some((plugin_ref, version)) = release.split_once('@') else {
        return Ok(());
    };
    let Some((publisher, name)) = plugin_ref.split_once('/') else {
        return Ok(());
    };
    let Some(plugin) = registry.meta.plugin(publisher, name).await? else {
        return Ok(());
    };
    let Some(candidate) = registry.meta.version(plugin.id, version).await? else {
        return Ok(());
    };
    let Ok(new) = semver::Version::parse(&candidate.version) else {
        return Ok(());
    };
    let manifest = manifest_of(&candidate)?;
    let reach = Reach::of(&manifest);
    for (tenant, pin) in registry.meta.auto_update_pins(plugin.id).await? {
        let newer = semver::Version::parse(&pin.version).is_ok_and(|current| new > current);
        let within = reach.within(&reach_of(&pin)?);
        let policy = policy_of(&tenant)?;
        let admitted = refusal(&policy, &manifest, Some("verified")).is_none();
        if !(newer && within && admitted && installable(candidate.state)) {
            tracing::info!(
                tenant = %tenant.name,
                release,
                newer,
                asks_no_more = within,
                admitted,
                "automatic update not applied"
            );
            continue;
        }
        move_pin(
            registry,
            &tenant,
            &plugin,
            Some((&candidate, &reach)),
            PinAction::AutoUpdate,
            AUTO_UPDATE_ACTOR,
            true,
        )
        .await?;
        tracing::info!(tenant = %tenant.name, release, "automatic update applied");
    }
    Ok(())
}

// ---- instances' own calls ----

/// An instance, authenticated by its credential.
#[derive(Debug, Clone)]
pub struct InstanceCaller {
    pub instance: InstanceRecord,
    pub tenant: TenantRecord,
}

impl InstanceCaller {
    /// What an instance reads: public plugins and those offered to its tenant (so it can
    /// download an entitled private plugin its tenant approved), never another
    /// publisher's private ones.
    pub fn viewer(&self) -> Viewer {
        Viewer::of_tenant(self.tenant.id)
    }
}

/// The instance a credential stands for; unknown or revoked credentials are refused.
pub async fn authenticate_instance(registry: &Registry, token: &str) -> Result<InstanceCaller> {
    match registry.meta.instance_by_token(&hash_token(token)).await? {
        Some((instance, tenant)) => Ok(InstanceCaller { instance, tenant }),
        None => Err(RegistryError::unauthorized(format!(
            "instance credential {}… is unknown or revoked; a tenant administrator can register the instance again",
            token_display_prefix(token)
        ))),
    }
}

/// The instance's desired set. With `after` equal to the tenant's generation, waits up to
/// `wait` (at most [`domain::MAX_WAIT_SECS`]) for a change before answering.
pub async fn desired(
    registry: &Registry,
    instance: &InstanceCaller,
    after: Option<i64>,
    wait: Duration,
) -> Result<DesiredSet> {
    let wait = wait.min(Duration::from_secs(u64::from(domain::MAX_WAIT_SECS)));
    let deadline = tokio::time::Instant::now() + wait;
    let mut tenant = instance.tenant.clone();
    let now = now_ms();
    if instance
        .instance
        .last_seen_at
        .is_none_or(|at| now - at > TOUCH_INTERVAL_MS)
    {
        registry
            .meta
            .touch_instance(instance.instance.id, now)
            .await?;
    }
    let waker = registry.tenant_changed.of(tenant.id);
    let reread = || async {
        registry
            .meta
            .tenant(&instance.tenant.name)
            .await?
            .ok_or_else(|| RegistryError::not_found("the instance's tenant was deleted"))
    };
    while after == Some(tenant.generation) && tokio::time::Instant::now() < deadline {
        // A `Notified` receives every `notify_waiters` made after its creation, so the
        // generation is read again *after* it exists: a change made since the last read
        // (the first one was the credential check's, before any waiter existed) is seen
        // by the read or wakes the wait, never missed until the next recheck.
        let notified = waker.notified();
        tenant = reread().await?;
        if after != Some(tenant.generation) {
            break;
        }
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + WAIT_RECHECK),
            notified,
        )
        .await;
        if tokio::time::Instant::now() >= deadline {
            // The answer carries the newest generation (another replica's change too).
            tenant = reread().await?;
        }
    }
    let plugins = registry
        .meta
        .pins(tenant.id)
        .await?
        .iter()
        .map(|pin| {
            Ok(DesiredPlugin {
                plugin: format!("{}/{}", pin.publisher, pin.name),
                version: pin.version.clone(),
                manifest_digest: pin.manifest_digest.clone(),
                reach: reach_of(pin)?,
                approved_at: pin.approved_at,
                log_index: pin.log_index,
                log_opening: pin.log_opening.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DesiredSet {
        tenant: tenant.name.clone(),
        instance: instance.instance.name.clone(),
        generation: tenant.generation,
        policy: policy_of(&tenant)?,
        plugins,
    })
}

/// Stores an instance's report: what it runs, what failed and its run figures.
pub async fn report(
    registry: &Registry,
    instance: &InstanceCaller,
    report: &InstanceReport,
) -> Result<()> {
    for (field, value) in [
        ("core_version", &report.core_version),
        ("runner_version", &report.runner_version),
        ("platform", &report.platform),
    ] {
        crate::error::one_line(field, value)?;
        if value.len() > 64 {
            return Err(RegistryError::field(
                field,
                "is longer than 64 characters",
                Some("a version or platform name"),
            ));
        }
    }
    for (field, len) in [
        ("plugins", report.plugins.len()),
        ("failures", report.failures.len()),
        ("runs", report.runs.len()),
    ] {
        if len > domain::MAX_REPORT_ITEMS {
            return Err(RegistryError::field(
                field,
                format!("lists {len} items"),
                Some(&format!("at most {}", domain::MAX_REPORT_ITEMS)),
            ));
        }
    }
    for (i, f) in report.failures.iter().enumerate() {
        crate::error::multi_line(&format!("failures[{i}].reason"), &f.reason)?;
    }
    crate::analytics::check_executions(report)?;
    let json = serde_json::to_string(report)
        .map_err(|e| RegistryError::internal("cannot write a report", e))?;
    if json.len() > domain::MAX_REPORT_BYTES {
        return Err(RegistryError::new(
            agora_core::ProblemKind::TooLarge,
            format!(
                "the report is {} bytes; at most {} are accepted",
                json.len(),
                domain::MAX_REPORT_BYTES
            ),
        ));
    }
    let detail = (!report.converged()).then(|| {
        report
            .failures
            .iter()
            .map(|f| format!("{}@{}: {}", f.plugin, f.version, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
    });
    registry
        .meta
        .record_instance_report(
            instance.instance.id,
            &InstanceReportRecord {
                at: now_ms(),
                core_version: report.core_version.clone(),
                runner_version: report.runner_version.clone(),
                platform: report.platform.clone(),
                generation: report.generation,
                state: if report.converged() {
                    "converged".to_owned()
                } else {
                    "failed".to_owned()
                },
                detail: detail.map(|d| crate::truncate(&d)),
                report: json,
            },
        )
        .await?;
    crate::analytics::instance_reported(registry, instance.tenant.id, instance.instance.id, report)
        .await
}

/// Which instance runs which digest, which are behind, which failed and why.
pub async fn fleet(registry: &Registry, caller: &Caller, tenant: &str) -> Result<FleetView> {
    let (record, _) = load(registry, caller, tenant, Need::Member).await?;
    let pins = registry.meta.pins(record.id).await?;
    let mut instances = Vec::new();
    for i in registry.meta.instances(record.id).await? {
        if i.revoked_at.is_some() {
            continue;
        }
        let report: Option<InstanceReport> = i
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        let (plugins, failures, runs) = report
            .map(|r| (r.plugins, r.failures, r.runs))
            .unwrap_or_default();
        instances.push(FleetInstance {
            behind: i.generation.is_none_or(|g| g < record.generation),
            instance: to_instance(&i),
            plugins,
            failures,
            runs,
        });
    }
    let plugins = pins
        .iter()
        .map(|pin| {
            let id = format!("{}/{}", pin.publisher, pin.name);
            let mut view = FleetPlugin {
                plugin: id.clone(),
                approved_version: pin.version.clone(),
                approved_digest: pin.manifest_digest.clone(),
                current: Vec::new(),
                behind: Vec::new(),
                failed: Vec::new(),
            };
            for i in &instances {
                let name = i.instance.name.clone();
                if let Some(f) = i.failures.iter().find(|f| f.plugin == id) {
                    view.failed.push(domain::FleetFailure {
                        instance: name.clone(),
                        version: f.version.clone(),
                        reason: f.reason.clone(),
                    });
                }
                if i.plugins
                    .iter()
                    .any(|p| p.plugin == id && p.manifest_digest == pin.manifest_digest)
                {
                    view.current.push(name);
                } else {
                    view.behind.push(name);
                }
            }
            view
        })
        .collect();
    Ok(FleetView {
        tenant: record.name.clone(),
        generation: record.generation,
        instances,
        plugins,
    })
}
