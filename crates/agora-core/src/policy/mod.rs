//! The host policy: what this host lets plugins do, and the admission of one manifest
//! under it. Pure: reading the file is the caller's job ([`HostPolicy::from_toml`]).
//!
//! A manifest asks (memory, timeouts, open files, outbound hosts, secrets); the policy
//! caps. Asking for more than the cap refuses the plugin before it starts, naming the
//! field, what it asked and what the policy allows. Fields a manifest leaves out get the
//! policy's default, itself never above the cap.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::{Manifest, RuntimeKind};
use serde::{Deserialize, Serialize};

mod hosts;
mod registries;

/// The newest Landlock ABI the runner builds rules for (Linux 6.12): its scopes add to
/// what the PID and network namespaces already keep in.
pub const NEWEST_LANDLOCK_ABI: u8 = 6;

pub use hosts::{HostRule, is_internal};
pub use registries::{
    ALLOWED_REGISTRIES_SETTING, DEFAULT_REGISTRY, ImageRef, check_allowed_registries,
    registry_allowed, registry_refusal,
};

/// Which publishers' plugins may run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Only plugins of the publishers listed in `first_party`.
    FirstParty,
    /// First-party plugins and those matching `allow`.
    #[default]
    Curated,
    /// Anything not matching `deny`.
    Open,
}

/// Resource figures: the policy's ceilings, its defaults, or what one launch gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Memory: WASM linear memory, or the cgroup memory limit of a native plugin.
    pub memory_mb: u32,
    /// Wall-clock time for one request.
    pub timeout_ms: u32,
    /// Open file descriptors of a native plugin.
    pub max_fds: u32,
    /// CPU seconds a native plugin process may use in its life.
    pub cpu_secs: u32,
    /// Processes (and threads) a native plugin may have at once.
    pub max_processes: u32,
    /// Size of a native plugin's work directory (a tmpfs; its pages also count as memory).
    pub disk_mb: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 256,
            timeout_ms: 30_000,
            max_fds: 256,
            cpu_secs: 60,
            max_processes: 32,
            disk_mb: 1024,
        }
    }
}

/// Where the value of a granted secret comes from on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretGrant {
    /// Plugin pattern: `publisher/name`, `publisher/*` or `*`.
    pub plugin: String,
    /// The name the plugin asks for in its manifest's `secrets` and sees in its environment.
    pub name: String,
    /// Host environment variable holding the value.
    #[serde(default)]
    pub from_env: Option<String>,
    /// File holding the value (trailing newline removed).
    #[serde(default)]
    pub from_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkPolicy {
    /// The most any plugin may reach: `host`, `host:port` or `*.domain` (a bare host
    /// allows ports 80 and 443).
    pub allowed_hosts: Vec<String>,
    /// Let allowed names resolve to loopback, private or link-local addresses (off: a
    /// public name pointing inside the host's network is refused, against DNS rebinding).
    pub allow_private_addresses: bool,
}

/// Where `runtime.type: oci` plugins' images may come from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OciPolicy {
    /// Registries images are pulled from: `host` (HTTPS on 443), `host:port` or
    /// `*.domain`, as `runtime.image` names them (`docker.io` for a name without a
    /// registry). Empty (the default): no OCI image is admitted.
    pub allowed_registries: Vec<String>,
}

/// What to do when this kernel cannot build the full native sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeakerSandbox {
    /// Run native plugins with the layers the kernel has; warn (and audit) what is missing.
    #[default]
    Warn,
    /// Do not start a native plugin unless the full sandbox can be built.
    Refuse,
}

/// The native sandbox on this host's kernel (see `agora doctor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxPolicy {
    /// When the kernel's Landlock is older than the full sandbox needs (ABI 5, Linux
    /// 6.10): `warn` or `refuse`. Without Landlock at all, native plugins never run.
    pub weaker: WeakerSandbox,
    /// Build Landlock rules for at most this ABI (1 to 6), whatever the kernel offers:
    /// the same rules on every host of a fleet. Unset: the kernel's best.
    pub landlock_max_abi: Option<u8>,
}

