//! Content-addressed blobs: streamed upload with digest check, cacheable download with
//! ranges.

use agora_core::api::{BlobInfo, Problem};
use agora_registry::blobs::{self, Access, Uploaded};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use super::openapi::PROBLEM;
use crate::auth::{Authenticated, MaybeCaller};
use crate::error::ApiError;
use crate::extract::{ApiPath, ClientAddr};
use crate::metrics;
use crate::state::{AppState, Downloads};

/// Immutable content anyone may read: any cache may keep it forever.
pub(crate) const CACHE_FOREVER: &str = agora_store::IMMUTABLE;
/// Immutable content only some may read: only the client's own cache may keep it (a
/// shared cache or CDN would hand it to anyone asking for the URL).
pub(crate) const CACHE_PRIVATE: &str = "private, max-age=31536000, immutable";
/// The header carrying the blob's digest.
pub const DIGEST_HEADER: &str = "agora-digest";

/// Upload a blob. The body is streamed to storage and hashed on the way; it becomes
/// visible only if it matches the digest in the path. Uploading proves the caller has the
/// bytes: a release may name only blobs its publisher uploaded (or can read already), so
/// when the blob is stored already the body is still read and hashed (nothing is written)
/// unless the caller uploaded it before or can read it.
#[utoipa::path(put, path = "/api/v1/blobs/{digest}", tag = "blobs", operation_id = "upload_blob",
    params(("digest" = String, Path, description = "`sha256:` and the 64 lowercase hex digits of the content's SHA-256")),
    request_body(content_type = "application/octet-stream", description = "The blob's bytes"),
    security(("token" = [])),
    responses(
        (status = 201, description = "Stored", body = BlobInfo,
            headers(("Location" = String, description = "The blob's URL"))),
        (status = 200, description = "Already stored (the body was hashed to prove possession, or not read if the caller had uploaded it or can read it; an answer that leaves the body unread says `Connection: close`)", body = BlobInfo),
        (status = 400, description = "`digest-mismatch`: the bytes do not hash to the digest; `size-mismatch`: their length differs from `Content-Length`; `upload-interrupted`: the upload was cut off; `invalid-path`: the path cannot be read. Nothing was stored", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`: the token has no `publish:` scope for a publisher the user belongs to", body = Problem, content_type = PROBLEM),
        (status = 413, description = "`too-large`: larger than the server's limit (`limits.max_blob_bytes`); nothing was stored", body = Problem, content_type = PROBLEM)
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = blobs::parse_digest(&raw)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    match blobs::upload(
        &state.registry,
        &caller,
        &digest,
        declared,
        Box::pin(stream),
    )
    .await?
    {
        Uploaded::Known { size } => {
            Ok((StatusCode::OK, Json(BlobInfo { digest, size })).into_response())
        }
        Uploaded::Stored { size } => {
            metrics::uploaded(size);
            let mut response =
                (StatusCode::CREATED, Json(BlobInfo { digest, size })).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/blobs/{digest}")) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
    }
}

/// A requested byte range, resolved against the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    All,
    Range { start: u64, len: u64 },
    Unsatisfiable,
}

/// One `bytes=` range as written, before it meets the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `FIRST-LAST` (LAST ≥ FIRST).
    FromTo(u64, u64),
    /// `FIRST-`.
    From(u64),
    /// `-SUFFIX`: the last SUFFIX bytes.
    Suffix(u64),
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2). Anything else (several ranges,
/// other units, garbage, `LAST` before `FIRST`) is `None`: ignored, and the whole blob is
/// sent, as the RFC allows.
fn parse_range_spec(value: Option<&HeaderValue>) -> Option<RangeSpec> {
    let spec = value?.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    // Digits only (`str::parse` would take a sign).
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => None,
        (true, false) => number(last).map(RangeSpec::Suffix),
        (false, true) => number(first).map(RangeSpec::From),
        (false, false) => match (number(first)?, number(last)?) {
            (start, end) if end >= start => Some(RangeSpec::FromTo(start, end)),
            _ => None,
        },
    }
}

/// The `Range` header resolved against a blob of `size` bytes. A range is satisfiable
/// when its first byte exists (a suffix when it is not empty and neither is the blob):
/// on an empty blob no range is, so `bytes=-N` there is a 416, never an underflow.
pub fn parse_range(value: Option<&HeaderValue>, size: u64) -> Wanted {
    let Some(spec) = parse_range_spec(value) else {
        return Wanted::All;
    };
    let start = match spec {
        RangeSpec::FromTo(start, _) | RangeSpec::From(start) => start,
        RangeSpec::Suffix(suffix) => size - suffix.min(size),
    };
    let empty_suffix = matches!(spec, RangeSpec::Suffix(0));
    if start >= size || empty_suffix {
        return Wanted::Unsatisfiable;
    }
    // From here on 0 ≤ start < size, so size - 1 cannot underflow.
    let last = match spec {
        RangeSpec::FromTo(_, end) => end.min(size - 1),
        RangeSpec::From(_) | RangeSpec::Suffix(_) => size - 1,
    };
    Wanted::Range {
        start,
        len: last - start + 1,
    }
}

/// Download a blob: anyone who may see a non-removed release including it (private
/// plugins' blobs need a member's token). `HEAD` answers the same headers (`head`).
#[utoipa::path(get, path = "/api/v1/blobs/{digest}", tag = "blobs", operation_id = "download_blob",
    params(
        ("digest" = String, Path, description = "`sha256:` and the 64 lowercase hex digits of the content's SHA-256"),
        ("Range" = Option<String>, Header, description = "One range, `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`; anything else is ignored and the whole blob sent"),
        ("If-None-Match" = Option<String>, Header, description = "The blob's `ETag` (or `*`): answered `304`")
    ),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream",
            headers(
                ("ETag" = String, description = "The digest, quoted"),
                ("Agora-Digest" = String, description = "The digest"),
                ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`; `private, max-age=31536000, immutable` when not everyone may read it (a private plugin's blob, a private registry)"),
                ("Accept-Ranges" = String, description = "`bytes`")
            )),
        (status = 307, description = "With `[blobs] downloads = \"redirect\"` and S3 storage: the bytes are at `Location`, a presigned URL valid for `[blobs] redirect_ttl_secs` (send the same `Range` there). Check them against the digest",
            headers(
                ("Location" = String, description = "The presigned URL"),
                ("Agora-Digest" = String, description = "The digest"),
                ("Cache-Control" = String, description = "`public` (or `private`) `max-age` of half the URL's lifetime")
            )),
        (status = 206, description = "The requested range", content_type = "application/octet-stream",
            headers(
                ("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"),
                ("ETag" = String, description = "The digest, quoted"),
                ("Agora-Digest" = String, description = "The digest")
            )),
        (status = 304, description = "Not modified (`If-None-Match` matched)",
            headers(("ETag" = String, description = "The digest, quoted"))),
        (status = 404, description = "`not-found`: no such blob, or none the caller may read", body = Problem, content_type = PROBLEM),
        (status = 416, description = "`range-not-satisfiable`: no byte of the blob is in the range", body = Problem, content_type = PROBLEM,
            headers(("Content-Range" = String, description = "`bytes */SIZE`")))
    ))]
