//! The proxy's Prometheus metrics.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `parallax_upstream_request_duration_seconds` | histogram, 50 µs–10 s | `service`, `route`, `backend` ∈ {`primary`,`shadow`,`secondary`} |
//! | `parallax_mirror_total` | counter | `service`, `route`, `outcome` (see [`MirrorOutcome`]) |
//! | `parallax_comparisons_total` | counter | `service`, `route`, `result` ∈ {`match`,`mismatch`,`noise`} |
//! | `parallax_backend_cpu_seconds_total` | counter | `service`, `backend` |
//! | `parallax_backend_resident_memory_bytes` | gauge | `service`, `backend` |
//! | `process_*` | the proxy's own process metrics | — |
//!
//! Upstream durations run from sending the request to receiving the answer's
//! head. Labels are the configured names and route templates only. Every
//! series of a route is resolved once at start-up ([`RouteMetrics`]), so the
//! hot path does no label hashing and the series exist (at zero) from the
//! first scrape.

use parallax_common::metrics::Metrics;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

use parallax_compare::Outcome;

/// Buckets of `parallax_upstream_request_duration_seconds`: 50 µs to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Which upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Primary,
    Shadow,
    Secondary,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Primary, Backend::Shadow, Backend::Secondary];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Primary => "primary",
            Backend::Shadow => "shadow",
            Backend::Secondary => "secondary",
        }
    }
}

/// What became of one request's mirror copy: exactly one per request that
/// reached the primary (a request whose own body broke off while the proxy
/// buffered it counts nothing: there was no exchange to mirror).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// Shadow answered and the answers were compared.
    Compared,
    /// Not selected: the sampling fraction or the method policy.
    SampledOut,
    /// Selected, but `shadow_max_in_flight` copies were already in flight.
    DroppedQueueFull,
    /// The shadow could not be reached or broke the connection.
    ShadowError,
    /// The shadow did not answer, body included, within `shadow_timeout_ms`.
    ShadowTimeout,
    /// The request body exceeded `max_mirror_body_bytes`, or an answer
    /// exceeded `max_compare_body_bytes`.
    BodyTooLarge,
    /// The primary failed or the client left before the primary's answer
    /// was complete: nothing to compare against.
    PrimaryError,
}

impl MirrorOutcome {
    pub const ALL: [MirrorOutcome; 7] = [
        MirrorOutcome::Compared,
        MirrorOutcome::SampledOut,
        MirrorOutcome::DroppedQueueFull,
        MirrorOutcome::ShadowError,
        MirrorOutcome::ShadowTimeout,
        MirrorOutcome::BodyTooLarge,
        MirrorOutcome::PrimaryError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MirrorOutcome::Compared => "compared",
            MirrorOutcome::SampledOut => "sampled_out",
            MirrorOutcome::DroppedQueueFull => "dropped_queue_full",
            MirrorOutcome::ShadowError => "shadow_error",
            MirrorOutcome::ShadowTimeout => "shadow_timeout",
            MirrorOutcome::BodyTooLarge => "body_too_large",
            MirrorOutcome::PrimaryError => "primary_error",
        }
    }
}

/// The registry and the proxy's metric families.
#[derive(Clone)]
pub struct ProxyMetrics {
    registry: Metrics,
    durations: HistogramVec,
    mirror: IntCounterVec,
    comparisons: IntCounterVec,
}

impl ProxyMetrics {
    pub fn new() -> Self {
        let registry = Metrics::new();
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "parallax_upstream_request_duration_seconds",
                "Time from sending a request to an upstream to receiving its answer's head.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["service", "route", "backend"],
        )
        .expect("valid metric");
        let mirror = IntCounterVec::new(
            Opts::new(
                "parallax_mirror_total",
                "Requests by what became of their mirror copy.",
            ),
            &["service", "route", "outcome"],
        )
        .expect("valid metric");
        let comparisons = IntCounterVec::new(
            Opts::new(
                "parallax_comparisons_total",
                "Primary-vs-shadow comparisons by result.",
            ),
            &["service", "route", "result"],
        )
        .expect("valid metric");
        registry.register(durations.clone());
        registry.register(mirror.clone());
        registry.register(comparisons.clone());
        Self {
            registry,
            durations,
            mirror,
            comparisons,
        }
    }

    /// Registers another collector (the backend usage sampler).
    pub fn register<C: prometheus::core::Collector + 'static>(&self, collector: C) {
        self.registry.register(collector);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// The series of one route, resolved once.
    pub fn route(&self, service: &str, route: &str, with_secondary: bool) -> RouteMetrics {
        let duration = |b: Backend| {
            self.durations
                .with_label_values(&[service, route, b.as_str()])
        };
        RouteMetrics {
            primary: duration(Backend::Primary),
            shadow: duration(Backend::Shadow),
            secondary: with_secondary.then(|| duration(Backend::Secondary)),
            outcomes: MirrorOutcome::ALL
                .map(|o| self.mirror.with_label_values(&[service, route, o.as_str()])),
            results: [Outcome::Match, Outcome::Mismatch, Outcome::Noise].map(|r| {
                self.comparisons
                    .with_label_values(&[service, route, r.as_str()])
            }),
        }
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One route's series.
#[derive(Clone)]
pub struct RouteMetrics {
    primary: Histogram,
    shadow: Histogram,
    secondary: Option<Histogram>,
    outcomes: [IntCounter; 7],
    results: [IntCounter; 3],
}

impl RouteMetrics {
    pub fn observe(&self, backend: Backend, seconds: f64) {
        match backend {
            Backend::Primary => self.primary.observe(seconds),
            Backend::Shadow => self.shadow.observe(seconds),
            Backend::Secondary => {
                if let Some(h) = &self.secondary {
                    h.observe(seconds)
                }
            }
        }
    }

    pub fn outcome(&self, outcome: MirrorOutcome) {
        let i = MirrorOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("every outcome is listed");
        self.outcomes[i].inc();
    }

    pub fn result(&self, result: Outcome) {
        let i = match result {
            Outcome::Match => 0,
            Outcome::Mismatch => 1,
            Outcome::Noise => 2,
        };
        self.results[i].inc();
    }
}
