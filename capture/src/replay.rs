//! Replay: a capture's requests sent to a target on the recorded schedule
//! (or a fixed rate), open-model.
//!
//! Two parts, usable apart:
//! - [`Schedule`]: a blocking iterator over [`Item`]s — the intended time
//!   (offset from the start of the replay), the connection the request
//!   belongs to and the request, filtered and rewritten — streamed from the
//!   files with flat memory, looping if asked. An experiments runner that
//!   drives its own senders needs only this.
//! - [`run`]: the engine. A reader thread feeds the schedule through a
//!   bounded channel; one dispatcher task waits for each item's time and
//!   hands it to a worker. Requests of one recorded connection go to that
//!   connection's worker and are sent in order on one keep-alive
//!   connection (a session); requests without a connection go to a pool of
//!   workers that grows while every worker is busy (up to
//!   `max_connections`). Nobody waits for an answer before the next item
//!   is dispatched: the load is open.
//!
//! WebSocket sessions replay as sessions ([`crate::wsreplay`]): a recorded
//! handshake opens a connection to the target, the client's messages go
//! out at their intended times on it, and the server's frames are paired
//! with the recorded ones (the report's `websocket` section).
//!
//! Latency counts from each request's intended time, like
//! `parallax-loadgen`'s pacing: a request sent late because its session was
//! still busy, or because the replayer fell behind, carries the delay in
//! its latency (coordinated omission corrected), and one sent more than
//! `late_after` after its time counts as late. The dispatcher wakes
//! `early_by` ahead of an item (tokio's timer rounds up to whole
//! milliseconds); an item sent early is measured from its actual send.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{HeaderName, HeaderValue, HOST};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::format::{Record, Request, WsMessage};
use crate::rewrite::{Filter, Rewrite};
use crate::source::Source;
use crate::summary::collapse;
use crate::wsreplay::{self, SessionSettings, WsJob, WsReport};
use crate::Error;

/// How recorded times become intended times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Recorded inter-arrival times divided by this factor (1 = as
    /// recorded, 10 = ten times faster).
    Speed(f64),
    /// The recorded order at this many requests per second.
    Rate(f64),
}

/// Everything a replay needs besides the files and the target.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub pace: Pace,
    /// Stop scheduling at this offset (default: the end of the capture, or
    /// of the last loop).
    pub duration: Option<Duration>,
    /// Passes over the capture: 1 plays it once; 0 loops until `duration`.
    pub loops: u32,
    pub filter: Filter,
    pub rewrite: Rewrite,
    /// Replay each recorded connection's requests in order on one
    /// connection (default). Off: every request goes to the shared pool.
    pub sessions: bool,
    /// The most connections (sessions and pool together).
    pub max_connections: usize,
    /// Each request must be answered, body included, within this.
    pub timeout: Duration,
    /// A request sent later than this after its intended time is late.
    pub late_after: Duration,
    /// The dispatcher wakes this much ahead of an item.
    pub early_by: Duration,
    /// Replay recorded WebSocket sessions (handshake and client messages,
    /// server frames paired). Off: they are skipped and counted.
    pub websocket: bool,
    /// A WebSocket session waits this long after its last message for the
    /// recorded server frames still missing.
    pub ws_linger: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            pace: Pace::Speed(1.0),
            duration: None,
            loops: 1,
            filter: Filter::default(),
            rewrite: Rewrite::default(),
            sessions: true,
            max_connections: 1024,
            timeout: Duration::from_secs(10),
            late_after: Duration::from_millis(10),
            early_by: Duration::from_millis(1),
            websocket: true,
            ws_linger: Duration::from_secs(2),
        }
    }
}

