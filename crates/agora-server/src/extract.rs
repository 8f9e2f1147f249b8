//! Request extractors whose rejections are problem details naming what was wrong.

use agora_core::ProblemKind;
use agora_core::name::Slug;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json`, rejecting bad bodies with a problem document.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Parsed as a document first, so every string is checked against the one text
        // rule (and named by its path) before the typed value is built.
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(document)) => {
                let errors =
                    agora_core::text::check_json(&document, "", agora_core::text::Lines::Multi);
                if !errors.is_empty() {
                    return Err(ApiError::invalid("Invalid request", errors));
                }
                serde_json::from_value(document).map(ApiJson).map_err(|e| {
                    let mut err = ApiError::of(
                        ProblemKind::InvalidRequest,
                        format!("Failed to deserialize the JSON body into the target type: {e}"),
                    );
                    err.problem.title = "Invalid request body";
                    err
                })
            }
            Err(rejection) => {
                let status = rejection.status();
                let kind = if status == axum::http::StatusCode::UNPROCESSABLE_ENTITY {
                    ProblemKind::InvalidRequest
                } else {
                    ProblemKind::InvalidBody
                };
                let mut e = ApiError::with_status(status, kind, rejection.body_text());
                e.problem.title = "Invalid request body";
                Err(e)
            }
        }
    }
}

/// Query parameters, rejecting bad ones with a problem document.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::of(ProblemKind::InvalidQuery, r.body_text()))
    }
}

/// Path segments, rejecting unreadable ones (bad percent-encoding, a number that is not
/// one) with a problem document.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| ApiError::of(ProblemKind::InvalidPath, r.body_text()))
    }
}

/// A record's numeric `{id}` from the path (a token, a review).
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(raw) = ApiPath::<String>::from_request_parts(parts, state).await?;
        raw.parse().map(IdPath).map_err(|_| {
            ApiError::field(
                "id",
                format!("{:?} is not an id", truncate(&raw)),
                Some("the number a listing shows (`agora token list`, a review's `id`)"),
            )
        })
    }
}

/// `{publisher}/{name}` from the path, both validated.
pub struct PluginPath {
    pub publisher: Slug,
    pub name: Slug,
}

/// `{publisher}/{name}/versions/{version}` from the path, all validated.
pub struct VersionPath {
    pub publisher: Slug,
    pub name: Slug,
    pub version: semver::Version,
}

fn slug(field: &'static str, value: &str) -> Result<Slug, ApiError> {
    Slug::parse(field, value).map_err(|_| {
        ApiError::field(
            field,
            format!("{:?} is not a valid {field}", truncate(value)),
            Some(agora_core::name::SLUG_RULE),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for PluginPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath((publisher, name)) =
            ApiPath::<(String, String)>::from_request_parts(parts, state).await?;
        Ok(PluginPath {
            publisher: slug("publisher", &publisher)?,
            name: slug("name", &name)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VersionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath((publisher, name, version)) =
            ApiPath::<(String, String, String)>::from_request_parts(parts, state).await?;
        let version = semver::Version::parse(&version).map_err(|e| {
            ApiError::field(
                "version",
                format!("{:?} is not a semantic version: {e}", truncate(&version)),
                Some("a version such as 1.2.0"),
            )
        })?;
        Ok(VersionPath {
            publisher: slug("publisher", &publisher)?,
            name: slug("name", &name)?,
            version,
        })
    }
}

/// The address of the client, when the server knows it (the real server does; routers
/// driven directly by tests do not): as [`crate::client::resolve`] decided it (behind a
/// trusted proxy, the forwarded one), else the connection's peer.
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let resolved = parts
            .extensions
            .get::<crate::client::Client>()
            .and_then(|c| c.addr);
        Ok(ClientAddr(resolved.or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
        })))
    }
}

pub use agora_registry::truncate;
