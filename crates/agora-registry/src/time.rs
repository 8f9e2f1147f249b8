//! Rendering stored timestamps (Unix milliseconds) as RFC 3339.

use std::time::{Duration, UNIX_EPOCH};

pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
