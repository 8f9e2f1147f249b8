//! Cross-origin access to the API (`[cors]`): which other sites' pages may call it from a
//! browser. None by default: a browser then refuses any other origin's script the answer
//! (the API needs no CORS for the CLI, agents or servers). Allowed origins get the
//! methods listed (reads only by default) with the `Authorization` and `Content-Type`
//! headers, and credentials only when asked; `*` is refused together with credentials.
//! Preflight requests are answered before authentication (they carry no token).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Longest time a browser may cache a preflight answer.
pub const MAX_AGE_SECS: u64 = 86_400;

/// What cross-origin callers may do.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Option<Vec<HeaderValue>>,
    methods: Vec<Method>,
    credentials: bool,
    max_age: Duration,
}

/// A `[cors]` setting that cannot be used: the setting, what is wrong, what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cors.{field}: {problem}; expected {expected}")]
pub struct CorsError {
    pub field: &'static str,
    pub problem: String,
    pub expected: &'static str,
}

fn error(field: &'static str, problem: String, expected: &'static str) -> CorsError {
    CorsError {
        field,
        problem,
        expected,
    }
}

const ORIGIN: &str = "`*`, or origins written as scheme://host[:port] with http or https, no path";
const METHODS: &str = "methods among GET, HEAD, POST, PUT, PATCH, DELETE";

impl Cors {
    /// Cross-origin access for `origins` (none: `Ok(None)`, no CORS at all).
    pub fn new(
        origins: &[String],
        methods: &[String],
        credentials: bool,
        max_age_secs: u64,
    ) -> Result<Option<Cors>, CorsError> {
        if origins.is_empty() {
            return Ok(None);
        }
        let any = origins.iter().any(|o| o == "*");
        if any && origins.len() > 1 {
            return Err(error(
                "allowed_origins",
                "lists `*` beside other origins".into(),
                ORIGIN,
            ));
        }
        if any && credentials {
            return Err(error(
                "allow_credentials",
                "is true while allowed_origins is `*` (any site could act with a visitor's credentials)".into(),
                "false with `*`, or a list of origins",
            ));
        }
        let origins = if any {
            None
        } else {
            Some(
                origins
                    .iter()
                    .map(|o| check_origin(o))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let methods = methods
            .iter()
            .map(|m| match m.to_ascii_uppercase().as_str() {
                "GET" => Ok(Method::GET),
                "HEAD" => Ok(Method::HEAD),
                "POST" => Ok(Method::POST),
                "PUT" => Ok(Method::PUT),
                "PATCH" => Ok(Method::PATCH),
                "DELETE" => Ok(Method::DELETE),
                other => Err(error(
                    "allowed_methods",
                    format!("{other:?} is not a method the API answers"),
                    METHODS,
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if methods.is_empty() {
            return Err(error("allowed_methods", "is empty".into(), METHODS));
        }
        if max_age_secs > MAX_AGE_SECS {
            return Err(error(
                "max_age_secs",
                format!("is {max_age_secs}"),
                "0 to 86400 seconds",
            ));
        }
        Ok(Some(Cors {
            origins,
            methods,
            credentials,
            max_age: Duration::from_secs(max_age_secs),
        }))
    }

    /// The layer that answers preflights and adds the headers.
    pub fn layer(&self) -> CorsLayer {
        let origin = match &self.origins {
            None => AllowOrigin::any(),
            Some(list) => AllowOrigin::list(list.clone()),
        };
        let exposed: [HeaderName; 5] = [
            header::LOCATION,
            header::ETAG,
            header::CONTENT_RANGE,
            header::RETRY_AFTER,
            HeaderName::from_static("agora-digest"),
        ];
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(self.methods.clone())
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE])
            .expose_headers(exposed)
            .allow_credentials(self.credentials)
            .max_age(self.max_age)
    }
}

fn check_origin(origin: &str) -> Result<HeaderValue, CorsError> {
    let bad = |why: &str| error("allowed_origins", format!("{origin:?} {why}"), ORIGIN);
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or_else(|| bad("has no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("is not http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) || rest.ends_with(':') {
        return Err(bad("is not just a host and port"));
    }
    HeaderValue::from_str(origin).map_err(|_| bad("is not a header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn settings_are_checked_naming_the_field() {
        let get = strings(&["GET"]);
        assert!(Cors::new(&[], &get, false, 600).unwrap().is_none());
        assert!(Cors::new(&strings(&["https://app.example"]), &get, true, 600).is_ok());
        assert!(Cors::new(&strings(&["http://localhost:3000"]), &get, false, 0).is_ok());
        assert!(Cors::new(&strings(&["*"]), &get, false, 600).is_ok());
        for (origins, methods, credentials, max_age, field) in [
            (vec!["*"], vec!["GET"], true, 600, "allow_credentials"),
            (
                vec!["*", "https://a.example"],
                vec!["GET"],
                false,
                600,
                "allowed_origins",
            ),
            (
                vec!["app.example"],
                vec!["GET"],
                false,
                600,
                "allowed_origins",
            ),
            (
                vec!["ftp://app.example"],
                vec!["GET"],
                false,
                600,
                "allowed_origins",
            ),
            (
                vec!["https://app.example/path"],
                vec!["GET"],
                false,
                600,
                "allowed_origins",
            ),
            (
                vec!["https://app.example"],
                vec!["TRACE"],
                false,
                600,
                "allowed_methods",
            ),
            (
                vec!["https://app.example"],
                vec![],
                false,
                600,
                "allowed_methods",
            ),
            (
                vec!["https://app.example"],
                vec!["GET"],
                false,
                90_000,
                "max_age_secs",
            ),
        ] {
            let e = Cors::new(&strings(&origins), &strings(&methods), credentials, max_age)
                .unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
