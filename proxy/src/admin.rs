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
//! - `POST /admin/canary/{service}/fleet`: a fleet controller's push
//!   (JSON [`FleetPush`]: weight, lease, state, reason), for canaries with
//!   `controller_lease_secs`; 409 with the reason when refused.
//! - `GET /admin/fields`: per service and route, the paths that differ,
//!   most often first, with counts by kind, mismatch and noise shares and
//!   first/last seen ([`crate::fields`]).
//! - `GET /admin/overview`: per service, each route's mirror outcomes and
//!   comparison results, and the WebSocket counters.
//! - `GET /admin/latency/percentiles`: each backend's latency at a ladder
//!   of percentiles over the window, for plotting: `[[50.0, 812], …]` (µs).
//! - `GET /admin/kafka`: with `kafka_diff_admin`, that differ's join
//!   counters and last samples: `{"configured":true,"reachable":true,
//!   "summary":{…},"samples":[…]}`; `{"configured":false}` without.
//! - `GET /ui`: the diff explorer ([`crate::ui`]), built into the binary.
//! - `GET /healthz`: `{"status":"ok"}`.
//!
//! # Access
//! The listener is loopback by default. With `admin_token_file` every
//! route but `/healthz` requires `Authorization: Bearer <token>`, or the
//! `parallax_admin` cookie the UI gets from `/ui?token=…` (`HttpOnly`,
//! `SameSite=Strict`, so other sites' pages cannot ride on it). A POST
//! that a browser marks as coming from another site (`Sec-Fetch-Site`, or
//! an `Origin` that is not this host) is refused whatever the token, so a
//! page elsewhere cannot roll a canary back through a loopback listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::canary::FleetPush;
use crate::metrics::{Backend, ProxyMetrics};
use crate::service::ServiceState;

/// What the admin handlers read.
pub struct Admin {
    pub metrics: ProxyMetrics,
    pub services: Vec<Arc<ServiceState>>,
    pub window: Duration,
    /// The bearer token every route but `/healthz` requires, when set.
    pub token: Option<String>,
    /// A `parallax kafka-diff` admin listener to relay (`/admin/kafka`).
    pub kafka_diff: Option<SocketAddr>,
}

/// The cookie the UI keeps the token in.
const COOKIE: &str = "parallax_admin";

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/latency", get(latency))
        .route("/admin/latency/histograms", get(histograms))
        .route("/admin/latency/percentiles", get(percentiles))
        .route("/admin/mismatches", get(mismatches))
        .route("/admin/fields", get(fields))
        .route("/admin/overview", get(overview))
        .route("/admin/kafka", get(kafka))
        .route("/admin/canary", get(canary))
        .route("/admin/canary/{service}/{action}", post(canary_action))
        .route("/ui", get(crate::ui::page))
        .route("/ui/{asset}", get(crate::ui::asset))
        .route(
            "/healthz",
            get(|| async { json_response(&json!({"status": "ok"})) }),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(&admin), guard))
        .with_state(admin)
}

/// Cross-site POSTs out; without the token (when one is set), nothing but
/// `/healthz` in.
async fn guard(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST && cross_site(request.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross_site",
            "a POST from another site's page is refused",
        );
    }
    let Some(token) = &admin.token else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" || presented(request.headers(), token) {
        return next.run(request).await;
    }
    // The UI's hand-over: /ui?token=… sets the cookie and drops the token
    // from the address bar.
    if request.uri().path() == "/ui" {
        let offered = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_owned)
        });
        if offered.is_some_and(|o| same(o.as_bytes(), token.as_bytes())) {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            return (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/ui".to_owned()),
                    (header::SET_COOKIE, cookie),
                ],
            )
                .into_response();
        }
    }
    let mut response = refuse(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this admin listener requires its token: Authorization: Bearer <token> (the UI: open /ui?token=<token> once)",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"parallax\""),
    );
    response
}

/// Whether a browser says this request comes from another site's page.
pub(crate) fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if matches!(fetch_site, "cross-site" | "same-site") {
        return true;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
            host.is_empty() || origin_host != host
        }
    }
}

