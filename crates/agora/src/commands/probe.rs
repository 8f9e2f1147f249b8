//! `agora probe`: one HTTP GET that exits 0 on a 2xx answer, for container health checks
//! (the image is built from scratch: no shell, no curl).

use std::time::Duration;

use anyhow::Context;

use crate::output::Output;

/// The port `agora serve` listens on when neither AGORA_LISTEN nor a flag says otherwise
/// in the container image (`deploy/image/Containerfile`).
const DEFAULT_PORT: &str = "8080";

/// `url` as given when it is a URL; a path (`/ready`) goes to this host's server, at the
/// address in `listen` (AGORA_LISTEN) with an unspecified host (`0.0.0.0`, `[::]`)
/// replaced by loopback, else `127.0.0.1:8080`.
pub fn target(url: &str, listen: Option<&str>) -> anyhow::Result<String> {
    if !url.starts_with('/') {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "cannot probe {url:?}: expected an http:// or https:// URL, or a path such as /ready"
        );
        return Ok(url.to_owned());
    }
    let listen = listen.map(str::trim).filter(|l| !l.is_empty());
    let (host, port) = match listen {
        Some(listen) => listen.rsplit_once(':').with_context(|| {
            format!(
                "AGORA_LISTEN is {listen:?}, which has no port: expected HOST:PORT, such as \
                 0.0.0.0:8080 (or pass the whole URL to probe)"
            )
        })?,
        None => ("127.0.0.1", DEFAULT_PORT),
    };
    anyhow::ensure!(
        !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()),
        "AGORA_LISTEN names the port {port:?}: expected a number, as in 0.0.0.0:8080 (or pass \
         the whole URL to probe)"
    );
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" | "::" => "[::1]",
        other => other,
    };
    Ok(format!("http://{host}:{port}{url}"))
}

pub async fn probe(url: &str, timeout: Duration, out: &Output) -> anyhow::Result<()> {
    let listen = std::env::var("AGORA_LISTEN").ok();
    let url = target(url, listen.as_deref())?;
    // A probe asks this host's server: never through a proxy from the environment.
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")?;
    let response = client.get(&url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {} s", timeout.as_secs())
        } else if e.is_connect() {
            "nothing answers there (is the server running and listening on that address?)"
                .to_owned()
        } else {
            e.to_string()
        };
        anyhow::anyhow!("probe of {url} failed: {why}")
    })?;
    let status = response.status();
    if !status.is_success() {
        // The problem document's detail says why (e.g. "database unreachable: ..."); a
        // plain-text body's first line may; a page says nothing a log line could use.
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let body = response.text().await.unwrap_or_default();
        let detail = match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(problem) => problem["detail"].as_str().unwrap_or_default().to_owned(),
            Err(_) if html => String::new(),
            Err(_) => body
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
        };
        let detail = detail.trim();
        anyhow::bail!(
            "probe of {url} answered {status}{}{detail}",
            if detail.is_empty() { "" } else { ": " }
        );
    }
    out.show(
        &serde_json::json!({ "url": url, "status": status.as_u16() }),
        |_| format!("{url}: {status}"),
    )
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn a_path_goes_to_the_listen_address_with_loopback_for_an_unspecified_host() {
        let cases = [
            ("/ready", None, "http://127.0.0.1:8080/ready"),
            (
                "/ready",
                Some("0.0.0.0:9000"),
                "http://127.0.0.1:9000/ready",
            ),
            ("/health", Some("[::]:8080"), "http://[::1]:8080/health"),
            (
                "/health",
                Some("10.1.2.3:8080"),
                "http://10.1.2.3:8080/health",
            ),
            (
                "http://example.test/health",
                Some("0.0.0.0:1"),
                "http://example.test/health",
            ),
        ];
        for (url, listen, expected) in cases {
            assert_eq!(target(url, listen).unwrap(), expected, "{url} {listen:?}");
        }
    }

    #[test]
    fn a_bad_target_says_what_is_expected() {
        let cases = [
            (
                "example.test/health",
                None,
                "expected an http:// or https:// URL",
            ),
            ("/ready", Some("0.0.0.0"), "no port"),
            ("/ready", Some("0.0.0.0:http"), "expected a number"),
        ];
        for (url, listen, expected) in cases {
            let e = target(url, listen).unwrap_err().to_string();
            assert!(e.contains(expected), "{url} {listen:?}: {e}");
        }
    }
}
