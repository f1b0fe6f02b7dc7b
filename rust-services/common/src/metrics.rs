//! Prometheus metrics shared by every twin.
//!
//! Each service owns one [`Metrics`]: a registry that already carries the
//! process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, …) and the HTTP metrics every twin exports under the
//! same names as its Go counterpart. Route labels come from the matched route
//! template, never the raw path, so the label set stays bounded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds) used by both twins.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Route label for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The route label a response asks to be counted under, in place of the
/// matched router pattern.
///
/// For a contract route that one router pattern cannot express: axum's
/// `{*rest}` does not match an empty rest, so the session cache serves
/// `/v1/sessions/{id}` through two patterns and labels both with the
/// contract's template by inserting this into its responses' extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(pub &'static str);

/// A registry with process and HTTP metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http: Arc<HttpMetrics>,
}

struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template and status.",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request start to response headers, by route template.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let metrics = Self {
            registry,
            http: Arc::new(HttpMetrics { requests, duration }),
        };
        metrics.register(metrics.http.requests.clone());
        metrics.register(metrics.http.duration.clone());
        metrics
    }

    /// Registers a service-specific collector.
    ///
    /// # Panics
    /// When a metric of the same name is already registered: a programming
    /// error caught by the first test that builds the service.
    pub fn register<C: prometheus::core::Collector + 'static>(&self, collector: C) {
        self.registry
            .register(Box::new(collector))
            .expect("metric names are unique");
    }

    /// The text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }

    fn observe(&self, route: &str, status: StatusCode, started: Instant) {
        self.http
            .requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.http
            .duration
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /metrics`.
pub async fn handler(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics.render(),
    )
        .into_response()
}

/// Middleware that counts and times every request, labelled by route
/// template: the response's [`RouteLabel`] if it has one, else the matched
/// pattern, else [`UNMATCHED_ROUTE`].
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let label = match response.extensions().get::<RouteLabel>() {
        Some(RouteLabel(label)) => label,
        None => route.as_deref().unwrap_or(UNMATCHED_ROUTE),
    };
    metrics.observe(label, response.status(), started);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_carries_process_and_http_metrics() {
        let metrics = Metrics::new();
        metrics.observe("/v1/events", StatusCode::OK, Instant::now());
        let text = metrics.render();
        assert!(text.contains("process_resident_memory_bytes"));
        assert!(text.contains("process_open_fds"));
        assert!(text.contains(r#"http_requests_total{route="/v1/events",status="200"} 1"#));
        assert!(text.contains("http_request_duration_seconds_bucket"));
    }

    #[tokio::test]
    async fn a_route_label_on_the_response_replaces_the_matched_pattern() {
        use axum::body::Body;
        use axum::routing::get;
        use axum::{middleware, Router};
        use tower::ServiceExt;

        let metrics = Metrics::new();
        let router = Router::new()
            .route(
                "/v1/things/{*rest}",
                get(|| async {
                    let mut response = StatusCode::OK.into_response();
                    response
                        .extensions_mut()
                        .insert(RouteLabel("/v1/things/{id}"));
                    response
                }),
            )
            .route("/plain", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(metrics.clone(), track));
        for uri in ["/v1/things/a/b", "/plain", "/nowhere"] {
            let request = axum::http::Request::builder()
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            router.clone().oneshot(request).await.unwrap();
        }
        let text = metrics.render();
        assert!(text.contains(r#"http_requests_total{route="/v1/things/{id}",status="200"} 1"#));
        assert!(text.contains(r#"http_requests_total{route="/plain",status="200"} 1"#));
        assert!(text.contains(r#"http_requests_total{route="unmatched",status="404"} 1"#));
        assert!(!text.contains("{*rest}"));
    }
}
