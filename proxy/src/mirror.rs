//! The mirror task: the shadow side, isolated from the client.
//!
//! A [`MirrorJob`] is spawned per mirrored request and never awaited by the
//! client path. It sends the copy to the shadow (and the secondary) at the
//! same time as the primary gets the original, reads their answers within
//! `shadow_timeout_ms`, waits for the primary's teed answer, compares, and
//! records exactly one outcome. Its errors ([`MirrorError`]) are tagged
//! shadow or secondary and end as a counter and a debug log: the task
//! returns `()`, and nothing converts them into a client answer.
//!
//! A request whose body is a stream ([`crate::request_tee`]) reaches the
//! shadow later: the task first waits for the client's body to end, while
//! the primary already has it frame by frame.
//!
//! Which copy leaves first is the service's `mirror_order`
//! ([`crate::departure`]): the job's [`Turn`] says whether its shadow copy
//! waits for the primary's, goes first, or neither.
//!
//! The copy ([`MirrorCopy`]) is a `Parts` and a body for hyper's client, or,
//! from the raw HTTP/1.1 path, the request's bytes, which go to a plain
//! HTTP/1.1 shadow by the raw client ([`crate::h1::shadow`]). Either way
//! the answer becomes the same [`Observed`], within the same timeout, and
//! ends in the same outcomes.
//!
//! The spawned future is kept small: tokio moves it into its task on spawn
//! (a `memcpy` of its whole size, whatever state it starts in), so the
//! hyper client's large futures are boxed where they are used, and the
//! raw client's exchange is what a mirrored request's task mostly holds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::HeaderValue;
use http_body::Body;
use http_body_util::BodyExt;
use parallax_compare::{compare, Fields, Kind, Observed, Outcome, Verdict};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::body::UpstreamBody;
use crate::departure::{take_turn, Turn};
use crate::error::Side;
use crate::h1::mirrored::RawCopy;
use crate::headers::strip_hop_by_hop;
use crate::metrics::MirrorOutcome;
use crate::request_tee::RequestCopy;
use crate::samples::{Message, Sample};
use crate::service::{header_fields, header_list, ServiceState};
use crate::tee::{Captured, PrimaryCapture};
use crate::upstream::{CallError, Upstream};

/// How long a mirror task waits for the primary's answer to finish
/// streaming to the client before giving up on the comparison (a long
/// download or a stalled client must not hold an in-flight slot forever).
pub const PRIMARY_CAPTURE_DEADLINE: Duration = Duration::from_secs(60);

/// A failure of the shadow or the secondary. Private to this module's task.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{}: no answer within the shadow timeout", side.as_str())]
    Timeout { side: Side },
    #[error("{}: {source}", side.as_str())]
    Transport {
        side: Side,
        #[source]
        source: CallError,
    },
    #[error("{}: the answer's body broke off: {source}", side.as_str())]
    Body {
        side: Side,
        #[source]
        source: hyper::Error,
    },
    /// A raw path's copy for an upstream only hyper's client speaks to (the
    /// plan gives such copies only to plain HTTP/1.1 upstreams).
    #[error("{}: the raw copy cannot go to a TLS or HTTP/2 upstream", side.as_str())]
    RawCopyToPooled { side: Side },
}

impl MirrorError {
    fn outcome(&self) -> MirrorOutcome {
        match self {
            MirrorError::Timeout { .. } => MirrorOutcome::ShadowTimeout,
            MirrorError::Transport { .. }
            | MirrorError::Body { .. }
            | MirrorError::RawCopyToPooled { .. } => MirrorOutcome::ShadowError,
        }
    }
}

/// A backend answer read for comparison: `None` when longer than the limit.
type Answer = Option<Observed>;

/// The request a [`MirrorJob`] sends: as sent to the primary (hop-by-hop
/// headers removed, `X-Forwarded-For` appended).
pub enum MirrorCopy {
    /// A head and its body, for hyper's client.
    Parts { head: Parts, body: Vec<Bytes> },
    /// The raw HTTP/1.1 path's bytes, for plain HTTP/1.1 upstreams.
    Raw(RawCopy),
}

