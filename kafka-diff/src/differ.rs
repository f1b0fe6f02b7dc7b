//! The Kafka side: a consumer per topic reads every partition, the join
//! loop feeds the [`Joiner`], classifies what comes out and keeps the
//! counts, metrics and samples.
//!
//! # Why manual assignment, not a consumer group
//! The join needs both topics whole in one process: a group would split the
//! partitions between differ instances, and a record the shadow put on the
//! wrong partition (exactly what the diff must catch) would land in another
//! instance and be reported missing there and extra here. So the differ
//! assigns itself every partition of both topics, at offsets it resolves
//! itself at [`Differ::connect`], and never commits: a run never disturbs
//! another and always starts where it was told. (librdkafka still wants a
//! `group.id`; it is only a name here.)
//!
//! # Start and end
//! `Start::Beginning` reads from each partition's low watermark,
//! `Start::Now` from its high watermark as read during `connect` — so every
//! record produced after `connect` returns is seen.
//!
//! # Backpressure
//! Over a backlog one topic can be read far ahead of the other; the side
//! that is ahead is held back while the other catches up
//! ([`flow`](crate::flow)). Holding back is simply not polling that side's
//! consumer — its read-ahead stops at `queued.max.messages.kbytes` — which
//! is why each topic has a consumer of its own: librdkafka's partition
//! pause/resume on one shared consumer left `rd_kafka_destroy` waiting
//! forever in our tests.
//!
//! # End
//! When the run ends
//! (idle, duration, or the shutdown future) every record still pending is
//! reported unpaired: stop after the traffic has settled (`Stop::Idle`).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, MissedTickBehavior};

use crate::compare::{compare, INGEST_EVENT_MESSAGE};
use crate::error::Error;
use crate::flow::{Change, Gate};
use crate::join::{Joined, Joiner, Unpaired};
use crate::metrics::DiffMetrics;
use crate::record::{JoinKey, Record, Side};
use crate::report::{Class, KafkaComparison};
use crate::samples::{RecordView, Sample, SampleFile, SampleRing};

/// How often pending records are checked for expiry (and the idle rule).
const TICK: Duration = Duration::from_millis(100);
/// How often consumer lag is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Where each partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// Every record the topics hold.
    Beginning,
    /// Only records produced after [`Differ::connect`].
    #[default]
    Now,
}

/// When a run ends (besides the shutdown future).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long without a record on either topic.
    Idle(Duration),
    /// After this long in all.
    After(Duration),
    /// Only when the shutdown future resolves.
    Never,
}

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct DifferConfig {
    /// Bootstrap brokers, `host:port[,host:port]`.
    pub brokers: String,
    /// The primary's (reference's) topic, e.g. `events`.
    pub primary_topic: String,
    /// The shadow's topic, e.g. `events.shadow`.
    pub shadow_topic: String,
    /// How long a record waits for its partner before it is reported.
    pub window: Duration,
    pub start: Start,
    /// Records that may wait per side; the oldest is evicted (and reported
    /// unpaired) beyond it.
    pub max_pending: usize,
    /// Samples kept in memory.
    pub max_samples: usize,
    /// Where every sample is appended as a JSON line.
    pub samples_file: Option<PathBuf>,
    /// The protobuf message of record values; `None` compares bytes.
    pub value_message: Option<String>,
    /// What pairs records. Default: the `event-id` header.
    pub join: JoinKey,
    /// How long metadata and offset requests may take at connect.
    pub connect_timeout: Duration,
}

