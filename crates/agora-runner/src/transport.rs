//! HTTP/1.1 over the Unix socket a native plugin listens on.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::{MAX_OUTPUT_BYTES, RunError};

/// Why an exchange failed: the plugin may be gone, or it may have answered nonsense.
pub(crate) enum ExchangeError {
    Connect(std::io::Error),
    Protocol(String),
}

/// One request on a fresh connection; the body is read whole, up to
/// [`MAX_OUTPUT_BYTES`].
pub(crate) async fn exchange(
    socket: &Path,
    request: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, ExchangeError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(ExchangeError::Connect)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    // HTTP/1.1 to an origin server: the request target is the path, not the full URI.
    let mut request = request;
    if let Some(path) = request.uri().path_and_query().cloned() {
        *request.uri_mut() = http::Uri::from(path);
    }
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender
            .send_request(request.map(Full::new))
            .await
            .map_err(|e| ExchangeError::Protocol(format!("no valid HTTP answer: {e}")))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_OUTPUT_BYTES)
            .collect()
            .await
            .map_err(|e| ExchangeError::Protocol(format!("cannot read the response body: {e}")))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
    .await;
    driver.abort();
    result
}

impl From<ExchangeError> for RunError {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::Connect(e) => RunError::Crashed(format!("cannot reach the plugin: {e}")),
            ExchangeError::Protocol(p) => RunError::Protocol(p),
        }
    }
}
