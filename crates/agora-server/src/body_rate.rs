//! A floor under how slowly a request body may arrive. The idle timeout cuts a body that
//! stops; this cuts one that trickles (a byte every few seconds keeps an idle timer happy
//! and a connection, a task and a buffer busy for days). After a grace period, a body
//! whose average rate since its first poll is under the floor ends with an error, which
//! the handler answers as an interrupted upload.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// The floor: bytes per second, averaged from the first poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    /// How long a body may take before the floor applies (a client's first bytes may
    /// follow a pause: a TCP window opening, a slow start).
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived at {rate} bytes/s, under the server's floor of {floor} bytes/s (limits.min_body_bytes_per_sec)"
)]
pub struct TooSlow {
    rate: u64,
    floor: u64,
}

/// `inner`, ending with [`TooSlow`] once it falls under `floor`.
pub fn limited(inner: Body, floor: MinRate) -> Body {
    Body::new(RateBody {
        inner,
        floor,
        started: None,
        received: 0,
    })
}

struct RateBody {
    inner: Body,
    floor: MinRate,
    started: Option<Instant>,
    received: u64,
}

impl RateBody {
    /// The average rate so far, when it is under the floor past the grace period.
    fn too_slow(&self, now: Instant) -> Option<TooSlow> {
        let elapsed = now.duration_since(self.started?);
        if elapsed <= self.floor.grace {
            return None;
        }
        let rate = (self.received as f64 / elapsed.as_secs_f64()) as u64;
        (rate < self.floor.bytes_per_sec).then_some(TooSlow {
            rate,
            floor: self.floor.bytes_per_sec,
        })
    }
}

impl HttpBody for RateBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let now = Instant::now();
        self.started.get_or_insert(now);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.received += data.len() as u64;
        }
        // Checked when data comes (the idle timeout already ends a body that stops).
        if matches!(polled, Poll::Ready(Some(Ok(_))))
            && let Some(slow) = self.too_slow(now)
        {
            metrics::counter!("agora_slow_bodies_cut_total").increment(1);
            return Poll::Ready(Some(Err(axum::Error::new(slow))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body fed through a channel, under the floor of [`floor`].
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        (tx, limited(Body::from_stream(stream), floor()))
    }

    fn floor() -> MinRate {
        MinRate {
            bytes_per_sec: 100,
            grace: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn a_body_that_trickles_is_cut_after_the_grace_period() {
        let (tx, body) = channel_body();
        let reader = tokio::spawn(async move { axum::body::to_bytes(body, usize::MAX).await });
        for _ in 0..5 {
            // Once the body is cut, nothing reads the channel any more.
            let _ = tx.try_send(Bytes::from_static(b"x"));
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        drop(tx);
        let err = reader.await.unwrap().unwrap_err();
        assert!(
            err.to_string().contains("under the server's floor of 100"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_body_at_a_fair_rate_arrives_whole() {
        let (tx, body) = channel_body();
        let reader = tokio::spawn(async move { axum::body::to_bytes(body, usize::MAX).await });
        for _ in 0..5 {
            tx.try_send(Bytes::from(vec![b'x'; 64])).unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        drop(tx);
        let bytes = reader.await.unwrap().unwrap();
        assert_eq!(bytes.len(), 5 * 64);
    }
}
