//! The Parallax shadowing proxy.
//!
//! Clients talk to the proxy as if it were the primary: they get the
//! primary's answer, streamed, and never wait on anything else. A sampled
//! copy of each request goes to the shadow (the candidate under test) and,
//! optionally, to a secondary (a second primary instance), off the client's
//! path; their answers are compared with the primary's by
//! [`parallax_compare`], mismatches are sampled (redacted) and everything is
//! counted for Prometheus on the admin listener. WebSocket connections are
//! shadowed the same way, message by message ([`ws`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), parallax_proxy::StartError> {
//! let config = parallax_proxy::Config::load("parallax.toml".as_ref())?;
//! let proxy = parallax_proxy::Proxy::bind(&config).await?;
//! proxy.serve(parallax_common::server::signal()).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! Each module has one responsibility, in the order a request meets them:
//! - [`config`]: the TOML file, its defaults and validation.
//! - [`config_builder`]: a configuration file from typed values, validated
//!   (for the harness and the benchmarks that start a proxy).
//! - [`server`]: accepting client connections (HTTP/1.1, keep-alive,
//!   graceful shutdown).
//! - [`h1`]: the raw HTTP/1.1 path: requests the proxy only forwards,
//!   served from the bytes without hyper (anything unusual goes to hyper).
//! - [`service`]: the client path of one request: route, hop headers, mirror
//!   plan, body buffering, forwarding.
//! - [`route`]: route templates → bounded `route` labels.
//! - [`headers`]: hop-by-hop headers (RFC 9110), `X-Forwarded-For`.
//! - [`heartbeat`]: a timer always pending, so arming one per request (the
//!   header-read timeout) costs no system call.
//! - [`sampling`]: method policy, mirror fraction, sticky keys.
//! - [`departure`]: which copy of a mirrored request leaves first.
//! - [`upstream`]: one connection pool per upstream (our own for HTTP/1.1,
//!   hyper-util's for HTTP/2 and https).
//! - [`body`]: request and response body types of both hops.
//! - [`request_tee`]: a mirrored request whose body is a stream (gRPC, no
//!   declared length) streamed to the primary while the shadow's copy is
//!   kept.
//! - [`tee`]: streaming the primary's answer to the client while capturing
//!   it for the comparison.
//! - [`canary`]: optionally, a growing share of requests served by the
//!   shadow, judged against the primary and rolled back on its own.
//! - [`mirror`]: the shadow side, a spawned task per copy: send, time out,
//!   compare, classify noise, sample.
//! - [`error`]: errors tagged by side; only downstream and primary errors
//!   can shape a client answer.
//! - [`metrics`]: the Prometheus families and per-route series.
//! - [`latency`]: exact percentiles over a sliding window (HDR histograms).
//! - [`procwatch`]: CPU and RSS of the upstream processes from `/proc`.
//! - [`redact`] and [`samples`]: mismatch samples, redacted, in memory and
//!   in a JSON-lines file.
//! - [`record`]: optionally, the traffic recorded (redacted) to a capture
//!   for `parallax replay`, by a writer thread the client never waits on.
//! - [`admin`]: `/metrics`, `/admin/latency`, `/admin/mismatches`.
//! - [`reflection`]: `descriptors = "reflection"`, fetched from the primary
//!   at start-up.
//!
//! WebSocket upgrades leave the request path early for their own modules:
//! - [`ws`]: the upgrade — the primary's handshake (its 101 or refusal goes
//!   to the client), the shadow's alongside when sampled;
//! - [`ws::relay`]: one task per connection moving bytes between client,
//!   primary and shadow without per-connection buffers while idle;
//! - [`ws::frame`]: reading frame boundaries and messages off the streams;
//! - [`ws::matcher`]: pairing the shadow's messages with the primary's (by
//!   id or position, within a window) into matched, missing, extra,
//!   different and reordered.
//!
//! Several proxy processes can share a listener (`reuse_port = true`,
//! `SO_REUSEPORT`): a proxied WebSocket holds three descriptors, and a
//! process may hold 20,000 here.

