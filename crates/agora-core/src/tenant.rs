//! Tenants: organisations whose instances (host installations) run an approved set of
//! plugins, each entry pinned to a version and its manifest digest, under the tenant's
//! policy (the same model as a host's policy file, [`crate::policy::HostPolicy`]).
//!
//! This module holds the pure rules — roles, what a release can reach ([`Reach`]) and
//! whether an update asks for more than was approved — and the wire types of
//! `/api/v1/tenants` and `/api/v1/instance`. The use cases are
//! `agora_registry::tenants`; the agent that converges an instance is
//! `agora_client::agent`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::manifest::Manifest;
use crate::policy::HostRule;

/// The most instances one tenant may register.
pub const MAX_INSTANCES: u32 = 1_000;
/// The most plugins one tenant may approve.
pub const MAX_APPROVED: u32 = 500;
/// The most members one tenant may have.
pub const MAX_MEMBERS: u32 = 1_000;
/// The most tenants one registry holds.
pub const MAX_TENANTS: u32 = 10_000;
/// The largest instance report accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;
/// The most plugins, failures or run statistics one report may list.
pub const MAX_REPORT_ITEMS: usize = 1_000;
/// The longest an agent's long poll may wait for a change, in seconds.
pub const MAX_WAIT_SECS: u32 = 60;
/// Instance credentials start with this, so a leaked one is recognisable.
pub const INSTANCE_TOKEN_PREFIX: &str = "agi_";
/// The longest changelog excerpt the update list carries, in bytes.
pub const MAX_CHANGELOG_BYTES: usize = 16 * 1024;

/// What a member may do in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantRole {
    /// Approves, updates and removes plugins, sets the policy, registers instances and
    /// manages members.
    Admin,
    /// Sees the approved set, the updates and the fleet.
    Member,
}

impl TenantRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantRole::Admin => "admin",
            TenantRole::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<TenantRole> {
        match text {
            "admin" => Some(TenantRole::Admin),
            "member" => Some(TenantRole::Member),
            _ => None,
        }
    }
}

/// What a release will be able to reach once it runs, as its manifest declares it: the
/// outbound hosts, the secrets, the capabilities and the callbacks to the host's core.
/// An approval grants exactly this.
///
/// Callbacks are held among the capabilities, as `callback:NAME` (a manifest's
/// capabilities never hold a `:`): an update declaring a new callback asks for more, and
/// every reader of a reach (previews, updates, stored approvals) shows it without a field
/// of its own. [`Reach::callbacks`] lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reach {
    /// `wasm` or `exec`.
    pub runtime: String,
    pub hosts: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    /// The manifest's capabilities, and `callback:NAME` for each callback it declares.
    pub capabilities: BTreeSet<String>,
}

/// How a callback a release declares is written among a [`Reach`]'s capabilities.
pub const CALLBACK_CAPABILITY_PREFIX: &str = "callback:";

impl Reach {
    pub fn of(manifest: &Manifest) -> Reach {
        Reach {
            runtime: manifest.runtime.kind.as_str().to_owned(),
            hosts: manifest
                .network
                .outbound_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            secrets: manifest.secrets.iter().cloned().collect(),
            capabilities: manifest
                .capabilities
                .iter()
                .cloned()
                .chain(
                    manifest
                        .callbacks
                        .iter()
                        .map(|c| format!("{CALLBACK_CAPABILITY_PREFIX}{c}")),
                )
                .collect(),
        }
    }

    /// The callbacks to the host's core this reaches (`notes.add`).
    pub fn callbacks(&self) -> impl Iterator<Item = &str> {
        self.capabilities
            .iter()
            .filter_map(|c| c.strip_prefix(CALLBACK_CAPABILITY_PREFIX))
    }

    /// What this asks for that `approved` did not grant: hosts not within an approved
    /// host rule, new secrets, new capabilities, and a different runtime.
    pub fn beyond(&self, approved: &Reach) -> Reach {
        let granted: Vec<HostRule> = approved
            .hosts
            .iter()
            .filter_map(|h| HostRule::parse(h).ok())
            .collect();
        Reach {
            runtime: if self.runtime == approved.runtime {
                String::new()
            } else {
                self.runtime.clone()
            },
            hosts: self
                .hosts
                .iter()
                .filter(|h| match HostRule::parse(h) {
                    Ok(rule) => !granted.iter().any(|g| rule.within(g)),
                    Err(_) => true,
                })
                .cloned()
                .collect(),
            secrets: self
                .secrets
                .difference(&approved.secrets)
                .cloned()
                .collect(),
            capabilities: self
                .capabilities
                .difference(&approved.capabilities)
                .cloned()
                .collect(),
        }
    }