pub async fn download(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ClientAddr(client): ClientAddr,
    method: Method,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let digest = blobs::parse_digest(&raw)?;
    let access = blobs::access(
        &state.registry,
        &caller.viewer(),
        caller.caller.as_ref(),
        &digest,
        method == Method::HEAD,
    )
    .await?;
    let etag = format!("\"{digest}\"");
    // Only what anyone at all could read may sit in shared caches.
    let shared = matches!(access, Access::Read { public: true });
    let cache_control = if shared { CACHE_FOREVER } else { CACHE_PRIVATE };
    let mut common = HeaderMap::new();
    common.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        common.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        common.insert(DIGEST_HEADER, v);
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    if let Downloads::Redirect { ttl } = state.downloads
        && method == Method::GET
        && matches!(access, Access::Read { .. })
        && let Some(url) = state
            .registry
            .blobs
            .presign_get(&digest, ttl, cache_control)
            .await?
        && let Ok(location) = HeaderValue::from_str(&url)
    {
        // The client follows it with its Range header; the digest header stays here,
        // and the client checks every byte it gets against it.
        blobs::count_download(&state.registry, client, digest);
        common.insert(header::LOCATION, location);
        common.remove(header::ACCEPT_RANGES);
        // A cache may keep the redirect only while the URL it points to still works.
        let keep = (ttl.as_secs() / 2).max(1);
        let redirect_cache = if shared {
            format!("public, max-age={keep}")
        } else {
            format!("private, max-age={keep}")
        };
        if let Ok(v) = HeaderValue::from_str(&redirect_cache) {
            common.insert(header::CACHE_CONTROL, v);
        }
        metrics::redirected();
        return Ok((StatusCode::TEMPORARY_REDIRECT, common).into_response());
    }
    let missing = || {
        tracing::error!(%digest, "metadata refers to a blob the blob store does not have");
        ApiError::not_found(format!("blob {digest} not found"))
    };
    // The usual download, the whole blob: one read of the store gives the size and the
    // bytes (one request to a bucket instead of a HEAD and a GET).
    let whole = if method == Method::GET && headers.get(header::RANGE).is_none() {
        Some(
            state
                .registry
                .blobs
                .get_whole(&digest)
                .await?
                .ok_or_else(missing)?,
        )
    } else {
        None
    };
    let size = match &whole {
        Some(blob) => blob.size,
        None => state
            .registry
            .blobs
            .size(&digest)
            .await?
            .ok_or_else(missing)?,
    };
    let (status, start, len) = match parse_range(headers.get(header::RANGE), size) {
        Wanted::All => (StatusCode::OK, 0, size),
        Wanted::Range { start, len } => (StatusCode::PARTIAL_CONTENT, start, len),
        Wanted::Unsatisfiable => {
            return Err(agora_store::BlobError::RangeNotSatisfiable { size }.into());
        }
    };
    common.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    common.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        common.insert(header::CONTENT_RANGE, v);
    }
    if method == Method::HEAD {
        return Ok((status, common).into_response());
    }
    let blob = match whole {
        Some(blob) => blob,
        None => state
            .registry
            .blobs
            .get(&digest, start, len)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("blob {digest} not found")))?,
    };
    if start == 0 && matches!(access, Access::Read { .. }) {
        blobs::count_download(&state.registry, client, digest);
    }
    metrics::downloaded(len);
    Ok((status, common, Body::from_stream(blob.body)).into_response())
}

