//! The proxy's Prometheus metrics.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `parallax_upstream_request_duration_seconds` | histogram, 50 µs–10 s | `service`, `route`, `backend` ∈ {`primary`,`shadow`,`secondary`} |
//! | `parallax_mirror_total` | counter | `service`, `route`, `outcome` (see [`MirrorOutcome`]) |
//! | `parallax_comparisons_total` | counter | `service`, `route`, `result` ∈ {`match`,`mismatch`,`noise`} |
//! | `parallax_comparison_limits_total` | counter | `service`, `route`: comparisons cut short by a bound (decoded size, depth, work, differences kept); each is also a `mismatch` |
//! | `parallax_backend_cpu_seconds_total` | counter | `service`, `backend` |
//! | `parallax_backend_resident_memory_bytes` | gauge | `service`, `backend` |
//! | `parallax_ws_upgrades_total` | counter | `service`, `outcome` (see [`WsUpgrade`]) |
//! | `parallax_ws_connections` | gauge | `service`, `backend` ∈ {`primary`,`shadow`} |
//! | `parallax_ws_frames_total` | counter | `service`, `result` (see [`WsResult`]) |
//! | `parallax_ws_delivery_skew_seconds` | histogram, 50 µs–10 s | `service` |
//! | `parallax_ws_delivery_skew_negative_total` | counter | `service` |
//! | `parallax_ws_shadow_ends_total` | counter | `service`, `reason` (see [`ShadowEnd`]) |
//! | `parallax_canary_weight_ratio` | gauge, 0–1 | `service` |
//! | `parallax_canary_requests_total` | counter | `service`, `backend` ∈ {`primary`,`shadow`}, `result` ∈ {`success`,`failure`} |
//! | `parallax_canary_fallbacks_total` | counter | `service` |
//! | `parallax_canary_rollbacks_total` | counter | `service`, `reason` (see [`Reason`]) |
//! | `parallax_canary_lease_seconds` | gauge | `service`: under a fleet controller, what is left of its last push's lease (0: none or run out) |
//! | `parallax_canary_lease_expiries_total` | counter | `service`: leases that ran out (the weight fell back to 0) |
//! | `process_*` | the proxy's own process metrics | — |
//!
//! Upstream durations run from sending the request to receiving the answer's
//! head. Labels are the configured names and route templates only. Every
//! series of a route is resolved once at start-up ([`RouteMetrics`]), so the
//! hot path does no label hashing and the series exist (at zero) from the
//! first scrape.
//!
//! WebSocket skew is the shadow's arrival minus the primary's for each
//! paired frame, and may be negative (the shadow was first). A Prometheus
//! histogram's buckets cannot hold negative values usefully, so the
//! histogram observes the **absolute** skew and
//! `parallax_ws_delivery_skew_negative_total` counts the pairs where the
//! shadow was first: `negative / _count` is the share of frames the shadow
//! delivered earlier.

use parallax_common::metrics::Metrics;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};

use parallax_compare::Outcome;

use crate::canary::{CanaryMetrics, Reason};

/// Buckets of `parallax_upstream_request_duration_seconds`: 50 µs to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Buckets of `parallax_ws_delivery_skew_seconds` (absolute skew): 1-2-5
/// steps from 50 µs to 10 s, fine enough to read percentiles from.
pub const SKEW_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
    2.0, 5.0, 10.0,
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
/// buffered it counts nothing: there was no exchange to mirror; nor does a
/// request the canary gave the shadow, even when the primary took it over).
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

/// What became of a WebSocket upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsUpgrade {
    /// Upgraded, and the shadow was asked to upgrade too.
    Mirrored,
    /// Upgraded; not selected for shadowing by the sampling settings.
    SampledOut,
    /// The primary answered something other than 101; relayed as is.
    PrimaryRefused,
    /// The primary could not be reached or broke off: 502.
    PrimaryError,
}

impl WsUpgrade {
    pub const ALL: [WsUpgrade; 4] = [
        WsUpgrade::Mirrored,
        WsUpgrade::SampledOut,
        WsUpgrade::PrimaryRefused,
        WsUpgrade::PrimaryError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WsUpgrade::Mirrored => "mirrored",
            WsUpgrade::SampledOut => "sampled_out",
            WsUpgrade::PrimaryRefused => "primary_refused",
            WsUpgrade::PrimaryError => "primary_error",
        }
    }
}

