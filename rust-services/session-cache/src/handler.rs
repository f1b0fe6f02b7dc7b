//! The HTTP surface: routes, the session operations and their errors.
//!
//! Checks run in the contract's order: route → method (405) → id (400
//! `invalid_id`) → for PUT: `X-Session-TTL` (400) → body size (413
//! `value_too_large`) → entry size (413 `entry_too_large`). Every failure is
//! one row of the contract's error table, defined here once.
//!
//! # Routing
//! The id is the raw path after `/v1/sessions/`, read from the request
//! [`Uri`](axum::http::Uri) — axum's `Path` extractor would percent-decode
//! it. axum's `{*rest}` does not match an empty rest, so `/v1/sessions/`
//! (empty id → 400) has its own pattern; both answer under the route label
//! `/v1/sessions/{id}` via [`RouteLabel`].
//!
//! # Copies
//! A GET answers with a clone of the stored `Bytes`: no value byte is copied.
//! A PUT copies the body exactly once, into an allocation of exactly its
//! size: the chunks hyper hands over are slices of its connection read
//! buffer, and keeping one would pin that whole buffer for the entry's
//! lifetime. The content type is copied for the same reason.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{middleware, Router};
use bytes::Bytes;
use http_body_util::BodyExt;

use parallax_common::metrics::RouteLabel;
use parallax_common::routing::get_only;
use parallax_common::{error, health, metrics, ApiError};

use crate::cache::Cache;
use crate::metrics::{CacheMetrics, Op, Outcome};
use crate::shard::{Hit, Lookup, Removal};
use crate::validate::{session_id, ttl_secs};

/// The route template of the session operations, as labelled in metrics.
pub const SESSION_ROUTE: &str = "/v1/sessions/{id}";
/// The part of the path before the id.
pub const SESSION_PREFIX: &str = "/v1/sessions/";
/// `Allow` on a 405 from the session route.
pub const SESSION_METHODS: &str = "GET, HEAD, PUT, DELETE";
/// The largest value a PUT may store.
pub const MAX_VALUE_BYTES: usize = 1_048_576;
/// The request header carrying a PUT's TTL in seconds.
pub const TTL_HEADER: &str = "x-session-ttl";
/// The content type stored for a PUT without one.
pub const DEFAULT_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/octet-stream");

pub const INVALID_ID: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "invalid_id",
    "session id must be 1-256 bytes of A-Z a-z 0-9 - . _ ~",
);
pub const INVALID_TTL: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "invalid_ttl",
    "X-Session-TTL must be whole seconds from 1 to 604800",
);
pub const NOT_FOUND_SESSION: ApiError = ApiError::new(
    StatusCode::NOT_FOUND,
    "not_found_session",
    "no such session",
);
pub const VALUE_TOO_LARGE: ApiError = ApiError::new(
    StatusCode::PAYLOAD_TOO_LARGE,
    "value_too_large",
    "value exceeds 1048576 bytes",
);
pub const ENTRY_TOO_LARGE: ApiError = ApiError::new(
    StatusCode::PAYLOAD_TOO_LARGE,
    "entry_too_large",
    "entry exceeds the capacity of its shard",
);
/// Not in the contract's table: the body broke off or was malformed
/// (a client that went away rarely reads it).
pub const INVALID_BODY: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "invalid_body",
    "request body could not be read",
);

/// Shared state of the handlers.
#[derive(Clone)]
pub struct App {
    cache: Arc<Cache>,
    default_ttl: Duration,
    metrics: metrics::Metrics,
    requests: CacheMetrics,
}

impl App {
    pub fn new(cache: Arc<Cache>, default_ttl: Duration, metrics: metrics::Metrics) -> Self {
        let requests = CacheMetrics::register(&metrics, cache.clone());
        Self {
            cache,
            default_ttl,
            metrics,
            requests,
        }
    }
}

impl FromRef<App> for metrics::Metrics {
    fn from_ref(app: &App) -> Self {
        app.metrics.clone()
    }
}

