//! One WebSocket connection: a single task that reads client frames,
//! writes queued frames, pings, reaps and closes.
//!
//! # One task, no buffers while idle
//! The task owns the bare `TcpStream` and waits, in one hand-written poll,
//! on its read and write readiness (`poll_read_ready`/`poll_write_ready`
//! take `&self` and keep their wakers in the socket's registration, so
//! nothing is stored per wait), on its [`Outbox`](crate::outbox::Outbox)
//! and on one timer; every ready source is handled in the same turn. Reads go into a stack buffer inside a synchronous
//! function, so no read buffer lives in the task between reads; the
//! [`Parser`] keeps only header state. Writes send a 2–10 byte header and
//! the shared frame in one vectored write, resuming after partial writes.
//! An idle connection is therefore the task, the socket and a few small
//! structs; see the crate docs for the measurement.
//!
//! Nothing is lost between turns (readiness and the outbox's wake flag are
//! level-triggered until consumed), and the timer is always polled, so the
//! loop always has something to wait for — the article's `select!` panics
//! when both its branches are disabled.
//!
//! # Bounded per connection
//! Client ops and pings are not read while their answer (a subscription
//! frame, a pong) is still unwritten: a client that sends without reading
//! cannot make the server queue answers for it. Notifications are bounded
//! by the outbox. Unread input is kept only in that case, at most one read
//! (4 KiB).
//!
//! # Closing
//! A close (1013 from the hub, 1001 on shutdown or reaping, 1003/1002/1007/
//! 1009 for bad input) discards queued frames, finishes the frame being
//! written if any of it went out, sends the close frame (status code, no
//! reason), shuts the write side and then discards input until the peer
//! closes — the lingering close that makes sure the peer reads the close
//! frame instead of a reset. A close from the peer is answered with a close
//! frame echoing its code, then the socket is closed. The whole closing is
//! bounded by [`CLOSE_TIMEOUT`].

use std::future::Future as _;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::hub::{Conn, Hub};
use crate::op;
use crate::outbox::Entry;
use crate::topics::TopicSet;
use crate::ws::{self, close, opcode, Event, Parser, Step, Violation};

/// How long a connection may take to close once it started closing.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reads per readiness event, so one busy client cannot hog the worker.
const READS_PER_WAKE: usize = 4;
/// Frames written per readiness event, for the same reason.
const FRAMES_PER_WAKE: usize = 64;

/// Serves one upgraded connection until it closes. `received` holds any
/// bytes the client sent after its handshake request. The connection is
/// registered with the hub at once; the returned future serves it.
///
/// A plain function returning the task's future (not an `async fn`), so the
/// task stores the connection state once, not also as an argument.
pub fn serve(
    stream: TcpStream,
    received: Bytes,
    hub: Arc<Hub>,
    topics: TopicSet,
    ping_interval: Duration,
) -> impl std::future::Future<Output = ()> + Send {
    let conn = hub.connect(&topics);
    let now = Instant::now();
    let mut connection = Connection {
        stream,
        session: Session { hub, conn, topics },
        parser: Parser::new(),
        inbox: received.to_vec(),
        out: None,
        pong: None,
        ping_due: false,
        answer_pending: true,
        phase: Phase::Open,
        last_heard: now,
        next_tick: now + ping_interval,
        ping_interval,
    };
    // Borrowing the captured state (rather than moving it into an
    // `async fn run(self)`) keeps one copy of it in the task: rustc would
    // store a by-value argument twice.
    async move { connection.run().await }
}

/// Unregisters the connection however its task ends.
struct Session {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    topics: TopicSet,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.hub.disconnect(&self.conn, &self.topics);
    }
}

