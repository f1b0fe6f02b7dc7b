//! Teeing a streamed request body: it goes to the primary frame by frame as
//! the client sends it, while the data (reference-counted `Bytes`, no copy)
//! is kept for up to two readers of the copy, each with its own limit: the
//! shadow's copy (up to `max_mirror_body_bytes`) and the recorder's (up to
//! `[services.record] max_body_bytes`).
//!
//! Why not buffer it first, as a request with a `Content-Length` is: a
//! bidirectional or client-streaming call (gRPC server reflection, say)
//! whose client waits for an answer before it sends more, or before it ends
//! its side, would wait for ever — the primary would get nothing until the
//! client ended, and the client would not end before the primary answered.
//! So the primary gets each frame at once, trailers included, and the
//! shadow gets its copy when the client's body has ended: the copy goes to
//! the mirror task through a oneshot ([`RequestCopy`]), which never blocks
//! the client's side. Past the limit the copy is given up (the primary's
//! stream goes on untouched), and a copy nobody waits for any more (the
//! mirror task gave up) is let go at once, so the memory kept stays bounded
//! by the in-flight slots. The recorder's copy ([`crate::record`]) is the
//! same `Bytes` handed over a second oneshot: one tee feeds both, and what
//! is kept is bounded by the larger limit while either still wants it (a
//! recorded stream holds up to the recorder's `max_body_bytes` until the
//! client ends it or goes away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

/// Whether a mirrored request's body is a stream to tee rather than a body
/// to buffer: gRPC (whose calls may be bidirectional), or any body of no
/// declared length (HTTP/2 without `Content-Length`, HTTP/1.1 chunked).
pub fn is_stream(head: &Parts, body: &impl Body) -> bool {
    !body.is_end_stream() && streams_a_body(head)
}

/// Whether a request with a body, by its head, sends that body as a
/// stream: gRPC, or no declared length.
pub fn streams_a_body(head: &Parts) -> bool {
    let grpc = head
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    grpc || !head.headers.contains_key(CONTENT_LENGTH)
}

/// What became of the client's body, for the shadow's copy.
#[derive(Debug)]
pub enum RequestCopy {
    /// The whole body, within the limit.
    Complete(Vec<Bytes>),
    /// Longer than `max_mirror_body_bytes`: not kept.
    TooLarge,
    /// Failed or abandoned before its end.
    Aborted,
}

/// One reader of the copy: where it goes, and the most it takes.
#[derive(Debug)]
pub struct CopyFor {
    limit: u64,
    tx: oneshot::Sender<RequestCopy>,
}

impl CopyFor {
    /// A copy of up to `limit` bytes, sent to `tx`.
    pub fn new(limit: u64, tx: oneshot::Sender<RequestCopy>) -> Self {
        Self { limit, tx }
    }

    fn send(self, copy: RequestCopy) {
        // The reader may have given up: fine.
        let _ = self.tx.send(copy);
    }
}

/// The copy being kept, and its readers (the mirror task, the recorder):
/// two at most, so an array (no allocation per request).
struct Keeping {
    chunks: Vec<Bytes>,
    len: u64,
    readers: [Option<CopyFor>; 2],
}

/// What becomes of a reader as the body goes on.
enum Verdict {
    Keep,
    /// It stopped waiting: nothing to send.
    LetGo,
    /// Told now, and let go.
    Send(RequestCopy),
}

impl Keeping {
    /// Applies `verdict` to every reader; whether any reader is left.
    fn judge(&mut self, mut verdict: impl FnMut(&mut CopyFor) -> Verdict) -> bool {
        for slot in &mut self.readers {
            let Some(reader) = slot.as_mut() else {
                continue;
            };
            match verdict(reader) {
                Verdict::Keep => {}
                Verdict::LetGo => *slot = None,
                Verdict::Send(copy) => {
                    if let Some(reader) = slot.take() {
                        reader.send(copy);
                    }
                }
            }
        }
        self.readers.iter().any(Option::is_some)
    }

    /// The body ended: every reader left gets the chunks kept.
    fn complete(self) {
        match self.readers {
            [Some(a), Some(b)] => {
                a.send(RequestCopy::Complete(self.chunks.clone()));
                b.send(RequestCopy::Complete(self.chunks));
            }
            [Some(one), None] | [None, Some(one)] => one.send(RequestCopy::Complete(self.chunks)),
            [None, None] => {}
        }
    }

