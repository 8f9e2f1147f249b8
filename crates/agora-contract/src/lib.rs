//! The plugin contract, runner API v1: how the runner signs each request and how a plugin
//! checks it. `docs/plugin-contract.md` is the full contract; this crate is the part both
//! sides must compute identically, with no I/O and no dependencies beyond HMAC-SHA-256,
//! so plugins built for `wasm32-wasip2` or natively can use it as is.
//!
//! The signature is `HMAC-SHA-256(key, "agora-v1\n" METHOD "\n" PATH "\n" TIMESTAMP "\n"
//! hex(SHA-256(body)))`, sent as `Agora-Signature: v1=<hex>` next to
//! `Agora-Timestamp: <unix seconds>`. The key is fresh for every launch and reaches the
//! plugin in the environment variable [`KEY_ENV`] (hex).
//!
//! Callbacks go the other way: a plugin that declares `callbacks` in its manifest may
//! `POST /v1/callbacks/{name}` to the host's core through the runner, signed the same way
//! under another domain string (`agora-callback-v1`) with the launch's callback key
//! ([`CALLBACK_KEY_ENV`]). The core derives that key itself from its secret and the
//! launch ([`derive_launch_key`]) and checks the signature with [`Key::verify_callback`];
//! a request signature never passes as a callback signature, nor the reverse.

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
/// Environment variable holding the per-launch callback key, hex-encoded (plugins that
/// declare callbacks only).
pub const CALLBACK_KEY_ENV: &str = "AGORA_CALLBACK_KEY";
/// Environment variable (native plugins): the Unix socket the runner serves callbacks on.
pub const CORE_SOCKET_ENV: &str = "AGORA_CORE_SOCKET";
/// The authority of callbacks from WASM plugins: `POST http://agora-core/v1/callbacks/NAME`.
pub const CORE_AUTHORITY: &str = "agora-core";
/// Where callback `NAME` is posted: this followed by the name.
pub const CALLBACK_PATH_PREFIX: &str = "/v1/callbacks/";
/// Header (runner to core): the launch the callback comes from.
pub const LAUNCH_HEADER: &str = "agora-launch";
/// Header (runner to core): `publisher/name@version` of the calling plugin.
pub const PLUGIN_HEADER: &str = "agora-plugin";
/// Header (runner to core): the digest of the calling plugin's code (`sha256:...`).
pub const PLUGIN_DIGEST_HEADER: &str = "agora-plugin-digest";
/// A request whose timestamp is further than this from the plugin's clock is refused.
pub const MAX_SKEW_SECS: u64 = 60;
/// Content type of errors.
pub const PROBLEM_JSON: &str = "application/problem+json";

const KEY_LEN: usize = 32;
/// The domain string of request signatures (runner to plugin).
const REQUEST_DOMAIN: &str = "agora-v1";
/// The domain string of callback signatures (plugin to core).
const CALLBACK_DOMAIN: &str = "agora-callback-v1";
/// The domain string of the callback key's derivation.
const CALLBACK_KEY_DOMAIN: &str = "agora-callback-key-v1";

/// The path of callback `name`: `/v1/callbacks/NAME`.
pub fn callback_path(name: &str) -> String {
    format!("{CALLBACK_PATH_PREFIX}{name}")
}