/// Whether a blob exists, with its size and digest headers (no body). Answers as `GET`
/// does; besides, a publisher may HEAD a blob they uploaded themselves, released or not
/// (to skip uploading it again). Anyone else's unreleased or private blob is `404`.
#[utoipa::path(head, path = "/api/v1/blobs/{digest}", tag = "blobs", operation_id = "head_blob",
    params(
        ("digest" = String, Path, description = "`sha256:` and the 64 lowercase hex digits of the content's SHA-256"),
        ("Range" = Option<String>, Header, description = "As for `GET`"),
        ("If-None-Match" = Option<String>, Header, description = "As for `GET`")
    ),
    responses(
        (status = 200, description = "The blob exists; no body",
            headers(
                ("Content-Length" = u64, description = "The blob's size"),
                ("ETag" = String, description = "The digest, quoted"),
                ("Agora-Digest" = String, description = "The digest")
            )),
        (status = 206, description = "The range exists; no body",
            headers(("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"))),
        (status = 304, description = "Not modified (`If-None-Match` matched)"),
        (status = 404, description = "`not-found`: no such blob, or none the caller may see (no body)", body = Problem, content_type = PROBLEM),
        (status = 416, description = "`range-not-satisfiable`: no byte of the blob is in the range (no body)", body = Problem, content_type = PROBLEM,
            headers(("Content-Range" = String, description = "`bytes */SIZE`")))
    ))]
