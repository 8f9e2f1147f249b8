//! The plugin manifest (`plugin.yaml`): its typed form, its JSON Schema, and parsing of
//! untrusted YAML into a validated [`Manifest`] with errors that name every bad field.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::name::{PluginRef, Slug};
use crate::text::Lines;

/// The manifest's JSON Schema (draft 2020-12), as served at `/api/v1/schema/manifest.json`.
pub const SCHEMA_JSON: &str = include_str!("manifest.schema.json");

/// Largest accepted manifest, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// The file name of a manifest inside a plugin directory or bundle.
pub const MANIFEST_FILE: &str = "plugin.yaml";

/// The longest callback name (`callbacks` in a manifest).
pub const MAX_CALLBACK_NAME: usize = 64;
/// The most callbacks a manifest may declare.
pub const MAX_CALLBACKS: usize = 32;

/// Whether `name` is a callback name: lowercase segments joined by `.`, each a letter
/// followed by letters, digits or `-`, at most [`MAX_CALLBACK_NAME`] characters (the rule
/// of the schema's `callbacks` items, for the policy and the runner).
pub fn is_callback_name(name: &str) -> bool {
    name.len() <= MAX_CALLBACK_NAME
        && name.split('.').all(|segment| {
            let mut bytes = segment.bytes();
            bytes.next().is_some_and(|b| b.is_ascii_lowercase())
                && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The key of this machine in a manifest's `runtime.binaries`, e.g. `linux-x86_64`
/// (compile-time constants: no I/O).
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

static SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(SCHEMA_JSON).expect("embedded manifest schema is JSON"));

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&SCHEMA)
        .expect("embedded manifest schema compiles")
});

pub use crate::field::FieldError;

/// What a manifest field with a line break should be instead (YAML's `>` and `|` end the
/// text with one).
const ONE_LINE_YAML: &str = "one line of text without control characters; in YAML, `>-` \
     folds a long text onto one line without the final line break `>` and `|` add";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {size} bytes; at most {MAX_MANIFEST_BYTES} bytes are accepted")]
    TooLarge { size: usize },
    #[error("manifest is not valid YAML: {0}")]
    Yaml(String),
    #[error("manifest has {} problem(s): {}", .0.len(), join(.0))]
    Invalid(Vec<FieldError>),
}

impl ManifestError {
    /// The field-level problems, if any.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ManifestError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Wasm,
    Exec,
    Oci,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 3] = [RuntimeKind::Wasm, RuntimeKind::Exec, RuntimeKind::Oci];

    pub fn parse(s: &str) -> Option<RuntimeKind> {
        RuntimeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Wasm => "wasm",
            RuntimeKind::Exec => "exec",
            RuntimeKind::Oci => "oci",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    #[serde(rename = "type")]
    pub kind: RuntimeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binaries: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entrypoint {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Compatibility {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_core: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_runner: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub outbound_hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fds: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<String>,
}

/// A validated plugin manifest. Construct it with [`Manifest::from_yaml`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub api_version: String,
    #[schema(value_type = String)]
    pub publisher: Slug,
    #[schema(value_type = String)]
    pub name: Slug,
    #[schema(value_type = String)]
    pub version: semver::Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub description: String,
    pub license: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    pub runtime: Runtime,
    #[serde(default)]
    pub entrypoints: BTreeMap<String, Entrypoint>,
    #[serde(default)]
    pub compatibility: Compatibility,
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The host core's callbacks the plugin may call through the runner (`notes.add`),
    /// each allowed by the host policy's `callbacks` (see `docs/plugin-contract.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<String>,
    #[serde(default)]
    pub contact: Contact,
}

/// What an artifact of a release is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactRole {
    Manifest,
    Module,
    Binary,
    Readme,
    Changelog,
    License,
    Sbom,
}

impl ArtifactRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactRole::Manifest => "manifest",
            ArtifactRole::Module => "module",
            ArtifactRole::Binary => "binary",
            ArtifactRole::Readme => "readme",
            ArtifactRole::Changelog => "changelog",
            ArtifactRole::License => "license",
            ArtifactRole::Sbom => "sbom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "manifest" => ArtifactRole::Manifest,
            "module" => ArtifactRole::Module,
            "binary" => ArtifactRole::Binary,
            "readme" => ArtifactRole::Readme,
            "changelog" => ArtifactRole::Changelog,
            "license" => ArtifactRole::License,
            "sbom" => ArtifactRole::Sbom,
            _ => return None,
        })
    }
}

/// Documentation files picked up when the manifest does not name them.
pub const DEFAULT_README: &[&str] = &["README.md", "README"];
pub const DEFAULT_CHANGELOG: &[&str] = &["CHANGELOG.md", "CHANGELOG"];
pub const DEFAULT_LICENSE: &[&str] = &["LICENSE", "LICENSE.md", "LICENSE.txt"];

