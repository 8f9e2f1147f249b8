//! Callbacks: a plugin calling the host's core through the runner.
//!
//! A plugin that declares `callbacks` in its manifest (and whose policy allows them) may
//! `POST /v1/callbacks/{name}` with a JSON body: a WASM plugin to `http://agora-core`
//! (its outbound-HTTP hook hands such requests here instead of the network), a native
//! plugin on the Unix socket `AGORA_CORE_SOCKET` the runner serves in its work directory.
//! Each callback is signed with the launch's callback key (`AGORA_CALLBACK_KEY`), derived
//! from the core's secret, the launch id, the plugin and its code digest
//! ([`agora_contract::derive_launch_key`]), so the core can check it on its own.
//!
//! For every callback the [`Callbacks`] gate of the launch, in this order: refuses a body
//! over [`MAX_CALLBACK_BODY`] (413), a name the grant does not hold (403), a missing, bad
//! or stale signature (401), a callback when no core is configured (503), more than
//! [`MAX_CONCURRENT_CALLBACKS`] at once (429); then forwards it to the [`CoreHandler`]
//! within [`CALLBACK_TIMEOUT`] (504 past it, 502 when the core cannot be reached). Every
//! refusal is audited as `callback_denied`, every forwarded call as `callback`.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_contract::{
    CALLBACK_PATH_PREFIX, Key, LAUNCH_HEADER, PLUGIN_DIGEST_HEADER, PLUGIN_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde_json::json;
use tokio::net::UnixListener;

use crate::RunError;
use crate::audit::{AuditLog, Kind, Subject};
use crate::policy::Grant;

/// Largest callback body a plugin may send, and largest answer the runner takes from the
/// core.
pub const MAX_CALLBACK_BODY: usize = 1024 * 1024;
/// Callbacks one launch may have in flight at once; more are refused with 429.
pub const MAX_CONCURRENT_CALLBACKS: usize = 8;
/// How long the core has to answer one callback.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest core secret accepted, in bytes.
pub const MIN_CORE_SECRET: usize = 32;

/// The secret the core derives every launch's callback key from. Never printed.
#[derive(Clone)]
pub struct CoreSecret(Arc<[u8]>);

impl fmt::Debug for CoreSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CoreSecret(..)")
    }
}

impl CoreSecret {
    /// At least [`MIN_CORE_SECRET`] bytes.
    pub fn new(bytes: &[u8]) -> Result<CoreSecret, String> {
        if bytes.len() < MIN_CORE_SECRET {
            return Err(format!(
                "the core secret is {} bytes; at least {MIN_CORE_SECRET} are needed (e.g. `openssl rand -hex 32`)",
                bytes.len()
            ));
        }
        Ok(CoreSecret(bytes.into()))
    }

