//! The plugin page: what it is and does (README), how to install it, what it may reach
//! (capabilities, outbound hosts, secrets, resources), every version with its lifecycle
//! state, signature and transparency-log entry, and its ratings and reviews; plus the
//! review form, the administrators' hide/show buttons, and for tenant administrators
//! "Install for TENANT" (`tenant_install`).

use agora_core::api::ReviewInput;
use agora_core::manifest::ArtifactRole;
use agora_core::{Lifecycle, Manifest};
use agora_store::{ArtifactRecord, PluginRecord, ReviewRecord, VersionRecord};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::see_other;
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::markdown::{MAX_DOC_BYTES, render_markdown};
use crate::session::Visitor;
use crate::state::Web;
use agora_registry::catalog;

/// Most reviews shown on the page.

#[derive(Debug, Default, Deserialize)]
pub struct PluginQuery {
    #[serde(default)]
    version: Option<String>,
}

pub struct VersionRow {
    pub version: String,
    pub url: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub replacement: Option<String>,
    pub published: String,
    pub published_by: String,
    pub downloads: String,
    pub signer_key: Option<String>,
    pub log_index: Option<i64>,
    pub selected: bool,
}

pub struct ReviewView {
    pub id: i64,
    pub author: String,
    pub version: String,
    pub stars: String,
    pub rating: i64,
    pub body: String,
    pub date: String,
    pub edited: bool,
    pub hidden_reason: Option<String>,
    pub hidden_by: Option<String>,
}

impl ReviewView {
    fn of(r: ReviewRecord) -> ReviewView {
        ReviewView {
            id: r.id,
            author: r.username,
            version: r.version,
            stars: format::stars(r.rating as f64),
            rating: r.rating,
            body: r.body,
            date: format::date(r.updated_at),
            edited: r.updated_at != r.created_at,
            hidden_reason: r.hidden_reason,
            hidden_by: r.hidden_by,
        }
    }
}

pub struct Dependency {
    pub name: String,
    pub url: String,
    pub requirement: String,
}

pub struct FileRow {
    pub path: String,
    pub role: &'static str,
    pub size: String,
    pub digest: String,
}

#[derive(Template)]
#[template(path = "plugin.html")]
struct PluginPage {
    layout: Layout,
    plugin: super::Card,
    publisher_display: String,
    /// The version shown and its manifest.
    version: Option<VersionView>,
    versions: Vec<VersionRow>,
    readme: Option<std::sync::Arc<str>>,
    changelog: Option<std::sync::Arc<str>>,
    reviews: Vec<ReviewView>,
    rating: Option<String>,
    stars: String,
    /// `1 review`, `3 reviews`.
    reviews_count: String,
    /// `1 version`, `4 versions`.
    versions_count: String,
    /// The signed-in visitor's review, for the form.
    mine: Option<ReviewView>,
    signed_in: bool,
    review_versions: Vec<String>,
    /// The version the review form starts on: the one reviewed, else the latest.
    default_version: String,
    login_url: String,
    /// Rating options 5..1 for the form, with the selected one.
    rating_options: Vec<(i64, bool)>,
    /// "Install for TENANT" / "Update TENANT to X" for each tenant the visitor administers.
    tenant_actions: Vec<super::tenant_install::TenantAction>,
    /// A private plugin's tenants, for its publisher's insiders.
    entitlements: Option<Vec<EntitlementRow>>,
    /// The visitor may offer it to tenants and withdraw offers (publish rights).
    may_grant: bool,
    /// What the visitor's last form post did.
    notice: Option<String>,
    /// Its record from real runs.
    reputation: ReputationView,
    /// Its analytics page, for its publisher's members who may publish and administrators.
    analytics_url: Option<String>,
}

/// A plugin's record from real runs (`agora_registry::analytics::reputation`), in words.
pub struct ReputationView {
    pub instances: String,
    pub installs: String,
    /// `99.5% of 1,234 calls`, when runs were reported.
    pub success: Option<String>,
    /// `5 per 1,000 calls`.
    pub issues: Option<String>,
    /// The day its latest version was last checked by the verification pipeline.
    pub last_checked: Option<String>,
}

