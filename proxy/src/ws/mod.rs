//! WebSocket shadowing: a `GET` with `Upgrade: websocket` is proxied as a
//! byte stream, and a sampled connection is compared message by message
//! with a shadow connection.
//!
//! On an upgrade the proxy opens its own connection to the primary and sends
//! the client's handshake (hop-by-hop headers redone, `X-Forwarded-For`
//! appended, `Sec-WebSocket-Extensions` removed so that no extension such as
//! permessage-deflate is negotiated and frames stay readable). The primary's
//! answer goes back to the client as it is: its 101 and headers, or a
//! refusal (400, 426, …) with its body. When the connection is sampled
//! (`mirror_percent`, `sticky_key`), the same handshake goes to the shadow
//! at the same time, from a spawned task: the client's 101 never waits for
//! it.
//!
//! After the upgrade one task per connection ([`relay`]) moves bytes:
//! client → primary and shadow unchanged, primary → client unchanged, and
//! the shadow's bytes are only read. Nothing is re-framed, so the client
//! sees exactly the primary's frames (close codes included) and the
//! upstreams see exactly the client's. Frames are read on the side
//! ([`frame`]) to collect the messages that [`matcher`] pairs and the
//! compare rules diff.
//!
//! # TLS
//! The upgrade works the same over a TLS listener (HTTP/1.1 chosen by
//! ALPN) and to `https://` upstreams (spoken to as `wss://`, ALPN
//! `http/1.1`, the service's `upstream_tls`): each TLS side is handed to
//! the relay as a plain loopback socket by [`bridge`], so frames are read,
//! paired and compared by the same code as for `ws://`.
//!
//! # Why no WebSocket library
//! A proxied connection holds three sockets, and most connections are idle.
//! tungstenite allocates its read buffer up front (128 KiB by default) for
//! each socket; relaying bytes needs none: the relay reads into a buffer on
//! the stack and keeps bytes on the heap only while a peer is slow to take
//! them, and a message only while it is being compared. Measured: 7.6–7.9
//! KiB of proxy memory per shadowed connection at 5,000 connections
//! (`docs/benchmarks.md`).

pub mod bridge;
pub mod frame;
pub mod matcher;
pub mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ResponseBody;
use crate::config::UpstreamAddr;
use crate::error::{error_response, Side};
use crate::headers::{append_forwarded_for, strip_hop_by_hop};
use crate::metrics::WsUpgrade;
use crate::service::ServiceState;
use crate::upstream::{Upstream, CONNECT_TIMEOUT};

/// `Sec-WebSocket-Extensions`: not forwarded (see the module docs).
pub static SEC_WEBSOCKET_EXTENSIONS: HeaderName =
    HeaderName::from_static("sec-websocket-extensions");

/// Whether `head` asks for a WebSocket upgrade: `GET` with a `websocket`
/// token in `Upgrade`.
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    request.method() == http::Method::GET
        && request
            .headers()
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// An upstream's answer to the handshake.
pub enum Answer {
    /// 101: the socket, the bytes read past the answer, the answer's head.
    Upgraded {
        stream: TcpStream,
        leftover: Bytes,
        head: http::response::Parts,
    },
    /// Anything else, to relay (primary) or count (shadow).
    Refused(Response<Incoming>),
}

/// Why an upstream handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{}: cannot connect: {source}", side.as_str())]
    Connect {
        side: Side,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no answer to the upgrade within {timeout:?}", side.as_str())]
    Timeout { side: Side, timeout: Duration },
    #[error("{}: TLS: {reason}", side.as_str())]
    Tls { side: Side, reason: String },
    #[error("{}: the upgrade failed: {source}", side.as_str())]
    Http {
        side: Side,
        #[source]
        source: hyper::Error,
    },
}

/// Sends the handshake `head` to `addr` on a new connection: plain for
/// `http://`, TLS with `tls` for `https://` (then bridged, see [`bridge`]).
pub async fn open(
    addr: &UpstreamAddr,
    head: Parts,
    side: Side,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Answer, OpenError> {
    let timed_out = |_| OpenError::Timeout {
        side,
        timeout: CONNECT_TIMEOUT,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.authority.as_str()))
        .await
        .map_err(timed_out)?
        .map_err(|source| OpenError::Connect { side, source })?;
    let _ = stream.set_nodelay(true);
    if addr.scheme != http::uri::Scheme::HTTPS {
        return Ok(match handshake(stream, head, side).await? {
            Handshake::Upgraded { io, leftover, head } => Answer::Upgraded {
                stream: io,
                leftover,
                head,
            },
            Handshake::Refused(response) => Answer::Refused(response),
        });
    }
    // Validation gives every service with an https:// upstream a client
    // configuration; its absence here is a bug, reported, not a panic.
    let tls_error = |reason: String| OpenError::Tls { side, reason };
    let config = tls.ok_or_else(|| tls_error("no client configuration".into()))?;
    let host = addr
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| tls_error(format!("{host}: {e}")))?;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(config)).connect(name, stream),
    )
    .await
    .map_err(timed_out)?
    .map_err(|e| tls_error(e.to_string()))?;
    Ok(match handshake(stream, head, side).await? {
        Handshake::Upgraded { io, leftover, head } => Answer::Upgraded {
            stream: bridge::bridge(io)
                .await
                .map_err(|source| OpenError::Connect { side, source })?,
            leftover,
            head,
        },
        Handshake::Refused(response) => Answer::Refused(response),
    })
}