    /// The contents of `path` without trailing line breaks, as bytes (a hex secret is used
    /// as its text, not decoded).
    pub fn from_file(path: &Path) -> Result<CoreSecret, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the core secret {}: {e}", path.display()))?;
        let end = bytes
            .iter()
            .rposition(|b| !b"\r\n".contains(b))
            .map_or(0, |i| i + 1);
        CoreSecret::new(&bytes[..end]).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One callback as the runner forwards it to the core.
#[derive(Debug, Clone)]
pub struct CoreCall {
    /// `publisher/name`.
    pub plugin: String,
    pub version: String,
    /// The digest of the plugin's code, `sha256:<hex>`.
    pub digest: String,
    /// The launch id the callback key was derived for.
    pub launch: String,
    /// The callback's name (`notes.add`).
    pub name: String,
    pub body: Bytes,
    /// The plugin's `Agora-Timestamp` and `Agora-Signature`, for the core to check with
    /// [`agora_contract::Key::verify_callback`] under the key it derives itself.
    pub timestamp: String,
    pub signature: String,
}

impl CoreCall {
    /// `publisher/name@version`, as the callback key is derived for.
    pub fn plugin_version(&self) -> String {
        format!("{}@{}", self.plugin, self.version)
    }
}

/// The core's answer to a callback.
#[derive(Debug, Clone)]
pub struct CoreAnswer {
    pub status: u16,
    /// Defaults to `application/json`.
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// The boxed future a [`CoreHandler`] returns.
pub type CoreFuture<'a> = Pin<Box<dyn Future<Output = Result<CoreAnswer, String>> + Send + 'a>>;

/// Where callbacks go: the host's core. An error is the reason the core could not be
/// reached (the plugin gets 502).
pub trait CoreHandler: Send + Sync {
    fn call(&self, call: CoreCall) -> CoreFuture<'_>;
}

/// The core a runner sends callbacks to: its secret and its handler.
#[derive(Clone)]
pub struct CoreLink {
    pub secret: CoreSecret,
    pub handler: Arc<dyn CoreHandler>,
}

impl fmt::Debug for CoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreLink")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// A [`CoreHandler`] that forwards each callback over HTTP(S): `POST
/// URL/v1/callbacks/{name}` with the JSON body and the headers `Agora-Launch`,
/// `Agora-Plugin` (`publisher/name@version`), `Agora-Plugin-Digest`, `Agora-Timestamp`
/// and `Agora-Signature`. HTTPS checks the server against the Web PKI roots.
#[derive(Debug, Clone)]
pub struct HttpCore {
    base: String,
}

impl HttpCore {
    /// `url`: `http://` or `https://`, with an optional path prefix.
    pub fn new(url: &str) -> Result<HttpCore, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("the core URL `{url}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => {}
            _ => {
                return Err(format!(
                    "the core URL `{url}` must start with http:// or https:// and name a host"
                ));
            }
        }
        if uri.query().is_some() {
            return Err(format!("the core URL `{url}` must not have a query"));
        }
        Ok(HttpCore {
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    async fn send(&self, call: CoreCall) -> Result<CoreAnswer, String> {
        let url = format!("{}{}", self.base, agora_contract::callback_path(&call.name));
        let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let request = http::Request::post(uri)
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(LAUNCH_HEADER, &call.launch)
            .header(PLUGIN_HEADER, call.plugin_version())
            .header(PLUGIN_DIGEST_HEADER, &call.digest)
            .header(TIMESTAMP_HEADER, &call.timestamp)
            .header(SIGNATURE_HEADER, &call.signature)
            .body(
                Full::new(call.body)
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .map_err(|e| format!("cannot build the request to {url}: {e}"))?;
        let options = wasmtime_wasi_http::RequestOptions {
            connect_timeout: Some(CALLBACK_TIMEOUT),
            first_byte_timeout: Some(CALLBACK_TIMEOUT),
            between_bytes_timeout: Some(CALLBACK_TIMEOUT),
        };
        let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
            .await
            .map_err(|e| format!("cannot reach the core at {url}: {e}"))?;
        let driver = tokio::spawn(io);
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_CALLBACK_BODY).collect().await;
        driver.abort();
        let body = body
            .map_err(|e| format!("cannot read the core's answer from {url}: {e}"))?
            .to_bytes();
        Ok(CoreAnswer {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
        })
    }
}

impl CoreHandler for HttpCore {
    fn call(&self, call: CoreCall) -> CoreFuture<'_> {
        Box::pin(self.send(call))
    }
}

/// The callbacks of one launch: who may call what, with which key, to which core.
pub(crate) struct Callbacks {
    subject: Subject,
    grant: Arc<Grant>,
    audit: AuditLog,
    launch: String,
    key: Key,
    core: Option<CoreLink>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// A callback's answer to the plugin.
pub(crate) type Answer = http::Response<Bytes>;

fn problem(status: u16, title: &str, detail: &str) -> Answer {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, agora_contract::PROBLEM_JSON)
        .body(Bytes::from(agora_contract::problem_json(
            status, title, detail,
        )))
        .expect("a status and a static header make a response")
}

/// Untrusted text for the audit log and problem details: at most 100 characters.
fn shown(text: &str) -> String {
    text.chars().take(100).collect()
}

impl Callbacks {
    /// A new launch of `subject`: a fresh launch id, and its callback key (derived from the
    /// core's secret; random when there is no core, since nothing could check it).
    pub fn new(
        subject: Subject,
        grant: Arc<Grant>,
        audit: AuditLog,
        core: Option<CoreLink>,
    ) -> Result<Callbacks, RunError> {
        let mut launch = [0u8; 16];
        getrandom::fill(&mut launch)
            .map_err(|e| RunError::Sandbox(format!("no randomness for the launch id: {e}")))?;
        let launch = hex::encode(launch);
        let key = match &core {
            Some(core) => agora_contract::derive_launch_key(
                core.secret.bytes(),
                &launch,
                &format!("{}@{}", subject.plugin, subject.version),
                &subject.digest,
            ),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| {
                    RunError::Sandbox(format!("no randomness for the callback key: {e}"))
                })?;
                Key::from_bytes(bytes)
            }
        };
        Ok(Callbacks {
            subject,
            grant,
            audit,
            launch,
            key,
            core,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLBACKS)),
        })
    }

    /// The launch id the key was derived for.
    pub fn launch(&self) -> &str {
        &self.launch
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Whether the plugin may make any callback: only then does it get the key (and, native,
    /// the socket).
    pub fn any_granted(&self) -> bool {
        !self.grant.callbacks.is_empty()
    }

    fn deny(&self, name: &str, status: u16, title: &str, reason: &str) -> Answer {
        self.audit.record(
            Kind::CallbackDenied,
            &self.subject,
            json!({"callback": shown(name), "status": status, "reason": reason}),
        );
        problem(status, title, reason)
    }

    /// Handles one callback request from the plugin.
    pub async fn handle<B>(&self, request: http::Request<B>) -> Answer
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        // The body is read first, whatever the answer: a WASM guest still writing it
        // would see its request fail instead of reading the refusal.
        let named = path.strip_prefix(CALLBACK_PATH_PREFIX).unwrap_or("");
        let body = match Limited::new(body, MAX_CALLBACK_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) if e.to_string().contains("length limit exceeded") => {
                return self.deny(
                    named,
                    413,
                    "Content Too Large",
                    &format!("callback bodies are limited to {MAX_CALLBACK_BODY} bytes"),
                );
            }
            Err(e) => {
                return self.deny(
                    named,
                    400,
                    "Bad Request",
                    &format!("cannot read the body: {}", shown(&e.to_string())),
                );
            }
        };
        let Some(name) = path.strip_prefix(CALLBACK_PATH_PREFIX) else {
            return self.deny(
                "",
                404,
                "Not Found",
                &format!(
                    "`{}` is not a callback; callbacks are POST {CALLBACK_PATH_PREFIX}NAME",
                    shown(path)
                ),
            );
        };
        let name = name.to_owned();
        if parts.method != http::Method::POST {
            return self.deny(
                &name,
                405,
                "Method Not Allowed",
                "callbacks are POST requests with a JSON body",
            );
        }
        if !self.grant.allows_callback(&name) {
            let granted = if self.grant.callbacks.is_empty() {
                "none".to_owned()
            } else {
                self.grant.callbacks.join(", ")
            };
            return self.deny(
                &name,
                403,
                "Forbidden",
                &format!(
                    "the callback `{}` is not among those this plugin declares and the policy allows ({granted})",
                    shown(&name)
                ),
            );
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (timestamp, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        let verdict = self.key.verify_callback(
            "POST",
            path,
            timestamp.as_deref(),
            signature.as_deref(),
            &body,
            crate::unix_now(),
        );
        if let Err(why) = verdict {
            return self.deny(&name, 401, "Unauthorized", &why.to_string());
        }
        if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            return self.deny(&name, 400, "Bad Request", "the body is not JSON");
        }
        let Some(core) = &self.core else {
            return self.deny(
                &name,
                503,
                "Service Unavailable",
                "this runner has no core to call back (the host configures one: agora run --core-url)",
            );
        };
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            return self.deny(
                &name,
                429,
                "Too Many Requests",
                &format!("at most {MAX_CONCURRENT_CALLBACKS} callbacks of one launch at once"),
            );
        };
        let call = CoreCall {
            plugin: self.subject.plugin.clone(),
            version: self.subject.version.clone(),
            digest: self.subject.digest.clone(),
            launch: self.launch.clone(),
            name: name.clone(),
            body,
            timestamp: timestamp.unwrap_or_default(),
            signature: signature.unwrap_or_default(),
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(CALLBACK_TIMEOUT, core.handler.call(call)).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (answer, error) = match answer {
            Ok(Ok(answer)) if answer.body.len() <= MAX_CALLBACK_BODY => {
                let response = http::Response::builder()
                    .status(answer.status)
                    .header(
                        http::header::CONTENT_TYPE,
                        answer.content_type.as_deref().unwrap_or("application/json"),
                    )
                    .body(answer.body);
                match response {
                    Ok(response) => (response, None),
                    Err(e) => (
                        problem(502, "Bad Gateway", "the core's answer is not usable"),
                        Some(format!("the core's answer is not usable: {e}")),
                    ),
                }
            }
            Ok(Ok(_)) => (
                problem(502, "Bad Gateway", "the core's answer is too large"),
                Some(format!(
                    "the core answered more than {MAX_CALLBACK_BODY} bytes"
                )),
            ),
            Ok(Err(e)) => (
                problem(502, "Bad Gateway", "the core cannot be reached"),
                Some(e),
            ),
            Err(_) => (
                problem(
                    504,
                    "Gateway Timeout",
                    &format!(
                        "the core did not answer within {} s",
                        CALLBACK_TIMEOUT.as_secs()
                    ),
                ),
                Some("timeout".to_owned()),
            ),
        };
        let mut fields = json!({"callback": name, "status": answer.status().as_u16(),
                                "duration_ms": duration_ms});
        if let Some(error) = error {
            tracing::warn!(plugin = %self.subject.plugin, callback = %name, "callback failed: {error}");
            fields["error"] = error.into();
        }
        self.audit.record(Kind::Callback, &self.subject, fields);
        answer
    }
}

