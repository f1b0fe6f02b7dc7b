//! Teeing the primary's answer: it streams to the client frame by frame as
//! it arrives, while the same frames (reference-counted `Bytes`, no copy)
//! are kept, up to the compare limit, for the comparison.
//!
//! The capture is handed to the mirror task through a oneshot when the body
//! ends, fails, or is dropped. The client never waits for anyone: sending on
//! a oneshot does not block, and nobody receiving is fine.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use parallax_compare::{FieldSpan, Fields};
use tokio::sync::oneshot;

/// What became of the primary's body.
#[derive(Debug)]
pub enum Captured {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// Longer than the compare limit: streamed on, not kept.
    TooLarge,
    /// Failed or abandoned (client gone) before its end.
    Aborted,
}

/// The primary's answer headers (hop-by-hop headers removed) as its path
/// had them: made into the comparison's fields ([`AnswerHeaders::fields`])
/// by the mirror task, off the client's path.
#[derive(Debug)]
pub enum AnswerHeaders {
    /// A copy of hyper's map.
    Map(HeaderMap),
    /// The raw HTTP/1.1 path's `name: value\r\n` lines
    /// ([`crate::h1::response::AnswerHead::headers`]), copied once, and
    /// where the parse wrote each name and value in them
    /// ([`crate::h1::response::AnswerHead::fields`]): the comparison's
    /// fields point into them (no map, no text per field, no second scan).
    Lines(Vec<u8>, Vec<FieldSpan>),
}

impl AnswerHeaders {
    /// The headers as the comparison reads them.
    pub fn fields(self) -> Fields {
        match self {
            AnswerHeaders::Map(map) => crate::service::header_fields(&map),
            AnswerHeaders::Lines(lines, spans) => Fields::from_spans(lines, spans),
        }
    }
}

/// The primary's answer as the comparison needs it.
#[derive(Debug)]
pub struct PrimaryCapture {
    pub status: u16,
    pub headers: AnswerHeaders,
    pub body: Captured,
    /// Trailer fields, when the body ended with some (gRPC).
    pub trailers: Vec<(String, String)>,
}

/// The body's chunks kept so far: most bodies come in one chunk, kept
/// without a list (no allocation per mirrored request). As small as the
/// list it replaced, so a teed body is no larger.
#[derive(Default)]
enum Kept {
    #[default]
    Nothing,
    One(Bytes),
    Many(Vec<Bytes>),
}

/// A capture being filled: the one place that says what the comparison
/// gets of the primary's body (kept up to `limit`, `TooLarge` past it,
/// `Aborted` when dropped before its end). [`TeeBody`] feeds it frames;
/// the raw HTTP/1.1 path ([`crate::h1`]) feeds it the body it relays.
pub(crate) struct Capture(Option<Pending>);

struct Pending {
    status: u16,
    headers: AnswerHeaders,
    trailers: Vec<(String, String)>,
    kept: Kept,
    len: usize,
    limit: usize,
    tx: oneshot::Sender<PrimaryCapture>,
}

impl Capture {
    /// A capture of an answer with `status` and `headers` (hop-by-hop
    /// headers removed), keeping up to `limit` bytes, sent to `tx`.
    pub(crate) fn new(
        status: u16,
        headers: AnswerHeaders,
        limit: usize,
        tx: oneshot::Sender<PrimaryCapture>,
    ) -> Self {
        Self(Some(Pending {
            status,
            headers,
            trailers: Vec::new(),
            kept: Kept::Nothing,
            len: 0,
            limit,
            tx,
        }))
    }

    /// The next bytes of the body: kept, or, past the limit, the capture
    /// is sent as too large and the rest ignored.
    pub(crate) fn data(&mut self, data: impl FnOnce() -> Bytes, len: usize) {
        if let Some(p) = self.0.as_mut() {
            p.len += len;
            if p.len > p.limit {
                if let Some(p) = self.0.take() {
                    p.finish(Captured::TooLarge);
                }
            } else {
                p.kept = match std::mem::take(&mut p.kept) {
                    Kept::Nothing => Kept::One(data()),
                    Kept::One(first) => Kept::Many(vec![first, data()]),
                    Kept::Many(mut all) => {
                        all.push(data());
                        Kept::Many(all)
                    }
                };
            }
        }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(p) = self.0.as_mut() {
            p.trailers = crate::service::header_list(trailers);
        }
    }

