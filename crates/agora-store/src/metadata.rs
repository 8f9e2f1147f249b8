//! The metadata store's contract and its records.

use agora_core::{Digest, Lifecycle, Manifest, Visibility, manifest::ArtifactRole};
use async_trait::async_trait;

use crate::StoreError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Publisher,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "publisher" => Some(Role::Publisher),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: i64,
    pub name: String,
    /// sha256 of the secret, hex; the secret itself is never stored.
    pub hash: String,
    pub prefix: String,
    pub scopes: String,
    pub expires_at: Option<i64>,
    /// The token that minted this one; revoking it revokes this one too.
    pub parent_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub parent_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PublisherRecord {
    pub id: i64,
    pub name: String,
    pub display_name: Option<String>,
    pub created_at: i64,
    /// When an administrator verified the publisher's identity; `None` when unverified.
    pub verified_at: Option<i64>,
    /// Public contact address.
    pub email: Option<String>,
    /// Public web site.
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub username: String,
    pub role: String,
}

/// An owner's invitation to join a publisher, waiting for the invited user to accept.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationRecord {
    pub publisher: String,
    pub username: String,
    pub role: String,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A change of one member: a new role, or removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange<'a> {
    Role(&'a str),
    Remove,
}

/// What the store knows when it appends a transparency log entry, for the writer to
/// build the entry from (under the log's lock, so no other append interleaves).
#[derive(Debug, Clone, PartialEq)]
pub struct LogContext {
    /// The index the entry gets.
    pub index: i64,
    /// The publisher's newest key event, as (index, leaf hash in hex), if it has any.
    pub key_head: Option<(i64, String)>,
    /// The entry concerns a private plugin: it must not name it in clear.
    pub private: bool,
}

/// A log entry as stored: the body the Merkle tree commits to (its leaf is the sha256 of
/// these bytes), and for a sealed entry the opening only permitted readers get.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub body: String,
    pub opening: Option<String>,
    /// sha256 of `body`, hex.
    pub leaf: String,
}

/// Builds the entry a change appends to the log, from what the store knows at that moment.
#[derive(Clone)]
pub struct LogWriter(pub std::sync::Arc<dyn Fn(&LogContext) -> LogRecord + Send + Sync>);

impl LogWriter {
    pub fn new(f: impl Fn(&LogContext) -> LogRecord + Send + Sync + 'static) -> LogWriter {
        LogWriter(std::sync::Arc::new(f))
    }

    pub fn write(&self, context: &LogContext) -> LogRecord {
        (self.0)(context)
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogWriter")
    }
}

/// One stored transparency log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub index: i64,
    pub body: String,
    /// A sealed entry's opening; give it only to readers who may see `plugin_id`.
    pub opening: Option<String>,
    /// The plugin a release, lifecycle or visibility entry is about.
    pub plugin_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PluginRecord {
    pub id: i64,
    pub publisher_id: i64,
    pub publisher: String,
    pub name: String,
    pub visibility: Visibility,
    pub display_name: String,
    pub description: String,
    pub provider: Option<String>,
    pub runtime: String,
    pub latest_version: Option<String>,
    pub downloads: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub tags: Vec<String>,
    pub categories: Vec<String>,
    pub capabilities: Vec<String>,
    /// Its publisher is verified.
    pub verified: bool,
    /// Visible reviews and the sum of their ratings.
    pub rating_count: i64,
    pub rating_sum: i64,
    /// What "top rated" orders by: the Bayesian average x 1000.
    pub rating_rank: i64,
}

impl PluginRecord {
    /// The average rating of its visible reviews, when it has any.
    pub fn rating(&self) -> Option<f64> {
        (self.rating_count > 0).then(|| self.rating_sum as f64 / self.rating_count as f64)
    }
}

/// Ratings with fewer reviews are pulled towards this many ratings of [`PRIOR_RATING`],
/// so one 5-star review does not outrank fifty 4-star ones.
pub const PRIOR_WEIGHT: i64 = 5;
pub const PRIOR_RATING: i64 = 3;

