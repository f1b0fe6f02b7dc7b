//! The body types on both hops.
//!
//! - [`UpstreamBody`]: what the proxy sends to an upstream: buffered chunks
//!   (the request body read for mirroring), optionally followed by the rest
//!   of the client's body still streaming in.
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

use crate::tee::TeeBody;

/// A request body for an upstream.
#[derive(Debug)]
pub struct UpstreamBody {
    prefix: VecDeque<Bytes>,
    prefix_len: u64,
    rest: Option<Incoming>,
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
        body.rest = Some(rest);
        body.downstream_failed = Some(downstream_failed);
        body
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

/// The body of the client's answer.
#[derive(Debug)]
pub enum ResponseBody {
    /// The primary's body, passed through.
    Upstream(Incoming),
    /// The primary's body, passed through while a copy is captured.
    Tee(TeeBody<Incoming>),
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
            ResponseBody::Tee(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(b) => b.is_end_stream(),
            ResponseBody::Tee(b) => b.is_end_stream(),
            ResponseBody::Local(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(b) => b.size_hint(),
            ResponseBody::Tee(b) => b.size_hint(),
            ResponseBody::Local(b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