    /// Nothing at all (the result of [`Reach::beyond`] for an update that asks for no more).
    pub fn is_empty(&self) -> bool {
        self.runtime.is_empty()
            && self.hosts.is_empty()
            && self.secrets.is_empty()
            && self.capabilities.is_empty()
    }

    /// Whether everything this asks for was granted by `approved`.
    pub fn within(&self, approved: &Reach) -> bool {
        self.beyond(approved).is_empty()
    }

    /// What `approved` granted that this no longer asks for.
    pub fn dropped(&self, approved: &Reach) -> Reach {
        approved.beyond(self)
    }
}

/// Why a pin moved: each is a transparency log entry of kind `approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PinAction {
    /// A plugin entered the approved set.
    Approve,
    /// An administrator moved the pin to another version.
    Update,
    /// The tenant's automatic updates moved the pin (the release asked for no more).
    AutoUpdate,
    /// The pin went back to the version it had before.
    Rollback,
    /// The plugin left the approved set.
    Remove,
}

impl PinAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PinAction::Approve => "approve",
            PinAction::Update => "update",
            PinAction::AutoUpdate => "auto-update",
            PinAction::Rollback => "rollback",
            PinAction::Remove => "remove",
        }
    }

    pub fn parse(text: &str) -> Option<PinAction> {
        [
            PinAction::Approve,
            PinAction::Update,
            PinAction::AutoUpdate,
            PinAction::Rollback,
            PinAction::Remove,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

// ---- wire types ----

/// `POST /api/v1/tenants` (registry administrators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits and `-`, as a publisher's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The user who becomes its first administrator (default: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

/// A tenant as its members see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    pub display_name: Option<String>,
    /// The caller's role in it (`None` for a registry administrator who is not a member).
    pub role: Option<TenantRole>,
    /// Updates that ask for no more than was approved are applied without an administrator.
    pub auto_update: bool,
    /// Bumped by every change an instance must act on (approved set, policy).
    pub generation: i64,
    pub created_at: i64,
}

/// `GET /api/v1/tenants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

/// `PUT /api/v1/tenants/{tenant}/policy`; also what `GET` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    /// The same fields as a host's policy file (`mode`, `first_party`, `allow`, `deny`,
    /// `runtimes`, `limits`, `defaults`, `network`, `secrets`, `callbacks`,
    /// `require_verified`); secret grants name no source.
    #[schema(value_type = Object)]
    pub policy: crate::policy::HostPolicy,
    /// Apply updates that ask for no more than was approved without waiting for an
    /// administrator.
    #[serde(default)]
    pub auto_update: bool,
}

/// A tenant member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantMember {
    pub user: String,
    pub role: TenantRole,
}

/// `GET /api/v1/tenants/{tenant}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantMemberList {
    pub members: Vec<TenantMember>,
}

/// `PUT /api/v1/tenants/{tenant}/members/{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTenantMember {
    pub role: TenantRole,
}

/// A private plugin offered to a tenant: the tenant's members and instances see it, and
/// its administrators may approve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entitlement {
    /// `publisher/name`.
    pub plugin: String,
    pub tenant: String,
    pub granted_by: String,
    /// Unix milliseconds.
    pub granted_at: i64,
}

/// `GET /api/v1/plugins/{publisher}/{name}/entitlements` and
/// `GET /api/v1/tenants/{tenant}/entitlements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntitlementList {
    pub entitlements: Vec<Entitlement>,
}

/// What revoking an entitlement did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokedEntitlement {
    /// Whether the tenant held the entitlement.
    pub revoked: bool,
    /// Whether the tenant had the plugin approved, and it was removed from its set (its
    /// instances remove it when they next converge).
    pub pin_removed: bool,
}

/// `POST /api/v1/tenants/{tenant}/instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterInstance {
    /// Unique in the tenant: lowercase letters, digits and `-`.
    pub name: String,
}

/// An instance as the fleet sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    pub name: String,
    pub created_at: i64,
    pub revoked: bool,
    /// When it last asked for its set or reported (Unix ms).
    pub last_seen_at: Option<i64>,
    pub core_version: Option<String>,
    pub runner_version: Option<String>,
    /// `linux-x86_64`, ...
    pub platform: Option<String>,
    /// The tenant generation its last report applied.
    pub generation: Option<i64>,
    /// `converged`, `failed` or `unknown` (never reported).
    pub state: String,
    /// Why it did not converge.
    pub detail: Option<String>,
}

/// The answer to an instance registration: the credential is shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisteredInstance {
    pub instance: Instance,
    /// `agi_...`: what `agora agent --token-file` reads.
    pub token: String,
}

/// `GET /api/v1/tenants/{tenant}/instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<Instance>,
}

