//! The OCI distribution endpoints (`/v2/`, distribution spec v1.1): one router beside the
//! API, each request parsed here and handed to one `agora_registry::oci` use case.
//!
//! - **Paths.** Repository names hold slashes, so every `/v2/NAME/...` request is routed
//!   by its suffix ([`Route::parse`]): `/manifests/REF`, `/blobs/DIGEST`,
//!   `/blobs/uploads/[ID]`, `/tags/list`, `/referrers/DIGEST`.
//! - **Auth.** `GET /v2/` without credentials answers the challenge (so clients learn
//!   the realm), while reads elsewhere need none on a public registry. The same tokens as
//!   the API: `Authorization: Bearer TOKEN`, or `Basic` with
//!   the token as password (any user name). A request that needs a user, or any request
//!   to a private registry, without one is answered `401` with the challenge OCI clients
//!   follow: `WWW-Authenticate: Bearer realm="BASE/v2/token",service=...,scope=...`. The
//!   token endpoint takes the same Basic credentials and answers the token itself as the
//!   bearer token, so nothing new is minted or stored; anonymous clients of a public
//!   registry get the placeholder [`ANONYMOUS_TOKEN`], which means "no token".
//! - **Errors** are the spec's `{"errors":[{"code","message","detail"}]}`.
//! - Bodies are streamed: uploads straight to a file or the blob store, within the
//!   registry's blob size limit; manifests read whole within their own limit.

use agora_core::oci::{self, ErrorCode};
use agora_registry::Caller;
use agora_registry::oci::{self as uc, OciError, Repo};
use agora_store::{ByteStream, Viewer};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64ct::Encoding;
use futures_util::{StreamExt, TryStreamExt};

use crate::api::blobs::{Wanted, parse_range};
use crate::metrics;
use crate::state::AppState;

/// The placeholder token the token endpoint gives anonymous clients of a public registry.
pub const ANONYMOUS_TOKEN: &str = "anonymous";
/// The header naming the digest of what a response carries or a push stored.
const DIGEST: &str = "docker-content-digest";
/// How long a token endpoint answer says its token lasts (the token's own expiry rules).
const TOKEN_SECONDS: u64 = 300;

/// The `/v2/` router (empty when `[oci] enabled = false`).
pub fn router(state: AppState) -> Router {
    if !state.registry.oci.settings.enabled {
        return Router::new();
    }
    Router::new()
        .route("/v2/", get(base))
        .route("/v2", get(base))
        .route("/v2/token", get(token))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .route("/v2/{*rest}", any(dispatch))
        .layer(axum::middleware::from_fn(crate::error::catch_panics))
        .with_state(state)
}

/// What a request's Authorization header says.
struct Who {
    caller: Option<Caller>,
    viewer: Viewer,
    /// Credentials were sent (valid ones: invalid ones are refused before).
    sent: bool,
}

async fn who(state: &AppState, headers: &HeaderMap) -> Result<Who, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Who {
            caller: None,
            viewer: Viewer::anonymous(),
            sent: false,
        });
    };
    let token = credential(value).ok_or_else(|| {
        challenge(
            headers,
            None,
            "the Authorization header must be `Bearer TOKEN` or `Basic` with the token as password",
        )
    })?;
    if token == ANONYMOUS_TOKEN {
        return Ok(Who {
            caller: None,
            viewer: Viewer::anonymous(),
            sent: false,
        });
    }
    if token.starts_with(agora_core::tenant::INSTANCE_TOKEN_PREFIX) {
        let instance = agora_registry::tenants::authenticate_instance(&state.registry, &token)
            .await
            .map_err(|e| challenge(headers, None, &OciError::from(e).message))?;
        return Ok(Who {
            caller: None,
            viewer: instance.viewer(),
            sent: true,
        });
    }
    let caller = state
        .registry
        .authenticate(&token)
        .await
        .map_err(|e| challenge(headers, None, &OciError::from(e).message))?;
    Ok(Who {
        viewer: caller.viewer(),
        caller: Some(caller),
        sent: true,
    })
}

