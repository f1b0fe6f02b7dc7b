//! The Kafka side effect of a run: read back what each twin published and
//! join the two topics on the `event-id` header.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One record as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub partition: i32,
}

/// Records of one topic by `event-id`; `duplicates` counts ids seen twice.
#[derive(Debug, Default)]
pub struct Topic {
    pub by_event_id: BTreeMap<String, Record>,
    pub duplicates: usize,
    pub without_event_id: usize,
}

/// Reads `topic` from the beginning until `expected` records arrived or
/// `deadline` passed.
pub fn read(
    brokers: &str,
    topic: &str,
    expected: usize,
    deadline: Duration,
) -> anyhow::Result<Topic> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("parallax-run-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("cannot create a Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("cannot read metadata of topic {topic}"))?;
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;

    let mut out = Topic::default();
    let started = Instant::now();
    let mut seen = 0;
    while seen < expected && started.elapsed() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.context("Kafka consumer error")?;
        seen += 1;
        let event_id = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "event-id").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let record = Record {
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            partition: message.partition(),
        };
        match event_id {
            None => out.without_event_id += 1,
            Some(id) => {
                if out.by_event_id.insert(id, record).is_some() {
                    out.duplicates += 1;
                }
            }
        }
    }
    Ok(out)
}

/// How two twins' topics compare.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub matched: usize,
    pub missing_in_rust: usize,
    pub extra_in_rust: usize,
    pub different: usize,
}

pub fn diff(go: &Topic, rust: &Topic) -> Diff {
    let mut d = Diff::default();
    for (id, g) in &go.by_event_id {
        match rust.by_event_id.get(id) {
            None => d.missing_in_rust += 1,
            Some(r) if r == g => d.matched += 1,
            Some(_) => d.different += 1,
        }
    }
    d.extra_in_rust = rust
        .by_event_id
        .keys()
        .filter(|id| !go.by_event_id.contains_key(*id))
        .count();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(records: &[(&str, &[u8])]) -> Topic {
        Topic {
            by_event_id: records
                .iter()
                .map(|(id, value)| {
                    let record = Record {
                        key: b"t".to_vec(),
                        value: value.to_vec(),
                        partition: 0,
                    };
                    (id.to_string(), record)
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn diff_classifies_matched_missing_extra_and_different() {
        let go = topic(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        let rust = topic(&[("a", b"1"), ("b", b"changed"), ("d", b"4")]);
        assert_eq!(
            diff(&go, &rust),
            Diff {
                matched: 1,
                missing_in_rust: 1,
                extra_in_rust: 1,
                different: 1
            }
        );
    }
}
