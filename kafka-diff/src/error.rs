//! Why a diff could not run. Each message names the broker, topic or file
//! involved, because the CLI prints it as is (and exits 2).

use std::net::SocketAddr;
use std::path::PathBuf;

use rdkafka::error::KafkaError;

/// Kafka errors are boxed: they are large, and rare.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot create a Kafka consumer for {brokers}: {source}")]
    Client {
        brokers: String,
        source: Box<KafkaError>,
    },
    #[error("Kafka at {brokers} did not answer a metadata request for topic {topic} ({source}); is it running? (scripts/kafka.sh status)")]
    Unreachable {
        brokers: String,
        topic: String,
        source: Box<KafkaError>,
    },
    #[error("topic {topic} does not exist on {brokers}")]
    NoSuchTopic { brokers: String, topic: String },
    #[error("cannot read the offsets of {topic} partition {partition} on {brokers}: {source}")]
    Watermarks {
        brokers: String,
        topic: String,
        partition: i32,
        source: Box<KafkaError>,
    },
    #[error("cannot assign the partitions of {topic} on {brokers}: {source}")]
    Assign {
        brokers: String,
        topic: String,
        source: Box<KafkaError>,
    },
    #[error("cannot open the samples file {}: {source}", path.display())]
    SamplesFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on the admin address {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
