//! Ingest-specific metrics (names shared with the Go twin).

use prometheus::{IntCounter, IntCounterVec, Opts};

use parallax_common::metrics::Metrics;

/// Counters of what happened to events.
#[derive(Clone)]
pub struct IngestMetrics {
    events: IntCounterVec,
    produce_errors: IntCounter,
}

impl IngestMetrics {
    /// Creates the counters and registers them in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let events = IntCounterVec::new(
            Opts::new(
                "ingest_events_total",
                "Events by outcome: accepted (acknowledged by Kafka), rejected (validation), failed (Kafka).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let produce_errors = IntCounter::new(
            "ingest_kafka_produce_errors_total",
            "Records Kafka did not acknowledge.",
        )
        .expect("valid metric");
        metrics.register(events.clone());
        metrics.register(produce_errors.clone());
        // Present from the start, so rates work before the first failure.
        for outcome in ["accepted", "rejected", "failed"] {
            events.with_label_values(&[outcome]);
        }
        Self {
            events,
            produce_errors,
        }
    }

    pub fn accepted(&self, n: usize) {
        self.events
            .with_label_values(&["accepted"])
            .inc_by(n as u64);
    }

    pub fn rejected(&self, n: usize) {
        self.events
            .with_label_values(&["rejected"])
            .inc_by(n as u64);
    }

    pub fn failed(&self, n: usize, produce_errors: usize) {
        self.events.with_label_values(&["failed"]).inc_by(n as u64);
        self.produce_errors.inc_by(produce_errors as u64);
    }
}
