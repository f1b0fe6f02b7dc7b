//! Accepting client connections for one service and serving them over
//! HTTP/1.1 with keep-alive (and upgrades, for WebSockets), until shutdown;
//! then draining in-flight requests and WebSocket relays for at most the
//! grace period.
//!
//! The listener is bound here too ([`bind`]): with socket2, so that
//! `SO_REUSEPORT` can be set before `bind` and the backlog is large enough
//! for a burst of WebSocket clients.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::Side;
use crate::metrics::Backend;
use crate::service::ServiceState;

/// Pending connections the kernel may hold (capped by `somaxconn`).
const BACKLOG: i32 = 4096;

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
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
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
        let state = Arc::clone(&state);
        let service = service_fn(move |request| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(state.handle(client, request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        // hyper-util's `GracefulShutdown` does not take upgradeable
        // connections, so each connection watches the stop flag itself and
        // holds a clone of `active` while it runs.
        let mut stop = shutdown.clone();
        let active = Arc::clone(&active);
        tokio::spawn(async move {
            let _active = active;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
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
