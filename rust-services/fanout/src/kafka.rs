//! The Kafka path: notifications published to one topic and consumed back
//! by every process, so several processes serve one audience.
//!
//! - [`KafkaPublisher`]: `POST /v1/notify` produces the built frame (key =
//!   the notification's topic, so one topic stays on one partition and in
//!   order) and answers 202 only once Kafka acknowledged it, within
//!   [`PUBLISH_TIMEOUT`]. Producer settings are the shared ones
//!   (idempotent, `acks=all`, murmur2).
//! - [`Consumer`]: a consumer **outside any group** assigned every partition
//!   of the topic, each from its high watermark read at assignment time
//!   (the end, resolved before readiness rather than lazily as
//!   `Offset::End` would be: a notify accepted after `/readyz` turned 200
//!   is always consumed). Every record's value is broadcast to the local
//!   subscribers of the topic named by its key. Partitions added later are
//!   picked up from their beginning by a periodic metadata check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parallax_common::kafka::ProducerSettings;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::topics::is_valid_name;

/// How long a notify waits for Kafka's acknowledgement before 503.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Producer linger: none, as the Go twin — a notify waits for its own
/// acknowledgement, so batching would only add latency.
pub const LINGER: Duration = Duration::ZERO;
/// How often the consumer looks for partitions added to the topic.
const PARTITION_CHECK: Duration = Duration::from_secs(30);
/// Timeout of one metadata or watermark request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Kafka did not acknowledge a notification in time.
#[derive(Debug, thiserror::Error)]
#[error("Kafka did not acknowledge the notification: {0}")]
pub struct Unavailable(String);

/// Publishes notification frames.
pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl KafkaPublisher {
    pub fn new(brokers: &str, topic: &str, timeout: Duration) -> Result<Self, KafkaError> {
        let producer = ProducerSettings {
            brokers: brokers.to_owned(),
            linger: LINGER,
            delivery_timeout: timeout,
        }
        .client_config()
        .create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            timeout,
        })
    }

    /// Produces `frame` under key `topic` and waits for the acknowledgement.
    pub async fn publish(&self, topic: &str, frame: &Bytes) -> Result<(), Unavailable> {
        let record = FutureRecord::to(&self.topic).key(topic).payload(&frame[..]);
        let delivery = self.producer.send(record, Timeout::After(self.timeout));
        match tokio::time::timeout(self.timeout, delivery).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable("timed out".to_owned())),
        }
    }

    /// Waits (at most `timeout`) for records still in flight.
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!("Kafka producer did not flush within {timeout:?}");
        }
    }
}

/// The consuming task; stopped when dropped.
pub struct Consumer {
    ready: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Consumer {
    /// Creates the consumer and starts assigning and consuming in the
    /// background; [`Consumer::ready`] turns true once assigned.
    pub fn spawn(brokers: &str, topic: &str, hub: Arc<Hub>) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // No consumer group in Kafka's sense: partitions are assigned by
            // hand, never by a group rebalance, and nothing is committed, so
            // every process reads everything. librdkafka still wants a
            // `group.id` for its assign API; a unique one is never joined.
            .set(
                "group.id",
                format!("parallax-fanout-{}", crate::notify::random_id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A fresh cluster may not have the topic yet.
            .set("allow.auto.create.topics", "true")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let ready = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(consume(
            Arc::new(consumer),
            topic.to_owned(),
            hub,
            ready.clone(),
        ));
        Ok(Self { ready, task })
    }

    /// Shared flag: the consumer has its partitions.
    pub fn ready(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn consume(
    consumer: Arc<StreamConsumer>,
    topic: String,
    hub: Arc<Hub>,
    ready: Arc<AtomicBool>,
) {
    let mut assigned = loop {
        match assign(consumer.clone(), topic.clone(), Vec::new()).await {
            Ok(partitions) if !partitions.is_empty() => break partitions,
            Ok(_) => tracing::warn!(topic, "Kafka topic has no partitions yet; retrying"),
            Err(e) => tracing::warn!(topic, error = %e, "cannot assign Kafka partitions; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    ready.store(true, Ordering::Release);
    tracing::info!(
        topic,
        partitions = assigned.len(),
        "consuming Kafka notifications"
    );
    let mut check = tokio::time::interval(PARTITION_CHECK);
    check.tick().await;
    loop {
        tokio::select! {
            message = consumer.recv() => match message {
                Ok(message) => {
                    let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
                    match key {
                        Some(key) if is_valid_name(key) => {
                            let frame = Bytes::copy_from_slice(message.payload().unwrap_or_default());
                            hub.broadcast(key, &frame);
                        }
                        _ => tracing::debug!("skipping a Kafka record whose key is not a topic name"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = check.tick() => match assign(consumer.clone(), topic.clone(), assigned.clone()).await {
                Ok(added) if !added.is_empty() => {
                    tracing::info!(topic, added = added.len(), "consuming new Kafka partitions");
                    assigned.extend(added);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "Kafka partition check failed"),
            },
        }
    }
}

/// Assigns the topic's partitions not in `known`: at their high watermark
/// on the first call (`known` empty), from the beginning later (they are
/// new). Returns the partitions added.
async fn assign(
    consumer: Arc<StreamConsumer>,
    topic: String,
    known: Vec<i32>,
) -> Result<Vec<i32>, KafkaError> {
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(Vec::new());
        };
        if let Some(e) = found.error() {
            return Err(KafkaError::MetadataFetch(e.into()));
        }
        let first = known.is_empty();
        // Without a group only a full `assign` works (incremental assignment
        // needs a group), so the partitions already held are re-assigned at
        // the position the application has reached: nothing lost, nothing
        // repeated.
        let mut list = if first {
            TopicPartitionList::new()
        } else {
            consumer.position()?
        };
        let mut added = Vec::new();
        for partition in found.partitions().iter().map(|p| p.id()) {
            if known.contains(&partition) {
                continue;
            }
            let offset = if first {
                let (_, high) = consumer.fetch_watermarks(&topic, partition, METADATA_TIMEOUT)?;
                Offset::Offset(high)
            } else {
                Offset::Beginning
            };
            list.add_partition_offset(&topic, partition, offset)?;
            added.push(partition);
        }
        if !added.is_empty() {
            consumer.assign(&list)?;
        }
        Ok(added)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}