impl ReplayOptions {
    fn check(&self) -> Result<(), Error> {
        match self.pace {
            Pace::Speed(f) if !(f.is_finite() && f > 0.0) => {
                return Err(Error::Config(format!("--speed {f}: give a number above 0")))
            }
            Pace::Rate(r) if !(r.is_finite() && r > 0.0) => {
                return Err(Error::Config(format!("--rate {r}: give a number above 0")))
            }
            _ => {}
        }
        if self.loops == 0 && self.duration.is_none() {
            return Err(Error::Config(
                "--loop without --duration-secs would never end; give both".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::Config("--max-connections must be at least 1".into()));
        }
        Ok(())
    }
}

/// One request of the schedule.
#[derive(Debug, Clone)]
pub struct Item {
    /// When it is due, from the start of the replay.
    pub due: Duration,
    /// Its session: requests with the same value go on one connection, in
    /// order. Distinct per loop. `None`: any connection.
    pub conn: Option<u64>,
    /// Which pass over the capture (0 first).
    pub loop_n: u32,
    /// Its position in the schedule (0 first).
    pub seq: u64,
    /// The request, or a WebSocket session's handshake (status 101 or an
    /// `upgrade: websocket` header; see [`Item::is_handshake`]). Empty for
    /// a WebSocket message.
    pub request: Request,
    /// A WebSocket message of session `conn`: the client's to send (due
    /// now), or the server's, recorded (to pair with what the target
    /// sends; not sent).
    pub ws: Option<WsMessage>,
}

impl Item {
    /// Whether the item opens a WebSocket session.
    pub fn is_handshake(&self) -> bool {
        self.ws.is_none() && is_handshake(&self.request)
    }
}

fn is_handshake(request: &Request) -> bool {
    request.status == Some(101)
        || request
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// What the schedule left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Requests the filters did not accept.
    pub filtered: u64,
    /// WebSocket handshakes and messages not replayed: replay of
    /// WebSockets off, a message whose handshake is not in the capture (or
    /// was filtered out), a handshake without a connection id.
    pub websocket: u64,
    /// Requests whose body the recorder cut short.
    pub truncated_body: u64,
    /// Gaps the recorder left (records dropped while recording).
    pub gaps: u64,
}

/// The replay schedule: a blocking, streaming iterator of [`Item`]s.
pub struct Schedule {
    files: Vec<PathBuf>,
    pace: Pace,
    duration: Option<Duration>,
    loops: u32,
    filter: Filter,
    rewrite: Rewrite,
    sessions: bool,
    websocket: bool,
    /// Recorded connection ids of the WebSocket sessions replayed in this
    /// loop and not yet closed.
    ws_open: HashSet<u64>,
    source: Source,
    loop_n: u32,
    /// The first record time of the current loop.
    first_us: Option<u64>,
    loop_start: Duration,
    last_due: Duration,
    loop_items: u64,
    seq: u64,
    done: bool,
    pub skipped: Skipped,
    /// Whether a file read so far was truncated.
    pub truncated: bool,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Schedule {
    /// Opens the files (see [`Source::open`]).
    pub fn open(files: &[PathBuf], options: &ReplayOptions) -> Result<Self, Error> {
        options.check()?;
        Ok(Self {
            files: files.to_vec(),
            pace: options.pace,
            duration: options.duration,
            loops: options.loops,
            filter: options.filter.clone(),
            rewrite: options.rewrite.clone(),
            sessions: options.sessions,
            websocket: options.websocket,
            ws_open: HashSet::new(),
            source: Source::open(files)?,
            loop_n: 0,
            first_us: None,
            loop_start: Duration::ZERO,
            last_due: Duration::ZERO,
            loop_items: 0,
            seq: 0,
            done: false,
            skipped: Skipped::default(),
            truncated: false,
        })
    }

    fn next_loop(&mut self) -> Result<bool, Error> {
        self.truncated |= self.source.truncated();
        self.loop_n += 1;
        if (self.loops != 0 && self.loop_n >= self.loops) || self.loop_items == 0 {
            return Ok(false);
        }
        // The next pass starts one mean inter-arrival after the last item.
        let span = self.last_due.saturating_sub(self.loop_start);
        let gap = span / (self.loop_items.max(2) - 1) as u32;
        self.loop_start = self.last_due + gap.max(Duration::from_micros(1));
        self.first_us = None;
        self.loop_items = 0;
        self.ws_open.clear();
        self.source = Source::open(&self.files)?;
        Ok(true)
    }

    fn next_item(&mut self) -> Result<Option<Item>, Error> {
        while !self.done {
            let Some(record) = self.source.next_record()? else {
                if !self.next_loop()? {
                    self.done = true;
                }
                continue;
            };
            let mut request = match record {
                Record::Request(r) => r,
                Record::Ws(m) => match self.ws_item(m) {
                    Ok(Some(item)) => return Ok(Some(item)),
                    Ok(None) => continue,
                    Err(()) => break,
                },
                Record::Gap { .. } => {
                    self.skipped.gaps += 1;
                    continue;
                }
                Record::Meta(_) => continue,
            };
            let handshake = is_handshake(&request);
            if handshake && (!self.websocket || request.conn.is_none()) {
                self.skipped.websocket += 1;
                continue;
            }
            if !self.filter.accepts(&request) {
                self.skipped.filtered += 1;
                continue;
            }
            if request.body_truncated {
                self.skipped.truncated_body += 1;
                continue;
            }
            let first = *self.first_us.get_or_insert(request.at_us);
            let due = match self.pace {
                Pace::Speed(f) => {
                    self.loop_start
                        + Duration::from_secs_f64(
                            request.at_us.saturating_sub(first) as f64 / 1e6 / f,
                        )
                }
                Pace::Rate(r) => Duration::from_secs_f64(self.seq as f64 / r),
            };
            // Records are written when their exchange ends, so a long one
            // (a streamed body) follows requests that arrived after it: it
            // is due now, not in the past, and is not counted late.
            let due = due.max(self.last_due);
            if self.duration.is_some_and(|d| due >= d) {
                self.done = true;
                break;
            }
            self.rewrite.apply(&mut request, self.loop_n);
            let conn = if self.sessions || handshake {
                request.conn.map(|c| self.session_id(c))
            } else {
                None
            };
            if handshake {
                self.ws_open.extend(request.conn);
            }
            let item = Item {
                due,
                conn,
                loop_n: self.loop_n,
                seq: self.seq,
                request,
                ws: None,
            };
            self.seq += 1;
            self.loop_items += 1;
            self.last_due = due;
            return Ok(Some(item));
        }
        self.truncated |= self.source.truncated();
        Ok(None)
    }
}

impl Schedule {
    /// A recorded connection's session id in this loop (distinct per loop).
    fn session_id(&self, conn: u64) -> u64 {
        conn ^ u64::from(self.loop_n).wrapping_mul(GOLDEN)
    }

