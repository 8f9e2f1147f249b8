//! Small formatting helpers for the pages: dates, counts, stars, query-string values.

use std::time::{Duration, UNIX_EPOCH};

/// `2026-11-22` for a Unix-milliseconds timestamp.
pub fn date(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// `2026-11-22 08:15 UTC`.
pub fn date_time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// `950`, `12.3k`, `4.1M`.
pub fn count(n: i64) -> String {
    match n {
        n if n < 1_000 => n.to_string(),
        n if n < 1_000_000 => format!("{:.1}k", n as f64 / 1_000.0),
        n => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// A count with its noun, singular for exactly one: `1 download`, `12.3k downloads`,
/// `0 plugins`.
pub fn counted(n: i64, one: &str, many: &str) -> String {
    let noun = if n == 1 { one } else { many };
    format!("{} {noun}", count(n))
}

/// Five stars, filled to the rounded rating: `★★★★☆`.
pub fn stars(rating: f64) -> String {
    let full = rating.round().clamp(0.0, 5.0) as usize;
    format!("{}{}", "★".repeat(full), "☆".repeat(5 - full))
}

/// `12.0 MiB`.
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    }
}

/// `sha256:1a2b3c4d5e6f…`: a digest short enough for a table cell (pages show the whole
/// value beside it, in a `title` or a `code`).
pub fn short_digest(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", digest));
    match hex.get(..12) {
        Some(head) if hex.len() > 12 => match algorithm {
            "" => format!("{head}…"),
            a => format!("{a}:{head}…"),
        },
        _ => digest.to_owned(),
    }
}

/// `2026-11-22 08:15 UTC`, or `never`.
pub fn when(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never".to_owned(), date_time)
}

/// Percent-encodes a value for a query string.
pub fn percent(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .map(|s| s[2..].to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date_time(90_000), "1970-01-01 00:01 UTC");
        assert_eq!(count(999), "999");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(stars(3.6), "★★★★☆");
        assert_eq!(stars(0.0), "☆☆☆☆☆");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(counted(1, "download", "downloads"), "1 download");
        assert_eq!(counted(0, "download", "downloads"), "0 downloads");
        assert_eq!(counted(2, "review", "reviews"), "2 reviews");
        assert_eq!(counted(12_345, "plugin", "plugins"), "12.3k plugins");
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab…"
        );
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(when(None), "never");
    }
}
