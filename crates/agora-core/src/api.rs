//! Wire types of the HTTP API under `/api/v1`, shared by the server (which documents them
//! in its OpenAPI document) and the client.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::digest::Digest;
use crate::field::FieldError;
use crate::lifecycle::Lifecycle;
use crate::manifest::{ArtifactRole, Manifest, Visibility};

/// An RFC 9457 problem details document, as every API error is returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `urn:agora:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level problems of the request, when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One file of a release, already uploaded as a blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactRef {
    /// Path inside the plugin directory, e.g. `plugin.wasm`.
    pub path: String,
    #[schema(value_type = String, example = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    pub digest: Digest,
    pub size: u64,
}

/// `POST /api/v1/plugins/{publisher}/{name}/versions`: a new release.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The manifest exactly as written in `plugin.yaml`; its sha256 is the manifest digest.
    pub manifest: String,
    /// Every other file of the release (module or binaries, README, ...), uploaded first.
    pub artifacts: Vec<ArtifactRef>,
    /// The signed release statement (a DSSE envelope). Optional until signing is enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<serde_json::Value>,
}

/// A stored artifact of a published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    pub path: String,
    pub role: ArtifactRole,
    #[schema(value_type = String)]
    pub digest: Digest,
    pub size: u64,
}

/// One published version with everything needed to install it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionDetail {
    pub publisher: String,
    pub name: String,
    pub version: String,
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[schema(value_type = String)]
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub artifacts: Vec<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<serde_json::Value>,
    pub downloads: u64,
    /// RFC 3339 time of publication.
    pub published_at: String,
    pub published_by: String,
    /// Id of the publisher key whose signature the registry verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_key: Option<String>,
    /// Index of the release in the registry's transparency log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// One line of a version history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionSummary {
    pub version: String,
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[schema(value_type = String)]
    pub manifest_digest: Digest,
    pub downloads: u64,
    pub published_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionList {
    pub publisher: String,
    pub name: String,
    /// Newest first, by semantic version precedence.
    pub versions: Vec<VersionSummary>,
}

/// A plugin as shown in listings and search results.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginSummary {
    pub publisher: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub runtime: String,
    pub visibility: Visibility,
    /// Newest version that dependency resolution may choose, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    pub tags: Vec<String>,
    pub categories: Vec<String>,
    pub capabilities: Vec<String>,
    pub downloads: u64,
    pub updated_at: String,
    /// Average rating of its visible reviews (1 to 5), when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// Number of visible reviews.
    #[serde(default)]
    pub rating_count: u64,
    /// Its publisher's identity was verified by the registry's administrators.
    #[serde(default)]
    pub verified_publisher: bool,
    /// Its latest version came out `verified` in its newest verification run.
    #[serde(default)]
    pub verified_release: bool,
}

/// A user's rating and review of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Review {
    pub id: i64,
    pub author: String,
    /// The version the author reviewed.
    pub version: String,
    /// 1 to 5 stars.
    pub rating: u8,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
    /// Present when an administrator hid the review (shown to administrators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<HiddenReview>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HiddenReview {
    pub at: String,
    pub by: String,
    pub reason: String,
}

/// `PUT /api/v1/plugins/{publisher}/{name}/reviews/mine`: one review per user per plugin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// 1 to 5 stars.
    pub rating: u8,
    /// The review text (plain text, at most 4,000 characters; may be empty).
    #[serde(default)]
    pub body: String,
    /// The version reviewed; default: the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Most characters of a review's text.
pub const MAX_REVIEW_CHARS: usize = 4000;

impl ReviewInput {
    /// Checks the rating and text; the version is checked against the plugin by the server.
    pub fn check(&self) -> Result<(), crate::manifest::FieldError> {
        if !(1..=5).contains(&self.rating) {
            return Err(FieldError::new(
                "rating",
                format!("{} is not a rating", self.rating),
                Some("a whole number of stars from 1 to 5"),
            ));
        }
        let chars = self.body.chars().count();
        if chars > MAX_REVIEW_CHARS {
            return Err(FieldError::new(
                "body",
                format!("is {chars} characters long"),
                Some("at most 4000 characters"),
            ));
        }
        crate::text::check("body", &self.body, crate::text::Lines::Multi)?;
        crate::text::check_opt(
            "version",
            self.version.as_deref(),
            crate::text::Lines::Single,
        )
    }
}

/// `PUT /api/v1/users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password for signing in to the web pages, 12 to 256 characters.
    pub password: String,
}

/// `POST /api/v1/reviews/{id}/hide`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HideReview {
    /// Why the review is hidden (shown to administrators and kept in the audit log).
    pub reason: String,
}

/// `GET /api/v1/plugins/{publisher}/{name}/reviews`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewList {
    pub rating: Option<f64>,
    pub rating_count: u64,
    pub items: Vec<Review>,
}