pub mod admin;
pub mod body;
pub mod canary;
pub mod client;
pub mod config;
pub mod config_builder;
pub mod departure;
pub mod error;
pub mod fields;
pub mod fleet;
pub mod h1;
pub mod headers;
pub mod heartbeat;
pub mod latency;
pub mod metrics;
pub mod mirror;
pub mod procwatch;
pub mod record;
pub mod redact;
pub mod reflection;
pub mod request_tee;
pub mod route;
pub mod samples;
pub mod sampling;
pub mod server;
pub mod service;
pub mod tee;
pub mod tls;
pub mod ui;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Config, ConfigError};

use crate::admin::Admin;
use crate::metrics::{Backend, ProxyMetrics};
use crate::procwatch::{BackendUsage, Target};
use crate::samples::JsonlLog;
use crate::service::ServiceState;

/// Why the proxy could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{field}: cannot listen on {addr}: {source}")]
    Bind {
        field: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}: cannot open {}: {source}", path.display())]
    MismatchLog {
        field: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}: cannot record to {}: {source}", path.display())]
    Record {
        field: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}: cannot fetch descriptors from the primary {primary} by gRPC server reflection: {reason} (serve grpc.reflection.v1 there, or name a descriptor_set file instead)")]
    Reflection {
        field: String,
        primary: String,
        reason: String,
    },
    #[error("serving failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// A proxy with every listener bound, ready to serve.
pub struct Proxy {
    admin_listener: TcpListener,
    services: Vec<(TcpListener, Arc<ServiceState>)>,
    admin: Arc<Admin>,
    grace: Duration,
}

impl Proxy {
    /// Validates `config`, binds the admin and service listeners and builds
    /// the upstream clients. Nothing is served until [`Proxy::serve`].
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        // Descriptors by server reflection first: validation checks the
        // routes' message names against them.
        let resolved = reflection::resolve(config).await?;
        let settings = resolved.as_ref().unwrap_or(config).validate()?;
        let metrics = ProxyMetrics::new();
        let now = Instant::now();
        let mut targets = Vec::new();
        let mut services = Vec::with_capacity(settings.services.len());
        let record_metrics = record::RecordMetrics::register(&metrics);
        for (i, service) in settings.services.into_iter().enumerate() {
            let listener = server::bind(service.listen, service.reuse_port).map_err(|source| {
                StartError::Bind {
                    field: format!("services[{i}].listen"),
                    addr: service.listen,
                    source,
                }
            })?;
            let log = match &service.mismatch_log {
                None => None,
                Some(path) => {
                    Some(
                        JsonlLog::open(path).map_err(|source| StartError::MismatchLog {
                            field: format!("services[{i}].mismatch_log"),
                            path: path.clone(),
                            source,
                        })?,
                    )
                }
            };
            let name = service.name.as_str();
            targets.push(Target::new(
                name,
                Backend::Primary,
                &service.primary,
                service.primary_pid,
            ));
            targets.push(Target::new(
                name,
                Backend::Shadow,
                &service.shadow,
                service.shadow_pid,
            ));
            if let Some(secondary) = &service.secondary {
                targets.push(Target::new(
                    name,
                    Backend::Secondary,
                    secondary,
                    service.secondary_pid,
                ));
            }
            let record = service.record.clone();
            let sticky = service.sticky.clone();
            let json_rules = !service.redact_pointers.is_empty();
            let mut state = ServiceState::new(service, &metrics, log, settings.latency_window, now);
            if let Some(r) = record {
                let recorder = record::Recorder::start(
                    &r,
                    &state.name,
                    sticky,
                    state.redactor.clone(),
                    json_rules,
                    &record_metrics,
                )
                .map_err(|source| StartError::Record {
                    field: format!("services[{i}].record.path"),
                    path: r.path.clone(),
                    source,
                })?;
                state.recorder = Some(recorder);
            }
            services.push((listener, Arc::new(state)));
        }
        metrics.register(BackendUsage::new(targets));
        let admin_listener = TcpListener::bind(settings.admin_listen)
            .await
            .map_err(|source| StartError::Bind {
                field: "admin_listen".into(),
                addr: settings.admin_listen,
                source,
            })?;
        let admin = Arc::new(Admin {
            metrics,
            services: services.iter().map(|(_, s)| Arc::clone(s)).collect(),
            window: settings.latency_window,
            token: settings.admin_token.clone(),
            kafka_diff: settings.kafka_diff_admin,
        });
        Ok(Self {
            admin_listener,
            services,
            admin,
            grace: settings.shutdown_grace,
        })
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Which path plain HTTP/1.1 connections take, for every service
    /// (default: [`h1::Http1Path::from_env`]); for tests and benchmarks
    /// that compare the raw path with hyper's in one process.
    pub fn set_http1_path(&self, path: h1::Http1Path) {
        for (_, state) in &self.services {
            if let Some(raw) = &state.raw_h1 {
                raw.set(path);
            }
        }
    }

