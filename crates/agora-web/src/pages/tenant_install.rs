//! Installing a plugin for a tenant: the "Install for TENANT" (or "Update TENANT to X")
//! buttons of a plugin's page, and the confirmation page they lead to
//! (`/tenants/{tenant}/install/{publisher}/{name}?version=`), which shows what
//! `tenants::preview` says before anything is granted — what the release will be able to
//! reach and what it asks beyond the current approval, its lifecycle and verification, the
//! tenant policy's refusal, and which instances can run it — and posts the approval with
//! the manifest digest it showed (`tenants::approve` refuses a release that differs).

use agora_core::tenant::ApproveRequest;
use agora_registry::tenants;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::tenants::{ReachView, TenantHead, signed_in_caller};
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::notice;
use crate::session::Visitor;
use crate::state::Web;

/// What a plugin's page offers for one tenant the visitor administers.
pub struct TenantAction {
    pub tenant: String,
    /// The version the tenant approved, if it did.
    pub approved: Option<String>,
    /// The confirmation page, unless the tenant runs the version viewed already.
    pub url: Option<String>,
    /// `Install for ops`, `Update ops to 1.2.0`.
    pub label: String,
}

/// For each tenant the visitor administers (and, given `only`, that is among those
/// tenants: the ones a private plugin is offered to): install `publisher/name` at
/// `version`, or update to it. Nothing for visitors signed out or administering no tenant.
pub async fn actions(
    web: &Web,
    visitor: &Visitor,
    publisher: &str,
    name: &str,
    version: &str,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<Vec<TenantAction>, PageError> {
    let Some(caller) = visitor.caller() else {
        return Ok(Vec::new());
    };
    let plugin = format!("{publisher}/{name}");
    let mut out = Vec::new();
    for t in tenants::administered(&web.registry, &caller).await? {
        if only.is_some_and(|only| !only.contains(&t.name)) {
            continue;
        }
        let approved = tenants::approvals(&web.registry, &caller, &t.name)
            .await?
            .into_iter()
            .find(|a| a.plugin == plugin)
            .map(|a| a.version);
        let url = format!(
            "/tenants/{}/install/{plugin}?version={}",
            t.name,
            format::percent(version)
        );
        let (label, url) = match &approved {
            None => (format!("Install for {}", t.name), Some(url)),
            Some(v) if v == version => (format!("{} runs {version}", t.name), None),
            Some(_) => (format!("Update {} to {version}", t.name), Some(url)),
        };
        out.push(TenantAction {
            tenant: t.name,
            approved,
            url,
            label,
        });
    }
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    version: Option<String>,
}

pub struct FitRow {
    pub instance: String,
    pub compatible: bool,
    pub reason: Option<String>,
}

#[derive(Template)]
#[template(path = "tenant_install.html")]
struct InstallPage {
    layout: Layout,
    notice: Option<String>,
    tenant: TenantHead,
    plugin: String,
    plugin_url: String,
    version: String,
    manifest_digest: String,
    reach: ReachView,
    /// What it asks beyond the current approval, in words ("" for nothing), when the
    /// tenant approved the plugin.
    beyond: Option<String>,
    approved_version: Option<String>,
    /// The tenant runs this very version already: nothing to approve.
    already: bool,
    lifecycle: String,
    verification: Option<String>,
    /// The policy's refusal: `field: reason`.
    refusal: Option<String>,
    instances: Vec<FitRow>,
    action: String,
}

/// The confirmation page (tenant administrators).
pub async fn preview(
    State(web): State<Web>,
    visitor: Visitor,
    Path((name, publisher, plugin)): Path<(String, String, String)>,
    Query(query): Query<PreviewQuery>,
) -> Result<Response, PageError> {
    let action = format!("/tenants/{name}/install/{publisher}/{plugin}");
    let back = match &query.version {
        Some(v) => format!("{action}?version={}", format::percent(v)),
        None => action.clone(),
    };
    let caller = signed_in_caller(&visitor, &back)?;
    let registry = &web.registry;
    let tenant = tenants::get(registry, &caller, &name).await?;
    let p = tenants::preview(
        registry,
        &caller,
        &name,
        &publisher,
        &plugin,
        query.version.as_deref().filter(|v| !v.is_empty()),
    )
    .await?;
    let already = p.approved_version.as_ref() == Some(&p.version);
    let head = TenantHead::of(&tenant, &visitor, "/install");
    let page = InstallPage {
        layout: visitor.layout(&web, format!("Install {} for {}", p.plugin, head.name)),
        notice: visitor.notice.clone(),
        tenant: head,
        plugin_url: format!(
            "{}?version={}",
            super::tenants::plugin_url(&p.plugin),
            format::percent(&p.version)
        ),
        plugin: p.plugin,
        version: p.version,
        manifest_digest: p.manifest_digest,
        reach: ReachView::of(&p.reach),
        beyond: p.beyond_approved.map(|b| ReachView::of(&b).words()),
        approved_version: p.approved_version,
        already,
        lifecycle: p.lifecycle,
        verification: p.verification,
        refusal: p.refusal.map(|r| format!("{}: {}", r.field, r.reason)),
        instances: p
            .instances
            .into_iter()
            .map(|f| FitRow {
                instance: f.instance,
                compatible: f.compatible,
                reason: f.reason,
            })
            .collect(),
        action,
    };
    notice::render(&page, &visitor)
}

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    csrf: String,
    version: String,
    /// The digest the confirmation page showed.
    manifest_digest: String,
}

/// "Approve for TENANT": the approval of the release the page showed.
pub async fn approve(
    State(web): State<Web>,
    visitor: Visitor,
    Path((name, publisher, plugin)): Path<(String, String, String)>,
    Form(form): Form<ApproveForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = signed_in_caller(&visitor, &format!("/tenants/{name}"))?;
    let approval = tenants::approve(
        &web.registry,
        &caller,
        &name,
        &publisher,
        &plugin,
        &ApproveRequest {
            version: form.version,
            manifest_digest: Some(form.manifest_digest),
        },
    )
    .await?;
    Ok(notice::redirect(
        &visitor,
        &format!("/tenants/{name}"),
        &format!(
            "{} {} is approved for {name} (transparency log entry #{}); its instances install \
             it when they next converge.",
            approval.plugin, approval.version, approval.log_index
        ),
    ))
}
