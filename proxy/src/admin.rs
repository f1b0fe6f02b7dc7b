//! The admin listener (loopback by default):
//!
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /admin/latency`: exact p50/p90/p99/p99.9 per service and backend
//!   over the sliding window, in microseconds:
//!   `{"window_seconds":60,"services":{"cache":{"primary":{"count":…,"p50_us":…,…}}}}`.
//! - `GET /admin/latency/histograms`: the same windows as whole HDR
//!   histograms (µs, V2-deflate serialised, base64), for tools that merge
//!   or subtract them: `{"window_seconds":60,"services":{"cache":{"primary":"HISTFAA…"}}}`.
//! - `GET /admin/mismatches`: the last samples per service and route,
//!   oldest first, redacted: `{"services":{"cache":{"/v1/sessions/{id}":[…]}}}`.
//! - `GET /admin/canary`: each canaried service's state, weight, steps, the
//!   window being counted and the last rollback with its reason and figures:
//!   `{"services":{"cache":{"state":"stepping","weight_percent":5.0,…}}}`.
//! - `POST /admin/canary/{service}/rollback`: weight to 0 now (`manual`).
//! - `POST /admin/canary/{service}/restart`: back to the first step.
//! - `GET /healthz`: `{"status":"ok"}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::metrics::{Backend, ProxyMetrics};
use crate::service::ServiceState;

/// What the admin handlers read.
pub struct Admin {
    pub metrics: ProxyMetrics,
    pub services: Vec<Arc<ServiceState>>,
    pub window: Duration,
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/latency", get(latency))
        .route("/admin/latency/histograms", get(histograms))
        .route("/admin/mismatches", get(mismatches))
        .route("/admin/canary", get(canary))
        .route("/admin/canary/{service}/{action}", post(canary_action))
        .route(
            "/healthz",
            get(|| async { json_response(&json!({"status": "ok"})) }),
        )
        .with_state(admin)
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        admin.metrics.render(),
    )
        .into_response()
}

async fn canary(State(admin): State<Arc<Admin>>) -> Response {
    let now = Instant::now();
    let services: Map<String, Value> = admin
        .services
        .iter()
        .filter_map(|s| {
            let status = s.canary.as_ref()?.status(now);
            Some((
                s.name.clone(),
                serde_json::to_value(status).unwrap_or(Value::Null),
            ))
        })
        .collect();
    json_response(&json!({ "services": services }))
}

async fn canary_action(
    State(admin): State<Arc<Admin>>,
    Path((service, action)): Path<(String, String)>,
) -> Response {
    let Some(state) = admin.services.iter().find(|s| s.name == service) else {
        let message = format!("no service called {service:?}");
        return (
            StatusCode::NOT_FOUND,
            json_response(&json!({"code": "unknown_service", "message": message})),
        )
            .into_response();
    };
    let Some(canary) = &state.canary else {
        let message = format!("service {service:?} has no [services.canary] table");
        return (
            StatusCode::CONFLICT,
            json_response(&json!({"code": "no_canary", "message": message})),
        )
            .into_response();
    };
    match action.as_str() {
        "rollback" => canary.roll_back_manually(),
        "restart" => canary.restart(Instant::now()),
        _ => {
            let message = format!("{action:?} is neither \"rollback\" nor \"restart\"");
            return (
                StatusCode::NOT_FOUND,
                json_response(&json!({"code": "unknown_action", "message": message})),
            )
                .into_response();
        }
    }
    json_response(&json!({ "services": { service: canary.status(Instant::now()) } }))
}

async fn latency(State(admin): State<Arc<Admin>>) -> Response {
    let now = Instant::now();
    let mut services = Map::new();
    for service in &admin.services {
        let mut backends = Map::new();
        for backend in Backend::ALL {
            if let Some(window) = service.latency(backend) {
                backends.insert(
                    backend.as_str().to_owned(),
                    serde_json::to_value(window.summary(now)).unwrap_or(Value::Null),
                );
            }
        }
        services.insert(service.name.clone(), Value::Object(backends));
    }
    json_response(&json!({
        "window_seconds": admin.window.as_secs(),
        "services": services,
    }))
}

async fn histograms(State(admin): State<Arc<Admin>>) -> Response {
    use base64::Engine;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    let now = Instant::now();
    let mut serializer = V2DeflateSerializer::new();
    let mut services = Map::new();
    for service in &admin.services {
        let mut backends = Map::new();
        for backend in Backend::ALL {
            if let Some(window) = service.latency(backend) {
                let mut bytes = Vec::new();
                if serializer
                    .serialize(&window.histogram(now), &mut bytes)
                    .is_ok()
                {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                    backends.insert(backend.as_str().to_owned(), Value::String(encoded));
                }
            }
        }
        services.insert(service.name.clone(), Value::Object(backends));
    }
    json_response(&json!({
        "window_seconds": admin.window.as_secs(),
        "services": services,
    }))
}

async fn mismatches(State(admin): State<Arc<Admin>>) -> Response {
    let mut services = Map::new();
    for service in &admin.services {
        let mut routes = BTreeMap::new();
        for route in &service.route_states {
            let samples = route.samples.snapshot();
            if !samples.is_empty() {
                let samples: Vec<Value> = samples
                    .iter()
                    .filter_map(|s| serde_json::to_value(&**s).ok())
                    .collect();
                routes.insert(route.label.clone(), Value::Array(samples));
            }
        }
        services.insert(service.name.clone(), json!(routes));
    }
    json_response(&json!({ "services": services }))
}

/// A JSON answer (axum's `Json` needs a feature the workspace leaves off).
fn json_response(value: &Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
        .into_response()
}
