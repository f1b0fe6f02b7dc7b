//! Canary release: a growing share of clients served by the shadow (the
//! candidate), rolled back by the proxy itself when the candidate does worse
//! than the primary.
//!
//! Shadowing shows that the candidate *answers* like the primary; a canary
//! shows that it holds up when its answers are the ones clients get. The two
//! work together: requests the canary leaves with the primary are mirrored
//! and compared as usual, and the comparisons feed the canary's judgement.
//!
//! # Steps
//! The canary walks `weights_percent` (say 1, 5, 25, 50): it serves that
//! share of requests from the candidate for at least `step_secs`, judging
//! every window of `window_secs` on the way, and moves to the next weight
//! once the step's time is up and every window judged in it was healthy.
//! Once the last weight has held for a step too, the canary is `complete`
//! and stays there: the cut-over itself is a deployment, not a proxy
//! setting.
//!
//! # Judgement
//! Each window compares the two arms over the same seconds: the requests the
//! primary served and the requests the candidate served. A window is judged
//! only once the candidate has served `min_requests` in it; until then it
//! grows (little traffic makes steps slower, never blind). The candidate is
//! rolled back when, in a judged window:
//! - **error rate**: its share of failures (5xx answers, and requests it
//!   could not answer at all) exceeds the primary's by more than
//!   `max_error_rate_delta`;
//! - **latency**: its p99 (time to the answer's head, from HDR histograms)
//!   exceeds `max_p99_ratio` × the primary's **and** is more than
//!   `p99_slack_ms` above it — the slack keeps sub-millisecond jitter from
//!   counting as a regression;
//! - **mismatch**: with `max_mismatch_rate` set and at least `min_requests`
//!   comparisons finished in the window, more than that share of them were
//!   `mismatch` (noise excluded).
//!
//! A rollback sets the weight to 0 at once, counts
//! `parallax_canary_rollbacks_total{reason}` and keeps the reason and the
//! window's figures for `GET /admin/canary`. It stays rolled back until an
//! operator restarts the canary (`POST /admin/canary/{service}/restart`).
//!
//! # Which requests
//! The weight is applied like the mirror sampling: with the service's
//! `sticky_key` a key always lands on the same arm (salted differently from
//! the mirror sampling, so the two choices are independent); without one, a
//! request counter spreads the canary's share evenly. WebSocket upgrades are
//! never canaried.
//!
//! If the candidate cannot be reached, the request goes to the primary and
//! the client never notices (the failure still counts against the
//! candidate). If the candidate breaks off after the request was sent, the
//! request is retried on the primary only when that is safe: an idempotent
//! method (RFC 9110 §9.2.2). Otherwise the client gets a 502
//! `canary_unavailable`: a write may have happened, and only the client can
//! decide to repeat it.
//!
//! Several proxy processes sharing a listener each judge their own traffic
//! — unless a fleet controller judges for all of them.
//!
//! # Under a controller
//! With `controller_lease_secs`, the replica does not judge: a controller
//! (`parallax canary controller`, [`crate::fleet`]) judges the whole fleet
//! from Prometheus and pushes the weight, state and reason to every
//! replica (`POST /admin/canary/{service}/fleet`), each push holding for a
//! lease. A replica starts at weight 0 and takes the fleet's weight at the
//! next push, so one restarted mid-step rejoins at once. A replica whose
//! lease runs out — its controller is gone — falls back to weight 0 (the
//! primary serves everything), logs it, counts it in
//! `parallax_canary_lease_expiries_total` and shows it in
//! `parallax_canary_lease_seconds` (0) and `GET /admin/canary`. A rollback by
//! hand on a replica holds it at 0 whatever the controller pushes, until a
//! restart there.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use http::request::Parts;
use http::{Method, StatusCode};
use parking_lot::Mutex;
use prometheus::{Gauge, IntCounter};
use serde::{Deserialize, Serialize};

use crate::sampling::{point, MirrorMethods, StickyKey};

/// Salt of the canary's sticky hash: a key's canary arm must not be tied to
/// whether it is mirrored.
const SALT: u64 = 0x6361_6e61_7279_0001;

/// Weights are held in basis points (1/100 of a percent).
const FULL_BPS: u32 = 10_000;

/// The validated `[services.canary]` table.
#[derive(Debug, Clone)]
pub struct CanarySettings {
    /// The steps, in basis points, ascending.
    pub weights_bps: Vec<u32>,
    pub step: Duration,
    pub window: Duration,
    pub min_requests: u64,
    pub max_error_rate_delta: f64,
    pub max_p99_ratio: f64,
    pub p99_slack: Duration,
    pub max_mismatch_rate: Option<f64>,
    pub methods: MirrorMethods,
    /// Under a fleet controller: how long a push holds (see the module docs).
    pub controller_lease: Option<Duration>,
}