/// Serves `callbacks` on a Unix socket at `socket` (a native plugin's
/// `AGORA_CORE_SOCKET`) until the returned handle is dropped.
pub(crate) fn serve_socket(
    socket: &Path,
    callbacks: Arc<Callbacks>,
) -> std::io::Result<crate::egress::ProxyHandle> {
    let listener = UnixListener::bind(socket)?;
    // The plugin runs as another uid and must be able to connect.
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { break };
                    // Connections beyond the callbacks in flight would only wait: a few
                    // more than those are served, the rest closed.
                    if connections.len() >= 4 * MAX_CONCURRENT_CALLBACKS {
                        continue;
                    }
                    let callbacks = callbacks.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let callbacks = callbacks.clone();
                            async move {
                                let answer = callbacks.handle(request).await;
                                Ok::<_, std::convert::Infallible>(answer.map(Full::new))
                            }
                        });
                        let connection = hyper::server::conn::http1::Builder::new()
                            .header_read_timeout(Duration::from_secs(10))
                            .timer(hyper_util::rt::TokioTimer::new())
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                        let _ = tokio::time::timeout(CALLBACK_TIMEOUT * 3, connection).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(crate::egress::ProxyHandle::new(task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{HostPolicy, Mode};
    use agora_core::manifest::Manifest;

    struct Recorder(std::sync::Mutex<Vec<CoreCall>>);

    impl CoreHandler for Recorder {
        fn call(&self, call: CoreCall) -> CoreFuture<'_> {
            Box::pin(async move {
                self.0.lock().unwrap().push(call);
                Ok(CoreAnswer {
                    status: 201,
                    content_type: None,
                    body: Bytes::from_static(b"{\"id\":1}"),
                })
            })
        }
    }

    fn gate(core: bool) -> (Callbacks, Arc<Recorder>, crate::audit::Captured) {
        let manifest = Manifest::from_yaml(
            "api_version: agora/v1\npublisher: acme\nname: notes\nversion: 1.0.0\n\
             description: d\nlicense: MIT\nruntime: { type: wasm, module: p.wasm }\n\
             callbacks: [notes.add]\n",
        )
        .unwrap();
        let policy = HostPolicy {
            mode: Mode::Open,
            callbacks: vec!["notes.*".into()],
            ..HostPolicy::default()
        };
        let grant = Arc::new(policy.admit(&manifest).unwrap());
        let recorder = Arc::new(Recorder(Default::default()));
        let (audit, captured) = AuditLog::capturing();
        let subject = Subject {
            plugin: "acme/notes".into(),
            version: "1.0.0".into(),
            digest: "sha256:ab".into(),
            runtime: "wasm",
        };
        let link = core.then(|| CoreLink {
            secret: CoreSecret::new(&[7; 32]).unwrap(),
            handler: recorder.clone(),
        });
        let gate = Callbacks::new(subject, grant, audit, link).unwrap();
        (gate, recorder, captured)
    }

    fn request(key: &Key, name: &str, body: &'static [u8]) -> http::Request<Full<Bytes>> {
        let path = agora_contract::callback_path(name);
        let now = crate::unix_now();
        http::Request::post(format!("http://agora-core{path}"))
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(
                SIGNATURE_HEADER,
                key.sign_callback("POST", &path, now, body),
            )
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    #[tokio::test]
    async fn a_granted_signed_callback_reaches_the_core_with_the_launch() {
        let (gate, recorder, captured) = gate(true);
        let answer = gate
            .handle(request(gate.key(), "notes.add", b"{\"text\":\"hi\"}"))
            .await;
        assert_eq!(answer.status(), 201);
        assert_eq!(answer.body().as_ref(), b"{\"id\":1}");
        let calls = recorder.0.lock().unwrap();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.plugin_version(), "acme/notes@1.0.0");
        assert_eq!(call.launch, gate.launch());
        // The core finds the same key on its own.
        let key = agora_contract::derive_launch_key(
            &[7; 32],
            &call.launch,
            &call.plugin_version(),
            &call.digest,
        );
        assert_eq!(
            key.verify_callback(
                "POST",
                "/v1/callbacks/notes.add",
                Some(&call.timestamp),
                Some(&call.signature),
                &call.body,
                crate::unix_now()
            ),
            Ok(())
        );
        let (events, _) = captured.take();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["event"], "callback");
        assert_eq!(events[0]["callback"], "notes.add");
        assert_eq!(events[0]["status"], 201);
    }

    #[tokio::test]
    async fn undeclared_unsigned_oversized_and_coreless_callbacks_are_refused_and_audited() {
        let (gate, recorder, captured) = gate(true);
        let cases: [(http::Request<Full<Bytes>>, u16); 4] = [
            (request(gate.key(), "notes.delete", b"{}"), 403),
            (request(&Key::from_bytes([1; 32]), "notes.add", b"{}"), 401),
            (request(gate.key(), "notes.add", b"not json"), 400),
            (
                http::Request::get("http://agora-core/v1/callbacks/notes.add")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
                405,
            ),
        ];
        for (request, status) in cases {
            let answer = gate.handle(request).await;
            assert_eq!(answer.status(), status);
            assert_eq!(
                answer.headers()[http::header::CONTENT_TYPE],
                agora_contract::PROBLEM_JSON
            );
        }
        // A request signature (domain agora-v1) is no callback signature.
        let path = "/v1/callbacks/notes.add";
        let now = crate::unix_now();
        let forged = http::Request::post(format!("http://agora-core{path}"))
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, gate.key().sign("POST", path, now, b"{}"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        assert_eq!(gate.handle(forged).await.status(), 401);
        let big = vec![b' '; MAX_CALLBACK_BODY + 1];
        let oversized = http::Request::post(format!("http://agora-core{path}"))
            .body(Full::new(Bytes::from(big)))
            .unwrap();
        assert_eq!(gate.handle(oversized).await.status(), 413);
        assert!(recorder.0.lock().unwrap().is_empty());
        let (events, _) = captured.take();
        assert_eq!(events.len(), 6);
        assert!(events.iter().all(|e| e["event"] == "callback_denied"));
        assert_eq!(events[0]["callback"], "notes.delete");
        assert!(
            events[0]["reason"]
                .as_str()
                .unwrap()
                .contains("not among those this plugin declares")
        );

        let (coreless, _, captured) = self::gate(false);
        let answer = coreless
            .handle(request(coreless.key(), "notes.add", b"{}"))
            .await;
        assert_eq!(answer.status(), 503);
        let detail: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
        assert!(
            detail["detail"]
                .as_str()
                .unwrap()
                .contains("no core to call back")
        );
        assert_eq!(captured.take().0[0]["event"], "callback_denied");
    }

    #[tokio::test]
    async fn http_core_posts_the_callback_with_the_launch_headers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&seen).contains("{\"text\":\"hi\"}") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                seen.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(
                    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                      content-length: 8\r\nconnection: close\r\n\r\n{\"id\":7}",
                )
                .await
                .unwrap();
            String::from_utf8(seen).unwrap().to_ascii_lowercase()
        });
        let core = HttpCore::new(&format!("http://127.0.0.1:{port}/core/")).unwrap();
        let answer = core
            .call(CoreCall {
                plugin: "acme/notes".into(),
                version: "1.0.0".into(),
                digest: "sha256:ab".into(),
                launch: "l1".into(),
                name: "notes.add".into(),
                body: Bytes::from_static(b"{\"text\":\"hi\"}"),
                timestamp: "1000".into(),
                signature: "v1=00".into(),
            })
            .await
            .unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body.as_ref(), b"{\"id\":7}");
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
        let request = server.await.unwrap();
        assert!(
            request.starts_with("post /core/v1/callbacks/notes.add http/1.1\r\n"),
            "{request}"
        );
        for header in [
            format!("host: 127.0.0.1:{port}"),
            "agora-launch: l1".into(),
            "agora-plugin: acme/notes@1.0.0".into(),
            "agora-plugin-digest: sha256:ab".into(),
            "agora-timestamp: 1000".into(),
            "agora-signature: v1=00".into(),
            "content-type: application/json".into(),
        ] {
            assert!(
                request.contains(&format!("{header}\r\n")),
                "{header}: {request}"
            );
        }
        // Nothing listens: the handler says so, the gate turns it into 502.
        let gone = HttpCore::new("http://127.0.0.1:1").unwrap();
        let call = CoreCall {
            plugin: String::new(),
            version: String::new(),
            digest: String::new(),
            launch: String::new(),
            name: "x".into(),
            body: Bytes::new(),
            timestamp: String::new(),
            signature: String::new(),
        };
        let e = gone.call(call).await.unwrap_err();
        assert!(e.contains("cannot reach the core"), "{e}");
    }

    #[test]
    fn secrets_are_long_enough_and_never_printed() {
        assert!(CoreSecret::new(&[1; 31]).is_err());
        let secret = CoreSecret::new(&[1; 32]).unwrap();
        assert_eq!(format!("{secret:?}"), "CoreSecret(..)");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(CoreSecret::from_file(&file).unwrap().bytes().len(), 64);
        assert!(HttpCore::new("ftp://core").is_err());
        assert!(HttpCore::new("http://127.0.0.1:9000/core/").is_ok());
    }
}