    /// A WebSocket message as an item, `None` when its session is not
    /// replayed, `Err` when the duration is over.
    fn ws_item(&mut self, m: WsMessage) -> Result<Option<Item>, ()> {
        let Some(conn) = m.conn.filter(|c| self.ws_open.contains(c)) else {
            self.skipped.websocket += 1;
            return Ok(None);
        };
        let first = *self.first_us.get_or_insert(m.at_us);
        // The client's messages take the schedule's pace; the server's are
        // only expectations, placed in recorded order.
        let due = match self.pace {
            Pace::Speed(f) => {
                self.loop_start
                    + Duration::from_secs_f64(m.at_us.saturating_sub(first) as f64 / 1e6 / f)
            }
            Pace::Rate(r) if m.from_client => Duration::from_secs_f64(self.seq as f64 / r),
            Pace::Rate(_) => self.last_due,
        };
        if self.duration.is_some_and(|d| due >= d) {
            self.done = true;
            return Err(());
        }
        if m.opcode == wsreplay::opcode::CLOSE {
            self.ws_open.remove(&conn);
        }
        let item = Item {
            due: due.max(self.last_due),
            conn: Some(self.session_id(conn)),
            loop_n: self.loop_n,
            seq: self.seq,
            request: Request::default(),
            ws: Some(m),
        };
        if item.ws.as_ref().is_some_and(|m| m.from_client) {
            self.seq += 1;
            self.loop_items += 1;
        }
        self.last_due = item.due;
        Ok(Some(item))
    }
}

impl Iterator for Schedule {
    type Item = Result<Item, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_item() {
            Ok(Some(i)) => Some(Ok(i)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Where to send: `http://HOST:PORT`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: HeaderValue,
    pub url: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("--target {url:?}: {why}"));
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.contains("://") {
            return Err(bad("only http:// targets are supported"));
        }
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(bad("give only the scheme, host and port"));
        }
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?
            .next()
            .ok_or_else(|| bad("the host has no address"))?;
        Ok(Self {
            addr,
            host: HeaderValue::from_str(authority).map_err(|_| bad("not a host"))?,
            url: format!("http://{authority}"),
        })
    }
}

/// A live view of a running replay, for progress lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub elapsed: Duration,
    /// The current item's intended time.
    pub due: Duration,
    pub sent: u64,
    pub completed: u64,
    pub late: u64,
    pub errors: u64,
    pub connections: u64,
}