pub async fn head(
    state: State<AppState>,
    caller: MaybeCaller,
    client: ClientAddr,
    method: Method,
    path: ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    download(state, caller, client, method, path, headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(spec: &str, size: u64) -> Option<(u64, u64)> {
        match parse_range(Some(&HeaderValue::from_str(spec).unwrap()), size) {
            Wanted::Range { start, len } => Some((start, len)),
            Wanted::All => None,
            Wanted::Unsatisfiable => Some((u64::MAX, 0)),
        }
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(range("bytes=90-200", 100), Some((90, 10)));
        assert_eq!(range("bytes=50-", 100), Some((50, 50)));
        assert_eq!(range("bytes=-10", 100), Some((90, 10)));
        assert_eq!(range("bytes=-500", 100), Some((0, 100)));
        assert_eq!(range("bytes=100-", 100), Some((u64::MAX, 0)));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
        assert_eq!(range("bytes=9-3", 100), None);
        assert_eq!(range("bytes=x-y", 100), None);
    }

    #[test]
    fn no_range_of_an_empty_blob_is_satisfiable() {
        for spec in [
            "bytes=-1",
            "bytes=-18446744073709551615",
            "bytes=0-",
            "bytes=0-0",
            "bytes=-0",
            "bytes=5-10",
        ] {
            assert_eq!(range(spec, 0), Some((u64::MAX, 0)), "{spec}");
        }
        // A header the server ignores is ignored for an empty blob too: the whole (empty)
        // blob, 200.
        for spec in [
            "bytes=x-y",
            "bytes=-",
            "bytes=9-3",
            "bytes=0-1,2-3",
            "items=-1",
        ] {
            assert_eq!(range(spec, 0), None, "{spec}");
        }
    }

    #[test]
    fn malformed_ranges_are_ignored_whatever_the_size() {
        for spec in [
            "bytes=+5-",
            "bytes=200-abc",
            "bytes=-+3",
            "bytes=1-2-3",
            "bytes=",
        ] {
            assert_eq!(range(spec, 100), None, "{spec}");
        }
        assert_eq!(range("bytes=-0", 100), Some((u64::MAX, 0)));
        assert_eq!(range("bytes=99-", 100), Some((99, 1)));
        assert_eq!(range("bytes=0-18446744073709551615", 100), Some((0, 100)));
        assert_eq!(range("bytes=-1", 1), Some((0, 1)));
        assert_eq!(range(" bytes= 2 - 4 ", 10), Some((2, 3)));
    }
}

#[cfg(test)]
mod through_the_router {
    use agora_core::Digest;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};

    use crate::api::testing::{TestApp, module};

    #[tokio::test]
    async fn a_published_blob_downloads_whole_in_ranges_and_revalidates() {
        let app = TestApp::new().await;
        let key = app.publisher(&app.admin, "acme").await;
        app.publish(&app.admin, &key, "acme", "hello", "1.0.0")
            .await;
        let bytes = module("acme", "hello", "1.0.0");
        let path = format!("/api/v1/blobs/{}", Digest::of(bytes.as_bytes()));

        let whole = app.get(&path, None).await;
        assert_eq!(whole.status, StatusCode::OK);
        assert_eq!(whole.body, bytes.as_str());
        let etag = whole.headers[header::ETAG].clone();

        let range = app
            .send(
                Request::get(&path)
                    .header(header::RANGE, "bytes=1-4")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(range.body, "asm ");

        let unchanged = app
            .send(
                Request::get(&path)
                    .header(header::IF_NONE_MATCH, etag)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);

        let beyond = app
            .send(
                Request::get(&path)
                    .header(header::RANGE, "bytes=5000-")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        insta::assert_json_snapshot!("range_beyond_the_end", beyond.snapshot());
    }

    #[tokio::test]
    async fn uploads_must_match_their_digest_and_unreleased_blobs_stay_unseen() {
        let app = TestApp::new().await;
        let claimed = Digest::of(b"what the path says");
        let mismatch = app
            .send(
                Request::put(format!("/api/v1/blobs/{claimed}"))
                    .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
                    .body(Body::from("other bytes"))
                    .unwrap(),
            )
            .await;
        insta::assert_json_snapshot!("upload_digest_mismatch", mismatch.snapshot());

        let bytes = b"unreleased";
        let digest = Digest::of(bytes);
        let stored = app
            .send(
                Request::put(format!("/api/v1/blobs/{digest}"))
                    .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
                    .body(Body::from(&bytes[..]))
                    .unwrap(),
            )
            .await;
        insta::assert_json_snapshot!("upload", stored.snapshot());
        let unseen = app.get(&format!("/api/v1/blobs/{digest}"), None).await;
        assert_eq!(unseen.status, StatusCode::NOT_FOUND, "{unseen:?}");

        let bad = app.get("/api/v1/blobs/md5:abc", None).await;
        insta::assert_json_snapshot!("bad_digest", bad.snapshot());
        let anonymous = app
            .send(
                Request::put(format!("/api/v1/blobs/{digest}"))
                    .body(Body::from(&bytes[..]))
                    .unwrap(),
            )
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }

    /// Bytes in the blob store with no record of who uploaded them (an upload a crash cut
    /// between storing the file and recording it) are no free claim: an upload naming
    /// their digest must still send them.
    #[tokio::test]
    async fn stored_bytes_with_no_record_are_claimed_only_by_sending_them() {
        let app = TestApp::new().await;
        let bytes = b"left behind by a crash";
        let digest = Digest::of(bytes);
        let body: agora_store::ByteStream = Box::pin(futures_util::stream::once(async {
            Ok(bytes::Bytes::from_static(b"left behind by a crash"))
        }));
        app.state
            .registry
            .blobs
            .put(&digest, body, 1024)
            .await
            .unwrap();
        let put = |content: &'static [u8]| {
            Request::put(format!("/api/v1/blobs/{digest}"))
                .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
                .body(Body::from(content))
                .unwrap()
        };
        let guessed = app.send(put(b"a guess")).await;
        assert_eq!(guessed.status, StatusCode::BAD_REQUEST, "{guessed:?}");
        assert_eq!(guessed.body["type"], "urn:agora:problem:digest-mismatch");
        let meta = &app.state.registry.meta;
        assert!(
            meta.blob_size(&digest).await.unwrap().is_none(),
            "a guess recorded the blob"
        );
        let sent = app.send(put(bytes)).await;
        assert_eq!(sent.status, StatusCode::CREATED, "{sent:?}");
        assert_eq!(
            meta.blob_size(&digest).await.unwrap(),
            Some(bytes.len() as u64)
        );
    }
}
