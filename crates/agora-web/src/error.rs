//! Why a page could not be shown, and the error page that says so. A registry error maps
//! to a page by its kind; signing in is a redirect that comes back afterwards.

use agora_registry::RegistryError;
use agora_store::StoreError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::format::percent;
use crate::layout::Layout;

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    NotFound(String),
    BadInput(String),
    /// A field holds what no form or parameter may (a control character): 422.
    Unprocessable(String),
    Forbidden(String),
    /// Signing in is needed; come back to this path afterwards.
    SignIn(String),
    Internal(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::from(RegistryError::from(e))
    }
}

impl From<RegistryError> for PageError {
    fn from(e: RegistryError) -> Self {
        use agora_core::ProblemKind;
        let mut detail = e.detail.clone().unwrap_or_else(|| e.title.to_owned());
        for f in &e.errors {
            detail.push_str(&format!("; {f}"));
        }
        match e.kind {
            ProblemKind::NotFound => PageError::NotFound(detail),
            ProblemKind::Forbidden => PageError::Forbidden(detail),
            ProblemKind::Unauthorized => PageError::SignIn("/".into()),
            ProblemKind::Internal | ProblemKind::Unavailable => PageError::Internal(detail),
            _ => PageError::BadInput(detail),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("a page template failed: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    detail: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, detail) = match self {
            PageError::SignIn(back) => {
                return Redirect::to(&format!("/login?next={}", percent(&back))).into_response();
            }
            PageError::NotFound(d) => (StatusCode::NOT_FOUND, "Not found", d),
            PageError::BadInput(d) => (StatusCode::BAD_REQUEST, "That did not work", d),
            PageError::Unprocessable(d) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "That did not work", d)
            }
            PageError::Forbidden(d) => (StatusCode::FORBIDDEN, "Not allowed", d),
            PageError::Internal(d) => {
                tracing::error!(error = %d, "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "the server could not show this page; the error has been logged".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            layout: Layout::signed_out("Agora", heading),
            status: status.as_u16(),
            heading,
            detail,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, heading).into_response(),
        }
    }
}
