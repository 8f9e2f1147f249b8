//! Who is on the other end of a request: the client's address and whether it came over
//! HTTPS, believing `X-Forwarded-For` and `X-Forwarded-Proto` only from the proxies the
//! operator trusts (`[proxy] trusted`).
//!
//! From any other peer both headers are removed before a handler sees the request, so no
//! client can pick the address it is rate-limited and throttled by, or claim HTTPS. From a
//! trusted peer, the client is the right-most address in `X-Forwarded-For` that is not a
//! trusted proxy itself (the left-most entries are whatever the client wrote), and
//! `X-Forwarded-Proto` is the last value (the one the nearest proxy set).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// Most trusted networks (a configuration, not something an outsider grows).
pub const MAX_TRUSTED: usize = 256;
/// Most `X-Forwarded-For` hops looked at, right to left.
const MAX_HOPS: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error(
        "proxy.trusted: {0:?} is not an address or network; expected e.g. \"10.0.0.0/8\", \"192.0.2.7\" or \"fd00::/8\""
    )]
    Invalid(String),
    #[error("proxy.trusted: {0} entries; at most {MAX_TRUSTED}")]
    TooMany(usize),
}

/// The networks whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses and CIDR networks.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, ProxyError> {
        if entries.len() > MAX_TRUSTED {
            return Err(ProxyError::TooMany(entries.len()));
        }
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| ProxyError::Invalid(e.chars().take(64).collect()))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // An unreadable hop: the last trusted one is all that is known.
                None => break,
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// What is known of the client of a request (a request extension set by [`resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// `None` when the server does not know the peer (routers driven by tests).
    pub addr: Option<IpAddr>,
    /// Over TLS to this server, or to a trusted proxy that said so.
    pub https: bool,
}

/// Decides the request's [`Client`], and leaves `X-Forwarded-Proto` only as this server
/// believes it (`https` over its own TLS, the trusted proxy's value, or absent), so every
/// later reader of the header reads the same verdict.
pub async fn resolve(
    State(proxies): State<std::sync::Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()));
    let tls = request.extensions().get::<crate::listen::Tls>().is_some();
    let trusted = peer.is_some_and(|p| proxies.trusts(p));
    let headers = request.headers_mut();
    let addr = peer.map(|p| proxies.client(p, headers));
    let forwarded_https = trusted
        && headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let https = tls || forwarded_https;
    headers.remove("x-forwarded-for");
    headers.remove("x-forwarded-proto");
    if https {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    }
    request.extensions_mut().insert(Client { addr, https });
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn settings_name_the_bad_entry() {
        assert!(TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]).is_ok());
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err(),
            ProxyError::Invalid("10.0.0.0/33".into())
        );
        assert!(
            TrustedProxies::parse(&["proxy.example"])
                .unwrap_err()
                .to_string()
                .contains("proxy.trusted")
        );
        let many: Vec<String> = (0..300).map(|i| format!("10.0.{}.0/24", i % 256)).collect();
        assert_eq!(
            TrustedProxies::parse(&many).unwrap_err(),
            ProxyError::TooMany(300)
        );
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_peers() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let h = forwarded(&["198.51.100.9"]);
        assert_eq!(proxies.client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        assert_eq!(proxies.client(ip("10.1.2.3"), &h), ip("198.51.100.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), &h),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.0/24"]).unwrap();
        // The client wrote a made-up first entry; the proxies appended the rest.
        let h = forwarded(&["1.2.3.4, 198.51.100.9", "192.0.2.10"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &h), ip("198.51.100.9"));
        // Ports and IPv6 brackets, IPv4-mapped forms.
        let h = forwarded(&["[2001:db8::7]:443, ::ffff:10.0.0.2"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let h = forwarded(&["198.51.100.9:4711"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &h), ip("198.51.100.9"));
        // Only trusted hops: the left-most of them.
        let h = forwarded(&["10.9.9.9, 10.0.0.2"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // Garbage stops the walk at the last trusted hop.
        let h = forwarded(&["198.51.100.9, junk, 10.0.0.2"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        assert!(proxies.trusts(ip("::ffff:10.1.1.1")));
    }
}
