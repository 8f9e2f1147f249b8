//! The request side of the one text rule (`agora_core::text`): no control characters in
//! paths, query parameters, form fields or JSON strings. Checked before any handler runs,
//! so no such character reaches the database (PostgreSQL refuses NUL) or a page, and the
//! answer is the same 422 naming the field on every backend.

use agora_core::manifest::FieldError;
use agora_core::text::{Lines, check};
use axum::extract::Request;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The first control character in the request's path or query string, as a field error:
/// `path` for the path, the parameter's name for a query parameter.
pub fn uri_problem(uri: &Uri) -> Option<FieldError> {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    if let Err(e) = check("path", &path, Lines::Single) {
        return Some(e);
    }
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| {
        let name: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
        let name = if name.is_empty() {
            "query".to_owned()
        } else {
            name
        };
        check(&name, &key, Lines::Single)
            .and_then(|()| check(&name, &value, Lines::Single))
            .err()
    })
}

/// The first control character (other than line breaks and tabs) in a form body
/// (`application/x-www-form-urlencoded`).
pub fn form_problem(body: &[u8]) -> Option<FieldError> {
    form_urlencoded::parse(body).find_map(|(key, value)| {
        let name: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
        check(&name, &key, Lines::Single)
            .and_then(|()| check(&name, &value, Lines::Multi))
            .err()
    })
}

/// Refuses requests whose path or query holds a control character (422 naming it).
pub async fn reject_control_characters(request: Request, next: Next) -> Response {
    match uri_problem(request.uri()) {
        Some(problem) => ApiError::invalid("Invalid request", vec![problem]).into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn control_characters_in_paths_and_queries_are_named() {
        assert!(uri_problem(&uri("/api/v1/plugins?q=network&tag=http")).is_none());
        assert!(uri_problem(&uri("/plugins/acme/caf%C3%A9")).is_none());
        let e = uri_problem(&uri("/api/v1/plugins?tag=a%00b")).unwrap();
        assert_eq!(e.field, "tag");
        assert!(e.problem.contains("U+0000"), "{e}");
        assert_eq!(uri_problem(&uri("/plugins/a%00b/c")).unwrap().field, "path");
        assert_eq!(
            uri_problem(&uri("/publishers/a%1Bb")).unwrap().field,
            "path"
        );
        assert_eq!(uri_problem(&uri("/search?q=%0A")).unwrap().field, "q");
        assert_eq!(uri_problem(&uri("/search?a%00=1")).unwrap().field, "a");
    }

    #[test]
    fn form_fields_may_hold_line_breaks_but_no_other_control_character() {
        assert!(form_problem(b"body=line%0Aother&rating=5").is_none());
        let e = form_problem(b"csrf=x&username=ad%00min").unwrap();
        assert_eq!(e.field, "username");
        assert!(form_problem(b"body=%1B%5B31m").is_some());
    }
}