/// All routes of the service, with HTTP metrics on every one of them.
pub fn router(app: App) -> Router {
    Router::new()
        .route(SESSION_PREFIX, any(session))
        .route("/v1/sessions/{*rest}", any(session))
        .route("/healthz", get_only(health::healthz))
        // The cache depends on nothing: ready as soon as it serves.
        .route("/readyz", get_only(health::ready))
        .route("/metrics", get_only(metrics::handler))
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(
            app.metrics.clone(),
            metrics::track,
        ))
        .with_state(app)
}

/// Every method on `/v1/sessions/…`.
async fn session(State(app): State<App>, request: Request) -> Response {
    let mut response = dispatch(&app, request).await;
    response.extensions_mut().insert(RouteLabel(SESSION_ROUTE));
    response
}

async fn dispatch(app: &App, request: Request) -> Response {
    let op = match *request.method() {
        Method::GET => Op::Get,
        Method::HEAD => Op::Head,
        Method::PUT => Op::Put,
        Method::DELETE => Op::Delete,
        _ => return ApiError::method_not_allowed(SESSION_METHODS).into_response(),
    };
    let (parts, body) = request.into_parts();
    let raw = parts
        .uri
        .path()
        .strip_prefix(SESSION_PREFIX)
        .expect("routed under the session prefix");
    let Some(id) = session_id(raw) else {
        app.requests.request(op, Outcome::Invalid);
        return INVALID_ID.into_response();
    };
    let (outcome, response) = match op {
        Op::Get | Op::Head => lookup(app, id, op == Op::Head),
        Op::Put => match put(app, id, &parts.headers, body).await {
            Ok(()) => (Outcome::Stored, StatusCode::NO_CONTENT.into_response()),
            Err(e) => (Outcome::Invalid, e.into_response()),
        },
        Op::Delete => match app.cache.remove(id) {
            Removal::Removed => (Outcome::Deleted, StatusCode::NO_CONTENT.into_response()),
            Removal::Expired | Removal::Missing => {
                (Outcome::Miss, NOT_FOUND_SESSION.into_response())
            }
        },
    };
    app.requests.request(op, outcome);
    response
}

/// GET or HEAD: the value with its stored type and length, or 404.
fn lookup(app: &App, id: &str, head: bool) -> (Outcome, Response) {
    match app.cache.get(id) {
        Lookup::Hit(Hit {
            value,
            content_type,
        }) => {
            let length = HeaderValue::from(value.len());
            let body = if head {
                Body::empty()
            } else {
                Body::from(value)
            };
            let response = (
                StatusCode::OK,
                [(CONTENT_TYPE, content_type), (CONTENT_LENGTH, length)],
                body,
            )
                .into_response();
            (Outcome::Hit, response)
        }
        // axum drops the body of every answer to HEAD, errors included.
        Lookup::Miss | Lookup::Expired => (Outcome::Miss, NOT_FOUND_SESSION.into_response()),
    }
}

/// PUT: TTL, then body size, then entry size.
async fn put(app: &App, id: &str, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    let ttl = match headers.get(TTL_HEADER) {
        None => app.default_ttl,
        Some(value) => Duration::from_secs(ttl_secs(value.as_bytes()).ok_or(INVALID_TTL)?.into()),
    };
    let value = read_value(headers, body).await?;
    let content_type = match headers.get(CONTENT_TYPE) {
        None => DEFAULT_CONTENT_TYPE,
        Some(sent) => HeaderValue::from_bytes(sent.as_bytes()).expect("already a header value"),
    };
    app.cache
        .put(id, value, content_type, ttl)
        .map_err(|_| ENTRY_TOO_LARGE)
}

/// Reads the whole body into one exactly-sized allocation, refusing more
/// than [`MAX_VALUE_BYTES`] — before reading when `Content-Length` already
/// says so.
async fn read_value(headers: &HeaderMap, mut body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_VALUE_BYTES as u64) {
        return Err(VALUE_TOO_LARGE);
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "request body could not be read");
            INVALID_BODY
        })?;
        if let Ok(chunk) = frame.into_data() {
            if buf.len() + chunk.len() > MAX_VALUE_BYTES {
                return Err(VALUE_TOO_LARGE);
            }
            buf.extend_from_slice(&chunk);
        }
    }
    // Exact size: a shrink (one realloc) only when the length was not declared.
    Ok(Bytes::from(buf.into_boxed_slice()))
}
