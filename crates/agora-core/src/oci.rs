//! The OCI distribution side of the domain: repository names, tags and references as the
//! distribution spec v1.1 writes them, the spec's error codes, the parts of a pushed
//! manifest a registry must read (what it refers to, its subject, its artifact type), and
//! how an Agora release appears as an OCI artifact.
//!
//! A **repository** is named `PUBLISHER/NAME[/MORE...]`: its first component is the
//! publisher that owns it. A plugin `acme/jira` is the repository `acme/jira`; each of
//! its releases is an artifact there, tagged with its version (`+` written `_`, since OCI
//! tags cannot hold `+`), whose config is the release's `plugin.yaml` and whose layers are
//! its files, in the order of the manifest's artifact list. The release's DSSE envelope
//! and each verification outcome are **referrers** of that artifact (their `subject`).
//!
//! Everything a release's artifact is made of is generated here from the release's
//! stored facts, as compact JSON with fields in a fixed order, so the same release always
//! has the same manifest digest on every replica and after every restart.
//!
//! Pushed manifests are read permissively (any media type a client pushes is kept as
//! bytes); only the descriptors they refer to are parsed, within [`MAX_MANIFEST_BYTES`]
//! and [`MAX_REFERENCES`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// An OCI image manifest.
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker image manifest (schema 2), which clients still push.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The empty JSON object `{}`, the config of artifacts that need none.
pub const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of [`EMPTY_JSON`].
pub const EMPTY_JSON_BYTES: &[u8] = b"{}";

/// The `artifactType` of an Agora release.
pub const RELEASE_ARTIFACT: &str = "application/vnd.agora.release.v1";
/// The media type of a release's config: its `plugin.yaml`, byte for byte.
pub const RELEASE_CONFIG: &str = "application/vnd.agora.plugin.manifest.v1+yaml";
/// The media type of each file of a release.
pub const RELEASE_FILE: &str = "application/vnd.agora.plugin.file.v1";
/// The `artifactType` (and layer media type) of a release's signature: its DSSE envelope.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dsse.envelope.v1+json";
/// The `artifactType` (and layer media type) of a verification outcome.
pub const VERIFICATION_ARTIFACT: &str = "application/vnd.agora.verification.v1+json";

/// The manifest media types this registry accepts on push.
pub const MANIFEST_TYPES: [&str; 4] = [
    IMAGE_MANIFEST,
    IMAGE_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// The annotation naming a layer's file (`org.opencontainers.image.title`).
pub const TITLE: &str = "org.opencontainers.image.title";
/// The annotation carrying a release's version.
pub const VERSION: &str = "org.opencontainers.image.version";
/// The annotation carrying when a release was published (RFC 3339).
pub const CREATED: &str = "org.opencontainers.image.created";
/// The annotation naming a release's file role.
pub const ROLE: &str = "dev.agora.role";
/// The annotation naming a release's plugin.
pub const PLUGIN: &str = "dev.agora.plugin";
/// The annotation carrying a verification outcome.
pub const OUTCOME: &str = "dev.agora.verification.outcome";

/// Largest manifest accepted on push (distribution's own default).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Most descriptors (config, layers, manifests, subject) one manifest may refer to.
pub const MAX_REFERENCES: usize = 1024;
/// Longest repository name, registry host included in clients' view (the spec's advice).
pub const MAX_NAME_LEN: usize = 255;
/// Most path components of a repository name.
pub const MAX_NAME_COMPONENTS: usize = 8;
/// Longest tag (the spec's grammar).
pub const MAX_TAG_LEN: usize = 128;
/// Most tags a tag listing returns per page, whatever `n` asks.
pub const MAX_TAGS_PAGE: usize = 1000;
/// Most referrers one referrers response lists.
pub const MAX_REFERRERS: usize = 1000;
/// Most annotations (and bytes of them) kept from a pushed manifest for the referrers API.
pub const MAX_ANNOTATIONS_BYTES: usize = 16 * 1024;

/// The error codes of the distribution spec, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// A chunk that does not start where the upload ends, or a range the blob lacks.
    RangeInvalid,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::RangeInvalid => "BLOB_UPLOAD_INVALID",
        }
    }

    /// The HTTP status the spec pairs with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::RangeInvalid => 416,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name, tag or reference was refused (its message says what is accepted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