impl ReputationView {
    fn of(r: agora_core::analytics::Reputation) -> ReputationView {
        let calls = format::counted(r.calls_30d as i64, "call", "calls");
        ReputationView {
            instances: format::count(r.active_instances as i64),
            installs: format::count(r.installs_30d as i64),
            success: r.success_rate.map(|s| format!("{s}% of {calls}")),
            issues: r.issues_per_1000.map(|i| format!("{i} per 1,000 calls")),
            last_checked: r.last_checked.map(format::date),
        }
    }
}

pub struct VersionView {
    pub version: String,
    pub install: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub replacement: Option<String>,
    pub license: String,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub documentation: Option<String>,
    pub support: Option<super::Contact>,
    pub security: Option<super::Contact>,
    pub capabilities: Vec<String>,
    pub hosts: Vec<String>,
    pub secrets: Vec<String>,
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub entrypoints: Vec<String>,
    pub dependencies: Vec<Dependency>,
    pub min_core: Option<String>,
    pub runtime: String,
    pub tags: Vec<String>,
    pub files: Vec<FileRow>,
    pub manifest_digest: String,
    pub signer_key: Option<String>,
    pub log_index: Option<i64>,
    pub published: String,
    pub published_by: String,
    pub verify_command: String,
    /// The newest verification run, if it ended.
    pub verification: Option<VerificationView>,
}

/// A verification run as the page shows it.
pub struct VerificationView {
    pub outcome: String,
    pub checked_at: String,
    /// Severity, rule, message, location.
    pub findings: Vec<(String, String, String, Option<String>)>,
}

impl VerificationView {
    fn of(report: agora_core::verification::VerificationReport) -> VerificationView {
        VerificationView {
            outcome: report.outcome.as_str().to_owned(),
            checked_at: report.checked_at,
            findings: report
                .stages
                .into_iter()
                .flat_map(|s| s.findings)
                .map(|f| {
                    (
                        f.severity.as_str().to_owned(),
                        f.rule,
                        f.message,
                        f.location,
                    )
                })
                .collect(),
        }
    }
}

fn version_view(
    plugin: &PluginRecord,
    v: &VersionRecord,
    m: &Manifest,
    artifacts: &[ArtifactRecord],
) -> VersionView {
    let reference = format!("{}/{}", plugin.publisher, plugin.name);
    let link = |s: &Option<String>| s.clone().filter(|u| super::is_web_link(u));
    VersionView {
        version: v.version.clone(),
        install: format!("agora install {reference}@={}", v.version),
        state: v.state.as_str().to_owned(),
        state_reason: v.state_reason.clone(),
        replacement: v.replacement.clone(),
        license: m.license.clone(),
        homepage: link(&m.homepage),
        repository: link(&m.repository),
        documentation: link(&m.documentation),
        support: m.contact.support.as_deref().map(super::Contact::of),
        security: m.contact.security.as_deref().map(super::Contact::of),
        capabilities: m.capabilities.clone(),
        hosts: m.network.outbound_hosts.clone(),
        secrets: m.secrets.clone(),
        memory_mb: m.resources.memory_mb,
        timeout_ms: m.resources.timeout_ms,
        entrypoints: m.entrypoints.keys().cloned().collect(),
        dependencies: m
            .dependencies
            .iter()
            .map(|(name, requirement)| Dependency {
                url: format!("/plugins/{name}"),
                name: name.clone(),
                requirement: requirement.clone(),
            })
            .collect(),
        min_core: m.compatibility.min_core.clone(),
        runtime: m.runtime.kind.as_str().to_owned(),
        tags: m.tags.clone(),
        files: artifacts
            .iter()
            .map(|a| FileRow {
                path: a.path.clone(),
                role: a.role.as_str(),
                size: format::bytes(a.size),
                digest: a.digest.to_string(),
            })
            .collect(),
        manifest_digest: v.manifest_digest.to_string(),
        signer_key: v.signer_key.clone(),
        log_index: v.log_index,
        published: format::date_time(v.published_at),
        published_by: v.published_by.clone(),
        verify_command: format!("agora verify {reference}@{}", v.version),
        verification: None,
    }
}