/// Which arm served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Primary,
    Candidate,
}

/// Why the canary was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    ErrorRate,
    Latency,
    Mismatch,
    Manual,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::ErrorRate,
        Reason::Latency,
        Reason::Mismatch,
        Reason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ErrorRate => "error_rate",
            Reason::Latency => "latency",
            Reason::Mismatch => "mismatch",
            Reason::Manual => "manual",
        }
    }
}

/// The canary's Prometheus series of one service.
#[derive(Clone)]
pub struct CanaryMetrics {
    /// `parallax_canary_weight_ratio`: the candidate's share, 0–1.
    pub weight: Gauge,
    /// `parallax_canary_requests_total{backend, result}`: primary success,
    /// primary failure, shadow success, shadow failure.
    pub requests: [IntCounter; 4],
    /// `parallax_canary_fallbacks_total`.
    pub fallbacks: IntCounter,
    /// `parallax_canary_rollbacks_total{reason}`, in [`Reason::ALL`] order.
    pub rollbacks: [IntCounter; 4],
    /// `parallax_canary_lease_seconds`: what is left of the controller's
    /// lease (0: none, or expired).
    pub lease_seconds: Gauge,
    /// `parallax_canary_lease_expiries_total`: leases that ran out.
    pub lease_expiries: IntCounter,
}

/// One arm's figures in the current window.
#[derive(Debug, Clone)]
struct ArmStats {
    requests: u64,
    failures: u64,
    /// Time to the answer's head, µs; failures without an answer are not in
    /// it.
    latency_us: Histogram<u64>,
}

impl ArmStats {
    fn new() -> Self {
        Self {
            requests: 0,
            failures: 0,
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 2)
                .expect("static histogram bounds are valid"),
        }
    }

    fn reset(&mut self) {
        self.requests = 0;
        self.failures = 0;
        self.latency_us.reset();
    }

    fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }

    fn p99(&self) -> Duration {
        Duration::from_micros(self.latency_us.value_at_quantile(0.99))
    }
}

/// The figures of one window, as judged and as shown.
#[derive(Debug, Clone)]
pub struct Window {
    started: Instant,
    primary: ArmStats,
    candidate: ArmStats,
    compared: u64,
    mismatched: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            primary: ArmStats::new(),
            candidate: ArmStats::new(),
            compared: 0,
            mismatched: 0,
        }
    }

    fn reset(&mut self, now: Instant) {
        self.started = now;
        self.primary.reset();
        self.candidate.reset();
        self.compared = 0;
        self.mismatched = 0;
    }

    fn arm(&mut self, arm: Arm) -> &mut ArmStats {
        match arm {
            Arm::Primary => &mut self.primary,
            Arm::Candidate => &mut self.candidate,
        }
    }

    fn summary(&self, now: Instant) -> WindowSummary {
        let arm = |a: &ArmStats| ArmSummary {
            requests: a.requests,
            failures: a.failures,
            error_rate: a.error_rate(),
            p99_us: (!a.latency_us.is_empty()).then(|| a.latency_us.value_at_quantile(0.99)),
        };
        WindowSummary {
            seconds: now.duration_since(self.started).as_secs_f64(),
            primary: arm(&self.primary),
            shadow: arm(&self.candidate),
            compared: self.compared,
            mismatched: self.mismatched,
        }
    }
}

/// What a window says about the candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Too few candidate requests yet: keep counting.
    NotEnough,
    Healthy,
    Unhealthy(Reason, String),
}

/// One arm's figures over a judged window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmFigures {
    pub requests: u64,
    pub failures: u64,
    /// Time to the answer's head at the 99th percentile, when any answered.
    pub p99: Option<Duration>,
}

impl ArmFigures {
    fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

/// What a window is judged on: one replica's own window, or the whole
/// fleet's from Prometheus ([`crate::fleet`]). One rule for both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub primary: ArmFigures,
    pub candidate: ArmFigures,
    pub compared: u64,
    pub mismatched: u64,
}

impl Window {
    fn figures(&self) -> Figures {
        let arm = |a: &ArmStats| ArmFigures {
            requests: a.requests,
            failures: a.failures,
            p99: (!a.latency_us.is_empty()).then(|| a.p99()),
        };
        Figures {
            primary: arm(&self.primary),
            candidate: arm(&self.candidate),
            compared: self.compared,
            mismatched: self.mismatched,
        }
    }
}

