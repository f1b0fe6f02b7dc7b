//! The Kafka side-effect diff of the twins (`parallax kafka-diff`).
//!
//! The ingest service's real output is the Kafka record, not the HTTP 200:
//! two twins can answer identically and still publish different records. A
//! shadowed run has the primary (Go) write to one topic and the shadow
//! (Rust) to another (`events`, `events.shadow`); this crate reads both,
//! joins records on the `event-id` header within a time window, and
//! compares partition, key, every header and the decoded payload, naming
//! the field that differs (`/attributes/region`). Each event ends up
//! `matched`, `different`, `missing_in_shadow` or `extra_in_shadow`.
//!
//! ```no_run
//! # async fn example() -> Result<(), parallax_kafka_diff::Error> {
//! use parallax_kafka_diff::{Differ, DifferConfig, Start, Stop};
//! use std::time::Duration;
//!
//! let mut config = DifferConfig::new("127.0.0.1:9092", "events", "events.shadow");
//! config.start = Start::Now;
//! let differ = Differ::connect(config).await?; // from here on, every record is seen
//! // … drive traffic through the twins …
//! let comparison = differ.run(Stop::Idle(Duration::from_secs(3)), std::future::pending()).await;
//! assert!(!comparison.has_differences(), "{comparison}");
//! # Ok(()) }
//! ```
//!
//! The rules of the join (window, duplicates, bounded memory) are in
//! [`join`]; why the consumer assigns partitions itself is in [`differ`].
//!
//! # Layout
//! - [`record`]: an owned record and the side it came from.
//! - [`join`]: pairing by event id within the window, in bounded memory (pure).
//! - [`compare`]: what differs between two paired records.
//! - [`differ`]: the consumer of both topics, classification, counts.
//! - [`flow`]: backpressure: pausing the side that reads too far ahead.
//! - [`report`]: [`KafkaComparison`], the classes, the summary table.
//! - [`samples`]: the last differences in memory and the JSON-lines file.
//! - [`metrics`]: the Prometheus metrics.
//! - [`admin`]: `/metrics` and `/admin/kafka-mismatches`.
//! - [`cli`]: the flags and exit codes of `parallax kafka-diff`.
//! - [`error`]: why a diff could not run.

pub mod admin;
pub mod cli;
pub mod compare;
pub mod differ;
pub mod error;
pub mod flow;
pub mod join;
pub mod metrics;
pub mod record;
pub mod report;
pub mod samples;

pub use cli::Args;
pub use differ::{Differ, DifferConfig, Start, Stop};
pub use error::Error;
pub use record::JoinKey;
pub use report::{Class, KafkaComparison};
pub use samples::Sample;