/// One second of the replay (by completion time).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub t_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Latency of one route (method and collapsed path).
#[derive(Debug, Clone)]
pub struct RouteLatency {
    pub requests: u64,
    pub latency_us: Histogram<u64>,
}

/// Distinct routes measured; later ones count under `other`.
pub const MAX_ROUTES: usize = 50;

/// What a replay measured.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// Latency of every answered or failed request, µs, from its intended
    /// time.
    pub latency_us: Histogram<u64>,
    pub windows: Vec<Window>,
    pub routes: BTreeMap<String, RouteLatency>,
    /// Requests handed to a connection.
    pub sent: u64,
    /// Requests answered or failed.
    pub completed: u64,
    /// Sent more than `late_after` after their time.
    pub late: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no answer, by reason (`connect`, `timeout`, `io`,
    /// `invalid`).
    pub transport_errors: BTreeMap<&'static str, u64>,
    /// Answers with the same status as the recorded primary's.
    pub status_same: u64,
    /// Answers with another status than the recorded primary's.
    pub status_different: u64,
    /// Sessions that found no free connection and went to the pool.
    pub sessions_overflowed: u64,
    pub connections_opened: u64,
    pub skipped: Skipped,
    /// A capture file was truncated (replayed up to its last record).
    pub truncated: bool,
    /// The last item's intended time.
    pub scheduled: Duration,
    /// From the start to the last completion.
    pub elapsed: Duration,
    /// Replayed WebSocket sessions (their handshakes also count as
    /// requests above, status 101).
    pub websocket: WsReport,
}

impl ReplayReport {
    /// Transport failures plus 5xx answers.
    pub fn errors(&self) -> u64 {
        self.transport_errors.values().sum::<u64>()
            + self
                .statuses
                .iter()
                .filter(|(s, _)| **s >= 500)
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    /// Late requests as a share of those sent.
    pub fn late_fraction(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.late as f64 / self.sent as f64
        }
    }

    /// Completed requests per second.
    pub fn achieved_rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.completed as f64 / s
        } else {
            0.0
        }
    }
}

/// A new latency histogram (µs, 1 µs – 60 s, 3 digits): the bounds of
/// `parallax-loadgen`'s reports, so the two merge.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// What workers record, behind one lock: held only to add a completion
/// (no `.await` inside), a few hundred nanoseconds per request.
struct Collector {
    start: Instant,
    report: ReplayReport,
    window_sec: u64,
    window: Histogram<u64>,
    window_errors: u64,
}

