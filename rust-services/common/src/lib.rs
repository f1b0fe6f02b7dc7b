//! Shared infrastructure for the Rust service twins.
//!
//! The article's team regretted reinventing tracing setup, error handling and
//! Kafka wrappers in every service; this crate is that shared layer, written
//! once so the ingest, session-cache and fan-out twins look and behave alike.
//!
//! # Layout
//! - [`json`]: the one JSON string escaper both languages agree on byte for byte.
//! - [`error`]: [`ApiError`], the machine-readable error body and its HTTP status.
//! - [`routing`]: method guards that answer 405 with `Allow` the same way Go does.
//! - [`metrics`]: a Prometheus registry with process metrics and HTTP middleware.
//! - [`health`]: `/healthz` and `/readyz` handlers.
//! - [`kafka`]: producer configuration shared by every twin that talks to Kafka.
//! - [`server`]: serving a router with graceful, bounded shutdown.
//! - [`telemetry`]: tracing to stderr.
//! - `http1` (feature `http1-client`): one HTTP/1.1 client connection, for
//!   the load generator and the proxy's upstream pool.
//! - `grpc` (feature `grpc`): the twins' gRPC plumbing — grpc-go's answers,
//!   reading a request message, statuses, call metrics, server reflection.

pub mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod health;
#[cfg(feature = "http1-client")]
pub mod http1;
pub mod json;
pub mod kafka;
pub mod metrics;
pub mod routing;
pub mod server;
pub mod telemetry;

pub use error::ApiError;