/// A repository name, `PUBLISHER/NAME[/MORE...]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repository(String);

impl Repository {
    /// Checks `raw` against the spec's grammar (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` per
    /// component) and Agora's: at least two components, the first a publisher name.
    pub fn parse(raw: &str) -> Result<Repository, SyntaxError> {
        let accepted = "lowercase letters and digits separated by '.', '_', '__' or dashes, in \
                        2 to 8 '/'-separated components whose first is a publisher, such as acme/jira";
        let bad = |why: &str| {
            SyntaxError(format!(
                "repository name {raw:?} {why}; accepted: {accepted}"
            ))
        };
        if raw.len() > MAX_NAME_LEN {
            return Err(bad(&format!("is longer than {MAX_NAME_LEN} characters")));
        }
        let parts: Vec<&str> = raw.split('/').collect();
        if parts.len() < 2 {
            return Err(bad("has no publisher component"));
        }
        if parts.len() > MAX_NAME_COMPONENTS {
            return Err(bad("has too many components"));
        }
        if let Some(part) = parts.iter().find(|p| !is_component(p)) {
            return Err(bad(&format!("has the invalid component {part:?}")));
        }
        if !crate::name::is_slug(parts[0]) {
            return Err(bad(&format!(
                "starts with {:?}, which is not a publisher name",
                parts[0]
            )));
        }
        Ok(Repository(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The publisher that owns the repository.
    pub fn publisher(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }

    /// The plugin this repository is, when it has exactly two components.
    pub fn plugin(&self) -> Option<(&str, &str)> {
        let (publisher, name) = self.0.split_once('/')?;
        (!name.contains('/')).then_some((publisher, name))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One component of a repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return false;
        }
        // A separator: '.', '_', '__' or one or more '-'.
        let sep_len = match bytes[i] {
            b'.' => 1,
            b'_' => {
                if bytes.get(i + 1) == Some(&b'_') {
                    2
                } else {
                    1
                }
            }
            b'-' => bytes[i..].iter().take_while(|b| **b == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        expect_alnum = true;
    }
    !expect_alnum
}

/// Checks a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn check_tag(raw: &str) -> Result<(), SyntaxError> {
    let mut chars = raw.chars();
    let ok = raw.len() <= MAX_TAG_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SyntaxError(format!(
            "tag {raw:?} is not valid; accepted: a letter, digit or '_' then up to 127 letters, \
             digits, '_', '.' or '-'"
        )))
    }
}

/// What `/v2/NAME/manifests/REFERENCE` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(raw: &str) -> Result<Reference, SyntaxError> {
        if raw.contains(':') {
            parse_digest(raw).map(Reference::Digest)
        } else {
            check_tag(raw).map(|()| Reference::Tag(raw.to_owned()))
        }
    }
}

/// A digest from the protocol: only `sha256` is stored here.
pub fn parse_digest(raw: &str) -> Result<Digest, SyntaxError> {
    raw.parse().map_err(|_| {
        SyntaxError(format!(
            "digest {raw:?} is not supported; accepted: sha256: followed by 64 lowercase hex digits"
        ))
    })
}

/// The tag a release's version gets (`+` is not allowed in tags, so it is written `_`,
/// as Helm does).
pub fn version_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// The fallback tag of the referrers API for a subject: `sha256-HEX`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// An index entry's platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index entry (the fields a choice needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_string(),
            size,
            artifact_type: None,
            annotations: None,
            platform: None,
        }
    }
}

/// The parts of a pushed manifest (image manifest or index, OCI or Docker) a registry
/// reads; everything else is kept as the client's bytes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pushed {
    #[serde(default)]
    pub schema_version: Option<u32>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A pushed manifest, checked: its media type, what it refers to, its subject.
