//! The admin listener of a diff run (loopback by default):
//!
//! - `GET /metrics`: Prometheus text exposition (see [`metrics`](crate::metrics)).
//! - `GET /admin/kafka-mismatches`: the last samples, oldest first:
//!   `{"samples":[{"event_id":…,"result":"different","differences":[…]}]}`.
//! - `GET /admin/kafka-summary`: the join's counters as JSON (records by
//!   result, differences by part, per side consumed/pending/lag), which
//!   the proxy's explorer shows when its `kafka_diff_admin` names this listener.
//! - `GET /healthz`: `{"status":"ok"}`.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::metrics::DiffMetrics;
use crate::samples::SampleRing;

#[derive(Clone)]
struct Admin {
    metrics: DiffMetrics,
    samples: SampleRing,
}

pub fn router(metrics: DiffMetrics, samples: SampleRing) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/admin/kafka-mismatches", get(mismatches))
        .route("/admin/kafka-summary", get(summary))
        .route(
            "/healthz",
            get(|| async { json_response(json!({"status": "ok"})) }),
        )
        .with_state(Admin { metrics, samples })
}

/// Binds `addr` (port 0 picks one) and returns the bound address and the
/// server future, which serves until `shutdown` resolves.
pub async fn bind(
    addr: SocketAddr,
    metrics: DiffMetrics,
    samples: SampleRing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = ()>), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Admin { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Admin { addr, source })?;
    let server = axum::serve(listener, router(metrics, samples)).with_graceful_shutdown(shutdown);
    Ok((bound, async move {
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "admin listener failed");
        }
    }))
}

async fn render_metrics(State(admin): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        admin.metrics.render(),
    )
        .into_response()
}

async fn summary(State(admin): State<Admin>) -> Response {
    json_response(admin.metrics.summary())
}

async fn mismatches(State(admin): State<Admin>) -> Response {
    json_response(json!({ "samples": admin.samples.snapshot() }))
}

/// A JSON answer (axum's `Json` needs a feature the workspace leaves off).
fn json_response(value: serde_json::Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
        .into_response()
}