/// The token in `Bearer TOKEN` or `Basic base64(user:TOKEN)`.
fn credential(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?.trim();
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64ct::Base64::decode_vec(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// Where the token endpoint is, as this request reached us.
fn realm(headers: &HeaderMap) -> (String, String) {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    (format!("{scheme}://{host}/v2/token"), host.to_owned())
}

/// A `401` with the Bearer challenge.
fn challenge(headers: &HeaderMap, scope: Option<&str>, message: &str) -> Response {
    let (realm, service) = realm(headers);
    let mut value = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    let mut response = error_response(OciError::new(ErrorCode::Unauthorized, message));
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn error_response(err: OciError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(code = err.code, message = %err.message, "OCI request failed");
    }
    let body = serde_json::json!({
        "errors": [{ "code": err.code, "message": err.message, "detail": null }]
    });
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    if let Some(size) = err.size {
        // An upload's 416 says where the upload ends; a blob's, how large the blob is.
        let (name, value) =
            if status == StatusCode::RANGE_NOT_SATISFIABLE && err.code == "BLOB_UPLOAD_INVALID" {
                (header::RANGE, format!("0-{}", size.saturating_sub(1)))
            } else {
                (header::CONTENT_RANGE, format!("bytes */{size}"))
            };
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    with_version(response)
}

fn with_version(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// `GET /v2/`: the API is here; a private registry asks for credentials first.
async fn base(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match who(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    // Without any Authorization header the answer is the challenge, as every registry
    // with token auth answers it: that is how clients learn where tokens come from (an
    // anonymous one included) before they push or pull.
    if headers.get(header::AUTHORIZATION).is_none() {
        return challenge(
            &headers,
            None,
            "send a token, or get one (an anonymous one for public content) from the realm",
        );
    }
    if state.registry.sign_in_required && !who.sent {
        return challenge(
            &headers,
            None,
            "this is a private registry: sign in with a token",
        );
    }
    with_version(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{}",
        )
            .into_response(),
    )
}

/// `GET /v2/token`: the Bearer token flow. Basic credentials (the token as password) give
/// that token back; none give [`ANONYMOUS_TOKEN`] on a public registry.
async fn token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match who(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    let token = match headers.get(header::AUTHORIZATION).and_then(credential) {
        Some(token) if who.sent => token,
        _ if state.registry.sign_in_required => {
            return challenge(
                &headers,
                None,
                "this is a private registry: sign in with a token",
            );
        }
        _ => ANONYMOUS_TOKEN.to_owned(),
    };
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_SECONDS,
    });
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_version(response)
}

/// What a `/v2/NAME/...` path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Tags(String),
    Referrers(String, String),
}

impl Route {
    fn parse(rest: &str) -> Option<Route> {
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Route::Tags(name.to_owned()));
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Some(Route::UploadStart(name.to_owned()));
        }
        let (prefix, last) = rest.rsplit_once('/')?;
        if last.is_empty() {
            return None;
        }
        let last = last.to_owned();
        if let Some(name) = prefix.strip_suffix("/blobs/uploads") {
            Some(Route::Upload(name.to_owned(), last))
        } else if let Some(name) = prefix.strip_suffix("/manifests") {
            Some(Route::Manifest(name.to_owned(), last))
        } else if let Some(name) = prefix.strip_suffix("/blobs") {
            Some(Route::Blob(name.to_owned(), last))
        } else {
            prefix
                .strip_suffix("/referrers")
                .map(|name| Route::Referrers(name.to_owned(), last))
        }
    }

    /// The route's template, the metrics label (a fixed set).
    fn template(&self) -> &'static str {
        match self {
            Route::Manifest(..) => "/v2/{name}/manifests/{reference}",
            Route::Blob(..) => "/v2/{name}/blobs/{digest}",
            Route::UploadStart(_) => "/v2/{name}/blobs/uploads/",
            Route::Upload(..) => "/v2/{name}/blobs/uploads/{id}",
            Route::Tags(_) => "/v2/{name}/tags/list",
            Route::Referrers(..) => "/v2/{name}/referrers/{digest}",
        }
    }

    fn name(&self) -> &str {
        match self {
            Route::Manifest(n, _)
            | Route::Blob(n, _)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Tags(n)
            | Route::Referrers(n, _) => n,
        }
    }
}

/// Every `/v2/NAME/...` request, counted in the metrics under its route's template.
async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = Route::parse(
        request
            .uri()
            .path()
            .strip_prefix("/v2/")
            .unwrap_or_default(),
    )
    .map_or("/v2/{unknown}", |r| r.template());
    let response = answer(state, request).await;
    metrics::request_done(
        &method,
        route.to_owned(),
        response.status().as_u16(),
        started,
    );
    response
}

