//! Completes the OpenAPI document with the answers that come from outside the handlers.
//!
//! Each handler's annotation lists what its use case answers (a `403`, a `404`, a `409`...).
//! What every route can answer comes from the layers and extractors every route shares,
//! and is added here once, from the shape of each operation, so no handler can forget it:
//!
//! - `400` when a path segment, a query parameter or a JSON body cannot be read
//!   (`crate::extract`: `invalid-path`, `invalid-query`, `invalid-body`);
//! - `401` everywhere but the probes: a token that is unknown, expired or revoked is
//!   refused wherever one is read, and a private registry needs one on every route;
//! - `413` and `415` for a JSON body too large or not sent as JSON (`invalid-body`);
//! - `422` everywhere: a control character in the path or query is refused before any
//!   handler runs (`crate::text`), besides every field a handler checks;
//! - `500` everywhere (`crate::error::catch_panics`, a failed store) and `503` everywhere
//!   (a connection over the server's caps, `crate::listen`).
//!
//! A status an annotation documents already is left as the annotation wrote it.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM: &str = "application/problem+json";

/// The shared error answers, as `#/components/responses/<name>`.
const UNAUTHORIZED: &str = "Unauthorized";
const TOO_LARGE: &str = "BodyTooLarge";
const UNSUPPORTED: &str = "BodyNotJson";
const INVALID: &str = "InvalidRequest";
const INTERNAL: &str = "Internal";
const UNAVAILABLE: &str = "Unavailable";

/// A problem document answer described by `description`.
pub fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build()
}

fn shared_responses() -> Vec<(&'static str, Response)> {
    vec![
        (
            UNAUTHORIZED,
            problem(
                "`unauthorized`: the token is unknown, expired or revoked; or the operation \
                 (or, in a private registry, every operation) needs a token and none was sent.",
            )
            .header(
                "WWW-Authenticate",
                string_header("`Bearer realm=\"agora\"`"),
            )
            .build(),
        ),
        (
            TOO_LARGE,
            problem(
                "`invalid-body`: the JSON body is larger than the server's limit \
                 (`limits.max_json_bytes`, 1 MiB by default).",
            )
            .build(),
        ),
        (
            UNSUPPORTED,
            problem("`invalid-body`: the body was not sent as `Content-Type: application/json`.")
                .build(),
        ),
        (
            INVALID,
            problem(
                "`invalid-request`: one or more fields are invalid; `errors` names each with \
                 what would be accepted. Also a JSON body of the wrong shape, a bad name, \
                 version, id or digest in the path, a bad parameter value, or a control \
                 character in the path, a query parameter or a JSON string.",
            )
            .build(),
        ),
        (
            INTERNAL,
            problem("`internal`: the server failed; its log has the details.").build(),
        ),
        (
            UNAVAILABLE,
            problem(
                "`unavailable`: the database is down or unreachable, its or the blob \
                 storage's space is full, or the server is at its connection limit; try \
                 again shortly.",
            )
            .header("Retry-After", string_header("Seconds to wait: `1`."))
            .build(),
        ),
    ]
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds to `doc` the answers every operation can give besides its handler's own (see the
/// module documentation).
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, response) in shared_responses() {
        components.responses.insert(name.into(), response.into());
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let probe = matches!(path.as_str(), "/health" | "/ready");
        for op in operations_mut(item) {
            complete_operation(op, probe);
        }
    }
}

fn complete_operation(op: &mut Operation, probe: bool) {
    let has = |op: &Operation, place: ParameterIn| {
        op.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let json_body = op.request_body.as_ref().is_some_and(|body| match body {
        RefOr::T(body) => body.content.contains_key("application/json"),
        RefOr::Ref(_) => false,
    });
    let mut unreadable = Vec::new();
    if has(op, ParameterIn::Path) {
        unreadable
            .push("`invalid-path`: a path segment cannot be read (e.g. bad percent-encoding)");
    }
    if has(op, ParameterIn::Query) {
        unreadable.push(
            "`invalid-query`: a query parameter is unknown, or its value cannot be read as its type",
        );
    }
    if json_body {
        unreadable.push("`invalid-body`: the body is not JSON");
    }
    let responses = &mut op.responses.responses;
    if !unreadable.is_empty() {
        let description = format!("{}.", unreadable.join("; "));
        responses
            .entry("400".into())
            .or_insert_with(|| problem(&description).build().into());
    }
    let mut shared = vec![("422", INVALID), ("500", INTERNAL), ("503", UNAVAILABLE)];
    if !probe {
        shared.push(("401", UNAUTHORIZED));
    }
    if json_body {
        shared.extend([("413", TOO_LARGE), ("415", UNSUPPORTED)]);
    }
    for (status, name) in shared {
        responses
            .entry(status.into())
            .or_insert_with(|| Ref::from_response_name(name).into());
    }
}
