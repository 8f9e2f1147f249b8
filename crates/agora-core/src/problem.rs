//! The kinds of problem the API answers with: part of the public API (a problem document's
//! `type` is `urn:agora:problem:<kind>`), so they are one closed list, each with its HTTP
//! status and title. `docs/api.md` lists them for users.

use std::fmt;

/// Prefix of every problem `type`; the suffix names the kind.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:agora:problem:";

macro_rules! problem_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $status:literal, $title:literal;)*) => {
        /// Why a request was refused or failed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemKind {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemKind {
            /// Every kind, in the order of the documented list.
            pub const ALL: &'static [ProblemKind] = &[$(ProblemKind::$variant),*];

            /// The kind's name, the suffix of its `type` URI.
            pub fn as_str(self) -> &'static str {
                match self { $(ProblemKind::$variant => $name,)* }
            }

            /// The HTTP status the kind is answered with.
            pub fn status(self) -> u16 {
                match self { $(ProblemKind::$variant => $status,)* }
            }

            /// The problem document's `title`.
            pub fn title(self) -> &'static str {
                match self { $(ProblemKind::$variant => $title,)* }
            }

            /// The kind of a problem `type` URI, if it is one of ours.
            pub fn from_type(uri: &str) -> Option<ProblemKind> {
                let name = uri.strip_prefix(PROBLEM_TYPE_PREFIX)?;
                ProblemKind::ALL.iter().copied().find(|k| k.as_str() == name)
            }
        }
    };
}

problem_kinds! {
    /// The request is malformed in a way no field names (e.g. a bad header).
    BadRequest = "bad-request", 400, "Bad request";
    /// The JSON body is not JSON, or not sent as JSON.
    InvalidBody = "invalid-body", 400, "Invalid request body";
    /// A query parameter is unknown or unreadable.
    InvalidQuery = "invalid-query", 400, "Bad request";
    /// A path segment is unreadable.
    InvalidPath = "invalid-path", 400, "Bad request";
    /// One or more fields are invalid; `errors` names each with what would be accepted.
    InvalidRequest = "invalid-request", 422, "Invalid request";
    /// A release's signature is missing, malformed, or not by an active key of its publisher.
    InvalidSignature = "invalid-signature", 422, "Invalid signature";
    /// No token, or one that is unknown, expired or revoked.
    Unauthorized = "unauthorized", 401, "Authentication required";
    /// The user's role, memberships or the token's scopes do not allow this.
    Forbidden = "forbidden", 403, "Not allowed";
    /// Nothing there (private plugins answer this too, for anyone who may not see them).
    NotFound = "not-found", 404, "Not found";
    /// The endpoint does not take this method.
    MethodNotAllowed = "method-not-allowed", 405, "Method not allowed";
    /// The change conflicts with the current state (a published version, the last owner).
    Conflict = "conflict", 409, "Conflict";
    /// A body larger than the server's limit.
    TooLarge = "too-large", 413, "Content too large";
    /// An upload whose bytes do not hash to the digest in its path; nothing was stored.
    DigestMismatch = "digest-mismatch", 400, "Bad request";
    /// An upload whose length differs from its `Content-Length`.
    SizeMismatch = "size-mismatch", 400, "Bad request";
    /// An upload cut off before its end; nothing was stored.
    UploadInterrupted = "upload-interrupted", 400, "Bad request";
    /// A `Range` no byte of the blob satisfies; `Content-Range` gives the size.
    RangeNotSatisfiable = "range-not-satisfiable", 416, "Range not satisfiable";
    /// Too many requests of one class from one token or client address; `Retry-After`
    /// says when to try again, `RateLimit` and `RateLimit-Policy` give the quota.
    TooManyRequests = "too-many-requests", 429, "Too many requests";
    /// The server failed; its log has the details.
    Internal = "internal", 500, "Internal server error";
    /// A dependency (database, storage) is down, or the server is at its connection limit.
    Unavailable = "unavailable", 503, "Service unavailable";
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_type_uri_and_are_unique() {
        let mut names = std::collections::HashSet::new();
        for kind in ProblemKind::ALL {
            assert!(names.insert(kind.as_str()), "{kind} twice");
            let uri = format!("{PROBLEM_TYPE_PREFIX}{kind}");
            assert_eq!(ProblemKind::from_type(&uri), Some(*kind));
            assert!((400..600).contains(&kind.status()));
        }
        assert_eq!(ProblemKind::from_type("urn:agora:problem:nope"), None);
    }
}
