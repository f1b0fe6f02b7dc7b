//! The fan-out metrics, under the same names as the Go twin's.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `fanout_connections` | gauge | open WebSocket connections |
//! | `fanout_messages_sent_total` | counter | notification frames written to sockets |
//! | `fanout_dropped_total{reason}` | counter | `queue_full`: a queued notification dropped for a newer one; `slow_consumer_closed`: a connection closed with 1013 (one per connection) |
//! | `fanout_delivery_lag_seconds` | histogram | from queueing a notification to having written it to the socket; the shared latency buckets |
//!
//! Both `reason` series exist from the start (at 0), so a dashboard's rate
//! has a series before the first drop.

use std::time::Duration;

use parallax_common::metrics::{Metrics, LATENCY_BUCKETS};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

/// Handles to the fan-out metrics (cheap to clone: each is an `Arc`).
#[derive(Clone)]
pub struct FanoutMetrics {
    pub connections: IntGauge,
    pub messages_sent: IntCounter,
    pub dropped_queue_full: IntCounter,
    pub dropped_slow_consumer: IntCounter,
    pub delivery_lag: Histogram,
}

impl FanoutMetrics {
    /// Creates the metrics and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let connections = IntGauge::new("fanout_connections", "Open WebSocket connections.")
            .expect("valid metric");
        let messages_sent = IntCounter::new(
            "fanout_messages_sent_total",
            "Notification frames written to sockets.",
        )
        .expect("valid metric");
        let dropped = IntCounterVec::new(
            Opts::new(
                "fanout_dropped_total",
                "Notifications dropped from a full connection queue (queue_full), and connections closed as slow consumers (slow_consumer_closed).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let delivery_lag = Histogram::with_opts(
            HistogramOpts::new(
                "fanout_delivery_lag_seconds",
                "Time from queueing a notification for a connection to writing it to the socket.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        metrics.register(connections.clone());
        metrics.register(messages_sent.clone());
        metrics.register(dropped.clone());
        metrics.register(delivery_lag.clone());
        Self {
            connections,
            messages_sent,
            dropped_queue_full: dropped.with_label_values(&["queue_full"]),
            dropped_slow_consumer: dropped.with_label_values(&["slow_consumer_closed"]),
            delivery_lag,
        }
    }

    /// A notification frame was written, `lag` after it was queued.
    pub fn sent(&self, lag: Duration) {
        self.messages_sent.inc();
        self.delivery_lag.observe(lag.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exposed_from_the_start() {
        let metrics = Metrics::new();
        FanoutMetrics::register(&metrics);
        let text = metrics.render();
        for line in [
            "fanout_connections 0",
            "fanout_messages_sent_total 0",
            r#"fanout_dropped_total{reason="queue_full"} 0"#,
            r#"fanout_dropped_total{reason="slow_consumer_closed"} 0"#,
            "fanout_delivery_lag_seconds_count 0",
            r#"fanout_delivery_lag_seconds_bucket{le="0.0005"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