/// A README or changelog blob, rendered and sanitized (cached by digest).
async fn document(web: &Web, artifact: Option<&ArtifactRecord>) -> Option<std::sync::Arc<str>> {
    let a = artifact?;
    if let Some(html) = web.docs.get(&a.digest) {
        return Some(html);
    }
    let source = read_text(web, a).await?;
    let markdown = a.path.ends_with(".md") || a.path.ends_with(".markdown");
    // Rendering half a megabyte of Markdown is CPU work: keep it off the async workers.
    let html = tokio::task::spawn_blocking(move || {
        if markdown {
            render_markdown(&source)
        } else {
            render_markdown(&format!("```text\n{}\n```", source.replace("```", "'''")))
        }
    })
    .await
    .ok()?;
    Some(web.docs.put(a.digest, html))
}

async fn read_text(web: &Web, a: &ArtifactRecord) -> Option<String> {
    let digest = &a.digest;
    // Past the limit the renderer says the document was cut.
    let len = (a.size.max(0) as u64).min(MAX_DOC_BYTES as u64 + 4);
    let stream = match web.registry.blobs.get(digest, 0, len).await {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(%digest, error = %e, "could not read a document blob");
            return None;
        }
    };
    let chunks: Vec<axum::body::Bytes> = stream.body.try_collect().await.ok()?;
    let bytes: Vec<u8> = chunks.concat();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn plugin(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name)): Path<(String, String)>,
    Query(query): Query<PluginQuery>,
) -> Result<Response, PageError> {
    let viewer = visitor.viewer();
    let (p, versions) = catalog::versions(&web.registry, &viewer, &publisher, &name).await?;
    let wanted = query.version.as_ref().or(p.latest_version.as_ref());
    let selected = match wanted {
        Some(w) => versions.iter().find(|v| &v.version == w),
        None => versions.iter().find(|v| v.state != Lifecycle::Removed),
    };
    if let (Some(w), None) = (&query.version, selected) {
        return Err(PageError::NotFound(format!(
            "{publisher}/{name} has no version {w}"
        )));
    }
    let mut version = None;
    let (mut readme, mut changelog) = (None, None);
    if let Some(v) = selected.filter(|v| v.state != Lifecycle::Removed) {
        let artifacts = web.registry.meta.artifacts(v.id).await?;
        let manifest: Manifest = serde_json::from_str(&v.manifest)
            .map_err(|e| PageError::Internal(format!("stored manifest of {}: {e}", v.id)))?;
        readme = document(
            &web,
            artifacts.iter().find(|a| a.role == ArtifactRole::Readme),
        )
        .await;
        changelog = document(
            &web,
            artifacts.iter().find(|a| a.role == ArtifactRole::Changelog),
        )
        .await;
        let mut view = version_view(&p, v, &manifest, &artifacts);
        view.verification = agora_registry::verification::latest(
            &web.registry,
            &viewer,
            &publisher,
            &name,
            &v.version,
        )
        .await?
        .map(VerificationView::of);
        version = Some(view);
    }
    let caller = visitor.caller();
    // Tenants approve public plugins, and private ones offered to them.
    let offers = offers(&web, caller.is_some(), &p).await?;
    let tenant_actions = match &version {
        Some(v) => {
            let only = (p.visibility == agora_core::Visibility::Private).then(|| {
                offers
                    .as_ref()
                    .map(|o| o.iter().map(|e| e.tenant.clone()).collect())
                    .unwrap_or_default()
            });
            super::tenant_install::actions(
                &web,
                &visitor,
                &p.publisher,
                &p.name,
                &v.version,
                only.as_ref(),
            )
            .await?
        }
        None => Vec::new(),
    };
    let entitlements = offers.filter(|_| {
        caller
            .as_ref()
            .is_some_and(|c| c.is_admin() || c.viewer().is_insider(p.publisher_id))
    });
    let (_, reviews) =
        agora_registry::reviews::list(&web.registry, caller.as_ref(), &publisher, &name).await?;
    let mine = match &visitor.signed_in {
        Some(s) => web.registry.meta.review_of(p.id, s.user.id).await?,
        None => None,
    };
    let owner = agora_registry::publishers::get(&web.registry, &p.publisher).await?;
    // Offering it to tenants and withdrawing offers need publish rights.
    let may_grant = entitlements.is_some()
        && caller
            .as_ref()
            .is_some_and(|c| c.require_publish(&owner).is_ok());
    let latest_id = p
        .latest_version
        .as_ref()
        .and_then(|l| versions.iter().find(|v| &v.version == l))
        .map(|v| v.id);
    let reputation = ReputationView::of(
        agora_registry::analytics::reputation(&web.registry, p.id, latest_id).await?,
    );
    let analytics_url = caller
        .as_ref()
        .is_some_and(|c| c.require_publish(&owner).is_ok())
        .then(|| format!("/plugins/{}/{}/analytics", p.publisher, p.name));
    let publisher_display = owner
        .display_name
        .clone()
        .unwrap_or_else(|| p.publisher.clone());
    let base = format!("/plugins/{}/{}", p.publisher, p.name);
    let rows = versions
        .iter()
        .map(|v| VersionRow {
            version: v.version.clone(),
            url: format!("{base}?version={}", crate::format::percent(&v.version)),
            state: v.state.as_str().to_owned(),
            state_reason: v.state_reason.clone(),
            replacement: v.replacement.clone(),
            published: format::date(v.published_at),
            published_by: v.published_by.clone(),
            downloads: format::count(v.downloads),
            signer_key: v.signer_key.clone(),
            log_index: v.log_index,
            selected: selected.is_some_and(|s| s.id == v.id),
        })
        .collect();
    let review_versions = versions
        .iter()
        .filter(|v| v.state != Lifecycle::Removed)
        .map(|v| v.version.clone())
        .collect();
    let rating = p.rating();
    let mine = mine.map(ReviewView::of);
    let default_version = mine
        .as_ref()
        .map(|m| m.version.clone())
        .or_else(|| p.latest_version.clone())
        .unwrap_or_default();
    let chosen = mine.as_ref().map_or(0, |m| m.rating);
    crate::notice::render(
        &PluginPage {
            layout: visitor.layout(&web, p.display_name.clone()),
            plugin: super::Card::of(&p),
            publisher_display,
            version,
            versions: rows,
            readme,
            changelog,
            reviews: reviews.into_iter().map(ReviewView::of).collect(),
            rating: rating.map(|r| format!("{r:.1}")),
            stars: format::stars(rating.unwrap_or(0.0)),
            reviews_count: format::counted(p.rating_count, "review", "reviews"),
            versions_count: format::counted(versions.len() as i64, "version", "versions"),
            mine,
            signed_in: visitor.signed_in.is_some(),
            review_versions,
            default_version,
            login_url: format!("/login?next={}", crate::format::percent(&base)),
            rating_options: (1..=5).rev().map(|r| (r, r == chosen)).collect(),
            tenant_actions,
            entitlements: entitlements.map(|list| {
                list.into_iter()
                    .map(|e| EntitlementRow {
                        granted: format::date(e.granted_at),
                        tenant: e.tenant,
                        granted_by: e.granted_by,
                    })
                    .collect()
            }),
            may_grant,
            notice: visitor.notice.clone(),
            reputation,
            analytics_url,
        },
        &visitor,
    )
}

