//! Prometheus metrics: one recorder per process, a middleware counting requests by route
//! and status with a latency histogram, and domain counters.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process-wide metrics handle, installing the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("agora_http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .expect("latency buckets are valid");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (e.g. by an embedding host); then our
        // metrics go there and this handle renders only what it sees.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The label of a request method: one of the standard methods, else `other`. Labels are
/// series: a label taken from the request as sent would let anyone create a series per
/// request (any token is a valid method name).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    request_done(&method, route, response.status().as_u16(), started);
    response
}

/// Counts one answered request under `route`, a route template from a fixed set (never a
/// raw path, so the label set stays bounded).
pub fn request_done(method: &axum::http::Method, route: String, status: u16, started: Instant) {
    let method = method_label(method);
    metrics::counter!("agora_http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("agora_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
}

pub fn published() {
    metrics::counter!("agora_publishes_total").increment(1);
}

pub fn downloaded(bytes: u64) {
    metrics::counter!("agora_blob_downloads_total").increment(1);
    metrics::counter!("agora_blob_download_bytes_total").increment(bytes);
}

/// A download answered with a redirect to presigned storage (the bytes are not counted:
/// they never pass through this server).
pub fn redirected() {
    metrics::counter!("agora_blob_download_redirects_total").increment(1);
}

pub fn uploaded(bytes: u64) {
    metrics::counter!("agora_blob_uploads_total").increment(1);
    metrics::counter!("agora_blob_upload_bytes_total").increment(bytes);
}

/// The analytics intake's counts since start: events taken, written to the store, dropped
/// (a full buffer or a failed write), and waiting. One series each, whatever the traffic.
pub fn analytics(stats: &agora_registry::analytics::IntakeStats) {
    for (outcome, n) in [
        ("taken", stats.taken),
        ("written", stats.written),
        ("dropped", stats.dropped),
    ] {
        metrics::counter!("agora_analytics_events_total", "outcome" => outcome).absolute(n);
    }
    metrics::gauge!("agora_analytics_events_buffered").set(stats.buffered as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_come_from_a_fixed_set() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes("X".repeat(2000).as_bytes()).unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }
}
