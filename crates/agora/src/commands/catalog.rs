//! `search`, `info`, `versions`.

use agora_core::api::{PluginDetail, VersionDetail};

use super::{Session, split_at};
use crate::cli::SearchArgs;
use crate::output::shown;

pub async fn search(s: &Session, a: SearchArgs) -> anyhow::Result<()> {
    let params = a.params();
    let page = s.client()?.search(&params).await?;
    s.out.show(&page, |page| {
        if page.items.is_empty() {
            return "No plugins found.".into();
        }
        let mut lines: Vec<String> = page
            .items
            .iter()
            .map(|p| {
                format!(
                    "{}/{} {}  {}  [{}] {} downloads",
                    p.publisher,
                    p.name,
                    p.latest_version.as_deref().unwrap_or("-"),
                    shown(&p.description),
                    p.runtime,
                    p.downloads
                )
            })
            .collect();
        if let Some(c) = &page.next_cursor {
            lines.push(format!("More results: add --cursor {c}"));
        }
        lines.join("\n")
    })
}

fn version_text(v: &VersionDetail) -> String {
    let m = &v.manifest;
    let mut out = vec![
        format!(
            "{}/{}@{} — {}",
            v.publisher,
            v.name,
            v.version,
            shown(m.title())
        ),
        shown(&m.description).into_owned(),
        format!(
            "state: {}{}",
            v.state.as_str(),
            v.state_reason
                .as_ref()
                .map(|r| format!(" ({})", shown(r)))
                .unwrap_or_default()
        ),
        format!(
            "runtime: {}  license: {}",
            m.runtime.kind.as_str(),
            m.license
        ),
        format!(
            "published {} by {}; {} downloads",
            v.published_at, v.published_by, v.downloads
        ),
        format!("manifest: {}", v.manifest_digest),
    ];
    if !m.capabilities.is_empty() {
        out.push(format!("capabilities: {}", m.capabilities.join(", ")));
    }
    if !m.network.outbound_hosts.is_empty() {
        out.push(format!(
            "outbound hosts: {}",
            m.network.outbound_hosts.join(", ")
        ));
    }
    if !m.dependencies.is_empty() {
        out.push(format!(
            "dependencies: {}",
            m.dependencies
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for a in &v.artifacts {
        out.push(format!(
            "  {:<24} {:>10} bytes  {}",
            a.path, a.size, a.digest
        ));
    }
    out.join("\n")
}

fn plugin_text(p: &PluginDetail) -> String {
    let s = &p.summary;
    let mut out = vec![
        format!("{}/{} — {}", s.publisher, s.name, shown(&s.display_name)),
        shown(&s.description).into_owned(),
        format!(
            "latest: {}  runtime: {}  visibility: {}  downloads: {}",
            s.latest_version.as_deref().unwrap_or("none"),
            s.runtime,
            s.visibility.as_str(),
            s.downloads
        ),
    ];
    if !s.tags.is_empty() || !s.categories.is_empty() {
        out.push(format!(
            "tags: {}  categories: {}",
            s.tags.join(", "),
            s.categories.join(", ")
        ));
    }
    if !s.capabilities.is_empty() {
        out.push(format!("capabilities: {}", s.capabilities.join(", ")));
    }
    out.push(format!("install: agora install {}/{}", s.publisher, s.name));
    out.push("versions:".into());
    for v in p.versions.iter().take(10) {
        out.push(format!(
            "  {:<16} {:<10} {}",
            v.version,
            v.state.as_str(),
            v.published_at
        ));
    }
    out.join("\n")
}

pub async fn info(s: &Session, spec: &str) -> anyhow::Result<()> {
    let (plugin, version) = split_at(spec)?;
    let client = s.client()?;
    match version {
        Some(v) => {
            let detail = client
                .version(plugin.publisher.as_str(), plugin.name.as_str(), &v)
                .await?;
            let report = client
                .verification(plugin.publisher.as_str(), plugin.name.as_str(), &v)
                .await?;
            let mut json = serde_json::to_value(&detail)?;
            json["verification"] = serde_json::to_value(&report)?;
            s.out.show(&json, |_| {
                let mut text = version_text(&detail);
                text.push_str(&format!(
                    "\nverification: {}",
                    verification_text(report.as_ref())
                ));
                text
            })
        }
        None => {
            let detail = client
                .plugin(plugin.publisher.as_str(), plugin.name.as_str())
                .await?;
            s.out.show(&detail, plugin_text)
        }
    }
}

/// The verdict and what stands behind it, in a few lines.
fn verification_text(report: Option<&agora_core::verification::VerificationReport>) -> String {
    let Some(r) = report else {
        return "not checked yet (queued)".to_owned();
    };
    let mut text = format!("{} (checked {})", r.outcome.as_str(), r.checked_at);
    for f in r.stages.iter().flat_map(|s| &s.findings) {
        text.push_str(&format!("\n  {}", crate::output::shown(&f.line())));
    }
    text
}

pub async fn versions(s: &Session, spec: &str) -> anyhow::Result<()> {
    let plugin: agora_core::PluginRef = spec.parse()?;
    let list = s
        .client()?
        .versions(plugin.publisher.as_str(), plugin.name.as_str())
        .await?;
    s.out.show(&list, |l| {
        l.versions
            .iter()
            .map(|v| {
                format!(
                    "{:<16} {:<10} {:<24} {} downloads{}",
                    v.version,
                    v.state.as_str(),
                    v.published_at,
                    v.downloads,
                    v.state_reason
                        .as_ref()
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}
