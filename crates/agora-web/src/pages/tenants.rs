//! The control plane's pages: the visitor's tenants (`/tenants`) and a tenant's page
//! (`/tenants/{tenant}`: its approved set, each plugin pinned to a version and its manifest
//! digest, and its instances; administrators remove plugins there), plus what every
//! tenant page shares (the tenant's heading and tabs, a release's reach in words). The
//! install confirmation, the updates and the fleet are `tenant_install`,
//! `tenant_updates` and `tenant_fleet`. Every page and form calls
//! `agora_registry::tenants`, as the API does: who may see or change what is decided
//! there, and anyone who is not a member is told the tenant does not exist.

use agora_core::tenant::{Reach, Tenant, TenantRole};
use agora_registry::Caller;
use agora_registry::tenants;
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use serde::Deserialize;

use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::notice;
use crate::session::Visitor;
use crate::state::Web;

/// One of the tabs every tenant page carries.
pub struct Tab {
    pub label: &'static str,
    pub url: String,
    pub active: bool,
}

/// A tenant as its pages head it.
pub struct TenantHead {
    pub name: String,
    /// Its display name, else its name.
    pub title: String,
    /// `admin`, `member`, or `registry administrator`.
    pub role: &'static str,
    /// The visitor may approve, update, roll back and remove plugins here.
    pub admin: bool,
    pub auto_update: bool,
    pub tabs: Vec<Tab>,
}

impl TenantHead {
    /// `tenant` as `visitor` sees it, on the tab whose path ends in `active` (`""` for
    /// the tenant's own page).
    pub fn of(tenant: &Tenant, visitor: &Visitor, active: &str) -> TenantHead {
        let base = format!("/tenants/{}", tenant.name);
        let tabs = [
            ("Approved plugins", ""),
            ("Updates", "/updates"),
            ("Fleet", "/fleet"),
        ]
        .into_iter()
        .map(|(label, path)| Tab {
            label,
            url: format!("{base}{path}"),
            active: path == active,
        })
        .collect();
        TenantHead {
            name: tenant.name.clone(),
            title: tenant
                .display_name
                .clone()
                .unwrap_or_else(|| tenant.name.clone()),
            role: match tenant.role {
                Some(role) => role.as_str(),
                None => "registry administrator",
            },
            // Registry administrators act as administrators of every tenant.
            admin: tenant.role == Some(TenantRole::Admin) || visitor.is_admin(),
            auto_update: tenant.auto_update,
            tabs,
        }
    }
}

/// What a release reaches (or what an update asks beyond an approval), in lists.
pub struct ReachView {
    /// Empty in a difference when the runtime is unchanged.
    pub runtime: String,
    pub hosts: Vec<String>,
    pub secrets: Vec<String>,
    pub capabilities: Vec<String>,
}

impl ReachView {
    pub fn of(reach: &Reach) -> ReachView {
        ReachView {
            runtime: reach.runtime.clone(),
            hosts: reach.hosts.iter().cloned().collect(),
            secrets: reach.secrets.iter().cloned().collect(),
            capabilities: reach.capabilities.iter().cloned().collect(),
        }
    }

    /// `hosts api.example.com; secrets TOKEN; capabilities outbound_http; runtime exec`,
    /// leaving out what is empty ("" when everything is).
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        for (what, items) in [
            ("hosts", &self.hosts),
            ("secrets", &self.secrets),
            ("capabilities", &self.capabilities),
        ] {
            if !items.is_empty() {
                parts.push(format!("{what} {}", items.join(", ")));
            }
        }
        if !self.runtime.is_empty() {
            parts.push(format!("runtime {}", self.runtime));
        }
        parts.join("; ")
    }
}

/// The signed-in visitor's caller, or a trip to the sign-in page that comes back to
/// `back`.
pub fn signed_in_caller(visitor: &Visitor, back: &str) -> Result<Caller, PageError> {
    visitor.require(back)?;
    visitor.caller().ok_or(PageError::SignIn(back.into()))
}

/// The plugin page of `publisher/name` (as the control plane names a plugin).
pub fn plugin_url(plugin: &str) -> String {
    format!("/plugins/{plugin}")
}

pub struct TenantRow {
    pub url: String,
    pub name: String,
    pub display_name: Option<String>,
    pub role: &'static str,
    pub auto_update: bool,
}

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    layout: Layout,
    tenants: Vec<TenantRow>,
}

