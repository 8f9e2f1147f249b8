//! What the handler tests beside each API module share: the real router over a real
//! SQLite store and file blob store in a temporary directory, an administrator's token,
//! and requests sent through `tower::ServiceExt::oneshot` (no socket). Answers are
//! snapshotted with `insta` after [`redacted`] replaces what changes from run to run.
//! Every answer is also checked against the OpenAPI document ([`check_documented`]): its
//! status and content type must be documented for its operation, and a JSON body must
//! match the documented schema, so the document cannot drift from what the API answers.

use std::sync::{Arc, LazyLock};

use agora_core::Digest;
use agora_core::api::{ArtifactRef, PublishRequest};
use agora_registry::caller::{TOKEN_PREFIX, hash_token, new_token, token_display_prefix};
use agora_registry::{Limits, Registry, TransparencyLog};
use agora_store::{FsBlobStore, MetadataStore, NewToken, Role, SqlStore};
use agora_trust::{ReleaseClaim, SigningKey};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::cache::CacheConfig;
use crate::listen::HttpLimits;
use crate::state::AppState;

/// The API over fresh stores, with an administrator.
pub struct TestApp {
    router: axum::Router,
    pub state: AppState,
    /// The administrator's token (every scope).
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_type: String,
    /// The body as JSON (`Value::Null` when empty, a string when not JSON).
    pub body: Value,
}

impl Answer {
    /// What a snapshot holds: the status and the redacted body.
    pub fn snapshot(&self) -> Value {
        json!({ "status": self.status.as_u16(), "body": redacted(&self.body) })
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with(|registry| registry).await
    }

    /// A private registry: nothing is readable without a token.
    pub async fn private() -> TestApp {
        TestApp::with(|registry| registry.with_sign_in_required(true)).await
    }

    /// The API letting pages of `origins` call it cross-origin (with `methods`).
    pub async fn with_cors(cors: Option<crate::cors::Cors>) -> TestApp {
        TestApp::build(|registry| registry, cors).await
    }

    async fn with(configure: impl FnOnce(Registry) -> Registry) -> TestApp {
        TestApp::build(configure, None).await
    }