/// One entry of a tenant's approved set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// `publisher/name`.
    pub plugin: String,
    pub version: String,
    /// The manifest digest the pin holds: what runs is this, whatever moves later.
    pub manifest_digest: String,
    /// What the approval grants.
    pub reach: Reach,
    pub approved_by: String,
    pub approved_at: i64,
    /// Its transparency log entry (sealed: it names the tenant).
    pub log_index: i64,
    /// The version before the last move, which `rollback` returns to.
    pub previous_version: Option<String>,
}

/// `GET /api/v1/tenants/{tenant}/plugins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalList {
    pub plugins: Vec<Approval>,
}

/// `PUT /api/v1/tenants/{tenant}/plugins/{publisher}/{name}`: approve a plugin, or move
/// its pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub version: String,
    /// The manifest digest the administrator saw: refused if the release differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
}

/// Whether one instance can run a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceFit {
    pub instance: String,
    pub compatible: bool,
    /// Why not, when it is not.
    pub reason: Option<String>,
}

/// A refusal by the tenant's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRefusal {
    /// The manifest field or policy rule concerned.
    pub field: String,
    pub reason: String,
}

/// `GET /api/v1/tenants/{tenant}/plugins/{publisher}/{name}/preview?version=`: what an
/// approval would grant, before it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstallPreview {
    pub tenant: String,
    pub plugin: String,
    pub version: String,
    pub manifest_digest: String,
    /// Everything the release can reach.
    pub reach: Reach,
    /// What it asks beyond the current approval (when one exists).
    pub beyond_approved: Option<Reach>,
    /// The version approved now, if any.
    pub approved_version: Option<String>,
    /// The tenant's policy refuses it (then it cannot be approved).
    pub refusal: Option<PolicyRefusal>,
    /// The release's lifecycle state (`active`, `deprecated`, `insecure`, `yanked`).
    pub lifecycle: String,
    /// The registry's verification outcome, when one was drawn.
    pub verification: Option<String>,
    /// Each registered instance: can it run it (platform, runtime, core version)?
    pub instances: Vec<InstanceFit>,
}

/// One newer version of an approved plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvailableUpdate {
    pub version: String,
    pub manifest_digest: String,
    /// The release's changelog (Markdown, cut at a bound), if it has one.
    pub changelog: Option<String>,
    pub verification: Option<String>,
    pub lifecycle: String,
    /// What it asks beyond the current approval: empty means it asks for no more.
    pub asks_more: Reach,
    /// What the current approval grants that it no longer asks for.
    pub asks_less: Reach,
    /// The tenant's policy refuses it.
    pub refusal: Option<PolicyRefusal>,
}

/// The updates of one approved plugin, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginUpdates {
    pub plugin: String,
    pub current_version: String,
    pub current_digest: String,
    pub previous_version: Option<String>,
    pub newer: Vec<AvailableUpdate>,
}

/// `GET /api/v1/tenants/{tenant}/updates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateList {
    pub tenant: String,
    pub auto_update: bool,
    pub plugins: Vec<PluginUpdates>,
}

/// `POST /api/v1/tenants/{tenant}/updates/apply`: move pins to the newest installable
/// version (one plugin, or all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyUpdates {
    /// `publisher/name`; none: every approved plugin with an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliedUpdates {
    pub applied: Vec<Approval>,
    /// Plugins left where they were, and why.
    pub skipped: Vec<PolicyRefusal>,
}

/// One entry of an instance's desired set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DesiredPlugin {
    pub plugin: String,
    pub version: String,
    pub manifest_digest: String,
    pub reach: Reach,
    pub approved_at: i64,
    /// The approval's transparency log entry, and its opening (the sealed entry in
    /// clear), so the instance can prove what it was allowed to run and since when.
    pub log_index: i64,
    pub log_opening: Option<String>,
}

/// `GET /api/v1/instance/desired`: what an instance should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DesiredSet {
    pub tenant: String,
    pub instance: String,
    pub generation: i64,
    #[schema(value_type = Object)]
    pub policy: crate::policy::HostPolicy,
    pub plugins: Vec<DesiredPlugin>,
}

/// One plugin an instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedPlugin {
    pub plugin: String,
    pub version: String,
    pub manifest_digest: String,
}

/// A plugin an instance did not converge to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedFailure {
    pub plugin: String,
    pub version: String,
    pub reason: String,
}

/// Execution figures of one plugin version since the agent started, from the runner's
/// audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStats {
    pub plugin: String,
    pub version: String,
    pub calls: u64,
    pub failures: u64,
    pub total_ms: u64,
    /// The last failure's message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `POST /api/v1/instance/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceReport {
    pub core_version: String,
    pub runner_version: String,
    pub platform: String,
    /// The generation of the desired set this report is about.
    pub generation: i64,
    /// What it runs now.
    pub plugins: Vec<ReportedPlugin>,
    /// What it could not install or was not allowed to run.
    #[serde(default)]
    pub failures: Vec<ReportedFailure>,
    #[serde(default)]
    pub runs: Vec<RunStats>,
    /// Runs since the report this agent last had accepted (deltas, for analytics), and
    /// that batch's number: a batch whose number is not above the last one accepted from
    /// this instance is not counted again (a report sent twice counts once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executions: Vec<crate::analytics::Execution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
}

