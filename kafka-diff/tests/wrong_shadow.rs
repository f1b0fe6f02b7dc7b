//! A deliberately wrong shadow, written straight into its topic, is caught
//! and every fault lands in its class: a dropped attribute is `different`
//! at `/attributes/region`, a record the shadow never wrote is
//! `missing_in_shadow`, one only the shadow wrote is `extra_in_shadow`, and
//! a record under another key (so on another partition) is `different` at
//! `key` and `partition`. Also: the exit codes of the CLI entry.
//!
//! Needs Kafka at `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`) and
//! `promtool`.

mod support;

use std::time::Duration;

use parallax_conformance::events::event;
use parallax_conformance::kafka::{murmur2_partition, PARTITIONS};
use parallax_conformance::metrics::{promtool_check, value};
use parallax_kafka_diff::{cli, Class, Start};
use serde_json::Value;
use support::*;

const IDLE: Duration = Duration::from_secs(3);

/// A key whose partition differs from `key`'s.
fn key_on_another_partition(key: &str) -> String {
    let home = murmur2_partition(key.as_bytes(), PARTITIONS);
    (0..)
        .map(|i| format!("tenant-{i}"))
        .find(|k| murmur2_partition(k.as_bytes(), PARTITIONS) != home)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_shadow_is_caught_and_each_fault_classified() {
    let (primary_topic, shadow_topic) = topic_pair("kd-wrong");
    let events: Vec<_> = (1..=5)
        .map(|i| {
            event(&format!("e-{i}"))
                .attribute("region", "eu")
                .attribute("plan", "pro")
                .payload(vec![i as u8; 16])
                .build()
        })
        .collect();
    let primary: Vec<Published> = events.iter().map(Published::of).collect();

    let mut dropped = events[1].clone();
    dropped.attributes.remove("region");
    let mut moved = Published::of(&events[3]);
    moved.key = key_on_another_partition(&moved.key);
    moved.partition = murmur2_partition(moved.key.as_bytes(), PARTITIONS);
    let extra = Published::of(&event("e-6").build());
    let shadow = vec![
        primary[0].clone(),
        Published::of(&dropped),
        // e-3 never written
        moved,
        primary[4].clone(),
        extra,
    ];
    produce(&primary_topic, &primary).await;
    produce(&shadow_topic, &shadow).await;

    let samples_file = std::env::temp_dir().join(format!("{primary_topic}.jsonl"));
    let mut config = config(&primary_topic, &shadow_topic, Start::Beginning);
    config.samples_file = Some(samples_file.clone());
    let (comparison, admin) = connect(config).await.until_idle(IDLE).await;

    let counts: Vec<(Class, u64)> = Class::ALL
        .iter()
        .map(|&c| (c, comparison.count(c)))
        .collect();
    assert_eq!(
        counts,
        [
            (Class::Matched, 2),
            (Class::MissingInShadow, 1),
            (Class::ExtraInShadow, 1),
            (Class::Different, 2),
        ],
        "{comparison}"
    );
    assert!(comparison.has_differences());
    assert_eq!(cli::exit_code(&Ok(comparison.clone())), 1);

    let by_id = |id: &str| {
        comparison
            .samples
            .iter()
            .find(|s| s.event_id == id)
            .unwrap_or_else(|| panic!("no sample for {id}:\n{comparison}"))
    };
    let paths = |id: &str| -> Vec<String> {
        by_id(id)
            .differences
            .iter()
            .map(|d| d.path.clone())
            .collect()
    };
    assert_eq!(paths("e-2"), ["/attributes/region"]);
    assert_eq!(by_id("e-2").result, Class::Different);
    assert_eq!(paths("e-4"), ["partition", "key"]);
    assert_eq!(by_id("e-3").result, Class::MissingInShadow);
    assert_eq!(by_id("e-6").result, Class::ExtraInShadow);
    // The summary names the field.
    assert!(
        comparison.to_string().contains("e-2: /attributes/region"),
        "{comparison}"
    );

    // Metrics: the same counts, lint-clean.
    let metrics = admin.get("/metrics").await;
    promtool_check(&metrics).unwrap();
    for (class, n) in counts {
        assert_eq!(
            value(
                &metrics,
                "parallax_kafka_records_total",
                &[("result", class.as_str())]
            ),
            Some(n as f64),
            "{class:?}:\n{metrics}"
        );
    }
    for (part, n) in [("partition", 1.0), ("key", 1.0), ("value", 1.0)] {
        assert_eq!(
            value(
                &metrics,
                "parallax_kafka_differences_total",
                &[("part", part)]
            ),
            Some(n),
            "{part}:\n{metrics}"
        );
    }
    for (side, n) in [("primary", 5.0), ("shadow", 5.0)] {
        let consumed = value(
            &metrics,
            "parallax_kafka_consumed_records_total",
            &[("side", side)],
        );
        assert_eq!(consumed, Some(n), "{side}:\n{metrics}");
        let pending = value(
            &metrics,
            "parallax_kafka_diff_pending_records",
            &[("side", side)],
        );
        assert_eq!(pending, Some(0.0), "{side}:\n{metrics}");
    }

    // Samples: over the admin listener and in the file, one per fault.
    let listed: Value = serde_json::from_str(&admin.get("/admin/kafka-mismatches").await).unwrap();
    assert_eq!(listed["samples"].as_array().unwrap().len(), 4, "{listed}");
    let file = std::fs::read_to_string(&samples_file).unwrap();
    let _ = std::fs::remove_file(&samples_file);
    let lines: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{file}");
    let e2 = lines.iter().find(|l| l["event_id"] == "e-2").unwrap();
    assert_eq!(e2["differences"][0]["path"], "/attributes/region");
    assert_eq!(e2["primary"]["value"]["attributes"]["region"], "eu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_topics_have_no_differences() {
    let (primary_topic, shadow_topic) = topic_pair("kd-same");
    let records: Vec<Published> = (0..50)
        .map(|i| {
            Published::of(
                &event(&format!("s-{i}"))
                    .tenant(&format!("tenant-{}", i % 7))
                    .build(),
            )
        })
        .collect();
    // The shadow writes the same records in another order.
    let mut reversed = records.clone();
    reversed.reverse();
    produce(&primary_topic, &records).await;
    produce(&shadow_topic, &reversed).await;

    let config = config(&primary_topic, &shadow_topic, Start::Beginning);
    let (comparison, _admin) = connect(config).await.until_idle(IDLE).await;
    assert_eq!(comparison.matched, 50, "{comparison}");
    assert!(!comparison.has_differences(), "{comparison}");
    assert_eq!(cli::exit_code(&Ok(comparison)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_now_sees_only_records_produced_after_connecting() {
    let (primary_topic, shadow_topic) = topic_pair("kd-now");
    let old = Published::of(&event("old").build());
    produce(&primary_topic, &[old]).await;

    let running = connect(config(&primary_topic, &shadow_topic, Start::Now)).await;
    let new = Published::of(&event("new").build());
    produce(&primary_topic, std::slice::from_ref(&new)).await;
    produce(&shadow_topic, &[new]).await;
    let (comparison, _admin) = running.until_idle(IDLE).await;
    assert_eq!(comparison.matched, 1, "{comparison}");
    assert_eq!(comparison.consumed_primary, 1, "{comparison}");
    assert!(!comparison.has_differences(), "{comparison}");
}

fn args(argv: &[&str]) -> cli::Args {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: cli::Args,
    }
    Cli::parse_from(std::iter::once("kafka-diff").chain(argv.iter().copied())).args
}

#[test]
fn a_missing_topic_exits_2_naming_topic_and_broker() {
    let brokers = parallax_conformance::kafka::brokers();
    let (primary_topic, _) = topic_pair("kd-missing");
    let absent = format!("{primary_topic}.absent");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let a = args(&[
        "--brokers",
        &brokers,
        "--primary-topic",
        &primary_topic,
        "--shadow-topic",
        &absent,
        "--until-idle-secs",
        "1",
    ]);
    let result = runtime.block_on(cli::diff(&a, std::future::pending()));
    let message = result.as_ref().expect_err("an error").to_string();
    assert!(message.contains(&absent), "{message}");
    assert!(message.contains(&brokers), "{message}");
    assert_eq!(cli::exit_code(&result), 2);
}

#[test]
fn an_unreachable_broker_exits_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let a = args(&[
        "--brokers",
        &brokers,
        "--connect-timeout-secs",
        "2",
        "--until-idle-secs",
        "1",
    ]);
    assert_eq!(cli::run(&a), 2);
}
