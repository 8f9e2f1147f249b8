//! A published version's lifecycle: active, deprecated, insecure, yanked, removed.

use serde::{Deserialize, Serialize};

/// The state of a published version. Bytes never change; only this state does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Normal: chosen by resolution.
    Active,
    /// Still resolvable, but users are told to move on (reason, optional replacement).
    Deprecated,
    /// Known vulnerable (advisory); still resolvable only by exact pin.
    Insecure,
    /// Not chosen by resolution; still downloadable by exact pin.
    Yanked,
    /// Taken down by an admin: bytes gone, tombstone kept. Terminal.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "unknown lifecycle state {0:?}: expected one of active, deprecated, insecure, yanked, removed"
    )]
    Unknown(String),
    #[error("version was removed by an administrator; a removed version cannot change state")]
    Removed,
    #[error("only an administrator may remove a version")]
    RemoveNeedsAdmin,
    #[error("state {0} needs a reason")]
    ReasonRequired(&'static str),
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Deprecated => "deprecated",
            Lifecycle::Insecure => "insecure",
            Lifecycle::Yanked => "yanked",
            Lifecycle::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, LifecycleError> {
        Ok(match s {
            "active" => Lifecycle::Active,
            "deprecated" => Lifecycle::Deprecated,
            "insecure" => Lifecycle::Insecure,
            "yanked" => Lifecycle::Yanked,
            "removed" => Lifecycle::Removed,
            other => return Err(LifecycleError::Unknown(other.chars().take(40).collect())),
        })
    }

    /// Whether dependency resolution may pick this version for a range requirement.
    pub fn resolvable(self) -> bool {
        matches!(self, Lifecycle::Active | Lifecycle::Deprecated)
    }

    /// Whether the bytes can still be downloaded.
    pub fn downloadable(self) -> bool {
        self != Lifecycle::Removed
    }

    /// Checks a requested change from `self` to `to`.
    pub fn check_transition(
        self,
        to: Lifecycle,
        by_admin: bool,
        reason: Option<&str>,
    ) -> Result<(), LifecycleError> {
        if self == Lifecycle::Removed {
            return Err(LifecycleError::Removed);
        }
        if to == Lifecycle::Removed && !by_admin {
            return Err(LifecycleError::RemoveNeedsAdmin);
        }
        let needs_reason = matches!(
            to,
            Lifecycle::Deprecated | Lifecycle::Insecure | Lifecycle::Removed
        );
        if needs_reason && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(LifecycleError::ReasonRequired(to.as_str()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_is_terminal_and_admin_only() {
        assert_eq!(
            Lifecycle::Removed.check_transition(Lifecycle::Active, true, None),
            Err(LifecycleError::Removed)
        );
        assert_eq!(
            Lifecycle::Active.check_transition(Lifecycle::Removed, false, Some("malware")),
            Err(LifecycleError::RemoveNeedsAdmin)
        );
        assert!(
            Lifecycle::Active
                .check_transition(Lifecycle::Removed, true, Some("malware"))
                .is_ok()
        );
    }

    #[test]
    fn deprecation_needs_a_reason_but_yank_does_not() {
        assert!(
            Lifecycle::Active
                .check_transition(Lifecycle::Deprecated, false, Some(" "))
                .is_err()
        );
        assert!(
            Lifecycle::Active
                .check_transition(Lifecycle::Yanked, false, None)
                .is_ok()
        );
        assert!(
            Lifecycle::Yanked
                .check_transition(Lifecycle::Active, false, None)
                .is_ok()
        );
    }

    #[test]
    fn only_active_and_deprecated_are_resolvable() {
        assert!(Lifecycle::Active.resolvable() && Lifecycle::Deprecated.resolvable());
        assert!(!Lifecycle::Yanked.resolvable() && !Lifecycle::Insecure.resolvable());
        assert!(Lifecycle::Yanked.downloadable() && !Lifecycle::Removed.downloadable());
    }
}