    /// The body failed or was dropped before its end.
    fn abort(self) {
        for reader in self.readers.into_iter().flatten() {
            reader.send(RequestCopy::Aborted);
        }
    }
}

/// A request body that passes `inner` through to the primary and keeps a
/// bounded copy for the shadow, the recorder, or both.
pub struct RequestTee<B = Incoming> {
    inner: B,
    keeping: Option<Keeping>,
}

impl<B> std::fmt::Debug for RequestTee<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTee")
            .field("keeping", &self.keeping.is_some())
            .finish()
    }
}

impl<B: Body<Data = Bytes> + Unpin> RequestTee<B> {
    /// Tees `inner` for `readers` (the mirror task's copy, the recorder's:
    /// either may be absent), each kept up to its own limit.
    pub fn new(inner: B, readers: [Option<CopyFor>; 2]) -> Self {
        let keeping = readers.iter().any(Option::is_some).then_some(Keeping {
            chunks: Vec::new(),
            len: 0,
            readers,
        });
        let mut tee = Self { inner, keeping };
        // hyper never polls a body that is empty from the start.
        if tee.inner.is_end_stream() {
            tee.complete();
        }
        tee
    }

    fn complete(&mut self) {
        if let Some(k) = self.keeping.take() {
            k.complete();
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for RequestTee<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(polled) => polled,
            Poll::Pending => {
                // While the client is quiet, notice a reader that gave up
                // (a mirror task past its deadline), so its copy is not held
                // until the next frame.
                if let Some(k) = this.keeping.as_mut() {
                    let left = k.judge(|r| match r.tx.poll_closed(cx) {
                        Poll::Ready(()) => Verdict::LetGo,
                        Poll::Pending => Verdict::Keep,
                    });
                    if !left {
                        this.keeping = None;
                    }
                }
                return Poll::Pending;
            }
        };
        match &polled {
            Some(Ok(frame)) => {
                if let (Some(data), Some(k)) = (frame.data_ref(), this.keeping.as_mut()) {
                    k.len += data.len() as u64;
                    let len = k.len;
                    // Past a reader's limit it is told at once; one that
                    // stopped waiting is let go.
                    let left = k.judge(|r| {
                        if len > r.limit {
                            Verdict::Send(RequestCopy::TooLarge)
                        } else if r.tx.is_closed() {
                            Verdict::LetGo
                        } else {
                            Verdict::Keep
                        }
                    });
                    if !left {
                        this.keeping = None;
                    } else if !data.is_empty() {
                        k.chunks.push(data.clone());
                    }
                }
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.complete();
                }
            }
            Some(Err(_)) => {
                if let Some(k) = this.keeping.take() {
                    k.abort();
                }
            }
            None => this.complete(),
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

impl<B> Drop for RequestTee<B> {
    fn drop(&mut self) {
        if let Some(k) = self.keeping.take() {
            k.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Request};
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use std::convert::Infallible;
    use tokio::sync::mpsc;

    type Frames = StreamBody<futures::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

    /// A body fed frame by frame by the test.
    fn channel() -> (mpsc::UnboundedSender<Frame<Bytes>>, Frames) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok)));
        (tx, StreamBody::new(Box::pin(stream) as _))
    }

    fn data(s: &'static str) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(s.as_bytes()))
    }

    fn head(headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder();
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn grpc_and_undeclared_lengths_are_streams_a_declared_length_or_no_body_is_not() {
        let body = Full::new(Bytes::from_static(b"x"));
        assert!(is_stream(&head(&[]), &body));
        assert!(is_stream(
            &head(&[
                ("content-type", "application/grpc+proto"),
                ("content-length", "1")
            ]),
            &body
        ));
        assert!(!is_stream(&head(&[("content-length", "1")]), &body));
        assert!(!is_stream(
            &head(&[("content-type", "application/grpc")]),
            &Empty::<Bytes>::new()
        ));
    }

    #[tokio::test]
    async fn each_frame_passes_on_as_it_arrives_and_the_copy_comes_at_the_end() {
        let (frames, body) = channel();
        let (tx, mut rx) = oneshot::channel();
        let mut tee = RequestTee::new(body, [Some(CopyFor::new(10, tx)), None]);
        frames.send(data("ab")).unwrap();
        let first = tee.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        // The first frame went on before the client sent the next.
        assert!(rx.try_recv().is_err());
        frames.send(data("cd")).unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-end", "1".parse().unwrap());
        frames.send(Frame::trailers(trailers)).unwrap();
        drop(frames);
        let rest = tee.collect().await.unwrap();
        assert_eq!(rest.trailers().unwrap()["x-end"], "1");
        assert_eq!(rest.to_bytes(), "cd");
        match rx.await.unwrap() {
            RequestCopy::Complete(chunks) => assert_eq!(chunks.concat(), b"abcd"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn past_the_limit_the_copy_is_given_up_and_the_body_streams_whole() {
        let (frames, body) = channel();
        let (tx, mut rx) = oneshot::channel();
        let mut tee = RequestTee::new(body, [Some(CopyFor::new(4, tx)), None]);
        frames.send(data("abc")).unwrap();
        tee.frame().await.unwrap().unwrap();
        frames.send(data("def")).unwrap();
        tee.frame().await.unwrap().unwrap();
        // Told at once, before the client's body has ended.
        assert!(matches!(rx.try_recv(), Ok(RequestCopy::TooLarge)));
        frames.send(data("gh")).unwrap();
        drop(frames);
        assert_eq!(tee.collect().await.unwrap().to_bytes(), "gh");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_aborted() {
        let (frames, body) = channel();
        let (tx, rx) = oneshot::channel();
        let mut tee = RequestTee::new(body, [Some(CopyFor::new(10, tx)), None]);
        frames.send(data("ab")).unwrap();
        tee.frame().await.unwrap().unwrap();
        drop(tee);
        assert!(matches!(rx.await.unwrap(), RequestCopy::Aborted));
    }

    #[tokio::test]
    async fn a_copy_nobody_waits_for_is_let_go_while_the_client_is_quiet() {
        let (frames, body) = channel();
        let (tx, rx) = oneshot::channel();
        let mut tee = RequestTee::new(body, [Some(CopyFor::new(10, tx)), None]);
        frames.send(data("ab")).unwrap();
        tee.frame().await.unwrap().unwrap();
        assert!(tee.keeping.as_ref().is_some_and(|k| k.chunks.len() == 1));
        drop(rx);
        // Nothing to read: the poll notices the closed receiver.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(Pin::new(&mut tee).poll_frame(&mut cx).is_pending());
        assert!(tee.keeping.is_none());
        drop(frames);
    }

    #[tokio::test]
    async fn two_readers_each_get_the_copy_within_their_own_limit() {
        let (frames, body) = channel();
        let (mirror_tx, mut mirror) = oneshot::channel();
        let (record_tx, record) = oneshot::channel();
        let mut tee = RequestTee::new(
            body,
            [
                Some(CopyFor::new(4, mirror_tx)),
                Some(CopyFor::new(10, record_tx)),
            ],
        );
        frames.send(data("abc")).unwrap();
        tee.frame().await.unwrap().unwrap();
        frames.send(data("def")).unwrap();
        tee.frame().await.unwrap().unwrap();
        // Past the mirror's limit only: the mirror is told at once.
        assert!(matches!(mirror.try_recv(), Ok(RequestCopy::TooLarge)));
        frames.send(data("gh")).unwrap();
        drop(frames);
        assert_eq!(tee.collect().await.unwrap().to_bytes(), "gh");
        match record.await.unwrap() {
            RequestCopy::Complete(chunks) => assert_eq!(chunks.concat(), b"abcdefgh"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reader_that_stops_waiting_leaves_the_other_its_copy() {
        let (frames, body) = channel();
        let (mirror_tx, mirror) = oneshot::channel();
        let (record_tx, record) = oneshot::channel();
        let mut tee = RequestTee::new(
            body,
            [
                Some(CopyFor::new(10, mirror_tx)),
                Some(CopyFor::new(10, record_tx)),
            ],
        );
        frames.send(data("ab")).unwrap();
        tee.frame().await.unwrap().unwrap();
        drop(mirror);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(Pin::new(&mut tee).poll_frame(&mut cx).is_pending());
        assert!(tee.keeping.is_some(), "the recorder still wants it");
        drop(record);
        assert!(Pin::new(&mut tee).poll_frame(&mut cx).is_pending());
        assert!(tee.keeping.is_none(), "nobody wants it: let go");
        drop(frames);
    }

    #[tokio::test]
    async fn an_empty_body_is_complete_without_being_polled() {
        let (tx, rx) = oneshot::channel();
        let _tee = RequestTee::new(Empty::<Bytes>::new(), [None, Some(CopyFor::new(10, tx))]);
        assert!(matches!(rx.await.unwrap(), RequestCopy::Complete(c) if c.is_empty()));
    }
}