impl Collector {
    fn close_windows_before(&mut self, sec: u64) {
        while self.window_sec < sec {
            let h = &self.window;
            self.report.windows.push(Window {
                t_secs: self.window_sec as f64,
                requests: h.len(),
                errors: self.window_errors,
                p50_us: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.5)
                },
                p99_us: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                },
                max_us: h.max(),
            });
            self.window.reset();
            self.window_errors = 0;
            self.window_sec += 1;
        }
    }

    fn record(
        &mut self,
        done: Instant,
        latency_us: u64,
        route: &str,
        result: Result<u16, &'static str>,
        recorded: Option<u16>,
    ) {
        let sec = done.saturating_duration_since(self.start).as_secs();
        self.close_windows_before(sec);
        let us = latency_us.clamp(1, 60_000_000);
        let r = &mut self.report;
        r.completed += 1;
        r.latency_us.saturating_record(us);
        self.window.saturating_record(us);
        r.elapsed = r.elapsed.max(done.saturating_duration_since(self.start));
        let key = if r.routes.contains_key(route) || r.routes.len() < MAX_ROUTES {
            route.to_owned()
        } else {
            "other".to_owned()
        };
        let entry = r.routes.entry(key).or_insert_with(|| RouteLatency {
            requests: 0,
            latency_us: latency_histogram(),
        });
        entry.requests += 1;
        entry.latency_us.saturating_record(us);
        match result {
            Ok(status) => {
                *r.statuses.entry(status).or_default() += 1;
                if status >= 500 {
                    self.window_errors += 1;
                }
                match recorded {
                    Some(s) if s == status => r.status_same += 1,
                    Some(_) => r.status_different += 1,
                    None => {}
                }
            }
            Err(kind) => {
                *r.transport_errors.entry(kind).or_default() += 1;
                self.window_errors += 1;
            }
        }
    }
}

/// Counters read by the progress line.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    completed: AtomicU64,
    late: AtomicU64,
    errors: AtomicU64,
    connections: AtomicU64,
}

struct Job {
    intended: Instant,
    request: Request,
}

struct Shared {
    target: Target,
    timeout: Duration,
    late_after: Duration,
    collector: Mutex<Collector>,
    live: Live,
    /// Replayed WebSocket sessions, added as each ends.
    ws: Mutex<WsReport>,
    ws_linger: Duration,
    /// Body bytes read and not yet done with (see `run`).
    ahead: Arc<AtomicUsize>,
}

