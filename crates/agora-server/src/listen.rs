//! Serving connections with limits that hold against slow and idle clients: the request
//! head must arrive within a timeout (which also closes idle keep-alive connections), a
//! request body that stalls is cut, and the number of open connections is capped, in all
//! and per client address, so a few clients holding connections open can never use up
//! the process's file descriptors. A connection over a cap gets a 503 and is closed (over
//! TLS it is just closed: a plain-text answer means nothing to a TLS client).
//!
//! Plain-text connections speak HTTP/1.1 only: detecting HTTP/2 without TLS means waiting
//! for a client's first bytes with no timeout, which is exactly what a slow client
//! exploits. Over TLS the handshake must finish within the header timeout too (a slow
//! handshake is a slow request head), then ALPN chooses the protocol without waiting:
//! HTTP/2 (`h2`) or HTTP/1.1. HTTP/2 has no header-read timeout of its own, so the server
//! closes an HTTP/2 connection that has had no request in flight for the header timeout
//! (a `GOAWAY`, then the socket if the client does not go); each connection carries at
//! most [`H2_MAX_STREAMS`] requests at once and a request head of at most
//! [`H2_MAX_HEADER_LIST_BYTES`].
//!
//! Every request that came over TLS carries the [`Tls`] extension and every answer to it
//! `Strict-Transport-Security` when HSTS is on. With TLS, an optional plain-HTTP listener
//! (under the same connection caps) answers every request with a `308` to the same path on
//! https, and nothing else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use agora_core::problem::ProblemKind;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header, uri::Authority};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::tls::{Certificates, Hsts, RELOAD_POLL};

/// A request extension on every request that arrived over TLS: what decides whether a
/// request is https reads this, never a header a client could send.
#[derive(Debug, Clone, Copy)]
pub struct Tls;

/// Most requests one HTTP/2 connection carries at once.
pub const H2_MAX_STREAMS: u32 = 32;

/// Largest request head (all header fields, decoded) over HTTP/2.
pub const H2_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// TLS on the main listener, and the plain-HTTP listener that sends clients to it.
pub struct Https {
    /// The certificate and key; reloaded while serving when their files change.
    pub certificates: Arc<Certificates>,
    /// `Strict-Transport-Security` on every answer over TLS, unless off.
    pub hsts: Option<Hsts>,
    /// A plain-HTTP listener that answers every request with a `308` to https.
    pub redirect: Option<TcpListener>,
}

/// The HTTP layer's limits; every value configurable (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest JSON request body.
    pub max_json_bytes: usize,
    /// Time for a client to send a request's head; also how long a keep-alive connection
    /// may sit idle between requests.
    pub header_timeout: Duration,
    /// Longest pause while reading a request body.
    pub body_idle_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one client address.
    pub max_connections_per_client: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Slowest average rate a request body may arrive at once `header_timeout` has passed
    /// (bytes per second; 0: no floor).
    pub min_body_bytes_per_sec: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_json_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 256,
            shutdown_grace: Duration::from_secs(20),
            min_body_bytes_per_sec: 1024,
        }
    }
}

/// Counts open connections, in all and per client address.
struct Gate {
    limits: HttpLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// An admitted connection; dropping it frees its place.
struct Ticket {
    gate: Arc<Gate>,
    client: IpAddr,
}

impl Gate {
    fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Ticket> {
        let mut open = self.open.lock().ok()?;
        let (total, per_client) = &mut *open;
        let mine = per_client.get(&client).copied().unwrap_or(0);
        if *total >= self.limits.max_connections || mine >= self.limits.max_connections_per_client {
            return None;
        }
        *total += 1;
        per_client.insert(client, mine + 1);
        Some(Ticket {
            gate: self.clone(),
            client,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut open) = self.gate.open.lock() {
            let (total, per_client) = &mut *open;
            *total = total.saturating_sub(1);
            if let Some(n) = per_client.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    per_client.remove(&self.client);
                }
            }
        }
    }
}

