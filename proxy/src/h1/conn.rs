//! The raw path's loop over one plain HTTP/1.1 client connection.
//!
//! Per request: read until [`super::head::judge`] decides; a request it
//! does not take (or one the service would mirror, unless the path is
//! [`super::Http1Path::RawMirrored`]) hands the connection, with every
//! byte read, to hyper for the rest of its life. A mirrored request
//! ([`super::mirrored`]) is forwarded the same way, in the primary's
//! departure turn, its copy handed to a [`MirrorJob`] and the answer
//! captured for the comparison while it is relayed (`Capture`); when the
//! exchange fails the capture's sender is dropped, as on the hyper path. A request it
//! takes: read its body whole (at most [`super::head::MAX_BODY_BYTES`]),
//! write head and body to a pooled upstream connection in one write, read
//! the answer's head ([`super::response`]), write it with the body bytes
//! already read, then relay the rest of the body as its framing says
//! (the exchange and the framing: [`super::client`]).
//!
//! Failures, as the hyper path answers them: no connection, a broken
//! exchange or an answer that is not HTTP before anything was sent to the
//! client → the 502 of [`crate::error::PRIMARY_UNAVAILABLE`]. A pooled
//! connection the upstream closed while it was idle is mostly caught at
//! checkout ([`super::pool::RawPool::checkout`]); one that fails anyway is
//! retried as [`super::client`] says — a `POST` the upstream may have
//! received is never sent twice; it gets the 502, as hyper's client gives
//! it. A failure after the answer's head went out, or a client that goes
//! away → the client connection closes.
//!
//! The slowloris guard is hyper's: a head must arrive within
//! [`HEADER_READ_TIMEOUT`] of the connection going back to reading, or the
//! connection closes. At shutdown an idle connection closes at once, and
//! one in a request closes after its answer (`Connection: close`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::client::{exchange, room, Body, Failed, UPSTREAM_READ};
use super::head::{self, Judged};
use super::mirrored::{self, Mirrored};
use super::prefixed::Prefixed;
use super::response::{self, AnswerHead, Ask};
use super::{write_date, RawPath};
use crate::canary::idempotent;
use crate::departure::{take_turn, Turn};
use crate::error::{error_body, Side, PRIMARY_UNAVAILABLE};
use crate::metrics::{Backend, MirrorOutcome};
use crate::mirror::MirrorJob;
use crate::record::RawRequest;
use crate::service::ServiceState;
use crate::tee::{AnswerHeaders, Capture};

/// hyper's default header-read timeout.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Room asked for before a read from the client: heads are small, and an
/// idle keep-alive connection holds its buffers (hyper's starts at 8 KiB).
const CLIENT_READ: usize = 4 * 1024;

/// How a connection left the raw path.
#[derive(Debug)]
pub enum Served {
    /// It is over (closed, timed out, shut down).
    Done,
    /// hyper serves the rest, starting with the bytes already read.
    Hyper(Prefixed),
}

/// The buffers of one connection, reused for every request on it.
struct Conn {
    /// What the client sent; unread requests start at `start`.
    input: Vec<u8>,
    start: usize,
    /// The request for the upstream.
    request: Vec<u8>,
    /// The answer's head for the client, and the first body bytes.
    answer: Vec<u8>,
    /// What the upstream sent.
    upstream: Vec<u8>,
    /// A recording service's: where each header of the head lies (noted by
    /// `judge`), for the record encoded from them after the exchange.
    spans: Vec<head::Span>,
}

