//! The HTTP surface: routes, the upgrade of `/v1/subscribe`, the
//! `POST /v1/notify` pipeline and their errors.
//!
//! # `GET /v1/subscribe`, before the upgrade
//! In the contract's order: not a WebSocket upgrade (no `websocket` token in
//! `Upgrade`) → 426 `upgrade_required` (with `Upgrade: websocket`, as RFC
//! 9110 asks of a 426); bad `topics` → 400 `invalid_topics`; then the
//! handshake checks a WebSocket library would make, each → 400
//! `bad_handshake` (a body outside the contract's table; only the status is
//! contractual): `Connection` lacks the `upgrade` token,
//! `Sec-WebSocket-Version` is not `13` (the answer then carries
//! `Sec-WebSocket-Version: 13`), `Sec-WebSocket-Key` is not base64 of 16
//! bytes. Header tokens are compared case-insensitively in comma-separated
//! lists over all the header's lines. No subprotocol or extension is
//! negotiated.
//!
//! # `POST /v1/notify`
//! Content type (415, checked before the body is read, as in the ingest
//! contract) → size (413, from `Content-Length` or while reading) →
//! decode and validate (400) → broadcast locally or publish to Kafka (503)
//! → `202 {"id":…}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use parallax_common::routing::{get_only, post_only};
use parallax_common::{error, health, metrics, ApiError};

use crate::hub::Hub;
use crate::kafka::KafkaPublisher;
use crate::topics::query_topics;
use crate::{connection, frame, notify, ws};

/// The largest notify body.
pub const MAX_BODY_BYTES: usize = 16_384;

pub const INVALID_TOPICS: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "invalid_topics",
    "topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -",
);
pub const INVALID_NOTIFICATION: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "invalid_notification",
    "notification must be a JSON object with a valid topic and a body",
);
pub const BODY_TOO_LARGE: ApiError = ApiError::new(
    StatusCode::PAYLOAD_TOO_LARGE,
    "body_too_large",
    "request body exceeds 16384 bytes",
);
pub const UNSUPPORTED_MEDIA_TYPE: ApiError = ApiError::new(
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "unsupported_media_type",
    "Content-Type must be application/json",
);
pub const UPGRADE_REQUIRED: ApiError = ApiError::new(
    StatusCode::UPGRADE_REQUIRED,
    "upgrade_required",
    "this route needs a WebSocket upgrade",
);
/// Both for a notify Kafka did not acknowledge and for `/readyz` before the
/// consumer is assigned: the contract's table has one message per code.
pub const KAFKA_UNAVAILABLE: ApiError = ApiError::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "kafka_unavailable",
    "Kafka did not acknowledge the notification; retry later",
)
.with_retry_after(1);
/// A handshake error a WebSocket library would detect (not in the table).
pub const BAD_HANDSHAKE: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "bad_handshake",
    "not a valid WebSocket handshake",
);

/// Where accepted notifications go.
#[derive(Clone)]
pub enum Delivery {
    /// Straight into the local subscribers' queues.
    Local,
    /// To Kafka; the consumer broadcasts them (in every process).
    Kafka(Arc<KafkaPublisher>),
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct App {
    hub: Arc<Hub>,
    delivery: Delivery,
    /// Whether `/readyz` answers 200.
    ready: Arc<AtomicBool>,
    ping_interval: Duration,
    metrics: metrics::Metrics,
}

impl App {
    pub fn new(
        hub: Arc<Hub>,
        delivery: Delivery,
        ready: Arc<AtomicBool>,
        ping_interval: Duration,
        metrics: metrics::Metrics,
    ) -> Self {
        Self {
            hub,
            delivery,
            ready,
            ping_interval,
            metrics,
        }
    }
}

impl FromRef<App> for metrics::Metrics {
    fn from_ref(app: &App) -> Self {
        app.metrics.clone()
    }
}

/// All routes of the service, with HTTP metrics on every one of them.
///
/// Upgraded connections are served on their bare `TcpStream`, so the router
/// must be served by [`server::serve`](crate::server::serve), which hands
/// hyper exactly a `TokioIo<TcpStream>`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/subscribe", get_only(subscribe))
        .route("/v1/notify", post_only(post_notify))
        .route("/healthz", get_only(health::healthz))
        .route("/readyz", get_only(readyz))
        .route("/metrics", get_only(metrics::handler))
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(
            app.metrics.clone(),
            metrics::track,
        ))
        .with_state(app)
}