impl InstanceReport {
    pub fn converged(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One instance in the fleet view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FleetInstance {
    #[serde(flatten)]
    pub instance: Instance,
    /// Its report's generation is older than the tenant's.
    pub behind: bool,
    pub plugins: Vec<ReportedPlugin>,
    pub failures: Vec<ReportedFailure>,
    pub runs: Vec<RunStats>,
}

/// One approved plugin across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FleetPlugin {
    pub plugin: String,
    pub approved_version: String,
    pub approved_digest: String,
    /// Instances that run the approved digest.
    pub current: Vec<String>,
    /// Instances that run another version of it, or none yet.
    pub behind: Vec<String>,
    /// Instances that reported they could not run it, and why.
    pub failed: Vec<FleetFailure>,
}

/// An instance that could not converge to a plugin's approved version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FleetFailure {
    pub instance: String,
    /// The version it could not run.
    pub version: String,
    pub reason: String,
}

/// `GET /api/v1/tenants/{tenant}/fleet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FleetView {
    pub tenant: String,
    pub generation: i64,
    pub instances: Vec<FleetInstance>,
    pub plugins: Vec<FleetPlugin>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(hosts: &[&str], secrets: &[&str], caps: &[&str]) -> Reach {
        Reach {
            runtime: "wasm".into(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_update_declaring_a_new_callback_asks_for_more() {
        let manifest = |extra: &str| {
            Manifest::from_yaml(&format!(
                "api_version: agora/v1\npublisher: acme\nname: notes\nversion: 1.0.0\n\
                 description: d\nlicense: MIT\nruntime: {{ type: wasm, module: p.wasm }}\n{extra}"
            ))
            .unwrap()
        };
        let approved = Reach::of(&manifest("callbacks: [notes.add]\n"));
        assert_eq!(approved.callbacks().collect::<Vec<_>>(), ["notes.add"]);
        assert!(Reach::of(&manifest("")).within(&approved));
        assert!(Reach::of(&manifest("callbacks: [notes.add]\n")).within(&approved));
        let more = Reach::of(&manifest("callbacks: [notes.add, notes.delete]\n"));
        let beyond = more.beyond(&approved);
        assert!(!beyond.is_empty());
        assert_eq!(beyond.callbacks().collect::<Vec<_>>(), ["notes.delete"]);
        assert_eq!(
            beyond.capabilities.iter().collect::<Vec<_>>(),
            ["callback:notes.delete"]
        );
        // Dropping a callback asks for nothing more, and says what was dropped.
        let fewer = Reach::of(&manifest(""));
        assert!(fewer.beyond(&approved).is_empty());
        assert_eq!(
            fewer.dropped(&approved).callbacks().collect::<Vec<_>>(),
            ["notes.add"]
        );
    }

    #[test]
    fn an_update_asks_for_more_only_beyond_what_was_granted() {
        let approved = reach(&["*.example.com", "api.b.org"], &["TOKEN"], &["http"]);
        assert!(reach(&["x.example.com"], &[], &[]).within(&approved));
        assert!(approved.within(&approved));
        let more = reach(
            &["api.b.org", "evil.net"],
            &["TOKEN", "KEY"],
            &["http", "fs"],
        );
        let beyond = more.beyond(&approved);
        assert_eq!(
            beyond,
            reach(&["evil.net"], &["KEY"], &["fs"]).with_runtime("")
        );
        assert!(!more.within(&approved));
        let mut exec = approved.clone();
        exec.runtime = "exec".into();
        assert!(!exec.within(&approved), "a runtime change asks for more");
        assert_eq!(
            reach(&[], &[], &[]).dropped(&approved),
            approved.clone().with_runtime("")
        );
        // A port outside the approved host rule is more.
        assert!(!reach(&["api.b.org:22"], &[], &[]).within(&approved));
    }

    impl Reach {
        fn with_runtime(mut self, runtime: &str) -> Reach {
            self.runtime = runtime.into();
            self
        }
    }

    #[test]
    fn roles_and_actions_read_back() {
        for role in [TenantRole::Admin, TenantRole::Member] {
            assert_eq!(TenantRole::parse(role.as_str()), Some(role));
        }
        for action in [PinAction::Approve, PinAction::AutoUpdate, PinAction::Remove] {
            assert_eq!(PinAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(TenantRole::parse("owner"), None);
    }
}
