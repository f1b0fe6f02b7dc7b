//! A backlog larger than the pending bound: librdkafka reads the two topics
//! at different paces, so without backpressure the side read first fills
//! its bound and its records are reported missing although their partners
//! are a little further along the other topic. With it, every record pairs
//! and nothing overflows. And when the other side really has nothing, the
//! bound holds: the extra records overflow as missing.
//!
//! Needs Kafka at `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`).

mod support;

use std::time::Duration;

use parallax_conformance::events::event;
use parallax_conformance::metrics::value;
use parallax_kafka_diff::Start;
use support::*;

const RECORDS: usize = 3_000;
const MAX_PENDING: usize = 100;
const IDLE: Duration = Duration::from_secs(3);

fn records(prefix: &str) -> Vec<Published> {
    (0..RECORDS)
        .map(|i| {
            Published::of(
                &event(&format!("{prefix}-{i}"))
                    .tenant(&format!("tenant-{}", i % 13))
                    .attribute("region", "eu")
                    .build(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_far_larger_than_the_bound_pairs_without_overflow() {
    let (primary_topic, shadow_topic) = topic_pair("kd-backlog");
    let records = records("b");
    produce(&primary_topic, &records).await;
    produce(&shadow_topic, &records).await;

    let mut config = config(&primary_topic, &shadow_topic, Start::Beginning);
    config.max_pending = MAX_PENDING;
    let (comparison, admin) = connect(config).await.until_idle(IDLE).await;
    assert_eq!(comparison.overflowed, 0, "{comparison}");
    assert_eq!(comparison.matched, RECORDS as u64, "{comparison}");
    assert!(!comparison.has_differences(), "{comparison}");

    // Read to the end: no lag left on either topic.
    let metrics = admin.get("/metrics").await;
    for (side, topic) in [("primary", &primary_topic), ("shadow", &shadow_topic)] {
        assert_eq!(
            value(
                &metrics,
                "parallax_kafka_consumer_lag_records",
                &[("side", side), ("topic", topic)]
            ),
            Some(0.0),
            "{side}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_on_the_other_side_the_bound_holds_and_overflow_counts_as_missing() {
    let (primary_topic, shadow_topic) = topic_pair("kd-overflow");
    produce(&primary_topic, &records("o")).await;

    let mut config = config(&primary_topic, &shadow_topic, Start::Beginning);
    config.max_pending = MAX_PENDING;
    let (comparison, admin) = connect(config).await.until_idle(IDLE).await;
    assert_eq!(comparison.missing_in_shadow, RECORDS as u64, "{comparison}");
    // All but the last bound's worth were evicted before the run ended.
    assert_eq!(
        comparison.overflowed,
        (RECORDS - MAX_PENDING) as u64,
        "{comparison}"
    );
    let metrics = admin.get("/metrics").await;
    assert_eq!(
        value(
            &metrics,
            "parallax_kafka_diff_overflow_total",
            &[("side", "primary")]
        ),
        Some((RECORDS - MAX_PENDING) as f64),
        "{metrics}"
    );
}