/// Most refusals being written at once; beyond it a connection over the cap is just
/// closed (writing a refusal must not itself become a way to hold descriptors).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

async fn refuse(mut stream: TcpStream) {
    let body = r#"{"type":"urn:agora:problem:unavailable","title":"Service unavailable","status":503,"detail":"too many open connections; try again shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves `app` on `listener` (over TLS with `https`) until `shutdown` resolves, then lets
/// requests in flight finish (up to the grace period). Handlers see the peer's address as
/// `ConnectInfo<SocketAddr>`, and [`Tls`] on requests that came over TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    https: Option<Https>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let body_timeout = limits.body_idle_timeout;
    let floor = crate::body_rate::MinRate {
        bytes_per_sec: limits.min_body_bytes_per_sec,
        grace: limits.header_timeout,
    };
    let app = app
        .layer(axum::middleware::map_request(
            move |request: Request| async move {
                request.map(|body| {
                    let body = Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body));
                    if floor.bytes_per_sec == 0 {
                        body
                    } else {
                        crate::body_rate::limited(body, floor)
                    }
                })
            },
        ))
        // Outermost: it sees the body as it came off the connection.
        .layer(axum::middleware::from_fn(
            crate::unread_body::close_if_unread,
        ));
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES);
    let (stop, _) = watch::channel(false);
    let shared = Shared {
        app,
        limits,
        gate: Arc::new(Gate {
            limits,
            open: Mutex::new((0, HashMap::new())),
        }),
        refusing: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        stop: stop.clone(),
        http1: Arc::new(http1),
        http2: Arc::new(http2),
    };
    let mut reloads = None;
    let door = match https {
        None => Door::Plain,
        Some(https) => {
            let port = listener.local_addr()?.port();
            if let Some(redirect) = https.redirect {
                tokio::spawn(accept(redirect, Door::Redirect { port }, shared.clone()));
            }
            reloads = Some(tokio::spawn(https.certificates.clone().watch(RELOAD_POLL)));
            let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(std::io::Error::other)?
                .with_no_client_auth()
                .with_cert_resolver(https.certificates);
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Door::Tls {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                hsts: https.hsts.map(|h| h.header_value()),
            }
        }
    };
    tokio::spawn(accept(listener, door, shared));
    shutdown.await;
    // Every accept loop stops and drops its listener; every connection finishes the
    // request in flight, then closes. Each holds a receiver until it is done.
    let _ = stop.send(true);
    if tokio::time::timeout(limits.shutdown_grace, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period; closing them");
    }
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    Ok(())
}

/// What a listener serves.
#[derive(Clone)]
enum Door {
    /// The app over plain HTTP/1.1.
    Plain,
    /// The app over TLS, HTTP/2 or HTTP/1.1 as ALPN chose.
    Tls {
        acceptor: TlsAcceptor,
        hsts: Option<HeaderValue>,
    },
    /// A `308` to the same path on https at `port`, for every request.
    Redirect { port: u16 },
}

/// What every listener and connection of one server shares.
#[derive(Clone)]
struct Shared {
    app: Router,
    limits: HttpLimits,
    gate: Arc<Gate>,
    refusing: Arc<tokio::sync::Semaphore>,
    /// Becomes true when the server shuts down; dropped receivers tell it who is done.
    stop: watch::Sender<bool>,
    http1: Arc<http1::Builder>,
    http2: Arc<http2::Builder<TokioExecutor>>,
}

/// Accepts connections on `listener` until the server stops; each admitted one is served
/// on a task of its own.
async fn accept(listener: TcpListener, door: Door, shared: Shared) {
    let mut stopping = shared.stop.subscribe();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a
                    // moment rather than spin, and go on serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let Some(ticket) = shared.gate.admit(peer.ip()) else {
            metrics::counter!("agora_connections_refused_total").increment(1);
            if !matches!(door, Door::Tls { .. })
                && let Ok(permit) = shared.refusing.clone().try_acquire_owned()
            {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(permit);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            shared: shared.clone(),
            stop: shared.stop.subscribe(),
        };
        let door = door.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.serve(stream, door).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(ticket);
        });
    }
}