async fn readyz(State(app): State<App>) -> Response {
    health::readyz(
        std::future::ready(app.ready.load(Ordering::Acquire)),
        KAFKA_UNAVAILABLE,
    )
    .await
}

/// Whether any line of header `name` holds `token` in its comma-separated
/// list (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

async fn subscribe(State(app): State<App>, mut request: Request) -> Response {
    let headers = request.headers();
    if !has_token(headers, UPGRADE, "websocket") {
        let mut response = UPGRADE_REQUIRED.into_response();
        response
            .headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    let Ok(topics) = query_topics(request.uri().query()) else {
        return INVALID_TOPICS.into_response();
    };
    if !has_token(headers, CONNECTION, "upgrade") {
        return BAD_HANDSHAKE.into_response();
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = BAD_HANDSHAKE.into_response();
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let accept = match headers.get(SEC_WEBSOCKET_KEY) {
        Some(key) if ws::is_valid_key(key.as_bytes()) => ws::accept_key(key.as_bytes()),
        _ => return BAD_HANDSHAKE.into_response(),
    };
    // Absent for requests hyper cannot upgrade (HTTP/1.0).
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return UPGRADE_REQUIRED.into_response();
    };
    let hub = app.hub.clone();
    let ping_interval = app.ping_interval;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                connection::serve(parts.io.into_inner(), parts.read_buf, hub, topics, ping_interval)
                    .await
            }
            Err(_) => tracing::error!(
                "upgraded connection is not a TcpStream: serve the router with parallax_fanout::server::serve"
            ),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (UPGRADE, HeaderValue::from_static("websocket")),
            (CONNECTION, HeaderValue::from_static("Upgrade")),
            (
                SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
            ),
        ],
    )
        .into_response()
}

/// `application/json`, parameters ignored, case-insensitive.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