/// Judges one window against the thresholds (the rules in the module docs).
pub fn judge(window: &Window, settings: &CanarySettings) -> Verdict {
    judge_figures(&window.figures(), settings)
}

/// The rules in the module docs, on figures from wherever they came.
pub fn judge_figures(figures: &Figures, settings: &CanarySettings) -> Verdict {
    let (primary, candidate) = (&figures.primary, &figures.candidate);
    if candidate.requests < settings.min_requests {
        return Verdict::NotEnough;
    }
    let (p_err, c_err) = (primary.error_rate(), candidate.error_rate());
    if c_err > p_err + settings.max_error_rate_delta {
        return Verdict::Unhealthy(
            Reason::ErrorRate,
            format!(
                "shadow failed {:.2}% of {} requests, primary {:.2}% of {} (allowed: +{:.2} points)",
                c_err * 100.0,
                candidate.requests,
                p_err * 100.0,
                primary.requests,
                settings.max_error_rate_delta * 100.0,
            ),
        );
    }
    if let (Some(p99_p), Some(p99_c)) = (primary.p99, candidate.p99) {
        let ratio_broken = p99_c.as_secs_f64() > p99_p.as_secs_f64() * settings.max_p99_ratio;
        let slack_broken = p99_c > p99_p + settings.p99_slack;
        if ratio_broken && slack_broken {
            return Verdict::Unhealthy(
                Reason::Latency,
                format!(
                    "shadow p99 {} µs vs primary {} µs (allowed: {}x and +{} µs)",
                    p99_c.as_micros(),
                    p99_p.as_micros(),
                    settings.max_p99_ratio,
                    settings.p99_slack.as_micros(),
                ),
            );
        }
    }
    if let Some(max) = settings.max_mismatch_rate {
        if figures.compared >= settings.min_requests {
            let rate = figures.mismatched as f64 / figures.compared as f64;
            if rate > max {
                return Verdict::Unhealthy(
                    Reason::Mismatch,
                    format!(
                        "{} of {} comparisons mismatched ({:.2}%, allowed {:.2}%)",
                        figures.mismatched,
                        figures.compared,
                        rate * 100.0,
                        max * 100.0
                    ),
                );
            }
        }
    }
    Verdict::Healthy
}

/// What a fleet controller pushes to each replica
/// (`POST /admin/canary/{service}/fleet`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPush {
    /// The candidate's share for every replica.
    pub weight_percent: f64,
    /// How long this push holds without another.
    pub lease_secs: f64,
    /// `stepping`, `complete` or `rolled_back`.
    pub state: String,
    /// The step while stepping.
    #[serde(default)]
    pub step: Option<usize>,
    /// Why the fleet was rolled back.
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// A replica's side of the controller's lease.
#[derive(Debug, Default)]
struct Lease {
    until: Option<Instant>,
    last_push: Option<SystemTime>,
    /// Rolled back by hand here: held at 0 until restarted here.
    held: bool,
    /// The lease ran out and the weight went to 0 (logged once).
    expired: bool,
}

/// Where the canary is.
#[derive(Debug, Clone)]
enum Phase {
    /// At `weights_bps[step]` since `since`.
    Stepping {
        step: usize,
        since: Instant,
        healthy_windows: u64,
    },
    /// At the last weight, every step (the last one too) passed.
    Complete,
    RolledBack {
        reason: Reason,
        detail: String,
        at: SystemTime,
        window: Option<WindowSummary>,
    },
}

/// A service's canary: the arm choice on the request path, the window the
/// requests feed, and the judge that moves the weight.
pub struct Canary {
    settings: CanarySettings,
    sticky: Option<StickyKey>,
    /// Relaxed: only spreads unkeyed requests, orders nothing.
    counter: AtomicU64,
    /// The candidate's current share, read on every request.
    weight_bps: AtomicU32,
    window: Mutex<Window>,
    phase: Mutex<Phase>,
    metrics: CanaryMetrics,
    /// Under a controller only. Lock order: `phase`, then `lease`.
    lease: Mutex<Lease>,
}

impl Canary {
    pub fn new(
        settings: CanarySettings,
        sticky: Option<StickyKey>,
        metrics: CanaryMetrics,
        now: Instant,
    ) -> Self {
        // Under a controller, nothing goes to the candidate before the
        // first push says how much.
        let first = if settings.controller_lease.is_some() {
            0
        } else {
            settings.weights_bps[0]
        };
        metrics.weight.set(f64::from(first) / f64::from(FULL_BPS));
        Self {
            settings,
            sticky,
            counter: AtomicU64::new(0),
            weight_bps: AtomicU32::new(first),
            window: Mutex::new(Window::new(now)),
            phase: Mutex::new(Phase::Stepping {
                step: 0,
                since: now,
                healthy_windows: 0,
            }),
            metrics,
            lease: Mutex::new(Lease::default()),
        }
    }

