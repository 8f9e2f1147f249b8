//! A tenant's fleet (`/tenants/{tenant}/fleet`, `tenants::fleet`): what each instance last
//! reported — its state, whether it applied the tenant's current generation, what it runs
//! (plugin@version with the manifest digest) and what failed and why — and per approved
//! plugin, which instances run the approved digest, which are behind and which failed.

use agora_core::tenant::{FleetFailure, ReportedFailure};
use agora_registry::tenants;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::tenants::{TenantHead, plugin_url, signed_in_caller};
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::notice;
use crate::session::Visitor;
use crate::state::Web;

pub struct Running {
    /// `publisher/name@version`.
    pub release: String,
    pub digest: String,
    pub short_digest: String,
}

pub struct Failure {
    /// `publisher/name@version` (on an instance) or `instance (version)` (on a plugin).
    pub what: String,
    pub reason: String,
}

impl Failure {
    fn of(failures: Vec<impl Into<Failure>>) -> Vec<Failure> {
        failures.into_iter().map(Into::into).collect()
    }
}

impl From<ReportedFailure> for Failure {
    fn from(f: ReportedFailure) -> Failure {
        Failure {
            what: format!("{}@{}", f.plugin, f.version),
            reason: f.reason,
        }
    }
}

impl From<FleetFailure> for Failure {
    fn from(f: FleetFailure) -> Failure {
        Failure {
            what: format!("{} ({})", f.instance, f.version),
            reason: f.reason,
        }
    }
}

pub struct InstanceRow {
    pub name: String,
    pub state: String,
    pub detail: Option<String>,
    pub behind: bool,
    /// The generation its last report applied.
    pub generation: Option<i64>,
    pub platform: Option<String>,
    pub last_seen: String,
    pub runs: Vec<Running>,
    pub failures: Vec<Failure>,
}

pub struct PluginRow {
    pub plugin: String,
    pub url: String,
    pub version: String,
    pub digest: String,
    pub short_digest: String,
    pub current: Vec<String>,
    pub behind: Vec<String>,
    pub failed: Vec<Failure>,
}

#[derive(Template)]
#[template(path = "tenant_fleet.html")]
struct FleetPage {
    layout: Layout,
    notice: Option<String>,
    tenant: TenantHead,
    generation: i64,
    instances: Vec<InstanceRow>,
    plugins: Vec<PluginRow>,
}

pub async fn fleet(
    State(web): State<Web>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let caller = signed_in_caller(&visitor, &format!("/tenants/{name}/fleet"))?;
    let tenant = tenants::get(&web.registry, &caller, &name).await?;
    let view = tenants::fleet(&web.registry, &caller, &name).await?;
    let instances = view
        .instances
        .into_iter()
        .map(|i| InstanceRow {
            name: i.instance.name,
            state: i.instance.state,
            detail: i.instance.detail,
            behind: i.behind,
            generation: i.instance.generation,
            platform: i.instance.platform,
            last_seen: format::when(i.instance.last_seen_at),
            runs: i
                .plugins
                .into_iter()
                .map(|p| Running {
                    release: format!("{}@{}", p.plugin, p.version),
                    short_digest: format::short_digest(&p.manifest_digest),
                    digest: p.manifest_digest,
                })
                .collect(),
            failures: Failure::of(i.failures),
        })
        .collect();
    let plugins = view
        .plugins
        .into_iter()
        .map(|p| PluginRow {
            url: plugin_url(&p.plugin),
            short_digest: format::short_digest(&p.approved_digest),
            digest: p.approved_digest,
            version: p.approved_version,
            current: p.current,
            behind: p.behind,
            failed: Failure::of(p.failed),
            plugin: p.plugin,
        })
        .collect();
    let head = TenantHead::of(&tenant, &visitor, "/fleet");
    notice::render(
        &FleetPage {
            layout: visitor.layout(&web, format!("Fleet · {}", head.title)),
            notice: visitor.notice.clone(),
            tenant: head,
            generation: view.generation,
            instances,
            plugins,
        },
        &visitor,
    )
}
