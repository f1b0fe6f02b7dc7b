//! One proxied WebSocket connection: a single task moving bytes between
//! the client, the primary and (when shadowed) the shadow.
//!
//! The task waits on socket readiness (`poll_read_ready`, one waker per
//! socket) and reads into a buffer on its stack ([`read_now`]), so an idle
//! connection holds no buffer at all. Bytes
//! stay on the heap only while a peer does not take them:
//! - primary → client: while the client is slow, the primary is not read
//!   (TCP pushes back on the primary), exactly as without the proxy;
//! - client → primary: likewise, the client is not read;
//! - client → shadow: queued up to `ws_shadow_max_queued_bytes` (while the
//!   shadow connects, or when it reads slowly); past it the shadow is cut
//!   off (`stalled`). The client is never held back for the shadow.
//!
//! The shadow's bytes are read as soon as they arrive and go nowhere but to
//! the comparison; its failure, stall or close ends only the shadow side
//! (counted in `parallax_ws_shadow_ends_total`). Comparing runs on this
//! task, after the primary's bytes have been handed to the client's socket.
//!
//! Closing: the client's end (close frame relayed, then EOF) is passed on
//! by shutting down the upstreams' write sides; the primary's close frame
//! reaches the client unchanged, and its EOF ends the client's write side.
//! Whatever side ends first, the other gets [`CLOSE_LINGER`] to finish its
//! half of the close. On proxy shutdown the client gets a 1001 close frame
//! if the primary's stream is between frames.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use parallax_compare::{compare, Difference, Kind, Observed, Outcome, Verdict};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::frame::{self, opcode, Event, Reader};
use super::matcher::{Decision, Frame, Matcher};
use super::{Answer, OpenError};
use crate::error::Side;
use crate::metrics::{Backend, ShadowEnd, WsResult};
use crate::record::WsTap;
use crate::samples::{Message, Sample};
use crate::service::ServiceState;

/// How long the other side may take to finish closing once one side ended.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Bytes read per read, on the stack (left uninitialised: a read fills
/// what it returns).
const READ_CHUNK: usize = 16 * 1024;
/// Reads per wake-up from one socket before the others get a turn.
const READS_PER_TURN: usize = 4;

/// The upstream side of a connection, as the handshake left it.
pub struct Upstreams {
    pub primary: TcpStream,
    pub primary_leftover: Bytes,
    /// The shadow's handshake, running.
    pub shadow: Option<JoinHandle<Result<Answer, OpenError>>>,
    /// Records the connection's messages, when it is recorded.
    pub tap: Option<WsTap>,
}

struct Shadow {
    stream: TcpStream,
    reader: Reader,
}

struct Relay {
    state: Arc<ServiceState>,
    route: usize,
    target: String,
    client: TcpStream,
    primary: TcpStream,
    shadow: Option<Shadow>,
    connecting: Option<JoinHandle<Result<Answer, OpenError>>>,
    to_client: Vec<u8>,
    to_primary: Vec<u8>,
    to_shadow: Vec<u8>,
    /// Reads the primary's frames: boundaries always, messages while
    /// compared.
    primary_reader: Reader,
    /// `false` once the primary's stream could not be framed.
    primary_framed: bool,
    /// Reads the client's frames for their close frame only.
    client_reader: Reader,
    /// The client or the primary sent a close frame: the shadow closing
    /// now is the normal end, not a shadow failure.
    closing: bool,
    matcher: Option<Matcher>,
    client_open: bool,
    primary_open: bool,
    closing_since: Option<Instant>,
    stop: watch::Receiver<bool>,
    decisions: Vec<Decision>,
    events: Vec<Event>,
    tap: Option<WsTap>,
}

enum Wake {
    Stop,
    PrimaryReadable,
    ClientReadable,
    ClientWritable,
    PrimaryWritable,
    ShadowReadable,
    ShadowWritable,
    ShadowOpened(Result<Answer, OpenError>),
    Expire,
    Linger,
    PrimaryFailed,
    ClientFailed,
    ShadowFailed,
}

