//! The differ's Prometheus metrics.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `parallax_kafka_records_total` | counter | `result` ∈ {`matched`,`missing_in_shadow`,`extra_in_shadow`,`different`} |
//! | `parallax_kafka_differences_total` | counter | `part` ∈ {`partition`,`key`,`header`,`value`} |
//! | `parallax_kafka_consumed_records_total` | counter | `side` ∈ {`primary`,`shadow`} |
//! | `parallax_kafka_records_without_event_id_total` | counter | `side` |
//! | `parallax_kafka_diff_pending_records` | gauge | `side` |
//! | `parallax_kafka_diff_overflow_total` | counter | `side` |
//! | `parallax_kafka_consumer_lag_records` | gauge | `side`, `topic` |
//! | `parallax_kafka_diff_paused` | gauge | `side`: 1 while the side waits for the other (backpressure) |
//! | `process_*` | the differ's own process metrics | — |
//!
//! `matched` and `different` count pairs; `missing_in_shadow` and
//! `extra_in_shadow` count records left without a partner, overflowed ones
//! included. Lag is the high watermark minus the differ's position, summed
//! over the topic's partitions, refreshed every second. Every series exists
//! (at zero) from the first scrape; labels are fixed sets and the two
//! configured topic names.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::compare;
use crate::record::Side;
use crate::report::Class;

/// Parts of a record a difference can be in.
const PARTS: [&str; 4] = ["partition", "key", "header", "value"];

/// Cheap to clone: the metric handles share their values.
#[derive(Clone)]
pub struct DiffMetrics {
    registry: Registry,
    records: IntCounterVec,
    differences: IntCounterVec,
    consumed: IntCounterVec,
    without_event_id: IntCounterVec,
    pending: IntGaugeVec,
    overflow: IntCounterVec,
    lag: IntGaugeVec,
    paused: IntGaugeVec,
    topics: [String; 2],
}

impl DiffMetrics {
    pub fn new(primary_topic: &str, shadow_topic: &str) -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        let metrics = DiffMetrics {
            records: counter(
                "parallax_kafka_records_total",
                "Events compared across the twins' topics, by result (pairs for matched/different, records for missing/extra).",
                &["result"],
            ),
            differences: counter(
                "parallax_kafka_differences_total",
                "Differences found in paired records, by the part of the record.",
                &["part"],
            ),
            consumed: counter(
                "parallax_kafka_consumed_records_total",
                "Records consumed, by side.",
                &["side"],
            ),
            without_event_id: counter(
                "parallax_kafka_records_without_event_id_total",
                "Records without an event-id header (not joinable), by side.",
                &["side"],
            ),
            pending: gauge(
                "parallax_kafka_diff_pending_records",
                "Records waiting in the join window for their partner, by side.",
                &["side"],
            ),
            overflow: counter(
                "parallax_kafka_diff_overflow_total",
                "Pending records evicted because the side's bound was reached (reported unpaired), by side.",
                &["side"],
            ),
            lag: gauge(
                "parallax_kafka_consumer_lag_records",
                "High watermark minus the differ's position, summed over the topic's partitions.",
                &["side", "topic"],
            ),
            paused: gauge(
                "parallax_kafka_diff_paused",
                "1 while the side's partitions are paused for the other side to catch up.",
                &["side"],
            ),
            registry,
            topics: [primary_topic.to_owned(), shadow_topic.to_owned()],
        };
        for class in Class::ALL {
            metrics.records.with_label_values(&[class.as_str()]);
        }
        for part in PARTS {
            metrics.differences.with_label_values(&[part]);
        }
        for side in Side::ALL {
            let s = side.as_str();
            metrics.consumed.with_label_values(&[s]);
            metrics.without_event_id.with_label_values(&[s]);
            metrics.pending.with_label_values(&[s]);
            metrics.overflow.with_label_values(&[s]);
            metrics.paused.with_label_values(&[s]);
            metrics
                .lag
                .with_label_values(&[s, &metrics.topics[side as usize]]);
        }
        metrics
    }

    pub fn record(&self, class: Class) {
        self.records.with_label_values(&[class.as_str()]).inc();
    }

    pub fn difference(&self, path: &str) {
        self.differences
            .with_label_values(&[compare::part(path)])
            .inc();
    }

    pub fn consumed(&self, side: Side) {
        self.consumed.with_label_values(&[side.as_str()]).inc();
    }

    pub fn without_event_id(&self, side: Side) {
        self.without_event_id
            .with_label_values(&[side.as_str()])
            .inc();
    }

    pub fn overflow(&self, side: Side) {
        self.overflow.with_label_values(&[side.as_str()]).inc();
    }

    pub fn set_pending(&self, side: Side, n: usize) {
        self.pending
            .with_label_values(&[side.as_str()])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_lag(&self, side: Side, records: i64) {
        self.lag
            .with_label_values(&[side.as_str(), &self.topics[side as usize]])
            .set(records);
    }

    pub fn set_paused(&self, side: Side, paused: bool) {
        self.paused
            .with_label_values(&[side.as_str()])
            .set(i64::from(paused));
    }

    /// The join's counters as JSON, for other tools' pages (the proxy's
    /// explorer shows it): records by result, differences by part, and per
    /// side consumed, pending, lag and paused.
    pub fn summary(&self) -> serde_json::Value {
        let records: serde_json::Map<String, serde_json::Value> = Class::ALL
            .iter()
            .map(|c| {
                let n = self.records.with_label_values(&[c.as_str()]).get();
                (c.as_str().to_owned(), n.into())
            })
            .collect();
        let differences: serde_json::Map<String, serde_json::Value> = PARTS
            .iter()
            .map(|p| {
                (
                    (*p).to_owned(),
                    self.differences.with_label_values(&[p]).get().into(),
                )
            })
            .collect();
        let sides: serde_json::Map<String, serde_json::Value> = Side::ALL
            .iter()
            .map(|&side| {
                let s = side.as_str();
                (
                    s.to_owned(),
                    serde_json::json!({
                        "topic": self.topics[side as usize],
                        "consumed": self.consumed.with_label_values(&[s]).get(),
                        "without_event_id": self.without_event_id.with_label_values(&[s]).get(),
                        "pending": self.pending.with_label_values(&[s]).get(),
                        "overflow": self.overflow.with_label_values(&[s]).get(),
                        "lag": self.lag.with_label_values(&[s, &self.topics[side as usize]]).get(),
                        "paused": self.paused.with_label_values(&[s]).get() == 1,
                    }),
                )
            })
            .collect();
        serde_json::json!({ "records": records, "differences": differences, "sides": sides })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_from_the_first_scrape() {
        let text = DiffMetrics::new("events", "events.shadow").render();
        for class in Class::ALL {
            let series = format!(
                "parallax_kafka_records_total{{result=\"{}\"}} 0",
                class.as_str()
            );
            assert!(text.contains(&series), "{series} in\n{text}");
        }
        assert!(
            text.contains(
                r#"parallax_kafka_consumer_lag_records{side="shadow",topic="events.shadow"} 0"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"parallax_kafka_diff_pending_records{side="primary"} 0"#));
    }
}