#[derive(Debug, Clone)]
pub struct CheckedManifest {
    pub media_type: String,
    /// `artifactType`, or the config's media type for an image manifest without one (as
    /// the referrers API reports it).
    pub artifact_type: Option<String>,
    /// Blobs it needs (config and layers).
    pub blobs: Vec<Digest>,
    /// Manifests it needs (an index's entries).
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// Its annotations as JSON, if they fit in [`MAX_ANNOTATIONS_BYTES`].
    pub annotations: Option<String>,
}

/// Checks a pushed manifest's bytes against the `Content-Type` it came with.
pub fn check_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<CheckedManifest, SyntaxError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(SyntaxError(format!(
            "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES} are accepted",
            bytes.len()
        )));
    }
    let pushed: Pushed = serde_json::from_slice(bytes)
        .map_err(|e| SyntaxError(format!("the manifest is not a JSON manifest: {e}")))?;
    if pushed.schema_version != Some(2) {
        return Err(SyntaxError("the manifest's schemaVersion must be 2".into()));
    }
    // The media type: the body's, else the header's; both must agree when both are given.
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let media_type = match (pushed.media_type.as_deref(), content_type) {
        (Some(body), Some(header)) if body != header => {
            return Err(SyntaxError(format!(
                "the manifest's mediaType {body:?} differs from its Content-Type {header:?}"
            )));
        }
        (Some(body), _) => body.to_owned(),
        (None, Some(header)) => header.to_owned(),
        (None, None) => {
            return Err(SyntaxError(
                "the manifest has no mediaType and the request no Content-Type".into(),
            ));
        }
    };
    if !MANIFEST_TYPES.contains(&media_type.as_str()) {
        return Err(SyntaxError(format!(
            "manifest media type {media_type:?} is not accepted; accepted: {}",
            MANIFEST_TYPES.join(", ")
        )));
    }
    let is_index = media_type == IMAGE_INDEX || media_type == DOCKER_MANIFEST_LIST;
    let count = pushed.layers.len() + pushed.manifests.len() + 2;
    if count > MAX_REFERENCES {
        return Err(SyntaxError(format!(
            "the manifest refers to {count} descriptors; at most {MAX_REFERENCES} are accepted"
        )));
    }
    let digest_of = |d: &Descriptor, field: &str| {
        parse_digest(&d.digest).map_err(|e| SyntaxError(format!("{field}: {e}")))
    };
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    if is_index {
        if pushed.config.is_some() || !pushed.layers.is_empty() {
            return Err(SyntaxError("an index has no config and no layers".into()));
        }
        for (i, d) in pushed.manifests.iter().enumerate() {
            manifests.push(digest_of(d, &format!("manifests[{i}].digest"))?);
        }
    } else {
        let config = pushed
            .config
            .as_ref()
            .ok_or_else(|| SyntaxError("an image manifest needs a config".into()))?;
        blobs.push(digest_of(config, "config.digest")?);
        for (i, d) in pushed.layers.iter().enumerate() {
            blobs.push(digest_of(d, &format!("layers[{i}].digest"))?);
        }
        if !pushed.manifests.is_empty() {
            return Err(SyntaxError(
                "an image manifest has no manifests list".into(),
            ));
        }
    }
    let subject = pushed
        .subject
        .as_ref()
        .map(|d| digest_of(d, "subject.digest"))
        .transpose()?;
    let artifact_type = pushed.artifact_type.clone().or_else(|| {
        (!is_index)
            .then(|| pushed.config.as_ref().map(|c| c.media_type.clone()))
            .flatten()
    });
    let annotations = pushed
        .annotations
        .as_ref()
        .and_then(|a| serde_json::to_string(a).ok())
        .filter(|a| a.len() <= MAX_ANNOTATIONS_BYTES);
    Ok(CheckedManifest {
        media_type,
        artifact_type,
        blobs,
        manifests,
        subject,
        annotations,
    })
}