/// What became of one WebSocket data message in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsResult {
    /// Both sent it (same key), equal after the compare rules, in order.
    Matched,
    /// The primary sent it; the shadow did not within the window.
    Missing,
    /// The shadow sent it; the primary did not within the window.
    Extra,
    /// Both sent it, with differences (a mismatch sample is kept).
    Different,
    /// Both sent it, equal, but out of the primary's order.
    Reordered,
    /// Not compared: over the per-connection pending bounds.
    Overflow,
    /// Still waiting for its counterpart when the connection ended.
    Unresolved,
}

impl WsResult {
    pub const ALL: [WsResult; 7] = [
        WsResult::Matched,
        WsResult::Missing,
        WsResult::Extra,
        WsResult::Different,
        WsResult::Reordered,
        WsResult::Overflow,
        WsResult::Unresolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WsResult::Matched => "matched",
            WsResult::Missing => "missing",
            WsResult::Extra => "extra",
            WsResult::Different => "different",
            WsResult::Reordered => "reordered",
            WsResult::Overflow => "overflow",
            WsResult::Unresolved => "unresolved",
        }
    }
}

/// Why a shadow connection ended before the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowEnd {
    /// The shadow answered the upgrade with something other than 101.
    Refused,
    /// Connecting, the handshake or the socket failed (or timed out).
    Error,
    /// The shadow closed the connection (close frame or EOF).
    Closed,
    /// The shadow did not take the client's frames fast enough: more than
    /// `ws_shadow_max_queued_bytes` waited for it.
    Stalled,
    /// The shadow's bytes could not be read as WebSocket frames.
    Protocol,
}

