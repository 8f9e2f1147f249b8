//! The verification review queue (`/admin/reviews`): releases whose newest verification
//! run needs review (or was rejected, or verified: `?outcome=`), each with its findings,
//! and a form per release to approve or reject it with a reason. Both the list and the
//! decision are the registry's use cases (`review_queue::queue`, `verification::review`),
//! as for the API.

use agora_core::verification::{Outcome, QueuedRelease, ReviewDecision};
use agora_registry::review_queue::{self, QueueParams};
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{render, see_other};
use crate::error::PageError;
use crate::layout::Layout;
use crate::session::Visitor;
use crate::state::Web;

/// Releases shown per page.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct QueueForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    cursor: String,
}

pub struct Tab {
    pub label: &'static str,
    pub url: &'static str,
    pub active: bool,
}

pub struct Row {
    pub release: String,
    /// The plugin page of the release's version.
    pub url: String,
    /// Where the decision form posts.
    pub action: String,
    pub item: QueuedRelease,
}

#[derive(Template)]
#[template(path = "admin_reviews.html")]
struct ReviewsPage {
    layout: Layout,
    outcome: &'static str,
    tabs: Vec<Tab>,
    rows: Vec<Row>,
    next: Option<String>,
}

/// The release's parts from `publisher/name@version` (as the queue names it).
fn parts(release: &str) -> Option<(&str, &str, &str)> {
    let (plugin, version) = release.split_once('@')?;
    let (publisher, name) = plugin.split_once('/')?;
    Some((publisher, name, version))
}

fn admin_caller(
    visitor: &Visitor,
    back: &str,
) -> Result<agora_registry::caller::Caller, PageError> {
    visitor.require(back)?;
    if !visitor.is_admin() {
        return Err(PageError::Forbidden(
            "the administration pages are for administrators".into(),
        ));
    }
    visitor.caller().ok_or(PageError::SignIn(back.into()))
}

pub async fn reviews(
    State(web): State<Web>,
    visitor: Visitor,
    Query(form): Query<QueueForm>,
) -> Result<Response, PageError> {
    let caller = admin_caller(&visitor, "/admin/reviews")?;
    let page = review_queue::queue(
        &web.registry,
        &caller,
        QueueParams {
            outcome: Some(form.outcome.clone()),
            cursor: Some(form.cursor.clone()),
            limit: Some(PAGE_SIZE),
        },
    )
    .await?;
    let outcome = Outcome::parse(form.outcome.trim())
        .unwrap_or(Outcome::NeedsReview)
        .as_str();
    let tabs = [
        ("Needs review", "/admin/reviews", "needs-review"),
        ("Rejected", "/admin/reviews?outcome=rejected", "rejected"),
        ("Verified", "/admin/reviews?outcome=verified", "verified"),
    ]
    .into_iter()
    .map(|(label, url, o)| Tab {
        label,
        url,
        active: o == outcome,
    })
    .collect();
    let rows = page
        .items
        .into_iter()
        .filter_map(|item| {
            let (publisher, name, version) = parts(&item.release)?;
            Some(Row {
                release: item.release.clone(),
                url: format!("/plugins/{publisher}/{name}?version={version}"),
                action: format!("/admin/reviews/{publisher}/{name}/{version}"),
                item,
            })
        })
        .collect();
    let next = page.next_cursor.map(|c| {
        format!(
            "/admin/reviews?{}",
            serde_urlencoded::to_string([("outcome", outcome), ("cursor", c.as_str())])
                .unwrap_or_default()
        )
    });
    render(&ReviewsPage {
        layout: visitor.layout(&web, "Verification reviews"),
        outcome,
        tabs,
        rows,
        next,
    })
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: String,
    /// `verified` (approve) or `rejected`.
    outcome: String,
    #[serde(default)]
    reason: String,
    /// The queue the form was on, to go back to it.
    #[serde(default)]
    back: String,
}

pub async fn decide(
    State(web): State<Web>,
    visitor: Visitor,
    Path((publisher, name, version)): Path<(String, String, String)>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = admin_caller(&visitor, "/admin/reviews")?;
    let outcome = Outcome::parse(&form.outcome)
        .ok_or_else(|| PageError::BadInput("outcome: a decision is verified or rejected".into()))?;
    agora_registry::verification::review(
        &web.registry,
        &caller,
        &publisher,
        &name,
        &version,
        ReviewDecision {
            outcome,
            reason: form.reason,
        },
    )
    .await?;
    let back = match super::local_path(&form.back) {
        b if b.starts_with("/admin/reviews") => b,
        _ => "/admin/reviews",
    };
    Ok(see_other(back))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_release_reads_as_its_parts() {
        assert_eq!(
            super::parts("acme/jira@1.0.0"),
            Some(("acme", "jira", "1.0.0"))
        );
        assert_eq!(super::parts("acme@1.0.0"), None);
    }
}
