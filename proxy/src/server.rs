//! Accepting client connections for one service and serving them over
//! HTTP/1.1 with keep-alive (and upgrades, for WebSockets) or HTTP/2 — by
//! prior knowledge on a plain listener, by ALPN under TLS — until shutdown;
//! then draining in-flight requests and WebSocket relays for at most the
//! grace period.
//!
//! # Hostile HTTP/2
//! Each connection's HTTP/2 is bounded so that one client cannot take the
//! proxy's memory or CPU from the others: at most [`H2_MAX_STREAMS`]
//! concurrent streams; a header list of at most [`H2_MAX_HEADER_LIST`]
//! bytes (a larger one is refused); at most [`H2_MAX_SEND_BUFFER`] bytes
//! buffered per stream for a client that does not read (flow-control
//! abuse); a client that resets streams faster than they can be served
//! (the rapid-reset pattern, CVE-2023-44487) or causes too many stream
//! errors gets a `GOAWAY` and its connection closed; an invalid connection
//! preface is answered as a bad HTTP/1.1 request and closed. A TLS
//! handshake has [`TLS_HANDSHAKE_TIMEOUT`] to finish.
//!
//! The listener is bound here too ([`bind`]): with socket2, so that
//! `SO_REUSEPORT` can be set before `bind` and the backlog is large enough
//! for a burst of WebSocket clients.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::Side;
use crate::h1;
use crate::metrics::Backend;
use crate::service::ServiceState;

/// Pending connections the kernel may hold (capped by `somaxconn`).
const BACKLOG: i32 = 4096;

/// Concurrent HTTP/2 streams per client connection.
pub const H2_MAX_STREAMS: u32 = 256;
/// Largest HTTP/2 header list a client may send, bytes.
pub const H2_MAX_HEADER_LIST: u32 = 64 * 1024;
/// Most bytes buffered per HTTP/2 stream for a client that does not read.
pub const H2_MAX_SEND_BUFFER: usize = 256 * 1024;
/// Streams a client may reset before they are served (rapid reset).
pub const H2_MAX_PENDING_RESETS: usize = 64;
/// Stream errors a client may cause before its connection is closed.
pub const H2_MAX_ERROR_RESETS: usize = 256;
/// Time a TLS client has to finish its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain, handed over by the raw HTTP/1.1 path with the bytes it read.
    Prefixed(h1::Prefixed),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Prefixed(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Prefixed(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Prefixed(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Prefixed(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Prefixed(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::Prefixed(s) => s.is_write_vectored(),
        }
    }
}

/// The HTTP/2 connection builder, bounded as the module docs say.
fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_send_buf_size(H2_MAX_SEND_BUFFER)
        .max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
        .max_local_error_reset_streams(Some(H2_MAX_ERROR_RESETS))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// The HTTP/2 client preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain client opens with the HTTP/2 preface (prior knowledge):
/// peeks, without consuming, until the bytes decide it. Anything else —
/// HTTP/1.1, garbage, a client that sends nothing in time — is served as
/// HTTP/1.1, which answers or closes it.
async fn speaks_h2(stream: &TcpStream) -> bool {
    let mut buf = [0u8; PREFACE.len()];
    let decide = async {
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if buf[..n] != PREFACE[..n] {
                return false;
            }
            if n == PREFACE.len() {
                return true;
            }
            // A partial preface: wait for more bytes (peek returns at once).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, decide)
        .await
        .unwrap_or(false)
}

/// Binds `addr` with `SO_REUSEADDR` and, if `reuse_port`, `SO_REUSEPORT`
/// (several processes then share the address and the kernel spreads
/// connections over them). Must be called inside a tokio runtime.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServiceState>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let active = Arc::new(());
    let h2 = Arc::new(http2_builder());
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new());
    let h1 = Arc::new(h1);
    let acceptor = state.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    // Keeps the timer driver's deadline near, so hyper's header-read timer,
    // armed after every answer, costs no wake-up (see `heartbeat`).
    let mut heartbeat = crate::heartbeat::heartbeat();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = heartbeat.tick() => continue,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!(service = %state.name, side = Side::Downstream.as_str(), %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let raw_state = Arc::clone(&state);
        let state = Arc::clone(&state);
        let service = service_fn(move |request| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(state.handle(client, request).await) }
        });
        // hyper-util's `GracefulShutdown` does not take upgradeable
        // connections, so each connection watches the stop flag itself and
        // holds a clone of `active` while it runs.
        let mut stop = shutdown.clone();
        let active = Arc::clone(&active);
        let (h1, h2) = (Arc::clone(&h1), Arc::clone(&h2));
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _active = active;
            // TLS picks the protocol by ALPN; a plain client by its preface.
            let (stream, http2) = match acceptor {
                None => {
                    let h2 = speaks_h2(&stream).await;
                    // Plain HTTP/1.1: the raw path first, where it is on;
                    // it hands hyper any connection it does not finish.
                    match raw_state.raw_h1() {
                        Some(raw) if !h2 => {
                            match h1::serve(stream, client, &raw_state, raw, &mut stop).await {
                                h1::Served::Done => return,
                                h1::Served::Hyper(prefixed) => (Stream::Prefixed(prefixed), false),
                            }
                        }
                        _ => (Stream::Plain(stream), h2),
                    }
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                            (Stream::Tls(Box::new(tls)), h2)
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(side = Side::Downstream.as_str(), %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(
                                side = Side::Downstream.as_str(),
                                "TLS handshake timed out"
                            );
                            return;
                        }
                    }
                }
            };
            let io = TokioIo::new(stream);
            // Serves until done, or shuts down gracefully at the stop flag.
            macro_rules! drive {
                ($connection:expr) => {{
                    let mut connection = std::pin::pin!($connection);
                    tokio::select! {
                        result = connection.as_mut() => result,
                        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    }
                }};
            }
            let result = if http2 {
                drive!(h2.serve_connection(io, service))
            } else {
                drive!(h1.serve_connection(io, service).with_upgrades())
            };
            if let Err(error) = result {
                tracing::debug!(side = Side::Downstream.as_str(), %error, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    let deadline = Instant::now() + grace;
    state.ws_stop.send_replace(true);
    // Connections finish their request in flight; relays close at once on
    // `ws_stop`. Wait for both, within the grace period.
    let relays = state.ws_metrics.connections(Backend::Primary);
    while Arc::strong_count(&active) > 1 || relays.get() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(service = %state.name, grace_ms = grace.as_millis() as u64, "grace period ran out; abandoning in-flight requests");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_reuse_port_two_listeners_share_an_address() {
        let first = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr, true).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
    }

    #[tokio::test]
    async fn without_reuse_port_the_second_bind_fails() {
        let first = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = first.local_addr().unwrap();
        assert_eq!(
            bind(addr, false).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