impl SandboxPolicy {
    /// The sandbox a host inside a tenant runs with: `refuse` when either refuses a weaker
    /// sandbox, and the lower `landlock_max_abi` of both.
    pub fn with_tenant(self, tenant: Option<&SandboxPolicy>) -> SandboxPolicy {
        let Some(tenant) = tenant else {
            return self;
        };
        SandboxPolicy {
            weaker: match (self.weaker, tenant.weaker) {
                (WeakerSandbox::Warn, WeakerSandbox::Warn) => WeakerSandbox::Warn,
                _ => WeakerSandbox::Refuse,
            },
            landlock_max_abi: match (self.landlock_max_abi, tenant.landlock_max_abi) {
                (Some(host), Some(tenant)) => Some(host.min(tenant)),
                (host, tenant) => host.or(tenant),
            },
        }
    }
}

/// The host policy file (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostPolicy {
    pub mode: Mode,
    /// Publishers whose plugins are first-party here.
    pub first_party: Vec<String>,
    /// Plugin patterns allowed in curated mode.
    pub allow: Vec<String>,
    /// Plugin patterns never allowed, in every mode.
    pub deny: Vec<String>,
    /// Runtimes allowed on this host.
    pub runtimes: Vec<RuntimeKind>,
    /// Ceilings: no launch gets more.
    pub limits: Limits,
    /// What a launch gets when its manifest does not say (capped by `limits`).
    pub defaults: Limits,
    pub network: NetworkPolicy,
    pub secrets: Vec<SecretGrant>,
    /// The host core's callbacks plugins may call through the runner: exact names
    /// (`notes.add`) or every name under a prefix (`notes.*`). A plugin declaring a
    /// callback outside this list is refused.
    pub callbacks: Vec<String>,
    pub sandbox: SandboxPolicy,
    pub oci: OciPolicy,
    /// Run only releases whose registry verification was `verified` when they were
    /// installed (as `agora.lock` records it).
    pub require_verified: bool,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            mode: Mode::Curated,
            first_party: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            runtimes: vec![RuntimeKind::Wasm, RuntimeKind::Exec],
            limits: Limits::default(),
            defaults: Limits {
                memory_mb: 128,
                timeout_ms: 10_000,
                max_fds: 64,
                cpu_secs: 30,
                max_processes: 16,
                disk_mb: 64,
            },
            network: NetworkPolicy::default(),
            secrets: Vec::new(),
            callbacks: Vec::new(),
            sandbox: SandboxPolicy::default(),
            oci: OciPolicy::default(),
            require_verified: false,
        }
    }
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

/// Why a plugin may not run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The manifest field or policy rule concerned.
    pub field: String,
    pub reason: String,
}

/// What ends the reason of a refusal by a tenant's policy.
const TENANTS: &str = " (tenant policy)";

impl Refusal {
    /// The same refusal, worded as a tenant's policy's rather than a host's.
    pub fn as_tenants(self) -> Refusal {
        Refusal {
            field: self.field,
            reason: format!(
                "{}{TENANTS}",
                self.reason.replace("this host", "the tenant")
            ),
        }
    }

    /// Whether a tenant's policy refused (see [`Refusal::as_tenants`]), not the host's.
    pub fn is_tenants(&self) -> bool {
        self.reason.ends_with(TENANTS)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What one admitted plugin gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    pub limits: Limits,
    /// Per entrypoint name, its timeout in milliseconds.
    pub entrypoint_timeouts: BTreeMap<String, u32>,
    pub hosts: Vec<HostRule>,
    pub allow_private_addresses: bool,
    /// Secrets granted, with where their values come from.
    pub secrets: Vec<SecretGrant>,
    /// Callbacks to the host's core the plugin may make: those it declares that the
    /// policy allows.
    pub callbacks: Vec<String>,
}

impl Grant {
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|rule| rule.allows(host, port))
    }

    pub fn allows_callback(&self, name: &str) -> bool {
        self.callbacks.iter().any(|c| c == name)
    }

    pub fn timeout_ms(&self, entrypoint: &str) -> u32 {
        self.entrypoint_timeouts
            .get(entrypoint)
            .copied()
            .unwrap_or(self.limits.timeout_ms)
    }
}

/// Who holds a policy: a host (its file) or a tenant (the registry).
#[derive(Clone, Copy)]
enum Holder {
    Host,
    Tenant,
}

/// Whether an entry of a policy's `callbacks` (`notes.add`, or `notes.*` for every name
/// under `notes.`) allows the callback `name`.
pub fn callback_matches(entry: &str, name: &str) -> bool {
    match entry.strip_suffix(".*") {
        Some(prefix) => name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => entry == name,
    }
}