/// Which sources were ready in one turn of the loop.
struct Ready {
    write: bool,
    read: bool,
    changed: bool,
    tick: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

#[derive(Debug)]
enum Phase {
    Open,
    Closing {
        /// The status code sent (`None`: an empty close frame).
        code: Option<u16>,
        deadline: Instant,
        /// Our close frame has been written.
        sent: bool,
        /// Our close answers the peer's: stop once it is written.
        reply: bool,
    },
}

/// What a written frame was, for the bookkeeping after it went out.
#[derive(Debug)]
enum Kind {
    Notification(Instant),
    Subscribed,
    Control,
    Close,
}

/// A frame being written: header, shared payload and progress.
#[derive(Debug)]
struct Outgoing {
    header: [u8; 10],
    header_len: u8,
    payload: Bytes,
    written: usize,
    kind: Kind,
}

impl Outgoing {
    fn new(op: u8, payload: Bytes, kind: Kind) -> Self {
        let (header, header_len) = ws::header(op, payload.len());
        Self {
            header,
            header_len: header_len as u8,
            payload,
            written: 0,
            kind,
        }
    }

    /// The unwritten parts of header and payload.
    fn remaining(&self) -> [IoSlice<'_>; 2] {
        let h = self.header_len as usize;
        let header = &self.header[self.written.min(h)..h];
        let payload = &self.payload[self.written.saturating_sub(h)..];
        [IoSlice::new(header), IoSlice::new(payload)]
    }

    fn done(&self) -> bool {
        self.written == self.header_len as usize + self.payload.len()
    }
}

struct Connection {
    stream: TcpStream,
    session: Session,
    parser: Parser,
    /// Input held back while an answer is pending (usually empty).
    inbox: Vec<u8>,
    /// The frame being written.
    out: Option<Outgoing>,
    /// The payload of the latest unanswered ping.
    pong: Option<Vec<u8>>,
    ping_due: bool,
    /// A subscription frame is queued and not yet written.
    answer_pending: bool,
    phase: Phase,
    last_heard: Instant,
    next_tick: Instant,
    ping_interval: Duration,
}

impl Connection {
    async fn run(&mut self) {
        let sleep = tokio::time::sleep_until(self.next_tick);
        tokio::pin!(sleep);
        loop {
            if self.prepare() == Flow::Stop {
                return;
            }
            let deadline = self.deadline();
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let writing = self.out.is_some();
            let reading = self.wants_input();
            let open = matches!(self.phase, Phase::Open);
            // Polls every source and reports all that are ready, so none can
            // starve another. The timer is always polled, so there is always
            // something to wait for.
            let ready = std::future::poll_fn(|cx| {
                let ready = Ready {
                    write: writing && self.stream.poll_write_ready(cx).is_ready(),
                    read: reading && self.stream.poll_read_ready(cx).is_ready(),
                    changed: open && self.session.conn.outbox.poll_changed(cx).is_ready(),
                    tick: sleep.as_mut().poll(cx).is_ready(),
                };
                if ready.write || ready.read || ready.changed || ready.tick {
                    Poll::Ready(ready)
                } else {
                    Poll::Pending
                }
            })
            .await;
            // Readiness errors surface as errors of the try_* calls.
            if ready.write && self.write() == Flow::Stop {
                return;
            }
            if ready.read && self.read() == Flow::Stop {
                return;
            }
            if ready.tick && self.tick() == Flow::Stop {
                return;
            }
        }
    }

    /// Takes in what happened since the last turn and picks the next frame
    /// to write.
    fn prepare(&mut self) -> Flow {
        if matches!(self.phase, Phase::Open) {
            if let Some(code) = self.session.conn.outbox.closing() {
                self.start_closing(Some(code), false);
            }
        }
        if self.accepts_input() && !self.inbox.is_empty() {
            let inbox = std::mem::take(&mut self.inbox);
            let consumed = self.process(&inbox);
            if consumed < inbox.len() && self.accepts_input_later() {
                self.inbox = inbox[consumed..].to_vec();
            }
        }
        if self.out.is_none() {
            self.out = self.next_frame();
        }
        Flow::Continue
    }

