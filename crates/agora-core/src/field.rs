//! [`FieldError`]: one problem with one field of a request or a document, naming the field,
//! what is wrong and what would be accepted. Every refusal of bad input says this much.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem with one field (of a manifest, a request body, a query parameter...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where the problem is, e.g. `runtime.type` or `tags[2]`; empty for the whole document.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// What would be accepted, when the schema says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        expected: Option<&str>,
    ) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
            expected: expected.map(str::to_owned),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() {
            "(manifest)"
        } else {
            &self.field
        };
        write!(f, "{field}: {}", self.problem)?;
        if let Some(expected) = &self.expected {
            write!(f, " (expected {expected})")?;
        }
        Ok(())
    }
}