/// Serves `client_io` on the raw path until it ends or hyper must take it.
pub async fn serve(
    mut client_io: TcpStream,
    client: SocketAddr,
    state: &Arc<ServiceState>,
    raw: &RawPath,
    stop: &mut watch::Receiver<bool>,
) -> Served {
    let mut conn = Conn {
        input: Vec::with_capacity(CLIENT_READ),
        start: 0,
        request: Vec::with_capacity(1024),
        answer: Vec::with_capacity(1024),
        upstream: Vec::new(),
        spans: Vec::new(),
    };
    let recording_service = state.recorder.is_some();
    let mut stopping = *stop.borrow();
    let timer = tokio::time::sleep(HEADER_READ_TIMEOUT);
    tokio::pin!(timer);
    loop {
        // A whole head, within the header-read timeout.
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + HEADER_READ_TIMEOUT);
        let head = loop {
            if conn.start < conn.input.len() {
                let spans = recording_service.then_some(&mut conn.spans);
                match head::judge(
                    &conn.input[conn.start..],
                    client.ip(),
                    &mut conn.request,
                    spans,
                ) {
                    Judged::Boring(head) => break head,
                    Judged::Hyper => return conn.hand_over(client_io),
                    Judged::Partial => {}
                }
            } else if stopping {
                return Served::Done;
            }
            room(&mut conn.input, &mut conn.start, CLIENT_READ);
            tokio::select! {
                biased;
                read = client_io.read_buf(&mut conn.input) => match read {
                    Ok(0) | Err(_) => return Served::Done,
                    Ok(_) => {}
                },
                () = timer.as_mut() => return Served::Done,
                _ = stop.changed(), if !stopping => stopping = true,
            }
        };
        let forwards_only = raw.takes(&head.method);
        if !forwards_only && !raw.mirrors() {
            return conn.hand_over(client_io);
        }
        // The body, whole.
        let whole = head.len + head.body_len;
        while conn.input.len() - conn.start < whole {
            room(&mut conn.input, &mut conn.start, CLIENT_READ);
            match client_io.read_buf(&mut conn.input).await {
                Ok(0) | Err(_) => return Served::Done,
                Ok(_) => {}
            }
        }
        let path = std::str::from_utf8(&conn.request[head.path.clone()]).unwrap_or("/");
        let route = state.routes.find(path);
        let planned = if forwards_only {
            Mirrored::Skip(MirrorOutcome::SampledOut)
        } else {
            let body = &conn.input[conn.start + head.len..conn.start + whole];
            mirrored::plan(
                state,
                raw.raw_shadow(),
                &head.method,
                &conn.request,
                path,
                body,
            )
        };
        let copy = match planned {
            Mirrored::Hyper => return conn.hand_over(client_io),
            Mirrored::Skip(outcome) => {
                // What the hyper path counts for a request it does not mirror.
                state.route_states[route].metrics.outcome(outcome);
                None
            }
            Mirrored::Copy { copy, permit } => Some((copy, permit)),
        };
        // Recorded as the client sent it (before X-Forwarded-For), as the
        // hyper path records it: the head's bytes stay in `input` (consumed
        // after the exchange) for the record encoded then.
        let recording = state.recorder.as_ref().is_some_and(|recorder| {
            let input = &conn.input[conn.start..conn.start + head.len];
            recorder.begin_raw(path, head::recorded_headers(input, &conn.spans))
        });
        let body = conn.start + head.len..conn.start + whole;
        conn.request.extend_from_slice(&conn.input[body]);
        stopping |= stop.has_changed().unwrap_or(true);
        let ask = Ask {
            head: head.method == Method::HEAD,
            close: head.close || stopping,
            fields: copy.is_some(),
        };

        // The shadow's copy leaves in its turn, as `ServiceState::handle`
        // sends it; `capture_tx` carries the primary's answer to it.
        let (turn, capture_tx) = match copy {
            None => (Turn::Any, None),
            Some((copy, permit)) => {
                let (capture_tx, capture_rx) = oneshot::channel();
                let (primary_turn, shadow_turn) = state.departures.next();
                MirrorJob {
                    state: Arc::clone(state),
                    route,
                    copy,
                    turn: shadow_turn,
                }
                .spawn(permit, capture_rx);
                (primary_turn, Some(capture_tx))
            }
        };

        let started = Instant::now();
        let exchanged = take_turn(
            turn,
            exchange(
                &raw.pool,
                &conn.request,
                &mut conn.answer,
                &mut conn.upstream,
                ask,
                idempotent(&head.method),
                Some(&mut client_io),
            ),
        )
        .await;
        // One clock read for the metrics and the record.
        let latency = started.elapsed();
        if let (Some(recorder), true) = (&state.recorder, recording) {
            let input = &conn.input[conn.start..conn.start + head.len];
            let body = &conn.request[conn.request.len() - head.body_len..];
            let status = exchanged.as_ref().ok().map(|(_, answer)| answer.status);
            let request = RawRequest {
                client,
                method: head.method.as_str(),
                path: &conn.request[head.path.clone()],
                query: (head.target.end > head.path.end)
                    .then(|| &conn.request[head.path.end + 1..head.target.end]),
                input,
                spans: &conn.spans,
                head_len: head.len,
            };
            recorder.finish_raw(request, started, body, status, status.map(|_| latency));
        }
        conn.start += whole;
        if conn.start == conn.input.len() {
            conn.input.clear();
            conn.start = 0;
        }
        let (upstream_io, mut answer) = match exchanged {
            Ok(exchanged) => exchanged,
            Err(Failed::Client) => return Served::Done,
            Err(Failed::Upstream(error)) => {
                tracing::debug!(service = %state.name, side = Side::Primary.as_str(), %error, "request failed");
                if client_io.write_all(&bad_gateway(ask.close)).await.is_err() || ask.close {
                    return Served::Done;
                }
                continue;
            }
        };
        state.observe(route, Backend::Primary, latency);
        // Dropped with `capture_tx` unused when the exchange failed above:
        // the mirror task then counts the primary's error.
        let mut capture = capture_tx.map(|tx| {
            let lines = conn.answer[answer.headers.clone()].to_vec();
            let headers = AnswerHeaders::Lines(lines, std::mem::take(&mut answer.fields));
            Capture::new(answer.status, headers, state.max_compare_body_bytes, tx)
        });
        // Shutdown began while the answer was on its way: it is the last,
        // as hyper makes it.
        if !stopping && stop.has_changed().unwrap_or(true) {
            stopping = true;
            response::close_after(&mut conn.answer, &mut answer);
        }
        match relay(
            upstream_io,
            &answer,
            &mut conn,
            &mut client_io,
            capture.as_mut(),
        )
        .await
        {
            Ok(Some(upstream_io)) => raw.pool.checkin(upstream_io),
            Ok(None) => {}
            Err(()) => return Served::Done,
        }
        if answer.close {
            let _ = client_io.shutdown().await;
            return Served::Done;
        }
    }
}

