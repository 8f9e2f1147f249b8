//! An answer to a request whose body the handler left unread says `Connection: close`.
//!
//! Some answers come before the body is read: an upload of bytes the caller sent before,
//! a refusal (401, 403, 413) decided from the head alone. hyper then stops reading and
//! closes the connection once the answer is out, but the answer was written before it
//! knew, saying nothing of the close. A client that sends its next request on that
//! connection at once (a publish's POST right after such a PUT) races the close, loses,
//! and gets "connection closed before message completed" for a request it may not simply
//! send again. Told `Connection: close`, it opens a new connection instead.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Runs the request; its answer closes the connection unless the handler read the body
/// to its end. Requests without a body (most) pass untouched, and so does HTTP/2, where
/// a stream ends on its own and `Connection` is not allowed.
pub async fn close_if_unread(request: Request, next: Next) -> Response {
    let http1 = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
    if !http1 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let ended = Arc::new(AtomicBool::new(false));
    let watched = ended.clone();
    let request = request.map(|inner| {
        Body::new(Watched {
            inner,
            ended: watched,
        })
    });
    let mut response = next.run(request).await;
    if !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct Watched {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // The end, or the last frame of a body whose length says so (readers such as
        // `to_bytes` stop there without polling again). An error is no end: what is left
        // of the body on the connection is unknown.
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.ended.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::{get, put};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::listen::{HttpLimits, serve};

    /// The real serve loop with three routes: one that answers without reading the body,
    /// one that reads it all, one with no body at all.
    async fn server() -> String {
        let app = Router::new()
            .route("/ignore", put(|| async { "not read" }))
            .route(
                "/read",
                put(|body: axum::body::Bytes| async move { format!("read {}", body.len()) }),
            )
            .route("/get", get(|| async { "got" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(
            listener,
            app,
            HttpLimits::default(),
            None,
            std::future::pending(),
        ));
        addr
    }

    /// Reads one answer's head (lowercased) and its `content-length` body.
    async fn answer(stream: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
                .await
                .expect("an answer within 5 s")
                .unwrap();
            assert_eq!(n, 1, "the connection closed before an answer: {got:?}");
            got.push(byte[0]);
        }
        let head = String::from_utf8(got).unwrap().to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.unwrap();
        head
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_read_closes_the_connection_and_says_so() {
        let addr = server().await;
        // A large body the handler never reads: hyper will close the connection after
        // the answer, and the answer must say so.
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"PUT /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 4194304\r\n\r\n")
            .await
            .unwrap();
        stream.write_all(&[7u8; 65536]).await.unwrap();
        let head = answer(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("connection: close"), "{head}");

        // A body read to its end, and a request with none, keep the connection: a second
        // request on it is answered.
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        for _ in 0..2 {
            stream
                .write_all(b"PUT /read HTTP/1.1\r\nhost: x\r\ncontent-length: 70000\r\n\r\n")
                .await
                .unwrap();
            stream.write_all(&[7u8; 70000]).await.unwrap();
            let head = answer(&mut stream).await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            stream
                .write_all(b"GET /get HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let head = answer(&mut stream).await;
            assert!(!head.contains("connection: close"), "{head}");
        }
        // Chunked bodies too.
        stream
            .write_all(b"PUT /read HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            .await
            .unwrap();
        let head = answer(&mut stream).await;
        assert!(!head.contains("connection: close"), "{head}");
    }
}
