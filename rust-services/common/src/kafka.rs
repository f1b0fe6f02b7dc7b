//! Kafka producer configuration shared by the twins.
//!
//! The settings mirror what the Go reference gets from franz-go's defaults
//! (idempotent, `acks=all`, murmur2 key partitioning) plus the explicit linger
//! and lz4 compression both sides set, so the comparison is like for like.

use std::time::Duration;

use rdkafka::ClientConfig;

/// What a service needs to know to produce to Kafka.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// Bootstrap brokers, `host:port[,host:port]`.
    pub brokers: String,
    /// How long the producer may batch records before sending.
    pub linger: Duration,
    /// How long a record may wait for its acknowledgement before it fails.
    pub delivery_timeout: Duration,
}

impl ProducerSettings {
    /// librdkafka configuration for an idempotent, acks=all producer.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", self.linger.as_millis().to_string())
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().max(1).to_string(),
            )
            // Java's (and franz-go's) default partitioner, so both twins put a
            // tenant's events on the same partition.
            .set("partitioner", "murmur2_random")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576");
        config
    }
}
