//! One proxied service: its state, and the client path of a request.
//!
//! The client path, in order, each step one concern:
//! 1. route: the path's template, for labels and rules ([`crate::route`]);
//! 2. hop: hop-by-hop headers out, `X-Forwarded-For` in ([`crate::headers`]);
//! 3. plan: mirror or not — method policy, sampling, declared body size,
//!    a free in-flight slot (`ServiceState::plan`);
//! 4. body: for a mirrored request, buffer the body up to
//!    `max_mirror_body_bytes`; past it, give up mirroring and stream on.
//!    A body that is a stream (gRPC, or no declared length) is not
//!    buffered but teed on its way to the primary ([`crate::request_tee`]),
//!    so a bidirectional call gets through; so is a recorded one, mirrored
//!    or not (one tee feeds both copies, each within its own limit);
//! 5. mirror: hand a copy to a spawned task ([`crate::mirror`]) — it is
//!    never awaited here;
//! 6. forward: send to the primary and return its answer, streamed, teed
//!    for the comparison when mirrored ([`crate::tee`]).
//!
//! With a canary configured, step 3 is preceded by the canary's choice: a
//! request it picks is served by the shadow instead ([`crate::canary`]) and
//! is not mirrored.
//!
//! A WebSocket upgrade (`GET` with `Upgrade: websocket`) leaves this path
//! before step 2 for [`crate::ws`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use parallax_compare::{NoiseModel, Rules};
use parking_lot::Mutex;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::body::{AnswerBody, ResponseBody, UpstreamBody};
use crate::canary::{idempotent, Arm, Canary};
use crate::config::{ServiceSettings, WsSettings};
use crate::departure::{take_turn, Departures, Turn};
use crate::error::ClientPathError;
use crate::fields::FieldStats;
use crate::headers::{append_forwarded_for, strip_hop_by_hop};
use crate::latency::SlidingLatency;
use crate::metrics::{Backend, MirrorOutcome, ProxyMetrics, RouteMetrics, WsMetrics};
use crate::mirror::{MirrorCopy, MirrorJob};
use crate::record::{DropReason, Pending, Recorder};
use crate::redact::Redactor;
use crate::request_tee::{self, CopyFor, RequestCopy, RequestTee};
use crate::route::RouteTable;
use crate::samples::{JsonlLog, SampleRing};
use crate::sampling::{MirrorMethods, Sampler};
use crate::tee::{PrimaryCapture, TeeBody};
use crate::upstream::Upstream;
use crate::ws;

/// Everything a service's requests share.
pub struct ServiceState {
    pub name: String,
    pub primary: Upstream,
    pub shadow: Upstream,
    pub secondary: Option<Upstream>,
    pub routes: RouteTable,
    /// By route index; the last is `other`.
    pub route_states: Vec<RouteState>,
    pub(crate) sampler: Sampler,
    methods: MirrorMethods,
    /// Which copy leaves first (`mirror_order`).
    pub(crate) departures: Departures,
    max_mirror_body_bytes: u64,
    pub max_compare_body_bytes: usize,
    pub shadow_timeout: Duration,
    /// Mirror copies in flight: a permit is taken (without waiting) before
    /// the copy exists and released when its comparison is done, so the
    /// memory and shadow load of mirroring stay bounded whatever the shadow
    /// does. A semaphore rather than a queue: a copy that cannot start now
    /// is dropped, never delayed.
    in_flight: Arc<Semaphore>,
    pub marker: Option<HeaderName>,
    pub redactor: Redactor,
    pub log: Option<JsonlLog>,
    latency: [Option<SlidingLatency>; 3],
    pub ws: WsSettings,
    pub ws_metrics: WsMetrics,
    /// Turns true at shutdown: WebSocket relays close (1001) and end. A
    /// watch channel: every relay holds a receiver, and the last value is
    /// what a relay that starts late sees.
    pub ws_stop: tokio::sync::watch::Sender<bool>,
    /// The canary release, when configured.
    pub canary: Option<Arc<Canary>>,
    /// The listener's TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Records traffic to a capture (`[services.record]`); set by
    /// [`crate::Proxy::bind`], which can report a path it cannot write.
    pub recorder: Option<Recorder>,
    /// The raw HTTP/1.1 path ([`crate::h1`]), when this service could use it.
    pub raw_h1: Option<crate::h1::RawPath>,
}