/// Whether the request carries `token` as a bearer token or in the cookie.
pub(crate) fn presented(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| same(b.trim().as_bytes(), token.as_bytes())) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|c| same(c.as_bytes(), token.as_bytes()))
}

/// Equality in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        json_response(&json!({"code": code, "message": message})),
    )
        .into_response()
}

async fn fields(State(admin): State<Arc<Admin>>) -> Response {
    let services: Map<String, Value> = admin
        .services
        .iter()
        .map(|s| {
            let routes: Map<String, Value> = s
                .route_states
                .iter()
                .map(|r| {
                    (
                        r.label.clone(),
                        serde_json::to_value(r.fields.snapshot()).unwrap_or(Value::Null),
                    )
                })
                .collect();
            (s.name.clone(), Value::Object(routes))
        })
        .collect();
    json_response(&json!({ "services": services }))
}

async fn overview(State(admin): State<Arc<Admin>>) -> Response {
    let services: Map<String, Value> = admin
        .services
        .iter()
        .map(|s| {
            let routes: Map<String, Value> = s
                .route_states
                .iter()
                .map(|r| (r.label.clone(), r.metrics.counts()))
                .collect();
            (
                s.name.clone(),
                json!({
                    "primary": s.primary.addr.to_string(),
                    "shadow": s.shadow.addr.to_string(),
                    "secondary": s.secondary.as_ref().map(|u| u.addr.to_string()),
                    "canary": s.canary.is_some(),
                    "routes": routes,
                    "websocket": s.ws_metrics.counts(),
                }),
            )
        })
        .collect();
    json_response(&json!({
        "window_seconds": admin.window.as_secs(),
        "services": services,
    }))
}

/// How long the relay waits for the differ.
const KAFKA_DIFF_TIMEOUT: Duration = Duration::from_secs(1);

async fn kafka(State(admin): State<Arc<Admin>>) -> Response {
    let Some(addr) = admin.kafka_diff else {
        return json_response(&json!({"configured": false}));
    };
    let fetch = |path: &'static str| async move {
        let answer = crate::client::call(
            Method::GET,
            &addr.to_string(),
            path,
            None,
            None,
            KAFKA_DIFF_TIMEOUT,
        )
        .await
        .ok()?;
        if !answer.status.is_success() {
            return None;
        }
        serde_json::from_slice::<Value>(&answer.body).ok()
    };
    let (summary, samples) = tokio::join!(
        fetch("/admin/kafka-summary"),
        fetch("/admin/kafka-mismatches")
    );
    json_response(&json!({
        "configured": true,
        "address": addr.to_string(),
        "reachable": summary.is_some(),
        "summary": summary,
        "samples": samples.and_then(|s| s.get("samples").cloned()),
    }))
}

/// The percentiles plotted: dense in the tail, where services differ.
const LADDER: [f64; 14] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

async fn percentiles(State(admin): State<Arc<Admin>>) -> Response {
    let now = Instant::now();
    let mut services = Map::new();
    for service in &admin.services {
        let mut backends = Map::new();
        for backend in Backend::ALL {
            if let Some(window) = service.latency(backend) {
                let h = window.histogram(now);
                let points: Vec<Value> = if h.is_empty() {
                    Vec::new()
                } else {
                    LADDER
                        .iter()
                        .map(|&p| json!([p, h.value_at_percentile(p)]))
                        .collect()
                };
                backends.insert(
                    backend.as_str().to_owned(),
                    json!({"count": h.len(), "points": points}),
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
    body: bytes::Bytes,
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
        "fleet" => {
            let applied = serde_json::from_slice::<FleetPush>(&body)
                .map_err(|e| format!("not a fleet push: {e}"))
                .and_then(|push| canary.apply(&push, Instant::now()));
            if let Err(message) = applied {
                return (
                    StatusCode::CONFLICT,
                    json_response(&json!({"code": "push_refused", "message": message})),
                )
                    .into_response();
            }
        }
        _ => {
            let message = format!("{action:?} is not \"rollback\", \"restart\" or \"fleet\"");
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
