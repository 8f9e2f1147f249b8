//! A tenant's updates (`/tenants/{tenant}/updates`, `tenants::updates`): per approved
//! plugin, the version it is pinned to and each newer version with its changelog (through
//! the sanitising Markdown renderer), verification, lifecycle, what it asks beyond the
//! approval and the policy's refusal; and the administrators' buttons: Apply (one
//! plugin), Apply all updates, and Roll back (`tenants::apply`, `tenants::rollback`). A
//! post comes back here with a notice saying what moved, and what was skipped and why.

use std::sync::Arc;

use agora_core::Digest;
use agora_core::tenant::{AppliedUpdates, ApplyUpdates};
use agora_registry::tenants;
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::tenants::{ReachView, TenantHead, plugin_url, signed_in_caller};
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::markdown::render_markdown;
use crate::notice;
use crate::session::Visitor;
use crate::state::Web;

pub struct UpdateRow {
    pub version: String,
    pub url: String,
    pub digest: String,
    pub short_digest: String,
    pub lifecycle: String,
    pub verification: Option<String>,
    /// What it asks beyond the approval, in words ("" for nothing more).
    pub asks_more: String,
    /// What the approval grants that it no longer asks for, in words.
    pub asks_less: String,
    /// The policy's refusal: `field: reason`.
    pub refusal: Option<String>,
    /// The changelog, rendered and sanitised.
    pub changelog: Option<Arc<str>>,
    /// The newest of its plugin's updates (its changelog starts open).
    pub newest: bool,
}

pub struct PluginRow {
    pub plugin: String,
    pub url: String,
    pub current_version: String,
    pub current_digest: String,
    pub short_digest: String,
    pub previous_version: Option<String>,
    pub rollback: String,
    pub newer: Vec<UpdateRow>,
}

#[derive(Template)]
#[template(path = "tenant_updates.html")]
struct UpdatesPage {
    layout: Layout,
    notice: Option<String>,
    tenant: TenantHead,
    plugins: Vec<PluginRow>,
    /// Some approved plugin has a newer version.
    any_newer: bool,
    apply: String,
}

/// A changelog excerpt, rendered and sanitised within the renderer's budgets off the
/// async workers, and cached by its text's digest.
async fn changelog(web: &Web, text: String) -> Option<Arc<str>> {
    let key = Digest::of(format!("tenant-update-changelog\n{text}").as_bytes());
    if let Some(html) = web.docs.get(&key) {
        return Some(html);
    }
    let html = tokio::task::spawn_blocking(move || render_markdown(&text))
        .await
        .ok()?;
    Some(web.docs.put(key, html))
}

pub async fn updates(
    State(web): State<Web>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let base = format!("/tenants/{name}");
    let caller = signed_in_caller(&visitor, &format!("{base}/updates"))?;
    let tenant = tenants::get(&web.registry, &caller, &name).await?;
    let list = tenants::updates(&web.registry, &caller, &name).await?;
    let mut plugins = Vec::new();
    for p in list.plugins {
        let mut newer = Vec::new();
        for (i, u) in p.newer.into_iter().enumerate() {
            newer.push(UpdateRow {
                url: format!(
                    "{}?version={}",
                    plugin_url(&p.plugin),
                    format::percent(&u.version)
                ),
                short_digest: format::short_digest(&u.manifest_digest),
                digest: u.manifest_digest,
                lifecycle: u.lifecycle,
                verification: u.verification,
                asks_more: ReachView::of(&u.asks_more).words(),
                asks_less: ReachView::of(&u.asks_less).words(),
                refusal: u.refusal.map(|r| format!("{}: {}", r.field, r.reason)),
                changelog: match u.changelog {
                    Some(text) => changelog(&web, text).await,
                    None => None,
                },
                newest: i == 0,
                version: u.version,
            });
        }
        plugins.push(PluginRow {
            url: plugin_url(&p.plugin),
            rollback: format!("{base}/plugins/{}/rollback", p.plugin),
            short_digest: format::short_digest(&p.current_digest),
            current_digest: p.current_digest,
            current_version: p.current_version,
            previous_version: p.previous_version,
            newer,
            plugin: p.plugin,
        });
    }
    let head = TenantHead::of(&tenant, &visitor, "/updates");
    notice::render(
        &UpdatesPage {
            layout: visitor.layout(&web, format!("Updates · {}", head.title)),
            notice: visitor.notice.clone(),
            tenant: head,
            any_newer: plugins.iter().any(|p| !p.newer.is_empty()),
            plugins,
            apply: format!("{base}/updates/apply"),
        },
        &visitor,
    )
}