    /// The body ended: the capture is sent (unless it already was).
    pub(crate) fn end(&mut self) {
        if let Some(p) = self.0.take() {
            p.complete();
        }
    }

    /// The body failed before its end.
    fn abort(&mut self) {
        if let Some(p) = self.0.take() {
            p.finish(Captured::Aborted);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Pending {
    fn finish(self, body: Captured) {
        // The mirror task may be gone (e.g. runtime shutting down): fine.
        let _ = self.tx.send(PrimaryCapture {
            status: self.status,
            headers: self.headers,
            body,
            trailers: self.trailers,
        });
    }

    fn complete(mut self) {
        let body = match std::mem::take(&mut self.kept) {
            Kept::Nothing => Bytes::new(),
            // Taken, not cloned: a clone of a `Bytes` made from a `Vec`
            // allocates its shared header.
            Kept::One(body) => body,
            Kept::Many(chunks) => {
                let mut all = BytesMut::with_capacity(self.len);
                for c in &chunks {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        };
        self.finish(Captured::Complete(body));
    }
}

/// A body that passes `inner` through and captures it.
pub struct TeeBody<B> {
    inner: B,
    capture: Capture,
}

impl<B> std::fmt::Debug for TeeBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeeBody")
            .field("capturing", &self.capture.0.is_some())
            .finish()
    }
}

impl<B: Body<Data = Bytes> + Unpin> TeeBody<B> {
    /// Tees `inner`, keeping up to `limit` bytes; the capture, with `status`
    /// and `headers`, goes to `tx`.
    pub fn new(
        inner: B,
        status: u16,
        headers: HeaderMap,
        limit: usize,
        tx: oneshot::Sender<PrimaryCapture>,
    ) -> Self {
        let mut tee = Self {
            inner,
            capture: Capture::new(status, AnswerHeaders::Map(headers), limit, tx),
        };
        // hyper never polls a body that is empty from the start (HEAD, 204).
        if tee.inner.is_end_stream() {
            tee.capture.end();
        }
        tee
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TeeBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.capture.trailers(trailers);
                }
                if let Some(data) = frame.data_ref() {
                    this.capture.data(|| data.clone(), data.len());
                }
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.capture.end();
                }
            }
            Some(Err(_)) => this.capture.abort(),
            None => this.capture.end(),
        }
        Poll::Ready(polled)
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
    use http_body_util::{BodyExt, Full};
    use std::collections::VecDeque;
    use std::convert::Infallible;

    /// A body of ready chunks that says it has ended once they are out.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| Bytes::from_static(p)).collect())
    }

    #[tokio::test]
    async fn streams_everything_and_captures_within_the_limit() {
        let (tx, rx) = oneshot::channel();
        let tee = TeeBody::new(chunks(&[b"ab", b"cd"]), 200, HeaderMap::new(), 10, tx);
        let out = tee.collect().await.unwrap().to_bytes();
        assert_eq!(out, "abcd");
        match rx.await.unwrap().body {
            Captured::Complete(b) => assert_eq!(b, "abcd"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_long_body_streams_whole_but_is_not_kept() {
        let (tx, rx) = oneshot::channel();
        let tee = TeeBody::new(chunks(&[b"abc", b"def"]), 200, HeaderMap::new(), 4, tx);
        assert_eq!(tee.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(matches!(rx.await.unwrap().body, Captured::TooLarge));
    }

    #[tokio::test]
    async fn an_abandoned_body_is_aborted() {
        let (tx, rx) = oneshot::channel();
        drop(TeeBody::new(
            chunks(&[b"abc"]),
            200,
            HeaderMap::new(),
            4,
            tx,
        ));
        assert!(matches!(rx.await.unwrap().body, Captured::Aborted));
    }

    #[tokio::test]
    async fn an_empty_body_is_complete_without_being_polled() {
        let (tx, rx) = oneshot::channel();
        let _tee = TeeBody::new(Full::new(Bytes::new()), 204, HeaderMap::new(), 4, tx);
        let capture = rx.await.unwrap();
        assert_eq!(capture.status, 204);
        assert!(matches!(capture.body, Captured::Complete(b) if b.is_empty()));
    }
}
