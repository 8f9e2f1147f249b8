//! Why a page could not be shown, and the error page that says so. A registry error maps
//! to a page by its kind; signing in is a redirect that comes back afterwards. Every
//! error page is shown in the visitor's own frame ([`framed`]), signed in or not.

use agora_registry::RegistryError;
use agora_store::StoreError;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::format::percent;
use crate::layout::Layout;
use crate::state::Web;

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
        // Field errors the detail does not already say (it often does).
        for f in &e.errors {
            let text = f.to_string();
            if !detail.contains(&text) {
                detail.push_str(&format!("; {text}"));
            }
        }
        match e.kind {
            ProblemKind::NotFound => PageError::NotFound(detail),
            ProblemKind::Forbidden => PageError::Forbidden(detail),
            ProblemKind::Unauthorized => PageError::SignIn("/".into()),
            ProblemKind::Internal | ProblemKind::Unavailable => PageError::Internal(detail),
            // The same status the API answers for the same problem.
            kind if kind.status() == 422 => PageError::Unprocessable(detail),
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

/// What an error page says, kept on its response so that [`framed`] can show it again
/// in the visitor's own frame.
#[derive(Clone)]
struct Shown {
    heading: &'static str,
    detail: String,
}

fn page(status: StatusCode, layout: Layout, shown: &Shown) -> Response {
    let page = ErrorPage {
        layout,
        status: status.as_u16(),
        heading: shown.heading,
        detail: shown.detail.clone(),
    };
    let mut response = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{}: {}", shown.heading, shown.detail)).into_response(),
    };
    response.extensions_mut().insert(shown.clone());
    response
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
        // Signed out until `framed` knows who is looking.
        page(
            status,
            Layout::signed_out("Agora", heading),
            &Shown { heading, detail },
        )
    }
}

/// What a client error the framework answered by itself (a form that does not
/// deserialize, a method a page does not take) says to a person.
fn framework_error(status: StatusCode, text: &str) -> Shown {
    let text = text.trim();
    let (heading, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not available this way",
            "this address takes a form's submission, not a visit: go back to the page and \
             use its button"
                .to_owned(),
        ),
        StatusCode::NOT_FOUND => ("Not found", "there is no page at this address".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => ("Too large", "the form sent too much".to_owned()),
        _ if text.is_empty() => (
            "That did not work",
            "the request was not understood".to_owned(),
        ),
        _ => ("That did not work", text.chars().take(500).collect()),
    };
    Shown { heading, detail }
}

/// Every error page in the visitor's own frame: signed in, the header shows their
/// account and the sign-out button as on any page. Error pages rendered before the
/// visitor was known (by [`PageError`]) are rendered again here; the framework's own
/// bare client errors (an empty 405, a plain-text 422) become pages too.
pub(crate) async fn framed(State(web): State<Web>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let is_asset = request.uri().path().starts_with("/static/");
    let response = next.run(request).await;
    let status = response.status();
    let shown = match response.extensions().get::<Shown>() {
        Some(shown) => shown.clone(),
        None => {
            let is_html = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if !status.is_client_error() || is_html || is_asset {
                return response;
            }
            let (parts, body) = response.into_parts();
            let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
            let shown = framework_error(status, &String::from_utf8_lossy(&text));
            let mut framed = page(status, Layout::signed_out("Agora", shown.heading), &shown);
            for name in [header::ALLOW, header::RETRY_AFTER] {
                if let Some(v) = parts.headers.get(&name) {
                    framed.headers_mut().insert(name, v.clone());
                }
            }
            return finish(&web, &headers, status, framed, &shown).await;
        }
    };
    finish(&web, &headers, status, response, &shown).await
}

/// `response` (an error page) rendered again in the frame of whoever sent `headers`,
/// keeping its status and headers.
async fn finish(
    web: &Web,
    headers: &HeaderMap,
    status: StatusCode,
    response: Response,
    shown: &Shown,
) -> Response {
    let visitor = match crate::session::load(web, headers).await {
        Ok(v) => v,
        Err(_) => return response,
    };
    let again = page(status, visitor.layout(web, shown.heading), shown);
    let (mut parts, _) = response.into_parts();
    let (new_parts, body) = again.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        new_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("text/html; charset=utf-8")),
    );
    Response::from_parts(parts, body)
}