/// The tenants a private plugin is offered to, when the visitor may see them (the
/// publisher's insiders, administrators) or administers one of them (for its "Install
/// for" button); `None` for a public plugin or anyone else.
async fn offers(
    web: &Web,
    signed_in: bool,
    p: &PluginRecord,
) -> Result<Option<Vec<agora_store::EntitlementRecord>>, PageError> {
    if p.visibility != agora_core::Visibility::Private || !signed_in {
        return Ok(None);
    }
    Ok(Some(
        web.registry
            .meta
            .plugin_entitlements(p.id, agora_core::tenant::MAX_TENANTS)
            .await?,
    ))
}

/// One tenant a private plugin is offered to, as its publisher sees it.
pub struct EntitlementRow {
    pub tenant: String,
    pub granted_by: String,
    pub granted: String,
}

#[derive(Debug, Deserialize)]
pub struct GrantForm {
    csrf: String,
    tenant: String,
}

/// Offers the plugin to a tenant (the publisher's members with publish rights).
pub async fn grant(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name)): Path<(String, String)>,
    Form(form): Form<GrantForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let back = format!("/plugins/{publisher}/{name}");
    let caller = super::tenants::signed_in_caller(&visitor, &back)?;
    let tenant = form.tenant.trim();
    if tenant.is_empty() {
        return Err(PageError::BadInput(
            "tenant: name the tenant to offer this plugin to".into(),
        ));
    }
    let e = agora_registry::entitlements::grant(&web.registry, &caller, &publisher, &name, tenant)
        .await?;
    Ok(crate::notice::redirect(
        &visitor,
        &format!("{back}#entitlements"),
        &format!(
            "{} is offered to tenant {}: its members see it and its administrators may install it.",
            e.plugin, e.tenant
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
}

/// Withdraws the plugin's offer to a tenant (the publisher's members with publish rights).
pub async fn revoke(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name, tenant)): Path<(String, String, String)>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let back = format!("/plugins/{publisher}/{name}");
    let caller = super::tenants::signed_in_caller(&visitor, &back)?;
    let r =
        agora_registry::entitlements::revoke(&web.registry, &caller, &publisher, &name, &tenant)
            .await?;
    let mut text = format!("{publisher}/{name} is no longer offered to tenant {tenant}.");
    if r.pin_removed {
        text.push_str(" It left the tenant's approved set; its instances remove it.");
    }
    Ok(crate::notice::redirect(
        &visitor,
        &format!("{back}#entitlements"),
        &text,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    csrf: String,
    rating: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    version: String,
}

pub async fn write_review(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name)): Path<(String, String)>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor.caller().ok_or(PageError::SignIn("/".into()))?;
    let rating = form
        .rating
        .trim()
        .parse::<u8>()
        .map_err(|_| PageError::BadInput("rating: choose from 1 to 5 stars".into()))?;
    let input = ReviewInput {
        rating,
        body: form.body,
        version: Some(form.version).filter(|v| !v.trim().is_empty()),
    };
    let review =
        agora_registry::reviews::write(&web.registry, &caller, &publisher, &name, input).await?;
    let _ = review;
    Ok(see_other(&format!("/plugins/{publisher}/{name}#reviews")))
}