/// The callback key of one launch: `HMAC-SHA-256(core_secret, "agora-callback-key-v1\n"
/// LAUNCH_ID "\n" PLUGIN "\n" DIGEST)`, where `PLUGIN` is `publisher/name@version` and
/// `DIGEST` the digest of the plugin's code (`sha256:<hex>`). The runner derives it to
/// hand to the plugin; the core derives it again from the headers the runner forwards, so
/// the two share no state but the secret.
pub fn derive_launch_key(core_secret: &[u8], launch_id: &str, plugin: &str, digest: &str) -> Key {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(core_secret).expect("HMAC accepts keys of any length");
    mac.update(CALLBACK_KEY_DOMAIN.as_bytes());
    for part in [launch_id, plugin, digest] {
        mac.update(b"\n");
        mac.update(part.as_bytes());
    }
    Key(mac.finalize().into_bytes().into())
}

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

    fn mac(
        &self,
        domain: &str,
        method: &str,
        path: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        let body_digest = hex::encode(Sha256::digest(body));
        for part in [domain, method, path, timestamp, &body_digest] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The value of [`SIGNATURE_HEADER`] for a request.
    pub fn sign(&self, method: &str, path: &str, timestamp: u64, body: &[u8]) -> String {
        self.sign_in(REQUEST_DOMAIN, method, path, timestamp, body)
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
        self.verify_in(
            REQUEST_DOMAIN,
            method,
            path,
            timestamp,
            signature,
            body,
            now,
        )
    }

    /// The value of [`SIGNATURE_HEADER`] for a callback (plugin to core): as [`Key::sign`]
    /// under the domain string `agora-callback-v1`, with the launch's callback key.
    pub fn sign_callback(&self, method: &str, path: &str, timestamp: u64, body: &[u8]) -> String {
        self.sign_in(CALLBACK_DOMAIN, method, path, timestamp, body)
    }

    /// Checks a callback's signature headers, as [`Key::verify`] does a request's.
    pub fn verify_callback(
        &self,
        method: &str,
        path: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<(), Rejection> {
        self.verify_in(
            CALLBACK_DOMAIN,
            method,
            path,
            timestamp,
            signature,
            body,
            now,
        )
    }

    fn sign_in(
        &self,
        domain: &str,
        method: &str,
        path: &str,
        timestamp: u64,
        body: &[u8],
    ) -> String {
        let tag = self
            .mac(domain, method, path, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1={}", hex::encode(tag))
    }

    #[allow(clippy::too_many_arguments)]
    fn verify_in(
        &self,
        domain: &str,
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
        self.mac(domain, method, path, timestamp, body)
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
    fn request_and_callback_signatures_never_cross_verify() {
        let k = key(1);
        let request = k.sign("POST", "/v1/callbacks/notes.add", 1_000, b"{}");
        let callback = k.sign_callback("POST", "/v1/callbacks/notes.add", 1_000, b"{}");
        assert_ne!(request, callback);
        let at = |sig: &str| (Some("1000"), Some(sig.to_owned()));
        let (t, s) = at(&callback);
        assert_eq!(
            k.verify_callback(
                "POST",
                "/v1/callbacks/notes.add",
                t,
                s.as_deref(),
                b"{}",
                1_010
            ),
            Ok(())
        );
        assert_eq!(
            k.verify(
                "POST",
                "/v1/callbacks/notes.add",
                t,
                s.as_deref(),
                b"{}",
                1_010
            ),
            Err(Rejection::BadSignature)
        );
        let (t, s) = at(&request);
        assert_eq!(
            k.verify_callback(
                "POST",
                "/v1/callbacks/notes.add",
                t,
                s.as_deref(),
                b"{}",
                1_010
            ),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn callbacks_check_every_part_and_the_clock() {
        let k = key(1);
        let sig = k.sign_callback("POST", "/v1/callbacks/a", 1_000, b"{}");
        let check = |k: &Key, p: &str, t: &str, b: &[u8], now| {
            k.verify_callback("POST", p, Some(t), Some(&sig), b, now)
        };
        assert_eq!(check(&k, "/v1/callbacks/a", "1000", b"{}", 1_000), Ok(()));
        assert_eq!(
            check(&key(2), "/v1/callbacks/a", "1000", b"{}", 1_000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&k, "/v1/callbacks/b", "1000", b"{}", 1_000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&k, "/v1/callbacks/a", "1000", b"{ }", 1_000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&k, "/v1/callbacks/a", "1000", b"{}", 1_061),
            Err(Rejection::Stale)
        );
        assert_eq!(
            k.verify_callback("POST", "/v1/callbacks/a", None, Some(&sig), b"{}", 1_000),
            Err(Rejection::MissingTimestamp)
        );
        assert_eq!(
            k.verify_callback("POST", "/v1/callbacks/a", Some("1000"), None, b"{}", 1_000),
            Err(Rejection::MissingSignature)
        );
    }

    #[test]
    fn launch_keys_depend_on_the_secret_and_every_part_of_the_launch() {
        let secret = [9u8; 32];
        let base = derive_launch_key(&secret, "l1", "acme/notes@1.0.0", "sha256:aa");
        assert_eq!(
            base,
            derive_launch_key(&secret, "l1", "acme/notes@1.0.0", "sha256:aa")
        );
        for other in [
            derive_launch_key(&[8u8; 32], "l1", "acme/notes@1.0.0", "sha256:aa"),
            derive_launch_key(&secret, "l2", "acme/notes@1.0.0", "sha256:aa"),
            derive_launch_key(&secret, "l1", "acme/notes@1.0.1", "sha256:aa"),
            derive_launch_key(&secret, "l1", "acme/notes@1.0.0", "sha256:ab"),
            // The separators keep the parts apart.
            derive_launch_key(&secret, "l1\nacme/notes@1.0.0", "", "sha256:aa"),
        ] {
            assert_ne!(base, other);
        }
        // The algorithm as documented, spelled out for cores in other languages.
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(b"agora-callback-key-v1\nl1\nacme/notes@1.0.0\nsha256:aa");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(base, Key::from_bytes(expected));
        assert_eq!(callback_path("notes.add"), "/v1/callbacks/notes.add");
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
