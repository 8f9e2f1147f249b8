//! The way out: the destination check both runtimes share, and the egress proxy that is
//! a native plugin's only route to the network (its network namespace has none).
//!
//! The proxy listens on a Unix socket in the plugin's work directory and speaks HTTP
//! `CONNECT host:port`: a granted destination gets `200` and a byte tunnel (TLS stays
//! end to end); anything else gets `403` with a problem document, and an audit event.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use crate::LaunchContext;
use crate::audit::{Denied, Kind};
use crate::policy::{Grant, is_internal};

const MAX_HEAD_BYTES: usize = 8 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a plugin has to send its `CONNECT` request once connected to the proxy.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Tunnels one launch may hold open at once; more are refused.
const MAX_TUNNELS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Whether the grant lets a plugin reach `destination`; on success, the addresses to
/// connect to. A raw IP is refused unless granted as such; a name resolving to a
/// loopback, private or link-local address is refused unless the policy allows them.
pub(crate) async fn check_destination(
    grant: &Grant,
    destination: &Destination,
) -> Result<Vec<SocketAddr>, String> {
    let host = destination
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err("the request names no host".into());
    }
    if !grant.allows_host(host, destination.port) {
        return Err(if host.parse::<IpAddr>().is_ok() {
            "raw IP addresses are not among the plugin's granted hosts".into()
        } else {
            "not among the plugin's granted outbound hosts".into()
        });
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, destination.port))
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err("resolves to no address".into());
    }
    if !grant.allow_private_addresses
        && let Some(inside) = addresses.iter().find(|a| is_internal(a.ip()))
    {
        return Err(format!(
            "resolves to the internal address {}, which the host policy does not allow",
            inside.ip()
        ));
    }
    Ok(addresses)
}

/// [`check_destination`] for a launch, recording a refusal in its audit log.
pub(crate) async fn admit_destination(
    context: &LaunchContext,
    destination: &Destination,
) -> Result<Vec<SocketAddr>, String> {
    let checked = check_destination(&context.grant, destination).await;
    if let Err(reason) = &checked {
        context.audit.record(
            Kind::Denial,
            &context.subject,
            json!({"denied": Denied::Host, "target": destination.to_string(), "reason": reason}),
        );
    }
    checked
}

/// Serves the proxy on `socket` until the returned handle is dropped.
pub(crate) fn spawn_proxy(
    socket: &Path,
    context: Arc<LaunchContext>,
) -> std::io::Result<ProxyHandle> {
    let listener = UnixListener::bind(socket)?;
    // The plugin runs as another uid and must be able to connect.
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    let task = tokio::spawn(async move {
        // Tunnels live in this set: aborting the proxy (dropping the handle) ends them all.
        let mut tunnels = tokio::task::JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TUNNELS));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { break };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue; // over the limit: the connection is closed
                    };
                    let context = context.clone();
                    tunnels.spawn(async move {
                        let _slot = slot;
                        if let Err(e) = tunnel(stream, &context).await {
                            tracing::debug!("egress proxy connection ended: {e}");
                        }
                    });
                }
                Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {}
            }
        }
    });
    Ok(ProxyHandle { task })
}

/// A task serving a launch's socket (the egress proxy, the callbacks), aborted on drop.
pub(crate) struct ProxyHandle {
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    pub(crate) fn new(task: tokio::task::JoinHandle<()>) -> ProxyHandle {
        ProxyHandle { task }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refuse(
    stream: &mut UnixStream,
    status: u16,
    title: &str,
    detail: &str,
) -> std::io::Result<()> {
    let body = agora_contract::problem_json(status, title, detail);
    let head = format!(
        "HTTP/1.1 {status} {title}\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn tunnel(stream: UnixStream, context: &LaunchContext) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    // Read the request head, bounded in size and time.
    let read_head = async {
        loop {
            let before = head.len();
            let mut limited = AsyncReadExt::take(&mut reader, (MAX_HEAD_BYTES - head.len()) as u64);
            let n = limited.read_until(b'\n', &mut head).await?;
            if n == 0
                || head.ends_with(b"\r\n\r\n")
                || head.len() >= MAX_HEAD_BYTES
                || head.len() == before
            {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    match tokio::time::timeout(HEAD_TIMEOUT, read_head).await {
        Ok(result) => result?,
        Err(_) => return Ok(()),
    }
    let mut stream = reader.into_inner();
    let text = String::from_utf8_lossy(&head);
    let request_line = text.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "CONNECT" || !head.ends_with(b"\r\n\r\n") {
        return refuse(
            &mut stream,
            405,
            "Method Not Allowed",
            "the egress proxy accepts only `CONNECT host:port` requests",
        )
        .await;
    }
    let destination = match target
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    {
        Some((host, _)) if host.len() > 255 => {
            return refuse(&mut stream, 400, "Bad Request", "the host name is too long").await;
        }
        Some((host, port)) => Destination {
            host: host.to_owned(),
            port,
        },
        None => {
            return refuse(&mut stream, 400, "Bad Request", "CONNECT needs host:port").await;
        }
    };
    let addresses = match admit_destination(context, &destination).await {
        Ok(addresses) => addresses,
        Err(reason) => {
            return refuse(
                &mut stream,
                403,
                "Forbidden",
                &format!("{destination}: {reason}"),
            )
            .await;
        }
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addresses[..]))
        .await
    {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => return refuse(&mut stream, 502, "Bad Gateway", &e.to_string()).await,
        Err(_) => return refuse(&mut stream, 504, "Gateway Timeout", "connect timed out").await,
    };
    stream
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    let mut upstream = upstream;
    tokio::io::copy_bidirectional(&mut stream, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{HostRule, Limits};
    use std::collections::BTreeMap;

    fn grant(hosts: &[&str], allow_private: bool) -> Grant {
        Grant {
            limits: Limits::default(),
            entrypoint_timeouts: BTreeMap::new(),
            hosts: hosts.iter().map(|h| HostRule::parse(h).unwrap()).collect(),
            allow_private_addresses: allow_private,
            secrets: Vec::new(),
            callbacks: Vec::new(),
        }
    }

    fn dest(host: &str, port: u16) -> Destination {
        Destination {
            host: host.into(),
            port,
        }
    }

    #[tokio::test]
    async fn destinations_are_checked_by_name_and_by_address() {
        let g = grant(&["localhost:8080"], false);
        let err = check_destination(&g, &dest("example.com", 443))
            .await
            .unwrap_err();
        assert!(err.contains("not among"), "{err}");
        let err = check_destination(&g, &dest("127.0.0.1", 8080))
            .await
            .unwrap_err();
        assert!(err.contains("raw IP"), "{err}");
        let err = check_destination(&g, &dest("localhost", 8080))
            .await
            .unwrap_err();
        assert!(err.contains("internal address"), "{err}");
        let open = grant(&["localhost:8080"], true);
        assert!(
            !check_destination(&open, &dest("localhost", 8080))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
