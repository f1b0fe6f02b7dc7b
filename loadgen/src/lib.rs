//! `parallax-loadgen`: open-model load generation for the Parallax twins.
//!
//! A benchmark that waits for each answer before sending the next measures
//! a service only as fast as the service lets it, and hides its stalls.
//! This crate sends on a schedule instead, measures every latency from the
//! moment the request was due, and says how often it could not keep the
//! schedule. It is a library so that `parallax bench` drives it in-process
//! (one less process competing for a small machine's cores) and the later
//! load generator can grow from it.
//!
//! # Layout
//! - [`pacing`]: the open-model schedule, slots, late-slot counting and
//!   coordinated-omission-corrected latency histograms.
//! - [`metronome`]: the thread that releases slots on time below a
//!   millisecond (tokio's timer ticks in whole ones) to async senders.
//! - [`http`]: a dedicated keep-alive HTTP/1.1 connection per sender, on
//!   hyper's low-level client.
//! - [`grpc`]: unary gRPC calls over HTTP/2 (h2c or TLS) on the same
//!   schedule, counted per `grpc-status`; messages from proto3 JSON and a
//!   descriptor set.
//! - [`ingest`]: the event-ingestion workload: pre-encoded protobuf
//!   batches, unique event ids stamped per request, skewed tenants.
//! - [`open`]: open-model load on goose: users take slots from a shared
//!   schedule; latency from each slot's time, per-second windows, goose's
//!   HTML report.
//! - [`cache`]: the session-cache read/write scenario (Zipf keys, preload).
//! - [`churn`]: the session-cache memory scenario (fill, then constant
//!   eviction; RSS against the cache's own accounting).
//! - [`ws`]: idle WebSocket subscribers for the fan-out twins, timing
//!   each notification against its `published_at_unix_us`.
//! - [`result`]: the serde result structs written to `results.json`.

pub mod cache;
pub mod churn;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod metronome;
pub mod open;
pub mod pacing;
pub mod result;
pub mod ws;

/// Why a scenario could not run (failed requests are results, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario setting is out of range.
    #[error("invalid scenario setting: {0}")]
    Config(String),
    /// The server's `/metrics` could not be read or lacked a gauge.
    #[error("cannot read the server's metrics: {0}")]
    Metrics(String),
    /// The run was interrupted (Ctrl-C) before its schedule was complete.
    #[error("interrupted before the schedule was complete")]
    Interrupted,
    /// goose refused the configuration or the attack failed.
    #[error("goose: {0}")]
    Goose(String),
    /// The thread that releases the slots could not be started.
    #[error("cannot start the pacing thread: {0}")]
    Pacing(#[from] std::io::Error),
    /// The caller's process probe failed.
    #[error("cannot measure the server process: {0}")]
    Probe(String),
}

/// Whether a setting is a finite number above zero (NaN is not).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}
