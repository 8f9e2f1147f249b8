//! A release's verification: the stages a run went through, what each found, and the
//! outcome a policy draws from them. Pure: running the stages is the registry's job.

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Severity, String> {
        [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| {
            format!("{s:?} is not a severity (expected info, low, medium, high or critical)")
        })
    }
}

/// One thing a stage found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub severity: Severity,
    /// A stable rule id, e.g. `integrity.digest-mismatch`.
    pub rule: String,
    pub message: String,
    /// Where: a file of the release, a manifest field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Ran; nothing it found stops the release.
    Passed,
    /// Ran and found what stops the release.
    Failed,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageReport {
    /// `manifest`, `integrity`, `signature`, ...
    pub stage: String,
    pub status: StageStatus,
    pub duration_ms: u64,
    pub findings: Vec<Finding>,
}

impl StageReport {
    /// A stage that found `findings`: failed when any is high or critical.
    pub fn of(stage: &str, duration_ms: u64, findings: Vec<Finding>) -> StageReport {
        let failed = findings.iter().any(|f| f.severity >= Severity::High);
        StageReport {
            stage: stage.to_owned(),
            status: if failed {
                StageStatus::Failed
            } else {
                StageStatus::Passed
            },
            duration_ms,
            findings,
        }
    }
}

impl Finding {
    /// `severity rule message (location)`, one line.
    pub fn line(&self) -> String {
        let mut text = format!(
            "{:<8} {} {}",
            self.severity.as_str(),
            self.rule,
            self.message
        );
        if let Some(at) = &self.location {
            text.push_str(&format!(" ({at})"));
        }
        text
    }
}

/// What a run concludes about a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Verified,
    NeedsReview,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::NeedsReview => "needs-review",
            Outcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Verified, Outcome::NeedsReview, Outcome::Rejected]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Stages whose failure rejects a release whatever its findings' severities: what was
/// published is not what is stored, or not what its publisher signed.
pub const MUST_PASS: [&str; 2] = ["integrity", "signature"];

/// How a run's findings decide its outcome (conditional approval). Whatever the policy,
/// a failed must-pass stage ([`MUST_PASS`]) rejects the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The most severe finding a release may have and still be verified without review.
    verify_up_to: Severity,
    /// The least severe finding that rejects a release outright (none: findings alone
    /// never reject; a review decides).
    reject_from: Option<Severity>,
}

/// Why a verification policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "reject_from ({reject}) must be more severe than verify_up_to ({verify}): a finding cannot both pass and reject a release"
    )]
    Overlap { verify: Severity, reject: Severity },
    #[error("verify_up_to cannot be critical: a critical finding always needs at least a review")]
    CriticalVerified,
}

impl Default for Policy {
    /// Verified with nothing above low, reviewed on medium or high, rejected on critical.
    fn default() -> Self {
        Policy {
            verify_up_to: Severity::Low,
            reject_from: Some(Severity::Critical),
        }
    }
}

impl Policy {
    pub fn new(
        verify_up_to: Severity,
        reject_from: Option<Severity>,
    ) -> Result<Policy, PolicyError> {
        if verify_up_to == Severity::Critical {
            return Err(PolicyError::CriticalVerified);
        }
        if let Some(reject) = reject_from
            && reject <= verify_up_to
        {
            return Err(PolicyError::Overlap {
                verify: verify_up_to,
                reject,
            });
        }
        Ok(Policy {
            verify_up_to,
            reject_from,
        })
    }

    pub fn verify_up_to(&self) -> Severity {
        self.verify_up_to
    }

    pub fn reject_from(&self) -> Option<Severity> {
        self.reject_from
    }

    /// Rejected when a must-pass stage failed or a finding is at least `reject_from`;
    /// needs review when a finding is above `verify_up_to` or a stage failed; verified
    /// otherwise.
    pub fn decide(&self, stages: &[StageReport]) -> Outcome {
        let worst = stages
            .iter()
            .flat_map(|s| s.findings.iter().map(|f| f.severity))
            .max();
        let must_pass_failed = stages
            .iter()
            .any(|s| s.status == StageStatus::Failed && MUST_PASS.contains(&s.stage.as_str()));
        if must_pass_failed {
            return Outcome::Rejected;
        }
        match worst {
            Some(w) if self.reject_from.is_some_and(|r| w >= r) => Outcome::Rejected,
            Some(w) if w > self.verify_up_to => Outcome::NeedsReview,
            _ if stages.iter().any(|s| s.status == StageStatus::Failed) => Outcome::NeedsReview,
            _ => Outcome::Verified,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default policy ([`Policy::default`]): rejected when a must-pass stage failed or
/// anything is critical; needs review when anything is medium or high; verified otherwise.
pub fn decide(stages: &[StageReport]) -> Outcome {
    Policy::default().decide(stages)
}

/// An administrator's decision on a release that needs review (or on any verdict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// `verified` (approve) or `rejected`.
    pub outcome: Outcome,
    /// Why, for the publisher and the audit log (one line, 1 to 500 characters).
    pub reason: String,
}

/// A verification run as recorded and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerificationReport {
    pub release: String,
    pub outcome: Outcome,
    /// When the run ended (RFC 3339).
    pub checked_at: String,
    pub stages: Vec<StageReport>,
}

/// How many findings of each severity a run has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeverityCounts {
    pub info: u32,
    pub low: u32,
    pub medium: u32,
    pub high: u32,
    pub critical: u32,
}