    async fn build(
        configure: impl FnOnce(Registry) -> Registry,
        cors: Option<crate::cors::Cors>,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("agora.db").display());
        let meta = SqlStore::connect(&url).await.expect("the test database");
        let blobs = FsBlobStore::open(&dir.path().join("blobs"))
            .await
            .expect("the test blob store");
        let admin = new_token();
        agora_registry::bootstrap::ensure_admin(&meta, Some(&admin))
            .await
            .expect("the administrator");
        let log = TransparencyLog::open(&meta, "agora.test/log")
            .await
            .expect("the transparency log");
        let registry = configure(Registry::new(
            Arc::new(meta),
            Arc::new(blobs),
            log,
            Limits::default(),
        ));
        let state = AppState::new(
            Arc::new(registry),
            HttpLimits::default(),
            CacheConfig::default(),
        )
        .with_cors(cors);
        TestApp {
            router: crate::app(state.clone()),
            state,
            admin,
            _dir: dir,
        }
    }

    pub fn meta(&self) -> &dyn MetadataStore {
        self.state.registry.meta.as_ref()
    }

    /// Sends one request; `body` is sent as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).expect("a well-formed request"))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the whole body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        let answer = Answer {
            status,
            headers,
            content_type,
            body,
        };
        check_documented(&method, &path, &answer);
        answer
    }

    /// A new account with `role` and a token of `scopes` for it.
    pub async fn user(&self, username: &str, role: Role, scopes: &str) -> String {
        let user = self
            .meta()
            .create_user(username, role)
            .await
            .expect("a new user");
        self.token(user.id, scopes).await
    }

    /// Another token of `scopes` for the user `user_id`.
    pub async fn token(&self, user_id: i64, scopes: &str) -> String {
        let token = new_token();
        self.meta()
            .create_token(NewToken {
                user_id,
                name: "test".into(),
                hash: hash_token(&token),
                prefix: token_display_prefix(&token),
                scopes: scopes.into(),
                expires_at: None,
                parent_id: None,
            })
            .await
            .expect("a new token");
        token
    }

    /// Creates publisher `name` owned by `token`'s user and registers a new signing key
    /// for it; returns the key.
    pub async fn publisher(&self, token: &str, name: &str) -> SigningKey {
        let created = self
            .call(
                Method::POST,
                "/api/v1/publishers",
                Some(token),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        let key = SigningKey::generate("test").expect("a key");
        let added = self
            .call(
                Method::POST,
                &format!("/api/v1/publishers/{name}/keys"),
                Some(token),
                Some(json!({ "public_key": key.public().to_openssh() })),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{added:?}");
        key
    }

    /// Publishes `publisher/name@version` (a manifest and a module) signed by `key`.
    pub async fn publish(
        &self,
        token: &str,
        key: &SigningKey,
        publisher: &str,
        name: &str,
        version: &str,
    ) -> Answer {
        let manifest = manifest(publisher, name, version);
        let module = module(publisher, name, version);
        let digest = Digest::of(module.as_bytes());
        let upload = self
            .send(
                Request::put(format!("/api/v1/blobs/{digest}"))
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(Body::from(module.clone()))
                    .expect("an upload request"),
            )
            .await;
        assert!(upload.status.is_success(), "{upload:?}");
        let claim = ReleaseClaim::new(
            publisher,
            name,
            version,
            Digest::of(manifest.as_bytes()),
            [("plugin.wasm".to_owned(), digest)],
        );
        let request = PublishRequest {
            manifest,
            artifacts: vec![ArtifactRef {
                path: "plugin.wasm".into(),
                digest,
                size: module.len() as u64,
            }],
            signature: Some(
                serde_json::to_value(agora_trust::sign_release(&claim, key))
                    .expect("an envelope is JSON"),
            ),
        };
        self.call(
            Method::POST,
            &format!("/api/v1/plugins/{publisher}/{name}/versions"),
            Some(token),
            Some(serde_json::to_value(request).expect("a request is JSON")),
        )
        .await
    }
}

/// The OpenAPI document the server serves, as JSON.
static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(super::openapi()).expect("the OpenAPI document is JSON"));

/// `value`, or what it points to when it is a `$ref` into the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

/// The documented path template `path` matches, with its operation for `method`: of the
/// templates that match, the one with the most literal segments (as the router picks).
fn operation<'a>(doc: &'a Value, method: &Method, path: &str) -> Option<(&'a str, &'a Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    let method = method.as_str().to_ascii_lowercase();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let literal = |p: &str| !(p.starts_with('{') && p.ends_with('}'));
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| if literal(p) { p == s } else { !s.is_empty() });
            matches.then(|| (parts.iter().filter(|p| literal(p)).count(), template, item))
        })
        .max_by_key(|(literal, _, _)| *literal)
        .and_then(|(_, template, item)| Some((template.as_str(), item.get(&method)?)))
}