/// An image manifest as this registry writes one (fields in the spec's order).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Written<'a> {
    schema_version: u32,
    media_type: &'static str,
    artifact_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

fn written(manifest: &Written<'_>) -> Vec<u8> {
    // Serialising plain strings, numbers and maps cannot fail.
    serde_json::to_vec(manifest).unwrap_or_default()
}

/// One file of a release, as its artifact lists it.
#[derive(Debug, Clone)]
pub struct ReleaseFile<'a> {
    pub path: &'a str,
    pub role: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
}

/// The facts a release's artifact is made of.
#[derive(Debug, Clone)]
pub struct ReleaseFacts<'a> {
    pub plugin: &'a str,
    pub version: &'a str,
    /// RFC 3339, UTC.
    pub published: &'a str,
    /// The stored `plugin.yaml`.
    pub manifest: (&'a Digest, u64),
    /// Every file other than the manifest, in the release's order.
    pub files: Vec<ReleaseFile<'a>>,
}

/// The OCI manifest of a release: config = its `plugin.yaml`, layers = its files.
pub fn release_manifest(facts: &ReleaseFacts<'_>) -> Vec<u8> {
    let layers = facts
        .files
        .iter()
        .map(|f| Descriptor {
            annotations: Some(BTreeMap::from([
                (ROLE.to_owned(), f.role.to_owned()),
                (TITLE.to_owned(), f.path.to_owned()),
            ])),
            ..Descriptor::new(RELEASE_FILE, f.digest, f.size)
        })
        .collect();
    written(&Written {
        schema_version: 2,
        media_type: IMAGE_MANIFEST,
        artifact_type: RELEASE_ARTIFACT,
        config: Descriptor::new(RELEASE_CONFIG, facts.manifest.0, facts.manifest.1),
        layers,
        subject: None,
        annotations: BTreeMap::from([
            (CREATED.to_owned(), facts.published.to_owned()),
            (PLUGIN.to_owned(), facts.plugin.to_owned()),
            (VERSION.to_owned(), facts.version.to_owned()),
        ]),
    })
}

/// A referrer of `subject` carrying one blob (`layer`) of `artifact_type`, with an empty
/// config, as the spec's artifact guidance writes it.
pub fn referrer_manifest(
    artifact_type: &str,
    subject: Descriptor,
    layer: (&Digest, u64),
    annotations: BTreeMap<String, String>,
) -> Vec<u8> {
    written(&Written {
        schema_version: 2,
        media_type: IMAGE_MANIFEST,
        artifact_type,
        config: Descriptor::new(
            EMPTY_JSON,
            &Digest::of(EMPTY_JSON_BYTES),
            EMPTY_JSON_BYTES.len() as u64,
        ),
        layers: vec![Descriptor::new(artifact_type, layer.0, layer.1)],
        subject: Some(subject),
        annotations,
    })
}