impl Manifest {
    /// Parses and validates an untrusted manifest that is read (a release already
    /// published, a plugin installed): no string may hold a control character but line
    /// breaks and tabs, which pass so that releases published before the one-line rule
    /// of [`Manifest::from_yaml_to_publish`] still install and run.
    pub fn from_yaml(text: &str) -> Result<Manifest, ManifestError> {
        Self::parse(text, Lines::Multi)
    }

    /// Parses and validates a manifest that is being published (the registry's publish,
    /// the client's bundle): as [`Manifest::from_yaml`], and every string is one line
    /// (a description with a line break or a tab is refused naming `description`).
    pub fn from_yaml_to_publish(text: &str) -> Result<Manifest, ManifestError> {
        Self::parse(text, Lines::Single)
    }

    fn parse(text: &str, lines: Lines) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { size: text.len() });
        }
        let document: Value = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|e| ManifestError::Yaml(e.to_string()))?;
        Self::validate(document, lines)
    }

    /// Validates a manifest already parsed into JSON values (e.g. from the API), with the
    /// text rule of [`Manifest::from_yaml`].
    pub fn from_value(document: Value) -> Result<Manifest, ManifestError> {
        Self::validate(document, Lines::Multi)
    }

    fn validate(document: Value, lines: Lines) -> Result<Manifest, ManifestError> {
        let mut errors: Vec<FieldError> =
            VALIDATOR.iter_errors(&document).map(schema_error).collect();
        errors.extend(
            crate::text::check_json(&document, "", lines)
                .into_iter()
                .map(|mut e| {
                    if lines == Lines::Single && e.problem.contains("line break") {
                        e.expected = Some(ONE_LINE_YAML.to_owned());
                    }
                    e
                }),
        );
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            errors.dedup();
            return Err(ManifestError::Invalid(errors));
        }
        let manifest: Manifest = serde_json::from_value(document)
            .map_err(|e| ManifestError::Invalid(vec![FieldError::new("", e.to_string(), None)]))?;
        let errors = manifest.semantic_errors();
        if errors.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError::Invalid(errors))
        }
    }

    pub fn plugin_ref(&self) -> PluginRef {
        PluginRef {
            publisher: self.publisher.clone(),
            name: self.name.clone(),
        }
    }

    pub fn title(&self) -> &str {
        self.display_name.as_deref().unwrap_or(self.name.as_str())
    }

    /// The dependencies as parsed references and requirements (validated at parse time).
    pub fn parsed_dependencies(&self) -> Vec<(PluginRef, semver::VersionReq)> {
        self.dependencies
            .iter()
            .filter_map(|(r, req)| Some((r.parse().ok()?, semver::VersionReq::parse(req).ok()?)))
            .collect()
    }

    /// The files the release must carry, with their roles, as named by the manifest
    /// (runtime files and explicitly named documents; default-named documents are
    /// matched by [`Manifest::role_of`]).
    pub fn required_files(&self) -> Vec<(&str, ArtifactRole)> {
        let mut files = Vec::new();
        if let Some(module) = &self.runtime.module {
            files.push((module.as_str(), ArtifactRole::Module));
        }
        for path in self.runtime.binaries.values() {
            files.push((path.as_str(), ArtifactRole::Binary));
        }
        for (path, role) in [
            (&self.readme, ArtifactRole::Readme),
            (&self.changelog, ArtifactRole::Changelog),
            (&self.license_file, ArtifactRole::License),
            (&self.sbom, ArtifactRole::Sbom),
        ] {
            if let Some(path) = path {
                files.push((path.as_str(), role));
            }
        }
        files
    }

    /// Every file a release of this manifest carries besides `plugin.yaml`, by path: the
    /// files it names, and the first conventional README, CHANGELOG and LICENSE that
    /// `exists` finds for each it does not name. Bundles, `agora publish` and `agora
    /// audit` all take their list from here.
    pub fn release_files(&self, exists: impl Fn(&str) -> bool) -> BTreeMap<String, ArtifactRole> {
        let mut files: BTreeMap<String, ArtifactRole> = self
            .required_files()
            .into_iter()
            .map(|(path, role)| (path.to_owned(), role))
            .collect();
        let defaults = [
            (&self.readme, DEFAULT_README, ArtifactRole::Readme),
            (&self.changelog, DEFAULT_CHANGELOG, ArtifactRole::Changelog),
            (&self.license_file, DEFAULT_LICENSE, ArtifactRole::License),
        ];
        for (named, names, role) in defaults {
            if let Some(name) = names.iter().find(|n| named.is_none() && exists(n)) {
                files.insert((*name).to_owned(), role);
            }
        }
        files
    }

    /// The role a file at `path` plays in this release, or `None` when the manifest gives
    /// it no role (such a file does not belong in the release).
    pub fn role_of(&self, path: &str) -> Option<ArtifactRole> {
        if path == MANIFEST_FILE {
            return Some(ArtifactRole::Manifest);
        }
        if let Some((_, role)) = self.required_files().into_iter().find(|(p, _)| *p == path) {
            return Some(role);
        }
        let defaults = [
            (&self.readme, DEFAULT_README, ArtifactRole::Readme),
            (&self.changelog, DEFAULT_CHANGELOG, ArtifactRole::Changelog),
            (&self.license_file, DEFAULT_LICENSE, ArtifactRole::License),
        ];
        defaults
            .into_iter()
            .find(|(named, names, _)| named.is_none() && names.contains(&path))
            .map(|(_, _, role)| role)
    }

    fn semantic_errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let relpaths = self
            .required_files()
            .into_iter()
            .map(|(p, role)| (p.to_owned(), role));
        for (path, role) in relpaths {
            if let Some(problem) = relative_path_problem(&path) {
                errors.push(FieldError::new(
                    role_field(role),
                    problem,
                    Some("a relative path inside the plugin directory"),
                ));
            }
        }
        for (dep, req) in &self.dependencies {
            if semver::VersionReq::parse(req).is_err() {
                errors.push(FieldError::new(
                    format!("dependencies.{dep}"),
                    format!("{req:?} is not a semver requirement"),
                    Some("a requirement such as ^1.0, ~1.2.3 or >=1.0, <2"),
                ));
            }
            if dep == &format!("{}/{}", self.publisher, self.name) {
                errors.push(FieldError::new(
                    format!("dependencies.{dep}"),
                    "a plugin cannot depend on itself",
                    None,
                ));
            }
        }
        for (field, value) in [
            ("compatibility.min_core", &self.compatibility.min_core),
            ("compatibility.min_runner", &self.compatibility.min_runner),
        ] {
            if let Some(v) = value
                && semver::Version::parse(v).is_err()
            {
                errors.push(FieldError::new(
                    field,
                    format!("{v:?} is not a semantic version"),
                    Some("a version such as 1.2.0"),
                ));
            }
        }
        let wants_http = self.capabilities.iter().any(|c| c == "outbound_http");
        if wants_http && self.network.outbound_hosts.is_empty() {
            errors.push(FieldError::new(
                "network.outbound_hosts",
                "capability outbound_http is declared but no outbound host is listed",
                Some("the host names the plugin calls"),
            ));
        }
        if !wants_http && !self.network.outbound_hosts.is_empty() {
            errors.push(FieldError::new(
                "capabilities",
                "network.outbound_hosts lists hosts but capability outbound_http is not declared",
                Some("outbound_http among the capabilities"),
            ));
        }
        if !self.secrets.is_empty() && !self.capabilities.iter().any(|c| c == "secrets_read") {
            errors.push(FieldError::new(
                "capabilities",
                "secrets are listed but capability secrets_read is not declared",
                Some("secrets_read among the capabilities"),
            ));
        }
        errors
    }
}