/// Waits for the client's side of the upgrade, then relays until both
/// sides have closed.
pub async fn run(
    state: Arc<ServiceState>,
    route: usize,
    target: String,
    client: OnUpgrade,
    upstreams: Upstreams,
) {
    let parts = match client.await {
        Ok(upgraded) => match upgraded.downcast::<TokioIo<crate::server::Stream>>() {
            Ok(parts) => parts,
            Err(_) => unreachable!("client connections are the server's streams"),
        },
        Err(error) => {
            tracing::debug!(service = %state.name, side = Side::Downstream.as_str(), %error, "client left during the upgrade");
            if let Some(s) = upstreams.shadow {
                s.abort();
            }
            return;
        }
    };
    let ws = &state.ws;
    let matcher = upstreams.shadow.is_some().then(|| {
        Matcher::new(
            ws.match_by.clone(),
            ws.window,
            ws.max_pending_frames,
            ws.max_pending_bytes,
        )
    });
    let collect = if matcher.is_some() {
        ws.max_pending_bytes
    } else {
        0
    };
    let stop = state.ws_stop.subscribe();
    // A client on the TLS listener is bridged to a plain socket (see
    // `super::bridge`); the relay below is the same for both.
    // Bytes a connection handed over by the raw HTTP/1.1 path still held
    // that hyper did not read (client bytes after the upgrade request).
    let mut handed_over = Vec::new();
    let client = match parts.io.into_inner() {
        crate::server::Stream::Plain(tcp) => tcp,
        crate::server::Stream::Prefixed(prefixed) => {
            let (rest, tcp) = prefixed.into_parts();
            handed_over = rest;
            tcp
        }
        crate::server::Stream::Tls(tls) => match super::bridge::bridge(tls).await {
            Ok(tcp) => tcp,
            Err(error) => {
                tracing::warn!(service = %state.name, side = Side::Internal.as_str(), %error, "cannot bridge a TLS WebSocket client");
                if let Some(s) = upstreams.shadow {
                    s.abort();
                }
                return;
            }
        },
    };
    let mut relay = Relay {
        route,
        target,
        client,
        primary: upstreams.primary,
        shadow: None,
        connecting: upstreams.shadow,
        to_client: Vec::new(),
        to_primary: Vec::new(),
        to_shadow: Vec::new(),
        primary_reader: Reader::new(collect),
        primary_framed: true,
        client_reader: Reader::new(0),
        closing: false,
        matcher,
        client_open: true,
        primary_open: true,
        closing_since: None,
        stop,
        decisions: Vec::new(),
        events: Vec::new(),
        tap: upstreams.tap,
        state: Arc::clone(&state),
    };
    state.ws_metrics.connections(Backend::Primary).inc();
    // What the handshakes read past their heads; dropped before serving:
    // each may hold a whole handshake read buffer.
    if !upstreams.primary_leftover.is_empty() {
        relay.on_primary_bytes(&upstreams.primary_leftover);
    }
    drop(upstreams.primary_leftover);
    if !parts.read_buf.is_empty() {
        relay.on_client_bytes(&parts.read_buf);
    }
    if !handed_over.is_empty() {
        relay.on_client_bytes(&handed_over);
    }
    drop(parts.read_buf);
    relay.serve().await;
    relay.end();
    state.ws_metrics.connections(Backend::Primary).dec();
}

/// The timer of the comparison's windows, kept for the connection's life
/// rather than made per event: a compared connection has a deadline after
/// nearly every frame (the primary's message waits for the shadow's), and
/// registering a fresh timer in tokio's wheel and removing it again on
/// each turn cost more than the frame's comparison.
///
/// It is armed at the earliest deadline and moved only when a deadline
/// comes earlier than the armed one. A later deadline (the next frame's)
/// leaves it where it is, and when a pair completes the armed timer stays
/// too: it may then fire early, which expires nothing (`Matcher::expire`
/// takes only what waited a whole window) and re-arms it at the deadline
/// of the moment — at most one spare wake-up per window, instead of two
/// timer-wheel updates per frame. Boxed and made on the first deadline, so
/// a connection that is not compared holds none.
#[derive(Default)]
struct WindowTimer {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: Option<Instant>,
}