/// An image index listing `manifests`: the referrers API's answer.
pub fn index(manifests: Vec<Descriptor>) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Index {
        schema_version: u32,
        media_type: &'static str,
        manifests: Vec<Descriptor>,
    }
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: IMAGE_INDEX,
        manifests,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec_and_name_a_publisher() {
        for ok in [
            "acme/jira",
            "acme/a.b/c__d",
            "acme/x--y",
            "a1/b2/c3",
            "acme/jira_2",
        ] {
            assert!(Repository::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "jira",
            "Acme/jira",
            "acme//jira",
            "acme/jira/",
            "acme/.jira",
            "acme/jira.",
            "acme/a___b",
            "acme/a_-b",
            "../acme/jira",
            "acme/jira:1",
            "a/b/c/d/e/f/g/h/i",
        ] {
            let err = Repository::parse(bad).expect_err(bad);
            assert!(err.0.contains("accepted"), "{err}");
        }
        let long = format!("acme/{}", "a".repeat(MAX_NAME_LEN));
        assert!(Repository::parse(&long).is_err());
        let repo = Repository::parse("acme/jira").unwrap();
        assert_eq!(repo.publisher(), "acme");
        assert_eq!(repo.plugin(), Some(("acme", "jira")));
        assert_eq!(Repository::parse("acme/a/b").unwrap().plugin(), None);
    }

    #[test]
    fn tags_and_references() {
        for ok in ["latest", "1.2.0", "_x", "1.0.0-rc.1", &"a".repeat(128)] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a+b", "a/b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
        let d = Digest::of(b"x");
        assert_eq!(
            Reference::parse(&d.to_string()).unwrap(),
            Reference::Digest(d)
        );
        assert_eq!(Reference::parse("v1").unwrap(), Reference::Tag("v1".into()));
        assert!(Reference::parse("sha512:abcd").is_err());
        assert_eq!(version_tag("1.0.0+build.5"), "1.0.0_build.5");
        assert!(check_tag(&version_tag("1.0.0+build.5")).is_ok());
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
    }

    #[test]
    fn a_pushed_manifest_names_what_it_needs() {
        let config = Digest::of(b"config");
        let layer = Digest::of(b"layer");
        let subject = Digest::of(b"subject");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{IMAGE_MANIFEST}","config":{{"mediaType":"application/x.c","digest":"{config}","size":6}},
            "layers":[{{"mediaType":"application/x.l","digest":"{layer}","size":5}}],
            "subject":{{"mediaType":"{IMAGE_MANIFEST}","digest":"{subject}","size":1}},"annotations":{{"k":"v"}}}}"#
        );
        let m = check_manifest(body.as_bytes(), Some(IMAGE_MANIFEST)).unwrap();
        assert_eq!(m.blobs, vec![config, layer]);
        assert_eq!(m.subject, Some(subject));
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.c"));
        assert_eq!(m.annotations.as_deref(), Some(r#"{"k":"v"}"#));

        let err = check_manifest(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap_err();
        assert!(err.0.contains("differs"), "{err}");
        assert!(check_manifest(b"{}", Some(IMAGE_MANIFEST)).is_err());
        assert!(check_manifest(b"not json", None).is_err());
        let no_type =
            r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:00","size":1}}"#;
        assert!(check_manifest(no_type.as_bytes(), None).is_err());
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{IMAGE_INDEX}","manifests":[{{"mediaType":"{IMAGE_MANIFEST}","digest":"{subject}","size":1}}]}}"#
        );
        let m = check_manifest(index.as_bytes(), None).unwrap();
        assert_eq!(m.manifests, vec![subject]);
        assert!(m.blobs.is_empty());
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(
            check_manifest(&big, None)
                .unwrap_err()
                .0
                .contains("at most")
        );
    }

    #[test]
    fn a_release_manifest_is_stable_and_reads_back() {
        let yaml = Digest::of(b"plugin.yaml");
        let wasm = Digest::of(b"module");
        let facts = ReleaseFacts {
            plugin: "acme/jira",
            version: "1.0.0",
            published: "2026-12-04T00:00:00Z",
            manifest: (&yaml, 11),
            files: vec![ReleaseFile {
                path: "plugin.wasm",
                role: "module",
                digest: &wasm,
                size: 6,
            }],
        };
        let a = release_manifest(&facts);
        assert_eq!(a, release_manifest(&facts));
        let m = check_manifest(&a, Some(IMAGE_MANIFEST)).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(RELEASE_ARTIFACT));
        assert_eq!(m.blobs, vec![yaml, wasm]);
        let subject = Descriptor::new(IMAGE_MANIFEST, &Digest::of(&a), a.len() as u64);
        let sig = referrer_manifest(SIGNATURE_ARTIFACT, subject, (&wasm, 6), BTreeMap::new());
        let m = check_manifest(&sig, None).unwrap();
        assert_eq!(m.subject, Some(Digest::of(&a)));
        assert_eq!(m.artifact_type.as_deref(), Some(SIGNATURE_ARTIFACT));
        assert_eq!(m.blobs[0], Digest::of(EMPTY_JSON_BYTES));
    }
}
