//! [`RegistryError`]: why a use case refused or failed, as one of the API's problem kinds
//! (`agora_core::ProblemKind`) with the detail a person can act on and, for bad input, the
//! fields at fault. Each face renders it its own way: the API as an RFC 9457 problem, the
//! pages as an error page. Nothing here knows HTTP.

use std::fmt;

use agora_core::text::Lines;
use agora_core::{FieldError, ProblemKind};
use agora_store::{BlobError, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryError {
    pub kind: ProblemKind,
    /// The problem document's title: the kind's, unless a use case names it better
    /// ("Invalid release", "Invalid manifest").
    pub title: &'static str,
    pub detail: Option<String>,
    /// Field-level problems (`invalid-request`, `invalid-signature`).
    pub errors: Vec<FieldError>,
    /// For `range-not-satisfiable`: the blob's size.
    pub size: Option<u64>,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> RegistryError {
        RegistryError {
            kind,
            title: kind.title(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            size: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> RegistryError {
        RegistryError::new(ProblemKind::NotFound, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> RegistryError {
        RegistryError::new(ProblemKind::Forbidden, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> RegistryError {
        RegistryError::new(ProblemKind::Unauthorized, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> RegistryError {
        RegistryError::new(ProblemKind::Conflict, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> RegistryError {
        RegistryError::new(ProblemKind::Unavailable, detail)
    }

    /// One or more fields are wrong; each is named.
    pub fn invalid(title: &'static str, errors: Vec<FieldError>) -> RegistryError {
        let detail = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        RegistryError {
            kind: ProblemKind::InvalidRequest,
            title,
            detail: Some(detail),
            errors,
            size: None,
        }
    }

    /// One field is wrong: what is wrong with it and what would be accepted.
    pub fn field(field: &str, problem: impl Into<String>, expected: Option<&str>) -> RegistryError {
        RegistryError::invalid(
            ProblemKind::InvalidRequest.title(),
            vec![FieldError::new(field, problem, expected)],
        )
    }

    /// The server failed: logged with `context`, answered without the details.
    pub fn internal(context: &str, err: impl fmt::Display) -> RegistryError {
        tracing::error!(error = %err, "{context}");
        RegistryError::new(
            ProblemKind::Internal,
            format!("{context}; the server log has details"),
        )
    }

    /// The same error as another kind (e.g. `invalid-signature` for a field error).
    pub fn as_kind(mut self, kind: ProblemKind) -> RegistryError {
        self.kind = kind;
        self
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{}: {d}", self.title),
            None => f.write_str(self.title),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<FieldError> for RegistryError {
    fn from(error: FieldError) -> Self {
        RegistryError::invalid(ProblemKind::InvalidRequest.title(), vec![error])
    }
}

/// The text rule (`agora_core::text`) for a one-line field of a request (a name, a
/// reason, a contact, a parameter): no control character at all. Every use case checks
/// its fields with it (or [`multi_line`]) before the store sees them, so SQLite and
/// PostgreSQL answer bad text alike, whichever door it came through.
pub fn one_line(field: &str, text: &str) -> Result<()> {
    Ok(agora_core::text::check(field, text, Lines::Single)?)
}

/// [`one_line`] for a field that may be absent.
pub fn one_line_opt(field: &str, text: Option<&str>) -> Result<()> {
    Ok(agora_core::text::check_opt(field, text, Lines::Single)?)
}

/// The text rule for a field meant to span lines (a review's body, an armored key): line
/// breaks and tabs are fine, no other control character is.
pub fn multi_line(field: &str, text: &str) -> Result<()> {
    Ok(agora_core::text::check(field, text, Lines::Multi)?)
}

/// Text to quote from a request in an error: at most 80 characters of it.
pub fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

impl From<StoreError> for RegistryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => RegistryError::not_found(format!("{what} not found")),
            StoreError::Conflict(detail) => RegistryError::conflict(detail),
            StoreError::InvalidText => RegistryError::field(
                "",
                "the request holds a character that cannot be stored",
                Some("text without control characters"),
            ),
            other => match other.outage() {
                // Not the server's fault nor the request's: 503, to be tried again.
                Some(why) => {
                    tracing::warn!(error = %other, "{why}");
                    RegistryError::unavailable(format!("{why}; try again later"))
                }
                None => RegistryError::internal("the metadata store failed", other),
            },
        }
    }
}

impl From<BlobError> for RegistryError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::DigestMismatch { .. } => RegistryError::new(
                ProblemKind::DigestMismatch,
                format!("{err}; nothing was stored"),
            ),
            BlobError::TooLarge { .. } => {
                RegistryError::new(ProblemKind::TooLarge, format!("{err}; nothing was stored"))
            }
            BlobError::SizeMismatch { .. } => {
                RegistryError::new(ProblemKind::SizeMismatch, err.to_string())
            }
            BlobError::Interrupted(_) => RegistryError::new(
                ProblemKind::UploadInterrupted,
                format!("{err}; nothing was stored, upload again"),
            ),
            BlobError::RangeNotSatisfiable { size } => RegistryError {
                size: Some(size),
                ..RegistryError::new(ProblemKind::RangeNotSatisfiable, err.to_string())
            },
            BlobError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                tracing::warn!(error = %e, "the blob storage is full");
                RegistryError::unavailable(
                    "the blob storage is full; nothing was stored, try again once space is freed",
                )
            }
            other => RegistryError::internal("the blob store failed", other),
        }
    }
}