fn role_field(role: ArtifactRole) -> &'static str {
    match role {
        ArtifactRole::Module => "runtime.module",
        ArtifactRole::Binary => "runtime.binaries",
        ArtifactRole::Readme => "readme",
        ArtifactRole::Changelog => "changelog",
        ArtifactRole::License => "license_file",
        ArtifactRole::Sbom => "sbom",
        ArtifactRole::Manifest => "",
    }
}

/// Why `path` is not a safe relative path inside a plugin directory, if it is not.
/// Shared by the manifest, the bundle reader and the server's release checks.
pub fn relative_path_problem(path: &str) -> Option<String> {
    if path.is_empty() || path.len() > 255 {
        return Some("path must be 1 to 255 characters".into());
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Some(format!("{path:?} is not a relative path"));
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some(format!("{path:?} has an empty, '.' or '..' segment"));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._/+-".contains(&b))
    {
        return Some(format!(
            "{path:?} has characters other than letters, digits, '.', '_', '-', '+', '/'"
        ));
    }
    None
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 20_000;
    budget.max_aliases = 64;
    budget.max_anchors = 64;
    budget.max_depth = 32;
    budget.max_nodes = 10_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_MANIFEST_BYTES;
    budget.max_recorded_anchor_events = 2_000;
    budget.max_recorded_anchor_bytes = MAX_MANIFEST_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options
}

/// Turns a schema violation into a field error, taking "what is accepted" from the
/// `description` of the closest schema node.
fn schema_error(error: jsonschema::ValidationError<'_>) -> FieldError {
    let field = field_path(error.instance_path().as_str());
    let expected = description_at(error.schema_path().as_str());
    // Messages quote the offending value, which may be long and is untrusted: cut it on
    // a character boundary (a byte index can fall inside a multi-byte character).
    let full = error.to_string();
    let mut problem: String = full.chars().take(300).collect();
    if problem.len() < full.len() {
        problem.push('…');
    }
    FieldError {
        field,
        problem,
        expected,
    }
}

/// `/runtime/binaries/linux-x86_64` → `runtime.binaries.linux-x86_64`; `/tags/2` → `tags[2]`.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

fn description_at(pointer: &str) -> Option<String> {
    let mut node = &*SCHEMA;
    let mut found = None;
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) => map.get(&seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => break,
        };
        if let Some(Value::String(d)) = node.get("description") {
            found = Some(d.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests;
