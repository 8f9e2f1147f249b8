//! Ratings and reviews.

use async_trait::async_trait;

use super::Result;

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

/// Reviews and the ratings they make.
#[async_trait]
pub trait ReviewStore: Send + Sync {
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
}