/// `/tenants`: the tenants the visitor belongs to (every tenant, for an administrator).
pub async fn list(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    let caller = signed_in_caller(&visitor, "/tenants")?;
    let tenants = tenants::list(&web.registry, &caller)
        .await?
        .into_iter()
        .map(|t| TenantRow {
            url: format!("/tenants/{}", t.name),
            role: t.role.map_or("registry administrator", TenantRole::as_str),
            name: t.name,
            display_name: t.display_name,
            auto_update: t.auto_update,
        })
        .collect();
    super::render(&TenantsPage {
        layout: visitor.layout(&web, "Tenants"),
        tenants,
    })
}

pub struct ApprovalRow {
    pub plugin: String,
    pub url: String,
    pub version: String,
    pub digest: String,
    pub short_digest: String,
    pub approved_by: String,
    pub approved_at: String,
    pub log_index: i64,
    /// Where its Remove button posts.
    pub remove: String,
}

pub struct InstanceRow {
    pub name: String,
    /// `converged`, `failed` or `unknown`.
    pub state: String,
    pub detail: Option<String>,
    pub platform: Option<String>,
    pub core_version: Option<String>,
    pub runner_version: Option<String>,
    pub last_seen: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "tenant.html")]
struct TenantPage {
    layout: Layout,
    notice: Option<String>,
    tenant: TenantHead,
    approvals: Vec<ApprovalRow>,
    instances: Vec<InstanceRow>,
    /// The private plugins offered to the tenant: (plugin, its page).
    offered: Vec<(String, String)>,
}

/// `/tenants/{tenant}`: the approved set and the instances.
pub async fn tenant(
    State(web): State<Web>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let caller = signed_in_caller(&visitor, &format!("/tenants/{name}"))?;
    let registry = &web.registry;
    let tenant = tenants::get(registry, &caller, &name).await?;
    let approvals = tenants::approvals(registry, &caller, &name)
        .await?
        .into_iter()
        .map(|a| ApprovalRow {
            url: plugin_url(&a.plugin),
            remove: format!("/tenants/{name}/plugins/{}/remove", a.plugin),
            short_digest: format::short_digest(&a.manifest_digest),
            digest: a.manifest_digest,
            approved_at: format::date_time(a.approved_at),
            approved_by: a.approved_by,
            log_index: a.log_index,
            version: a.version,
            plugin: a.plugin,
        })
        .collect();
    let instances = tenants::instances(registry, &caller, &name)
        .await?
        .into_iter()
        .map(|i| InstanceRow {
            last_seen: format::when(i.last_seen_at),
            name: i.name,
            state: i.state,
            detail: i.detail,
            platform: i.platform,
            core_version: i.core_version,
            runner_version: i.runner_version,
            revoked: i.revoked,
        })
        .collect();
    let offered = agora_registry::entitlements::of_tenant(registry, &caller, &name)
        .await?
        .into_iter()
        .map(|e| (plugin_url(&e.plugin), e.plugin))
        .collect();
    let head = TenantHead::of(&tenant, &visitor, "");
    notice::render(
        &TenantPage {
            layout: visitor.layout(&web, head.title.clone()),
            notice: visitor.notice.clone(),
            tenant: head,
            approvals,
            instances,
            offered,
        },
        &visitor,
    )
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Takes a plugin out of the approved set (tenant administrators).
pub async fn remove(
    State(web): State<Web>,
    visitor: Visitor,
    Path((name, publisher, plugin)): Path<(String, String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let back = format!("/tenants/{name}");
    let caller = signed_in_caller(&visitor, &back)?;
    tenants::remove(&web.registry, &caller, &name, &publisher, &plugin).await?;
    Ok(notice::redirect(
        &visitor,
        &back,
        &format!(
            "{publisher}/{plugin} is no longer approved for {name}; its instances remove it \
             when they next converge."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_reads_as_words_leaving_out_what_is_empty() {
        let reach = Reach {
            runtime: "exec".into(),
            hosts: ["api.example.com".to_owned(), "*.b.org".to_owned()].into(),
            secrets: Default::default(),
            capabilities: ["outbound_http".to_owned()].into(),
        };
        assert_eq!(
            ReachView::of(&reach).words(),
            "hosts *.b.org, api.example.com; capabilities outbound_http; runtime exec"
        );
        assert_eq!(ReachView::of(&Reach::default()).words(), "");
    }
}