/// `GET /api/v1/plugins/{publisher}/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginDetail {
    #[serde(flatten)]
    pub summary: PluginSummary,
    pub created_at: String,
    /// The manifest of the latest version, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<VersionDetail>,
    pub versions: Vec<VersionSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<PluginSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/plugins`: what to search for. The one shape of a search, used by the API,
/// the web form, the client and the CLI; it is checked in one place
/// (`agora_registry::catalog::search_query`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words to look for in names, titles, descriptions, tags and categories (words of
    /// three letters or more also match as prefixes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// `wasm`, `exec` or `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Only this publisher's plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// `true`: only plugins of verified publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// `true`: only plugins whose latest version came out `verified` in its newest
    /// verification run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_release: Option<bool>,
    /// Only plugins whose average rating is at least this (1 to 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rating: Option<u8>,
    /// Only plugins whose latest version runs on this host version (its `min_core`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatible_with: Option<String>,
    /// `relevance` (default with `q`), `downloads` (default without), `recent`, `name` or
    /// `rating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to the server's maximum (100 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `PATCH .../versions/{version}`: change a version's lifecycle state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRequest {
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For deprecation: the plugin users should move to, as `publisher/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// `PATCH /api/v1/plugins/{publisher}/{name}`: plugin-level settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    pub visibility: Visibility,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublishResponse {
    pub publisher: String,
    pub name: String,
    pub version: String,
    #[schema(value_type = String)]
    pub manifest_digest: Digest,
    pub artifacts: Vec<Artifact>,
    /// The release's entry in the transparency log, proven included.
    pub log: InclusionProofResponse,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlobInfo {
    #[schema(value_type = String)]
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePublisher {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Publisher {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub members: Vec<Member>,
    pub created_at: String,
    /// Its identity was verified by the registry's administrators.
    #[serde(default)]
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `PATCH /api/v1/publishers/{publisher}`: contacts (owners) and verification (admins).
/// Fields left out are not changed; an empty string clears a contact.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublisherSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub username: String,
    /// `owner` or `member`.
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The answer to `POST /api/v1/publishers/{publisher}/members`: an administrator adds a
/// member at once; an owner invites, and the answer is the same whether or not an account
/// of that name exists.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberChangeResult {
    /// `added`, `role-changed` or `invited`.
    pub outcome: String,
    pub members: Vec<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,
}

/// An invitation to join a publisher.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Invitation {
    pub publisher: String,
    pub username: String,
    pub role: String,
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    /// `admin`, `publisher` or `user` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
    pub role: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label for the token, e.g. `ci`.
    pub name: String,
    /// Space-separated scopes: `admin`, `read:private`, `review`, `publish:*`,
    /// `publish:PUBLISHER`, `members:*`, `members:PUBLISHER`.
    pub scopes: String,
    /// Lifetime in seconds; absent for a token that never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
    /// Create the token for this user instead of the caller (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_user: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub username: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// The token that minted this one (revoking it revokes this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
}

/// The answer to token creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub username: String,
    /// The name of the token used for this request.
    pub token_name: String,
    pub role: String,
    pub scopes: String,
    pub publishers: Vec<String>,
}

/// A publisher's signing key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublisherKey {
    /// The key's id: for Ed25519 keys, the OpenSSH SHA256 fingerprint (`ssh-keygen -lf`).
    pub id: String,
    pub algorithm: String,
    /// The public key (an OpenSSH public key line for Ed25519).
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub created_at: String,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
    /// Index of the key's registration in the transparency log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// Index of its revocation in the transparency log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_log_index: Option<u64>,
}

/// `POST /api/v1/publishers/{publisher}/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// An OpenSSH Ed25519 public key line, as in `agora_ed25519.pub`.
    pub public_key: String,
}

/// `POST /api/v1/publishers/{publisher}/keys/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/log/key`: the key clients pin to check checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogKeyInfo {
    pub origin: String,
    /// The verifier key in signed-note form: `<origin>+<hash>+<base64 key>`.
    pub verifier_key: String,
}

/// An inclusion proof with the checkpoint it leads to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofResponse {
    /// The signed checkpoint (C2SP signed note) the proof is relative to.
    pub checkpoint: String,
    pub index: u64,
    pub size: u64,
    /// The entry itself, whose sha256 is the Merkle leaf.
    pub entry: String,
    /// For a sealed entry (about a private plugin) that the caller may see: the opening
    /// that turns it back into the entry in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening: Option<String>,
    /// Audit path, hex sha256 hashes.
    pub hashes: Vec<String>,
}

/// A consistency proof from an earlier size to the checkpoint's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofResponse {
    pub checkpoint: String,
    pub from: u64,
    pub size: u64,
    pub hashes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogEntryBody {
    pub index: u64,
    pub body: String,
    /// For a sealed entry the caller may see: its opening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening: Option<String>,
}

/// `POST /api/v1/advisories`: OSV records to import (administrators).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryImportRequest {
    /// OSV records (<https://ossf.github.io/osv-schema/>), at most 500 per request.
    #[schema(value_type = Vec<Object>)]
    pub advisories: Vec<serde_json::Value>,
}

/// A release an advisory now matches, marked insecure by the import or a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdvisoryMatch {
    /// `publisher/name@version`.
    pub release: String,
    pub advisory: String,
    /// The affected component as its package URL.
    pub component: String,
    /// The version that fixes it, when the advisory names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
}

/// What an advisory import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdvisoryImportResponse {
    /// Ids stored for the first time or replaced by a newer `modified`.
    pub changed: Vec<String>,
    /// Ids already stored with the same or a newer `modified`.
    pub unchanged: Vec<String>,
    /// Releases the changed advisories affect, now marked insecure.
    pub flagged: Vec<AdvisoryMatch>,
}
