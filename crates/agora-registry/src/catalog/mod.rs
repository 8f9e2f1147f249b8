//! The catalog as a viewer may see it: searching (the one place search input is checked,
//! for the API and the pages alike), and plugins and versions, each either visible to the
//! viewer or indistinguishable from missing.

pub mod cursor;

use agora_core::api::SearchParams;
use agora_store::{
    Facets, PluginRecord, SearchQuery, SearchResult, SearchSort, VersionRecord, Viewer,
};

use crate::Registry;
use crate::error::{RegistryError, Result, one_line, one_line_opt, truncate};

/// Longest search text.
pub const MAX_QUERY_CHARS: usize = 256;
/// Longest filter value (tag, category, provider, capability, publisher, host version).
pub const MAX_FILTER_CHARS: usize = 64;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

fn filter(field: &str, value: Option<String>) -> Result<Option<String>> {
    one_line_opt(field, value.as_deref())?;
    match value {
        Some(v) if v.chars().count() > MAX_FILTER_CHARS => Err(RegistryError::field(
            field,
            format!("is {} characters long", v.chars().count()),
            Some("at most 64 characters"),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Checks search parameters and turns them into a query: the one place the API and the
/// web pages validate them, so both accept and refuse the same things.
pub fn search_query(params: SearchParams, viewer: Viewer, max: u32) -> Result<SearchQuery> {
    for (field, value) in [
        ("q", &params.q),
        ("sort", &params.sort),
        ("runtime", &params.runtime),
        ("cursor", &params.cursor),
    ] {
        one_line_opt(field, value.as_deref())?;
    }
    if let Some(q) = &params.q
        && q.chars().count() > MAX_QUERY_CHARS
    {
        return Err(RegistryError::field(
            "q",
            format!("is {} characters long", q.chars().count()),
            Some("at most 256 characters"),
        ));
    }
    let text = params.q.filter(|q| !q.trim().is_empty());
    let sort = match params.sort.as_deref() {
        None if text.is_some() => SearchSort::Relevance,
        None => SearchSort::Downloads,
        Some(s) => SearchSort::parse(s).ok_or_else(|| {
            RegistryError::field(
                "sort",
                format!("unknown sort {:?}", truncate(s)),
                Some("relevance, downloads, recent, name or rating"),
            )
        })?,
    };
    // The order the store will really use, so the cursors it issues decode again.
    let sort = sort.for_text(text.as_deref());
    if let Some(runtime) = &params.runtime
        && agora_core::RuntimeKind::parse(runtime).is_none()
    {
        return Err(RegistryError::field(
            "runtime",
            format!("unknown runtime {:?}", truncate(runtime)),
            Some("wasm, exec or oci"),
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE.min(max));
    if limit == 0 || limit > max {
        return Err(RegistryError::field(
            "limit",
            format!("{limit} is out of range"),
            Some(&format!("1 to {max}")),
        ));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| cursor::decode(c, sort))
        .transpose()?;
    if let Some(r) = params.min_rating
        && !(1..=5).contains(&r)
    {
        return Err(RegistryError::field(
            "min_rating",
            format!("{r} is out of range"),
            Some("1 to 5"),
        ));
    }
    let compatible_with = match filter("compatible_with", params.compatible_with)? {
        Some(v) => Some(semver::Version::parse(v.trim()).map_err(|_| {
            RegistryError::field(
                "compatible_with",
                format!("{:?} is not a version", truncate(&v)),
                Some("a host version such as 2.4.0"),
            )
        })?),
        None => None,
    };
    Ok(SearchQuery {
        text,
        tag: filter("tag", params.tag)?,
        category: filter("category", params.category)?,
        provider: filter("provider", params.provider)?,
        capability: filter("capability", params.capability)?,
        runtime: filter("runtime", params.runtime)?,
        publisher: filter("publisher", params.publisher)?,
        verified: params.verified.unwrap_or(false),
        verified_release: params.verified_release.unwrap_or(false),
        min_rating: params.min_rating.map(i64::from),
        compatible_with,
        sort,
        after,
        limit,
        viewer,
        max_matches: agora_store::MAX_TEXT_MATCHES,
    })
}

/// The plugin if it exists and the viewer may see it; otherwise the same 404 either way,
/// so private plugins cannot be discovered by probing names.
pub async fn visible_plugin(
    registry: &Registry,
    viewer: &Viewer,
    publisher: &str,
    name: &str,
) -> Result<PluginRecord> {
    one_line("publisher", publisher)?;
    one_line("name", name)?;
    registry
        .meta
        .visible_plugin(publisher, name, viewer)
        .await?
        .ok_or_else(|| RegistryError::not_found(format!("plugin {publisher}/{name} not found")))
}

/// One page of a search.
pub async fn search(registry: &Registry, query: &SearchQuery) -> Result<SearchResult> {
    let result = registry.meta.search(query).await?;
    // A search is counted once, on its first page (with how many its first page found).
    if query.after.is_none() {
        crate::analytics::searched(registry, query.text.as_deref(), result.plugins.len() as u64);
    }
    Ok(result)
}

/// Hit counts of a search by facet value.
pub async fn facets(registry: &Registry, query: &SearchQuery) -> Result<Facets> {
    Ok(registry.meta.facets(query).await?)
}

/// The version of a plugin (already known visible), or a 404 naming it.
pub async fn version(
    registry: &Registry,
    plugin: &PluginRecord,
    version: &str,
) -> Result<VersionRecord> {
    one_line("version", version)?;
    registry
        .meta
        .version(plugin.id, version)
        .await?
        .ok_or_else(|| {
            RegistryError::not_found(format!(
                "version {version} of {}/{} not found",
                plugin.publisher, plugin.name
            ))
        })
}

/// A release with its files.
pub type Release = (VersionRecord, Vec<agora_store::ArtifactRecord>);

/// A plugin the viewer may see, its versions (newest first) and its latest version with
/// its files, if it has one.
pub async fn plugin(
    registry: &Registry,
    viewer: &Viewer,
    publisher: &str,
    name: &str,
) -> Result<(PluginRecord, Vec<VersionRecord>, Option<Release>)> {
    let plugin = visible_plugin(registry, viewer, publisher, name).await?;
    let versions = registry.meta.versions(plugin.id).await?;
    let latest = match versions
        .iter()
        .find(|v| Some(&v.version) == plugin.latest_version.as_ref())
    {
        Some(v) => Some((v.clone(), registry.meta.artifacts(v.id).await?)),
        None => None,
    };
    Ok((plugin, versions, latest))
}

/// A plugin the viewer may see and its versions, newest first.
pub async fn versions(
    registry: &Registry,
    viewer: &Viewer,
    publisher: &str,
    name: &str,
) -> Result<(PluginRecord, Vec<VersionRecord>)> {
    let plugin = visible_plugin(registry, viewer, publisher, name).await?;
    let versions = registry.meta.versions(plugin.id).await?;
    Ok((plugin, versions))
}

/// One version of a plugin the viewer may see, with its files.
pub async fn release(
    registry: &Registry,
    viewer: &Viewer,
    publisher: &str,
    name: &str,
    version_name: &str,
) -> Result<(PluginRecord, Release)> {
    let plugin = visible_plugin(registry, viewer, publisher, name).await?;
    let v = version(registry, &plugin, version_name).await?;
    let artifacts = registry.meta.artifacts(v.id).await?;
    Ok((plugin, (v, artifacts)))
}
