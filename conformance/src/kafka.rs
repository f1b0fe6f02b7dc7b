//! The Kafka side of the suite: where the broker is, a topic per test, and a
//! consumer that reads back everything a service published.
//!
//! Kafka is started once per run by the caller (`scripts/kafka.sh up`), never
//! per test; every test isolates itself with a topic name of its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// Environment variable naming the suite's Kafka bootstrap brokers.
pub const BROKERS_ENV: &str = "PARALLAX_KAFKA_BROKERS";
/// Used when [`BROKERS_ENV`] is unset.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
/// Partitions of every topic the suite creates: more than one, so the
/// partitioner is observable.
pub const PARTITIONS: i32 = 3;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The suite's Kafka, checked to be reachable once per process.
///
/// # Panics
/// When no broker answers a metadata request, with a message saying how to
/// start one.
pub fn brokers() -> String {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let brokers = std::env::var(BROKERS_ENV)
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| DEFAULT_BROKERS.to_owned());
        let consumer = consumer(&brokers).map_err(|e| e.to_string())?;
        consumer
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map(|_| brokers.clone())
            .map_err(|e| format!("Kafka at {brokers} is unreachable ({e})"))
    });
    match checked {
        Ok(brokers) => brokers.clone(),
        Err(e) => panic!(
            "{e}: start Kafka with scripts/kafka.sh up, or point {BROKERS_ENV} at a running broker"
        ),
    }
}

/// A topic name no other test, implementation or run uses:
/// `conf-<label>-<pid>-<nanos>-<n>`, restricted to Kafka's alphabet.
pub fn unique_topic(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut clean = String::with_capacity(label.len());
    for c in label.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) {
            clean.push(c);
        }
    }
    let label = clean.trim_end_matches('-');
    // Kafka allows 249 characters; leave room for the suffix.
    let label = &label[..label.len().min(180)];
    format!(
        "conf-{label}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `topic` with [`PARTITIONS`] partitions on the suite's Kafka and
/// waits until every partition has a leader.
pub fn create_topic(topic: &str) {
    let brokers = brokers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("create Kafka admin client");
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("create topic {name}: {code}"),
        }
    }
    let consumer = consumer(&brokers).expect("create Kafka consumer");
    let deadline = Instant::now() + METADATA_TIMEOUT;
    while partitions_with_leaders(&consumer, topic) != Some(PARTITIONS) {
        assert!(
            Instant::now() < deadline,
            "topic {topic} has no leaders after {METADATA_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One record as read back from Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// In record order; a header without a value has an empty one.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The value of every header with this name.
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// Reads every record of `topic` from the beginning, until all partitions are
/// read up to their high watermark and at least `expected` records arrived,
/// or until `timeout` passes. Returns what was read (in partition, offset
/// order) either way, so callers can assert the exact count.
///
/// Reading to the high watermark, not just to `expected`, is what lets a test
/// say "exactly N": a service answers 200 only after Kafka acknowledged, so
/// anything extra is already there.
pub fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let deadline = Instant::now() + timeout;
    let consumer = consumer(&brokers()).expect("create Kafka consumer");
    let partitions = loop {
        match partition_ids(&consumer, topic) {
            Some(ids) if !ids.is_empty() => break ids,
            _ if expected == 0 || Instant::now() >= deadline => return Vec::new(),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&assignment).expect("assign partitions");

    // Next offset to read, per partition.
    let mut next: BTreeMap<i32, i64> = partitions.iter().map(|&p| (p, 0)).collect();
    let mut records = Vec::new();
    loop {
        let high: BTreeMap<i32, i64> = partitions
            .iter()
            .map(|&p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, METADATA_TIMEOUT)
                    .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
                (p, high)
            })
            .collect();
        let caught_up = |next: &BTreeMap<i32, i64>| high.iter().all(|(p, h)| next[p] >= *h);
        while !caught_up(&next) && Instant::now() < deadline {
            poll_one(
                &consumer,
                &mut next,
                &mut records,
                Duration::from_millis(100),
            );
        }
        if (caught_up(&next) && records.len() >= expected) || Instant::now() >= deadline {
            records.sort_by_key(|r: &Record| (r.partition, r.offset));
            return records;
        }
        // Fewer than expected so far: wait for more to be produced.
        poll_one(
            &consumer,
            &mut next,
            &mut records,
            Duration::from_millis(200),
        );
    }
}

fn poll_one(
    consumer: &BaseConsumer,
    next: &mut BTreeMap<i32, i64>,
    records: &mut Vec<Record>,
    wait: Duration,
) {
    match consumer.poll(wait) {
        None => {}
        Some(Err(e)) => eprintln!("kafka consumer: {e}"),
        Some(Ok(message)) => {
            let headers = message
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            next.insert(message.partition(), message.offset() + 1);
            records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
}

fn consumer(brokers: &str) -> rdkafka::error::KafkaResult<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_topic("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .create()
}

fn partition_ids(consumer: &BaseConsumer, topic: &str) -> Option<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .ok()?;
    let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
    if topic.error().is_some() {
        return None;
    }
    Some(topic.partitions().iter().map(|p| p.id()).collect())
}

fn partitions_with_leaders(consumer: &BaseConsumer, topic: &str) -> Option<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .ok()?;
    let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
    if topic.error().is_some() {
        return None;
    }
    let led = topic
        .partitions()
        .iter()
        .filter(|p| p.leader() >= 0)
        .count();
    i32::try_from(led).ok()
}

/// Kafka's default partitioner for a keyed record (Java client, franz-go,
/// librdkafka's `murmur2_random`): `toPositive(murmur2(key)) % partitions`.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    i32::try_from(positive % partitions.unsigned_abs()).expect("partition fits i32")
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as u32.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java truncates the length to an int; keys here are small.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, byte) in rest.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key) as i32, expected, "{key:?}");
        }
    }

    #[test]
    fn unique_topics_are_unique_and_legal() {
        let a = unique_topic("go::some_test");
        let b = unique_topic("go::some_test");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(a.starts_with("conf-go-some-test-"), "{a}");
    }
}