/// `publisher/name`, `publisher/*` or `*`.
pub fn pattern_matches(pattern: &str, publisher: &str, name: &str) -> bool {
    match pattern.split_once('/') {
        _ if pattern == "*" => true,
        Some((p, "*")) => p == publisher,
        Some((p, n)) => p == publisher && n == name,
        None => false,
    }
}

impl HostPolicy {
    /// Parses and checks a policy file.
    pub fn from_toml(text: &str) -> Result<HostPolicy, PolicyError> {
        let policy: HostPolicy = toml::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// Checks a host's policy: every secret grant says where its value comes from.
    pub fn check(&self) -> Result<(), PolicyError> {
        self.check_as(Holder::Host)
    }

    /// Checks a tenant's policy (the same model, held by the registry): a secret grant
    /// only permits a plugin to receive the secret; its value never leaves the host, so
    /// `from_env` and `from_file` are refused.
    pub fn check_for_tenant(&self) -> Result<(), PolicyError> {
        self.check_as(Holder::Tenant)
    }

    /// Admits `manifest` under this host's policy and, when the host belongs to a tenant,
    /// the tenant's too: each must admit it (a tenant refusal says so), and the launch
    /// gets the smaller of both grants' figures; secret values come from the host.
    pub fn admit_with(
        &self,
        tenant: Option<&HostPolicy>,
        manifest: &Manifest,
    ) -> Result<Grant, Refusal> {
        let mut grant = self.admit(manifest)?;
        let Some(tenant) = tenant else {
            return Ok(grant);
        };
        let theirs = tenant.admit(manifest).map_err(Refusal::as_tenants)?;
        let (mine, other) = (&mut grant.limits, &theirs.limits);
        mine.memory_mb = mine.memory_mb.min(other.memory_mb);
        mine.timeout_ms = mine.timeout_ms.min(other.timeout_ms);
        mine.max_fds = mine.max_fds.min(other.max_fds);
        mine.cpu_secs = mine.cpu_secs.min(other.cpu_secs);
        mine.max_processes = mine.max_processes.min(other.max_processes);
        mine.disk_mb = mine.disk_mb.min(other.disk_mb);
        for (entry, timeout) in grant.entrypoint_timeouts.iter_mut() {
            if let Some(t) = theirs.entrypoint_timeouts.get(entry) {
                *timeout = (*timeout).min(*t);
            }
        }
        grant.allow_private_addresses &= theirs.allow_private_addresses;
        grant.callbacks.retain(|c| theirs.callbacks.contains(c));
        Ok(grant)
    }

    fn check_as(&self, holder: Holder) -> Result<(), PolicyError> {
        for rule in &self.network.allowed_hosts {
            HostRule::parse(rule)
                .map_err(|e| PolicyError(format!("network.allowed_hosts: {e}")))?;
        }
        check_allowed_registries(&self.oci.allowed_registries)
            .map_err(|e| PolicyError(format!("oci.allowed_registries: {e}")))?;
        for (list, patterns) in [("allow", &self.allow), ("deny", &self.deny)] {
            for p in patterns.iter() {
                if p != "*" && p.split_once('/').is_none() {
                    return Err(PolicyError(format!(
                        "{list}: `{p}` is not a plugin pattern (expected `publisher/name`, `publisher/*` or `*`)"
                    )));
                }
            }
        }
        for entry in &self.callbacks {
            let name = entry.strip_suffix(".*").unwrap_or(entry);
            if !crate::manifest::is_callback_name(name) {
                return Err(PolicyError(format!(
                    "callbacks: `{entry}` is not a callback name or prefix (expected a name such as \
                     `notes.add`, or `notes.*` for every name under `notes.`: lowercase segments \
                     joined by `.`, each a letter followed by letters, digits or `-`)"
                )));
            }
        }
        for grant in &self.secrets {
            let name = &grant.name;
            let well_formed = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            let reserved = name.starts_with("AGORA_")
                || name.starts_with("LD_")
                || ["HOME", "TMPDIR", "PATH"].contains(&name.as_str());
            if !well_formed || reserved {
                return Err(PolicyError(format!(
                    "secrets: `{name}` cannot be a secret's name (expected UPPER_CASE letters, \
                     digits and _, not AGORA_*, LD_*, HOME, TMPDIR or PATH)"
                )));
            }
            if grant.plugin != "*" && grant.plugin.split_once('/').is_none() {
                return Err(PolicyError(format!(
                    "secrets: `{}` is not a plugin pattern (expected `publisher/name`, `publisher/*` or `*`)",
                    grant.plugin
                )));
            }
            match holder {
                Holder::Host if grant.from_env.is_some() == grant.from_file.is_some() => {
                    return Err(PolicyError(format!(
                        "secrets: the grant of `{}` to `{}` needs exactly one of from_env or from_file",
                        grant.name, grant.plugin
                    )));
                }
                Holder::Tenant if grant.from_env.is_some() || grant.from_file.is_some() => {
                    return Err(PolicyError(format!(
                        "secrets: the grant of `{}` to `{}` names where its value comes from; \
                         a tenant's policy only permits a secret, each host supplies its value",
                        grant.name, grant.plugin
                    )));
                }
                _ => {}
            }
        }
        if let Some(abi) = self.sandbox.landlock_max_abi
            && !(1..=NEWEST_LANDLOCK_ABI).contains(&abi)
        {
            return Err(PolicyError(format!(
                "sandbox.landlock_max_abi is {abi}; expected 1 to {} (native plugins never run without Landlock)",
                NEWEST_LANDLOCK_ABI
            )));
        }
        let (l, d) = (&self.limits, &self.defaults);
        for (field, default, ceiling) in [
            ("memory_mb", d.memory_mb, l.memory_mb),
            ("timeout_ms", d.timeout_ms, l.timeout_ms),
            ("max_fds", d.max_fds, l.max_fds),
            ("cpu_secs", d.cpu_secs, l.cpu_secs),
            ("max_processes", d.max_processes, l.max_processes),
            ("disk_mb", d.disk_mb, l.disk_mb),
        ] {
            if ceiling == 0 {
                return Err(PolicyError(format!("limits.{field} must be above 0")));
            }
            if default > ceiling {
                return Err(PolicyError(format!(
                    "defaults.{field} is {default}, above limits.{field} ({ceiling})"
                )));
            }
        }
        Ok(())
    }

    /// An OCI plugin's image must be pinned by digest and come from a registry on
    /// `[oci] allowed_registries`.
    fn admit_image(&self, manifest: &Manifest) -> Result<(), Refusal> {
        let refuse = |reason: String| Refusal {
            field: "runtime.image".to_owned(),
            reason,
        };
        let image = manifest
            .runtime
            .image
            .as_deref()
            .ok_or_else(|| refuse("an oci plugin names no image".to_owned()))?;
        let image = ImageRef::parse(image).map_err(refuse)?;
        if !registry_allowed(&self.oci.allowed_registries, &image.registry) {
            return Err(refuse(registry_refusal(
                &self.oci.allowed_registries,
                &image.registry,
                "this host",
            )));
        }
        Ok(())
    }

    /// Decides whether `manifest` may run here and with what; every excess is a refusal
    /// naming the field.
    pub fn admit(&self, manifest: &Manifest) -> Result<Grant, Refusal> {
        let (publisher, name) = (manifest.publisher.as_str(), manifest.name.as_str());
        let id = format!("{publisher}/{name}");
        let refuse = |field: &str, reason: String| Refusal {
            field: field.to_owned(),
            reason,
        };
        if let Some(p) = self
            .deny
            .iter()
            .find(|p| pattern_matches(p, publisher, name))
        {
            return Err(refuse("deny", format!("{id} matches the deny entry `{p}`")));
        }
        let first_party = self.first_party.iter().any(|p| p == publisher);
        match self.mode {
            Mode::FirstParty if !first_party => {
                return Err(refuse(
                    "mode",
                    format!(
                        "this host runs first-party plugins only; {publisher} is not listed in first_party"
                    ),
                ));
            }
            Mode::Curated
                if !first_party
                    && !self
                        .allow
                        .iter()
                        .any(|p| pattern_matches(p, publisher, name)) =>
            {
                return Err(refuse(
                    "mode",
                    format!("this host runs curated plugins; {id} is not on its allow list"),
                ));
            }
            _ => {}
        }
        if !self.runtimes.contains(&manifest.runtime.kind) {
            return Err(refuse(
                "runtime.type",
                format!(
                    "{} plugins are not allowed on this host",
                    manifest.runtime.kind.as_str()
                ),
            ));
        }
        if manifest.runtime.kind == RuntimeKind::Oci {
            self.admit_image(manifest)?;
        }
        if let Some(api) = &manifest.compatibility.runner_api
            && api != agora_contract::RUNNER_API
        {
            return Err(refuse(
                "compatibility.runner_api",
                format!(
                    "asks for runner API {api}; this runner speaks {}",
                    agora_contract::RUNNER_API
                ),
            ));
        }

        let ceiling = &self.limits;
        let asked = &manifest.resources;
        let pick = |field: &str, asked: Option<u32>, default: u32, max: u32, unit: &str| match asked
        {
            Some(v) if v > max => Err(refuse(
                &format!("resources.{field}"),
                format!("asks for {v}{unit}; this host allows at most {max}{unit}"),
            )),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let limits = Limits {
            memory_mb: pick(
                "memory_mb",
                asked.memory_mb,
                self.defaults.memory_mb,
                ceiling.memory_mb,
                " MiB",
            )?,
            timeout_ms: pick(
                "timeout_ms",
                asked.timeout_ms,
                self.defaults.timeout_ms,
                ceiling.timeout_ms,
                " ms",
            )?,
            max_fds: pick(
                "max_fds",
                asked.max_fds,
                self.defaults.max_fds,
                ceiling.max_fds,
                "",
            )?,
            cpu_secs: self.defaults.cpu_secs,
            max_processes: self.defaults.max_processes,
            disk_mb: self.defaults.disk_mb,
        };
        let mut entrypoint_timeouts = BTreeMap::new();
        for (entry, spec) in &manifest.entrypoints {
            let timeout = match spec.timeout_ms {
                Some(t) if t > ceiling.timeout_ms => {
                    return Err(refuse(
                        &format!("entrypoints.{entry}.timeout_ms"),
                        format!(
                            "asks for {t} ms; this host allows at most {} ms",
                            ceiling.timeout_ms
                        ),
                    ));
                }
                Some(t) => t,
                None => limits.timeout_ms,
            };
            entrypoint_timeouts.insert(entry.clone(), timeout);
        }

        let ceiling_hosts: Vec<HostRule> = self
            .network
            .allowed_hosts
            .iter()
            .filter_map(|h| HostRule::parse(h).ok())
            .collect();
        let mut hosts = Vec::new();
        for (i, host) in manifest.network.outbound_hosts.iter().enumerate() {
            let field = format!("network.outbound_hosts[{i}]");
            let rule = HostRule::parse(host).map_err(|e| refuse(&field, e))?;
            if !ceiling_hosts.iter().any(|c| rule.within(c)) {
                return Err(refuse(
                    &field,
                    format!(
                        "`{host}` is outside what this host allows plugins to reach ({})",
                        {
                            if self.network.allowed_hosts.is_empty() {
                                "no outbound hosts".to_owned()
                            } else {
                                self.network.allowed_hosts.join(", ")
                            }
                        }
                    ),
                ));
            }
            hosts.push(rule);
        }

        let mut secrets = Vec::new();
        for (i, secret) in manifest.secrets.iter().enumerate() {
            let grant = self
                .secrets
                .iter()
                .find(|g| &g.name == secret && pattern_matches(&g.plugin, publisher, name))
                .ok_or_else(|| {
                    refuse(
                        &format!("secrets[{i}]"),
                        format!(
                            "asks for the secret `{secret}`, which this host does not grant to {id}"
                        ),
                    )
                })?;
            secrets.push(grant.clone());
        }

        let mut callbacks = Vec::new();
        for (i, callback) in manifest.callbacks.iter().enumerate() {
            if !self.callbacks.iter().any(|e| callback_matches(e, callback)) {
                return Err(refuse(
                    &format!("callbacks[{i}]"),
                    format!(
                        "declares the callback `{callback}`, which this host does not allow \
                         (the policy's `callbacks` allows {}; add `{callback}` to it to let {id} call it)",
                        if self.callbacks.is_empty() {
                            "none".to_owned()
                        } else {
                            self.callbacks.join(", ")
                        }
                    ),
                ));
            }
            callbacks.push(callback.clone());
        }

        Ok(Grant {
            limits,
            entrypoint_timeouts,
            hosts,
            allow_private_addresses: self.network.allow_private_addresses,
            secrets,
            callbacks,
        })
    }
}

#[cfg(test)]
mod tests;