/// One mirrored request.
pub struct MirrorJob {
    pub state: Arc<ServiceState>,
    pub route: usize,
    pub copy: MirrorCopy,
    /// When the shadow's copy leaves, against the primary's.
    pub turn: Turn,
}

impl MirrorJob {
    /// Starts the task, holding `permit` (an in-flight slot) until the
    /// comparison is done; `primary` delivers the primary's teed answer and
    /// closes when the primary failed. The handle is dropped: nobody waits
    /// for the task.
    pub fn spawn(self, permit: OwnedSemaphorePermit, primary: oneshot::Receiver<PrimaryCapture>) {
        tokio::spawn(self.run(permit, primary));
    }

    /// As [`MirrorJob::spawn`], for a request whose body is still streaming
    /// to the primary: the task first waits for the client's body (`copy`),
    /// at most [`PRIMARY_CAPTURE_DEADLINE`] (a stream held open longer must
    /// not hold an in-flight slot). A body past the limit counts
    /// `body_too_large`; one that broke off, or still open at the deadline,
    /// `primary_error`: there is no whole exchange to compare.
    pub fn spawn_after_body(
        mut self,
        permit: OwnedSemaphorePermit,
        copy: oneshot::Receiver<RequestCopy>,
        primary: oneshot::Receiver<PrimaryCapture>,
    ) {
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(PRIMARY_CAPTURE_DEADLINE, copy).await {
                Ok(Ok(RequestCopy::Complete(body))) => {
                    if let MirrorCopy::Parts { body: copy, .. } = &mut self.copy {
                        *copy = body;
                    }
                    return self.run(permit, primary).await;
                }
                Ok(Ok(RequestCopy::TooLarge)) => MirrorOutcome::BodyTooLarge,
                _ => MirrorOutcome::PrimaryError,
            };
            self.state.route_states[self.route].metrics.outcome(outcome);
        });
    }

    async fn run(
        mut self,
        _permit: OwnedSemaphorePermit,
        primary: oneshot::Receiver<PrimaryCapture>,
    ) {
        let state = Arc::clone(&self.state);
        let route = &state.route_states[self.route];
        let turn = std::mem::take(&mut self.turn);
        let shadow = take_turn(turn, self.call(&state.shadow, Side::Shadow));
        let secondary = async {
            match &state.secondary {
                // Boxed: most services have no secondary, and its call
                // would double the task's size.
                Some(upstream) => Some(Box::pin(self.call(upstream, Side::Secondary)).await),
                None => None,
            }
        };
        let (shadow, secondary) = tokio::join!(shadow, secondary);

        let shadow = match shadow {
            Ok(Some(answer)) => answer,
            Ok(None) => return route.metrics.outcome(MirrorOutcome::BodyTooLarge),
            Err(error) => {
                tracing::debug!(service = %state.name, route = %route.label, %error, "mirror copy failed");
                return route.metrics.outcome(error.outcome());
            }
        };
        let primary = match tokio::time::timeout(PRIMARY_CAPTURE_DEADLINE, primary).await {
            Ok(Ok(capture)) => capture,
            // The primary failed, or the deadline passed.
            _ => return route.metrics.outcome(MirrorOutcome::PrimaryError),
        };
        let primary = match primary.body {
            Captured::Complete(body) => Observed {
                status: primary.status,
                headers: primary.headers.fields(),
                body,
                trailers: Fields::from_pairs(primary.trailers),
            },
            Captured::TooLarge => return route.metrics.outcome(MirrorOutcome::BodyTooLarge),
            Captured::Aborted => return route.metrics.outcome(MirrorOutcome::PrimaryError),
        };

        let raw = compare(&primary, &shadow, &route.rules);
        if raw.iter().any(|d| d.kind == Kind::Limit) {
            route.metrics.limit();
        }
        let secondary = match secondary {
            Some(Ok(Some(answer))) => Some(answer),
            Some(Err(error)) => {
                tracing::debug!(service = %state.name, route = %route.label, %error, "secondary copy failed; comparing without noise model");
                None
            }
            _ => None,
        };
        let (verdict, secondary_differences) = match &secondary {
            Some(answer) => {
                let noise = compare(&primary, answer, &route.rules);
                (route.noise.lock().classify(raw, &noise), Some(noise))
            }
            None => (Verdict::without_secondary(raw), None),
        };
        route
            .fields
            .record(&verdict, secondary_differences.as_deref());
        if let Some(canary) = &state.canary {
            canary.record_comparison(verdict.outcome == Outcome::Mismatch);
        }
        let outcome = verdict.outcome;
        if outcome == Outcome::Mismatch {
            let sample =
                Arc::new(self.sample(&state, &primary, &shadow, secondary.as_ref(), verdict));
            if let Some(log) = &state.log {
                log.append(&sample);
            }
            route.samples.push(sample);
        }
        // Counted last: once a comparison is counted, its sample and field
        // statistics are there to read.
        route.metrics.outcome(MirrorOutcome::Compared);
        route.metrics.result(outcome);
    }

    /// Sends the copy to `upstream` and reads its answer, all within the
    /// shadow timeout.
    async fn call(&self, upstream: &Upstream, side: Side) -> Result<Answer, MirrorError> {
        let exchange = async {
            match (&self.copy, upstream.raw_pool()) {
                (MirrorCopy::Raw(copy), Some(pool)) => {
                    self.call_raw(copy, pool, upstream, side).await
                }
                (MirrorCopy::Raw(_), None) => Err(MirrorError::RawCopyToPooled { side }),
                // Boxed: hyper's futures are large, and would make every
                // job's task as large.
                (MirrorCopy::Parts { head, body }, _) => {
                    Box::pin(self.call_hyper(head, body, upstream, side)).await
                }
            }
        };
        tokio::time::timeout(self.state.shadow_timeout, exchange)
            .await
            .map_err(|_| MirrorError::Timeout { side })?
    }

    /// [`MirrorJob::call`] by the raw client.
    async fn call_raw(
        &self,
        copy: &RawCopy,
        pool: &crate::h1::pool::RawPool,
        upstream: &Upstream,
        side: Side,
    ) -> Result<Answer, MirrorError> {
        let state = &self.state;
        let marked;
        let request = match &state.marker {
            None => copy.request(),
            Some(marker) => {
                marked = copy.with_marker(marker);
                &marked
            }
        };
        let started = Instant::now();
        crate::h1::shadow::call(
            pool,
            request,
            copy.method(),
            state.max_compare_body_bytes,
            || state.observe(self.route, upstream.backend, started.elapsed()),
        )
        .await
        .map_err(|source| MirrorError::Transport {
            side,
            source: CallError::Raw(source),
        })
    }

    /// [`MirrorJob::call`] by hyper's client.
    async fn call_hyper(
        &self,
        head: &Parts,
        body: &[Bytes],
        upstream: &Upstream,
        side: Side,
    ) -> Result<Answer, MirrorError> {
        let state = &self.state;
        let mut head = Upstream::copy_head(head);
        if let Some(marker) = &state.marker {
            head.headers
                .insert(marker.clone(), HeaderValue::from_static("1"));
        }
        let body = UpstreamBody::buffered(body.iter().cloned());
        let started = Instant::now();
        let response = upstream
            .send(head, body)
            .await
            .map_err(|source| MirrorError::Transport { side, source })?;
        state.observe(self.route, upstream.backend, started.elapsed());
        let (mut parts, body) = response.into_parts();
        // As for the primary's answer: compare and show end-to-end
        // headers only.
        strip_hop_by_hop(&mut parts.headers);
        let Some((body, trailers)) = read_limited(body, state.max_compare_body_bytes)
            .await
            .map_err(|source| MirrorError::Body { side, source })?
        else {
            return Ok(None);
        };
        Ok(Some(Observed {
            status: parts.status.as_u16(),
            headers: header_fields(&parts.headers),
            body,
            trailers,
        }))
    }

    fn sample(
        &self,
        state: &ServiceState,
        primary: &Observed,
        shadow: &Observed,
        secondary: Option<&Observed>,
        verdict: Verdict,
    ) -> Sample {
        let route = &state.route_states[self.route];
        let rules = &route.rules;
        let r = &state.redactor;
        // Trailers (gRPC's status) are shown after the headers, marked.
        let answer = |o: &Observed| {
            let mut fields = o.headers.to_list();
            fields.extend(
                o.trailers
                    .to_list()
                    .into_iter()
                    .map(|(k, v)| (format!("trailer:{k}"), v)),
            );
            Message::new(Some(o.status), &fields, &o.body, Some(rules), r)
        };
        let (method, target, request_headers, request_body) = match &self.copy {
            MirrorCopy::Parts { head, body } => (
                head.method.to_string(),
                head.uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.to_string()),
                header_list(&head.headers),
                body.iter()
                    .fold(BytesMut::new(), |mut all, c| {
                        all.extend_from_slice(c);
                        all
                    })
                    .freeze(),
            ),
            MirrorCopy::Raw(copy) => {
                let (method, target, headers) = copy.fields();
                (method, target, headers, copy.body())
            }
        };
        let mut mismatches = verdict.mismatches;
        let mut noise = verdict.noise;
        for d in mismatches.iter_mut().chain(noise.iter_mut()) {
            r.difference(d);
        }
        Sample {
            at_unix_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            service: state.name.clone(),
            route: route.label.clone(),
            method,
            target: r.target(&target),
            outcome: verdict.outcome,
            // The request body is shown as the request's content type says.
            request: Message::new(None, &request_headers, &request_body, None, r),
            primary: answer(primary),
            shadow: answer(shadow),
            secondary: secondary.map(answer),
            mismatches,
            noise,
        }
    }
}