/// The Bayesian average rating x 1000 that "top rated" orders by.
pub fn rating_rank(count: i64, sum: i64) -> i64 {
    (sum + PRIOR_WEIGHT * PRIOR_RATING) * 1000 / (count + PRIOR_WEIGHT)
}

/// A version as a key that sorts like the version (release part only): what
/// `compatibility.min_core` is stored as, so "compatible with host X" is a comparison.
pub fn version_key(v: &semver::Version) -> String {
    format!("{:010}.{:010}.{:010}", v.major, v.minor, v.patch)
}

/// A browser session (the cookie's value is never stored, only its sha256).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: i64,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One user's rating and review of one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRecord {
    pub id: i64,
    pub plugin_id: i64,
    pub username: String,
    /// The version the reviewer used.
    pub version: String,
    /// 1 to 5.
    pub rating: i64,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub hidden_at: Option<i64>,
    pub hidden_by: Option<String>,
    pub hidden_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewReview {
    pub plugin_id: i64,
    pub user_id: i64,
    pub version: String,
    pub rating: i64,
    pub body: String,
    pub actor: String,
}

/// Counts of the hits of a search by facet value, for the filters beside the results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    pub total: i64,
    pub providers: Vec<(String, i64)>,
    pub categories: Vec<(String, i64)>,
    pub tags: Vec<(String, i64)>,
    pub capabilities: Vec<(String, i64)>,
    pub runtimes: Vec<(String, i64)>,
    /// (minimum average rating 1..=4, hits rated at least that).
    pub ratings: Vec<(i64, i64)>,
    pub verified: i64,
    /// A text search matched more than [`MAX_TEXT_MATCHES`]: the counts are of the most
    /// recently added that many.
    pub capped: bool,
}

#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub id: i64,
    pub plugin_id: i64,
    pub version: String,
    /// The validated manifest as JSON.
    pub manifest: String,
    pub manifest_digest: Digest,
    pub signature: Option<String>,
    pub state: Lifecycle,
    pub state_reason: Option<String>,
    pub replacement: Option<String>,
    pub downloads: i64,
    pub published_at: i64,
    pub published_by: String,
    /// Id of the key whose signature the server verified at publish time.
    pub signer_key: Option<String>,
    /// Index of the release's entry in the transparency log.
    pub log_index: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub path: String,
    pub role: ArtifactRole,
    pub digest: Digest,
    pub size: i64,
}

/// Everything needed to create a version, already validated by the caller.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub publisher_id: i64,
    pub manifest: Manifest,
    pub manifest_digest: Digest,
    pub signature: Option<String>,
    pub signer_key: Option<String>,
    /// The transparency log entry recording this release, appended in the same transaction.
    pub log_entry: Option<LogWriter>,
    /// Every file of the release including the manifest itself.
    pub artifacts: Vec<ArtifactRecord>,
    pub published_by: i64,
    pub actor: String,
}

/// A publisher's signing key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The key's id (for Ed25519: its OpenSSH SHA256 fingerprint).
    pub id: String,
    pub algorithm: String,
    /// The public key as registered (an OpenSSH public key line).
    pub public_key: String,
    pub comment: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revocation_reason: Option<String>,
    /// Index of the key's registration in the transparency log.
    pub log_index: Option<i64>,
    /// Index of its revocation in the transparency log.
    pub revoked_log_index: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct LifecycleChange {
    pub version_id: i64,
    pub state: Lifecycle,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    pub actor: String,
    /// The transparency log entry recording the change, appended in the same transaction.
    pub log_entry: Option<LogWriter>,
}

/// Who is looking: decides which private plugins exist for them.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// Sees everything.
    pub admin: bool,
    /// Publishers whose private plugins this viewer may see.
    pub private_publishers: Vec<i64>,
}

impl Viewer {
    pub fn anonymous() -> Viewer {
        Viewer::default()
    }