    /// Whether a fleet controller judges this canary.
    pub fn controlled(&self) -> bool {
        self.settings.controller_lease.is_some()
    }

    /// Takes a controller's push: the fleet's weight and state, held for
    /// the push's lease. Refused while rolled back by hand here.
    pub fn apply(&self, push: &FleetPush, now: Instant) -> Result<(), String> {
        let Some(max_lease) = self.settings.controller_lease else {
            return Err("this service's canary judges itself: set controller_lease_secs in its [services.canary] table to put it under a controller".into());
        };
        if !(0.0..=100.0).contains(&push.weight_percent)
            || !push.lease_secs.is_finite()
            || push.lease_secs < 0.0
        {
            return Err(format!(
                "weight_percent {} must be within 0-100 and lease_secs {} a number of seconds",
                push.weight_percent, push.lease_secs
            ));
        }
        let mut phase = self.phase.lock();
        let mut lease = self.lease.lock();
        if lease.held {
            return Err("rolled back by hand on this replica: restart it here to follow the controller again".into());
        }
        // The replica's own setting bounds how long any push may hold.
        let holds = Duration::from_secs_f64(push.lease_secs).min(max_lease);
        lease.until = Some(now + holds);
        lease.last_push = Some(SystemTime::now());
        if lease.expired {
            tracing::info!("canary controller is back");
            lease.expired = false;
        }
        drop(lease);
        let next = match push.state.as_str() {
            "complete" => Phase::Complete,
            "rolled_back" => match &*phase {
                Phase::RolledBack { .. } => phase.clone(),
                _ => Phase::RolledBack {
                    reason: push.reason.unwrap_or(Reason::Manual),
                    detail: push.detail.clone().unwrap_or_default(),
                    at: SystemTime::now(),
                    window: None,
                },
            },
            _ => Phase::Stepping {
                step: push.step.unwrap_or(0),
                since: match &*phase {
                    Phase::Stepping { step, since, .. } if Some(*step) == push.step => *since,
                    _ => now,
                },
                healthy_windows: 0,
            },
        };
        if matches!(next, Phase::RolledBack { .. }) && !matches!(*phase, Phase::RolledBack { .. }) {
            let reason = push.reason.unwrap_or(Reason::Manual);
            tracing::warn!(reason = reason.as_str(), detail = ?push.detail, "the fleet's canary was rolled back by its controller");
            let i = Reason::ALL.iter().position(|r| *r == reason);
            self.metrics.rollbacks[i.expect("every reason is listed")].inc();
        }
        *phase = next;
        self.set_weight((push.weight_percent * 100.0).round() as u32);
        self.metrics.lease_seconds.set(holds.as_secs_f64());
        Ok(())
    }

    /// Under a controller: falls back to 0 when the lease has run out.
    fn check_lease(&self, now: Instant) {
        let mut lease = self.lease.lock();
        let left = lease
            .until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        self.metrics.lease_seconds.set(left.as_secs_f64());
        if left.is_zero() && lease.until.is_some() && !lease.expired {
            lease.expired = true;
            drop(lease);
            self.metrics.lease_expiries.inc();
            if self.weight_bps.load(Ordering::Relaxed) > 0 {
                tracing::warn!("canary controller lost: its lease ran out; the primary serves everything until it is back");
            }
            self.set_weight(0);
        }
    }

    /// Whether the candidate serves this request.
    pub fn chooses(&self, head: &Parts) -> bool {
        let weight = self.weight_bps.load(Ordering::Relaxed);
        if weight == 0 || !self.settings.methods.allows(&head.method) {
            return false;
        }
        if weight >= FULL_BPS {
            return true;
        }
        let p = point(self.sticky.as_ref(), head, &self.counter, SALT);
        // Maps the point uniformly onto 0..10000.
        ((u128::from(p) * u128::from(FULL_BPS)) >> 64) < u128::from(weight)
    }

    /// Whether requests of this method may go to the candidate at all.
    pub fn eligible(&self, method: &Method) -> bool {
        self.settings.methods.allows(method)
    }

    /// The candidate's current share in percent.
    pub fn weight_percent(&self) -> f64 {
        f64::from(self.weight_bps.load(Ordering::Relaxed)) / 100.0
    }

