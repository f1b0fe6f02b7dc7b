//! The raw path's side towards an upstream: one HTTP/1.1 exchange over a
//! pooled connection ([`RawPool`]), and the answer body's framing.
//!
//! Both of a mirrored request's exchanges use it — the primary's
//! ([`super::conn`], which relays the answer to the client) and the
//! shadow's copy ([`super::shadow`], which only reads it) — so the two
//! follow one set of rules:
//! - a request goes out in one write, on the most recently used idle
//!   connection the reactor has not seen closed, or on a new one;
//! - a pooled connection that fails anyway is retried once on a fresh
//!   connection (the request is all in hand) when the write itself failed,
//!   or, for an idempotent method only, when it closed before any byte of
//!   the answer. A `POST` the upstream may have received and acted on is
//!   never sent twice: a duplicated write would be a side effect the
//!   comparison then blames on the twins;
//! - informational (1xx) answers are relayed to the client when there is
//!   one ([`super::conn`]) and skipped when there is not (the shadow's,
//!   as hyper's client skips them);
//! - the final answer's head is parsed by [`super::response::parse`], and
//!   its body is framed as `Body` says (length, chunked, close).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::{BadChunk, Chunked};
use super::pool::{ConnectError, RawPool};
use super::response::{self, AnswerHead, Ask, BadAnswer, Framing};
use super::write_date;

/// Room asked for before a read from the upstream: answers are larger than
/// requests. Allocated at a buffer's first exchange.
pub(crate) const UPSTREAM_READ: usize = 16 * 1024;

/// Why an upstream gave no (whole) answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the exchange broke: {0}")]
    Io(#[source] std::io::Error),
    #[error("the upstream closed the connection before the answer ended")]
    Closed,
    #[error(transparent)]
    Answer(#[from] BadAnswer),
    #[error(transparent)]
    Chunk(#[from] BadChunk),
    #[error("the answer's trailer fields are malformed or over hyper's limits")]
    Trailers,
}

/// An exchange that did not produce an answer head.
pub(crate) enum Failed {
    Upstream(ExchangeError),
    /// The client went away (relaying it a 1xx failed).
    Client,
}

impl From<ExchangeError> for Failed {
    fn from(error: ExchangeError) -> Self {
        Failed::Upstream(error)
    }
}

/// Room for at least `chunk` more bytes at the end of `buf`, its first
/// `consumed` bytes dropped if that makes room.
pub(crate) fn room(buf: &mut Vec<u8>, consumed: &mut usize, chunk: usize) {
    if buf.capacity() - buf.len() >= chunk {
        return;
    }
    if *consumed > 0 {
        buf.drain(..*consumed);
        *consumed = 0;
    }
    buf.reserve(chunk);
}

/// Sends `request` on a connection from `pool` and reads the final
/// answer's head (1xx heads are written to `client_io` on the way, or
/// skipped without one); the head for a client is left in `answer_head`,
/// the upstream's bytes (from its head on) in `upstream`.
pub(crate) async fn exchange(
    pool: &RawPool,
    request: &[u8],
    answer_head: &mut Vec<u8>,
    upstream: &mut Vec<u8>,
    ask: Ask,
    idempotent: bool,
    mut client_io: Option<&mut TcpStream>,
) -> Result<(TcpStream, AnswerHead), Failed> {
    let mut retried = false;
    'attempt: loop {
        let pooled = if retried { None } else { pool.checkout() };
        let reused = pooled.is_some();
        let mut io = match pooled {
            Some(io) => io,
            // Boxed: connecting is rare on a keep-alive pool, and its
            // future (a name lookup, a timer) is large.
            None => Box::pin(pool.connect())
                .await
                .map_err(ExchangeError::from)?,
        };
        upstream.clear();
        if let Err(error) = io.write_all(request).await {
            if reused && !retried {
                retried = true;
                continue;
            }
            return Err(ExchangeError::Io(error).into());
        }
        let mut answered = false;
        let mut consumed = 0;
        loop {
            if consumed < upstream.len() {
                let parsed = response::parse(&upstream[consumed..], ask, write_date, answer_head);
                match parsed {
                    Ok(Some(answer)) if (100..200).contains(&answer.status) => {
                        if let Some(client_io) = client_io.as_deref_mut() {
                            client_io
                                .write_all(answer_head)
                                .await
                                .map_err(|_| Failed::Client)?;
                        }
                        consumed += answer.len;
                        continue;
                    }
                    Ok(Some(answer)) => {
                        upstream.drain(..consumed);
                        return Ok((io, answer));
                    }
                    Ok(None) => {}
                    Err(error) => return Err(ExchangeError::from(error).into()),
                }
            }
            room(upstream, &mut consumed, UPSTREAM_READ);
            match io.read_buf(upstream).await {
                Ok(0) | Err(_) if !answered && reused && !retried && idempotent => {
                    retried = true;
                    continue 'attempt;
                }
                Ok(0) => return Err(ExchangeError::Closed.into()),
                Err(error) => return Err(ExchangeError::Io(error).into()),
                Ok(_) => answered = true,
            }
        }
    }
}

/// How much of what the upstream sends belongs to the body.
pub(crate) enum Body {
    Length(u64),
    Chunked(Chunked),
    Close,
}

impl Body {
    /// The body an answer with `framing` has.
    pub(crate) fn of(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Body::Length(0),
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunked::default()),
            Framing::Close => Body::Close,
        }
    }

    /// How many of `bytes` belong to the body, and whether it is complete;
    /// `data` gets the body's content among them (chunked: decoded), and
    /// `trailer` each byte of a chunked body's trailer section.
    pub(crate) fn take(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(&[u8]),
        trailer: impl FnMut(u8),
    ) -> Result<(usize, bool), BadChunk> {
        Ok(match self {
            Body::Length(left) => {
                let n = (bytes.len() as u64).min(*left);
                *left -= n;
                if n > 0 {
                    data(&bytes[..n as usize]);
                }
                (n as usize, *left == 0)
            }
            Body::Chunked(chunked) => {
                let n = chunked.feed_parts(
                    bytes,
                    |d| {
                        if !d.is_empty() {
                            data(d);
                        }
                    },
                    trailer,
                )?;
                (n, chunked.is_done())
            }
            Body::Close => {
                if !bytes.is_empty() {
                    data(bytes);
                }
                (bytes.len(), false)
            }
        })
    }

    /// Whether a chunked body ended with trailer fields.
    pub(crate) fn has_trailers(&self) -> bool {
        matches!(self, Body::Chunked(c) if c.has_trailers())
    }
}
