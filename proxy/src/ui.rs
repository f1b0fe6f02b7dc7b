//! The diff explorer: one page on the admin listener (`/ui`) that reads
//! the admin JSON (`/admin/overview`, `/admin/fields`, `/admin/mismatches`,
//! `/admin/latency/percentiles`, `/admin/canary`) and refreshes itself.
//!
//! Services → routes → the fields that differ, ranked; a field opens the
//! latest sample that shows it, request and answers side by side with the
//! differing paths highlighted. Also latency percentiles per backend,
//! mirror outcomes, canary state and WebSocket frame classes.
//!
//! The page, its script and its style are compiled into the binary and
//! served under a `default-src 'self'` content security policy: it works
//! with no network at all, and loads nothing from anywhere else.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// Nothing from elsewhere, no inline script, no framing.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn page() -> Response {
    serve(PAGE, "text/html; charset=utf-8")
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => serve(SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => serve(STYLE, "text/css; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn serve(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}