    /// The bound address of the service called `name`.
    pub fn service_addr(&self, name: &str) -> Option<SocketAddr> {
        self.services
            .iter()
            .find(|(_, s)| s.name == name)
            .and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves every listener until `shutdown` resolves, then stops
    /// accepting and lets in-flight requests finish within the grace period.
    pub async fn serve<F>(self, shutdown: F) -> Result<(), StartError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Poll `shutdown` once before announcing the listeners: signal
        // handlers install on first poll, and a SIGTERM sent as soon as
        // "listening on" appears must not be lost.
        let mut shutdown = std::pin::pin!(shutdown);
        let stopped_early = tokio::select! {
            biased;
            () = &mut shutdown => true,
            () = std::future::ready(()) => false,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let admin_addr = self.admin_addr();
        let mut tasks = tokio::task::JoinSet::new();
        for (listener, state) in self.services {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(
                    primary = %state.primary.addr,
                    shadow = %state.shadow.addr,
                    secondary = state.secondary.as_ref().map(|s| s.addr.to_string()),
                    "service {} listening on {addr}",
                    state.name
                );
            }
            if let Some(canary) = &state.canary {
                tasks.spawn(canary::run(Arc::clone(canary), stop_rx.clone()));
            }
            tasks.spawn(server::serve(listener, state, stop_rx.clone(), self.grace));
        }
        tracing::info!("admin listening on {admin_addr}");
        let mut admin_stop = stop_rx.clone();
        let admin = parallax_common::server::serve(
            self.admin_listener,
            admin::router(self.admin),
            async move {
                let _ = admin_stop.wait_for(|stop| *stop).await;
            },
            self.grace,
        );
        let admin = tokio::spawn(admin);
        if !stopped_early {
            shutdown.await;
        }
        // The admin server logs "shutdown requested" for the whole proxy.
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        admin
            .await
            .map_err(|e| StartError::Serve(std::io::Error::other(e)))??;
        Ok(())
    }
}

/// The shape of the async runtime the proxy serves on.
///
/// Measured (docs/benchmarks.md, "The hop after issue 16"): mirroring at
/// full load on two cores, one current-thread process per core sharing the
/// port by `SO_REUSEPORT` (`--reuse-port`) served 1.2-1.7x the requests of
/// one process on the multi-threaded runtime, at ~5 % less CPU per request
/// (no work stealing, no cross-thread wake-ups). The multi-threaded runtime
/// stays the default: one process keeps one admin listener, one in-flight
/// bound and one set of counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeShape {
    /// tokio's multi-threaded runtime, one worker per CPU
    /// (`TOKIO_WORKER_THREADS` overrides).
    #[default]
    MultiThread,
    /// Everything on the calling thread; run one process per core.
    CurrentThread,
}

impl std::str::FromStr for RuntimeShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "multi-thread" => Ok(Self::MultiThread),
            "current-thread" => Ok(Self::CurrentThread),
            other => Err(format!(
                "{other:?} is not a runtime shape: use multi-thread or current-thread"
            )),
        }
    }
}

impl RuntimeShape {
    /// A runtime of this shape, I/O and timers enabled.
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Self::MultiThread => tokio::runtime::Runtime::new(),
            Self::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
    }
}

/// Binds and serves `config` until `shutdown` resolves.
pub async fn run<F>(config: &Config, shutdown: F) -> Result<(), StartError>
where
    F: Future<Output = ()> + Send + 'static,
{
    Proxy::bind(config).await?.serve(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::RuntimeShape;

    #[test]
    fn runtime_shapes_parse_by_name_and_build() {
        for (name, shape) in [
            ("multi-thread", RuntimeShape::MultiThread),
            ("current-thread", RuntimeShape::CurrentThread),
        ] {
            assert_eq!(name.parse::<RuntimeShape>(), Ok(shape));
            let runtime = shape.build().unwrap();
            assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
        }
        let e = "threads".parse::<RuntimeShape>().unwrap_err();
        assert!(e.contains("multi-thread or current-thread"), "{e}");
    }
}