#[derive(Debug, Deserialize)]
pub struct HideForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    back: String,
}

pub async fn hide_review(
    State(web): State<Web>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(form): Form<HideForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor.caller().ok_or(PageError::SignIn("/".into()))?;
    agora_registry::reviews::hide(&web.registry, &caller, id, Some(&form.reason)).await?;
    Ok(see_other(&format!(
        "{}#reviews",
        super::local_path(&form.back)
    )))
}

pub async fn show_review(
    State(web): State<Web>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(form): Form<HideForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor.caller().ok_or(PageError::SignIn("/".into()))?;
    agora_registry::reviews::hide(&web.registry, &caller, id, None).await?;
    Ok(see_other(&format!(
        "{}#reviews",
        super::local_path(&form.back)
    )))
}

#[cfg(test)]
mod tests {
    use super::super::local_path;

    #[test]
    fn back_paths_stay_on_this_site() {
        assert_eq!(local_path("/plugins/a/b?x=1"), "/plugins/a/b?x=1");
        assert_eq!(local_path("//evil.test/x"), "/");
        assert_eq!(local_path("https://evil.test"), "/");
        assert_eq!(local_path("/\\evil.test"), "/");
        assert_eq!(local_path("/\t/evil.test"), "/");
        assert_eq!(local_path("/\n/evil.test"), "/");
    }
}