impl ShadowEnd {
    pub const ALL: [ShadowEnd; 5] = [
        ShadowEnd::Refused,
        ShadowEnd::Error,
        ShadowEnd::Closed,
        ShadowEnd::Stalled,
        ShadowEnd::Protocol,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShadowEnd::Refused => "refused",
            ShadowEnd::Error => "error",
            ShadowEnd::Closed => "closed",
            ShadowEnd::Stalled => "stalled",
            ShadowEnd::Protocol => "protocol",
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
    comparison_limits: IntCounterVec,
    ws_upgrades: IntCounterVec,
    ws_connections: IntGaugeVec,
    ws_frames: IntCounterVec,
    ws_skew: HistogramVec,
    ws_skew_negative: IntCounterVec,
    ws_shadow_ends: IntCounterVec,
    canary_weight: GaugeVec,
    canary_requests: IntCounterVec,
    canary_fallbacks: IntCounterVec,
    canary_rollbacks: IntCounterVec,
    canary_lease: GaugeVec,
    canary_lease_expiries: IntCounterVec,
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
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(c.clone());
            c
        };
        let comparison_limits = counter(
            "parallax_comparison_limits_total",
            "Comparisons cut short by a bound (decoded size, depth, work, differences kept).",
            &["service", "route"],
        );
        let ws_upgrades = counter(
            "parallax_ws_upgrades_total",
            "WebSocket upgrade requests by outcome.",
            &["service", "outcome"],
        );
        let ws_frames = counter(
            "parallax_ws_frames_total",
            "WebSocket data messages of shadowed connections by comparison result.",
            &["service", "result"],
        );
        let ws_skew_negative = counter(
            "parallax_ws_delivery_skew_negative_total",
            "Paired WebSocket messages that the shadow delivered before the primary.",
            &["service"],
        );
        let ws_shadow_ends = counter(
            "parallax_ws_shadow_ends_total",
            "Shadow WebSocket connections that ended before the client's, by reason.",
            &["service", "reason"],
        );
        let canary_requests = counter(
            "parallax_canary_requests_total",
            "Requests of canaried services by the backend that served them and whether it failed (5xx or no answer).",
            &["service", "backend", "result"],
        );
        let canary_fallbacks = counter(
            "parallax_canary_fallbacks_total",
            "Requests chosen for the canary that the primary served because the shadow could not answer.",
            &["service"],
        );
        let canary_rollbacks = counter(
            "parallax_canary_rollbacks_total",
            "Canary rollbacks by reason.",
            &["service", "reason"],
        );
        let canary_weight = GaugeVec::new(
            Opts::new(
                "parallax_canary_weight_ratio",
                "Share of requests the canary sends to the shadow, 0-1.",
            ),
            &["service"],
        )
        .expect("valid metric");
        registry.register(canary_weight.clone());
        let canary_lease = GaugeVec::new(
            Opts::new(
                "parallax_canary_lease_seconds",
                "Under a fleet controller: what is left of its last push's lease, seconds (0: none or run out).",
            ),
            &["service"],
        )
        .expect("valid metric");
        registry.register(canary_lease.clone());
        let canary_lease_expiries = counter(
            "parallax_canary_lease_expiries_total",
            "Fleet-controller leases that ran out (the canary's weight fell back to 0).",
            &["service"],
        );
        let ws_connections = IntGaugeVec::new(
            Opts::new(
                "parallax_ws_connections",
                "Open proxied WebSocket connections to each upstream.",
            ),
            &["service", "backend"],
        )
        .expect("valid metric");
        let ws_skew = HistogramVec::new(
            HistogramOpts::new(
                "parallax_ws_delivery_skew_seconds",
                "Absolute difference between the shadow's and the primary's arrival of each paired WebSocket message.",
            )
            .buckets(SKEW_BUCKETS.to_vec()),
            &["service"],
        )
        .expect("valid metric");
        registry.register(durations.clone());
        registry.register(mirror.clone());
        registry.register(comparisons.clone());
        registry.register(ws_connections.clone());
        registry.register(ws_skew.clone());
        Self {
            registry,
            durations,
            mirror,
            comparisons,
            comparison_limits,
            ws_upgrades,
            ws_connections,
            ws_frames,
            ws_skew,
            ws_skew_negative,
            ws_shadow_ends,
            canary_weight,
            canary_requests,
            canary_fallbacks,
            canary_rollbacks,
            canary_lease,
            canary_lease_expiries,
        }
    }

    /// The canary series of one service, resolved once.
    pub fn canary(&self, service: &str) -> CanaryMetrics {
        let request = |backend: Backend, result: &str| {
            self.canary_requests
                .with_label_values(&[service, backend.as_str(), result])
        };
        CanaryMetrics {
            weight: self.canary_weight.with_label_values(&[service]),
            requests: [
                request(Backend::Primary, "success"),
                request(Backend::Primary, "failure"),
                request(Backend::Shadow, "success"),
                request(Backend::Shadow, "failure"),
            ],
            fallbacks: self.canary_fallbacks.with_label_values(&[service]),
            rollbacks: Reason::ALL.map(|r| {
                self.canary_rollbacks
                    .with_label_values(&[service, r.as_str()])
            }),
            lease_seconds: self.canary_lease.with_label_values(&[service]),
            lease_expiries: self.canary_lease_expiries.with_label_values(&[service]),
        }
    }

    /// The WebSocket series of one service, resolved once.
    pub fn ws(&self, service: &str) -> WsMetrics {
        WsMetrics {
            upgrades: WsUpgrade::ALL
                .map(|o| self.ws_upgrades.with_label_values(&[service, o.as_str()])),
            connections: [Backend::Primary, Backend::Shadow].map(|b| {
                self.ws_connections
                    .with_label_values(&[service, b.as_str()])
            }),
            frames: WsResult::ALL.map(|r| self.ws_frames.with_label_values(&[service, r.as_str()])),
            skew: self.ws_skew.with_label_values(&[service]),
            skew_negative: self.ws_skew_negative.with_label_values(&[service]),
            shadow_ends: ShadowEnd::ALL.map(|r| {
                self.ws_shadow_ends
                    .with_label_values(&[service, r.as_str()])
            }),
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
            limits: self.comparison_limits.with_label_values(&[service, route]),
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
    limits: IntCounter,
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
        // `ALL` lists the variants in declaration order (a test checks it),
        // so the discriminant is the index: no search per request.
        self.outcomes[outcome as usize].inc();
    }

    /// A comparison reached one of its bounds.
    pub fn limit(&self) {
        self.limits.inc();
    }

    pub fn result(&self, result: Outcome) {
        let i = match result {
            Outcome::Match => 0,
            Outcome::Mismatch => 1,
            Outcome::Noise => 2,
        };
        self.results[i].inc();
    }

    /// The counters as they stand, for the admin overview: mirror outcomes,
    /// comparison results and limits by name.
    pub fn counts(&self) -> serde_json::Value {
        let outcomes: serde_json::Map<String, serde_json::Value> = MirrorOutcome::ALL
            .iter()
            .zip(&self.outcomes)
            .map(|(o, c)| (o.as_str().to_owned(), c.get().into()))
            .collect();
        let results: serde_json::Map<String, serde_json::Value> =
            [Outcome::Match, Outcome::Mismatch, Outcome::Noise]
                .iter()
                .zip(&self.results)
                .map(|(r, c)| (r.as_str().to_owned(), c.get().into()))
                .collect();
        serde_json::json!({
            "outcomes": outcomes,
            "results": results,
            "limits": self.limits.get(),
        })
    }
}