    /// Records one request served by `arm`: its status and time to the
    /// answer's head, or `None` when no answer came.
    pub fn record(&self, arm: Arm, answer: Option<(StatusCode, Duration)>) {
        let failed = answer.is_none_or(|(status, _)| status.is_server_error());
        {
            let mut window = self.window.lock();
            let stats = window.arm(arm);
            stats.requests += 1;
            stats.failures += u64::from(failed);
            if let Some((_, elapsed)) = answer {
                let us = (elapsed.as_micros() as u64).clamp(1, 60_000_000);
                let _ = stats.latency_us.record(us);
            }
        }
        let i = match arm {
            Arm::Primary => 0,
            Arm::Candidate => 2,
        } + usize::from(failed);
        self.metrics.requests[i].inc();
    }

    /// Records one finished comparison of a mirrored request.
    pub fn record_comparison(&self, mismatch: bool) {
        let mut window = self.window.lock();
        window.compared += 1;
        window.mismatched += u64::from(mismatch);
    }

    /// A candidate request that went to the primary instead.
    pub fn fallback(&self) {
        self.metrics.fallbacks.inc();
    }

    /// How often [`Canary::tick`] should run.
    pub fn tick_interval(&self) -> Duration {
        (self.settings.window / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// Judges the window if it is due, and steps or rolls back; under a
    /// controller, only watches the lease.
    pub fn tick(&self, now: Instant) {
        if self.controlled() {
            return self.check_lease(now);
        }
        let mut phase = self.phase.lock();
        let Phase::Stepping {
            step,
            since,
            healthy_windows,
        } = &mut *phase
        else {
            return;
        };
        let mut window = self.window.lock();
        if now.duration_since(window.started) < self.settings.window {
            return;
        }
        match judge(&window, &self.settings) {
            Verdict::NotEnough => {}
            Verdict::Healthy => {
                *healthy_windows += 1;
                window.reset(now);
                if now.duration_since(*since) >= self.settings.step {
                    let next = *step + 1;
                    if next < self.settings.weights_bps.len() {
                        let weight = self.settings.weights_bps[next];
                        tracing::info!(
                            weight_percent = f64::from(weight) / 100.0,
                            "canary steps up"
                        );
                        *phase = Phase::Stepping {
                            step: next,
                            since: now,
                            healthy_windows: 0,
                        };
                        self.set_weight(weight);
                    } else {
                        tracing::info!("canary complete: every step passed");
                        *phase = Phase::Complete;
                    }
                }
            }
            Verdict::Unhealthy(reason, detail) => {
                let summary = window.summary(now);
                window.reset(now);
                drop(window);
                self.roll_back(&mut phase, reason, detail, Some(summary));
            }
        }
    }

    /// Rolls back by hand (`POST /admin/canary/{service}/rollback`).
    pub fn roll_back_manually(&self) {
        let mut phase = self.phase.lock();
        if self.controlled() {
            self.lease.lock().held = true;
        }
        if !matches!(*phase, Phase::RolledBack { .. }) {
            self.roll_back(
                &mut phase,
                Reason::Manual,
                "rolled back by hand".into(),
                None,
            );
        }
    }

    /// Starts again from the first weight with a fresh window; under a
    /// controller, follows it again from its next push.
    pub fn restart(&self, now: Instant) {
        let mut phase = self.phase.lock();
        if self.controlled() {
            let mut lease = self.lease.lock();
            lease.held = false;
            lease.until = None;
            *phase = Phase::Stepping {
                step: 0,
                since: now,
                healthy_windows: 0,
            };
            drop(lease);
            self.set_weight(0);
            tracing::info!("canary released to its controller");
            return;
        }
        self.window.lock().reset(now);
        *phase = Phase::Stepping {
            step: 0,
            since: now,
            healthy_windows: 0,
        };
        self.set_weight(self.settings.weights_bps[0]);
        tracing::info!("canary restarted");
    }

    fn roll_back(
        &self,
        phase: &mut Phase,
        reason: Reason,
        detail: String,
        window: Option<WindowSummary>,
    ) {
        tracing::warn!(reason = reason.as_str(), %detail, "canary rolled back");
        self.set_weight(0);
        let i = Reason::ALL.iter().position(|r| *r == reason);
        self.metrics.rollbacks[i.expect("every reason is listed")].inc();
        *phase = Phase::RolledBack {
            reason,
            detail,
            at: SystemTime::now(),
            window,
        };
    }

    fn set_weight(&self, bps: u32) {
        self.weight_bps.store(bps, Ordering::Relaxed);
        self.metrics
            .weight
            .set(f64::from(bps) / f64::from(FULL_BPS));
    }

    /// The state for `GET /admin/canary`.
    pub fn status(&self, now: Instant) -> CanaryStatus {
        let phase = self.phase.lock().clone();
        let window = self.window.lock().summary(now);
        let steps = self
            .settings
            .weights_bps
            .iter()
            .map(|w| f64::from(*w) / 100.0)
            .collect();
        let mut status = CanaryStatus {
            state: "stepping",
            weight_percent: self.weight_percent(),
            steps_percent: steps,
            step: None,
            step_seconds: None,
            healthy_windows: None,
            rollback: None,
            window,
            controller: self.controlled().then(|| {
                let lease = self.lease.lock();
                ControllerView {
                    lease_seconds: lease
                        .until
                        .map_or(0.0, |u| u.saturating_duration_since(now).as_secs_f64()),
                    last_push_unix_seconds: lease
                        .last_push
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs()),
                    lost: lease.expired,
                    held_by_hand: lease.held,
                }
            }),
        };
        match phase {
            Phase::Stepping {
                step,
                since,
                healthy_windows,
            } => {
                status.step = Some(step);
                status.step_seconds = Some(now.duration_since(since).as_secs_f64());
                status.healthy_windows = Some(healthy_windows);
            }
            Phase::Complete => status.state = "complete",
            Phase::RolledBack {
                reason,
                detail,
                at,
                window,
            } => {
                status.state = "rolled_back";
                status.rollback = Some(Rollback {
                    reason,
                    detail,
                    at_unix_seconds: at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    window,
                });
            }
        }
        status
    }
}

/// Judges every `tick_interval` until `stop` turns true.
pub async fn run(canary: std::sync::Arc<Canary>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(canary.tick_interval());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => canary.tick(Instant::now()),
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Whether a request may be sent again after an upstream broke off
/// mid-exchange (RFC 9110 §9.2.2).
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// `GET /admin/canary`, per service.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryStatus {
    /// `stepping`, `complete` or `rolled_back`.
    pub state: &'static str,
    pub weight_percent: f64,
    pub steps_percent: Vec<f64>,
    /// Index into `steps_percent` while stepping.
    pub step: Option<usize>,
    /// Time at the current step while stepping.
    pub step_seconds: Option<f64>,
    /// Windows judged healthy at the current step.
    pub healthy_windows: Option<u64>,
    pub rollback: Option<Rollback>,
    /// The window being counted now (under a controller: the replica's own
    /// share, shown, not judged).
    pub window: WindowSummary,
    /// Under a fleet controller: the lease and the last push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerView>,
}

/// A replica's view of its controller.
#[derive(Debug, Clone, Serialize)]
pub struct ControllerView {
    /// Left of the last push's lease (0: none yet, or run out).
    pub lease_seconds: f64,
    pub last_push_unix_seconds: Option<u64>,
    /// The lease ran out: the weight fell back to 0.
    pub lost: bool,
    /// Rolled back by hand here; pushes refused until a restart here.
    pub held_by_hand: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub reason: Reason,
    pub detail: String,
    pub at_unix_seconds: u64,
    /// The window that was judged unhealthy (none for a manual rollback).
    pub window: Option<WindowSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowSummary {
    pub seconds: f64,
    pub primary: ArmSummary,
    pub shadow: ArmSummary,
    pub compared: u64,
    pub mismatched: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArmSummary {
    pub requests: u64,
    pub failures: u64,
    pub error_rate: f64,
    pub p99_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CanarySettings {
        CanarySettings {
            weights_bps: vec![100, 2_500, 10_000],
            step: Duration::from_secs(10),
            window: Duration::from_secs(1),
            min_requests: 100,
            max_error_rate_delta: 0.01,
            max_p99_ratio: 1.5,
            p99_slack: Duration::from_millis(5),
            max_mismatch_rate: Some(0.01),
            methods: MirrorMethods::All,
            controller_lease: None,
        }
    }

    fn metrics() -> CanaryMetrics {
        let c = || IntCounter::new("c", "c").unwrap();
        CanaryMetrics {
            weight: Gauge::new("w", "w").unwrap(),
            requests: [c(), c(), c(), c()],
            fallbacks: c(),
            rollbacks: [c(), c(), c(), c()],
            lease_seconds: Gauge::new("l", "l").unwrap(),
            lease_expiries: c(),
        }
    }

    fn push(weight_percent: f64, state: &str) -> FleetPush {
        FleetPush {
            weight_percent,
            lease_secs: 5.0,
            state: state.into(),
            step: Some(0),
            reason: (state == "rolled_back").then_some(Reason::Latency),
            detail: None,
        }
    }

    #[test]
    fn under_a_controller_the_weight_is_pushed_and_falls_to_zero_when_the_lease_runs_out() {
        let t0 = Instant::now();
        let canary = Canary::new(
            CanarySettings {
                controller_lease: Some(Duration::from_secs(10)),
                ..settings()
            },
            None,
            metrics(),
            t0,
        );
        assert_eq!(
            canary.weight_percent(),
            0.0,
            "nothing before the first push"
        );
        canary.apply(&push(25.0, "stepping"), t0).unwrap();
        assert_eq!(canary.weight_percent(), 25.0);
        // Windows are not judged here, however bad.
        canary.tick(t0 + Duration::from_secs(4));
        assert_eq!(canary.weight_percent(), 25.0);
        canary.tick(t0 + Duration::from_secs(6));
        assert_eq!(canary.weight_percent(), 0.0, "the lease (5 s) ran out");
        let status = canary.status(t0 + Duration::from_secs(6));
        assert!(status.controller.unwrap().lost);
        canary
            .apply(&push(25.0, "stepping"), t0 + Duration::from_secs(7))
            .unwrap();
        assert_eq!(canary.weight_percent(), 25.0, "back with the controller");
        canary
            .apply(&push(0.0, "rolled_back"), t0 + Duration::from_secs(8))
            .unwrap();
        assert_eq!(canary.status(t0).state, "rolled_back");
    }

    #[test]
    fn a_replica_rolled_back_by_hand_refuses_pushes_until_restarted_there() {
        let t0 = Instant::now();
        let canary = Canary::new(
            CanarySettings {
                controller_lease: Some(Duration::from_secs(10)),
                ..settings()
            },
            None,
            metrics(),
            t0,
        );
        canary.apply(&push(25.0, "stepping"), t0).unwrap();
        canary.roll_back_manually();
        assert_eq!(canary.weight_percent(), 0.0);
        assert!(canary.apply(&push(25.0, "stepping"), t0).is_err());
        canary.restart(t0);
        canary.apply(&push(25.0, "stepping"), t0).unwrap();
        assert_eq!(canary.weight_percent(), 25.0);
    }

    #[test]
    fn a_self_judging_canary_refuses_pushes() {
        let canary = Canary::new(settings(), None, metrics(), Instant::now());
        assert!(canary
            .apply(&push(25.0, "stepping"), Instant::now())
            .is_err());
    }

    fn window_with(primary: (u64, u64, u64), candidate: (u64, u64, u64)) -> Window {
        let mut w = Window::new(Instant::now());
        for (arm, (n, failures, ms)) in [(Arm::Primary, primary), (Arm::Candidate, candidate)] {
            let stats = w.arm(arm);
            stats.requests = n;
            stats.failures = failures;
            for _ in 0..n {
                stats.latency_us.record(ms * 1000).unwrap();
            }
        }
        w
    }

    fn head(method: Method, user: Option<&str>) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/x");
        if let Some(u) = user {
            b = b.header("x-user", u);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_window_with_too_few_candidate_requests_is_not_judged() {
        let w = window_with((1000, 0, 1), (99, 99, 900));
        assert_eq!(judge(&w, &settings()), Verdict::NotEnough);
    }

    #[test]
    fn a_candidate_as_good_as_the_primary_is_healthy() {
        let w = window_with((1000, 5, 2), (200, 1, 2));
        assert_eq!(judge(&w, &settings()), Verdict::Healthy);
    }

    #[test]
    fn more_failures_than_the_primary_plus_the_delta_roll_back() {
        let w = window_with((1000, 10, 2), (200, 5, 2)); // 1 % vs 2.5 %
        assert!(matches!(
            judge(&w, &settings()),
            Verdict::Unhealthy(Reason::ErrorRate, _)
        ));
        let within = window_with((1000, 10, 2), (200, 3, 2)); // 1 % vs 1.5 %
        assert_eq!(judge(&within, &settings()), Verdict::Healthy);
    }

    #[test]
    fn latency_needs_both_the_ratio_and_the_slack_broken() {
        // 3x slower but only 2 ms above: within the slack.
        assert_eq!(
            judge(&window_with((1000, 0, 1), (200, 0, 3)), &settings()),
            Verdict::Healthy
        );
        // 20 ms vs 10 ms: 2x and 10 ms above.
        assert!(matches!(
            judge(&window_with((1000, 0, 10), (200, 0, 20)), &settings()),
            Verdict::Unhealthy(Reason::Latency, _)
        ));
        // 14 ms vs 10 ms: 1.4x, under the ratio.
        assert_eq!(
            judge(&window_with((1000, 0, 10), (200, 0, 14)), &settings()),
            Verdict::Healthy
        );
    }

    #[test]
    fn mismatches_count_once_enough_comparisons_finished() {
        let mut w = window_with((1000, 0, 1), (200, 0, 1));
        w.compared = 99;
        w.mismatched = 50;
        assert_eq!(judge(&w, &settings()), Verdict::Healthy);
        w.compared = 500;
        w.mismatched = 6;
        assert!(matches!(
            judge(&w, &settings()),
            Verdict::Unhealthy(Reason::Mismatch, _)
        ));
        let mut unset = settings();
        unset.max_mismatch_rate = None;
        assert_eq!(judge(&w, &unset), Verdict::Healthy);
    }

    #[test]
    fn the_weight_is_the_share_of_requests_served_by_the_candidate() {
        let mut s = settings();
        s.weights_bps = vec![2_500];
        let canary = Canary::new(s, None, metrics(), Instant::now());
        let n = (0..10_000)
            .filter(|_| canary.chooses(&head(Method::GET, None)))
            .count();
        assert!((2_450..=2_550).contains(&n), "{n}");
    }

    #[test]
    fn a_sticky_key_stays_on_its_arm() {
        let mut s = settings();
        s.weights_bps = vec![5_000];
        let canary = Canary::new(
            s,
            StickyKey::parse("header:x-user"),
            metrics(),
            Instant::now(),
        );
        let mut on_candidate = 0;
        for user in 0..1000 {
            let user = format!("user-{user}");
            let first = canary.chooses(&head(Method::GET, Some(&user)));
            for _ in 0..3 {
                assert_eq!(canary.chooses(&head(Method::GET, Some(&user))), first);
            }
            on_candidate += usize::from(first);
        }
        assert!((400..=600).contains(&on_candidate), "{on_candidate}");
    }

    #[test]
    fn the_safe_policy_keeps_writes_on_the_primary() {
        let mut s = settings();
        s.weights_bps = vec![10_000];
        s.methods = MirrorMethods::Safe;
        let canary = Canary::new(s, None, metrics(), Instant::now());
        assert!(canary.chooses(&head(Method::GET, None)));
        assert!(!canary.chooses(&head(Method::POST, None)));
    }

    #[test]
    fn healthy_windows_step_up_to_complete_and_a_bad_one_rolls_back() {
        let start = Instant::now();
        let mut s = settings();
        s.step = Duration::from_secs(2);
        let canary = Canary::new(s, None, metrics(), start);
        let feed = |failed: bool| {
            for _ in 0..200 {
                canary.record(
                    Arm::Primary,
                    Some((StatusCode::OK, Duration::from_millis(1))),
                );
                let status = if failed {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                canary.record(Arm::Candidate, Some((status, Duration::from_millis(1))));
            }
        };
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(canary.weight_percent(), 1.0);
        feed(false);
        canary.tick(at(1)); // healthy, step not yet over
        assert_eq!(canary.weight_percent(), 1.0);
        feed(false);
        canary.tick(at(2)); // healthy and 2 s at 1 %
        assert_eq!(canary.weight_percent(), 25.0);
        canary.tick(at(3)); // nothing served: not judged, no step
        assert_eq!(canary.weight_percent(), 25.0);
        feed(false);
        canary.tick(at(4));
        assert_eq!(canary.weight_percent(), 100.0);
        assert_eq!(canary.status(at(4)).state, "stepping");
        feed(false);
        canary.tick(at(6)); // the last step passed too
        assert_eq!(canary.weight_percent(), 100.0);
        assert_eq!(canary.status(at(6)).state, "complete");

        canary.restart(at(7));
        assert_eq!(canary.weight_percent(), 1.0);
        feed(true);
        canary.tick(at(8));
        assert_eq!(canary.weight_percent(), 0.0);
        let status = canary.status(at(8));
        assert_eq!(status.state, "rolled_back");
        assert_eq!(status.rollback.unwrap().reason, Reason::ErrorRate);
        assert_eq!(canary.metrics.rollbacks[0].get(), 1);
        // Rolled back stays rolled back.
        feed(false);
        canary.tick(at(20));
        assert_eq!(canary.weight_percent(), 0.0);
    }

    #[test]
    fn idempotent_methods_per_rfc_9110() {
        assert!(idempotent(&Method::GET));
        assert!(idempotent(&Method::PUT));
        assert!(idempotent(&Method::DELETE));
        assert!(!idempotent(&Method::POST));
        assert!(!idempotent(&Method::PATCH));
    }
}