impl SeverityCounts {
    /// Counts `findings` by severity.
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> SeverityCounts {
        let mut counts = SeverityCounts::default();
        for f in findings {
            let n = match f.severity {
                Severity::Info => &mut counts.info,
                Severity::Low => &mut counts.low,
                Severity::Medium => &mut counts.medium,
                Severity::High => &mut counts.high,
                Severity::Critical => &mut counts.critical,
            };
            *n = n.saturating_add(1);
        }
        counts
    }
}

/// A release in the review queue: the outcome of its newest run and what that run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedRelease {
    /// `publisher/name@version`.
    pub release: String,
    pub outcome: Outcome,
    /// When the newest run ended (RFC 3339).
    pub checked_at: String,
    pub counts: SeverityCounts,
    /// Every finding of the run, from every stage.
    pub findings: Vec<Finding>,
}

/// `GET /api/v1/verifications`: a page of the review queue, newest run first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewQueuePage {
    pub items: Vec<QueuedRelease>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, status: StageStatus, severities: &[Severity]) -> StageReport {
        StageReport {
            stage: name.into(),
            status,
            duration_ms: 1,
            findings: severities
                .iter()
                .map(|s| Finding {
                    severity: *s,
                    rule: "r".into(),
                    message: "m".into(),
                    location: None,
                })
                .collect(),
        }
    }

    #[test]
    fn the_default_policy_decides_by_stage_and_severity() {
        use Severity::*;
        use StageStatus::*;
        assert_eq!(
            decide(&[stage("manifest", Passed, &[Low, Info])]),
            Outcome::Verified
        );
        assert_eq!(
            decide(&[stage("manifest", Passed, &[Medium])]),
            Outcome::NeedsReview
        );
        assert_eq!(
            decide(&[stage("manifest", Failed, &[High])]),
            Outcome::NeedsReview
        );
        assert_eq!(
            decide(&[stage("manifest", Passed, &[Critical])]),
            Outcome::Rejected
        );
        assert_eq!(
            decide(&[stage("integrity", Failed, &[])]),
            Outcome::Rejected
        );
        assert_eq!(
            decide(&[stage("signature", Failed, &[Low])]),
            Outcome::Rejected
        );
        assert_eq!(decide(&[]), Outcome::Verified);
    }

    #[test]
    fn a_configured_policy_moves_the_thresholds_but_never_past_a_failed_must_pass_stage() {
        use Severity::*;
        use StageStatus::*;
        let strict = Policy::new(Info, Some(Medium)).unwrap();
        assert_eq!(
            strict.decide(&[stage("manifest", Passed, &[Low])]),
            Outcome::NeedsReview
        );
        assert_eq!(
            strict.decide(&[stage("manifest", Passed, &[Medium])]),
            Outcome::Rejected
        );
        let lenient = Policy::new(High, None).unwrap();
        assert_eq!(
            lenient.decide(&[stage("wasm", Passed, &[High])]),
            Outcome::Verified
        );
        assert_eq!(
            lenient.decide(&[stage("wasm", Passed, &[Critical])]),
            Outcome::NeedsReview,
            "without reject_from a review decides"
        );
        assert_eq!(
            lenient.decide(&[stage("integrity", Failed, &[])]),
            Outcome::Rejected
        );
        assert_eq!(
            Policy::new(Medium, Some(Medium)),
            Err(PolicyError::Overlap {
                verify: Medium,
                reject: Medium
            })
        );
        assert_eq!(
            Policy::new(Critical, None),
            Err(PolicyError::CriticalVerified)
        );
        assert_eq!("high".parse::<Severity>(), Ok(High));
        assert!(
            "severe"
                .parse::<Severity>()
                .unwrap_err()
                .contains("expected info")
        );
        assert_eq!(Outcome::parse("needs-review"), Some(Outcome::NeedsReview));
    }
}
