//! Administration: users, publishers (with verification), lifecycle changes and other
//! recent audit events, and hidden reviews.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::render;
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::session::Visitor;
use crate::state::Web;

pub struct UserRow {
    pub name: String,
    pub role: &'static str,
    pub since: String,
}

pub struct PublisherRow {
    pub name: String,
    pub display_name: String,
    pub verified: bool,
    pub since: String,
}

pub struct EventRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub target_url: Option<String>,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    users: Vec<UserRow>,
    publishers: Vec<PublisherRow>,
    lifecycle: Vec<EventRow>,
    moderation: Vec<EventRow>,
    other: Vec<EventRow>,
}

fn event_row(e: agora_store::AuditRecord) -> EventRow {
    // Targets look like `publisher/name@version` or `publisher/name`.
    let plugin = e.target.split('@').next().unwrap_or("");
    let target_url = (plugin.split('/').count() == 2).then(|| format!("/plugins/{plugin}"));
    EventRow {
        at: format::date_time(e.at),
        actor: e.actor,
        action: e.action,
        target_url,
        target: e.target,
        detail: e.detail.unwrap_or_default(),
    }
}

pub async fn admin(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    visitor.require("/admin")?;
    if !visitor.is_admin() {
        return Err(PageError::Forbidden(
            "the administration pages are for administrators".into(),
        ));
    }
    let users = web
        .registry
        .meta
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            name: u.username,
            role: u.role.as_str(),
            since: format::date(u.created_at),
        })
        .collect();
    let publishers = web
        .registry
        .meta
        .list_publishers()
        .await?
        .into_iter()
        .map(|p| PublisherRow {
            display_name: p.display_name.unwrap_or_default(),
            name: p.name,
            verified: p.verified_at.is_some(),
            since: format::date(p.created_at),
        })
        .collect();
    let (mut lifecycle, mut moderation, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for e in web.registry.meta.audit_events(None, 300).await? {
        let action = agora_core::audit::AuditAction::parse(&e.action);
        let list = if action.is_some_and(|a| a.is_lifecycle()) {
            &mut lifecycle
        } else if action.is_some_and(|a| a.is_moderation()) {
            &mut moderation
        } else {
            &mut other
        };
        if list.len() < 50 {
            list.push(event_row(e));
        }
    }
    render(&AdminPage {
        layout: visitor.layout(&web, "Administration"),
        users,
        publishers,
        lifecycle,
        moderation,
        other,
    })
}
