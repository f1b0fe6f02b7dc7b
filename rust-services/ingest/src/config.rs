//! Command-line and environment configuration (flags win over env vars).

use std::time::Duration;

use clap::Parser;
use parallax_common::kafka::ProducerSettings;

/// The event-ingestion service (Rust twin).
#[derive(Debug, Clone, Parser)]
#[command(name = "parallax-ingest", version, about)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "INGEST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Address to serve gRPC (`parallax.ingest.v1.IngestService`) on; no
    /// gRPC when unset or empty.
    #[arg(long, env = "INGEST_GRPC_LISTEN", default_value = "")]
    pub grpc_listen: String,
    /// Kafka bootstrap brokers, `host:port[,host:port]`.
    #[arg(long, env = "INGEST_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Topic accepted events are published to.
    #[arg(long, env = "INGEST_TOPIC", default_value = "events")]
    pub topic: String,
    /// How long one batch may wait for Kafka's acknowledgements before 503.
    #[arg(long, env = "INGEST_PRODUCE_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub produce_timeout_ms: u64,
    /// Producer linger: how long records may wait to be batched.
    #[arg(long, env = "INGEST_LINGER_MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[arg(long, env = "INGEST_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

impl Config {
    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn producer(&self) -> ProducerSettings {
        ProducerSettings {
            brokers: self.kafka_brokers.clone(),
            linger: Duration::from_millis(self.linger_ms),
            delivery_timeout: self.produce_timeout(),
        }
    }
}
