//! Webhooks: the hooks (per publisher or registry-wide), the deliveries each event makes
//! and every attempt to send one. A delivery is queued together with its `webhook` job
//! (see [`super::jobs`]); the history of attempts is bounded per hook.

use async_trait::async_trait;

use super::Result;

/// The job kind a webhook delivery is sent by; its subject is the delivery's id.
pub const WEBHOOK_JOB_KIND: &str = "webhook";

/// A hook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: i64,
    /// The publisher whose events it receives; `None`: every publisher's (registry-wide).
    pub publisher: Option<String>,
    pub url: String,
    /// The event types it subscribes to.
    pub events: Vec<String>,
    /// The signing secret (`whsec_...`).
    pub secret: String,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
}

/// A hook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// `None`: registry-wide.
    pub publisher_id: Option<i64>,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub enabled: bool,
    pub created_by: String,
}

/// One event to send to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub webhook_id: i64,
    /// The `webhook-id` header: the same on every attempt, so receivers can deduplicate.
    pub message_id: String,
    pub event: String,
    /// The JSON body sent.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub created_at: i64,
}

/// One attempt to send a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub message_id: String,
    pub event: String,
    /// From 1.
    pub attempt: u32,
    /// When it was made (Unix ms).
    pub at: i64,
    /// The receiver's HTTP status; `None` when no answer came.
    pub status_code: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What an attempt did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a hook.
    async fn create_webhook(&self, hook: &NewWebhook) -> Result<WebhookRecord>;

    /// The hooks of one publisher, or (`None`) the registry-wide ones, oldest first.
    async fn webhooks(&self, publisher_id: Option<i64>) -> Result<Vec<WebhookRecord>>;

    /// A hook and the id of its publisher (`None`: registry-wide).
    async fn webhook(&self, id: i64) -> Result<Option<(WebhookRecord, Option<i64>)>>;

    /// Deletes a hook with its deliveries and their history, audited as `actor`'s
    /// `webhook.remove`; false when there was none.
    async fn delete_webhook(&self, id: i64, actor: &str) -> Result<bool>;

    /// The enabled hooks that receive `event` about a release of `publisher_id`: the
    /// publisher's own and the registry-wide ones.
    async fn webhooks_for_event(
        &self,
        publisher_id: i64,
        event: &str,
    ) -> Result<Vec<WebhookRecord>>;

    /// Records a delivery and queues its job (kind [`WEBHOOK_JOB_KIND`], subject the
    /// delivery's id) in one transaction; returns the delivery's id.
    async fn enqueue_delivery(
        &self,
        webhook_id: i64,
        message_id: &str,
        event: &str,
        payload: &str,
        max_attempts: u32,
    ) -> Result<i64>;

    /// A delivery as recorded.
    async fn delivery(&self, id: i64) -> Result<Option<DeliveryRecord>>;

    /// Records an attempt and what it made of its delivery, then keeps only the newest
    /// `keep` attempts and finished deliveries of its hook.
    async fn record_attempt(
        &self,
        delivery: &DeliveryRecord,
        attempt: &AttemptRecord,
        state: DeliveryState,
        keep: u32,
    ) -> Result<()>;

    /// A hook's attempts, newest first, at most `limit`.
    async fn webhook_attempts(&self, webhook_id: i64, limit: u32) -> Result<Vec<AttemptRecord>>;
}