/// Replays `files` against `target`; `progress` is called about once a
/// second from the dispatcher.
pub async fn run(
    files: &[PathBuf],
    options: &ReplayOptions,
    target: &Target,
    mut progress: impl FnMut(&Progress),
) -> Result<ReplayReport, Error> {
    let schedule = Schedule::open(files, options)?;
    // Bounded twice: the reader thread stays at most 1,024 items ahead of
    // the dispatcher, and at most READ_AHEAD_BYTES (bodies, plus
    // ITEM_BYTES per request for its head and bookkeeping) ahead of the
    // requests' completion, so memory stays flat whatever the capture's
    // size (83 KB ingest batches would otherwise hold 85 MB in the
    // channel). The bytes are given back when a request is done, not when
    // it is dispatched: a slow target makes sessions queue their requests,
    // and a 10 GB capture of 16 KiB bodies replayed 1.4 s behind its
    // schedule held 111 MiB in those queues before this. Behind the bound
    // the reader waits, the requests go out late and are counted late
    // (their latency still runs from their intended time). The byte bound
    // is polled: the reader sleeps 1 ms while over it.
    let (item_tx, mut item_rx) = mpsc::channel::<Result<Item, Error>>(1024);
    let ahead = Arc::new(AtomicUsize::new(0));
    let reader_ahead = Arc::clone(&ahead);
    let reader = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || {
            let mut schedule = schedule;
            for item in schedule.by_ref() {
                let len = item.as_ref().map_or(0, cost);
                while reader_ahead.load(Ordering::Relaxed) > READ_AHEAD_BYTES
                    && !item_tx.is_closed()
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                reader_ahead.fetch_add(len, Ordering::Relaxed);
                if item_tx.blocking_send(item).is_err() {
                    break;
                }
            }
            (schedule.skipped.clone(), schedule.truncated)
        })
        .map_err(|e| Error::Config(format!("cannot start the reader thread: {e}")))?;

    let start = Instant::now();
    let shared = Arc::new(Shared {
        target: target.clone(),
        timeout: options.timeout,
        late_after: options.late_after,
        collector: Mutex::new(Collector {
            start,
            report: ReplayReport {
                latency_us: latency_histogram(),
                windows: Vec::new(),
                routes: BTreeMap::new(),
                sent: 0,
                completed: 0,
                late: 0,
                statuses: BTreeMap::new(),
                transport_errors: BTreeMap::new(),
                status_same: 0,
                status_different: 0,
                sessions_overflowed: 0,
                connections_opened: 0,
                skipped: Skipped::default(),
                truncated: false,
                scheduled: Duration::ZERO,
                elapsed: Duration::ZERO,
                websocket: WsReport::default(),
            },
            window_sec: 0,
            window: latency_histogram(),
            window_errors: 0,
        }),
        live: Live::default(),
        ws: Mutex::new(WsReport::default()),
        ws_linger: options.ws_linger,
        ahead,
    });
    let mut ws_sessions: HashMap<u64, mpsc::UnboundedSender<WsJob>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sessions: HashMap<u64, mpsc::UnboundedSender<Job>> = HashMap::new();
    let (pool_tx, pool_rx) = mpsc::unbounded_channel::<Job>();
    let pool_rx = Arc::new(tokio::sync::Mutex::new(pool_rx));
    let pool_idle = Arc::new(AtomicUsize::new(0));
    let mut pool_workers = 0usize;
    let mut overflowed = 0u64;
    let mut next_progress = start + Duration::from_secs(1);
    let mut last_due = Duration::ZERO;
    let mut failure = None;

    while let Some(item) = item_rx.recv().await {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        last_due = item.due;
        let intended = start + item.due;
        let wake = intended.checked_sub(options.early_by).unwrap_or(intended);
        loop {
            let now = Instant::now();
            if now >= next_progress {
                progress(&snapshot(&shared.live, start, item.due));
                next_progress += Duration::from_secs(1);
                continue;
            }
            if now >= wake {
                break;
            }
            tokio::time::sleep_until(wake.min(next_progress)).await;
        }
        if let Some(m) = item.ws {
            let conn = item.conn.expect("WebSocket items have a session");
            let close = m.opcode == wsreplay::opcode::CLOSE && m.from_client;
            if let Some(tx) = ws_sessions.get(&conn) {
                let job = if m.from_client {
                    WsJob::Send {
                        intended,
                        opcode: m.opcode,
                        payload: m.payload,
                    }
                } else {
                    WsJob::Expect {
                        opcode: m.opcode,
                        payload: m.payload,
                    }
                };
                let _ = tx.send(job);
            }
            if close {
                ws_sessions.remove(&conn);
            }
            continue;
        }
        shared.live.sent.fetch_add(1, Ordering::Relaxed);
        if item.is_handshake() {
            let (tx, rx) = mpsc::unbounded_channel();
            if let Some(conn) = item.conn {
                ws_sessions.insert(conn, tx);
            }
            tasks.spawn(ws_session(Arc::clone(&shared), intended, item.request, rx));
            continue;
        }
        let job = Job {
            intended,
            request: item.request,
        };
        let job = match item.conn {
            Some(conn) => {
                if sessions.len() >= options.max_connections {
                    sessions.retain(|_, tx| !tx.is_closed());
                }
                let unsent = match sessions.get(&conn) {
                    Some(tx) => tx.send(job).err().map(|mpsc::error::SendError(job)| job),
                    None => Some(job),
                };
                match unsent {
                    None => None,
                    // No worker, or it just went idle and closed: a new one.
                    Some(job) => {
                        if sessions.len() + pool_workers < options.max_connections {
                            let (tx, rx) = mpsc::unbounded_channel();
                            tx.send(job).unwrap_or_else(|_| unreachable!("rx is alive"));
                            sessions.insert(conn, tx);
                            tasks.spawn(session_worker(Arc::clone(&shared), rx));
                            None
                        } else {
                            overflowed += 1;
                            Some(job)
                        }
                    }
                }
            }
            None => Some(job),
        };
        if let Some(job) = job {
            if pool_idle.load(Ordering::Relaxed) == 0
                && (pool_workers == 0 || sessions.len() + pool_workers < options.max_connections)
            {
                pool_workers += 1;
                pool_idle.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(pool_worker(
                    Arc::clone(&shared),
                    Arc::clone(&pool_rx),
                    Arc::clone(&pool_idle),
                ));
            }
            let _ = pool_tx.send(job);
        }
    }
    drop(item_rx);
    drop(pool_tx);
    drop(sessions);
    drop(ws_sessions);
    let mut ticker = tokio::time::interval_at(next_progress, Duration::from_secs(1));
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            _ = ticker.tick() => progress(&snapshot(&shared.live, start, last_due)),
        }
    }
    let (skipped, truncated) = reader
        .join()
        .map_err(|_| Error::Config("the reader thread panicked".into()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let shared = Arc::try_unwrap(shared).unwrap_or_else(|_| unreachable!("workers are done"));
    let live = shared.live;
    let mut collector = shared.collector.into_inner().expect("no worker panicked");
    let end = collector.start + collector.report.elapsed + Duration::from_secs(1);
    let last = end.saturating_duration_since(collector.start).as_secs();
    collector.close_windows_before(last);
    let mut report = collector.report;
    report.websocket = shared.ws.into_inner().expect("no session panicked");
    report.sent = live.sent.load(Ordering::Relaxed);
    report.late = live.late.load(Ordering::Relaxed);
    report.connections_opened = live.connections.load(Ordering::Relaxed);
    report.sessions_overflowed = overflowed;
    report.skipped = skipped;
    report.truncated = truncated;
    report.scheduled = last_due;
    Ok(report)
}

fn snapshot(live: &Live, start: Instant, due: Duration) -> Progress {
    Progress {
        elapsed: start.elapsed(),
        due,
        sent: live.sent.load(Ordering::Relaxed),
        completed: live.completed.load(Ordering::Relaxed),
        late: live.late.load(Ordering::Relaxed),
        errors: live.errors.load(Ordering::Relaxed),
        connections: live.connections.load(Ordering::Relaxed),
    }
}

/// Bytes the reader thread may read ahead of the requests' completion.
const READ_AHEAD_BYTES: usize = 8 << 20;
/// What a request costs besides its body (its head, its job, its place in
/// a queue), about: a backlog of bodiless GETs stops at 16,384 requests.
const ITEM_BYTES: usize = 512;

/// What an item holds against [`READ_AHEAD_BYTES`] until its request is
/// done (`send`): requests only. WebSocket handshakes and messages go to
/// their sessions, which are few and bounded by the capture's sessions.
fn cost(item: &Item) -> usize {
    if item.ws.is_some() || item.is_handshake() {
        0
    } else {
        item.request.body.len() + ITEM_BYTES
    }
}

/// How long a session's worker waits for its next request before it
/// closes its connection (a later request of the session opens a new one).
const SESSION_IDLE: Duration = Duration::from_secs(2);

async fn session_worker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut conn = Conn::default();
    loop {
        match tokio::time::timeout(SESSION_IDLE, rx.recv()).await {
            Ok(Some(job)) => send(&shared, &mut conn, job).await,
            Ok(None) => return,
            Err(_) => {
                // Close first, then drain: a job sent before the close is
                // still ours; one sent after it comes back to the sender.
                rx.close();
                while let Ok(job) = rx.try_recv() {
                    send(&shared, &mut conn, job).await;
                }
                return;
            }
        }
    }
}