/// One admitted connection.
struct Connection {
    peer: SocketAddr,
    shared: Shared,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, stream: TcpStream, door: Door) -> Result<(), hyper::Error> {
        let Shared {
            app,
            limits,
            http1,
            http2,
            ..
        } = self.shared;
        let peer = self.peer;
        match door {
            Door::Plain => {
                let service = app_service(app, peer, None, None);
                drive(
                    http1.serve_connection(TokioIo::new(stream), service),
                    self.stop,
                    None,
                )
                .await
            }
            Door::Redirect { port } => {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    std::future::ready(Ok::<_, Infallible>(redirect(&request, port)))
                });
                drive(
                    http1.serve_connection(TokioIo::new(stream), service),
                    self.stop,
                    None,
                )
                .await
            }
            Door::Tls { acceptor, hsts } => {
                let stream = match tokio::time::timeout(
                    limits.header_timeout,
                    acceptor.accept(stream),
                )
                .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        metrics::counter!("agora_tls_handshakes_failed_total").increment(1);
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return Ok(());
                    }
                    Err(_) => {
                        metrics::counter!("agora_tls_handshakes_failed_total").increment(1);
                        tracing::debug!(%peer, "TLS handshake not finished within the header timeout");
                        return Ok(());
                    }
                };
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    let activity = Activity::new();
                    let service = app_service(app, peer, Some(hsts), Some(activity.clone()));
                    drive(
                        http2.serve_connection(TokioIo::new(stream), service),
                        self.stop,
                        Some((activity, limits.header_timeout)),
                    )
                    .await
                } else {
                    let service = app_service(app, peer, Some(hsts), None);
                    drive(
                        http1.serve_connection(TokioIo::new(stream), service),
                        self.stop,
                        None,
                    )
                    .await
                }
            }
        }
    }
}

/// The app as one connection's service: the peer's address and, over TLS (`tls` is the
/// HSTS value, if any), [`Tls`] on each request and HSTS on each answer; with `activity`,
/// each request counts as activity until its answer's body is done.
fn app_service(
    app: Router,
    peer: SocketAddr,
    tls: Option<Option<HeaderValue>>,
    activity: Option<Arc<Activity>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(peer));
        if tls.is_some() {
            request.extensions_mut().insert(Tls);
        }
        // HTTP/2 names the host in the `:authority` pseudo-header, not in `Host`: give
        // every request a `Host`, so what reads it (the pages' cross-site check, the OCI
        // token realm) sees the same over both protocols.
        if !request.headers().contains_key(header::HOST)
            && let Some(host) = request
                .uri()
                .authority()
                .filter(|a| !a.as_str().contains('@'))
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(header::HOST, host);
        }
        let busy = activity.as_ref().map(Activity::begin);
        let hsts = tls.clone().flatten();
        let answer = app.clone().oneshot(request.map(Body::new));
        async move {
            let Ok(mut response) = answer.await;
            if let Some(hsts) = hsts {
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
            }
            Ok(response.map(|body| Tracked { body, _busy: busy }))
        }
    })
}

/// Serves `connection` until it ends. When the server stops, or (with `idle`) when no
/// request has been in flight for the timeout, it is asked to finish gracefully; once
/// asked, it is closed when no request has been in flight for the timeout (an HTTP/2
/// client that neither sends its preface nor leaves, say).
async fn drive<C>(
    connection: C,
    mut stop: watch::Receiver<bool>,
    idle: Option<(Arc<Activity>, Duration)>,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => return ended,
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = idle_for(idle.as_ref()), if idle.is_some() => {
                if stopping {
                    return Ok(());
                }
                stopping = true;
                connection.as_mut().graceful_shutdown();
                // The client gets one more timeout to read the GOAWAY and go.
                if let Some((activity, _)) = &idle {
                    activity.touch();
                }
            }
        }
    }
}