/// What an apply did, in words: what moved, what was skipped and why.
fn applied_words(done: &AppliedUpdates, plugin: Option<&str>) -> String {
    let mut parts: Vec<String> = done
        .applied
        .iter()
        .map(|a| {
            let from = a
                .previous_version
                .as_ref()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default();
            format!("Moved {}{from} to {}.", a.plugin, a.version)
        })
        .collect();
    parts.extend(
        done.skipped
            .iter()
            .map(|s| format!("Skipped {}: {}.", s.field, s.reason)),
    );
    if parts.is_empty() {
        return match plugin {
            Some(p) => format!("Nothing to apply: {p} is on its newest version."),
            None => "Nothing to apply: every approved plugin is on its newest version.".to_owned(),
        };
    }
    parts.join(" ")
}

#[derive(Debug, Deserialize)]
pub struct ApplyForm {
    csrf: String,
    /// `publisher/name`; empty or absent: every approved plugin.
    #[serde(default)]
    plugin: String,
}

/// "Apply" (one plugin) and "Apply all updates" (tenant administrators).
pub async fn apply(
    State(web): State<Web>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(form): Form<ApplyForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let back = format!("/tenants/{name}/updates");
    let caller = signed_in_caller(&visitor, &back)?;
    let plugin = Some(form.plugin.trim().to_owned()).filter(|p| !p.is_empty());
    let done = tenants::apply(
        &web.registry,
        &caller,
        &name,
        &ApplyUpdates {
            plugin: plugin.clone(),
        },
    )
    .await?;
    Ok(notice::redirect(
        &visitor,
        &back,
        &applied_words(&done, plugin.as_deref()),
    ))
}

#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    csrf: String,
}

/// "Roll back to P" (tenant administrators).
pub async fn rollback(
    State(web): State<Web>,
    visitor: Visitor,
    Path((name, publisher, plugin)): Path<(String, String, String)>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let back = format!("/tenants/{name}/updates");
    let caller = signed_in_caller(&visitor, &back)?;
    let a = tenants::rollback(&web.registry, &caller, &name, &publisher, &plugin).await?;
    Ok(notice::redirect(
        &visitor,
        &back,
        &format!(
            "Rolled {} back to {} (transparency log entry #{}).",
            a.plugin, a.version, a.log_index
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::tenant::{Approval, PolicyRefusal, Reach};

    #[test]
    fn an_apply_reads_as_what_moved_and_what_was_skipped() {
        let moved = Approval {
            plugin: "acme/jira".into(),
            version: "1.1.0".into(),
            manifest_digest: "sha256:00".into(),
            reach: Reach::default(),
            approved_by: "tara".into(),
            approved_at: 0,
            log_index: 7,
            previous_version: Some("1.0.0".into()),
        };
        let done = AppliedUpdates {
            applied: vec![moved],
            skipped: vec![PolicyRefusal {
                field: "acme/slack".into(),
                reason: "2.0.0 is yanked".into(),
            }],
        };
        assert_eq!(
            applied_words(&done, None),
            "Moved acme/jira from 1.0.0 to 1.1.0. Skipped acme/slack: 2.0.0 is yanked."
        );
        let nothing = AppliedUpdates {
            applied: vec![],
            skipped: vec![],
        };
        assert_eq!(
            applied_words(&nothing, Some("acme/jira")),
            "Nothing to apply: acme/jira is on its newest version."
        );
    }
}