async fn post_notify(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(UNSUPPORTED_MEDIA_TYPE);
    }
    let body = read_body(&headers, body).await?;
    let notification = notify::decode(&body, notify::now_unix_us()).map_err(|e| {
        tracing::debug!(error = %e, "invalid notification");
        INVALID_NOTIFICATION
    })?;
    let frame = notification.frame();
    match &app.delivery {
        Delivery::Local => {
            app.hub.broadcast(&notification.topic, &frame);
        }
        Delivery::Kafka(publisher) => {
            publisher
                .publish(&notification.topic, &frame)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "notify not acknowledged by Kafka");
                    KAFKA_UNAVAILABLE
                })?;
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        frame::accepted(&notification.id),
    )
        .into_response())
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] — early when
/// `Content-Length` already says so.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(BODY_TOO_LARGE);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BODY_TOO_LARGE),
        Err(e) => {
            tracing::debug!(error = %e, "request body could not be read");
            Err(INVALID_NOTIFICATION)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FanoutMetrics;
    use crate::outbox::{Entry, Limits};
    use crate::topics::TopicSet;
    use axum::http::Method;
    use tower::ServiceExt;

    struct Fixture {
        router: Router,
        hub: Arc<Hub>,
        metrics: metrics::Metrics,
    }

    fn fixture() -> Fixture {
        let metrics = metrics::Metrics::new();
        let hub = Arc::new(Hub::new(
            Limits {
                capacity: 16,
                drop_limit: 16,
            },
            FanoutMetrics::register(&metrics),
        ));
        let app = App::new(
            hub.clone(),
            Delivery::Local,
            Arc::new(AtomicBool::new(true)),
            Duration::from_secs(30),
            metrics.clone(),
        );
        Fixture {
            router: router(app),
            hub,
            metrics,
        }
    }

    async fn call(
        router: &Router,
        request: axum::http::Request<Body>,
    ) -> (StatusCode, HeaderMap, String) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn notify(content_type: Option<&str>, body: impl Into<Body>) -> axum::http::Request<Body> {
        let mut builder = axum::http::Request::post("/v1/notify");
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        builder.body(body.into()).unwrap()
    }

    fn upgrade(uri: &str, extra: &[(&str, &str)]) -> axum::http::Request<Body> {
        let mut builder = axum::http::Request::get(uri);
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    const HANDSHAKE: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[tokio::test]
    async fn notify_answers_202_with_the_id_after_queueing_for_subscribers() {
        let f = fixture();
        let conn = f.hub.connect(&TopicSet::from_list(["news"]).unwrap());
        conn.outbox.pop();
        let (status, headers, body) = call(
            &f.router,
            notify(
                Some("application/json"),
                r#"{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}"#,
            ),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::ACCEPTED, r#"{"id":"n-1"}"#)
        );
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        match conn.outbox.pop() {
            Some(Entry::Notification { frame, .. }) => assert_eq!(
                frame,
                r#"{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}"#
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn notify_error_table() {
        let f = fixture();
        let big = format!(r#"{{"topic":"t","body":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let cases: Vec<(Option<&str>, Body, StatusCode, &str)> = vec![
            (
                None,
                Body::from("{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                Some("text/plain"),
                Body::from("{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                Some("application/jsonx"),
                Body::from("{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            // The media type is checked before the size.
            (
                Some("text/plain"),
                Body::from(big.clone()),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                Some("application/json"),
                Body::from(big),
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            (
                Some("application/json"),
                Body::from("not json"),
                StatusCode::BAD_REQUEST,
                "invalid_notification",
            ),
            (
                Some("application/json"),
                Body::from(r#"{"topic":"t"}"#),
                StatusCode::BAD_REQUEST,
                "invalid_notification",
            ),
            (
                Some("application/json"),
                Body::from(r#"{"topic":"a b","body":1}"#),
                StatusCode::BAD_REQUEST,
                "invalid_notification",
            ),
        ];
        for (content_type, body, status, code) in cases {
            let (got, headers, text) = call(&f.router, notify(content_type, body)).await;
            assert_eq!(got, status, "{content_type:?}: {text}");
            assert!(
                text.starts_with(&format!(r#"{{"code":"{code}","message":"#)),
                "{text}"
            );
            assert_eq!(headers[CONTENT_TYPE], "application/json");
        }
        let (_, _, text) = call(&f.router, notify(Some("application/json"), "[]")).await;
        assert_eq!(text, INVALID_NOTIFICATION.body());
    }

    #[tokio::test]
    async fn notify_accepts_json_with_parameters_in_any_case() {
        let f = fixture();
        for ct in [
            "application/json; charset=utf-8",
            "Application/JSON",
            " application/json ;x=y",
        ] {
            let (status, _, _) =
                call(&f.router, notify(Some(ct), r#"{"topic":"t","body":1}"#)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{ct}");
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let f = fixture();
        let request = axum::http::Request::post("/v1/notify")
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, "16385")
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = call(&f.router, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body, BODY_TOO_LARGE.body());
    }

    #[tokio::test]
    async fn subscribe_without_upgrade_is_426_even_with_bad_topics() {
        let f = fixture();
        for uri in [
            "/v1/subscribe?topics=a",
            "/v1/subscribe",
            "/v1/subscribe?topics=a%20b",
        ] {
            let (status, headers, body) = call(&f.router, upgrade(uri, &[])).await;
            assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{uri}");
            assert_eq!(body, UPGRADE_REQUIRED.body());
            assert_eq!(headers[UPGRADE], "websocket");
        }
        let (status, _, _) = call(
            &f.router,
            upgrade("/v1/subscribe?topics=a", &[("upgrade", "h2c")]),
        )
        .await;
        assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    }

    #[tokio::test]
    async fn subscribe_with_bad_topics_is_400_before_the_handshake_checks() {
        let f = fixture();
        for uri in [
            "/v1/subscribe",
            "/v1/subscribe?topics=",
            "/v1/subscribe?topics=a,,b",
            "/v1/subscribe?topics=a%20b",
        ] {
            let (status, _, body) =
                call(&f.router, upgrade(uri, &[("upgrade", "WebSocket")])).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::BAD_REQUEST, INVALID_TOPICS.body().as_str()),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn handshake_errors_are_400() {
        let f = fixture();
        let without = |name: &str| -> Vec<(&str, &str)> {
            HANDSHAKE
                .iter()
                .copied()
                .filter(|(n, _)| *n != name)
                .collect()
        };
        let mut bad_version = without("sec-websocket-version");
        bad_version.push(("sec-websocket-version", "8"));
        let mut bad_key = without("sec-websocket-key");
        bad_key.push(("sec-websocket-key", "c2hvcnQ="));
        for headers in [
            without("connection"),
            without("sec-websocket-version"),
            bad_version.clone(),
            without("sec-websocket-key"),
            bad_key,
        ] {
            let (status, _, _) = call(&f.router, upgrade("/v1/subscribe?topics=a", &headers)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}");
        }
        let (_, response_headers, _) =
            call(&f.router, upgrade("/v1/subscribe?topics=a", &bad_version)).await;
        assert_eq!(response_headers[SEC_WEBSOCKET_VERSION], "13");
    }

    #[tokio::test]
    async fn other_methods_and_routes_use_the_shared_errors() {
        let f = fixture();
        for (method, uri, status, allow) in [
            (
                Method::POST,
                "/v1/subscribe",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("GET"),
            ),
            (
                Method::HEAD,
                "/v1/subscribe",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("GET"),
            ),
            (
                Method::GET,
                "/v1/notify",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("POST"),
            ),
            (
                Method::POST,
                "/healthz",
                StatusCode::METHOD_NOT_ALLOWED,
                Some("GET"),
            ),
            (Method::GET, "/nowhere", StatusCode::NOT_FOUND, None),
        ] {
            let request = axum::http::Request::builder()
                .method(method.clone())
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let (got, headers, _) = call(&f.router, request).await;
            assert_eq!(got, status, "{method} {uri}");
            assert_eq!(headers.get("allow").map(|v| v.to_str().unwrap()), allow);
        }
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_answer() {
        let f = fixture();
        let get = |uri: &str| axum::http::Request::get(uri).body(Body::empty()).unwrap();
        assert_eq!(
            call(&f.router, get("/healthz")).await.2,
            r#"{"status":"ok"}"#
        );
        assert_eq!(
            call(&f.router, get("/readyz")).await.2,
            r#"{"status":"ready"}"#
        );
        let (status, _, text) = call(&f.router, get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("fanout_connections 0"));
        call(&f.router, get("/v1/subscribe")).await;
        let text = f.metrics.render();
        for label in ["/healthz", "/readyz", "/metrics", "/v1/subscribe"] {
            assert!(
                text.contains(&format!("route=\"{label}\"")),
                "{label} in {text}"
            );
        }
    }

    #[tokio::test]
    async fn readyz_is_503_until_ready() {
        let metrics = metrics::Metrics::new();
        let hub = Arc::new(Hub::new(
            Limits {
                capacity: 1,
                drop_limit: 1,
            },
            FanoutMetrics::register(&metrics),
        ));
        let ready = Arc::new(AtomicBool::new(false));
        let app = App::new(
            hub,
            Delivery::Local,
            ready.clone(),
            Duration::from_secs(1),
            metrics,
        );
        let router = router(app);
        let get = || {
            axum::http::Request::get("/readyz")
                .body(Body::empty())
                .unwrap()
        };
        let (status, headers, body) = call(&router, get()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, KAFKA_UNAVAILABLE.body());
        assert_eq!(headers["retry-after"], "1");
        ready.store(true, Ordering::Release);
        assert_eq!(call(&router, get()).await.0, StatusCode::OK);
    }
}
