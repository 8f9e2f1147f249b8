//! A notice that survives the redirect after a form post: the page a form leads to says
//! what the post did ("acme/jira 1.2.0 is approved for ops", what an apply moved and what
//! it skipped, and why).
//!
//! It travels in a short-lived cookie (one minute) holding the text and its HMAC-SHA256
//! keyed by the session's CSRF token, so only this session's own posts put words on its
//! pages (a cookie set by anyone else is ignored); the page that shows it removes it.
//! The text is escaped like any other.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::error::PageError;
use crate::session::Visitor;

const NOTICE: &str = "agora_notice";
const SECURE_NOTICE: &str = "__Host-agora_notice";
/// The longest notice kept, in bytes (a cookie holds about 4 KiB; the text travels as hex).
const MAX_NOTICE_BYTES: usize = 1_500;
/// How long a notice waits for its page, in seconds.
const NOTICE_SECONDS: u32 = 60;

/// The cookie's name for a request over HTTPS or not.
pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_NOTICE } else { NOTICE }
}

/// HMAC-SHA256 (RFC 2104) of `text` under `key`.
fn mac(key: &[u8], text: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(text)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `text` cut to the notice's bound, at a character boundary.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_NOTICE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_NOTICE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The cookie's value for `text` in the session whose CSRF token is `csrf`.
fn seal(csrf: &str, text: &str) -> String {
    format!(
        "{}.{}",
        hex::encode(mac(csrf.as_bytes(), text.as_bytes())),
        hex::encode(text)
    )
}

/// The notice a cookie value holds, if the session whose CSRF token is `csrf` wrote it.
pub(crate) fn open(csrf: &str, value: &str) -> Option<String> {
    let (tag, text) = value.split_once('.')?;
    let text = String::from_utf8(hex::decode(text).ok()?).ok()?;
    let expected = hex::encode(mac(csrf.as_bytes(), text.as_bytes()));
    let same = tag.len() == expected.len()
        && tag
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    (same && text.len() <= MAX_NOTICE_BYTES + '…'.len_utf8()).then_some(text)
}

fn set_cookie(secure: bool, value: &str, max_age: u32) -> Option<HeaderValue> {
    let flags = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{flags}",
        cookie_name(secure)
    ))
    .ok()
}

/// A redirect to `to` (303) whose page will say `text`.
pub(crate) fn redirect(visitor: &Visitor, to: &str, text: &str) -> Response {
    let mut response = crate::pages::see_other(to);
    let sealed = seal(visitor.csrf(), &bounded(text));
    if let Some(cookie) = set_cookie(visitor.secure, &sealed, NOTICE_SECONDS) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Renders a page that shows the visitor's notice, if any, and removes it.
pub(crate) fn render(
    page: &impl askama::Template,
    visitor: &Visitor,
) -> Result<Response, PageError> {
    let mut response = crate::pages::render(page)?;
    if visitor.notice.is_some()
        && let Some(cookie) = set_cookie(visitor.secure, "", 0)
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            hex::encode(mac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (RFC 4231, test case 6).
        assert_eq!(
            hex::encode(mac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn only_the_session_that_wrote_a_notice_reads_it() {
        let value = seal("csrf-a", "acme/jira 1.2.0 is approved for ops");
        assert_eq!(
            open("csrf-a", &value).as_deref(),
            Some("acme/jira 1.2.0 is approved for ops")
        );
        assert_eq!(open("csrf-b", &value), None, "another session's notice");
        let (tag, _) = value.split_once('.').unwrap();
        let forged = format!("{tag}.{}", hex::encode("call +1 555 0100 now"));
        assert_eq!(open("csrf-a", &forged), None, "text changed under its tag");
        for junk in ["", ".", "zz.zz", "abc", &format!("{tag}.ff")] {
            assert_eq!(open("csrf-a", junk), None, "{junk}");
        }
    }

    #[test]
    fn long_notices_are_cut_at_a_character() {
        let long = "é".repeat(MAX_NOTICE_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_NOTICE_BYTES + '…'.len_utf8() && cut.ends_with('…'));
        assert_eq!(open("k", &seal("k", &cut)), Some(cut));
    }
}