/// One route of a service.
pub struct RouteState {
    pub label: String,
    pub rules: Rules,
    pub metrics: RouteMetrics,
    /// A blocking mutex: `classify` is short and synchronous, and no
    /// `.await` happens while it is held.
    pub noise: Mutex<NoiseModel>,
    pub samples: SampleRing,
    /// Which paths differ, how often (`/admin/fields`).
    pub fields: FieldStats,
}

/// What to do with a request's mirror copy.
pub(crate) enum Plan {
    Mirror(OwnedSemaphorePermit),
    Skip(MirrorOutcome),
}

/// A request body read for mirroring.
enum Buffered {
    Complete(Vec<Bytes>),
    /// Longer than the limit: what was read, and the rest still streaming.
    TooLarge(Vec<Bytes>, Incoming),
}

impl ServiceState {
    pub fn new(
        settings: ServiceSettings,
        metrics: &ProxyMetrics,
        log: Option<JsonlLog>,
        window: Duration,
        now: Instant,
    ) -> Self {
        let s = settings;
        let with_secondary = s.secondary.is_some();
        let route_states = s
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rules)| {
                let label = s.routes.label(i).to_owned();
                RouteState {
                    metrics: metrics.route(&s.name, &label, with_secondary),
                    label,
                    rules,
                    noise: Mutex::new(NoiseModel::new(s.noise_window, s.noise_relative_tolerance)),
                    samples: SampleRing::new(s.mismatch_samples),
                    fields: FieldStats::default(),
                }
            })
            .collect();
        let window = || Some(SlidingLatency::new(window, now));
        let ws_metrics = metrics.ws(&s.name);
        let canary = s.canary.map(|c| {
            Arc::new(Canary::new(
                c,
                s.sticky.clone(),
                metrics.canary(&s.name),
                now,
            ))
        });
        let primary = Upstream::new(
            Backend::Primary,
            s.primary,
            s.http2[0],
            s.upstream_tls.clone(),
        );
        let raw_h1 =
            crate::h1::RawPath::for_service(&primary, &s.sampler, s.methods, canary.is_some());
        Self {
            primary,
            raw_h1,
            shadow: Upstream::new(
                Backend::Shadow,
                s.shadow,
                s.http2[1],
                s.upstream_tls.clone(),
            ),
            secondary: s
                .secondary
                .map(|a| Upstream::new(Backend::Secondary, a, s.http2[2], s.upstream_tls.clone())),
            latency: [
                window(),
                window(),
                if with_secondary { window() } else { None },
            ],
            name: s.name,
            routes: s.routes,
            route_states,
            sampler: s.sampler,
            methods: s.methods,
            departures: Departures::new(s.mirror_order),
            max_mirror_body_bytes: s.max_mirror_body_bytes,
            max_compare_body_bytes: s.max_compare_body_bytes,
            shadow_timeout: s.shadow_timeout,
            in_flight: Arc::new(Semaphore::new(s.shadow_max_in_flight)),
            marker: s.shadow_marker_header,
            redactor: Redactor::new(&s.redact_headers, &s.redact_pointers)
                .with_queries(&s.redact_queries),
            log,
            ws_metrics,
            ws: s.ws,
            ws_stop: tokio::sync::watch::Sender::new(false),
            canary,
            tls: s.tls,
            recorder: None,
        }
    }

    /// The raw HTTP/1.1 path, when it is on for this service.
    pub fn raw_h1(&self) -> Option<&crate::h1::RawPath> {
        self.raw_h1.as_ref().filter(|raw| raw.is_on())
    }

    /// The sliding latency window of `backend`, if it is configured.
    pub fn latency(&self, backend: Backend) -> Option<&SlidingLatency> {
        self.latency[backend as usize].as_ref()
    }

    /// Records one upstream call's time to the answer's head.
    pub fn observe(&self, route: usize, backend: Backend, elapsed: Duration) {
        self.route_states[route]
            .metrics
            .observe(backend, elapsed.as_secs_f64());
        if let Some(window) = self.latency(backend) {
            window.record(Instant::now(), elapsed);
        }
    }

    /// The client path of one request. Infallible: every failure becomes an
    /// answer here, and only client-path failures can.
    pub async fn handle(
        self: Arc<Self>,
        client: SocketAddr,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        if ws::is_upgrade_request(&request) {
            return ws::proxy_upgrade(self, client, request).await;
        }
        let (mut head, body) = request.into_parts();
        let route = self.routes.find(head.uri.path());
        strip_hop_by_hop(&mut head.headers);
        // Recorded as the client sent it, before X-Forwarded-For.
        let recording = self.recorder.as_ref().and_then(|r| r.begin(&head, client));
        append_forwarded_for(&mut head.headers, client.ip());
        if let Some(canary) = &self.canary {
            if canary.chooses(&head) {
                return self.serve_from_canary(canary, route, head, body).await;
            }
        }
        let metrics = &self.route_states[route].metrics;

        let permit = match self.plan(&head) {
            Plan::Skip(outcome) => {
                metrics.outcome(outcome);
                return match recording {
                    // Teed, never read first: the client may wait for an
                    // answer before it ends its stream.
                    Some(pending) if request_tee::is_stream(&head, &body) => {
                        self.forward_teed(route, head, body, None, Some(pending))
                            .await
                    }
                    Some(pending) => self.forward_recorded(route, head, body, pending).await,
                    None => self.forward_streaming(route, head, Vec::new(), body).await,
                };
            }
            Plan::Mirror(permit) => permit,
        };
        if request_tee::is_stream(&head, &body) {
            return self
                .forward_teed(route, head, body, Some(permit), recording)
                .await;
        }
        let chunks = match read_body(body, self.max_mirror_body_bytes).await {
            Err(e) => {
                let error = ClientPathError::DownstreamBody(e);
                tracing::debug!(service = %self.name, side = error.side().as_str(), %error, "request failed");
                return error.response();
            }
            Ok(Buffered::TooLarge(read, rest)) => {
                drop(permit);
                metrics.outcome(MirrorOutcome::BodyTooLarge);
                if let (Some(r), Some(_)) = (&self.recorder, recording) {
                    r.drop_record(DropReason::BodyTooLarge);
                }
                return self.forward_streaming(route, head, read, rest).await;
            }
            Ok(Buffered::Complete(chunks)) => chunks,
        };
        let recording = recording.map(|p| (p, chunks.clone(), Instant::now()));
        let (capture_tx, capture_rx) = oneshot::channel();
        let (primary_turn, shadow_turn) = self.departures.next();
        MirrorJob {
            state: Arc::clone(&self),
            route,
            copy: MirrorCopy::Parts {
                head: Upstream::copy_head(&head),
                body: chunks.clone(),
            },
            turn: shadow_turn,
        }
        .spawn(permit, capture_rx);
        let body = UpstreamBody::buffered(chunks);
        let answer = take_turn(primary_turn, self.primary_call(route, head, body)).await;
        if let (Some(r), Some((pending, chunks, started))) = (&self.recorder, recording) {
            let status = answer.as_ref().ok().map(|a| a.status().as_u16());
            r.finish(pending, &chunks, status, status.map(|_| started.elapsed()));
        }
        match answer {
            Ok(response) => self.tee_answer(response, capture_tx),
            // Dropping `capture_tx` tells the mirror task there is no answer.
            Err(error) => self.client_error(error),
        }
    }

    /// Forwards a request whose body is a stream, mirrored (`mirror`: its
    /// in-flight slot) or recorded or both: the primary gets it frame by
    /// frame as the client sends it, and the mirror task and the recorder
    /// get their copies from one tee once it has ended (or learn it went
    /// past their limit).
    async fn forward_teed(
        self: &Arc<Self>,
        route: usize,
        head: Parts,
        body: Incoming,
        mirror: Option<OwnedSemaphorePermit>,
        recording: Option<Pending>,
    ) -> Response<ResponseBody> {
        let mut capture_tx = None;
        let mirror_copy = mirror.map(|permit| {
            let (copy_tx, copy_rx) = oneshot::channel();
            let (tx, capture_rx) = oneshot::channel();
            capture_tx = Some(tx);
            MirrorJob {
                state: Arc::clone(self),
                route,
                copy: MirrorCopy::Parts {
                    head: Upstream::copy_head(&head),
                    body: Vec::new(),
                },
                turn: Turn::Any,
            }
            .spawn_after_body(permit, copy_rx, capture_rx);
            CopyFor::new(self.max_mirror_body_bytes, copy_tx)
        });
        let mut record = None;
        let record_copy = match (&self.recorder, recording) {
            (Some(recorder), Some(pending)) => {
                let (tx, rx) = oneshot::channel();
                record = Some((pending, rx));
                Some(CopyFor::new(recorder.max_body_bytes(), tx))
            }
            _ => None,
        };
        let downstream_failed = Arc::new(AtomicBool::new(false));
        let tee = RequestTee::new(body, [mirror_copy, record_copy]);
        let body = UpstreamBody::teed(tee, Arc::clone(&downstream_failed));
        let started = Instant::now();
        let answer = self.primary_call(route, head, body).await;
        if let Some((pending, copy)) = record {
            let status = answer.as_ref().ok().map(|a| a.status().as_u16());
            self.record_when_copied(pending, copy, status, status.map(|_| started.elapsed()));
        }
        match answer {
            Ok(response) => match capture_tx {
                Some(capture_tx) => self.tee_answer(response, capture_tx),
                None => response.map(ResponseBody::Answer),
            },
            Err(_) if downstream_failed.load(Ordering::Relaxed) => {
                self.client_error(ClientPathError::DownstreamAborted)
            }
            Err(error) => self.client_error(error),
        }
    }

    /// Records a teed request once its copy is in: at once when the
    /// client's stream has already ended (or passed the limit), else by a
    /// task that waits for it, so the answer goes to the client now. The
    /// task holds no more than the tee keeps (the recorder's
    /// `max_body_bytes`) and ends with the client's stream.
    fn record_when_copied(
        self: &Arc<Self>,
        pending: Pending,
        mut copy: oneshot::Receiver<RequestCopy>,
        status: Option<u16>,
        latency: Option<Duration>,
    ) {
        let finish = move |state: &Self, copy: RequestCopy| {
            if let Some(recorder) = &state.recorder {
                recorder.finish_copied(pending, copy, status, latency);
            }
        };
        match copy.try_recv() {
            Ok(copy) => finish(self, copy),
            Err(oneshot::error::TryRecvError::Empty) => {
                let state = Arc::clone(self);
                tokio::spawn(async move {
                    // A closed sender is a tee dropped without a word: not
                    // a whole request.
                    let copy = copy.await.unwrap_or(RequestCopy::Aborted);
                    finish(&state, copy);
                });
            }
            Err(oneshot::error::TryRecvError::Closed) => {}
        }
    }

    /// The primary's answer for the client, teed for the mirror task.
    fn tee_answer(
        &self,
        response: Response<AnswerBody>,
        capture_tx: oneshot::Sender<PrimaryCapture>,
    ) -> Response<ResponseBody> {
        let (parts, body) = response.into_parts();
        let tee = TeeBody::new(
            body,
            parts.status.as_u16(),
            parts.headers.clone(),
            self.max_compare_body_bytes,
            capture_tx,
        );
        Response::from_parts(parts, ResponseBody::Tee(tee))
    }

    /// Decides the mirror copy's fate before anything is read (the raw
    /// HTTP/1.1 path asks [`ServiceState::plan_request`] with what its head
    /// says).
    pub(crate) fn plan(&self, head: &Parts) -> Plan {
        let declared = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        self.plan_request(
            &head.method,
            head.uri.path(),
            |name| head.headers.get(name).map(|v| v.as_bytes()),
            declared,
        )
    }

    /// [`ServiceState::plan`] for a request known by its method, path, a
    /// lookup of a header's first value and its declared body size (the
    /// raw HTTP/1.1 path decides without building a `Parts`).
    pub(crate) fn plan_request<'a>(
        &self,
        method: &http::Method,
        path: &'a str,
        header: impl FnOnce(&HeaderName) -> Option<&'a [u8]>,
        declared: Option<u64>,
    ) -> Plan {
        if !self.methods.allows(method) || !self.sampler.sample_raw(path, header) {
            return Plan::Skip(MirrorOutcome::SampledOut);
        }
        if declared.is_some_and(|n| n > self.max_mirror_body_bytes) {
            return Plan::Skip(MirrorOutcome::BodyTooLarge);
        }
        match Arc::clone(&self.in_flight).try_acquire_owned() {
            Ok(permit) => Plan::Mirror(permit),
            Err(_) => Plan::Skip(MirrorOutcome::DroppedQueueFull),
        }
    }

    /// Forwards without mirroring a recorded request whose body is not a
    /// stream (a declared length: it is all coming now): its body is read
    /// first (up to the recorder's limit; a longer one streams on and is
    /// not recorded). A stream is teed instead ([`Self::forward_teed`]).
    async fn forward_recorded(
        &self,
        route: usize,
        head: Parts,
        body: Incoming,
        pending: Pending,
    ) -> Response<ResponseBody> {
        let recorder = self.recorder.as_ref().expect("recording");
        let chunks = match read_body(body, recorder.max_body_bytes()).await {
            Err(e) => return self.client_error(ClientPathError::DownstreamBody(e)),
            Ok(Buffered::TooLarge(read, rest)) => {
                recorder.drop_record(DropReason::BodyTooLarge);
                return self.forward_streaming(route, head, read, rest).await;
            }
            Ok(Buffered::Complete(chunks)) => chunks,
        };
        let started = Instant::now();
        let answer = self
            .primary_call(route, head, UpstreamBody::buffered(chunks.iter().cloned()))
            .await;
        let status = answer.as_ref().ok().map(|a| a.status().as_u16());
        recorder.finish(pending, &chunks, status, status.map(|_| started.elapsed()));
        match answer {
            Ok(response) => response.map(ResponseBody::Answer),
            Err(error) => self.client_error(error),
        }
    }

    /// Forwards without mirroring: `read` then the rest of the client's body.
    async fn forward_streaming(
        &self,
        route: usize,
        head: Parts,
        read: Vec<Bytes>,
        rest: Incoming,
    ) -> Response<ResponseBody> {
        if rest.is_end_stream() {
            // Nothing left to stream (a GET, or a body read whole): no
            // downstream failure to watch for.
            return match self
                .primary_call(route, head, UpstreamBody::buffered(read))
                .await
            {
                Ok(response) => response.map(ResponseBody::Answer),
                Err(error) => self.client_error(error),
            };
        }
        let downstream_failed = Arc::new(AtomicBool::new(false));
        let body = UpstreamBody::streaming(read, rest, Arc::clone(&downstream_failed));
        match self.primary_call(route, head, body).await {
            Ok(response) => response.map(ResponseBody::Answer),
            Err(_) if downstream_failed.load(Ordering::Relaxed) => {
                self.client_error(ClientPathError::DownstreamAborted)
            }
            Err(error) => self.client_error(error),
        }
    }

    /// Sends to the primary, timing it, and prepares its answer's head.
    async fn primary_call(
        &self,
        route: usize,
        head: Parts,
        body: UpstreamBody,
    ) -> Result<Response<AnswerBody>, ClientPathError> {
        // The canary compares the arms over the requests it could have
        // taken: with `methods = "safe"`, writes are no evidence.
        let canary = self.canary.as_deref().filter(|c| c.eligible(&head.method));
        let started = Instant::now();
        let mut response = match self.primary.send(head, body).await {
            Ok(response) => response,
            Err(error) => {
                if let Some(canary) = canary {
                    canary.record(Arm::Primary, None);
                }
                return Err(ClientPathError::PrimaryUnavailable(error));
            }
        };
        let elapsed = started.elapsed();
        self.observe(route, Backend::Primary, elapsed);
        if let Some(canary) = canary {
            canary.record(Arm::Primary, Some((response.status(), elapsed)));
        }
        strip_hop_by_hop(response.headers_mut());
        Ok(response)
    }

    /// Serves a request the canary picked from the shadow. The body is
    /// buffered (up to `max_mirror_body_bytes`; a longer one goes to the
    /// primary, streamed) so that the primary can take the request over
    /// when the shadow cannot answer: always when it could not be reached,
    /// and after a broken-off exchange only for idempotent methods.
    async fn serve_from_canary(
        &self,
        canary: &Canary,
        route: usize,
        head: Parts,
        body: Incoming,
    ) -> Response<ResponseBody> {
        let chunks = match read_body(body, self.max_mirror_body_bytes).await {
            Err(e) => return self.client_error(ClientPathError::DownstreamBody(e)),
            Ok(Buffered::TooLarge(read, rest)) => {
                // Too long to keep for a take-over: the primary serves it,
                // and, like any request it serves, it gets a mirror outcome.
                self.route_states[route]
                    .metrics
                    .outcome(MirrorOutcome::BodyTooLarge);
                return self.forward_streaming(route, head, read, rest).await;
            }
            Ok(Buffered::Complete(chunks)) => chunks,
        };
        let retry_head = Upstream::copy_head(&head);
        let started = Instant::now();
        let error = match self
            .shadow
            .send(head, UpstreamBody::buffered(chunks.iter().cloned()))
            .await
        {
            Ok(mut response) => {
                let elapsed = started.elapsed();
                self.observe(route, Backend::Shadow, elapsed);
                canary.record(Arm::Candidate, Some((response.status(), elapsed)));
                strip_hop_by_hop(response.headers_mut());
                return response.map(ResponseBody::Answer);
            }
            Err(error) => error,
        };
        canary.record(Arm::Candidate, None);
        if !(error.is_connect() || idempotent(&retry_head.method)) {
            return self.client_error(ClientPathError::CanaryUnavailable(error));
        }
        tracing::debug!(service = %self.name, %error, "canary could not answer; the primary takes the request");
        canary.fallback();
        match self
            .primary_call(route, retry_head, UpstreamBody::buffered(chunks))
            .await
        {
            Ok(response) => response.map(ResponseBody::Answer),
            Err(error) => self.client_error(error),
        }
    }

    fn client_error(&self, error: ClientPathError) -> Response<ResponseBody> {
        tracing::debug!(service = %self.name, side = error.side().as_str(), %error, "request failed");
        error.response()
    }
}

/// Reads a body for mirroring, giving up past `limit` bytes.
async fn read_body(mut body: Incoming, limit: u64) -> Result<Buffered, hyper::Error> {
    let mut chunks = Vec::new();
    let mut len = 0u64;
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        // Trailers are dropped: `Trailer` is hop-by-hop, and none of the
        // services mirrored here use them.
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
            chunks.push(data);
            if len > limit {
                return Ok(Buffered::TooLarge(chunks, body));
            }
        }
    }
    Ok(Buffered::Complete(chunks))
}

/// Headers as the comparison reads them ([`parallax_compare::Fields`]):
/// the list [`header_list`] gives, in one buffer.
pub fn header_fields(headers: &HeaderMap) -> parallax_compare::Fields {
    parallax_compare::Fields::from_pairs(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))
}

/// Headers as `(lower-case name, value)` pairs, in order; values that are
/// not UTF-8 are shown lossily.
pub fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
