//! Webhook events: the closed list of event types a hook can subscribe to, and the wire
//! types of the hooks and their deliveries (`/api/v1/webhooks`). How a delivery is signed
//! and sent is `agora_registry::webhooks`'.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The event types, as a hook's `events` names them.
pub const EVENTS: [&str; 4] = [
    RELEASE_PUBLISHED,
    VERIFICATION_COMPLETED,
    RELEASE_LIFECYCLE,
    ADVISORY_MATCHED,
];
/// A release was published.
pub const RELEASE_PUBLISHED: &str = "release.published";
/// A release's verification run ended (outcome and counts by severity).
pub const VERIFICATION_COMPLETED: &str = "verification.completed";
/// A release was yanked, unyanked, deprecated, marked insecure or taken down.
pub const RELEASE_LIFECYCLE: &str = "release.lifecycle";
/// An advisory matched a component of a release.
pub const ADVISORY_MATCHED: &str = "advisory.matched";

/// The accepted event types, as an error message lists them.
pub fn events_list() -> String {
    EVENTS.join(", ")
}

/// Whether `name` is an event type.
pub fn is_event(name: &str) -> bool {
    EVENTS.contains(&name)
}

/// A hook to create: `POST /api/v1/webhooks` (registry-wide) or
/// `POST /api/v1/publishers/{publisher}/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreateRequest {
    /// Where deliveries are POSTed: an `http` or `https` URL without user information.
    pub url: String,
    /// The event types to receive: `release.published`, `verification.completed`,
    /// `release.lifecycle`, `advisory.matched`.
    pub events: Vec<String>,
    /// Whether deliveries are sent (default true).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A hook as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// The publisher whose events it receives; absent for a registry-wide hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A hook just created, with its signing secret: shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` and the base64 of 32 random bytes: the key of every delivery's signature
    /// (Standard Webhooks). Not shown again.
    pub secret: String,
}

/// One attempt to deliver an event to a hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttempt {
    /// The `webhook-id` header of the delivery (the same on each of its attempts).
    pub message_id: String,
    pub event: String,
    /// From 1.
    pub attempt: u32,
    /// RFC 3339.
    pub at: String,
    /// The receiver's HTTP status; absent when no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why the attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A ping queued: `POST /api/v1/webhooks/{id}/ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookPing {
    /// The `webhook-id` of the delivery queued.
    pub message_id: String,
}
