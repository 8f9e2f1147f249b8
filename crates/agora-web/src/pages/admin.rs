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
    /// A lifecycle event's detail, read: the state, the reason and the replacement.
    pub change: Option<StateChange>,
}

/// A lifecycle change as words: `deprecated — "reason" — use acme/other instead`.
pub struct StateChange {
    pub state: &'static str,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    /// The replacement's page, when it names a plugin.
    pub replacement_url: Option<String>,
}

impl StateChange {
    /// Reads the detail the store writes with a lifecycle change (`{"state": …,
    /// "reason": …, "replacement": …}`); `None` for anything else, shown as written.
    fn parse(detail: &str) -> Option<StateChange> {
        #[derive(serde::Deserialize)]
        struct Detail {
            state: String,
            #[serde(default)]
            reason: Option<String>,
            #[serde(default)]
            replacement: Option<String>,
        }
        let d: Detail = serde_json::from_str(detail).ok()?;
        let state = agora_core::Lifecycle::parse(&d.state).ok()?.as_str();
        let some = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let replacement = some(d.replacement);
        let replacement_url = replacement
            .as_deref()
            .filter(|r| {
                let parts: Vec<_> = r.split('/').collect();
                parts.len() == 2
                    && parts.iter().all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    })
            })
            .map(|r| format!("/plugins/{r}"));
        Some(StateChange {
            state,
            reason: some(d.reason),
            replacement,
            replacement_url,
        })
    }
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
        change: e.detail.as_deref().and_then(StateChange::parse),
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

#[cfg(test)]
mod tests {
    use super::StateChange;

    #[test]
    fn a_lifecycle_detail_reads_as_words() {
        let c = StateChange::parse(
            r#"{"state":"deprecated","reason":"moved to the cloud API","replacement":"acme/jira-cloud"}"#,
        )
        .unwrap();
        assert_eq!(c.state, "deprecated");
        assert_eq!(c.reason.as_deref(), Some("moved to the cloud API"));
        assert_eq!(c.replacement.as_deref(), Some("acme/jira-cloud"));
        assert_eq!(
            c.replacement_url.as_deref(),
            Some("/plugins/acme/jira-cloud")
        );
        let c =
            StateChange::parse(r#"{"state":"active","reason":null,"replacement":null}"#).unwrap();
        assert_eq!((c.state, c.reason, c.replacement), ("active", None, None));
        let c =
            StateChange::parse(r#"{"state":"yanked","reason":"x","replacement":"../../admin"}"#)
                .unwrap();
        assert_eq!(c.replacement_url, None, "only a plugin name becomes a link");
        assert!(StateChange::parse("private").is_none());
        assert!(StateChange::parse(r#"{"state":"exploded"}"#).is_none());
    }
}
