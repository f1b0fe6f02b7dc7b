//! Publishing accepted events to Kafka.
//!
//! A batch's records are handed to the producer together and their
//! acknowledgements awaited together: awaiting each send in turn (the
//! article's loop) would put one round trip per event on the request path
//! and serialise the producer. The handler depends on the [`Publisher`]
//! trait, so its HTTP behaviour is tested without a broker.

use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::proto::Event;
use crate::wire;

/// One Kafka record: key = tenant, value = the event, header `event-id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub key: &'a str,
    pub event_id: &'a str,
    pub value: Vec<u8>,
}

impl<'a> Record<'a> {
    /// The record for `event`, its value encoded deterministically, byte for
    /// byte as Go's `proto.MarshalOptions{Deterministic: true}` writes it
    /// ([`wire::encode_event`]).
    pub fn for_event(event: &'a Event) -> Self {
        Self {
            key: &event.tenant_id,
            event_id: &event.event_id,
            value: wire::encode_event(event),
        }
    }
}

/// Some records of a batch were not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} of {total} records were not acknowledged by Kafka")]
pub struct PublishError {
    pub failed: usize,
    pub total: usize,
}

/// Where accepted events go.
pub trait Publisher: Send + Sync + 'static {
    /// Resolves once every record is acknowledged, or with how many failed.
    fn publish<'a>(&'a self, records: &'a [Record<'a>]) -> BoxFuture<'a, Result<(), PublishError>>;

    /// Whether the destination answers a metadata request right now.
    fn ready(&self) -> BoxFuture<'_, bool>;
}

/// The Kafka publisher: an idempotent `FutureProducer` on one topic.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl KafkaPublisher {
    /// `timeout` bounds how long a batch waits for its acknowledgements; the
    /// producer's `message.timeout.ms` should be set to the same value.
    pub fn new(producer: FutureProducer, topic: String, timeout: Duration) -> Self {
        Self {
            producer,
            topic,
            timeout,
        }
    }

    /// Waits for every queued record to be delivered or to fail.
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("producer flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "producer flush did not complete"),
            Err(e) => tracing::warn!(error = %e, "producer flush task failed"),
        }
    }
}

impl Publisher for KafkaPublisher {
    fn publish<'a>(&'a self, records: &'a [Record<'a>]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let sends = records.iter().map(|r| {
                let record = FutureRecord::to(&self.topic)
                    .key(r.key)
                    .payload(&r.value)
                    .headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                        key: "event-id",
                        value: Some(r.event_id),
                    }));
                self.producer.send(record, Timeout::After(self.timeout))
            });
            // librdkafka fails each record after `message.timeout.ms`; the
            // outer deadline is a backstop in case a future never resolves.
            let deadline = self.timeout + Duration::from_secs(1);
            let failed = match tokio::time::timeout(deadline, join_all(sends)).await {
                Ok(results) => {
                    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
                    if let Some((first, _)) = failed.first() {
                        tracing::warn!(error = %first, failed = failed.len(), "Kafka did not acknowledge records");
                    }
                    failed.len()
                }
                Err(_) => {
                    tracing::warn!(records = records.len(), "Kafka acknowledgements timed out");
                    records.len()
                }
            };
            if failed == 0 {
                Ok(())
            } else {
                Err(PublishError {
                    failed,
                    total: records.len(),
                })
            }
        })
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        let producer = self.producer.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok()
            })
            .await
            .unwrap_or(false)
        })
    }
}