impl WindowTimer {
    fn arm(&mut self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else { return };
        if self.armed.is_some_and(|armed| armed <= deadline) {
            return;
        }
        self.armed = Some(deadline);
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline.into()),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline.into()))),
        }
    }

    fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Completes when the armed deadline passed (pending while not armed),
    /// and disarms.
    async fn fired(&mut self) {
        match &mut self.sleep {
            Some(sleep) if self.armed.is_some() => {
                sleep.as_mut().await;
                self.armed = None;
            }
            _ => std::future::pending().await,
        }
    }
}

async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

impl Relay {
    /// Both sides closed and everything written; and the comparison has
    /// nothing left to wait for (bounded by the linger period).
    fn finished(&self) -> bool {
        !self.client_open
            && !self.primary_open
            && self.to_client.is_empty()
            && self.to_primary.is_empty()
            && (self.shadow.is_none() || self.matcher.as_ref().is_none_or(Matcher::is_idle))
    }

    async fn serve(&mut self) {
        // The stop signal's future lives across iterations (it owns its
        // receiver), so waiting for it costs nothing per event. It is
        // polled on the first turn only: that registers this task with
        // the signal, and the registration stays while the future lives.
        // Later turns read the signal's value instead (an atomic load and
        // a read lock), which is what a wake-up by the signal comes to —
        // polling the future on every turn cost ~400 instructions per
        // relayed frame (tokio's cooperative budget, the waiter list).
        let mut stop = self.stop.clone();
        let mut stop = std::pin::pin!(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        let signal = self.stop.clone();
        let stopped = || {
            if signal.has_changed().is_err() || *signal.borrow() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        };
        let mut stop_registered = false;
        let mut window = WindowTimer::default();
        while !self.finished() {
            // Windows run only once the shadow is connected.
            let deadline = self
                .matcher
                .as_ref()
                .filter(|_| self.shadow.is_some())
                .and_then(Matcher::deadline);
            window.arm(deadline);
            let linger = self.closing_since.map(|t| t + CLOSE_LINGER);
            let wake = tokio::select! {
                biased;
                () = &mut stop, if !stop_registered => Wake::Stop,
                () = std::future::poll_fn(|_| stopped()), if stop_registered => Wake::Stop,
                wake = std::future::poll_fn(|cx| self.poll_sockets(cx)) => wake,
                () = window.fired(), if window.is_armed() => Wake::Expire,
                () = at(linger), if linger.is_some() => Wake::Linger,
            };
            stop_registered = true;
            match wake {
                Wake::Stop => {
                    self.going_away();
                    return;
                }
                Wake::Linger => return,
                Wake::PrimaryReadable => self.read_primary(),
                Wake::ClientReadable => self.read_client(),
                Wake::ClientWritable => self.flush_client(),
                Wake::PrimaryWritable => self.flush_primary(),
                Wake::ShadowReadable => self.read_shadow(),
                Wake::ShadowWritable => self.flush_shadow(),
                Wake::ShadowOpened(answer) => self.shadow_opened(answer),
                Wake::Expire => {
                    if let Some(m) = &mut self.matcher {
                        m.expire(Instant::now(), &mut self.decisions);
                    }
                    self.record();
                }
                Wake::ShadowFailed => self.drop_shadow(Some(ShadowEnd::Error)),
                Wake::PrimaryFailed => self.primary_ended(),
                Wake::ClientFailed => self.client_ended(),
            }
        }
    }

    /// What the sockets are ready for, in priority order: the primary's
    /// bytes first (the client's stream), then writes that drain queues,
    /// the client's bytes, the shadow. `poll_*_ready` keep one waker per
    /// socket and direction (this task is each socket's only user): no
    /// waiter list to join and leave on every event, as the `readable()`
    /// futures would.
    fn poll_sockets(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        fn ready(poll: Poll<io::Result<()>>, ok: Wake, failed: Wake) -> Option<Wake> {
            match poll {
                Poll::Ready(Ok(())) => Some(ok),
                Poll::Ready(Err(_)) => Some(failed),
                Poll::Pending => None,
            }
        }
        if self.primary_open && self.to_client.is_empty() {
            let poll = self.primary.poll_read_ready(cx);
            if let Some(w) = ready(poll, Wake::PrimaryReadable, Wake::PrimaryFailed) {
                return Poll::Ready(w);
            }
        }
        if !self.to_client.is_empty() {
            let poll = self.client.poll_write_ready(cx);
            if let Some(w) = ready(poll, Wake::ClientWritable, Wake::ClientFailed) {
                return Poll::Ready(w);
            }
        }
        if self.client_open && self.to_primary.is_empty() {
            let poll = self.client.poll_read_ready(cx);
            if let Some(w) = ready(poll, Wake::ClientReadable, Wake::ClientFailed) {
                return Poll::Ready(w);
            }
        }
        if !self.to_primary.is_empty() {
            let poll = self.primary.poll_write_ready(cx);
            if let Some(w) = ready(poll, Wake::PrimaryWritable, Wake::PrimaryFailed) {
                return Poll::Ready(w);
            }
        }
        if let Some(s) = &self.shadow {
            let poll = s.stream.poll_read_ready(cx);
            if let Some(w) = ready(poll, Wake::ShadowReadable, Wake::ShadowFailed) {
                return Poll::Ready(w);
            }
            if !self.to_shadow.is_empty() {
                let poll = s.stream.poll_write_ready(cx);
                if let Some(w) = ready(poll, Wake::ShadowWritable, Wake::ShadowFailed) {
                    return Poll::Ready(w);
                }
            }
        }
        if let Some(handle) = &mut self.connecting {
            if let Poll::Ready(joined) = Pin::new(handle).poll(cx) {
                let answer = joined.unwrap_or_else(|e| {
                    Err(OpenError::Connect {
                        side: Side::Shadow,
                        source: io::Error::other(e),
                    })
                });
                return Poll::Ready(Wake::ShadowOpened(answer));
            }
        }
        Poll::Pending
    }

    // ------------------------------------------------------------ primary

    fn read_primary(&mut self) {
        let mut buf = [MaybeUninit::uninit(); READ_CHUNK];
        for _ in 0..READS_PER_TURN {
            let mut read = ReadBuf::uninit(&mut buf);
            match read_now(&mut self.primary, &mut read) {
                Some(Ok(())) if read.filled().is_empty() => return self.primary_ended(),
                Some(Ok(())) => {
                    // A short read drained the socket (see `read_now`).
                    let drained = read.filled().len() < READ_CHUNK;
                    self.on_primary_bytes(read.filled());
                    if drained || !self.to_client.is_empty() {
                        return;
                    }
                }
                None => return,
                Some(Err(_)) => return self.primary_ended(),
            }
        }
    }

    /// Bytes from the primary: to the client first, then to the comparison.
    fn on_primary_bytes(&mut self, bytes: &[u8]) {
        if let (Some(tap), Some(r)) = (&mut self.tap, &self.state.recorder) {
            tap.primary_bytes(r, bytes);
        }
        if self.client_open || !self.to_client.is_empty() {
            if let Err(()) = send(&self.client, &mut self.to_client, bytes) {
                self.client_ended();
            }
        }
        if !self.primary_framed {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        if self.primary_reader.feed(bytes, &mut events).is_err() {
            // Still relayed; no longer read as frames.
            self.primary_framed = false;
            self.stop_comparing();
        }
        if let Some(m) = &mut self.matcher {
            let now = Instant::now();
            for event in events.drain(..) {
                match event {
                    Event::Message { opcode, payload } => {
                        m.primary(now, opcode, payload, &mut self.decisions)
                    }
                    Event::Oversize { opcode } => {
                        m.oversize(true, now, opcode, &mut self.decisions)
                    }
                    Event::Close(_) => self.closing = true,
                }
            }
        } else if events.iter().any(|e| matches!(e, Event::Close(_))) {
            self.closing = true;
        }
        events.clear();
        self.events = events;
        self.record();
    }

    fn flush_primary(&mut self) {
        if flush(&self.primary, &mut self.to_primary).is_err() {
            return self.primary_ended();
        }
        if self.to_primary.is_empty() && !self.client_open {
            shutdown_write(&self.primary);
        }
    }

    /// The primary closed (or failed): the client's write side follows once
    /// everything the primary sent is written. The shadow stays only while
    /// the comparison waits for its last messages (at most the window, and
    /// the linger period).
    fn primary_ended(&mut self) {
        if !self.primary_open {
            return;
        }
        self.primary_open = false;
        self.to_primary = Vec::new();
        self.closing_since.get_or_insert_with(Instant::now);
        if self.matcher.as_ref().is_none_or(Matcher::is_idle) {
            self.drop_shadow(None);
        }
        if self.to_client.is_empty() {
            shutdown_write(&self.client);
        }
    }

    // ------------------------------------------------------------- client

    fn read_client(&mut self) {
        let mut buf = [MaybeUninit::uninit(); READ_CHUNK];
        for _ in 0..READS_PER_TURN {
            let mut read = ReadBuf::uninit(&mut buf);
            match read_now(&mut self.client, &mut read) {
                Some(Ok(())) if read.filled().is_empty() => return self.client_ended(),
                Some(Ok(())) => {
                    let drained = read.filled().len() < READ_CHUNK;
                    self.on_client_bytes(read.filled());
                    if drained || !self.to_primary.is_empty() {
                        return;
                    }
                }
                None => return,
                Some(Err(_)) => return self.client_ended(),
            }
        }
    }

    /// Bytes from the client: to the primary and the shadow, unchanged.
    fn on_client_bytes(&mut self, bytes: &[u8]) {
        if let (Some(tap), Some(r)) = (&mut self.tap, &self.state.recorder) {
            tap.client_bytes(r, bytes);
        }
        if !self.closing {
            let mut events = std::mem::take(&mut self.events);
            // Unframeable client bytes are the upstreams' to refuse.
            let _ = self.client_reader.feed(bytes, &mut events);
            self.closing = events.iter().any(|e| matches!(e, Event::Close(_)));
            events.clear();
            self.events = events;
        }
        if self.primary_open && send(&self.primary, &mut self.to_primary, bytes).is_err() {
            self.primary_ended();
        }
        if self.shadow.is_some() || self.connecting.is_some() {
            let limit = self.state.ws.shadow_max_queued_bytes;
            match &self.shadow {
                Some(s) => {
                    if send(&s.stream, &mut self.to_shadow, bytes).is_err() {
                        return self.drop_shadow(Some(ShadowEnd::Error));
                    }
                }
                None => self.to_shadow.extend_from_slice(bytes),
            }
            if self.to_shadow.len() > limit {
                self.drop_shadow(Some(ShadowEnd::Stalled));
            }
        }
    }

    fn flush_client(&mut self) {
        if flush(&self.client, &mut self.to_client).is_err() {
            self.to_client = Vec::new();
            return self.client_ended();
        }
        if self.to_client.is_empty() && !self.primary_open {
            shutdown_write(&self.client);
        }
    }

    /// The client closed (or failed): the upstreams' write sides follow.
    fn client_ended(&mut self) {
        if !self.client_open {
            // A write failure after the read side ended: nothing more can
            // reach the client.
            self.to_client = Vec::new();
            return;
        }
        self.client_open = false;
        self.closing_since.get_or_insert_with(Instant::now);
        if self.to_primary.is_empty() {
            shutdown_write(&self.primary);
        }
        if let Some(s) = &self.shadow {
            if self.to_shadow.is_empty() {
                shutdown_write(&s.stream);
            }
        }
    }

    // ------------------------------------------------------------- shadow

    fn shadow_opened(&mut self, answer: Result<Answer, OpenError>) {
        match answer {
            Ok(Answer::Upgraded {
                stream, leftover, ..
            }) => {
                self.connecting = None;
                self.state.ws_metrics.connections(Backend::Shadow).inc();
                if let Some(m) = &mut self.matcher {
                    m.shadow_opened(Instant::now());
                }
                self.shadow = Some(Shadow {
                    stream,
                    reader: Reader::new(self.state.ws.max_pending_bytes),
                });
                if !self.to_shadow.is_empty() {
                    self.flush_shadow();
                }
                if !leftover.is_empty() {
                    self.on_shadow_bytes(&leftover);
                }
                if !self.client_open && self.to_shadow.is_empty() {
                    if let Some(s) = &self.shadow {
                        shutdown_write(&s.stream);
                    }
                }
            }
            Ok(Answer::Refused(response)) => {
                tracing::debug!(service = %self.state.name, side = Side::Shadow.as_str(), status = response.status().as_u16(), "shadow refused the upgrade");
                self.drop_shadow(Some(ShadowEnd::Refused));
            }
            Err(error) => {
                tracing::debug!(service = %self.state.name, %error, "shadow upgrade failed");
                self.drop_shadow(Some(ShadowEnd::Error));
            }
        }
    }

    fn read_shadow(&mut self) {
        let mut buf = [MaybeUninit::uninit(); READ_CHUNK];
        for _ in 0..READS_PER_TURN {
            let Some(s) = &mut self.shadow else { return };
            let mut read = ReadBuf::uninit(&mut buf);
            match read_now(&mut s.stream, &mut read) {
                Some(Ok(())) if read.filled().is_empty() => {
                    return self.drop_shadow(Some(ShadowEnd::Closed))
                }
                Some(Ok(())) => {
                    let drained = read.filled().len() < READ_CHUNK;
                    self.on_shadow_bytes(read.filled());
                    if drained {
                        return;
                    }
                }
                None => return,
                Some(Err(_)) => return self.drop_shadow(Some(ShadowEnd::Error)),
            }
        }
    }

    fn on_shadow_bytes(&mut self, bytes: &[u8]) {
        let Some(s) = &mut self.shadow else { return };
        let mut events = std::mem::take(&mut self.events);
        if s.reader.feed(bytes, &mut events).is_err() {
            self.events = events;
            self.events.clear();
            return self.drop_shadow(Some(ShadowEnd::Protocol));
        }
        let mut closed = false;
        if let Some(m) = &mut self.matcher {
            let now = Instant::now();
            for event in events.drain(..) {
                match event {
                    Event::Message { opcode, payload } => {
                        m.shadow(now, opcode, payload, &mut self.decisions)
                    }
                    Event::Oversize { opcode } => {
                        m.oversize(false, now, opcode, &mut self.decisions)
                    }
                    Event::Close(_) => closed = true,
                }
            }
        }
        events.clear();
        self.events = events;
        self.record();
        if closed {
            self.drop_shadow(Some(ShadowEnd::Closed));
        }
    }

    fn flush_shadow(&mut self) {
        let Some(s) = &self.shadow else { return };
        if flush(&s.stream, &mut self.to_shadow).is_err() {
            return self.drop_shadow(Some(ShadowEnd::Error));
        }
        if self.to_shadow.is_empty() && !self.client_open {
            shutdown_write(&s.stream);
        }
    }

    /// Ends the shadow side; `reason` is counted when the shadow ended
    /// before the client's connection did. A shadow that never upgraded
    /// leaves nothing counted: the comparison never started.
    fn drop_shadow(&mut self, reason: Option<ShadowEnd>) {
        let connecting = self.connecting.take();
        if let Some(c) = &connecting {
            c.abort();
        }
        let open = self.shadow.take();
        if open.is_none() && connecting.is_none() {
            return;
        }
        if open.is_some() {
            self.state.ws_metrics.connections(Backend::Shadow).dec();
        }
        self.to_shadow = Vec::new();
        if let Some(reason) = reason {
            if self.client_open && self.primary_open && !self.closing {
                self.state.ws_metrics.shadow_end(reason);
                tracing::debug!(service = %self.state.name, side = Side::Shadow.as_str(), reason = reason.as_str(), "shadow connection ended");
            }
        }
        if open.is_none() {
            self.matcher = None;
            self.primary_reader.stop_collecting();
            return;
        }
        if let Some(m) = &mut self.matcher {
            m.shadow_gone(&mut self.decisions);
        }
        self.record();
    }

    // ---------------------------------------------------------- comparing

    /// Ends the comparison (what waits is unresolved) and the shadow with it.
    fn stop_comparing(&mut self) {
        if let Some(mut m) = self.matcher.take() {
            m.finish(&mut self.decisions);
            self.record();
        }
        self.primary_reader.stop_collecting();
        self.drop_shadow(None);
    }

    /// Counts (and samples) what the matcher decided.
    fn record(&mut self) {
        if self.decisions.is_empty() {
            return;
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        for decision in decisions.drain(..) {
            self.decide(decision);
        }
        self.decisions = decisions;
        if !self.primary_open && self.matcher.as_ref().is_some_and(Matcher::is_idle) {
            self.drop_shadow(None);
        }
        // Once the shadow is gone, comparing ends with the last pending
        // shadow message.
        if self.shadow.is_none()
            && self.connecting.is_none()
            && self.matcher.as_ref().is_some_and(Matcher::is_idle)
        {
            self.matcher = None;
            self.primary_reader.stop_collecting();
        }
    }

    fn decide(&self, decision: Decision) {
        let metrics = &self.state.ws_metrics;
        match decision {
            Decision::Paired {
                primary,
                shadow,
                skew_seconds,
                reordered,
            } => {
                metrics.skew(skew_seconds);
                let route = &self.state.route_states[self.route];
                let differences = if primary.payload == shadow.payload {
                    Vec::new()
                } else {
                    compare(&observed(&primary), &observed(&shadow), &route.rules)
                };
                route
                    .fields
                    .record(&Verdict::without_secondary(differences.clone()), None);
                if !differences.is_empty() {
                    metrics.frame(WsResult::Different);
                    self.sample(
                        WsResult::Different,
                        Some(&primary),
                        Some(&shadow),
                        differences,
                    );
                } else if reordered {
                    metrics.frame(WsResult::Reordered);
                    let order = Difference {
                        path: "frame_order".into(),
                        kind: Kind::Value,
                        primary: Some(format!("#{}", primary.index)),
                        shadow: Some(format!("#{}", shadow.index)),
                    };
                    self.sample(
                        WsResult::Reordered,
                        Some(&primary),
                        Some(&shadow),
                        vec![order],
                    );
                } else {
                    metrics.frame(WsResult::Matched);
                }
            }
            Decision::Missing(frame) => {
                metrics.frame(WsResult::Missing);
                let d = Difference {
                    path: "frame".into(),
                    kind: Kind::Missing,
                    primary: Some(frame.key.to_string()),
                    shadow: None,
                };
                self.sample(WsResult::Missing, Some(&frame), None, vec![d]);
            }
            Decision::Extra(frame) => {
                metrics.frame(WsResult::Extra);
                let d = Difference {
                    path: "frame".into(),
                    kind: Kind::Extra,
                    primary: None,
                    shadow: Some(frame.key.to_string()),
                };
                self.sample(WsResult::Extra, None, Some(&frame), vec![d]);
            }
            Decision::Overflow => metrics.frame(WsResult::Overflow),
            Decision::Unresolved => metrics.frame(WsResult::Unresolved),
        }
    }

    /// A mismatch sample, as for HTTP: the ring of the upgrade's route and
    /// the service's JSON-lines file. The request carries the result as the
    /// pseudo-header `:websocket`; each side's message carries its key and
    /// position as `:key` and `:index`.
    fn sample(
        &self,
        result: WsResult,
        primary: Option<&Frame>,
        shadow: Option<&Frame>,
        mut mismatches: Vec<Difference>,
    ) {
        let state = &self.state;
        let r = &state.redactor;
        let message = |f: Option<&Frame>| match f {
            None => Message::new(None, &[], b"", None, r),
            Some(f) => Message::new(
                None,
                &[
                    (":key".into(), f.key.to_string()),
                    (":index".into(), f.index.to_string()),
                    ("content-type".into(), media(f.opcode).into()),
                ],
                &f.payload,
                None,
                r,
            ),
        };
        for d in &mut mismatches {
            r.difference(d);
        }
        let route = &state.route_states[self.route];
        let sample = Arc::new(Sample {
            at_unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            service: state.name.clone(),
            route: route.label.clone(),
            method: "GET".into(),
            target: self.target.clone(),
            outcome: Outcome::Mismatch,
            request: Message::new(
                None,
                &[(":websocket".into(), result.as_str().into())],
                b"",
                None,
                r,
            ),
            primary: message(primary),
            shadow: message(shadow),
            secondary: None,
            mismatches,
            noise: Vec::new(),
        });
        if let Some(log) = &state.log {
            log.append(&sample);
        }
        route.samples.push(sample);
    }

    // ----------------------------------------------------------- the end

    /// Proxy shutdown: a 1001 close to the client when that fits between
    /// the primary's frames, then every socket closes.
    fn going_away(&mut self) {
        if self.client_open
            && self.primary_framed
            && self.primary_reader.at_boundary()
            && self.to_client.is_empty()
        {
            let _ = self.client.try_write(&frame::server_close(1001));
        }
        shutdown_write(&self.client);
    }

    /// What still waits is unresolved, unless the shadow never upgraded
    /// (then nothing is counted).
    fn end(&mut self) {
        if self.connecting.is_some() {
            self.drop_shadow(None);
        }
        self.stop_comparing();
    }
}

fn media(op: u8) -> &'static str {
    if op == opcode::TEXT {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

fn observed(frame: &Frame) -> Observed {
    Observed::new(
        0,
        [("content-type", media(frame.opcode))],
        frame.payload.clone(),
    )
}

/// Reads what `stream` holds now into `buf`, without waiting: `None` when
/// it holds nothing; an empty `buf` at the end of its stream.
///
/// This is tokio's `poll_read` rather than `try_read` for two savings per
/// relayed frame: the buffer may be uninitialised (no 16 KiB of zeroes
/// written before each read), and a read shorter than the buffer clears
/// the socket's readiness (tokio does so on Unix, where a short read means
/// the socket was drained), so the read that would only have said
/// `WouldBlock` is not made. Bytes arriving after that read raise a new
/// readiness event: nothing is missed.
///
/// The callers stop reading a socket after a short read, so the no-op
/// waker below is only registered when a read finds nothing at all.
///
/// The read is polled with a no-op waker: where it finds nothing it leaves
/// that waker in the socket's read slot, and [`Relay::poll_sockets`] puts
/// the task's own back before the task waits on that socket again (it
/// polls every socket it waits on each turn; readiness is state, kept
/// whatever waker is registered).
fn read_now(stream: &mut TcpStream, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(stream).poll_read(&mut cx, buf) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

/// Writes `bytes` now as far as the socket takes them and queues the rest
/// behind anything already queued. `Err` when the peer is gone.
fn send(stream: &TcpStream, queue: &mut Vec<u8>, mut bytes: &[u8]) -> Result<(), ()> {
    if queue.is_empty() {
        while !bytes.is_empty() {
            match stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(()),
            }
        }
    }
    queue.extend_from_slice(bytes);
    Ok(())
}

/// Writes what is queued as far as the socket takes it; an emptied queue
/// gives its memory back.
fn flush(stream: &TcpStream, queue: &mut Vec<u8>) -> Result<(), ()> {
    let mut written = 0;
    while written < queue.len() {
        match stream.try_write(&queue[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return Err(()),
        }
    }
    if written == queue.len() {
        *queue = Vec::new();
    } else {
        queue.drain(..written);
    }
    Ok(())
}

fn shutdown_write(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
}
