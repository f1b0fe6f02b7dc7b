//! How fast the differ reads and joins, and what its memory does: fill a
//! topic pair once, then diff it from the beginning in a fresh process so
//! the peak RSS is the differ's alone.
//!
//! ```text
//! cargo run --release -p parallax-kafka-diff --example throughput -- produce 200000 [--no-shadow]
//! # prints: <primary> <shadow>
//! cargo run --release -p parallax-kafka-diff --example throughput -- diff <primary> <shadow> [max-pending]
//! ```
//! Kafka from `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`).

use std::time::{Duration, Instant};

use parallax_conformance::events::event;
use parallax_conformance::kafka::{self, murmur2_partition, PARTITIONS};
use parallax_kafka_diff::{Differ, DifferConfig, Start, Stop};
use prost::Message;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const IDLE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("produce") => {
            let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
            produce(n, !args.iter().any(|a| a == "--no-shadow")).await;
        }
        Some("diff") => {
            let max_pending = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100_000);
            diff(&args[1], &args[2], max_pending).await;
        }
        _ => eprintln!(
            "usage: throughput produce N [--no-shadow] | diff PRIMARY SHADOW [MAX_PENDING]"
        ),
    }
}

async fn produce(n: usize, shadow: bool) {
    let primary_topic = kafka::unique_topic("kd-throughput");
    let shadow_topic = format!("{primary_topic}.shadow");
    kafka::create_topic(&primary_topic);
    kafka::create_topic(&shadow_topic);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    let topics: &[&str] = if shadow {
        &[&primary_topic, &shadow_topic]
    } else {
        &[&primary_topic]
    };
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut acks = Vec::new();
        for &i in chunk {
            let e = event(&format!("t-{i}"))
                .tenant(&format!("tenant-{}", i % 50))
                .attribute("region", ["eu", "us", "ap"][i % 3])
                .payload(vec![b'x'; 100])
                .build();
            let value = e.encode_to_vec();
            let partition = murmur2_partition(e.tenant_id.as_bytes(), PARTITIONS);
            for topic in topics {
                let headers = OwnedHeaders::new().insert(Header {
                    key: "event-id",
                    value: Some(e.event_id.as_bytes()),
                });
                let record = FutureRecord::to(topic)
                    .key(e.tenant_id.as_bytes())
                    .payload(&value)
                    .partition(partition)
                    .headers(headers);
                acks.push(
                    producer
                        .send_result(record)
                        .map_err(|(e, _)| e)
                        .expect("queued"),
                );
            }
        }
        for ack in acks {
            ack.await.expect("delivered").expect("acknowledged");
        }
    }
    println!("{primary_topic} {shadow_topic}");
}

async fn diff(primary: &str, shadow: &str, max_pending: usize) {
    let config = DifferConfig {
        start: Start::Beginning,
        window: Duration::from_secs(300),
        max_pending,
        ..DifferConfig::new(&kafka::brokers(), primary, shadow)
    };
    let (before, _) = rss_kib();
    let started = Instant::now();
    let differ = Differ::connect(config).await.expect("connect");
    let comparison = differ.run(Stop::Idle(IDLE), std::future::pending()).await;
    let busy = started.elapsed().saturating_sub(IDLE);
    let consumed = comparison.consumed_primary + comparison.consumed_shadow;
    print!("{comparison}");
    println!(
        "consumed {consumed} records in {:.2} s ({:.0} records/s); RSS before {} KiB, peak {} KiB",
        busy.as_secs_f64(),
        consumed as f64 / busy.as_secs_f64(),
        before,
        rss_kib().1,
    );
}

/// This process's RSS now and at its peak, in KiB.
fn rss_kib() -> (u64, u64) {
    parallax_process::procstat::read(std::process::id())
        .map_or((0, 0), |u| (u.rss_bytes / 1024, u.peak_rss_bytes / 1024))
}