    pub fn can_see(&self, plugin: &PluginRecord) -> bool {
        self.admin
            || plugin.visibility == Visibility::Public
            || self.private_publishers.contains(&plugin.publisher_id)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SearchSort {
    #[default]
    Relevance,
    Downloads,
    Recent,
    Name,
    Rating,
}

/// Most words of a text query that are used; the rest are ignored.
pub const MAX_QUERY_WORDS: usize = 8;
/// Words at least this long also match as prefixes (`atlass` finds `atlassian`); shorter
/// ones match whole words only. A one- or two-letter prefix matches a large part of any
/// catalog and makes the engine merge thousands of terms for one query.
pub const MIN_PREFIX_CHARS: usize = 3;

/// Most matches a text search considers: the most recently added ones, when more match.
/// Ranking and facet counts cost in proportion to the matches, so this is what bounds
/// the cost of any one query however broad its words (a word in every description
/// matches the whole catalog). Narrower searches are exact.
pub const MAX_TEXT_MATCHES: i64 = 10_000;

/// Whether a query word (from [`query_words`]) matches as a prefix.
pub fn matches_as_prefix(word: &str) -> bool {
    word.chars().count() >= MIN_PREFIX_CHARS
}

/// Splits user text into plain words (letters and digits only), so no query syntax of
/// either engine can be injected, and lowercases them.
pub fn query_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_QUERY_WORDS)
        .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
        .collect()
}

impl SearchSort {
    /// The order a search with this text really comes in: relevance needs words to rank
    /// by, so without any it is downloads. Cursors must be issued and read in this order.
    pub fn for_text(self, text: Option<&str>) -> SearchSort {
        match self {
            SearchSort::Relevance if text.is_none_or(|t| query_words(t).is_empty()) => {
                SearchSort::Downloads
            }
            other => other,
        }
    }

    pub fn parse(s: &str) -> Option<SearchSort> {
        Some(match s {
            "relevance" => SearchSort::Relevance,
            "downloads" => SearchSort::Downloads,
            "recent" => SearchSort::Recent,
            "name" => SearchSort::Name,
            "rating" => SearchSort::Rating,
            _ => return None,
        })
    }
}

/// Where the previous page ended: the sort key and id of its last row.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchCursor {
    Relevance { score: f64, id: i64 },
    Downloads { downloads: i64, id: i64 },
    Recent { updated_at: i64, id: i64 },
    Name { name: String, id: i64 },
    Rating { rank: i64, id: i64 },
}

#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub tag: Option<String>,
    pub category: Option<String>,
    pub provider: Option<String>,
    pub capability: Option<String>,
    pub runtime: Option<String>,
    pub publisher: Option<String>,
    /// Only plugins of verified publishers.
    pub verified: bool,
    /// Only plugins whose average rating is at least this (1 to 5).
    pub min_rating: Option<i64>,
    /// Only plugins whose latest version runs on this host version (`min_core`).
    pub compatible_with: Option<semver::Version>,
    pub sort: SearchSort,
    pub after: Option<SearchCursor>,
    pub limit: u32,
    pub viewer: Viewer,
    /// Most matches a text search considers ([`MAX_TEXT_MATCHES`] unless lowered).
    pub max_matches: i64,
}