async fn pool_worker(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    idle: Arc<AtomicUsize>,
) {
    let mut conn = Conn::default();
    loop {
        // An async mutex: a worker waits for the next job while holding it,
        // and the others queue behind it; jobs go to whichever is free.
        let job = rx.lock().await.recv().await;
        let Some(job) = job else { return };
        idle.fetch_sub(1, Ordering::Relaxed);
        send(&shared, &mut conn, job).await;
        idle.fetch_add(1, Ordering::Relaxed);
    }
}

/// One keep-alive connection, (re)connected on demand.
#[derive(Default)]
struct Conn {
    sender: Option<SendRequest<Full<Bytes>>>,
}

const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "expect",
];

fn build(
    request: &Request,
    host: &HeaderValue,
) -> Result<http::Request<Full<Bytes>>, &'static str> {
    let mut b = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.target.as_str())
        .header(HOST, host.clone());
    for (name, value) in &request.headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            b = b.header(n, v);
        }
    }
    b.body(Full::new(request.body.clone()))
        .map_err(|_| "invalid")
}

async fn send(shared: &Shared, conn: &mut Conn, job: Job) {
    let now = Instant::now();
    if now > job.intended + shared.late_after {
        shared.live.late.fetch_add(1, Ordering::Relaxed);
    }
    let from = job.intended.min(now);
    let route = format!("{} {}", job.request.method, collapse(job.request.path()));
    let result = match build(&job.request, &shared.target.host) {
        Ok(request) => {
            let r = tokio::time::timeout(shared.timeout, exchange(shared, conn, request)).await;
            let r = r.unwrap_or(Err("timeout"));
            if r.is_err() {
                conn.sender = None;
            }
            r
        }
        Err(e) => Err(e),
    };
    let done = Instant::now();
    if result.as_ref().map_or(true, |s| *s >= 500) {
        shared.live.errors.fetch_add(1, Ordering::Relaxed);
    }
    shared.live.completed.fetch_add(1, Ordering::Relaxed);
    shared
        .ahead
        .fetch_sub(job.request.body.len() + ITEM_BYTES, Ordering::Relaxed);
    let latency = done.saturating_duration_since(from).as_micros() as u64;
    shared.collector.lock().expect("no worker panicked").record(
        done,
        latency,
        &route,
        result,
        job.request.status,
    );
}