impl DifferConfig {
    /// Defaults for the ingest twins' topics.
    pub fn new(brokers: &str, primary_topic: &str, shadow_topic: &str) -> Self {
        DifferConfig {
            brokers: brokers.to_owned(),
            primary_topic: primary_topic.to_owned(),
            shadow_topic: shadow_topic.to_owned(),
            window: Duration::from_secs(30),
            start: Start::Now,
            max_pending: 100_000,
            max_samples: 100,
            samples_file: None,
            value_message: Some(INGEST_EVENT_MESSAGE.to_owned()),
            join: JoinKey::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.primary_topic == self.shadow_topic {
            return bad("the primary and shadow topics must differ");
        }
        if self.primary_topic.is_empty() || self.shadow_topic.is_empty() {
            return bad("topic names must not be empty");
        }
        if self.window.is_zero() {
            return bad("the window must be longer than zero");
        }
        if self.max_pending == 0 {
            return bad("max-pending must be at least 1");
        }
        Ok(())
    }

    fn topic(&self, side: Side) -> &str {
        match side {
            Side::Primary => &self.primary_topic,
            Side::Shadow => &self.shadow_topic,
        }
    }
}

/// Next offset to read per partition, per side; shared with the lag task.
/// A `parking_lot` mutex: held for a map update or a copy, never across an
/// `.await`.
type Positions = Arc<Mutex<[BTreeMap<i32, i64>; 2]>>;

/// Consumer lag per side as last measured by the lag task; -1 until the
/// first measurement.
type Lags = Arc<[AtomicI64; 2]>;

/// A consumer assigned to both topics, ready to [`run`](Differ::run).
pub struct Differ {
    config: DifferConfig,
    /// One per side, indexed by [`Side`].
    consumers: [StreamConsumer; 2],
    /// A client for watermark queries: on a consumer's own connection they
    /// queue behind its fetches and time out under load.
    watermarks: Arc<BaseConsumer>,
    positions: Positions,
    metrics: DiffMetrics,
    samples: SampleRing,
    file: Option<SampleFile>,
}

impl Differ {
    /// Checks both topics exist, resolves start offsets and assigns every
    /// partition. Records produced after this returns are seen, whatever
    /// the [`Start`].
    pub async fn connect(config: DifferConfig) -> Result<Differ, Error> {
        config.validate()?;
        let file = match &config.samples_file {
            Some(path) => Some(SampleFile::open(path).map_err(|source| Error::SamplesFile {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let client = |config: &DifferConfig| {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &config.brokers)
                .set("group.id", "parallax-kafka-diff")
                .set("client.id", "parallax-kafka-diff")
                .set("enable.auto.commit", "false");
            c
        };
        let watermarks: BaseConsumer =
            client(&config).create().map_err(|source| Error::Client {
                brokers: config.brokers.clone(),
                source: Box::new(source),
            })?;
        let consumer = || -> Result<StreamConsumer, Error> {
            client(&config)
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "false")
                .set("allow.auto.create.topics", "false")
                // Read ahead at most 8 MiB per side (librdkafka's default is
                // 64 MiB): the differ's memory should be its pending
                // records, not a read-ahead.
                .set("queued.max.messages.kbytes", "8192")
                .create()
                .map_err(|source| Error::Client {
                    brokers: config.brokers.clone(),
                    source: Box::new(source),
                })
        };
        let consumers = [consumer()?, consumer()?];
        let watermarks = Arc::new(watermarks);
        let (c, cfg) = (Arc::clone(&watermarks), config.clone());
        // Metadata and watermark requests block: off the async workers.
        let positions = tokio::task::spawn_blocking(move || start_offsets(&c, &cfg))
            .await
            .expect("offset lookup does not panic")?;
        for side in Side::ALL {
            let mut assignment = TopicPartitionList::new();
            for (&partition, &offset) in &positions[side as usize] {
                assignment
                    .add_partition_offset(config.topic(side), partition, Offset::Offset(offset))
                    .map_err(|source| assign_error(&config, side, source))?;
            }
            consumers[side as usize]
                .assign(&assignment)
                .map_err(|source| assign_error(&config, side, source))?;
        }
        let (p, s) = (positions[0].len(), positions[1].len());
        if p != s {
            tracing::warn!(
                primary = %config.primary_topic, primary_partitions = p,
                shadow = %config.shadow_topic, shadow_partitions = s,
                "the topics have different partition counts: keyed records will differ by partition"
            );
        }
        let metrics = DiffMetrics::new(&config.primary_topic, &config.shadow_topic);
        let samples = SampleRing::new(config.max_samples);
        Ok(Differ {
            config,
            consumers,
            watermarks,
            positions: Arc::new(Mutex::new(positions)),
            metrics,
            samples,
            file,
        })
    }

    /// The metrics, live during [`run`](Differ::run) (for an admin listener).
    pub fn metrics(&self) -> DiffMetrics {
        self.metrics.clone()
    }

    /// The last samples, live during [`run`](Differ::run).
    pub fn samples(&self) -> SampleRing {
        self.samples.clone()
    }

    /// Consumes and compares until `stop` or `shutdown`, then reports every
    /// record still pending as unpaired and returns the comparison.
    pub async fn run(mut self, stop: Stop, shutdown: impl Future<Output = ()>) -> KafkaComparison {
        let lags: Lags = Arc::new([AtomicI64::new(-1), AtomicI64::new(-1)]);
        let lag = tokio::spawn(lag_task(
            Arc::clone(&self.watermarks),
            self.config.clone(),
            Arc::clone(&self.positions),
            Arc::clone(&lags),
            self.metrics.clone(),
        ));
        // Stops the lag task however this future ends (dropped included).
        let _lag = AbortOnDrop(lag);

        let mut joiner = Joiner::new(self.config.window, self.config.max_pending);
        let mut gate = Gate::new(self.config.max_pending);
        let mut out = Vec::new();
        let mut report = KafkaComparison {
            primary_topic: self.config.primary_topic.clone(),
            shadow_topic: self.config.shadow_topic.clone(),
            ..KafkaComparison::default()
        };
        let started = Instant::now();
        let mut last_record = started;
        let deadline = match stop {
            Stop::After(d) => Some(started + d),
            _ => None,
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            // Each branch owns a receive future borrowed from its consumer;
            // a held-back side is simply not polled.
            let [primary, shadow] = &self.consumers;
            let received = tokio::select! {
                m = primary.recv(), if !gate.is_paused(Side::Primary) => Some((Side::Primary, m.map(|m| Record::from_message(&m)))),
                m = shadow.recv(), if !gate.is_paused(Side::Shadow) => Some((Side::Shadow, m.map(|m| Record::from_message(&m)))),
                _ = tick.tick() => {
                    let now = Instant::now();
                    joiner.expire(now.into_std(), &mut out);
                    if matches!(stop, Stop::Idle(idle) if now - last_record >= idle)
                        || deadline.is_some_and(|d| now >= d)
                    {
                        break;
                    }
                    None
                }
                () = &mut shutdown => break,
            };
            match received {
                Some((side, Ok(record))) => {
                    let now = Instant::now();
                    last_record = now;
                    self.take(side, record, now, &mut joiner, &mut report, &mut out);
                }
                // librdkafka retries transport errors itself; they are worth
                // a line, not the end of the run.
                Some((side, Err(e))) => {
                    tracing::warn!(brokers = %self.config.brokers, topic = %self.config.topic(side), error = %e, "Kafka consumer error")
                }
                None => {}
            }
            for joined in out.drain(..) {
                self.settle(joined, &mut report);
            }
            let pending = Side::ALL.map(|side| joiner.pending(side));
            for side in Side::ALL {
                self.metrics.set_pending(side, pending[side as usize]);
            }
            let behind = Side::ALL.map(|side| lags[side as usize].load(Ordering::Relaxed) != 0);
            for change in gate.update(pending, behind) {
                self.apply(change);
            }
        }
        joiner.finish(&mut out);
        for joined in out.drain(..) {
            self.settle(joined, &mut report);
        }
        for side in Side::ALL {
            self.metrics.set_pending(side, 0);
        }
        report.samples = self.samples.snapshot();
        report
    }

    /// Records a hold or release of one side (the loop stops or resumes
    /// polling it).
    fn apply(&self, change: Change) {
        match change {
            Change::Pause(side) => self.metrics.set_paused(side, true),
            Change::Resume(side) => self.metrics.set_paused(side, false),
        }
    }

    /// One consumed message: counted, positioned, and into the join.
    fn take(
        &mut self,
        side: Side,
        record: Record,
        now: Instant,
        joiner: &mut Joiner,
        report: &mut KafkaComparison,
        out: &mut Vec<Joined>,
    ) {
        self.positions.lock()[side as usize].insert(record.partition, record.offset + 1);
        self.metrics.consumed(side);
        match side {
            Side::Primary => report.consumed_primary += 1,
            Side::Shadow => report.consumed_shadow += 1,
        }
        match record.join_key(&self.config.join, self.config.value_message.as_deref()) {
            Some(id) => joiner.push(side, id, record, now.into_std(), out),
            None => {
                self.metrics.without_event_id(side);
                match side {
                    Side::Primary => report.without_event_id_primary += 1,
                    Side::Shadow => report.without_event_id_shadow += 1,
                }
            }
        }
    }

    /// Classifies what the join handed back; counts it and samples it.
    fn settle(&mut self, joined: Joined, report: &mut KafkaComparison) {
        let message = self.config.value_message.as_deref();
        let view = |r: &Record| RecordView::new(r, message);
        let sample = match joined {
            Joined::Pair {
                event_id,
                primary,
                shadow,
            } => {
                let differences = compare(&primary, &shadow, message);
                if differences.is_empty() {
                    self.count(Class::Matched, report);
                    return;
                }
                for d in &differences {
                    self.metrics.difference(&d.path);
                }
                self.count(Class::Different, report);
                Sample {
                    at_unix_ms: Sample::now_unix_ms(),
                    event_id,
                    result: Class::Different,
                    unpaired: None,
                    primary: Some(view(&primary)),
                    shadow: Some(view(&shadow)),
                    differences,
                }
            }
            Joined::Alone {
                event_id,
                side,
                record,
                why,
            } => {
                let class = match side {
                    Side::Primary => Class::MissingInShadow,
                    Side::Shadow => Class::ExtraInShadow,
                };
                if why == Unpaired::Overflow {
                    self.metrics.overflow(side);
                    report.overflowed += 1;
                }
                self.count(class, report);
                let v = Some(view(&record));
                let (primary, shadow) = match side {
                    Side::Primary => (v, None),
                    Side::Shadow => (None, v),
                };
                Sample {
                    at_unix_ms: Sample::now_unix_ms(),
                    event_id,
                    result: class,
                    unpaired: Some(Sample::unpaired_label(why)),
                    primary,
                    shadow,
                    differences: Vec::new(),
                }
            }
        };
        if let Some(file) = &mut self.file {
            file.append(&sample);
        }
        self.samples.push(sample);
    }

    fn count(&self, class: Class, report: &mut KafkaComparison) {
        self.metrics.record(class);
        report.add(class);
    }
}

/// Start offset of every partition of both topics (blocking requests).
fn start_offsets(
    consumer: &BaseConsumer,
    config: &DifferConfig,
) -> Result<[BTreeMap<i32, i64>; 2], Error> {
    let mut out: [BTreeMap<i32, i64>; 2] = Default::default();
    for side in Side::ALL {
        let topic = config.topic(side);
        for partition in partitions(consumer, config, topic)? {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, config.connect_timeout)
                .map_err(|source| Error::Watermarks {
                    brokers: config.brokers.clone(),
                    topic: topic.to_owned(),
                    partition,
                    source: Box::new(source),
                })?;
            let start = match config.start {
                Start::Beginning => low,
                Start::Now => high,
            };
            out[side as usize].insert(partition, start);
        }
    }
    Ok(out)
}

fn partitions(
    consumer: &BaseConsumer,
    config: &DifferConfig,
    topic: &str,
) -> Result<Vec<i32>, Error> {
    let metadata = consumer
        .fetch_metadata(Some(topic), config.connect_timeout)
        .map_err(|source| Error::Unreachable {
            brokers: config.brokers.clone(),
            topic: topic.to_owned(),
            source: Box::new(source),
        })?;
    let missing = || Error::NoSuchTopic {
        brokers: config.brokers.clone(),
        topic: topic.to_owned(),
    };
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(missing)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(missing());
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

fn assign_error(config: &DifferConfig, side: Side, source: rdkafka::error::KafkaError) -> Error {
    Error::Assign {
        brokers: config.brokers.clone(),
        topic: config.topic(side).to_owned(),
        source: Box::new(source),
    }
}

/// Refreshes `parallax_kafka_consumer_lag_records` (and `lags`, which the
/// backpressure reads) every [`LAG_INTERVAL`]: high watermarks (a blocking
/// request per partition, off the async workers) minus the positions the
/// join loop records.
async fn lag_task(
    consumer: Arc<BaseConsumer>,
    config: DifferConfig,
    positions: Positions,
    lags: Lags,
    metrics: DiffMetrics,
) {
    let mut interval = tokio::time::interval(LAG_INTERVAL);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (c, cfg, pos) = (
            Arc::clone(&consumer),
            config.clone(),
            Arc::clone(&positions),
        );
        let measured = tokio::task::spawn_blocking(move || {
            let positions = pos.lock().clone();
            Side::ALL.map(|side| {
                let topic = cfg.topic(side);
                let mut lag = 0;
                for (&partition, &next) in &positions[side as usize] {
                    match c.fetch_watermarks(topic, partition, LAG_INTERVAL) {
                        Ok((_, high)) => lag += (high - next).max(0),
                        Err(_) => return None,
                    }
                }
                Some(lag)
            })
        })
        .await;
        if let Ok(measured) = measured {
            for side in Side::ALL {
                if let Some(lag) = measured[side as usize] {
                    metrics.set_lag(side, lag);
                    lags[side as usize].store(lag, Ordering::Relaxed);
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