async fn answer(state: AppState, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path()
        .strip_prefix("/v2/")
        .unwrap_or_default()
        .to_owned();
    let Some(route) = Route::parse(&path) else {
        return error_response(
            OciError::new(
                ErrorCode::NameInvalid,
                format!("/v2/{path} is not an OCI distribution endpoint"),
            )
            .with_status(404),
        );
    };
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let headers = &parts.headers;
    let who = match who(&state, headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    let writes = !matches!(parts.method, Method::GET | Method::HEAD);
    let scope = format!(
        "repository:{}:{}",
        route.name(),
        if writes { "pull,push" } else { "pull" }
    );
    if (writes && who.caller.is_none()) || (state.registry.sign_in_required && !who.sent) {
        let message = if who.sent {
            "an instance credential only reads; this needs a user's token (see `agora login`)"
        } else {
            "this needs a token: `Authorization: Bearer TOKEN` (see `agora login`)"
        };
        if who.sent {
            return error_response(OciError::new(ErrorCode::Denied, message));
        }
        return challenge(headers, Some(&scope), message);
    }
    let repo = match uc::repository(&state.registry, &who.viewer, route.name()).await {
        Ok(repo) => repo,
        Err(e) => return error_response(e),
    };
    let stream =
        || -> ByteStream { Box::pin(body.into_data_stream().map_err(std::io::Error::other)) };
    let result = match (&parts.method, &route, who.caller.as_ref()) {
        (&Method::GET | &Method::HEAD, Route::Manifest(_, reference), _) => {
            get_manifest(&state, &repo, reference, parts.method == Method::HEAD).await
        }
        (&Method::GET | &Method::HEAD, Route::Blob(_, digest), _) => {
            get_blob(&state, &repo, digest, headers, parts.method == Method::HEAD).await
        }
        (&Method::GET, Route::Tags(_), _) => {
            get_tags(&state, &repo, param("n"), param("last")).await
        }
        (&Method::GET, Route::Referrers(_, digest), _) => {
            get_referrers(&state, &repo, digest, param("artifactType")).await
        }
        (&Method::GET, Route::Upload(_, id), Some(caller)) => {
            uc::upload_state(&state.registry, caller, &repo, id)
                .map(|s| upload_response(StatusCode::NO_CONTENT, &repo, &s))
        }
        (&Method::POST, Route::UploadStart(_), Some(caller)) => {
            post_upload(
                &state,
                caller,
                &repo,
                param("digest"),
                param("mount"),
                param("from"),
                headers,
                stream(),
            )
            .await
        }
        (&Method::PATCH, Route::Upload(_, id), Some(caller)) => {
            let range = match content_range(headers) {
                Ok(range) => range,
                Err(e) => return error_response(e),
            };
            uc::append(&state.registry, caller, &repo, id, range, stream())
                .await
                .map(|s| upload_response(StatusCode::ACCEPTED, &repo, &s))
        }
        (&Method::PUT, Route::Upload(_, id), Some(caller)) => uc::finish(
            &state.registry,
            caller,
            &repo,
            id,
            param("digest"),
            stream(),
        )
        .await
        .map(|d| blob_created(&repo, &d)),
        (&Method::DELETE, Route::Upload(_, id), Some(caller)) => {
            uc::cancel(&state.registry, caller, &repo, id)
                .await
                .map(|()| StatusCode::NO_CONTENT.into_response())
        }
        (&Method::PUT, Route::Manifest(_, reference), Some(caller)) => {
            put_manifest(&state, caller, &repo, reference, headers, stream()).await
        }
        (&Method::DELETE, Route::Manifest(_, reference), Some(caller)) => {
            uc::delete_manifest(&state.registry, caller, &repo, reference)
                .await
                .map(|()| StatusCode::ACCEPTED.into_response())
        }
        (&Method::DELETE, Route::Blob(_, digest), Some(caller)) => {
            uc::delete_blob(&state.registry, caller, &repo, digest)
                .await
                .map(|()| StatusCode::ACCEPTED.into_response())
        }
        _ => Err(OciError::new(
            ErrorCode::Unsupported,
            format!("{} is not supported on this endpoint", parts.method),
        )),
    };
    match result {
        Ok(response) => with_version(response),
        Err(e) => error_response(e),
    }
}

fn header_value(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}

async fn get_manifest(
    state: &AppState,
    repo: &Repo,
    reference: &str,
    head: bool,
) -> Result<Response, OciError> {
    let found = uc::manifest(&state.registry, repo, reference).await?;
    let mut headers = HeaderMap::new();
    if let Some(v) = header_value(&found.media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = header_value(&found.digest.to_string()) {
        headers.insert(DIGEST, v.clone());
        if let Some(etag) = header_value(&format!("\"{}\"", found.digest)) {
            headers.insert(header::ETAG, etag);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(found.size));
    if head {
        return Ok((StatusCode::OK, headers).into_response());
    }
    let body = uc::manifest_bytes(&state.registry, &found).await?;
    Ok((StatusCode::OK, headers, Body::from_stream(body)).into_response())
}

async fn get_blob(
    state: &AppState,
    repo: &Repo,
    digest: &str,
    request: &HeaderMap,
    head: bool,
) -> Result<Response, OciError> {
    let (digest, size) = uc::blob_size(&state.registry, repo, digest).await?;
    let (status, start, len) = match parse_range(request.get(header::RANGE), size) {
        Wanted::All => (StatusCode::OK, 0, size),
        Wanted::Range { start, len } => (StatusCode::PARTIAL_CONTENT, start, len),
        Wanted::Unsatisfiable => {
            return Err(OciError {
                size: Some(size),
                ..OciError::new(
                    ErrorCode::BlobUnknown,
                    format!("no byte of the {size}-byte blob is in the range"),
                )
            }
            .with_status(416));
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // A private repository's blob is for the reader's own cache only.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if repo.public {
            crate::api::blobs::CACHE_FOREVER
        } else {
            crate::api::blobs::CACHE_PRIVATE
        }),
    );
    if let Some(v) = header_value(&digest.to_string()) {
        headers.insert(DIGEST, v);
    }
    if let Some(v) = header_value(&format!("\"{digest}\"")) {
        headers.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Some(v) = header_value(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    if head {
        return Ok((status, headers).into_response());
    }
    let blob = state
        .registry
        .blobs
        .get(&digest, start, len)
        .await?
        .ok_or_else(|| {
            OciError::new(ErrorCode::BlobUnknown, format!("blob {digest} is missing"))
        })?;
    metrics::downloaded(len);
    Ok((status, headers, Body::from_stream(blob.body)).into_response())
}

async fn get_tags(
    state: &AppState,
    repo: &Repo,
    n: Option<&str>,
    last: Option<&str>,
) -> Result<Response, OciError> {
    let n = n
        .map(|n| {
            n.parse::<usize>().map_err(|_| {
                OciError::new(
                    ErrorCode::Unsupported,
                    format!(
                        "n={n:?} is not a count; accepted: 0 to {}",
                        oci::MAX_TAGS_PAGE
                    ),
                )
                .with_status(400)
            })
        })
        .transpose()?;
    let (tags, more) = uc::tags(&state.registry, repo, last, n).await?;
    let body = serde_json::json!({ "name": repo.name.as_str(), "tags": tags });
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    if more && let Some(last) = tags.last() {
        let page = n.unwrap_or(oci::MAX_TAGS_PAGE).min(oci::MAX_TAGS_PAGE);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &page.to_string())
            .append_pair("last", last)
            .finish();
        if let Some(v) = header_value(&format!(
            "</v2/{}/tags/list?{query}>; rel=\"next\"",
            repo.name
        )) {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(response)
}

async fn get_referrers(
    state: &AppState,
    repo: &Repo,
    subject: &str,
    artifact_type: Option<&str>,
) -> Result<Response, OciError> {
    let referrers = uc::referrers(&state.registry, repo, subject, artifact_type).await?;
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(oci::IMAGE_INDEX),
        )],
        oci::index(referrers),
    )
        .into_response();
    if artifact_type.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

fn upload_response(status: StatusCode, repo: &Repo, state: &uc::UploadState) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(v) = header_value(&format!("/v2/{}/blobs/uploads/{}", repo.name, state.id)) {
        headers.insert(header::LOCATION, v);
    }
    // The spec's Range: the inclusive end of what was received (`0-0` before any byte).
    if let Some(v) = header_value(&format!("0-{}", state.offset.saturating_sub(1))) {
        headers.insert(header::RANGE, v);
    }
    if let Some(v) = header_value(&state.id) {
        headers.insert("docker-upload-uuid", v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    (status, headers).into_response()
}

fn blob_created(repo: &Repo, digest: &agora_core::Digest) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(v) = header_value(&format!("/v2/{}/blobs/{digest}", repo.name)) {
        headers.insert(header::LOCATION, v);
    }
    if let Some(v) = header_value(&digest.to_string()) {
        headers.insert(DIGEST, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    (StatusCode::CREATED, headers).into_response()
}

#[allow(clippy::too_many_arguments)]
async fn post_upload(
    state: &AppState,
    caller: &Caller,
    repo: &Repo,
    digest: Option<&str>,
    mount: Option<&str>,
    from: Option<&str>,
    headers: &HeaderMap,
    body: ByteStream,
) -> Result<Response, OciError> {
    if let (Some(mount), Some(from)) = (mount, from)
        && let Some(digest) = uc::mount(&state.registry, caller, repo, from, mount).await?
    {
        return Ok(blob_created(repo, &digest));
    }
    if let Some(digest) = digest {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let digest =
            uc::upload_whole(&state.registry, caller, repo, digest, declared, body).await?;
        metrics::uploaded(0);
        return Ok(blob_created(repo, &digest));
    }
    let started = uc::start_upload(&state.registry, caller, repo).await?;
    Ok(upload_response(StatusCode::ACCEPTED, repo, &started))
}

/// `Content-Range: FIRST-LAST` (the spec's form; `bytes FIRST-LAST/*` accepted too).
pub fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .filter(|(a, b)| b >= a);
    parsed.map(Some).ok_or_else(|| {
        OciError::new(
            ErrorCode::BlobUploadInvalid,
            format!("Content-Range {text:?} is not FIRST-LAST with LAST >= FIRST"),
        )
        .with_status(416)
    })
}

async fn put_manifest(
    state: &AppState,
    caller: &Caller,
    repo: &Repo,
    reference: &str,
    headers: &HeaderMap,
    mut body: ByteStream,
) -> Result<Response, OciError> {
    let too_large = || {
        OciError::new(
            ErrorCode::ManifestInvalid,
            format!(
                "the manifest is larger than {} bytes",
                oci::MAX_MANIFEST_BYTES
            ),
        )
        .with_status(413)
    };
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            OciError::new(
                ErrorCode::ManifestInvalid,
                format!("the manifest was cut off: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > oci::MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    let bytes = bytes::Bytes::from(buf);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let pushed = uc::put_manifest(
        &state.registry,
        caller,
        repo,
        reference,
        content_type,
        bytes,
    )
    .await?;
    let mut response = StatusCode::CREATED.into_response();
    let out = response.headers_mut();
    if let Some(v) = header_value(&format!("/v2/{}/manifests/{}", repo.name, pushed.digest)) {
        out.insert(header::LOCATION, v);
    }
    if let Some(v) = header_value(&pushed.digest.to_string()) {
        out.insert(DIGEST, v);
    }
    if let Some(subject) = pushed.subject
        && let Some(v) = header_value(&subject.to_string())
    {
        out.insert("oci-subject", v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_the_end_of_the_path() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            Route::parse("acme/jira/manifests/1.0.0"),
            Some(Route::Manifest("acme/jira".into(), "1.0.0".into()))
        );
        assert_eq!(
            Route::parse(&format!("acme/x/y/blobs/{d}")),
            Some(Route::Blob("acme/x/y".into(), d.clone()))
        );
        assert_eq!(
            Route::parse("acme/jira/blobs/uploads/"),
            Some(Route::UploadStart("acme/jira".into()))
        );
        assert_eq!(
            Route::parse("acme/jira/blobs/uploads/abc"),
            Some(Route::Upload("acme/jira".into(), "abc".into()))
        );
        assert_eq!(
            Route::parse("acme/jira/tags/list"),
            Some(Route::Tags("acme/jira".into()))
        );
        assert_eq!(
            Route::parse(&format!("acme/jira/referrers/{d}")),
            Some(Route::Referrers("acme/jira".into(), d))
        );
        // A repository may itself be called `manifests`.
        assert_eq!(
            Route::parse("acme/manifests/manifests/v1"),
            Some(Route::Manifest("acme/manifests".into(), "v1".into()))
        );
        assert_eq!(Route::parse("acme/jira"), None);
        assert_eq!(Route::parse("acme/jira/manifests/"), None);
    }

    #[test]
    fn credentials_come_as_bearer_or_basic_with_the_token_as_password() {
        let basic = format!(
            "Basic {}",
            base64ct::Base64::encode_string(b"me:agt_secret")
        );
        assert_eq!(
            credential(&HeaderValue::from_str(&basic).unwrap()).as_deref(),
            Some("agt_secret")
        );
        assert_eq!(
            credential(&HeaderValue::from_static("Bearer agt_x")).as_deref(),
            Some("agt_x")
        );
        let empty = format!("Basic {}", base64ct::Base64::encode_string(b"me:"));
        assert_eq!(credential(&HeaderValue::from_str(&empty).unwrap()), None);
        assert_eq!(credential(&HeaderValue::from_static("Digest x")), None);
    }
}