impl Default for SearchQuery {
    /// Everything the anonymous viewer may see, most relevant first, 20 per page.
    fn default() -> Self {
        SearchQuery {
            text: None,
            tag: None,
            category: None,
            provider: None,
            capability: None,
            runtime: None,
            publisher: None,
            verified: false,
            min_rating: None,
            compatible_with: None,
            sort: SearchSort::Relevance,
            after: None,
            limit: 20,
            viewer: Viewer::anonymous(),
            max_matches: MAX_TEXT_MATCHES,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    pub plugins: Vec<PluginRecord>,
    pub next: Option<SearchCursor>,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

/// The metadata store. Every method that changes more than one row is one transaction.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;

    async fn create_user(&self, username: &str, role: Role) -> Result<UserRecord>;
    /// A user and their password hash (PHC string), if they have one.
    async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>>;
    /// Sets (or with `None` clears) a password and ends the user's browser sessions.
    async fn set_password(&self, user_id: i64, hash: Option<&str>, actor: &str) -> Result<()>;

    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()>;
    /// A live (unexpired) session and its user.
    async fn session(&self, id_hash: &str) -> Result<Option<(SessionRecord, UserRecord)>>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;

    async fn create_token(&self, token: NewToken) -> Result<TokenRecord>;
    /// The live token with this hash and its user; expired and revoked tokens are returned
    /// too, so the caller can say why they are refused.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenRecord, UserRecord)>>;
    async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenRecord>>;
    /// Revokes a token and every token it minted, recursively; with `owner`, only if it
    /// belongs to that user. False when no such live token.
    async fn revoke_token(&self, id: i64, owner: Option<i64>, at: i64) -> Result<bool>;
    async fn touch_token(&self, id: i64, at: i64) -> Result<()>;

    async fn create_publisher(
        &self,
        name: &str,
        display_name: Option<&str>,
        owner: &UserRecord,
    ) -> Result<PublisherRecord>;
    async fn publisher_by_name(&self, name: &str) -> Result<Option<PublisherRecord>>;
    async fn list_publishers(&self) -> Result<Vec<PublisherRecord>>;
    /// Marks a publisher verified (or not) and its plugins with it.
    async fn set_publisher_verified(
        &self,
        publisher_id: i64,
        verified: bool,
        actor: &str,
    ) -> Result<()>;
    async fn set_publisher_contacts(
        &self,
        publisher_id: i64,
        email: Option<&str>,
        url: Option<&str>,
        actor: &str,
    ) -> Result<()>;
    async fn members(&self, publisher_id: i64) -> Result<Vec<MemberRecord>>;
    async fn add_member(
        &self,
        publisher_id: i64,
        user: &UserRecord,
        role: &str,
        actor: &str,
    ) -> Result<()>;
    /// Changes a member's role or removes them. False when the user is not a member;
    /// `Conflict` when the change would leave the publisher without an owner.
    async fn change_member(
        &self,
        publisher_id: i64,
        username: &str,
        change: MemberChange<'_>,
        actor: &str,
    ) -> Result<bool>;
    /// Names and ids of the publishers a user belongs to.
    async fn memberships(&self, user_id: i64) -> Result<Vec<(i64, String)>>;

    /// Invites `username` (whether or not such a user exists, so owners learn nothing
    /// about accounts) to join the publisher, replacing an earlier invitation of that
    /// name. `Conflict` when `max_pending` unexpired invitations wait already.
    async fn invite_member(
        &self,
        invitation: &InvitationRecord,
        publisher_id: i64,
        max_pending: usize,
    ) -> Result<()>;
    /// Unexpired invitations: of one publisher, or addressed to one user name.
    async fn invitations(
        &self,
        publisher_id: Option<i64>,
        username: Option<&str>,
    ) -> Result<Vec<InvitationRecord>>;
    /// The invited user joins with the invitation's role; the invitation is used up.
    /// Returns the role, or `None` when no unexpired invitation exists.
    async fn accept_invitation(
        &self,
        publisher_id: i64,
        user: &UserRecord,
    ) -> Result<Option<String>>;
    /// Withdraws (or declines) an invitation; false when there was none.
    async fn cancel_invitation(
        &self,
        publisher_id: i64,
        username: &str,
        actor: &str,
    ) -> Result<bool>;

    /// Registers a key; `Conflict` if the publisher has it already.
    /// With `log_entry`, the registration is appended to the transparency log in the same
    /// transaction (and becomes the head of the publisher's key history); returns its
    /// log index.
    async fn add_key(
        &self,
        publisher_id: i64,
        key: &KeyRecord,
        log_entry: Option<LogWriter>,
    ) -> Result<Option<i64>>;
    /// Every key of a publisher, revoked ones included, oldest first.
    async fn keys(&self, publisher_id: i64) -> Result<Vec<KeyRecord>>;
    /// Revokes a key; false when the publisher has no such active key.
    async fn revoke_key(
        &self,
        publisher_id: i64,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        at: i64,
        log_entry: Option<LogWriter>,
    ) -> Result<bool>;

    /// Transparency log entries from index `from`, in order, at most `limit`.
    async fn log_entries(&self, from: i64, limit: u32) -> Result<Vec<LogRow>>;
    /// The log's key: the stored one, or this candidate if none is stored yet (first
    /// writer wins). Returns (origin, signer key, verifier key).
    async fn ensure_log_key(
        &self,
        origin: &str,
        signer_key: &str,
        verifier_key: &str,
    ) -> Result<(String, String, String)>;

    async fn plugin(&self, publisher: &str, name: &str) -> Result<Option<PluginRecord>>;
    /// The plugin if it exists and `viewer` may see it. A plugin the viewer may not see
    /// costs the same work as a missing one, so timing does not tell them apart.
    async fn visible_plugin(
        &self,
        publisher: &str,
        name: &str,
        viewer: &Viewer,
    ) -> Result<Option<PluginRecord>>;
    /// Whether the plugin with this id exists and `viewer` may see it.
    async fn plugin_visible_to(&self, plugin_id: i64, viewer: &Viewer) -> Result<bool>;
    /// Changes a plugin's visibility; with `log_entry`, the change is logged.
    async fn set_visibility(
        &self,
        plugin_id: i64,
        visibility: Visibility,
        actor: &str,
        log_entry: Option<LogWriter>,
    ) -> Result<()>;
    /// Every version of a plugin, newest first by semver precedence.
    async fn versions(&self, plugin_id: i64) -> Result<Vec<VersionRecord>>;
    async fn version(&self, plugin_id: i64, version: &str) -> Result<Option<VersionRecord>>;
    async fn artifacts(&self, version_id: i64) -> Result<Vec<ArtifactRecord>>;

    /// Creates a version (and its plugin on first publish). `Conflict` if it exists.
    async fn publish(&self, release: NewRelease) -> Result<VersionRecord>;
    /// Changes a version's state. For a removal, returns the digests no longer referenced
    /// by any downloadable version, whose bytes the caller should delete.
    async fn set_lifecycle(&self, change: LifecycleChange) -> Result<(VersionRecord, Vec<Digest>)>;

    async fn search(&self, query: &SearchQuery) -> Result<SearchResult>;
    /// Hit counts of the search by facet value (the query's cursor, sort and limit are ignored).
    async fn facets(&self, query: &SearchQuery) -> Result<Facets>;

    /// Creates or replaces the user's review of the plugin and updates its rating.
    async fn upsert_review(&self, review: NewReview) -> Result<ReviewRecord>;
    /// A plugin's reviews, newest first; hidden ones only with `include_hidden`.
    async fn reviews(
        &self,
        plugin_id: i64,
        include_hidden: bool,
        limit: u32,
    ) -> Result<Vec<ReviewRecord>>;
    async fn review_of(&self, plugin_id: i64, user_id: i64) -> Result<Option<ReviewRecord>>;
    async fn review(&self, id: i64) -> Result<Option<ReviewRecord>>;
    /// Hides a review with a reason (or shows it again with `None`) and updates the rating.
    async fn hide_review(&self, id: i64, reason: Option<&str>, actor: &str) -> Result<bool>;

    /// Records a blob written to the blob store and that `uploaded_by` sent its bytes
    /// (idempotent; a blob can have many uploaders).
    async fn record_blob(&self, digest: &Digest, size: u64, uploaded_by: i64) -> Result<()>;
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// The blob's size if `user_id` sent its bytes (proved possession); `None` otherwise.
    async fn blob_uploaded_by(&self, digest: &Digest, user_id: i64) -> Result<Option<u64>>;
    /// Whether some downloadable version the viewer can see refers to this blob.
    async fn blob_readable(&self, digest: &Digest, viewer: &Viewer) -> Result<bool>;
    /// Counts a download of a release's main artifact (module or binary).
    async fn count_download(&self, digest: &Digest) -> Result<()>;

    /// A number that changes whenever the catalog does (every release, lifecycle,
    /// visibility, review and publisher change is audited): the newest audit event's id.
    /// Caches of derived data (facet counts) compare it to know they are stale.
    async fn catalog_stamp(&self) -> Result<i64>;

    async fn audit_events(
        &self,
        target_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>>;
}