/// Panics unless `answer` to `method path` is documented: its status among the
/// operation's responses, its content type among that response's, its JSON body valid
/// against the documented schema. Paths and methods the document does not describe
/// (unknown paths, `/metrics`, the document itself, a method an endpoint does not take)
/// are not checked here.
pub fn check_documented(method: &Method, path: &str, answer: &Answer) {
    let doc = &*DOCUMENT;
    let Some((template, op)) = operation(doc, method, path) else {
        return;
    };
    let status = answer.status.as_str();
    let Some(response) = op["responses"].get(status) else {
        panic!(
            "{method} {path} answered {status}, which the OpenAPI document does not list for \
             {method} {template}: {answer:?}"
        );
    };
    if *method == Method::HEAD {
        return; // no body; the content type is the one GET would answer.
    }
    let response = resolve(doc, response);
    let media_type = answer.content_type.split(';').next().unwrap_or("").trim();
    let Some(content) = response["content"].as_object() else {
        assert!(
            answer.body.is_null(),
            "{method} {path} answered {status} with a body, documented without one: {answer:?}"
        );
        return;
    };
    let Some(media) = content.get(media_type) else {
        panic!(
            "{method} {path} answered {status} as {media_type:?}; the OpenAPI document lists \
             {:?}",
            content.keys().collect::<Vec<_>>()
        );
    };
    let is_json = media_type == "application/json" || media_type.ends_with("+json");
    let Some(schema) = media.get("schema").filter(|_| is_json) else {
        return;
    };
    // The schema with the document's components beside it, for its `$ref`s to resolve.
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::draft202012::new(&root).unwrap_or_else(|e| {
        panic!("the schema of {method} {template} {status} does not compile: {e}")
    });
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} with a body the OpenAPI document's schema refuses:\n{}\n{}",
        errors.join("\n"),
        answer.body
    );
}

/// The module [`TestApp::publish`] uploads for a release.
pub fn module(publisher: &str, name: &str, version: &str) -> String {
    format!("\0asm module of {publisher}/{name}@{version}")
}

/// A small valid manifest.
pub fn manifest(publisher: &str, name: &str, version: &str) -> String {
    format!(
        "api_version: agora/v1\npublisher: {publisher}\nname: {name}\nversion: {version}\n\
         description: The {name} plugin does useful things\nlicense: MIT\n\
         categories: [testing]\ntags: [example]\n\
         runtime: {{ type: wasm, module: plugin.wasm }}\n"
    )
}

/// `value` with what differs from run to run replaced by placeholders, so a snapshot
/// holds only what the API promises: times, digests of generated content, keys and
/// signatures, token secrets and prefixes, log roots and checkpoints.
pub fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_field(k, v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::String(text) => Value::String(without_random_names(text)),
        other => other.clone(),
    }
}

/// `text` with what is random in it replaced: a token's display prefix (`agora_` and
/// six hex digits) and a signing key's id (`SHA256:` and 43 base64 characters).
fn without_random_names(text: &str) -> String {
    let text = replace_after(text, TOKEN_PREFIX, 6, |b| b.is_ascii_hexdigit(), "[token]");
    replace_after(
        &text,
        "SHA256:",
        43,
        |b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/',
        "[key]",
    )
}

/// `text` with each `marker` followed by at least `min` bytes that satisfy `part`
/// replaced by `with`.
fn replace_after(
    text: &str,
    marker: &str,
    min: usize,
    part: impl Fn(u8) -> bool,
    with: &str,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = &rest[at + marker.len()..];
        let n = after.bytes().take_while(|b| part(*b)).count();
        out.push_str(&rest[..at]);
        if n >= min {
            out.push_str(with);
            rest = &after[n..];
        } else {
            out.push_str(marker);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn redact_field(key: &str, value: &Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    if let ("entry" | "body", Some(Ok(entry @ Value::Object(_)))) =
        (key, value.as_str().map(serde_json::from_str))
    {
        // A log entry is JSON in a string: shown parsed, redacted the same way.
        return redacted(&entry);
    }
    let placeholder = match key {
        k if k == "at" || k.ends_with("_at") || k.ends_with("_ms") => "[time]",
        k if k.ends_with("digest") || k.ends_with("hash") => "[digest]",
        "leaf" | "prev" => "[digest]",
        "token" | "prefix" | "secret" => "[secret]",
        "message_id" => "[id]",
        "signature" => "[signature]",
        "signer_key" | "public_key" | "fingerprint" | "key" | "keyid" => "[key]",
        "checkpoint" | "hashes" | "proof" => "[log]",
        _ => return redacted(value),
    };
    Value::String(placeholder.into())
}
