//! Publishers (namespaces): their members and invitations, and their signing keys.

use async_trait::async_trait;

use super::{LogWriter, Result, UserRecord};

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

/// Publishers, members, invitations and keys.
#[async_trait]
pub trait PublisherStore: Send + Sync {
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
}
