//! The plugin contract, runner API v1: how the runner signs each request and how a plugin
//! checks it. `docs/plugin-contract.md` is the full contract; this crate is the part both
//! sides must compute identically, with no I/O and no dependencies beyond HMAC-SHA-256,
//! so plugins built for `wasm32-wasip2` or natively can use it as is.
//!
//! The signature is `HMAC-SHA-256(key, "agora-v1\n" METHOD "\n" PATH "\n" TIMESTAMP "\n"
//! hex(SHA-256(body)))`, sent as `Agora-Signature: v1=<hex>` next to
//! `Agora-Timestamp: <unix seconds>`. The key is fresh for every launch and reaches the
//! plugin in the environment variable [`KEY_ENV`] (hex).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The runner API this crate implements.
pub const RUNNER_API: &str = "v1";
/// Request header: the signing time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "agora-timestamp";
/// Request header: `v1=` followed by the hex HMAC.
pub const SIGNATURE_HEADER: &str = "agora-signature";
/// Environment variable holding the per-launch signing key, hex-encoded.
pub const KEY_ENV: &str = "AGORA_PLUGIN_KEY";
/// Environment variable (native plugins): the number of the file descriptor holding the
/// listening Unix socket the runner hands the plugin (always 3).
pub const FD_ENV: &str = "AGORA_PLUGIN_FD";
/// The descriptor a native plugin accepts connections on.
pub const PLUGIN_FD: i32 = 3;
/// Environment variable (native plugins): the Unix socket of the runner's egress proxy.
pub const PROXY_ENV: &str = "AGORA_EGRESS_PROXY";
/// A request whose timestamp is further than this from the plugin's clock is refused.
pub const MAX_SKEW_SECS: u64 = 60;
/// Content type of errors.
pub const PROBLEM_JSON: &str = "application/problem+json";

const KEY_LEN: usize = 32;

/// A per-launch signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// Parses the hex form found in [`KEY_ENV`].
    pub fn from_hex(text: &str) -> Result<Key, Rejection> {
        let bytes = hex::decode(text.trim()).map_err(|_| Rejection::BadKey)?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Rejection::BadKey)?;
        Ok(Key(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn mac(&self, method: &str, path: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        let body_digest = hex::encode(Sha256::digest(body));
        for part in ["agora-v1", method, path, timestamp, &body_digest] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The value of [`SIGNATURE_HEADER`] for a request.
    pub fn sign(&self, method: &str, path: &str, timestamp: u64, body: &[u8]) -> String {
        let tag = self
            .mac(method, path, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1={}", hex::encode(tag))
    }

    /// Checks a request's signature headers (`None` when a header is absent) against its
    /// method, path (without the query) and body, at `now` (Unix seconds).
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<(), Rejection> {
        let timestamp = timestamp.ok_or(Rejection::MissingTimestamp)?;
        let signature = signature.ok_or(Rejection::MissingSignature)?;
        let when: u64 = timestamp.parse().map_err(|_| Rejection::BadTimestamp)?;
        if when.abs_diff(now) > MAX_SKEW_SECS {
            return Err(Rejection::Stale);
        }
        let tag = signature
            .strip_prefix("v1=")
            .and_then(|hex_tag| hex::decode(hex_tag).ok())
            .ok_or(Rejection::BadSignature)?;
        self.mac(method, path, timestamp, body)
            .verify_slice(&tag)
            .map_err(|_| Rejection::BadSignature)
    }
}

/// Why a request was refused; every variant means HTTP 401 for the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MissingTimestamp,
    MissingSignature,
    BadTimestamp,
    Stale,
    BadSignature,
    BadKey,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::MissingTimestamp => "the Agora-Timestamp header is missing",
            Rejection::MissingSignature => "the Agora-Signature header is missing",
            Rejection::BadTimestamp => "Agora-Timestamp is not a number of Unix seconds",
            Rejection::Stale => "Agora-Timestamp is more than 60 seconds from the plugin's clock",
            Rejection::BadSignature => "Agora-Signature does not match the request",
            Rejection::BadKey => "the signing key is not 32 hex-encoded bytes",
        })
    }
}

impl std::error::Error for Rejection {}

/// An RFC 9457 problem document, as the contract requires for every error.
pub fn problem_json(status: u16, title: &str, detail: &str) -> String {
    format!(
        "{{\"type\":\"about:blank\",\"title\":{},\"status\":{status},\"detail\":{}}}",
        json_string(title),
        json_string(detail)
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes([byte; KEY_LEN])
    }

    #[test]
    fn a_signed_request_verifies() {
        let sig = key(1).sign("POST", "/echo", 1_000, b"{}");
        assert!(sig.starts_with("v1="));
        assert_eq!(
            key(1).verify("POST", "/echo", Some("1000"), Some(&sig), b"{}", 1_030),
            Ok(())
        );
    }

    #[test]
    fn every_signed_part_matters() {
        let sig = key(1).sign("POST", "/echo", 1_000, b"{}");
        let check =
            |k: &Key, m, p, t: &str, b: &[u8]| k.verify(m, p, Some(t), Some(&sig), b, 1_000);
        assert_eq!(
            check(&key(2), "POST", "/echo", "1000", b"{}"),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&key(1), "GET", "/echo", "1000", b"{}"),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&key(1), "POST", "/other", "1000", b"{}"),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&key(1), "POST", "/echo", "1001", b"{}"),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&key(1), "POST", "/echo", "1000", b"{ }"),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn missing_malformed_and_stale_headers_are_refused() {
        let k = key(1);
        let sig = k.sign("POST", "/e", 1_000, b"");
        assert_eq!(
            k.verify("POST", "/e", None, Some(&sig), b"", 1_000),
            Err(Rejection::MissingTimestamp)
        );
        assert_eq!(
            k.verify("POST", "/e", Some("1000"), None, b"", 1_000),
            Err(Rejection::MissingSignature)
        );
        assert_eq!(
            k.verify("POST", "/e", Some("soon"), Some(&sig), b"", 1_000),
            Err(Rejection::BadTimestamp)
        );
        assert_eq!(
            k.verify("POST", "/e", Some("1000"), Some(&sig), b"", 1_061),
            Err(Rejection::Stale)
        );
        assert_eq!(
            k.verify("POST", "/e", Some("1000"), Some("v1=zz"), b"", 1_000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            k.verify("POST", "/e", Some("1000"), Some(&sig[3..]), b"", 1_000),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn keys_round_trip_through_hex_and_refuse_bad_lengths() {
        let k = key(7);
        assert_eq!(Key::from_hex(&k.to_hex()), Ok(k));
        assert_eq!(Key::from_hex("abcd"), Err(Rejection::BadKey));
        assert_eq!(Key::from_hex("not hex"), Err(Rejection::BadKey));
        assert_eq!(format!("{:?}", key(7)), "Key(..)");
    }

    #[test]
    fn problems_are_escaped_json() {
        let doc = problem_json(404, "Not \"found\"", "no\nroute");
        assert_eq!(
            doc,
            r#"{"type":"about:blank","title":"Not \"found\"","status":404,"detail":"no\u000aroute"}"#
        );
    }
}
