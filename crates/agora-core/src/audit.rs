//! What the audit log records: one closed list of actions, each stored by its name.

use std::fmt;

macro_rules! audit_actions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal;)*) => {
        /// An audited change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),*];

            /// The name stored in the audit log (`version.publish`).
            pub fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $name,)* }
            }

            pub fn parse(name: &str) -> Option<AuditAction> {
                AuditAction::ALL.iter().copied().find(|a| a.as_str() == name)
            }
        }
    };
}

audit_actions! {
    UserPasswordSet = "user.password.set";
    UserPasswordClear = "user.password.clear";
    PublisherCreate = "publisher.create";
    PublisherVerify = "publisher.verify";
    PublisherUnverify = "publisher.unverify";
    PublisherContacts = "publisher.contacts";
    PublisherAddMember = "publisher.add_member";
    PublisherMemberRole = "publisher.member_role";
    PublisherRemoveMember = "publisher.remove_member";
    PublisherInvite = "publisher.invite";
    PublisherJoin = "publisher.join";
    PublisherUninvite = "publisher.uninvite";
    KeyAdd = "key.add";
    KeyRevoke = "key.revoke";
    VersionPublish = "version.publish";
    /// A lifecycle change (deprecate, mark insecure, yank, unyank, remove).
    VersionLifecycle = "version.lifecycle";
    /// An administrator's decision on a release's verification (approve or reject).
    VersionReview = "version.review";
    /// Security advisories imported (OSV records).
    AdvisoryImport = "advisory.import";
    /// A webhook created (target: its publisher, or `registry` for a registry-wide one).
    WebhookCreate = "webhook.create";
    /// A webhook removed, with its pending deliveries and history.
    WebhookRemove = "webhook.remove";
    /// A tenant created (target: the tenant).
    TenantCreate = "tenant.create";
    /// A tenant member added, changed or removed.
    TenantMember = "tenant.member";
    /// A tenant's policy or automatic-update setting changed.
    TenantPolicy = "tenant.policy";
    /// An instance registered to a tenant (its credential issued).
    InstanceRegister = "instance.register";
    /// An instance's credential revoked.
    InstanceRevoke = "instance.revoke";
    /// A tenant's approved set changed (approve, update, auto-update, rollback, remove;
    /// target: `tenant:publisher/name@version`).
    TenantPin = "tenant.pin";
    /// A private plugin offered to a tenant (target: `publisher/name:tenant`).
    EntitlementGrant = "entitlement.grant";
    /// A private plugin's offer to a tenant withdrawn (its pin there removed with it).
    EntitlementRevoke = "entitlement.revoke";
    /// An OCI tag pointed at a manifest pushed through `/v2/` (target: `repository:tag`).
    OciTag = "oci.tag";
    /// A manifest or tag deleted through `/v2/` (target: `repository@digest` or
    /// `repository:tag`).
    OciDelete = "oci.delete";
    /// A blob nothing referred to deleted by garbage collection (`agora gc`; target: its
    /// digest, detail: its size).
    BlobGc = "blob.gc";
    PluginVisibility = "plugin.visibility";
    ReviewWrite = "review.write";
    ReviewHide = "review.hide";
    ReviewShow = "review.show";
}

impl AuditAction {
    /// Changes to what a release may be installed as (the admin page lists them apart).
    pub fn is_lifecycle(self) -> bool {
        self == AuditAction::VersionLifecycle
    }

    /// Moderation of reviews.
    pub fn is_moderation(self) -> bool {
        matches!(self, AuditAction::ReviewHide | AuditAction::ReviewShow)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_by_name_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(a.as_str()));
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
        assert_eq!(AuditAction::parse("nope"), None);
    }
}
