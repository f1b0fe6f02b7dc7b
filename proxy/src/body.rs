//! The body types on both hops.
//!
//! - [`UpstreamBody`]: what the proxy sends to an upstream: buffered chunks
//!   (the request body read for mirroring), optionally followed by the rest
//!   of the client's body still streaming in, as it is or teed for the
//!   shadow ([`RequestTee`]).
//! - [`AnswerBody`]: an upstream's answer; when it came over a pooled
//!   HTTP/1.1 connection, it gives the connection back to its pool the
//!   moment the body has been read to the end.
//! - [`ResponseBody`]: what the client gets: the primary's body streamed
//!   (through a [`TeeBody`] when the answer is to be compared), or a small
//!   answer of the proxy's own.
//!
//! Both are plain enums/structs rather than boxed trait objects: no
//! allocation per request for the body type.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::request_tee::RequestTee;
use crate::tee::TeeBody;
use crate::upstream::Checkin;

/// A request body for an upstream.
#[derive(Debug)]
pub struct UpstreamBody {
    prefix: VecDeque<Bytes>,
    prefix_len: u64,
    rest: Option<Rest>,
    /// Set when `rest` (the client's body) fails, so the caller can tell a
    /// downstream failure from a primary one. Relaxed: read after the
    /// request future has completed, which orders it.
    downstream_failed: Option<Arc<AtomicBool>>,
}

impl UpstreamBody {
    /// A body of buffered chunks only.
    pub fn buffered(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let prefix: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        Self {
            prefix_len: prefix.iter().map(|c| c.len() as u64).sum(),
            prefix,
            rest: None,
            downstream_failed: None,
        }
    }

    /// Buffered chunks followed by the rest of the client's body; a failure
    /// of the latter is recorded in `downstream_failed`.
    pub fn streaming(
        chunks: impl IntoIterator<Item = Bytes>,
        rest: Incoming,
        downstream_failed: Arc<AtomicBool>,
    ) -> Self {
        let mut body = Self::buffered(chunks);
        body.rest = Some(Rest::Plain(rest));
        body.downstream_failed = Some(downstream_failed);
        body
    }

    /// The client's body, teed for the shadow as it streams to the primary;
    /// a failure is recorded in `downstream_failed`.
    pub fn teed(tee: RequestTee, downstream_failed: Arc<AtomicBool>) -> Self {
        let mut body = Self::buffered([]);
        body.rest = Some(Rest::Teed(tee));
        body.downstream_failed = Some(downstream_failed);
        body
    }
}

/// The client's body still to come.
#[derive(Debug)]
enum Rest {
    Plain(Incoming),
    Teed(RequestTee),
}

impl Body for Rest {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Rest::Plain(b) => Pin::new(b).poll_frame(cx),
            Rest::Teed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Rest::Plain(b) => b.is_end_stream(),
            Rest::Teed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Rest::Plain(b) => b.size_hint(),
            Rest::Teed(b) => b.size_hint(),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(chunk) = this.prefix.pop_front() {
            this.prefix_len -= chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(rest).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            if let Some(flag) = &this.downstream_failed {
                flag.store(true, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.rest {
            None => SizeHint::with_exact(self.prefix_len),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower() + self.prefix_len);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + self.prefix_len);
                }
                out
            }
        }
    }
}

/// An upstream's answer body, holding its pooled connection (if any)
/// until the end: then the connection goes back to the pool, at once and
/// without a task. Dropped before the end, it drops the connection too
/// (hyper closes a connection whose answer was abandoned).
#[derive(Debug)]
pub struct AnswerBody {
    inner: Incoming,
    checkin: Option<Checkin>,
}

impl AnswerBody {
    /// `inner`, whose connection `checkin` goes back when it has ended.
    pub fn pooled(inner: Incoming, checkin: Checkin) -> Self {
        let mut body = Self {
            inner,
            checkin: Some(checkin),
        };
        // hyper never polls a body that is empty from the start (HEAD, 204).
        body.give_back_at_end();
        body
    }

    fn give_back_at_end(&mut self) {
        if self.inner.is_end_stream() {
            if let Some(c) = self.checkin.take() {
                c.give_back();
            }
        }
    }
}

impl From<Incoming> for AnswerBody {
    /// A body whose connection is not ours to return (hyper-util's pool).
    fn from(inner: Incoming) -> Self {
        Self {
            inner,
            checkin: None,
        }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => this.give_back_at_end(),
            Poll::Ready(None) => {
                if let Some(c) = this.checkin.take() {
                    c.give_back();
                }
            }
            // A broken body: the connection is dropped with `checkin`.
            Poll::Ready(Some(Err(_))) => this.checkin = None,
            Poll::Pending => {}
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

/// The body of the client's answer.
#[derive(Debug)]
pub enum ResponseBody {
    /// An upstream's body that no pool waits for, passed through.
    Upstream(Incoming),
    /// The primary's (or the canary's) body, passed through.
    Answer(AnswerBody),
    /// The primary's body, passed through while a copy is captured.
    Tee(TeeBody<AnswerBody>),
    /// An answer of the proxy's own (an error body).
    Local(Option<Bytes>),
}

impl ResponseBody {
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Local(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Answer(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Tee(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(b) => b.is_end_stream(),
            ResponseBody::Answer(b) => b.is_end_stream(),
            ResponseBody::Tee(b) => b.is_end_stream(),
            ResponseBody::Local(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(b) => b.size_hint(),
            ResponseBody::Answer(b) => b.size_hint(),
            ResponseBody::Tee(b) => b.size_hint(),
            ResponseBody::Local(b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
