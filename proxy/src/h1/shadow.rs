//! The shadow's side of a mirrored request on the raw path: the copy
//! ([`super::mirrored::RawCopy`]) written as it is over the shadow's own
//! raw pool ([`crate::upstream::Upstream::raw_pool`]), and the answer read
//! into what the comparison consumes ([`Observed`]).
//!
//! # Why
//! hyper's client was the largest part of a mirrored request left on the
//! raw path (callgrind: 65.9K instructions per mirrored request, nginx
//! mirror's 32.7K): a `Parts` and a `HeaderMap` built for the copy, hyper's
//! request encoder and response parser, a connection task woken per
//! exchange, and a large future moved on every spawn. The copy is already
//! the bytes the primary got; here they go out in one write, and the
//! answer is parsed once by the raw path's own rules.
//!
//! # The same answer hyper's client gives
//! The exchange follows [`super::client`] (pooled or fresh connection; a
//! pooled one that closed is retried only when nothing was answered and the
//! method is idempotent; 1xx skipped). The answer's head is parsed by
//! [`super::response::parse`], its headers kept without the hop-by-hop
//! ones, as `strip_hop_by_hop` leaves hyper's map; the body is read by its
//! framing (length, chunked decoded, until close; none for `HEAD`, 204,
//! 304) up to `max_compare_body_bytes` — past it the answer is not kept
//! (`body_too_large`) and the connection is closed unread; a chunked
//! body's trailer fields are kept (hyper's limits: 16 KiB, 100 fields).
//! The caller bounds the whole by `shadow_timeout` and counts the outcome
//! as before ([`crate::mirror::MirrorJob`]). A connection goes back to
//! the pool only after a whole answer that lets it.

use bytes::Bytes;
use http::Method;
use parallax_compare::{Fields, Observed};

use super::client::{exchange, Body, ExchangeError, Failed, UPSTREAM_READ};
use super::head::MAX_HEADERS;
use super::pool::RawPool;
use super::response::{Ask, Framing};
use crate::canary::idempotent;

/// hyper's limit on a chunked body's trailer section.
const TRAILER_LIMIT: usize = 16 * 1024;

/// Sends `request` (a `method` request) on a connection from `pool` and
/// reads the answer; `answered` is called when its head has arrived (the
/// shadow's latency, as the hyper path times it). `Ok(None)`: the body is
/// over `limit` bytes.
pub async fn call(
    pool: &RawPool,
    request: &[u8],
    method: &Method,
    limit: usize,
    answered: impl FnOnce(),
) -> Result<Option<Observed>, ExchangeError> {
    // The answer's head rewritten (its kept lines are the headers): sized
    // for most heads, so it does not grow line by line.
    let mut head = Vec::with_capacity(512);
    let mut input = Vec::new();
    let ask = Ask {
        head: method == Method::HEAD,
        close: false,
        fields: true,
    };
    let (mut io, answer) = match exchange(
        pool,
        request,
        &mut head,
        &mut input,
        ask,
        idempotent(method),
        None,
    )
    .await
    {
        Ok(exchanged) => exchanged,
        Err(Failed::Upstream(error)) => return Err(error),
        // Only an exchange that relays 1xx heads to a client fails so.
        Err(Failed::Client) => return Err(ExchangeError::Closed),
    };
    answered();

    let mut body = Body::of(answer.framing);
    let mut kept = match answer.framing {
        Framing::Length(n) => {
            Vec::with_capacity(usize::try_from(n).unwrap_or(usize::MAX).min(limit))
        }
        _ => Vec::new(),
    };
    let mut over = false;
    let mut trailers = Vec::new();
    let mut consumed = answer.len;
    let mut overrun;
    loop {
        let (n, done) = body.take(
            &input[consumed..],
            |data| {
                if kept.len() + data.len() > limit {
                    over = true;
                } else if !over {
                    kept.extend_from_slice(data);
                }
            },
            |byte| trailers.push(byte),
        )?;
        if over {
            // Not kept; the connection closes with the rest unread, as
            // dropping hyper's body does.
            return Ok(None);
        }
        if trailers.len() >= TRAILER_LIMIT {
            return Err(ExchangeError::Trailers);
        }
        overrun = consumed + n < input.len();
        if done {
            break;
        }
        // The buffer holds no more than one read: what is in it was taken.
        input.clear();
        consumed = 0;
        input.reserve(UPSTREAM_READ);
        match tokio::io::AsyncReadExt::read_buf(&mut io, &mut input).await {
            Ok(0) if matches!(body, Body::Close) => break,
            Ok(0) => return Err(ExchangeError::Closed),
            Err(error) => return Err(ExchangeError::Io(error)),
            Ok(_) => {}
        }
    }
    let trailers = if body.has_trailers() {
        trailer_fields(&mut trailers)?
    } else {
        Fields::default()
    };
    if answer.reusable && !overrun {
        pool.checkin(io);
    }
    // The kept lines are the fields, as the primary's are: the comparison
    // reads them in place (this buffer, no text per field) where the parse
    // noted them (no second scan).
    head.truncate(answer.headers.end);
    head.drain(..answer.headers.start);
    Ok(Some(Observed {
        status: answer.status,
        headers: Fields::from_spans(head, answer.fields),
        body: Bytes::from(kept),
        trailers,
    }))
}

/// A trailer section's field lines (as [`super::chunked::Chunked`] hands
/// them out) as the comparison's fields, as a `HeaderMap` of them lists
/// them; `Err` where hyper's client refuses them (a malformed line, more
/// than [`MAX_HEADERS`] fields).
fn trailer_fields(section: &mut Vec<u8>) -> Result<Fields, ExchangeError> {
    section.extend_from_slice(b"\r\n");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(section, &mut headers) {
        Ok(httparse::Status::Complete((_, fields))) => {
            let fields = fields.iter().map(|h| (h.name.as_bytes(), h.value));
            Ok(Fields::from_pairs(fields).grouped())
        }
        _ => Err(ExchangeError::Trailers),
    }
}