/// One replayed WebSocket session; its handshake is recorded as a request
/// (latency from its intended time to the 101).
async fn ws_session(
    shared: Arc<Shared>,
    intended: Instant,
    handshake: Request,
    jobs: mpsc::UnboundedReceiver<WsJob>,
) {
    let now = Instant::now();
    if now > intended + shared.late_after {
        shared.live.late.fetch_add(1, Ordering::Relaxed);
    }
    let settings = SessionSettings {
        addr: shared.target.addr,
        host: shared.target.host.clone(),
        timeout: shared.timeout,
        late_after: shared.late_after,
        linger: shared.ws_linger,
    };
    let route = format!("{} {}", handshake.method, collapse(handshake.path()));
    let recorded = handshake.status;
    let (report, result, took) = wsreplay::run_session(settings, handshake, jobs).await;
    if result.is_err() {
        shared.live.errors.fetch_add(1, Ordering::Relaxed);
    } else {
        shared.live.connections.fetch_add(1, Ordering::Relaxed);
    }
    shared.live.completed.fetch_add(1, Ordering::Relaxed);
    let from = intended.min(now);
    let latency = (now + took).saturating_duration_since(from).as_micros() as u64;
    shared.collector.lock().expect("no worker panicked").record(
        now + took,
        latency,
        &route,
        result,
        recorded,
    );
    shared.ws.lock().expect("no session panicked").add(report);
}

async fn exchange(
    shared: &Shared,
    conn: &mut Conn,
    request: http::Request<Full<Bytes>>,
) -> Result<u16, &'static str> {
    let open = match &mut conn.sender {
        Some(s) => s.ready().await.is_ok(),
        None => false,
    };
    if !open {
        let stream = TcpStream::connect(shared.target.addr)
            .await
            .map_err(|_| "connect")?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "connect")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        shared.live.connections.fetch_add(1, Ordering::Relaxed);
        conn.sender = Some(sender);
    }
    let sender = conn.sender.as_mut().expect("connected");
    let response = sender.send_request(request).await.map_err(|_| "io")?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|_| "io")?;
    }
    Ok(status)
}
