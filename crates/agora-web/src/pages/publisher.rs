//! The publisher page: who they are (verified or not, contacts, members), their plugins,
//! and forms for owners (contacts) and administrators (verification).

use agora_core::api::PublisherSettings;
use agora_store::{SearchQuery, SearchSort};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::{Card, render, see_other};
use crate::error::PageError;
use crate::format;
use crate::layout::Layout;
use crate::session::Visitor;
use crate::state::Web;
use agora_registry::publishers;

#[derive(Template)]
#[template(path = "publisher.html")]
struct PublisherPage {
    layout: Layout,
    name: String,
    display_name: String,
    verified: Option<String>,
    email: Option<String>,
    url: Option<String>,
    since: String,
    members: Vec<(String, String)>,
    cards: Vec<Card>,
    /// `1 plugin`, `3 plugins`.
    total: String,
    /// `1 download`, `12.3k downloads`.
    downloads: String,
    is_owner: bool,
}

pub async fn publisher(
    State(web): State<Web>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let p = publishers::get(&web.registry, &name).await?;
    let members = publishers::members(&web.registry, &p).await?;
    let query = SearchQuery {
        publisher: Some(p.name.clone()),
        sort: SearchSort::Downloads,
        limit: 100,
        viewer: visitor.viewer(),
        ..SearchQuery::default()
    };
    let viewer = query.viewer.clone();
    let (hits, facets, unlisted) = tokio::try_join!(
        web.registry.meta.search(&query),
        web.facets.get(&web.registry.meta, &query),
        // Plugins with nothing installable by range (every version yanked or insecure)
        // are left out of listings, but not out of sight of the publisher's own members.
        web.registry.meta.unlisted_plugins(p.id, &viewer, 100),
    )?;
    let me = visitor.signed_in.as_ref().map(|s| s.user.username.as_str());
    let is_owner = members
        .iter()
        .any(|m| Some(m.username.as_str()) == me && m.role == "owner");
    let plugins: Vec<_> = hits.plugins.iter().chain(&unlisted).collect();
    let total = facets.total + unlisted.len() as i64;
    render(&PublisherPage {
        layout: visitor.layout(&web, p.display_name.clone().unwrap_or(p.name.clone())),
        display_name: p.display_name.clone().unwrap_or(p.name.clone()),
        verified: p.verified_at.map(format::date),
        email: p.email,
        url: p.url.filter(|u| super::is_web_link(u)),
        since: format::date(p.created_at),
        members: members.into_iter().map(|m| (m.username, m.role)).collect(),
        downloads: format::counted(
            plugins.iter().map(|p| p.downloads).sum(),
            "download",
            "downloads",
        ),
        cards: plugins.into_iter().map(Card::of).collect(),
        total: format::counted(total, "plugin", "plugins"),
        is_owner,
        name: p.name,
    })
}

#[derive(Debug, Deserialize)]
pub struct PublisherForm {
    csrf: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    verified: Option<String>,
}

pub async fn update(
    State(web): State<Web>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(form): Form<PublisherForm>,
) -> Result<Response, PageError> {
    visitor.check_csrf(&form.csrf)?;
    let caller = visitor.caller().ok_or(PageError::SignIn("/".into()))?;
    let settings = PublisherSettings {
        email: form.email,
        url: form.url,
        verified: form.verified.map(|v| v == "true"),
    };
    let p = publishers::update_settings(&web.registry, &caller, &name, settings).await?;
    Ok(see_other(&format!("/publishers/{}", p.name)))
}
