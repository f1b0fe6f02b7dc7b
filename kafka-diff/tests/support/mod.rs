//! Test helpers: topic pairs on the suite's Kafka, a producer that writes
//! records exactly as a twin would (or deliberately not), and the differ
//! with its admin listener.
//!
//! Kafka comes from `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`);
//! every test uses topics of its own.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use parallax_conformance::kafka::{self, murmur2_partition, PARTITIONS};
use parallax_conformance::pb::Event;
use parallax_kafka_diff::{Differ, DifferConfig, KafkaComparison, Start, Stop};
use prost::Message;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::oneshot;

/// A fresh `(primary, shadow)` topic pair, `<t>` and `<t>.shadow`, created
/// with [`PARTITIONS`] partitions each.
pub fn topic_pair(label: &str) -> (String, String) {
    let primary = kafka::unique_topic(label);
    let shadow = format!("{primary}.shadow");
    kafka::create_topic(&primary);
    kafka::create_topic(&shadow);
    (primary, shadow)
}

/// One record as an ingest twin publishes it: key = tenant, one `event-id`
/// header, the event's protobuf encoding, partition = murmur2 of the key.
#[derive(Clone, Debug)]
pub struct Published {
    pub key: String,
    pub partition: i32,
    pub headers: Vec<(String, String)>,
    pub value: Vec<u8>,
}

impl Published {
    pub fn of(event: &Event) -> Self {
        Published {
            key: event.tenant_id.clone(),
            partition: murmur2_partition(event.tenant_id.as_bytes(), PARTITIONS),
            headers: vec![("event-id".into(), event.event_id.clone())],
            value: event.encode_to_vec(),
        }
    }
}

/// Produces `records` to `topic`, in order, and waits for every
/// acknowledgement.
pub async fn produce(topic: &str, records: &[Published]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("create Kafka producer");
    let mut acks = Vec::with_capacity(records.len());
    for r in records {
        let headers = r.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        let record = FutureRecord::to(topic)
            .key(r.key.as_bytes())
            .payload(&r.value)
            .partition(r.partition)
            .headers(headers);
        let ack = producer
            .send_result(record)
            .unwrap_or_else(|(e, _)| panic!("queue a record for {topic}: {e}"));
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .expect("the producer delivers")
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// The differ's defaults for a topic pair on the suite's Kafka.
pub fn config(primary: &str, shadow: &str, start: Start) -> DifferConfig {
    DifferConfig {
        start,
        ..DifferConfig::new(&kafka::brokers(), primary, shadow)
    }
}

/// A connected differ with its admin listener on a port of its own; the
/// listener stays up after the run so a test can read the final metrics.
pub struct Running {
    pub differ: Differ,
    pub admin: SocketAddr,
    _stop_admin: oneshot::Sender<()>,
}

pub async fn connect(config: DifferConfig) -> Running {
    let differ = Differ::connect(config).await.expect("the differ connects");
    let (stop, stopped) = oneshot::channel::<()>();
    let (admin, server) = parallax_kafka_diff::admin::bind(
        "127.0.0.1:0".parse().unwrap(),
        differ.metrics(),
        differ.samples(),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .expect("the admin listener binds");
    tokio::spawn(server);
    Running {
        differ,
        admin,
        _stop_admin: stop,
    }
}

impl Running {
    /// Runs until `idle` passes without a record; returns the comparison
    /// and the admin address (still serving).
    pub async fn until_idle(self, idle: Duration) -> (KafkaComparison, Admin) {
        let comparison = self
            .differ
            .run(Stop::Idle(idle), std::future::pending())
            .await;
        (
            comparison,
            Admin {
                addr: self.admin,
                _stop: self._stop_admin,
            },
        )
    }
}

/// The admin listener after a run.
pub struct Admin {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Admin {
    pub async fn get(&self, path: &str) -> String {
        get(self.addr, path).await
    }
}

/// `GET path` on `addr`, asserting a 200; the body as text.
pub async fn get(addr: SocketAddr, path: &str) -> String {
    let request = parallax_conformance::Request::get(path);
    let response =
        tokio::task::spawn_blocking(move || parallax_conformance::http::send(addr, &request))
            .await
            .unwrap();
    assert_eq!(response.status, 200, "GET {path}");
    String::from_utf8(response.body).expect("UTF-8 body")
}