impl Conn {
    fn hand_over(mut self, stream: TcpStream) -> Served {
        self.input.drain(..self.start);
        Served::Hyper(Prefixed::new(self.input, stream))
    }
}

/// Writes the answer's head (in `conn.answer`) and body to the client. Gives
/// the upstream connection back when it can carry another request; `Err`
/// when the client connection must close (the answer broke off, or the
/// client left). A mirrored request's `capture` gets the body as it goes,
/// and is ended with it (dropped unended on `Err`: aborted).
async fn relay(
    mut upstream_io: TcpStream,
    answer: &AnswerHead,
    conn: &mut Conn,
    client_io: &mut TcpStream,
    mut capture: Option<&mut Capture>,
) -> Result<Option<TcpStream>, ()> {
    let mut keep = |bytes: &[u8]| {
        if let Some(capture) = capture.as_deref_mut() {
            capture.data(|| Bytes::copy_from_slice(bytes), bytes.len());
        }
    };
    let mut body = Body::of(answer.framing);
    let after_head = &conn.upstream[answer.len..];
    let (n, mut done) = body.take(after_head, &mut keep, |_| {}).map_err(|_| ())?;
    let mut overrun = n < after_head.len();
    conn.answer.extend_from_slice(&after_head[..n]);
    client_io.write_all(&conn.answer).await.map_err(|_| ())?;
    while !done {
        conn.upstream.clear();
        conn.upstream.reserve(UPSTREAM_READ);
        match upstream_io.read_buf(&mut conn.upstream).await {
            Ok(0) if matches!(body, Body::Close) => break,
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
        let (n, end) = body
            .take(&conn.upstream, &mut keep, |_| {})
            .map_err(|_| ())?;
        overrun |= n < conn.upstream.len();
        done = end;
        client_io
            .write_all(&conn.upstream[..n])
            .await
            .map_err(|_| ())?;
    }
    // Trailers end the capture unsent (aborted), as on the hyper path:
    // hyper's server stops reading an answer at trailers its client did
    // not ask for (the raw path takes no request with `TE`), and the
    // `TeeBody` it drops counts the primary's error.
    let trailers = body.has_trailers();
    if let (Some(capture), false) = (capture, trailers) {
        capture.end();
    }
    Ok((answer.reusable && !overrun).then_some(upstream_io))
}

/// The hyper path's answer for a primary that did not answer.
fn bad_gateway(close: bool) -> Vec<u8> {
    let (status, code, message) = PRIMARY_UNAVAILABLE;
    let body = error_body(code, message);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ndate: ",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    write_date(&mut out);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}