    /// When the timer must fire next: the next ping, or the moment the peer
    /// will have been silent for two intervals, or the end of closing.
    fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Open => self.next_tick.min(self.silence_limit()),
            Phase::Closing { deadline, .. } => deadline,
        }
    }

    /// When the peer, silent since `last_heard`, is to be closed.
    fn silence_limit(&self) -> Instant {
        self.last_heard + 2 * self.ping_interval
    }

    /// Client input is processed now.
    fn accepts_input(&self) -> bool {
        matches!(self.phase, Phase::Open) && self.pong.is_none() && !self.answer_pending
    }

    /// Client input will be processed once pending answers are written.
    fn accepts_input_later(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Whether to wait for the socket to be readable.
    fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Open => self.accepts_input() && self.inbox.is_empty(),
            // Only after our close frame: then input is discarded until EOF.
            Phase::Closing { sent, .. } => sent,
        }
    }

    fn next_frame(&mut self) -> Option<Outgoing> {
        match self.phase {
            Phase::Closing {
                sent: false, code, ..
            } => {
                let payload =
                    code.map_or(Bytes::new(), |c| Bytes::copy_from_slice(&c.to_be_bytes()));
                Some(Outgoing::new(opcode::CLOSE, payload, Kind::Close))
            }
            Phase::Closing { .. } => None,
            Phase::Open => {
                if let Some(payload) = self.pong.take() {
                    return Some(Outgoing::new(
                        opcode::PONG,
                        Bytes::from(payload),
                        Kind::Control,
                    ));
                }
                if std::mem::take(&mut self.ping_due) {
                    return Some(Outgoing::new(opcode::PING, Bytes::new(), Kind::Control));
                }
                match self.session.conn.outbox.pop()? {
                    Entry::Notification { frame, queued_at } => Some(Outgoing::new(
                        opcode::TEXT,
                        frame,
                        Kind::Notification(queued_at),
                    )),
                    Entry::Subscribed(frame) => {
                        Some(Outgoing::new(opcode::TEXT, frame, Kind::Subscribed))
                    }
                }
            }
        }
    }

    /// The socket is writable: write frames until it would block.
    fn write(&mut self) -> Flow {
        for _ in 0..FRAMES_PER_WAKE {
            let Some(out) = self.out.as_mut() else {
                return Flow::Continue;
            };
            while !out.done() {
                match self.stream.try_write_vectored(&out.remaining()) {
                    Ok(0) => return Flow::Stop,
                    Ok(n) => out.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Continue,
                    Err(_) => return Flow::Stop,
                }
            }
            let done = self.out.take().expect("a frame was being written");
            if self.written(done.kind) == Flow::Stop {
                return Flow::Stop;
            }
            self.out = self.next_frame();
        }
        Flow::Continue
    }

    /// Bookkeeping after a frame went out completely.
    fn written(&mut self, kind: Kind) -> Flow {
        let hub = &self.session.hub;
        match kind {
            Kind::Notification(queued_at) => {
                hub.metrics().sent(queued_at.elapsed());
                self.session.conn.outbox.written();
            }
            Kind::Subscribed => {
                self.answer_pending = false;
                self.session.conn.outbox.written();
            }
            Kind::Control => {}
            Kind::Close => {
                if let Phase::Closing { sent, reply, .. } = &mut self.phase {
                    *sent = true;
                    if *reply {
                        return Flow::Stop;
                    }
                }
                // Lingering close: FIN after the close frame, then wait for
                // the peer's EOF (discarding its close frame and anything
                // else) so that it reads our close frame, not a reset.
                let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
            }
        }
        Flow::Continue
    }

    /// The socket is readable: read and handle what arrived.
    fn read(&mut self) -> Flow {
        let mut buf = [0u8; ws::MAX_MESSAGE_BYTES];
        for _ in 0..READS_PER_WAKE {
            match self.stream.try_read(&mut buf) {
                Ok(0) => return Flow::Stop,
                Ok(n) => {
                    self.last_heard = Instant::now();
                    if matches!(self.phase, Phase::Open) {
                        let consumed = self.process(&buf[..n]);
                        if consumed < n && self.accepts_input_later() {
                            // An answer is pending: keep the rest for later
                            // and stop reading until it is written.
                            self.inbox.extend_from_slice(&buf[consumed..n]);
                            return Flow::Continue;
                        }
                    }
                    // Closing: input is discarded.
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Continue,
                Err(_) => return Flow::Stop,
            }
        }
        Flow::Continue
    }

    /// Parses and handles client input while it is accepted; returns how
    /// much of `input` was used.
    fn process(&mut self, input: &[u8]) -> usize {
        let mut at = 0;
        while at < input.len() && self.accepts_input() {
            match self.parser.feed(&input[at..]) {
                Ok(Step::NeedMore) => return input.len(),
                Ok(Step::Event { consumed, event }) => {
                    at += consumed;
                    self.on_event(event);
                }
                Err(Violation(code)) => {
                    self.start_closing(Some(code), false);
                    return input.len();
                }
            }
        }
        at
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Text(text) => {
                let Session { hub, conn, topics } = &mut self.session;
                let applied = op::parse(&text).ok().map(|op| hub.apply(conn, topics, &op));
                match applied {
                    Some(Ok(())) => self.answer_pending = true,
                    Some(Err(_)) | None => self.start_closing(Some(close::UNSUPPORTED_DATA), false),
                }
            }
            Event::Binary => self.start_closing(Some(close::UNSUPPORTED_DATA), false),
            Event::Ping(payload) => self.pong = Some(payload),
            Event::Pong => {}
            Event::Close(code) => self.start_closing(code, true),
        }
    }

    /// Starts closing with `code` (or the code the hub already chose).
    /// `reply`: this answers the peer's close frame, echoing its code.
    fn start_closing(&mut self, code: Option<u16>, reply: bool) {
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        let chosen = self
            .session
            .conn
            .outbox
            .close(code.unwrap_or(close::NORMAL));
        let code = if reply { code } else { Some(chosen) };
        self.pong = None;
        self.ping_due = false;
        self.inbox = Vec::new();
        // A frame none of which went out yet need not be finished.
        if self.out.as_ref().is_some_and(|o| o.written == 0) {
            self.out = None;
        }
        self.phase = Phase::Closing {
            code,
            deadline: Instant::now() + CLOSE_TIMEOUT,
            sent: false,
            reply,
        };
    }

    /// The timer fired: ping, reap, or give up closing.
    fn tick(&mut self) -> Flow {
        let now = Instant::now();
        match self.phase {
            Phase::Closing { deadline, .. } => {
                if now >= deadline {
                    return Flow::Stop;
                }
            }
            Phase::Open => {
                if now >= self.silence_limit() {
                    self.start_closing(Some(close::GOING_AWAY), false);
                } else if now >= self.next_tick {
                    while self.next_tick <= now {
                        self.next_tick += self.ping_interval;
                    }
                    self.ping_due = true;
                }
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_resumes_a_partial_write_across_header_and_payload() {
        let mut out = Outgoing::new(opcode::TEXT, Bytes::from_static(b"hello"), Kind::Control);
        let total: Vec<u8> = out.remaining().iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(total, b"\x81\x05hello");
        out.written = 1;
        let rest: Vec<u8> = out.remaining().iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(rest, b"\x05hello");
        out.written = 4;
        let rest: Vec<u8> = out.remaining().iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(rest, b"llo");
        out.written = 7;
        assert!(out.done());
    }

    #[test]
    fn an_idle_connection_task_is_small() {
        // The whole per-connection task future, as spawned. Guards the
        // memory budget against an accidental buffer in the task.
        let hub = Arc::new(crate::hub::Hub::new(
            crate::outbox::Limits {
                capacity: 1,
                drop_limit: 1,
            },
            crate::metrics::FanoutMetrics::register(&parallax_common::metrics::Metrics::new()),
        ));
        let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        std.set_nonblocking(true).unwrap();
        let client = std::net::TcpStream::connect(std.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(client).unwrap();
        let future = serve(
            stream,
            Bytes::new(),
            hub,
            TopicSet::new(),
            Duration::from_secs(30),
        );
        let size = std::mem::size_of_val(&future);
        assert!(size <= 640, "connection future is {size} bytes");
    }
}
