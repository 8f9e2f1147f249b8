//! Serving connections with limits that hold against slow and idle clients: the request
//! head must arrive within a timeout (which also closes idle keep-alive connections), a
//! request body that stalls is cut, and the number of open connections is capped, in all
//! and per client address, so a few clients holding connections open can never use up
//! the process's file descriptors. A connection over a cap gets a 503 and is closed.
//!
//! Plain-text connections speak HTTP/1.1 only: detecting HTTP/2 without TLS means waiting
//! for a client's first bytes with no timeout, which is exactly what a slow client
//! exploits. (Behind TLS, ALPN chooses the protocol without waiting.)

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

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

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (up to the grace period). Handlers see the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let body_timeout = limits.body_idle_timeout;
    let app = app.layer(axum::middleware::map_request(
        move |request: Request| async move {
            request.map(|body| Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body)))
        },
    ));
    let gate = Arc::new(Gate {
        limits,
        open: Mutex::new((0, HashMap::new())),
    });
    let refusing = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
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
            () = &mut shutdown => break,
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            metrics::counter!("agora_connections_refused_total").increment(1);
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(permit);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                app.clone().oneshot(request.map(Body::new))
            });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(ticket);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period; closing them");
    }
    Ok(())
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
}