/// An upstream's answer to the handshake on a connection of type `T`.
enum Handshake<T> {
    Upgraded {
        io: T,
        leftover: Bytes,
        head: http::response::Parts,
    },
    Refused(Response<Incoming>),
}

/// The HTTP/1.1 upgrade on `io`.
async fn handshake<T>(io: T, head: Parts, side: Side) -> Result<Handshake<T>, OpenError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| OpenError::Http { side, source };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
            .await
            .map_err(http)?;
    // Drives the handshake, then hands the socket to `upgrade::on` (or
    // streams a refusal's body); ends on its own either way.
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    let mut response = sender
        .send_request(Request::from_parts(head, Empty::new()))
        .await
        .map_err(http)?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Handshake::Refused(response));
    }
    let upgraded = hyper::upgrade::on(&mut response).await.map_err(http)?;
    let parts = upgraded
        .downcast::<TokioIo<T>>()
        .unwrap_or_else(|_| unreachable!("the connection was made over a T here"));
    let (head, _) = response.into_parts();
    Ok(Handshake::Upgraded {
        io: parts.io.into_inner(),
        leftover: parts.read_buf,
        head,
    })
}

/// The handshake sent upstream: the client's, hop-by-hop headers and
/// extensions removed, `X-Forwarded-For` appended, the upgrade headers
/// set again, origin-form target.
fn upstream_head(head: &Parts, client: SocketAddr) -> Parts {
    let mut up = Upstream::copy_head(head);
    strip_hop_by_hop(&mut up.headers);
    up.headers.remove(&SEC_WEBSOCKET_EXTENSIONS);
    append_forwarded_for(&mut up.headers, client.ip());
    up.headers
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    up.headers
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    up.uri = head.uri.path_and_query().map_or_else(
        || "/".parse().expect("a valid URI"),
        |p| p.as_str().parse().expect("a path and query is a valid URI"),
    );
    up.version = http::Version::HTTP_11;
    up
}

/// The client path of an upgrade request: the primary's answer, and the
/// relay task spawned when it is a 101.
pub async fn proxy_upgrade(
    state: Arc<ServiceState>,
    client: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let on_client_upgrade: OnUpgrade = hyper::upgrade::on(&mut request);
    let (head, _body) = request.into_parts();
    let route = state.routes.find(head.uri.path());
    let up = upstream_head(&head, client);
    // The handshake is recorded as a request (with the primary's status),
    // then every message on its connection id ([`crate::record::WsTap`]).
    let recording = state.recorder.as_ref().and_then(|r| r.begin(&head, client));
    let started = std::time::Instant::now();
    let shadowed = state.sampler.sample(&head);
    let shadow = shadowed.then(|| {
        let mut shadow_head = Upstream::copy_head(&up);
        if let Some(marker) = &state.marker {
            shadow_head
                .headers
                .insert(marker.clone(), HeaderValue::from_static("1"));
        }
        let addr = state.shadow.addr.clone();
        let tls = state.ws.upstream_tls.clone();
        let timeout = state.shadow_timeout;
        // Spawned, so the shadow's handshake runs alongside the primary's
        // and the client's 101 never waits for it.
        tokio::spawn(async move {
            let opening = open(&addr, shadow_head, Side::Shadow, tls.as_ref());
            match tokio::time::timeout(timeout, opening).await {
                Ok(answer) => answer,
                Err(_) => Err(OpenError::Timeout {
                    side: Side::Shadow,
                    timeout,
                }),
            }
        })
    });
    let metrics = &state.ws_metrics;
    let answer = open(
        &state.primary.addr,
        up,
        Side::Primary,
        state.ws.upstream_tls.as_ref(),
    )
    .await;
    let mut tap = None;
    if let (Some(r), Some(pending)) = (&state.recorder, recording) {
        let status = match &answer {
            Ok(Answer::Upgraded { .. }) => Some(101),
            Ok(Answer::Refused(response)) => Some(response.status().as_u16()),
            Err(_) => None,
        };
        if status == Some(101) {
            tap = Some(crate::record::WsTap::new(
                pending.conn(),
                r.max_body_bytes(),
            ));
        }
        r.finish::<&[u8]>(pending, &[], status, status.map(|_| started.elapsed()));
    }
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            if let Some(s) = shadow {
                s.abort();
            }
            metrics.upgrade(WsUpgrade::PrimaryError);
            tracing::debug!(service = %state.name, %error, "WebSocket upgrade failed");
            return error_response(
                StatusCode::BAD_GATEWAY,
                "primary_unavailable",
                "the primary upstream did not answer",
            );
        }
    };
    match answer {
        Answer::Refused(mut response) => {
            if let Some(s) = shadow {
                s.abort();
            }
            metrics.upgrade(WsUpgrade::PrimaryRefused);
            strip_hop_by_hop(response.headers_mut());
            response.map(ResponseBody::Upstream)
        }
        Answer::Upgraded {
            stream,
            leftover,
            head: mut answer,
        } => {
            metrics.upgrade(if shadowed {
                WsUpgrade::Mirrored
            } else {
                WsUpgrade::SampledOut
            });
            strip_hop_by_hop(&mut answer.headers);
            answer
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            answer
                .headers
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            // Only ever shown in samples: redacted once, here.
            let target = state.redactor.target(
                &head
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.to_string()),
            );
            let upstream = relay::Upstreams {
                primary: stream,
                primary_leftover: leftover,
                shadow,
                tap,
            };
            tokio::spawn(relay::run(
                Arc::clone(&state),
                route,
                target,
                on_client_upgrade,
                upstream,
            ));
            Response::from_parts(answer, ResponseBody::Local(None))
        }
    }
}