/// The whole body and its trailers, or `None` once the body exceeds
/// `limit` bytes.
async fn read_limited<B>(mut body: B, limit: usize) -> Result<Option<(Bytes, Fields)>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut all = BytesMut::new();
    let mut trailers = Fields::default();
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        match frame?.into_data() {
            Ok(data) => {
                if all.len() + data.len() > limit {
                    return Ok(None);
                }
                all.extend_from_slice(&data);
            }
            Err(frame) => {
                if let Some(t) = frame.trailers_ref() {
                    trailers = header_fields(t);
                }
            }
        }
    }
    Ok(Some((all.freeze(), trailers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn size_of_output<F, A, B, C, R>(_: &F) -> usize
    where
        F: FnOnce(A, B, C) -> R,
    {
        std::mem::size_of::<R>()
    }

    #[test]
    fn the_spawned_future_is_small() {
        let run = size_of_output(&MirrorJob::run);
        let raw = size_of_output(
            &|job: &MirrorJob, copy: &RawCopy, pool: &crate::h1::pool::RawPool| {
                let upstream: &Upstream = &job.state.shadow;
                job.call_raw(copy, pool, upstream, Side::Shadow)
            },
        );
        let hyper = size_of_output(&|job: &MirrorJob, upstream: &Upstream, side: Side| {
            let MirrorCopy::Parts { head, body } = &job.copy else {
                unreachable!()
            };
            job.call_hyper(head, body, upstream, side)
        });
        eprintln!("run {run} B, raw call {raw} B, hyper call {hyper} B (boxed)");
        // 2.8 KB with the secondary's call inline, ~5 KB with hyper's too.
        assert!(run < 2048, "MirrorJob::run's future is {run} bytes");
        assert!(
            hyper > run,
            "hyper's call ({hyper} B) is boxed, not inlined"
        );
    }
}