/// Resolves once the server is stopping (at once if it already is).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn idle_for(idle: Option<&(Arc<Activity>, Duration)>) {
    match idle {
        Some((activity, timeout)) => activity.idle_for(*timeout).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on a connection, and when the last one ended.
struct Activity {
    state: Mutex<(usize, Instant)>,
}

/// A request in flight; dropping it (its answer's body done, or the request cancelled)
/// ends it.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new((0, Instant::now())),
        })
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0 += 1;
        Busy(self.clone())
    }

    /// Counts as activity now.
    fn touch(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = Instant::now();
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let wait = {
                let (busy, since) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if busy > 0 {
                    timeout
                } else {
                    (since + timeout).saturating_duration_since(Instant::now())
                }
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}

/// An answer's body that keeps its request counted as in flight until it is done.
struct Tracked {
    body: Body,
    _busy: Option<Busy>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The redirect listener's answer: `308` to `https://HOST[:port]PATH?QUERY` for the host
/// the request named (without its port), `400` when it named none that is valid.
fn redirect<B>(request: &Request<B>, port: u16) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
        .filter(|a| {
            !a.as_str().contains('@')
                && !a.host().is_empty()
                && (a.as_str().len() == a.host().len() || a.port_u16().is_some())
        });
    let Some(host) = host else {
        return ApiError::of(
            ProblemKind::BadRequest,
            "this address only sends clients to https, and needs a valid Host header to \
             name where",
        )
        .into_response();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    let location = format!("https://{}{port}{path}", host.host());
    match HeaderValue::try_from(location) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => ApiError::of(
            ProblemKind::BadRequest,
            "the request's path cannot be redirected",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_connections_in_all_and_per_client() {
        let gate = Arc::new(Gate {
            limits: HttpLimits {
                max_connections: 3,
                max_connections_per_client: 2,
                ..HttpLimits::default()
            },
            open: Mutex::new((0, HashMap::new())),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "per client");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(b).is_none(), "in all");
        drop(a1);
        let _b2 = gate.admit(b).expect("a closed connection frees its place");
        assert_eq!(gate.open.lock().unwrap().0, 3);
    }

    fn redirected(host: Option<&str>, target: &str, port: u16) -> (StatusCode, Option<String>) {
        let mut request = Request::builder().uri(target);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = redirect(&request.body(()).unwrap(), port);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[test]
    fn the_redirect_keeps_host_path_and_query_and_names_the_tls_port() {
        let cases = [
            (
                "registry.example.com",
                "/a/b?c=d",
                443,
                "https://registry.example.com/a/b?c=d",
            ),
            (
                "registry.example.com:80",
                "/",
                443,
                "https://registry.example.com/",
            ),
            (
                "registry.example.com:8080",
                "/x",
                8443,
                "https://registry.example.com:8443/x",
            ),
            ("127.0.0.1:8080", "/v2/", 8443, "https://127.0.0.1:8443/v2/"),
            ("[::1]:8080", "/", 443, "https://[::1]/"),
        ];
        for (host, target, port, expected) in cases {
            assert_eq!(
                redirected(Some(host), target, port),
                (StatusCode::PERMANENT_REDIRECT, Some(expected.to_owned())),
                "{host} {target}"
            );
        }
    }

    #[test]
    fn the_redirect_needs_a_valid_host() {
        for host in [
            None,
            Some(""),
            Some("user@evil.example"),
            Some("a b"),
            Some("host:port"),
        ] {
            assert_eq!(
                redirected(host, "/", 443),
                (StatusCode::BAD_REQUEST, None),
                "{host:?}"
            );
        }
    }
}
