//! Event ingestion, Rust twin: protobuf or JSON event batches over HTTP,
//! validated and published to Kafka.
//!
//! It answers exactly like the Go reference (`go-reference/cmd/ingest`), byte
//! for byte; `docs/contract-ingest.md` is the contract and `conformance/`
//! proves it. What differs is inside: a protobuf body is read in place (an
//! event already in its record encoding is published from the body, no
//! per-event strings, maps or encodings), and a batch's records are produced
//! together and acknowledged with one notification.
//!
//! # Layout
//! - [`config`]: flags and env vars.
//! - [`media`]: content negotiation.
//! - [`decode`]: protobuf and proto3-JSON request decoding.
//! - [`wire`]: the protobuf wire format of events, read (in place) and
//!   written as Go's protobuf runtime does (unknown fields, wrong wire types,
//!   groups).
//! - [`validate`]: per-event rules and reason codes.
//! - [`publish`]: the [`Publisher`](publish::Publisher) trait and its Kafka implementation.
//! - [`response`]: encoding the answer.
//! - [`handler`]: routes and the request pipeline.
//! - [`grpc`]: the same pipeline as `IngestService/Publish` over gRPC.
//! - [`metrics`]: ingest counters.

pub mod config;
pub mod decode;
pub mod grpc;
pub mod handler;
pub mod media;
pub mod metrics;
pub mod proto;
pub mod publish;
pub mod response;
pub mod validate;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use rdkafka::error::KafkaError;
use tokio::net::TcpListener;

pub use config::Config;
use publish::KafkaPublisher;

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not create the Kafka producer (check --kafka-brokers): {0}")]
    Producer(#[from] KafkaError),
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("serving gRPC failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// Runs the service on an already-bound `listener` until `shutdown`
/// resolves, then drains in-flight requests and flushes the producer.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_grpc(listener, None, config, shutdown).await
}

/// [`run`], also serving gRPC ([`grpc`]) on `grpc_listener` when given; both
/// stop and drain on the same `shutdown`.
pub async fn run_with_grpc(
    listener: TcpListener,
    grpc_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shutdown = shutdown.shared();
    let publisher = KafkaPublisher::new(
        &config.producer().client_config(),
        config.topic.clone(),
        config.produce_timeout(),
    )?;
    let app = handler::App::new(
        Arc::new(publisher.clone()),
        parallax_common::metrics::Metrics::new(),
    );
    let grpc = grpc_listener.map(|grpc_listener| {
        tokio::spawn(grpc::serve(
            grpc_listener,
            grpc::IngestService::new(&app),
            shutdown.clone(),
            config.shutdown_grace(),
        ))
    });
    parallax_common::server::serve(
        listener,
        handler::router(app),
        shutdown,
        config.shutdown_grace(),
    )
    .await?;
    if let Some(grpc) = grpc {
        grpc.await.expect("the gRPC server does not panic")?;
    }
    publisher.flush(config.shutdown_grace()).await;
    tracing::info!("stopped");
    Ok(())
}