/// One service's WebSocket series.
#[derive(Clone)]
pub struct WsMetrics {
    upgrades: [IntCounter; 4],
    /// Primary, shadow.
    connections: [IntGauge; 2],
    frames: [IntCounter; 7],
    skew: Histogram,
    skew_negative: IntCounter,
    shadow_ends: [IntCounter; 5],
}

impl WsMetrics {
    pub fn upgrade(&self, outcome: WsUpgrade) {
        self.upgrades[outcome as usize].inc();
    }

    /// The open-connections gauge of `backend` (primary or shadow).
    pub fn connections(&self, backend: Backend) -> &IntGauge {
        match backend {
            Backend::Shadow => &self.connections[1],
            _ => &self.connections[0],
        }
    }

    pub fn frame(&self, result: WsResult) {
        self.frames[result as usize].inc();
    }

    /// Records the skew of one paired message (shadow minus primary).
    pub fn skew(&self, seconds: f64) {
        self.skew.observe(seconds.abs());
        if seconds < 0.0 {
            self.skew_negative.inc();
        }
    }

    pub fn shadow_end(&self, reason: ShadowEnd) {
        self.shadow_ends[reason as usize].inc();
    }

    /// The counters as they stand, for the admin overview: upgrades, open
    /// connections, frames by class, skew (count, sum, share negative) and
    /// shadow ends.
    pub fn counts(&self) -> serde_json::Value {
        let named = |names: Vec<&'static str>, counters: &[IntCounter]| {
            names
                .into_iter()
                .zip(counters)
                .map(|(n, c)| (n.to_owned(), serde_json::Value::from(c.get())))
                .collect::<serde_json::Map<_, _>>()
        };
        let skew_count = self.skew.get_sample_count();
        serde_json::json!({
            "upgrades": named(WsUpgrade::ALL.iter().map(|o| o.as_str()).collect(), &self.upgrades),
            "connections": { "primary": self.connections[0].get(), "shadow": self.connections[1].get() },
            "frames": named(WsResult::ALL.iter().map(|r| r.as_str()).collect(), &self.frames),
            "skew": {
                "count": skew_count,
                "mean_abs_seconds": if skew_count > 0 { self.skew.get_sample_sum() / skew_count as f64 } else { 0.0 },
                "negative": self.skew_negative.get(),
            },
            "shadow_ends": named(ShadowEnd::ALL.iter().map(|r| r.as_str()).collect(), &self.shadow_ends),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot path indexes series arrays by discriminant: every `ALL` must
    /// list its enum's variants in declaration order.
    #[test]
    fn label_arrays_are_indexed_by_discriminant() {
        for (i, b) in Backend::ALL.iter().enumerate() {
            assert_eq!(*b as usize, i, "{b:?}");
        }
        for (i, o) in MirrorOutcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
        for (i, o) in WsUpgrade::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
        for (i, r) in WsResult::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        for (i, r) in ShadowEnd::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }
}
