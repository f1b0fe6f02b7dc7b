//! Publishing accepted events to Kafka.
//!
//! A batch's records are handed to the producer together and their
//! acknowledgements awaited together: awaiting each send in turn (the
//! article's loop) would put one round trip per event on the request path
//! and serialise the producer. The handler depends on the [`Publisher`]
//! trait, so its HTTP behaviour is tested without a broker.
//!
//! # One notification per batch
//!
//! rdkafka's `FutureProducer` gives every message its own future: a boxed
//! `oneshot` sender as the delivery opaque, a waker per message, and a
//! `join_all` over 500 futures per request, with each message's memory
//! allocated on a tokio worker and freed on librdkafka's thread. At 200,000
//! events/s that machinery was a large share of the service's CPU. Here
//! every record of a batch carries the same [`Arc`]'d [`Pending`] (an atomic
//! reference count, no allocation); librdkafka's delivery reports, run on
//! the [`ThreadedProducer`]'s polling thread, count it down, and the report
//! that brings it to zero completes the batch's single `oneshot`. The
//! request task sleeps once per batch and wakes once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::wire::BatchView;

/// One Kafka record: key = tenant, value = the event (Go's deterministic
/// encoding), header `event-id`. Everything is borrowed: from the request
/// body, or from the buffer [`records`] encodes into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a> {
    pub key: &'a str,
    pub event_id: &'a str,
    pub value: &'a [u8],
}

/// The records of the `accepted` events of `batch`, in order. An event whose
/// bytes in the body are already its record value is published from the
/// body; any other is encoded into `scratch`, one buffer for the batch.
pub fn records<'a>(
    batch: &BatchView<'a>,
    accepted: &[usize],
    scratch: &'a mut Vec<u8>,
) -> Vec<Record<'a>> {
    // Encode first, then borrow: `scratch` may grow while encoding.
    let mut spans = Vec::with_capacity(accepted.len());
    for &i in accepted {
        let event = &batch.events[i];
        spans.push(match event.canonical() {
            Some(_) => None,
            None => {
                let start = scratch.len();
                batch.encode_into(event, scratch);
                Some(start..scratch.len())
            }
        });
    }
    let scratch: &'a [u8] = scratch;
    accepted
        .iter()
        .zip(spans)
        .map(|(&i, span)| {
            let event = &batch.events[i];
            Record {
                key: event.tenant_id,
                event_id: event.event_id,
                value: match span {
                    Some(span) => &scratch[span],
                    None => event.canonical().unwrap_or_default(),
                },
            }
        })
        .collect()
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

/// How long a record waits before it is offered again when librdkafka's
/// queue is full (`queue.buffering.max.messages`), until the batch's
/// deadline: the back-off `FutureProducer::send` uses.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// The delivery state of one batch, shared by all its records.
struct Pending {
    /// Records whose delivery report has not come yet.
    outstanding: AtomicUsize,
    /// Records that failed (reported or refused by `send`).
    failed: AtomicUsize,
    /// Completed by whoever settles the last record. A `Mutex` because the
    /// sender is taken once, by one thread: never contended.
    done: Mutex<Option<oneshot::Sender<()>>>,
    /// The first failure, for the log line.
    first_error: Mutex<Option<KafkaError>>,
}

impl Pending {
    fn new(records: usize, done: oneshot::Sender<()>) -> Self {
        Self {
            outstanding: AtomicUsize::new(records),
            failed: AtomicUsize::new(0),
            done: Mutex::new(Some(done)),
            first_error: Mutex::new(None),
        }
    }

    /// One record's outcome.
    fn settle(&self, outcome: Result<(), &KafkaError>) {
        if let Err(e) = outcome {
            if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                *self.first_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            }
        }
        // AcqRel: whoever takes the count to zero sees every other record's
        // `failed` increment, and the oneshot hands that on to the waiter.
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            let done = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }
}

/// librdkafka's delivery reports, one per record, settle its batch.
struct BatchContext;

impl ClientContext for BatchContext {}

impl ProducerContext for BatchContext {
    type DeliveryOpaque = Arc<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Arc<Pending>) {
        pending.settle(result.as_ref().map(drop).map_err(|(e, _)| e));
    }
}

/// The Kafka publisher: an idempotent producer on one topic, with one
/// delivery notification per batch (see the module documentation).
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: ThreadedProducer<BatchContext>,
    topic: String,
    timeout: Duration,
}

impl KafkaPublisher {
    /// `timeout` bounds how long a batch waits for its acknowledgements;
    /// `config`'s `message.timeout.ms` should be the same value.
    pub fn new(config: &ClientConfig, topic: String, timeout: Duration) -> KafkaResult<Self> {
        Ok(Self {
            producer: config.create_with_context(BatchContext)?,
            topic,
            timeout,
        })
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

    /// Hands one record to librdkafka, waiting out a full queue until
    /// `deadline`; a record it refuses is settled as failed.
    async fn send(&self, record: &Record<'_>, pending: &Arc<Pending>, deadline: Instant) {
        let mut message = BaseRecord::with_opaque_to(&self.topic, Arc::clone(pending))
            .key(record.key)
            .payload(record.value)
            .headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                key: "event-id",
                value: Some(record.event_id),
            }));
        loop {
            match self.producer.send(message) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() + QUEUE_FULL_BACKOFF < deadline =>
                {
                    message = back;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, back)) => {
                    pending.settle(Err(&e));
                    drop(back);
                    return;
                }
            }
        }
    }
}

impl Publisher for KafkaPublisher {
    fn publish<'a>(&'a self, records: &'a [Record<'a>]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let (done, all_settled) = oneshot::channel();
            let pending = Arc::new(Pending::new(records.len(), done));
            // librdkafka fails each record after `message.timeout.ms`; the
            // extra second is a backstop in case a report never comes.
            let deadline = Instant::now() + self.timeout + Duration::from_secs(1);
            for record in records {
                self.send(record, &pending, deadline).await;
            }
            let failed = match tokio::time::timeout_at(deadline, all_settled).await {
                Ok(Ok(())) => pending.failed.load(Ordering::Relaxed),
                // Timed out, or the sender was dropped unsent (impossible
                // while `pending` is alive): what is not settled failed.
                _ => {
                    let unsettled = pending.outstanding.load(Ordering::Acquire);
                    tracing::warn!(
                        records = records.len(),
                        unsettled,
                        "Kafka acknowledgements timed out"
                    );
                    unsettled + pending.failed.load(Ordering::Relaxed)
                }
            };
            if failed == 0 {
                return Ok(());
            }
            let first = pending
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(first) = first {
                tracing::warn!(error = %first, failed, "Kafka did not acknowledge records");
            }
            Err(PublishError {
                failed,
                total: records.len(),
            })
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
