//! Notification fan-out, Rust twin: WebSocket clients subscribe to topics;
//! notifications posted over HTTP (or consumed from Kafka) are sent to every
//! subscriber of their topic.
//!
//! It answers and frames exactly like the Go reference
//! (`go-reference/cmd/fanout`), byte for byte; `docs/contract-fanout.md` is
//! the contract. Inside, it avoids the three bugs of the article's snippet:
//! each notification is serialised **once** into a `Bytes` that every
//! subscriber's queue shares; a slow subscriber's queue drops its oldest
//! frame, counts every drop and closes the connection with 1013 after
//! `--drop-limit` drops in a row (never a silent loss, never a blocked
//! broadcaster); and the connection loop's `select!` always has an enabled
//! branch.
//!
//! # Memory per connection
//! Idle connections are what a fan-out server holds most of, so each is a
//! single task owning its bare `TcpStream`, with no read or write buffer
//! while idle (see [`ws`] for why no WebSocket crate, [`connection`] for the
//! task — its future is ~600 bytes, guarded by a test — and [`server`] for
//! how the socket is recovered from hyper's upgrade).
//!
//! Measured with `examples/idle_clients.rs` (2-core box, release build):
//! the server's `VmRSS` idle, then with 5,000 and 10,000 idle subscribers
//! held by two client processes bound to 127.0.0.2–5:
//!
//! | allocator | idle | +10,000 connections | per connection |
//! |---|---|---|---|
//! | jemalloc (default feature) | 7.0 MiB | 23.2 MiB | 1.6–1.7 KiB |
//! | glibc malloc (`--no-default-features`) | 6.1 MiB | 24.2 MiB | 1.8–1.9 KiB |
//! | mimalloc (`--features mimalloc`) | 12.0 MiB | 34–36 MiB | 2.2–2.5 KiB |
//! | Go twin, same method | 11.8 MiB | 158–163 MiB | 15.0–15.5 KiB |
//!
//! jemalloc is the default: its size classes keep the small long-lived
//! per-connection objects apart from the handshake's short-lived 8 KiB
//! buffers. Kernel socket buffers are not in RSS and are the same for both
//! twins.
//!
//! # Layout
//! - [`config`]: flags and env vars, checked at start-up.
//! - [`listener`]: binding, with `SO_REUSEPORT` for `--reuse-port`.
//! - [`server`]: HTTP/1 with upgrades over hyper, and the graceful shutdown.
//! - [`handler`]: routes, the subscribe handshake checks and `POST /v1/notify`.
//! - [`topics`]: topic names, the `topics` query parameter, a connection's set.
//! - [`op`]: client ops (`subscribe`/`unsubscribe`).
//! - [`notify`]: decoding and validating a notification.
//! - [`frame`]: the JSON frames, written by hand.
//! - [`hub`]: the topic registry and the broadcast.
//! - [`outbox`]: a connection's bounded drop-oldest queue.
//! - [`connection`]: one connection's task: read, write, ping, reap, close.
//! - [`grpc`]: `FanoutService/Subscribe`, a gRPC stream as a hub connection.
//! - [`ws`]: the RFC 6455 framing this server needs.
//! - [`kafka`]: the Kafka publisher and the group-less consumer.
//! - [`metrics`]: the fan-out metrics.

pub mod config;
pub mod connection;
pub mod frame;
pub mod grpc;
pub mod handler;
pub mod hub;
pub mod kafka;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod op;
pub mod outbox;
pub mod server;
pub mod topics;
pub mod ws;

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures::FutureExt;
use rdkafka::error::KafkaError;
use tokio::net::TcpListener;

pub use config::Config;
use handler::{App, Delivery};
use hub::Hub;
use kafka::{Consumer, KafkaPublisher};
use metrics::FanoutMetrics;

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::InvalidConfig),
    #[error("could not create the Kafka client (check --kafka-brokers): {0}")]
    Kafka(#[from] KafkaError),
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("serving gRPC failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// Runs the service on an already-bound `listener` until `shutdown`
/// resolves; then closes every WebSocket with 1001, drains in-flight
/// requests (at most `--shutdown-grace-ms`) and flushes the Kafka producer.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_grpc(listener, None, config, shutdown).await
}

/// [`run`], also serving `FanoutService` ([`grpc`]) on `grpc_listener` when
/// given, from the same hub; the shutdown closes the gRPC streams with the
/// WebSockets.
pub async fn run_with_grpc(
    listener: TcpListener,
    grpc_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let shutdown = shutdown.shared();
    let metrics = parallax_common::metrics::Metrics::new();
    let hub = Arc::new(Hub::new(config.limits(), FanoutMetrics::register(&metrics)));
    let (delivery, ready, consumer) = match &config.kafka_brokers {
        Some(brokers) => {
            let publisher =
                KafkaPublisher::new(brokers, &config.kafka_topic, kafka::PUBLISH_TIMEOUT)?;
            // Stops consuming when dropped, however `run` returns.
            let consumer = Consumer::spawn(brokers, &config.kafka_topic, hub.clone())?;
            let ready = consumer.ready();
            (Delivery::Kafka(Arc::new(publisher)), ready, Some(consumer))
        }
        None => (Delivery::Local, Arc::new(AtomicBool::new(true)), None),
    };
    let grpc = grpc_listener.map(|grpc_listener| {
        tokio::spawn(grpc::serve(
            grpc_listener,
            grpc::FanoutService::new(hub.clone(), &metrics)
                .plant_mismatch(config.test_plant_grpc_mismatch.as_deref()),
            shutdown.clone(),
            config.shutdown_grace(),
        ))
    });
    let app = App::new(
        hub.clone(),
        delivery.clone(),
        ready,
        config.ping_interval(),
        metrics,
    );
    server::serve(
        listener,
        handler::router(app),
        hub,
        shutdown,
        config.shutdown_grace(),
    )
    .await?;
    if let Some(grpc) = grpc {
        grpc.await.expect("the gRPC server does not panic")?;
    }
    drop(consumer);
    if let Delivery::Kafka(publisher) = &delivery {
        publisher.flush(config.shutdown_grace()).await;
    }
    tracing::info!("stopped");
    Ok(())
}
