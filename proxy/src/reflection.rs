//! `descriptors = "reflection"`: a service's `compare` tables (or a
//! route's) that take their protobuf descriptors from the primary backend
//! by gRPC server reflection get them here, once, at start-up — before the
//! configuration is validated, so the route's `protobuf_message` is checked
//! against what the primary really serves.
//!
//! The calls go through the same [`Upstream`] client as the traffic (h2c,
//! TLS, ALPN and the service's `upstream_tls` alike), by
//! [`parallax_compare::reflection`]'s protocol. The fetch is bounded by
//! [`FETCH_TIMEOUT`]; a primary without reflection, or one that does not
//! answer in time, stops the start with an error naming the setting.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use parallax_compare::config::CompareConfig;
use parallax_compare::reflection::{self, Reply, Transport};

use crate::body::UpstreamBody;
use crate::config::Config;
use crate::metrics::Backend;
use crate::upstream::Upstream;
use crate::StartError;

/// How long fetching one service's descriptors may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `config` with every `descriptors = "reflection"` table's descriptors
/// fetched from its service's primary; `None` when no table asks for them.
///
/// # Errors
/// The configuration is invalid (as [`Config::validate`] says), or a
/// primary's reflection cannot be had: [`StartError::Reflection`] names the
/// table's `descriptors` setting.
pub async fn resolve(config: &Config) -> Result<Option<Config>, StartError> {
    let wants = |s: &crate::config::ServiceConfig| -> Option<String> {
        if s.compare.wants_reflection() {
            return Some("compare".to_owned());
        }
        s.routes
            .iter()
            .position(|r| {
                r.compare
                    .as_ref()
                    .is_some_and(CompareConfig::wants_reflection)
            })
            .map(|j| format!("routes[{j}].compare"))
    };
    if !config.services.iter().any(|s| wants(s).is_some()) {
        return Ok(None);
    }
    // The primaries' addresses, protocols and TLS settings, validated as
    // for serving (the reflection tables' message names are checked once
    // their descriptors are here).
    let settings = config.validate()?;

    let mut resolved = config.clone();
    for (i, (service, settings)) in resolved
        .services
        .iter_mut()
        .zip(settings.services)
        .enumerate()
    {
        let Some(table) = wants(service) else {
            continue;
        };
        let upstream = Upstream::new(
            Backend::Primary,
            settings.primary,
            settings.http2[0],
            settings.upstream_tls,
        );
        let failed = |reason: String| StartError::Reflection {
            field: format!("services[{i}].{table}.descriptors"),
            primary: service.primary.clone(),
            reason,
        };
        let pool = tokio::time::timeout(
            FETCH_TIMEOUT,
            reflection::fetch(&mut UpstreamTransport { upstream }),
        )
        .await
        .map_err(|_| failed(format!("no answer within {FETCH_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
        tracing::info!(
            service = %service.name,
            services = pool.services().count(),
            messages = pool.all_messages().count(),
            "descriptors fetched from the primary by server reflection"
        );
        for table in tables(service) {
            if table.wants_reflection() {
                table.reflected = Some(pool.clone());
            }
        }
    }
    Ok(Some(resolved))
}

/// Every `compare` table of a service: its own and its routes'.
fn tables(service: &mut crate::config::ServiceConfig) -> Vec<&mut CompareConfig> {
    let mut out = vec![&mut service.compare];
    out.extend(service.routes.iter_mut().filter_map(|r| r.compare.as_mut()));
    out
}

/// Reflection calls through an upstream client.
struct UpstreamTransport {
    upstream: Upstream,
}

impl Transport for UpstreamTransport {
    async fn call(&mut self, path: &'static str, body: Vec<u8>) -> Result<Reply, String> {
        let (head, ()) = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())
            .expect("a valid request")
            .into_parts();
        let response = self
            .upstream
            .send(head, UpstreamBody::buffered([Bytes::from(body)]))
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.map_err(|e| e.to_string())?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let field = |name: &str| {
            trailers
                .get(name)
                .or_else(|| parts.headers.get(name))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Ok(Reply {
            grpc_status: field("grpc-status"),
            grpc_message: field("grpc-message"),
            http_status: parts.status.as_u16(),
            body: collected.to_bytes().to_vec(),
        })
    }
}
