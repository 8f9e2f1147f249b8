//! Accounts: users, their API tokens (stored only as hashes) and browser sessions.

use async_trait::async_trait;

use super::Result;

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

/// A browser session (the cookie's value is never stored, only its sha256).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: i64,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Users, tokens and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
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
}
